/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "client-internal.h"
#include "codec.h"
#include "macro.h"

/* Output is sent once this much is buffered, or when the caller waits for something. */
#define CLIENT_FLUSH_THRESHOLD (64u * 1024u)
#define CLIENT_READ_CHUNK (64u * 1024u)

static void client_set_error(kactor_client *c, kactor_error code, const char *msg, size_t len) {
        free(c->error_message);
        c->error = code;
        c->error_message = strndup(msg ? msg : "", msg ? len : 0);
}

int client_new_fd(int fd, bool worker, kactor_client **ret) {
        kactor_client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = fd;
        c->worker = worker;
        c->next_seq = 1;
        c->next_reqid = 1;
        msgpack_packer_init(&c->pk, &c->out, buffer_msgpack_write);
        frame_init(&c->frame);
        *ret = c;
        return 0;
}

void client_set_identity(kactor_client *c, const char *node_id, uint64_t id_hi, uint64_t id_lo_prefix) {
        snprintf(c->node_id, sizeof(c->node_id), "%s", node_id);
        c->id_hi = id_hi;
        c->id_lo_prefix = id_lo_prefix;
}

_public_ kactor_client *kactor_client_free(kactor_client *c) {
        if (!c)
                return NULL;
        (void) kactor_flush(c);
        safe_close(c->fd);
        buffer_free(&c->in);
        buffer_free(&c->out);
        frame_done(&c->frame);
        free(c->current_pending);
        while (c->pending_head) {
                PendingFrame *p = c->pending_head;
                c->pending_head = p->next;
                free(p);
        }
        free(c->error_message);
        free(c);
        return NULL;
}

_public_ kactor_error kactor_client_error(const kactor_client *c) {
        return c->error;
}

_public_ const char *kactor_client_error_message(const kactor_client *c) {
        return c->error_message ?: "";
}

_public_ const char *kactor_client_node_id(const kactor_client *c) {
        return c->node_id;
}

_public_ int kactor_flush(kactor_client *c) {
        while (buffer_size(&c->out) > 0) {
                ssize_t n = send(c->fd, c->out.data + c->out.start, buffer_size(&c->out), MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                buffer_consume(&c->out, (size_t) n);
        }
        return 0;
}

int client_maybe_flush(kactor_client *c) {
        if (buffer_size(&c->out) >= CLIENT_FLUSH_THRESHOLD)
                return kactor_flush(c);
        return 0;
}

/* Reads more input. Returns bytes read, 0 at end of stream, or a negative errno. */
static int client_fill(kactor_client *c) {
        int r = buffer_reserve(&c->in, CLIENT_READ_CHUNK);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = recv(c->fd, c->in.data + c->in.end, c->in.cap - c->in.end, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                c->in.end += (size_t) n;
                return (int) n;
        }
}

/* Parses the next frame from the input, reading as needed. The frame (and c->last_payload) stays
 * valid until the next read. Returns 1, or a negative errno (-ECONNRESET at end of stream). */
static int client_read_frame(kactor_client *c) {
        for (;;) {
                const char *payload;
                size_t len;
                int r = frame_peek(&c->in, &payload, &len);
                if (r < 0)
                        return r;
                if (r > 0) {
                        buffer_consume(&c->in, PROTO_HEADER_SIZE + len);
                        c->last_payload = payload;
                        c->last_len = len;
                        r = frame_parse(&c->frame, payload, len);
                        return r < 0 ? r : 1;
                }
                r = kactor_flush(c);
                if (r < 0)
                        return r;
                r = client_fill(c);
                if (r <= 0)
                        return r == 0 ? -ECONNRESET : r;
        }
}

/* A call for this worker arrived while it waits for a reply: set it aside, in order. */
static int client_set_aside(kactor_client *c) {
        PendingFrame *p = malloc(sizeof(PendingFrame) + c->last_len);
        if (!p)
                return -ENOMEM;
        p->next = NULL;
        p->type = c->frame.type;
        p->id = c->frame.id;
        p->len = c->last_len;
        memcpy(p->payload, c->last_payload, c->last_len);
        if (c->pending_tail)
                c->pending_tail->next = p;
        else
                c->pending_head = p;
        c->pending_tail = p;
        return 0;
}

/* Waits for the reply to reqid. Returns 0 with the reply in c->frame, -EREMOTEIO when the node
 * manager reported an error (see kactor_client_error()), or another negative errno. */
static int client_wait_reply(kactor_client *c, uint64_t reqid) {
        for (;;) {
                int r = client_read_frame(c);
                if (r < 0)
                        return r;

                if (c->frame.type == MSG_RECALL && c->worker) {
                        r = client_recall_tasks(c);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c->frame.type != MSG_REPLY) {
                        if (!c->worker ||
                            (c->frame.type != MSG_EXEC && c->frame.type != MSG_TASK &&
                             c->frame.type != MSG_SAVE))
                                return -EBADMSG;
                        r = client_set_aside(c);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c->frame.id != reqid)
                        return -EBADMSG;

                uint64_t code;
                r = frame_field_u64(&c->frame, 0, &code);
                if (r < 0)
                        return r;
                if (code != KACTOR_OK) {
                        const char *msg = "";
                        size_t msg_len = 0;
                        (void) frame_field_str(&c->frame, 1, &msg, &msg_len);
                        client_set_error(
                                c, code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_PROTOCOL,
                                msg, msg_len);
                        return -EREMOTEIO;
                }
                return 0;
        }
}

int client_recall_tasks(kactor_client *c) {
        PendingFrame **pp = &c->pending_head, *last = NULL;
        size_t n = 0;

        for (PendingFrame *p = c->pending_head; p; p = p->next)
                n += p->type == MSG_TASK;

        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_RECALLED, 0, 1, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_array(&c->pk, n) < 0 ? -ENOMEM : 0;
        while (r >= 0 && *pp) {
                PendingFrame *p = *pp;
                if (p->type != MSG_TASK) {
                        last = p;
                        pp = &p->next;
                        continue;
                }
                r = msgpack_pack_uint64(&c->pk, p->id) < 0 ? -ENOMEM : 0;
                *pp = p->next;
                free(p);
        }
        c->pending_tail = last;
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        r = frame_end(&c->out, off);
        if (r < 0)
                return r;
        return kactor_flush(c);
}

int client_next_frame(kactor_client *c, Frame *f) {
        free(c->current_pending);
        c->current_pending = NULL;

        if (c->pending_head) {
                PendingFrame *p = c->pending_head;
                c->pending_head = p->next;
                if (!c->pending_head)
                        c->pending_tail = NULL;
                c->current_pending = p;
                int r = frame_parse(f, p->payload, p->len);
                return r < 0 ? r : 1;
        }

        for (;;) {
                const char *payload;
                size_t len;
                int r = frame_peek(&c->in, &payload, &len);
                if (r < 0)
                        return r;
                if (r > 0) {
                        buffer_consume(&c->in, PROTO_HEADER_SIZE + len);
                        r = frame_parse(f, payload, len);
                        return r < 0 ? r : 1;
                }
                r = kactor_flush(c);
                if (r < 0)
                        return r;
                r = client_fill(c);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 0;
        }
}

static kactor_id client_new_id(kactor_client *c) {
        return (kactor_id){ c->id_hi, c->id_lo_prefix | c->next_seq++ };
}

static int pack_args(msgpack_packer *pk, const kactor_value *args) {
        if (!args)
                return msgpack_pack_array(pk, 0) < 0 ? -ENOMEM : 0;
        if (kactor_value_type(args) != KACTOR_TYPE_LIST)
                return -EINVAL;
        return codec_pack_value(pk, args);
}

static int client_end_frame(kactor_client *c, size_t off, int r) {
        if (r < 0) {
                c->out.end = off; /* drop the half-written frame */
                return r;
        }
        return frame_end(&c->out, off);
}

_public_ int kactor_connect(const struct kactor_connect_opts *opts, kactor_client **ret) {
        _cleanup_close_ int fd = -1;
        const char *path = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (!ret)
                return -EINVAL;
        if (opts && opts->sz >= offsetof(struct kactor_connect_opts, socket_path) + sizeof(char *))
                path = opts->socket_path;
        if (!path)
                path = getenv("KACTOR_SOCKET");
        if (!path)
                path = KACTOR_DEFAULT_SOCKET;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();

        kactor_client *c;
        r = client_new_fd(fd, false, &c);
        if (r < 0)
                return r;
        fd = -1;

        size_t off;
        r = frame_begin_request(&c->out, &c->pk, MSG_HELLO, 0, 2, &off);
        if (r >= 0) {
                r = msgpack_pack_uint32(&c->pk, PROTO_VERSION) < 0 || msgpack_pack_int64(&c->pk, getpid()) < 0
                        ? -ENOMEM
                        : 0;
                r = client_end_frame(c, off, r);
        }
        if (r >= 0)
                r = kactor_flush(c);
        if (r >= 0)
                r = client_read_frame(c);
        if (r >= 0 && c->frame.type == MSG_REPLY) {
                /* Refused: the reply says why. */
                const char *msg = "";
                size_t len = 0;
                uint64_t code = KACTOR_ERROR_PROTOCOL;
                (void) frame_field_u64(&c->frame, 0, &code);
                (void) frame_field_str(&c->frame, 1, &msg, &len);
                client_set_error(c,
                                 code > 0 && code < _KACTOR_ERROR_MAX ? (kactor_error) code
                                                                      : KACTOR_ERROR_PROTOCOL,
                                 msg, len);
                r = code == KACTOR_ERROR_ACCESS_DENIED ? -EACCES : -EPROTO;
        } else if (r >= 0 && c->frame.type != MSG_WELCOME)
                r = -EPROTO;
        if (r >= 0) {
                uint64_t version, hi, lo;
                char *node = NULL;
                r = frame_field_u64(&c->frame, 0, &version);
                if (r >= 0)
                        r = frame_field_strdup(&c->frame, 1, &node);
                if (r >= 0)
                        r = frame_field_u64(&c->frame, 2, &hi);
                if (r >= 0)
                        r = frame_field_u64(&c->frame, 3, &lo);
                if (r >= 0)
                        client_set_identity(c, node, hi, lo);
                free(node);
        }
        if (r < 0) {
                kactor_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static int pack_actor_options(msgpack_packer *pk, const struct kactor_actor_opts *o) {
        struct kactor_actor_opts d = { .sz = sizeof(d), .max_restarts = 0 };
        if (o) {
                /* Copy what the caller's (possibly older, smaller) struct has. */
                memcpy(&d, o, MIN(o->sz, sizeof(d)));
                d.sz = sizeof(d);
        }
        uint32_t n = 2 + (d.num_gpus > 0) + (d.num_cpus > 0) + (d.memory_max > 0) + (d.name != NULL) +
                (d.node != NULL);
        if (msgpack_pack_map(pk, n) < 0)
                return -ENOMEM;
        if (pack_cstr(pk, "Detached") < 0 ||
            (d.detached ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0)
                return -ENOMEM;
        if (pack_cstr(pk, "MaxRestarts") < 0 || msgpack_pack_int64(pk, d.max_restarts) < 0)
                return -ENOMEM;
        if (d.num_gpus > 0 && (pack_cstr(pk, "NumGpus") < 0 || msgpack_pack_uint32(pk, d.num_gpus) < 0))
                return -ENOMEM;
        if (d.num_cpus > 0 && (pack_cstr(pk, "NumCpus") < 0 || msgpack_pack_double(pk, d.num_cpus) < 0))
                return -ENOMEM;
        if (d.memory_max > 0 &&
            (pack_cstr(pk, "MemoryMax") < 0 || msgpack_pack_uint64(pk, d.memory_max) < 0))
                return -ENOMEM;
        if (d.name && (pack_cstr(pk, "Name") < 0 || pack_cstr(pk, d.name) < 0))
                return -ENOMEM;
        if (d.node && (pack_cstr(pk, "Node") < 0 || pack_cstr(pk, d.node) < 0))
                return -ENOMEM;
        return 0;
}

_public_ int kactor_create_actor(kactor_client *c, const char *module, const char *class_name,
                                 const kactor_value *args, const struct kactor_actor_opts *opts,
                                 kactor_actor *ret) {
        if (!c || !module || !class_name || !ret)
                return -EINVAL;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_CREATE_ACTOR, reqid, 3, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&c->pk, module);
        if (r >= 0)
                r = pack_cstr(&c->pk, class_name);
        if (r >= 0)
                r = pack_actor_options(&c->pk, opts);
        if (r >= 0)
                r = pack_args(&c->pk, args);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;

        r = client_wait_reply(c, reqid);
        if (r < 0)
                return r;
        kactor_id id;
        r = frame_field_id(&c->frame, 2, CODEC_EXT_ACTOR, &id);
        if (r < 0)
                return r;
        *ret = (kactor_actor){ id };
        return 0;
}

_public_ int kactor_get_actor(kactor_client *c, const char *name, kactor_actor *ret) {
        if (!c || !name || !ret)
                return -EINVAL;
        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_GET_ACTOR, reqid, 1, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&c->pk, name);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_wait_reply(c, reqid);
        if (r < 0)
                return r;
        kactor_id id;
        r = frame_field_id(&c->frame, 2, CODEC_EXT_ACTOR, &id);
        if (r < 0)
                return r;
        *ret = (kactor_actor){ id };
        return 0;
}

_public_ int kactor_call(kactor_client *c, kactor_actor actor, const char *method, const kactor_value *args,
                         kactor_ref *ret) {
        if (!c || !method || !ret)
                return -EINVAL;
        kactor_id id = client_new_id(c);
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_CALL, id.lo, 2, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, actor.id);
        if (r >= 0)
                r = pack_cstr(&c->pk, method);
        if (r >= 0)
                r = pack_args(&c->pk, args);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_maybe_flush(c);
        if (r < 0)
                return r;
        *ret = (kactor_ref){ id };
        return 0;
}

_public_ int kactor_submit(kactor_client *c, const char *module, const char *function,
                           const kactor_value *args, const struct kactor_task_opts *opts, kactor_ref *ret) {
        if (!c || !module || !function || !ret)
                return -EINVAL;
        double num_cpus = 1;
        if (opts && opts->sz >= offsetof(struct kactor_task_opts, num_cpus) + sizeof(double))
                num_cpus = opts->num_cpus;

        kactor_id id = client_new_id(c);
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_SUBMIT, id.lo, 3, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&c->pk, module);
        if (r >= 0)
                r = pack_cstr(&c->pk, function);
        if (r >= 0)
                r = msgpack_pack_map(&c->pk, 1) < 0 || pack_cstr(&c->pk, "NumCpus") < 0 ||
                                msgpack_pack_double(&c->pk, num_cpus) < 0
                        ? -ENOMEM
                        : 0;
        if (r >= 0)
                r = pack_args(&c->pk, args);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_maybe_flush(c);
        if (r < 0)
                return r;
        *ret = (kactor_ref){ id };
        return 0;
}

_public_ int kactor_put(kactor_client *c, const kactor_value *value, kactor_ref *ret) {
        if (!c || !value || !ret || kactor_value_is_error(value))
                return -EINVAL;
        kactor_id id = client_new_id(c);
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_PUT, id.lo, 0, &off);
        if (r < 0)
                return r;
        r = codec_pack_value(&c->pk, value);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_maybe_flush(c);
        if (r < 0)
                return r;
        *ret = (kactor_ref){ id };
        return 0;
}

static int pack_ref_list(msgpack_packer *pk, const kactor_ref *refs, size_t n) {
        if (msgpack_pack_array(pk, n) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = codec_pack_id(pk, CODEC_EXT_OBJECT, refs[i].id);
                if (r < 0)
                        return r;
        }
        return 0;
}

_public_ void kactor_values_free(kactor_value **values, size_t n) {
        if (!values)
                return;
        for (size_t i = 0; i < n; i++)
                kactor_value_free(values[i]);
        free(values);
}

_public_ int kactor_get(kactor_client *c, const kactor_ref *refs, size_t n, uint64_t timeout_usec,
                        kactor_value ***ret_values) {
        if (!c || (!refs && n > 0) || !ret_values || n > UINT32_MAX)
                return -EINVAL;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_GET, reqid, 2, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_uint64(&c->pk, timeout_usec) < 0 ? -ENOMEM : pack_ref_list(&c->pk, refs, n);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_wait_reply(c, reqid);
        if (r == -EREMOTEIO && c->error == KACTOR_ERROR_TIMEOUT)
                return -ETIMEDOUT;
        if (r < 0)
                return r;

        const msgpack_object *body = c->frame.has_body ? &c->frame.body.data : NULL;
        if (!body || body->type != MSGPACK_OBJECT_ARRAY || body->via.array.size != n)
                return -EBADMSG;

        kactor_value **values = calloc(n ?: 1, sizeof(kactor_value *));
        if (!values)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = codec_value_from_object(&body->via.array.ptr[i], &values[i]);
                if (r < 0) {
                        kactor_values_free(values, i);
                        return r;
                }
        }
        *ret_values = values;
        return 0;
}

_public_ int kactor_get1(kactor_client *c, kactor_ref ref, uint64_t timeout_usec, kactor_value **ret_value) {
        kactor_value **values;
        int r = kactor_get(c, &ref, 1, timeout_usec, &values);
        if (r < 0)
                return r;
        *ret_value = values[0];
        free(values);
        return 0;
}

_public_ int kactor_wait(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                         uint64_t timeout_usec, bool *ret_ready) {
        if (!c || (!refs && n > 0) || !ret_ready || num_returns > n || n > UINT32_MAX)
                return -EINVAL;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_WAIT, reqid, 3, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_uint64(&c->pk, timeout_usec) < 0 || msgpack_pack_uint64(&c->pk, num_returns) < 0
                ? -ENOMEM
                : pack_ref_list(&c->pk, refs, n);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_wait_reply(c, reqid);
        if (r < 0)
                return r;

        const msgpack_object *body = c->frame.has_body ? &c->frame.body.data : NULL;
        if (!body || body->type != MSGPACK_OBJECT_ARRAY || body->via.array.size != n)
                return -EBADMSG;
        int ready = 0;
        for (size_t i = 0; i < n; i++) {
                const msgpack_object *o = &body->via.array.ptr[i];
                if (o->type != MSGPACK_OBJECT_BOOLEAN)
                        return -EBADMSG;
                ret_ready[i] = o->via.boolean;
                ready += o->via.boolean;
        }
        return ready;
}

static int client_release(kactor_client *c, const kactor_ref *refs, size_t n, const kactor_actor *actor) {
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_RELEASE, 0, 2, &off);
        if (r < 0)
                return r;
        r = pack_ref_list(&c->pk, refs, n);
        if (r >= 0)
                r = msgpack_pack_array(&c->pk, actor ? 1 : 0) < 0 ? -ENOMEM : 0;
        if (r >= 0 && actor)
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, actor->id);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        return client_maybe_flush(c);
}

_public_ int kactor_ref_release(kactor_client *c, const kactor_ref *refs, size_t n) {
        if (!c || (!refs && n > 0) || n > UINT32_MAX)
                return -EINVAL;
        if (n == 0)
                return 0;
        return client_release(c, refs, n, NULL);
}

_public_ int kactor_actor_release(kactor_client *c, kactor_actor actor) {
        if (!c)
                return -EINVAL;
        return client_release(c, NULL, 0, &actor);
}

_public_ int kactor_kill(kactor_client *c, kactor_actor actor, bool no_restart) {
        if (!c)
                return -EINVAL;
        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_KILL, reqid, 2, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, actor.id);
        if (r >= 0)
                r = (no_restart ? msgpack_pack_true(&c->pk) : msgpack_pack_false(&c->pk)) < 0 ? -ENOMEM : 0;
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        return client_wait_reply(c, reqid);
}
