/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Direct calls, the worker's side (docs/protocol.md, "Direct calls"). The node manager hands the
 * worker one end of a socketpair per caller (DIRECT_OPEN, after checking that the caller may call
 * this actor) and the caller the other. The worker reads DCALLs from them while it has nothing
 * from the node manager, writes their records (DIRECT) to the node manager before running them,
 * runs them one at a time with the relayed calls, and answers each on its socket (DRESULT) and to
 * the node manager (RESULT with RESULT_DIRECT), which keeps the lineage and the objects as for a
 * relayed call.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client-internal.h"
#include "codec.h"
#include "macro.h"
#include "probes.h"
#include "time-util.h"
#include "worker-direct.h"
#include "worker-runtime.h"

/* Calls read together: their records go in one write, then they run. A batch of quick calls lets the
 * next one grow (fewer writes, and wake-ups of the node manager and the caller, per call), up to the
 * most; a slow one shrinks it again: the batch is what other callers and relayed calls wait behind. */
#define DIRECT_BATCH_MIN 64
#define DIRECT_BATCH_MAX 256
#define DIRECT_BATCH_QUICK_NSEC (250 * 1000ULL)
#define DIRECT_BATCH_SLOW_NSEC (2 * 1000 * 1000ULL)
/* A caller that does not read its answers: its socket is not read either past this much output. */
#define DIRECT_OUT_MAX (16u * 1024u * 1024u)
#define DIRECT_READ_CHUNK (64u * 1024u)
/* At most this many direct sockets per worker; more are refused (closed at once). */
#define DIRECT_MAX 4096

static void direct_log(const WorkerDirect *d, const char *why) {
        fprintf(stderr, "kactor-worker: closing the direct socket of user %u: %s.\n", (unsigned) d->uid, why);
}

static int no_id(int8_t type, kactor_id id, bool top, void *userdata) {
        (void) type;
        (void) id;
        (void) top;
        (void) userdata;
        return -EBADMSG;
}

int worker_direct_parse(const WorkerDirect *d, uint64_t last_lo, Frame *f, const char *payload, size_t len,
                        DirectCall *ret, const char **ret_why) {
        const char *why = NULL;

        if (len > DIRECT_CALL_MAX)
                why = "a call too large for its record";
        else if (frame_parse(f, payload, len) < 0)
                why = "a malformed frame";
        else if (f->type != MSG_DCALL)
                why = "a frame other than DCALL";
        else if ((f->id & ~PROTO_ID_SEQ_MASK) != d->prefix || (f->id & PROTO_ID_SEQ_MASK) == 0)
                why = "an object id outside the caller's range";
        else if (f->id <= last_lo)
                why = "an object id that is not above the last one of this caller";
        else if (frame_field_str(f, 0, &ret->method, &ret->method_len) < 0 || ret->method_len == 0 ||
                 ret->method_len > 255)
                why = "a malformed method name";
        else if (f->has_body && f->body.data.type != MSGPACK_OBJECT_ARRAY)
                why = "arguments that are not a list";
        else if (f->has_body && codec_foreach_id(&f->body.data, no_id, NULL) != 0)
                why = "arguments that name objects or actors (such calls go relayed)";
        if (why) {
                *ret_why = why;
                return -EBADMSG;
        }
        ret->result = (kactor_id){ d->id_hi, f->id };
        ret->args = f->has_body ? f->body_raw : NULL;
        ret->args_len = f->has_body ? f->body_len : 0;
        return 0;
}

/* The entry of a caller in ctx->direct_marks, made when missing: its index, or -ENOMEM (a caller
 * with an open socket has one: then it is found). */
static ssize_t direct_mark(kactor_ctx *ctx, uint64_t prefix) {
        for (size_t i = 0; i < ctx->n_direct_marks; i++)
                if (ctx->direct_marks[i].prefix == prefix)
                        return (ssize_t) i;
        DirectMark *n = reallocarray(ctx->direct_marks, ctx->n_direct_marks + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        ctx->direct_marks = n;
        n[ctx->n_direct_marks] = (DirectMark){ .prefix = prefix };
        return (ssize_t) ctx->n_direct_marks++;
}

void worker_direct_note_exec(kactor_ctx *ctx, kactor_id result) {
        uint64_t prefix = result.lo & ~PROTO_ID_SEQ_MASK;
        for (size_t i = 0; i < ctx->n_direct_marks; i++)
                if (ctx->direct_marks[i].prefix == prefix) {
                        ctx->direct_marks[i].last_lo = MAX(ctx->direct_marks[i].last_lo, result.lo);
                        return;
                }
}

int worker_direct_open(kactor_ctx *ctx, const Frame *f) {
        uint64_t uid, hi, prefix, min_lo = 0;
        int fd = fd_queue_take(&ctx->client->fds);

        if (fd < 0)
                return fd; /* DIRECT_OPEN without its descriptor: the stream is broken */
        if (frame_field_u64(f, 0, &uid) < 0 || frame_field_u64(f, 1, &hi) < 0 ||
            frame_field_u64(f, 2, &prefix) < 0 || uid > UINT32_MAX || (prefix & PROTO_ID_SEQ_MASK) != 0) {
                (void) close(fd);
                return -EBADMSG;
        }
        if (ctx->n_direct >= DIRECT_MAX) {
                /* Its caller sees the socket close and uses the relayed path. */
                (void) close(fd);
                return 0;
        }
        /* The ids the caller made before (relayed, or direct before a restart of this worker). */
        (void) frame_field_u64(f, 3, &min_lo);
        ssize_t mark = direct_mark(ctx, prefix);
        WorkerDirect *d = mark >= 0 ? calloc(1, sizeof(*d)) : NULL;
        if (!d) {
                (void) close(fd);
                return -ENOMEM;
        }
        ctx->direct_marks[mark].last_lo = MAX(ctx->direct_marks[mark].last_lo, min_lo);
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
                (void) close(fd);
                free(d);
                return 0;
        }
        d->fd = fd;
        d->uid = (uid_t) uid;
        d->id_hi = hi;
        d->prefix = prefix;
        msgpack_packer_init(&d->pk, &d->out, buffer_msgpack_write);
        d->next = ctx->direct;
        ctx->direct = d;
        ctx->n_direct++;
        return 0;
}

static void direct_free(WorkerDirect *d) {
        safe_close(d->fd);
        buffer_free(&d->in);
        buffer_free(&d->out);
        free(d);
}

/* Writes what d has to send, without waiting. */
static void direct_send(WorkerDirect *d) {
        while (buffer_size(&d->out) > 0) {
                ssize_t n = send(d->fd, d->out.data + d->out.start, buffer_size(&d->out), MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN) {
                                /* The caller went: its answers have nowhere to go (the node
                                 * manager has them). */
                                d->out.start = d->out.end = 0;
                                d->broken = true;
                        } else if (d->out.start >= d->out.cap / 2)
                                buffer_compact(&d->out);
                        return;
                }
                buffer_consume(&d->out, (size_t) n);
        }
}

/* Reads what the caller sent, without waiting. */
static void direct_fill(WorkerDirect *d) {
        for (unsigned i = 0; i < 16 && !d->eof; i++) {
                if (buffer_reserve_read(&d->in, DIRECT_READ_CHUNK) < 0) {
                        direct_log(d, "out of memory");
                        d->eof = true;
                        return;
                }
                ssize_t n = recv(d->fd, d->in.data + d->in.end, d->in.cap - d->in.end, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                d->eof = true;
                        return;
                }
                if (n == 0) {
                        /* The caller is gone (or done): what it sent whole still runs. */
                        d->eof = true;
                        return;
                }
                d->in.end += (size_t) n;
                if ((size_t) n < DIRECT_READ_CHUNK)
                        return;
        }
}

/* Appends the record of call x to the node manager's output. */
static int direct_record(kactor_ctx *ctx, const DirectCall *x, uint64_t read_ns) {
        kactor_client *c = ctx->client;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_DIRECT, 0, 3, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(&c->pk, CODEC_EXT_OBJECT, x->result);
        if (r >= 0)
                r = pack_str(&c->pk, x->method, x->method_len);
        if (r >= 0)
                r = msgpack_pack_uint64(&c->pk, read_ns) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = x->args ? buffer_append(&c->out, x->args, x->args_len)
                            : (msgpack_pack_array(&c->pk, 0) < 0 ? -ENOMEM : 0);
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        return frame_end(&c->out, off);
}

/* Answers the caller: the value, or the error; a value that names objects or actors is left to
 * the node manager (DRESULT_FETCH), which holds what it names for whoever gets it. */
static int direct_answer(WorkerDirect *d, uint64_t lo, const WorkerRun *run, const char *error) {
        kactor_value *v = run->result;
        kactor_error code = KACTOR_OK;
        const char *msg = NULL;
        uint32_t flags = 0;

        if (run->r >= 0 && v && kactor_value_is_error(v)) {
                code = kactor_value_error_code(v);
                msg = kactor_value_error_message(v);
        } else if (run->r < 0) {
                code = run->code != KACTOR_OK ? run->code : KACTOR_ERROR_TASK_FAILED;
                msg = error ?: "failed";
        } else if (v && codec_value_names_ids(v))
                flags |= DRESULT_FETCH;

        size_t off;
        int r = frame_begin_request(&d->out, &d->pk, MSG_DRESULT, lo, 3, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_uint32(&d->pk, code) < 0 || pack_cstr(&d->pk, msg) < 0 ||
                        msgpack_pack_uint32(&d->pk, flags) < 0
                ? -ENOMEM
                : 0;
        if (r >= 0 && code == KACTOR_OK && !(flags & DRESULT_FETCH))
                r = v ? codec_pack_value(&d->pk, v) : (msgpack_pack_nil(&d->pk) < 0 ? -ENOMEM : 0);
        if (r < 0) {
                d->out.end = off;
                return r;
        }
        r = frame_end(&d->out, off);
        if (r == -EMSGSIZE) {
                /* Too large for a frame: the node manager says so to whoever asks. */
                off = 0;
                r = frame_begin_request(&d->out, &d->pk, MSG_DRESULT, lo, 3, &off);
                if (r >= 0)
                        r = msgpack_pack_uint32(&d->pk, KACTOR_OK) < 0 || msgpack_pack_nil(&d->pk) < 0 ||
                                        msgpack_pack_uint32(&d->pk, DRESULT_FETCH) < 0
                                ? -ENOMEM
                                : frame_end(&d->out, off);
        }
        return r;
}

/* Runs what d has read, up to a batch: the records first (one write), then each call. 1 when some
 * ran, 0 when none did, a negative errno when the node manager could not be written to (the calls
 * did not run: the caller sends them again once this worker re-attached and closed its socket). */
static int direct_run(kactor_ctx *ctx, WorkerDirect *d) {
        DirectCall calls[DIRECT_BATCH_MAX];
        kactor_value *args[DIRECT_BATCH_MAX]; /* each call's arguments, decoded while its frame is parsed */
        int args_r[DIRECT_BATCH_MAX];
        size_t ends[DIRECT_BATCH_MAX];
        size_t limit = MIN(MAX((size_t) d->batch, DIRECT_BATCH_MIN), DIRECT_BATCH_MAX);
        Frame *f = &ctx->direct_frame;
        size_t n = 0, pos = d->in.start;
        const char *why = NULL;
        int r = 0;

        /* The caller's mark: it has one while a socket of it is open. */
        ssize_t mi = direct_mark(ctx, d->prefix);
        if (mi < 0)
                return (int) mi;
        DirectMark *mk = &ctx->direct_marks[mi];

        uint64_t now = now_nsec(CLOCK_MONOTONIC);
        while (n < limit) {
                Buffer view = d->in;
                view.start = pos;
                const char *payload;
                size_t len;
                int k = frame_peek(&view, &payload, &len);
                if (k == 0)
                        break;
                if (k < 0) {
                        why = k == -EMSGSIZE ? "an oversized frame" : "an empty frame";
                        break;
                }
                k = worker_direct_parse(d, mk->last_lo, f, payload, len, &calls[n], &why);
                if (k < 0)
                        break;
                /* From the parsed frame, which the next one's parse clears: no second unpack. */
                args[n] = NULL;
                if (f->has_body)
                        args_r[n] = codec_value_from_object(&f->body.data, &args[n]);
                else
                        args_r[n] = (args[n] = kactor_value_new_list()) ? 0 : -ENOMEM;
                mk->last_lo = f->id;
                KACTOR_PROBE(direct_call_received, kactor_trace_id_hash(ctx->self.id.hi, ctx->self.id.lo),
                             kactor_trace_id_hash(calls[n].result.hi, calls[n].result.lo),
                             kactor_trace_method_id(calls[n].method, calls[n].method_len));
                r = direct_record(ctx, &calls[n], now);
                if (r == -EMSGSIZE) {
                        /* Its caller's doing (worker_direct_parse() keeps such calls out): that
                         * socket ends, the calls before it run. */
                        why = "a call too large for its record";
                        r = 0;
                }
                if (r < 0 || why) {
                        kactor_value_free(args[n]);
                        break;
                }
                pos += PROTO_HEADER_SIZE + len;
                ends[n++] = pos;
        }
        if (why) {
                /* Nothing after it is read: the calls before it run, and it is said once. */
                direct_log(d, why);
                d->eof = true;
                d->in.end = pos;
        }
        size_t i = 0;
        if (r < 0 || n == 0)
                goto finish;

        /* The records reach the node manager's socket before any of these calls runs: a worker that
         * dies in one of them leaves them behind, to be run again after its restart. */
        r = kactor_flush(ctx->client);
        if (r < 0)
                goto finish;
        ctx->batched = 0;

        for (; i < n; i++) {
                _cleanup_(kactor_value_freep) kactor_value *a = TAKE_PTR(args[i]);
                WorkerRun run = {};
                const DirectCall *x = &calls[i];

                if (args_r[i] >= 0)
                        r = worker_run_method(ctx, x->method, x->method_len, a, 0, &run);
                else {
                        run.r = args_r[i];
                        run.code = KACTOR_ERROR_INVALID_ARGS;
                        r = 0;
                }
                if (r < 0)
                        break;
                _cleanup_free_ char *error = NULL;
                if (run.r < 0 && (ctx->error ? !(error = strdup(ctx->error)) :
                                               asprintf(&error, "failed: %s", strerror(-run.r)) < 0))
                        error = NULL;
                r = worker_send_result(ctx, MSG_RESULT, 0, run.r, run.code, run.result, run.flags | RESULT_DIRECT);
                ctx->exec_start_ns = ctx->exec_end_ns = 0;
                if (r >= 0 && ctx->may_reattach)
                        r = worker_retain(ctx, x->result, x->method, x->method_len, x->args, x->args_len);
                if (r >= 0 && !d->broken)
                        r = direct_answer(d, x->result.lo, &run, error);
                kactor_value_free(run.result);
                if (r < 0)
                        break;
                /* Consumed once answered: what is left is the next batch's. */
                d->in.start = ends[i];
        }
        if (d->in.start >= d->in.end)
                d->in.start = d->in.end = 0;
finish:
        /* The calls that did not run (the node manager could not be written to). */
        for (; i < n; i++)
                kactor_value_free(args[i]);
        if (r < 0 || n == 0)
                return r;
        /* The results reach the node manager's socket before their callers have them: an answer a
         * caller got is never lost with this worker, and whoever else asks finds the same value. */
        r = kactor_flush(ctx->client);
        if (r < 0)
                return r;
        ctx->batched = 0;
        if (buffer_size(&d->out) >= DIRECT_READ_CHUNK)
                direct_send(d);
        /* The next batch of this caller's: larger after a full one of quick calls, smaller after a
         * slow one. */
        uint64_t took = now_nsec(CLOCK_MONOTONIC) - now;
        if (n == limit && took < DIRECT_BATCH_QUICK_NSEC)
                d->batch = (unsigned) MIN(2 * limit, DIRECT_BATCH_MAX);
        else if (took > DIRECT_BATCH_SLOW_NSEC)
                d->batch = (unsigned) MAX(limit / 2, DIRECT_BATCH_MIN);
        return 1;
}

/* A socket of caller prefix closed: its mark goes with the last one (the node manager has read
 * every record of it before it hands that caller another: it reads the worker's socket first). */
static void direct_unmark(kactor_ctx *ctx, uint64_t prefix) {
        size_t open = 0;
        for (WorkerDirect *d = ctx->direct; d; d = d->next)
                open += d->prefix == prefix;
        if (open > 0)
                return;
        for (size_t i = 0; i < ctx->n_direct_marks; i++)
                if (ctx->direct_marks[i].prefix == prefix) {
                        ctx->direct_marks[i] = ctx->direct_marks[--ctx->n_direct_marks];
                        return;
                }
}

/* Frees the sockets that are done, telling the node manager (each held the actor for its caller). */
static int direct_reap(kactor_ctx *ctx) {
        kactor_client *c = ctx->client;
        for (WorkerDirect **p = &ctx->direct; *p;) {
                WorkerDirect *d = *p;
                if (!d->broken && (!d->eof || buffer_size(&d->out) > 0)) {
                        p = &d->next;
                        continue;
                }
                size_t off;
                int r = frame_begin_request(&c->out, &c->pk, MSG_DIRECT_CLOSED, 0, 1, &off);
                if (r >= 0)
                        r = msgpack_pack_uint64(&c->pk, d->prefix) < 0 ? -ENOMEM : 0;
                if (r < 0) {
                        c->out.end = off;
                        return r;
                }
                r = frame_end(&c->out, off);
                if (r < 0)
                        return r;
                *p = d->next;
                ctx->n_direct--;
                direct_unmark(ctx, d->prefix);
                direct_free(d);
        }
        return 0;
}

int worker_direct_wait(kactor_ctx *ctx) {
        static struct pollfd *pfd = NULL;
        static size_t n_pfd = 0;
        kactor_client *c = ctx->client;
        int r;

        for (;;) {
                /* Calls read before and not run yet (a batch is at most DIRECT_BATCH_MAX) first. */
                bool ran = false;
                for (WorkerDirect *d = ctx->direct; d; d = d->next) {
                        const char *payload;
                        size_t len;
                        if (frame_peek(&d->in, &payload, &len) == 0)
                                continue;
                        r = direct_run(ctx, d);
                        if (r < 0)
                                return r;
                        ran = ran || r > 0;
                        if (buffer_size(&d->out) > 0)
                                direct_send(d);
                }
                if (ran)
                        return 0;
                r = direct_reap(ctx);
                if (r < 0)
                        return r;

                /* What the node manager is owed goes before waiting (a batch's results went already,
                 * before their answers). */
                if (buffer_size(&c->out) > 0) {
                        r = kactor_flush(c);
                        if (r < 0)
                                return r;
                }
                ctx->batched = 0;
                if (n_pfd < ctx->n_direct + 1) {
                        struct pollfd *p = realloc(pfd, (ctx->n_direct + 1) * sizeof(*p));
                        if (!p)
                                return -ENOMEM;
                        pfd = p;
                        n_pfd = ctx->n_direct + 1;
                }
                pfd[0] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
                size_t i = 1;
                for (WorkerDirect *d = ctx->direct; d; d = d->next, i++) {
                        short ev = 0;
                        if (!d->eof && !d->broken && buffer_size(&d->out) < DIRECT_OUT_MAX)
                                ev |= POLLIN;
                        if (buffer_size(&d->out) > 0)
                                ev |= POLLOUT;
                        pfd[i] = (struct pollfd){ .fd = ev ? d->fd : -1, .events = ev };
                }
                int k = poll(pfd, i, -1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                i = 1;
                for (WorkerDirect *d = ctx->direct; d; d = d->next, i++) {
                        if (pfd[i].revents & POLLOUT)
                                direct_send(d);
                        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                                direct_fill(d);
                        r = direct_run(ctx, d);
                        if (r < 0)
                                return r;
                        ran = ran || r > 0;
                        if (buffer_size(&d->out) > 0)
                                direct_send(d);
                }
                if (pfd[0].revents)
                        return 1;
                if (ran)
                        return 0;
        }
}

void worker_direct_close(kactor_ctx *ctx) {
        for (WorkerDirect *d = ctx->direct; d; d = d->next) {
                d->in.start = d->in.end = 0;
                d->eof = true;
        }
}

void worker_direct_close_all(kactor_ctx *ctx) {
        while (ctx->direct) {
                WorkerDirect *d = ctx->direct;
                ctx->direct = d->next;
                direct_send(d);
                direct_free(d);
        }
        ctx->n_direct = 0;
        frame_done(&ctx->direct_frame);
}
