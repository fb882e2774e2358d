/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lineage.h"
#include "macro.h"

void lineage_init(LineageLog *log) {
        *log = (LineageLog){ .next_index = 1, .base_index = 1 };
}

void lineage_record_done(LineageRecord *r) {
        free(r->method);
        free(r->args);
        *r = (LineageRecord){};
}

static size_t record_bytes(const LineageRecord *r) {
        return sizeof(*r) + (r->method ? strlen(r->method) + 1 : 0) + r->args_len;
}

void lineage_done(LineageLog *log) {
        for (size_t i = 0; i < log->n; i++)
                lineage_record_done(&log->records[(log->start + i) % log->allocated]);
        free(log->records);
        free(log->checkpoint);
        lineage_init(log);
}

static int lineage_grow(LineageLog *log) {
        size_t n = MAX(log->allocated * 2, (size_t) 16);
        LineageRecord *r = malloc(n * sizeof(LineageRecord));
        if (!r)
                return -ENOMEM;
        /* Unwrap the ring into the new array. */
        for (size_t i = 0; i < log->n; i++)
                r[i] = log->records[(log->start + i) % log->allocated];
        free(log->records);
        log->records = r;
        log->allocated = n;
        log->start = 0;
        return 0;
}

int64_t lineage_append(LineageLog *log, kactor_id result, const char *method, const char *args,
                       size_t args_len, kactor_error code) {
        LineageRecord r = { .index = log->next_index, .result = result, .code = code, .args_len = args_len };

        if (log->n == log->allocated && lineage_grow(log) < 0)
                return -ENOMEM;
        r.method = strdup(method ?: "");
        r.args = malloc(args_len ?: 1);
        if (!r.method || !r.args) {
                lineage_record_done(&r);
                return -ENOMEM;
        }
        if (args_len > 0)
                memcpy(r.args, args, args_len);

        log->records[(log->start + log->n) % log->allocated] = r;
        if (log->n == 0)
                log->base_index = r.index;
        log->n++;
        log->next_index++;
        log->bytes += record_bytes(&r);
        return (int64_t) r.index;
}

const LineageRecord *lineage_at(const LineageLog *log, size_t i) {
        if (i >= log->n)
                return NULL;
        return &log->records[(log->start + i) % log->allocated];
}

const LineageRecord *lineage_get(const LineageLog *log, uint64_t index) {
        if (log->n == 0 || index < log->base_index || index >= log->base_index + log->n)
                return NULL;
        return lineage_at(log, index - log->base_index);
}

int lineage_checkpoint(LineageLog *log, uint64_t index, const char *state, size_t len) {
        if (index < log->checkpoint_index || index >= log->next_index)
                return -EINVAL;

        char *copy = malloc(len ?: 1);
        if (!copy)
                return -ENOMEM;
        if (len > 0)
                memcpy(copy, state, len);
        free(log->checkpoint);
        log->checkpoint = copy;
        log->checkpoint_len = len;
        log->checkpoint_index = index;

        while (log->n > 0 && log->records[log->start].index <= index) {
                LineageRecord *r = &log->records[log->start];
                log->bytes -= record_bytes(r);
                lineage_record_done(r);
                log->start = (log->start + 1) % log->allocated;
                log->n--;
        }
        log->base_index = log->n > 0 ? log->records[log->start].index : log->next_index;
        return 0;
}

int lineage_restore(LineageLog *log, uint64_t index, const char *state, size_t len) {
        if (log->n > 0 || log->checkpoint || index == 0)
                return -EBUSY;
        log->next_index = index + 1;
        log->base_index = log->next_index;
        return lineage_checkpoint(log, index, state, len);
}

int lineage_record_pack(msgpack_packer *pk, const LineageRecord *r) {
        if (msgpack_pack_array(pk, 6) < 0 || msgpack_pack_uint32(pk, LINEAGE_RECORD_VERSION) < 0 ||
            msgpack_pack_uint32(pk, LINEAGE_CALL) < 0 || msgpack_pack_uint64(pk, r->index) < 0)
                return -ENOMEM;
        int k = codec_pack_id(pk, CODEC_EXT_OBJECT, r->result);
        if (k < 0)
                return k;
        size_t mlen = strlen(r->method ?: "");
        if (msgpack_pack_str(pk, mlen) < 0 || msgpack_pack_str_body(pk, r->method ?: "", mlen) < 0 ||
            msgpack_pack_uint32(pk, r->code) < 0)
                return -ENOMEM;
        /* The arguments are already packed: they follow the header as they are. */
        return pk->callback(pk->data, r->args, r->args_len) < 0 ? -ENOMEM : 0;
}

int lineage_record_unpack(const char *data, size_t len, LineageRecord *ret) {
        msgpack_unpacked u;
        size_t off = 0;
        LineageRecord r = {};
        int k = -EBADMSG;

        msgpack_unpacked_init(&u);
        size_t header_len;
        if (codec_check_bounds(data, len, &header_len) < 0 || header_len >= len ||
            codec_check_bounds(data + header_len, len - header_len, NULL) < 0)
                goto finish;
        if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS)
                goto finish;
        const msgpack_object *h = &u.data;
        if (h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size != 6)
                goto finish;
        const msgpack_object *f = h->via.array.ptr;
        if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 != LINEAGE_RECORD_VERSION ||
            f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 != LINEAGE_CALL ||
            f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].via.u64 == 0 ||
            f[4].type != MSGPACK_OBJECT_STR || f[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            f[5].via.u64 >= _KACTOR_ERROR_MAX)
                goto finish;
        if (codec_object_to_id(&f[3], CODEC_EXT_OBJECT, &r.result) < 0)
                goto finish;
        if (memchr(f[4].via.str.ptr, 0, f[4].via.str.size))
                goto finish;
        r.index = f[2].via.u64;
        r.code = (kactor_error) f[5].via.u64;

        /* What follows is the arguments: exactly one valid list. */
        msgpack_unpacked a;
        size_t args_off = off;
        msgpack_unpacked_init(&a);
        bool ok = msgpack_unpack_next(&a, data, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
                a.data.type == MSGPACK_OBJECT_ARRAY && codec_validate(&a.data) >= 0;
        msgpack_unpacked_destroy(&a);
        if (!ok)
                goto finish;

        k = -ENOMEM;
        r.method = strndup(f[4].via.str.ptr, f[4].via.str.size);
        r.args_len = len - args_off;
        r.args = malloc(r.args_len);
        if (!r.method || !r.args)
                goto finish;
        memcpy(r.args, data + args_off, r.args_len);
        *ret = r;
        r = (LineageRecord){};
        k = 0;
finish:
        lineage_record_done(&r);
        msgpack_unpacked_destroy(&u);
        return k;
}
