/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "macro.h"
#include "peer-proto.h"
#include "remote-proto.h"
#include "spec-check.h"

#define TEXT_MAX 4096

void spec_wire_done(SpecWire *s) {
        free(s->module);
        free(s->class_name);
        free(s->name);
        free(s->allow_users);
        free(s->allow_groups);
        *s = (SpecWire) {};
}

int spec_wire_pack(msgpack_packer *pk, const SpecWire *s) {
        if (pack_cstr(pk, s->module) < 0 || pack_cstr(pk, s->class_name) < 0 || msgpack_pack_array(pk, 11) < 0 ||
            pack_cstr(pk, s->name) < 0 || msgpack_pack_double(pk, s->num_cpus) < 0 ||
            msgpack_pack_uint32(pk, s->num_gpus) < 0 || msgpack_pack_uint64(pk, s->memory_max) < 0 ||
            msgpack_pack_int32(pk, s->max_restarts) < 0 ||
            (s->detached ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0 ||
            msgpack_pack_uint32(pk, s->checkpoint_interval) < 0 || msgpack_pack_uint64(pk, s->tasks_max) < 0 ||
            msgpack_pack_uint32(pk, s->uid) < 0 || codec_pack_u32_list(pk, s->allow_users, s->n_allow_users) < 0 ||
            codec_pack_u32_list(pk, s->allow_groups, s->n_allow_groups) < 0)
                return -ENOMEM;
        return 0;
}

int node_id_parse(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;
        if (len != 16)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                unsigned d = c >= '0' && c <= '9' ? (unsigned) (c - '0')
                        : c >= 'a' && c <= 'f'     ? (unsigned) (c - 'a' + 10)
                                                   : 16;
                if (d == 16)
                        return -EINVAL;
                v = v << 4 | d;
        }
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

void node_id_format(uint64_t node, char buf[NODE_ID_STRING_MAX]) {
        snprintf(buf, NODE_ID_STRING_MAX, "%016" PRIx64, node);
}

static bool obj_uint(const msgpack_object *o, uint64_t max, uint64_t *ret) {
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
                return false;
        *ret = o->via.u64;
        return true;
}

static int obj_strdup(const msgpack_object *o, char **ret) {
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > TEXT_MAX ||
            memchr(o->via.str.ptr, 0, o->via.str.size))
                return -EBADMSG;
        *ret = strndup(o->via.str.ptr, o->via.str.size);
        return *ret ? 0 : -ENOMEM;
}

/* A list of at most SPEC_ALLOW_MAX user or group ids. */
static int u32_list(const msgpack_object *o, uint32_t **ret, size_t *ret_n) {
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > SPEC_ALLOW_MAX)
                return -EBADMSG;
        size_t n = o->via.array.size;
        if (n == 0)
                return 0;
        _cleanup_free_ uint32_t *v = calloc(n, sizeof(uint32_t));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                uint64_t u;
                if (!obj_uint(&o->via.array.ptr[i], UINT32_MAX - 1, &u))
                        return -EBADMSG;
                v[i] = (uint32_t) u;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

/* Header fields i (module), i + 1 (class), i + 2 (the options array). */
static int spec_parse(const Frame *f, uint32_t i, SpecWire *ret) {
        SpecWire s = {};
        const msgpack_object *m = frame_field(f, i), *c = frame_field(f, i + 1), *o = frame_field(f, i + 2);
        uint64_t u;
        if (!m || !c || !o || obj_strdup(m, &s.module) < 0 || obj_strdup(c, &s.class_name) < 0 ||
            o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 11)
                goto bad;
        const msgpack_object *v = o->via.array.ptr;
        if (v[0].type != MSGPACK_OBJECT_NIL && obj_strdup(&v[0], &s.name) < 0)
                goto bad;
        if (v[1].type == MSGPACK_OBJECT_FLOAT64 || v[1].type == MSGPACK_OBJECT_FLOAT32)
                s.num_cpus = v[1].via.f64;
        else if (v[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                s.num_cpus = (double) v[1].via.u64;
        else
                goto bad;
        if (!(s.num_cpus >= 0 && s.num_cpus <= 1e6) || !obj_uint(&v[2], 1024, &u))
                goto bad;
        s.num_gpus = (uint32_t) u;
        if (!obj_uint(&v[3], UINT64_MAX, &s.memory_max))
                goto bad;
        if (v[4].type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v[4].via.i64 >= -1)
                s.max_restarts = (int32_t) v[4].via.i64;
        else if (obj_uint(&v[4], INT32_MAX, &u))
                s.max_restarts = (int32_t) u;
        else
                goto bad;
        if (v[5].type != MSGPACK_OBJECT_BOOLEAN || !obj_uint(&v[6], UINT32_MAX, &u))
                goto bad;
        s.detached = v[5].via.boolean;
        s.checkpoint_interval = (uint32_t) u;
        if (!obj_uint(&v[7], UINT64_MAX, &s.tasks_max) || !obj_uint(&v[8], UINT32_MAX, &u))
                goto bad;
        s.uid = (uint32_t) u;
        if (u32_list(&v[9], &s.allow_users, &s.n_allow_users) < 0 ||
            u32_list(&v[10], &s.allow_groups, &s.n_allow_groups) < 0)
                goto bad;
        *ret = s;
        return 0;
bad:
        spec_wire_done(&s);
        return -EBADMSG;
}

/* The trailing value, which must be a list when there is one. */
static int body_list(const Frame *f, RemoteMessage *m) {
        if (!f->has_body)
                return 0;
        if (f->body.data.type != MSGPACK_OBJECT_ARRAY)
                return -EBADMSG;
        m->body = f->body_raw;
        m->body_len = f->body_len;
        return 0;
}

static int text(const Frame *f, uint32_t i, bool required, RemoteMessage *m) {
        const msgpack_object *o = frame_field(f, i);
        if (!o || o->type == MSGPACK_OBJECT_NIL)
                return required ? -EBADMSG : 0;
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > TEXT_MAX)
                return -EBADMSG;
        m->text = o->via.str.ptr;
        m->text_len = o->via.str.size;
        return 0;
}

static int id_list(const Frame *f, uint32_t i, int8_t ext, RemoteMessage *m) {
        const msgpack_object *o = frame_field(f, i);
        kactor_id id;
        if (!o || o->type != MSGPACK_OBJECT_ARRAY)
                return -EBADMSG;
        for (uint32_t k = 0; k < o->via.array.size; k++)
                if (codec_object_to_id(&o->via.array.ptr[k], ext, &id) < 0)
                        return -EBADMSG;
        m->ids = o;
        return 0;
}

kactor_id remote_message_id(const RemoteMessage *m, size_t i) {
        kactor_id id = {};
        (void) codec_object_to_id(&m->ids->via.array.ptr[i], m->type == PEER_MSG_DONE ? CODEC_EXT_OBJECT : CODEC_EXT_ACTOR,
                                  &id);
        return id;
}

static int bin(const msgpack_object *o, RemoteMessage *m) {
        if (!o || o->type != MSGPACK_OBJECT_BIN)
                return -EBADMSG;
        m->blob = o->via.bin.ptr;
        m->blob_len = o->via.bin.size;
        return 0;
}

static int field_uid(const Frame *f, uint32_t i, RemoteMessage *m) {
        uint64_t u;
        if (frame_field_u64(f, i, &u) < 0 || u > UINT32_MAX)
                return -EBADMSG;
        m->uid = (uint32_t) u;
        return 0;
}

static int parse(const Frame *f, RemoteMessage *m) {
        const msgpack_object *o;
        int8_t ext = CODEC_EXT_ACTOR;

        switch (f->type) {
        case PEER_MSG_CREATE:
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || spec_parse(f, 1, &m->spec) < 0)
                        return -EBADMSG;
                return body_list(f, m);
        case PEER_MSG_CREATED:
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || frame_field_u64(f, 1, &m->code) < 0 ||
                    m->code >= _KACTOR_ERROR_MAX)
                        return -EBADMSG;
                return text(f, 2, false, m);
        case PEER_MSG_CALL:
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || frame_field_id(f, 1, CODEC_EXT_OBJECT, &m->object) < 0 ||
                    text(f, 2, true, m) < 0 || m->text_len == 0 || memchr(m->text, 0, m->text_len) ||
                    field_uid(f, 3, m) < 0 || m->uid == REMOTE_UID_UNKNOWN)
                        return -EBADMSG;
                return body_list(f, m);
        case PEER_MSG_RESULT:
                if (frame_field_id(f, 0, CODEC_EXT_OBJECT, &m->object) < 0 || frame_field_u64(f, 1, &m->code) < 0 ||
                    m->code >= _KACTOR_ERROR_MAX || text(f, 2, false, m) < 0 || !(o = frame_field(f, 3)) ||
                    field_uid(f, 4, m) < 0)
                        return -EBADMSG;
                if (o->type != MSGPACK_OBJECT_NIL) {
                        if (codec_object_to_id(o, ext, &m->actor) < 0)
                                return -EBADMSG;
                        m->has_actor = true;
                }
                if ((m->code == KACTOR_OK) != f->has_body)
                        return -EBADMSG;
                m->body = f->has_body ? f->body_raw : NULL;
                m->body_len = f->has_body ? f->body_len : 0;
                return 0;
        case PEER_MSG_DONE:
                return id_list(f, 0, CODEC_EXT_OBJECT, m);
        case PEER_MSG_FETCH:
                return frame_field_id(f, 0, CODEC_EXT_OBJECT, &m->object) < 0 ? -EBADMSG : 0;
        case PEER_MSG_HOLD:
        case PEER_MSG_RELEASE:
        case PEER_MSG_REPL_DROP:
                return id_list(f, 0, ext, m);
        case PEER_MSG_KILL:
                return frame_field_id(f, 0, ext, &m->actor) < 0 || frame_field_bool(f, 1, &m->flag) < 0 ||
                                       field_uid(f, 2, m) < 0 || m->uid == REMOTE_UID_UNKNOWN
                        ? -EBADMSG
                        : 0;
        case PEER_MSG_MOVED: {
                const char *node;
                size_t len;
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || frame_field_str(f, 1, &node, &len) < 0 ||
                    (len > 0 && node_id_parse(node, len, &m->node) < 0))
                        return -EBADMSG;
                return text(f, 2, false, m);
        }
        case PEER_MSG_LOCATE:
                return frame_field_id(f, 0, ext, &m->actor) < 0 ? -EBADMSG : 0;
        case PEER_MSG_REPL_CREATE:
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || spec_parse(f, 1, &m->spec) < 0 ||
                    !(o = frame_field(f, 4)) || o->type != MSGPACK_OBJECT_ARRAY ||
                    o->via.array.size > REMOTE_REPLICAS_MAX || frame_field_u64(f, 5, &m->index) < 0)
                        return -EBADMSG;
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        const msgpack_object *e = &o->via.array.ptr[i];
                        if (e->type != MSGPACK_OBJECT_STR ||
                            node_id_parse(e->via.str.ptr, e->via.str.size, &m->replicas[i]) < 0)
                                return -EBADMSG;
                }
                m->n_replicas = o->via.array.size;
                o = frame_field(f, 6);
                if (!o || (o->type != MSGPACK_OBJECT_NIL && bin(o, m) < 0) || (m->blob != NULL) != (m->index > 0))
                        return -EBADMSG;
                return body_list(f, m);
        case PEER_MSG_REPL_RECORD:
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || bin(frame_field(f, 1), m) < 0)
                        return -EBADMSG;
                return lineage_record_unpack(m->blob, m->blob_len, &m->record) < 0 ? -EBADMSG : 0;
        case PEER_MSG_REPL_CHECKPOINT:
                if (frame_field_id(f, 0, ext, &m->actor) < 0 || frame_field_u64(f, 1, &m->index) < 0 ||
                    m->index == 0)
                        return -EBADMSG;
                return bin(frame_field(f, 2), m);
        case PEER_MSG_REPL_ACK:
                return frame_field_id(f, 0, ext, &m->actor) < 0 || frame_field_u64(f, 1, &m->index) < 0 ||
                                       frame_field_bool(f, 2, &m->flag) < 0
                        ? -EBADMSG
                        : 0;
        default:
                return -EBADMSG;
        }
}

int remote_message_parse(const Frame *f, RemoteMessage *ret) {
        *ret = (RemoteMessage) { .type = f->type };
        int r = parse(f, ret);
        if (r < 0)
                remote_message_done(ret);
        return r;
}

void remote_message_done(RemoteMessage *m) {
        spec_wire_done(&m->spec);
        lineage_record_done(&m->record);
}
