/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libFuzzer target for the worker's side of direct calls (lib/worker/worker-direct.c,
 * docs/protocol.md "Direct calls"): what a caller sends on a direct socket, read by a worker whose
 * actor is a small class of the target's own.
 *
 * Each input gets a worker context (WORKER_ACTOR, that class), a "node manager" connection made
 * with client_new_fd() on a socketpair (a thread reads the node manager's end, as the node manager
 * would, so that the worker's blocking writes to it go through), and one or two direct sockets
 * registered with worker_direct_open() from real DIRECT_OPEN frames, their descriptors in the
 * connection's descriptor queue as SCM_RIGHTS would have left them. The callers' bytes (the input,
 * fuzz-direct.h) are written whole, their sockets shut down for writing (or closed), and
 * worker_direct_wait() is called until the worker has closed every direct socket, the callers
 * reading their answers in between. The node manager's end always has a byte unread, so that
 * worker_direct_wait() never blocks waiting for the node manager: it returns after each round.
 *
 * Checks besides crashes and sanitizer reports:
 *   - every frame written to the node manager parses, is a DIRECT, a RESULT with RESULT_DIRECT or a
 *     DIRECT_CLOSED, and is one the node manager accepts (native.c: an object id of a caller it
 *     handed over, a method, the time, a list of arguments that names nothing; a RESULT with a
 *     value unless it failed); a caller's ids only grow, above those it made before;
 *   - each RESULT follows its record (records of a batch may come first), there are as many as
 *     records, and each socket handed over is said closed once;
 *   - a method runs only once its record was written to the node manager's socket, runs the call
 *     of that record (its method and arguments), and a recorded call with a method of the class and
 *     arguments that decode runs;
 *   - every frame written to a caller parses and is a DRESULT for one of its calls, in order, once,
 *     with the code, message and value of the RESULT the node manager had first; every call is
 *     answered on its socket but those of a caller that went;
 *   - the calls recorded are exactly those a model of the rules reads from the caller's bytes (the
 *     valid DCALLs before the first frame that is not one), a prefix of them when the caller went or
 *     DIRECT_CLOSE came;
 *   - worker_direct_parse() agrees with that model on every frame of the input, and on the whole
 *     input as one payload.
 *
 * Built by tests/fuzz/run.sh with clang -fsanitize=fuzzer,address,undefined, with the worker's
 * worker-direct.c and worker-runtime.c compiled in. FUZZ_VERBOSE=1 keeps the worker's messages.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client-internal.h"
#include "codec.h"
#include "fuzz-direct.h"
#include "macro.h"
#include "module-ctx.h"
#include "proto.h"
#include "worker-direct.h"
#include "worker-runtime.h"

/* Where checks report: the stderr the target started with (the worker's own messages go to
 * /dev/null unless FUZZ_VERBOSE=1). */
static FILE *report;

#define CHECK(cond, ...)                                                                                    \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(report, "fuzz-direct: %s:%d: check failed: %s: ", __FILE__, __LINE__,       \
                                #cond);                                                                     \
                        fprintf(report, __VA_ARGS__);                                                       \
                        fputc('\n', report);                                                                \
                        fflush(report);                                                                     \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define GROW(array, n, cap)                                                                                 \
        do {                                                                                                \
                if ((n) == (cap)) {                                                                         \
                        (cap) = (cap) > 0 ? 2 * (cap) : 16;                                                 \
                        (array) = reallocarray((array), (cap), sizeof(*(array)));                           \
                        CHECK((array), "out of memory");                                                    \
                }                                                                                           \
        } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SOCKETS_MAX 2
/* worker_direct_wait() calls per input before the sockets must be closed (an input needs a few
 * dozen: a batch is at most 64 calls, a caller's bytes at most 64 KiB). */
#define ROUNDS_MAX 20000
/* FUZZ_DIRECT_SLOW_READER: the callers start reading after this many rounds. */
#define SLOW_ROUNDS 8

/* --- the actor ------------------------------------------------------------------------------------ */

/* A method run: which call (the RESULTs sent before it), how many bytes of the node manager's
 * stream had been written then, and what it ran. */
typedef struct Run {
        uint64_t index;
        uint64_t written;
        const char *method;
        kactor_value *args;
} Run;

typedef struct ActorState {
        uint64_t n_calls;
        unsigned n_big;
        Run *runs;
        size_t n_runs, cap_runs;
} ActorState;

static void run_note(kactor_ctx *ctx, const char *method, const kactor_value *args) {
        ActorState *st = ctx->state;

        GROW(st->runs, st->n_runs, st->cap_runs);
        st->runs[st->n_runs++] = (Run){
                .index = ctx->n_results,
                .written = ctx->client->out_written,
                .method = method,
                .args = kactor_value_copy(args),
        };
        CHECK(st->runs[st->n_runs - 1].args, "out of memory");
        st->n_calls++;
}

static int method_echo(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        run_note(ctx, "echo", args);
        *ret = kactor_value_copy(args);
        return *ret ? 0 : -ENOMEM;
}

static int method_first(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        run_note(ctx, "first", args);
        const kactor_value *v = kactor_value_list_get(args, 0);
        if (!v)
                return kactor_fail(ctx, "no argument");
        /* Perhaps an error value: the call fails with its code and message. */
        *ret = kactor_value_copy(v);
        return *ret ? 0 : -ENOMEM;
}

static int method_fail(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        run_note(ctx, "fail", args);
        return kactor_fail(ctx, "failed on purpose, with %zu arguments", kactor_value_list_size(args));
}

static int method_neg(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        run_note(ctx, "neg", args);
        return -EINVAL;
}

static int method_big(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        ActorState *st = state;

        run_note(ctx, "big", args);
        if (++st->n_big > FUZZ_DIRECT_BIG_MAX)
                return kactor_fail(ctx, "enough big results");
        char *s = malloc(FUZZ_DIRECT_BIG);
        if (!s)
                return -ENOMEM;
        memset(s, 'x', FUZZ_DIRECT_BIG);
        *ret = kactor_value_new_stringn(s, FUZZ_DIRECT_BIG);
        free(s);
        return *ret ? 0 : -ENOMEM;
}

static int method_ids(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        run_note(ctx, "ids", args);
        kactor_value *l = kactor_value_new_list();
        if (!l || kactor_value_list_append(l, kactor_value_new_actor(ctx->self.id)) < 0) {
                kactor_value_free(l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}

static int method_nil(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        run_note(ctx, "nil", args);
        *ret = NULL;
        return 0;
}

static int method_get(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        ActorState *st = state;
        uint64_t n = st->n_calls;

        run_note(ctx, "get", args);
        *ret = kactor_value_new_int((int64_t) n);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method fuzz_methods[] = {
        { .name = "echo", .fn = method_echo },
        { .name = "first", .fn = method_first },
        { .name = "fail", .fn = method_fail },
        { .name = "neg", .fn = method_neg },
        { .name = "big", .fn = method_big },
        { .name = "ids", .fn = method_ids },
        { .name = "nil", .fn = method_nil },
        { .name = "get", .fn = method_get, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class fuzz_class = {
        .name = "FuzzDirect",
        .methods = fuzz_methods,
};

static const kactor_method *class_method(const char *name, size_t len) {
        for (const kactor_method *m = fuzz_methods; m->name; m++)
                if (strlen(m->name) == len && memcmp(m->name, name, len) == 0)
                        return m;
        return NULL;
}

/* --- the rules, as a model -------------------------------------------------------------------------- */

static bool object_names_ids(const msgpack_object *o) {
        switch (o->type) {
        case MSGPACK_OBJECT_ARRAY:
                for (uint32_t i = 0; i < o->via.array.size; i++)
                        if (object_names_ids(&o->via.array.ptr[i]))
                                return true;
                return false;
        case MSGPACK_OBJECT_MAP:
                for (uint32_t i = 0; i < o->via.map.size; i++)
                        if (object_names_ids(&o->via.map.ptr[i].key) ||
                            object_names_ids(&o->via.map.ptr[i].val))
                                return true;
                return false;
        case MSGPACK_OBJECT_EXT:
                return o->via.ext.type == CODEC_EXT_OBJECT || o->via.ext.type == CODEC_EXT_ACTOR;
        default:
                return false;
        }
}

/* Whether a worker runs a frame of len bytes (parsed into f: r is what frame_parse() said) from a
 * caller with prefix whose highest id known is last; the method, when it does. */
static bool model_accepts(int r, size_t len, const Frame *f, uint64_t prefix, uint64_t last,
                          const char **ret_method, size_t *ret_method_len) {
        /* Its record must fit a frame too. */
        if (len > DIRECT_CALL_MAX || r < 0 || f->type != MSG_DCALL)
                return false;
        if ((f->id & ~PROTO_ID_SEQ_MASK) != prefix || (f->id & PROTO_ID_SEQ_MASK) == 0 || f->id <= last)
                return false;
        const msgpack_object *m = frame_field(f, 0);
        if (!m || m->type != MSGPACK_OBJECT_STR || m->via.str.size == 0 || m->via.str.size > 255)
                return false;
        if (f->has_body && (f->body.data.type != MSGPACK_OBJECT_ARRAY || object_names_ids(&f->body.data)))
                return false;
        *ret_method = m->via.str.ptr;
        *ret_method_len = m->via.str.size;
        return true;
}

/* A call the model expects a worker to record: pointers into the input. */
typedef struct Expected {
        uint64_t lo;
        const char *method;
        size_t method_len;
        const char *args; /* NULL: none, recorded as an empty list */
        size_t args_len;
} Expected;

static const char empty_list[] = { (char) 0x90 };

/* Compares worker_direct_parse() with model_accepts() on one payload. */
static void check_parse(const WorkerDirect *d, uint64_t last, const char *payload, size_t len, bool model,
                        const char *method, size_t method_len, const Frame *mf) {
        Frame f;
        DirectCall call = {};
        const char *why = NULL;

        frame_init(&f);
        int r = worker_direct_parse(d, last, &f, payload, len, &call, &why);
        CHECK((r == 0) == model, "worker_direct_parse() says %d (%s), the model %s", r, why ?: "-",
              model ? "accepts" : "refuses");
        if (r < 0)
                CHECK(r == -EBADMSG && why, "worker_direct_parse() refused with %d, why %s", r,
                      why ?: "NULL");
        else {
                /* Whatever the model says: an id in the caller's range, above the last one. */
                CHECK((mf->id & ~PROTO_ID_SEQ_MASK) == d->prefix && (mf->id & PROTO_ID_SEQ_MASK) != 0,
                      "worker_direct_parse() took id %" PRIx64 " from a caller with prefix %" PRIx64, mf->id,
                      d->prefix);
                CHECK(mf->id > last, "worker_direct_parse() took id %" PRIx64 ", not above %" PRIx64, mf->id,
                      last);
                CHECK(call.result.hi == d->id_hi && call.result.lo == mf->id, "the call's result id");
                CHECK(call.method_len == method_len && memcmp(call.method, method, method_len) == 0,
                      "the call's method");
                if (mf->has_body)
                        CHECK(call.args == mf->body_raw && call.args_len == mf->body_len,
                              "the call's arguments");
                else
                        CHECK(!call.args && call.args_len == 0, "arguments of a call without any");
        }
        frame_done(&f);
}

/* The calls a worker reads from a caller's bytes: the valid DCALLs up to the first frame that is
 * not one, or the end (a frame cut short is not read). Checks worker_direct_parse() on each frame. */
static size_t model_calls(const WorkerDirect *d, const uint8_t *data, size_t size, uint64_t last,
                          Expected **ret) {
        Buffer b = { .data = (char *) data, .start = 0, .end = size, .cap = size };
        Expected *calls = NULL;
        size_t n = 0, cap = 0;
        Frame f;

        frame_init(&f);
        for (;;) {
                const char *payload, *method = NULL;
                size_t len, method_len = 0;
                if (frame_peek(&b, &payload, &len) <= 0)
                        break;
                int r = frame_parse(&f, payload, len);
                bool ok = model_accepts(r, len, &f, d->prefix, last, &method, &method_len);
                check_parse(d, last, payload, len, ok, method, method_len, &f);
                if (!ok)
                        break;
                GROW(calls, n, cap);
                calls[n++] = (Expected){
                        .lo = f.id,
                        .method = method,
                        .method_len = method_len,
                        .args = f.has_body ? f.body_raw : NULL,
                        .args_len = f.has_body ? f.body_len : 0,
                };
                last = f.id;
                b.start += PROTO_HEADER_SIZE + len;
        }
        frame_done(&f);
        *ret = calls;
        return n;
}

/* --- the node manager's end ------------------------------------------------------------------------- */

typedef struct Drain {
        int fd;
        Buffer b;
        pthread_t thread;
} Drain;

static void *drain_run(void *userdata) {
        Drain *d = userdata;

        for (;;) {
                CHECK(buffer_reserve(&d->b, 64 * 1024) >= 0, "out of memory");
                ssize_t n = read(d->fd, d->b.data + d->b.end, d->b.cap - d->b.end);
                if (n < 0 && errno == EINTR)
                        continue;
                /* ECONNRESET: the worker's end closed with our byte unread. */
                if (n <= 0)
                        return NULL;
                d->b.end += (size_t) n;
        }
}

/* A DIRECT record as the node manager read it; pointers into its stream. */
typedef struct Record {
        uint64_t lo;
        size_t end; /* offset in the stream just past it */
        const char *method;
        size_t method_len;
        const char *args;
        size_t args_len;
        bool answered;
} Record;

typedef struct Result {
        size_t end;
        uint64_t code, flags;
        const char *msg;
        size_t msg_len;
        const char *body;
        size_t body_len;
        bool has_body, names_ids;
} Result;

/* --- the callers ------------------------------------------------------------------------------------ */

typedef struct Answer {
        uint64_t lo, code, flags;
        size_t msg_off, msg_len; /* into the caller's stream; msg_len SIZE_MAX: nil */
        size_t body_off, body_len;
        bool has_body;
        uint64_t written; /* bytes the worker had written to the node manager when the caller read it */
} Answer;

typedef struct Caller {
        int fd; /* ours; -1 once closed */
        uint64_t prefix;
        const uint8_t *sent;
        size_t sent_len, sent_off;
        bool shut;    /* all sent (or the worker closed the socket): the stream ended */
        bool gone;    /* closed its end once it had written: nothing can be answered */
        bool may_cut; /* its socket may close in the middle of an answer */
        bool eof;
        Buffer in;
        size_t parsed;
        Answer *answers;
        size_t n_answers, cap_answers;
} Caller;

/* Sends what the caller has not sent yet, without waiting; at the end, shuts its socket down for
 * writing, or closes it when the caller goes. */
static void caller_write(Caller *c) {
        while (c->fd >= 0 && c->sent_off < c->sent_len) {
                ssize_t n = send(c->fd, c->sent + c->sent_off, c->sent_len - c->sent_off,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        /* EPIPE: the worker closed the socket already. */
                        CHECK(errno == EAGAIN || errno == EPIPE, "writing a caller's bytes: %m");
                        if (errno == EAGAIN)
                                return;
                        break;
                }
                c->sent_off += (size_t) n;
        }
        if (c->fd < 0 || c->shut)
                return;
        c->shut = true;
        if (c->gone)
                c->fd = safe_close(c->fd);
        else
                CHECK(shutdown(c->fd, SHUT_WR) >= 0, "shutdown: %m");
}

/* Reads what the worker answered so far (without waiting), and takes the whole frames. */
static void caller_read(Caller *c, uint64_t written) {
        if (c->fd < 0 || c->eof)
                return;
        for (;;) {
                CHECK(buffer_reserve(&c->in, 64 * 1024) >= 0, "out of memory");
                ssize_t n = recv(c->fd, c->in.data + c->in.end, c->in.cap - c->in.end, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        CHECK(errno == EAGAIN, "reading a direct socket: %m");
                        break;
                }
                if (n == 0) {
                        c->eof = true;
                        break;
                }
                c->in.end += (size_t) n;
        }

        Frame f;
        frame_init(&f);
        for (;;) {
                Buffer view = c->in;
                const char *payload, *msg;
                size_t len, msg_len;
                uint64_t code, flags;

                view.start = c->parsed;
                int k = frame_peek(&view, &payload, &len);
                CHECK(k >= 0, "the worker wrote a bad frame header to a caller: %d", k);
                if (k == 0)
                        break;
                CHECK(frame_parse(&f, payload, len) == 0, "the worker wrote a malformed frame to a caller");
                CHECK(f.type == MSG_DRESULT, "the worker wrote a frame of type %u to a caller", f.type);
                CHECK(frame_field_u64(&f, 0, &code) == 0 && frame_field_u64(&f, 2, &flags) == 0,
                      "a DRESULT without its code or flags");
                if (frame_field_str(&f, 1, &msg, &msg_len) < 0) {
                        const msgpack_object *o = frame_field(&f, 1);
                        CHECK(o && o->type == MSGPACK_OBJECT_NIL,
                              "a DRESULT's message is neither a string nor nil");
                        msg = NULL;
                        msg_len = SIZE_MAX;
                }
                CHECK(code != KACTOR_OK || (flags & DRESULT_FETCH) || f.has_body,
                      "a DRESULT without its value");
                CHECK(code == KACTOR_OK || !f.has_body, "a failed DRESULT with a value");
                GROW(c->answers, c->n_answers, c->cap_answers);
                c->answers[c->n_answers++] = (Answer){
                        .lo = f.id,
                        .code = code,
                        .flags = flags,
                        .msg_off = msg ? (size_t) (msg - c->in.data) : 0,
                        .msg_len = msg_len,
                        .body_off = f.has_body ? (size_t) (f.body_raw - c->in.data) : 0,
                        .body_len = f.has_body ? f.body_len : 0,
                        .has_body = f.has_body,
                        .written = written,
                };
                c->parsed += PROTO_HEADER_SIZE + len;
        }
        frame_done(&f);
        /* Only a worker that closes its sockets without waiting (after a re-attach) leaves its
         * last answer cut short; the caller takes what came whole and sends the rest again. */
        if (c->eof && !c->may_cut)
                CHECK(c->parsed == c->in.end, "a frame cut short on a caller's socket");
}

/* --- one input ------------------------------------------------------------------------------------ */

typedef struct Input {
        uint8_t setup;
        kactor_ctx ctx;
        ActorState state;
        Drain drain;
        Caller callers[SOCKETS_MAX];
        size_t n_callers;
        uint64_t start_last[SOCKETS_MAX]; /* the highest id of each caller known before it sends */

        Record *records;
        size_t n_records, cap_records;
        Result *results;
        size_t n_results, cap_results;
        size_t n_closed[SOCKETS_MAX];
} Input;

static bool verbose;

/* Hands the worker a direct socket as DIRECT_OPEN does: the frame, its descriptor in the queue. */
static int direct_open(kactor_ctx *ctx, int fd, uint64_t uid, uint64_t prefix, uint64_t min_lo) {
        Buffer b = {};
        msgpack_packer pk;
        const char *payload;
        size_t off, len;
        Frame f;

        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        CHECK(frame_begin_request(&b, &pk, MSG_DIRECT_OPEN, 0, 4, &off) >= 0, "out of memory");
        CHECK(msgpack_pack_uint64(&pk, uid) >= 0 && msgpack_pack_uint64(&pk, FUZZ_DIRECT_HI) >= 0 &&
                      msgpack_pack_uint64(&pk, prefix) >= 0 && msgpack_pack_uint64(&pk, min_lo) >= 0,
              "out of memory");
        CHECK(frame_end(&b, off) >= 0, "a DIRECT_OPEN frame");
        CHECK(frame_peek(&b, &payload, &len) > 0, "a DIRECT_OPEN frame");
        frame_init(&f);
        CHECK(frame_parse(&f, payload, len) == 0, "a DIRECT_OPEN frame");
        if (fd >= 0) {
                FdQueue *q = &ctx->client->fds;
                CHECK(q->n < FD_QUEUE_MAX, "descriptor queue full");
                q->fds[q->n++] = fd;
        }
        int r = worker_direct_open(ctx, &f);
        frame_done(&f);
        buffer_free(&b);
        return r;
}

static int caller_index(const Input *in, uint64_t prefix) {
        for (size_t i = 0; i < in->n_callers; i++)
                if (in->callers[i].prefix == prefix)
                        return (int) i;
        return -1;
}

static bool same_caller(const Input *in) {
        return in->n_callers == 2 && in->callers[0].prefix == in->callers[1].prefix;
}

/* What the worker wrote to the node manager, frame by frame. */
static void check_manager_stream(Input *in) {
        const Buffer *b = &in->drain.b;
        uint64_t last[SOCKETS_MAX];
        Frame f;

        for (size_t i = 0; i < in->n_callers; i++)
                last[i] = in->start_last[i];
        frame_init(&f);
        for (size_t pos = 0;;) {
                Buffer view = *b;
                const char *payload;
                size_t len;

                view.start = pos;
                int k = frame_peek(&view, &payload, &len);
                CHECK(k >= 0, "the worker wrote a bad frame header to the node manager: %d", k);
                if (k == 0) {
                        CHECK(pos == b->end, "a frame cut short to the node manager (%zu bytes left)",
                              b->end - pos);
                        break;
                }
                pos += PROTO_HEADER_SIZE + len;
                CHECK(frame_parse(&f, payload, len) == 0,
                      "the worker wrote a malformed frame to the node manager");

                switch (f.type) {
                case MSG_DIRECT: {
                        kactor_id id;
                        const char *method;
                        size_t method_len;
                        uint64_t read_ns;
                        CHECK(f.id == 0, "a DIRECT with id %" PRIu64, f.id);
                        CHECK(frame_field_id(&f, 0, CODEC_EXT_OBJECT, &id) == 0 &&
                                      frame_field_str(&f, 1, &method, &method_len) == 0 &&
                                      frame_field_u64(&f, 2, &read_ns) == 0,
                              "a malformed DIRECT");
                        CHECK(!f.has_body ||
                                      (f.body.data.type == MSGPACK_OBJECT_ARRAY &&
                                       !object_names_ids(&f.body.data)),
                              "a DIRECT whose arguments are not a list or name ids");
                        CHECK(id.hi == FUZZ_DIRECT_HI && (id.lo & PROTO_ID_SEQ_MASK) != 0,
                              "a DIRECT for an object of no caller");
                        int c = caller_index(in, id.lo & ~PROTO_ID_SEQ_MASK);
                        CHECK(c >= 0, "a DIRECT for an object of no caller");
                        CHECK(id.lo > last[c],
                              "a DIRECT for id %" PRIx64 ", not above %" PRIx64 " (an id run twice?)", id.lo,
                              last[c]);
                        last[c] = id.lo;
                        /* Once every socket of that caller is closed, nothing of it is read. */
                        size_t opened = same_caller(in) ? 2 : 1;
                        CHECK(in->n_closed[c] < opened, "a DIRECT after its caller's sockets closed");
                        GROW(in->records, in->n_records, in->cap_records);
                        in->records[in->n_records++] = (Record){
                                .lo = id.lo,
                                .end = pos,
                                .method = method,
                                .method_len = method_len,
                                .args = f.has_body ? f.body_raw : empty_list,
                                .args_len = f.has_body ? f.body_len : sizeof(empty_list),
                        };
                        break;
                }
                case MSG_RESULT: {
                        Result r = { .end = pos };
                        CHECK(f.id == 0, "a direct RESULT with seq %" PRIu64, f.id);
                        CHECK(frame_field_u64(&f, 0, &r.code) == 0 && frame_field_u64(&f, 2, &r.flags) == 0,
                              "a RESULT without its code or flags");
                        CHECK(r.flags & RESULT_DIRECT,
                              "a RESULT without RESULT_DIRECT (no relayed call ran)");
                        CHECK(r.code != KACTOR_OK || f.has_body,
                              "a RESULT without a value (the node manager closes the worker's connection)");
                        if (frame_field_str(&f, 1, &r.msg, &r.msg_len) < 0)
                                r.msg = NULL;
                        r.has_body = f.has_body;
                        r.body = f.body_raw;
                        r.body_len = f.body_len;
                        r.names_ids = f.has_body && object_names_ids(&f.body.data);
                        CHECK(in->n_results < in->n_records, "a direct RESULT before its record");
                        GROW(in->results, in->n_results, in->cap_results);
                        in->results[in->n_results++] = r;
                        break;
                }
                case MSG_DIRECT_CLOSED: {
                        uint64_t prefix;
                        CHECK(frame_field_u64(&f, 0, &prefix) == 0, "a malformed DIRECT_CLOSED");
                        int c = caller_index(in, prefix);
                        CHECK(c >= 0, "DIRECT_CLOSED for no caller");
                        in->n_closed[c]++;
                        break;
                }
                default:
                        CHECK(false, "the worker wrote a frame of type %u to the node manager", f.type);
                }
        }
        frame_done(&f);

        CHECK(in->n_results == in->n_records, "%zu records, %zu direct RESULTs", in->n_records,
              in->n_results);
        for (size_t i = 0; i < in->n_callers; i++) {
                size_t opened = same_caller(in) ? 2 : 1;
                if (same_caller(in) && i == 1)
                        break;
                /* After a re-attach the new node manager knows none of them: none is said closed. */
                if (in->setup & FUZZ_DIRECT_REATTACH)
                        CHECK(in->n_closed[i] <= opened, "caller %zu: %zu sockets, %zu DIRECT_CLOSED", i,
                              opened, in->n_closed[i]);
                else
                        CHECK(in->n_closed[i] == opened, "caller %zu: %zu sockets, %zu DIRECT_CLOSED", i,
                              opened, in->n_closed[i]);
        }
}

/* The methods that ran, against the records. */
static void check_runs(Input *in) {
        const ActorState *st = &in->state;
        size_t r = 0;

        for (size_t i = 0; i < in->n_records; i++) {
                const Record *rec = &in->records[i];
                const Result *res = &in->results[i];
                const kactor_method *m = class_method(rec->method, rec->method_len);
                _cleanup_(kactor_value_freep) kactor_value *args = NULL;
                bool decodes = codec_decode(rec->args, rec->args_len, &args) == 0;

                if (r < st->n_runs && st->runs[r].index == i) {
                        const Run *run = &st->runs[r++];
                        CHECK(m && streq(m->name, run->method), "call %zu ran %s, its record says %.*s", i,
                              run->method, (int) rec->method_len, rec->method);
                        CHECK(run->written >= rec->end,
                              "call %zu ran with %" PRIu64 " bytes written to the node manager, its record "
                              "ends at %zu",
                              i, run->written, rec->end);
                        CHECK(decodes && kactor_value_equal(args, run->args),
                              "call %zu ran with other arguments than its record's", i);
                        CHECK(!!(res->flags & RESULT_READ_ONLY) == !!(m->flags & KACTOR_METHOD_READ_ONLY),
                              "call %zu: RESULT_READ_ONLY is %s", i,
                              res->flags & RESULT_READ_ONLY ? "set" : "unset");
                        continue;
                }
                /* Not run: no such method, or arguments that do not decode. */
                CHECK(!m || !decodes, "call %zu (%s) was recorded and did not run", i, m ? m->name : "?");
                CHECK(res->code == (!m ? KACTOR_ERROR_NO_SUCH_METHOD : KACTOR_ERROR_INVALID_ARGS),
                      "call %zu did not run and its RESULT says %" PRIu64, i, res->code);
                CHECK(!(res->flags & RESULT_READ_ONLY), "call %zu did not run and is read-only", i);
        }
        CHECK(r == st->n_runs, "%zu methods ran for no record (or out of order)", st->n_runs - r);
}

/* The answers on the callers' sockets, against the records and the RESULTs. */
static void check_answers(Input *in) {
        for (size_t k = 0; k < in->n_callers; k++) {
                const Caller *c = &in->callers[k];
                size_t next = 0; /* answers of a socket come in the order of the records */

                CHECK(!c->gone || c->n_answers == 0, "a caller that went got answers");
                for (size_t a = 0; a < c->n_answers; a++) {
                        const Answer *ans = &c->answers[a];
                        uint64_t lo = ans->lo;
                        size_t i = next;
                        while (i < in->n_records && in->records[i].lo != lo)
                                i++;
                        CHECK(i < in->n_records,
                              "caller %zu: a DRESULT for %" PRIx64 ", no record of it after the last one "
                              "answered",
                              k, ans->lo);
                        CHECK((lo & ~PROTO_ID_SEQ_MASK) == c->prefix, "caller %zu answered another's call",
                              k);
                        Record *rec = &in->records[i];
                        const Result *res = &in->results[i];
                        CHECK(!rec->answered, "call %" PRIx64 " answered twice", lo);
                        rec->answered = true;
                        next = i + 1;

                        CHECK(ans->written >= res->end,
                              "call %" PRIx64 " answered before its RESULT reached the node manager's "
                              "socket (%" PRIu64 " bytes written, it ends at %zu)",
                              lo, ans->written, res->end);
                        CHECK(ans->code == res->code,
                              "call %" PRIx64 ": DRESULT code %" PRIu64 ", RESULT %" PRIu64, lo, ans->code,
                              res->code);
                        if (ans->code != KACTOR_OK) {
                                const char *msg =
                                        ans->msg_len == SIZE_MAX ? NULL : c->in.data + ans->msg_off;
                                CHECK(msg && res->msg && ans->msg_len == res->msg_len &&
                                              memcmp(msg, res->msg, res->msg_len) == 0,
                                      "call %" PRIx64 ": the DRESULT and the RESULT say different things",
                                      lo);
                        } else if (ans->flags & DRESULT_FETCH)
                                CHECK(res->names_ids,
                                      "call %" PRIx64 ": DRESULT_FETCH for a value that names nothing", lo);
                        else {
                                CHECK(!res->names_ids,
                                      "call %" PRIx64 ": a value naming ids went to the caller", lo);
                                CHECK(ans->body_len == res->body_len &&
                                              memcmp(c->in.data + ans->body_off, res->body, res->body_len) ==
                                                      0,
                                      "call %" PRIx64 ": the caller got another value than the node manager",
                                      lo);
                        }
                }
        }

        /* Every call is answered, but those of a caller that went (and, after a re-attach, those
         * whose answers did not fit in the socket: their callers send them again, relayed). */
        for (size_t i = 0; i < in->n_records && !(in->setup & FUZZ_DIRECT_REATTACH); i++) {
                const Record *rec = &in->records[i];
                if (rec->answered)
                        continue;
                int k = caller_index(in, rec->lo & ~PROTO_ID_SEQ_MASK);
                CHECK(in->callers[0].gone && (k == 0 || same_caller(in)),
                      "call %" PRIx64 " was recorded and never answered", rec->lo);
        }
}

/* The records against the model of what each caller sent. */
static void check_model(Input *in) {
        if (same_caller(in)) {
                /* Which socket a call came on is not in its record; the order of ids is checked. */
                WorkerDirect d = { .id_hi = FUZZ_DIRECT_HI, .prefix = in->callers[0].prefix };
                for (size_t k = 0; k < in->n_callers; k++) {
                        _cleanup_free_ Expected *calls = NULL;
                        (void) model_calls(&d, in->callers[k].sent, in->callers[k].sent_len,
                                           in->start_last[0], &calls);
                }
                return;
        }
        for (size_t k = 0; k < in->n_callers; k++) {
                const Caller *c = &in->callers[k];
                WorkerDirect d = { .id_hi = FUZZ_DIRECT_HI, .prefix = c->prefix };
                _cleanup_free_ Expected *calls = NULL;
                size_t n = model_calls(&d, c->sent, c->sent_len, in->start_last[k], &calls), m = 0;

                for (size_t i = 0; i < in->n_records; i++) {
                        const Record *rec = &in->records[i];
                        if ((rec->lo & ~PROTO_ID_SEQ_MASK) != c->prefix)
                                continue;
                        CHECK(m < n, "caller %zu: call %" PRIx64 " recorded, the model reads %zu calls", k,
                              rec->lo, n);
                        const Expected *x = &calls[m++];
                        const char *args = x->args ?: empty_list;
                        size_t args_len = x->args ? x->args_len : sizeof(empty_list);
                        CHECK(rec->lo == x->lo && rec->method_len == x->method_len &&
                                      memcmp(rec->method, x->method, x->method_len) == 0 &&
                                      rec->args_len == args_len && memcmp(rec->args, args, args_len) == 0,
                              "caller %zu: record %zu is not the call the model reads", k, m - 1);
                }
                bool cut = c->gone || (in->setup & (FUZZ_DIRECT_CLOSE | FUZZ_DIRECT_REATTACH));
                CHECK(m == n || (cut && m < n), "caller %zu: %zu calls recorded, the model reads %zu", k, m,
                      n);
        }
}

static void input_done(Input *in) {
        worker_direct_close_all(&in->ctx);
        kactor_client_free(in->ctx.client);
        safe_close(in->drain.fd);
        buffer_free(&in->drain.b);
        for (size_t k = 0; k < in->n_callers; k++) {
                safe_close(in->callers[k].fd);
                buffer_free(&in->callers[k].in);
                free(in->callers[k].answers);
        }
        for (size_t i = 0; i < in->state.n_runs; i++)
                kactor_value_free(in->state.runs[i].args);
        free(in->state.runs);
        free(in->records);
        free(in->results);
        free(in->ctx.direct_marks);
        free(in->ctx.method_stats);
        free(in->ctx.error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Input in = { .drain.fd = -1 };
        kactor_ctx *ctx = &in.ctx;
        int mgr[2], r;

        if (size < 1)
                return 0;
        in.setup = data[0];
        data++;
        size--;

        /* The callers and their bytes. */
        in.n_callers = in.setup & FUZZ_DIRECT_TWO ? 2 : 1;
        if (in.n_callers == 2) {
                if (size < 2)
                        return 0;
                size_t first = (size_t) data[0] | (size_t) data[1] << 8;
                data += 2;
                size -= 2;
                first = MIN(first, size);
                in.callers[0] = (Caller){ .sent = data, .sent_len = first };
                in.callers[1] = (Caller){ .sent = data + first, .sent_len = size - first };
        } else
                in.callers[0] = (Caller){ .sent = data, .sent_len = size };
        for (size_t k = 0; k < in.n_callers; k++) {
                in.callers[k].fd = -1;
                in.callers[k].prefix =
                        FUZZ_DIRECT_PREFIX(k > 0 && (in.setup & FUZZ_DIRECT_SAME_CALLER) ? 1 : k + 1);
        }
        in.callers[0].gone = in.setup & FUZZ_DIRECT_CALLER_GONE;
        for (size_t k = 0; k < in.n_callers; k++)
                in.callers[k].may_cut = in.setup & FUZZ_DIRECT_REATTACH;

        /* The whole input as one payload, for the parser alone. */
        {
                WorkerDirect d = { .id_hi = FUZZ_DIRECT_HI, .prefix = FUZZ_DIRECT_PREFIX(1) };
                const char *method = NULL;
                size_t method_len = 0;
                Frame f;
                frame_init(&f);
                r = frame_parse(&f, (const char *) data, size);
                bool ok = size > 0 && model_accepts(r, size, &f, d.prefix, 0, &method, &method_len);
                if (size > 0)
                        check_parse(&d, 0, (const char *) data, size, ok, method, method_len, &f);
                frame_done(&f);
        }

        /* The worker, with its connection to the node manager. */
        ctx->kind = WORKER_ACTOR;
        ctx->class = &fuzz_class;
        ctx->self = (kactor_actor){ { FUZZ_DIRECT_HI, 1 } };
        ctx->state = &in.state;
        ctx->init_done = true;
        for (const kactor_method *m = fuzz_methods; m->name; m++)
                ctx->n_methods++;
        ctx->method_stats = calloc(ctx->n_methods + 1, sizeof(MethodStats));
        CHECK(ctx->method_stats, "out of memory");
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, mgr) >= 0, "socketpair: %m");
        CHECK(client_new_fd(mgr[0], true, &ctx->client) >= 0, "client_new_fd");
        client_set_identity(ctx->client, "00000000000000a1", FUZZ_DIRECT_HI, FUZZ_DIRECT_PREFIX(0xff));
        in.drain.fd = mgr[1];
        /* Always something to read from the node manager: worker_direct_wait() returns each round. */
        CHECK(write(mgr[1], "", 1) == 1, "write: %m");
        CHECK(pthread_create(&in.drain.thread, NULL, drain_run, &in.drain) == 0, "pthread_create");

        /* The direct sockets, as the node manager hands them over. */
        uint64_t min_seq = in.setup & FUZZ_DIRECT_MIN_LO ? FUZZ_DIRECT_MIN_SEQ : 0;
        for (size_t k = 0; k < in.n_callers; k++) {
                Caller *c = &in.callers[k];
                int pair[2];
                CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) >= 0, "socketpair: %m");
                c->fd = pair[1];
                r = direct_open(ctx, pair[0], FUZZ_DIRECT_UID, c->prefix, min_seq ? c->prefix | min_seq : 0);
                CHECK(r == 0 && ctx->n_direct == k + 1, "worker_direct_open: %d", r);
                in.start_last[k] = min_seq ? c->prefix | min_seq : 0;
        }
        if (in.setup & FUZZ_DIRECT_EXEC) {
                uint64_t lo = in.callers[0].prefix | FUZZ_DIRECT_EXEC_SEQ;
                worker_direct_note_exec(ctx, (kactor_id){ FUZZ_DIRECT_HI, lo });
                in.start_last[0] = MAX(in.start_last[0], lo);
                if (same_caller(&in))
                        in.start_last[1] = in.start_last[0];
        }

        /* What the callers send, then the end of their streams: all of it before the worker reads
         * unless an input is larger than a socket's buffer (a replayed one can be). */
        for (size_t k = 0; k < in.n_callers; k++) {
                int sndbuf = 1024 * 1024;
                (void) setsockopt(in.callers[k].fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
                caller_write(&in.callers[k]);
        }

        unsigned round = 0;
        for (; round < ROUNDS_MAX && ctx->direct; round++) {
                for (size_t k = 0; k < in.n_callers; k++)
                        caller_write(&in.callers[k]);
                r = worker_direct_wait(ctx);
                CHECK(r >= 0, "worker_direct_wait: %s", strerror(-r));
                if (round == 0 && (in.setup & FUZZ_DIRECT_CLOSE))
                        worker_direct_close(ctx);
                if (round == 0 && (in.setup & FUZZ_DIRECT_REATTACH))
                        worker_direct_close_all(ctx);
                if (!(in.setup & FUZZ_DIRECT_SLOW_READER) || round >= SLOW_ROUNDS)
                        for (size_t k = 0; k < in.n_callers; k++)
                                caller_read(&in.callers[k], ctx->client->out_written);
        }
        CHECK(!ctx->direct, "a direct socket is still open after %u rounds", round);
        /* What the worker does next, with nothing from the node manager: send what is owed. */
        r = kactor_flush(ctx->client);
        CHECK(r == 0, "kactor_flush: %s", strerror(-r));
        for (size_t k = 0; k < in.n_callers; k++) {
                caller_read(&in.callers[k], ctx->client->out_written);
                CHECK(in.callers[k].fd < 0 || in.callers[k].eof, "caller %zu: no end of stream", k);
        }
        CHECK(shutdown(mgr[0], SHUT_WR) >= 0, "shutdown: %m");
        CHECK(pthread_join(in.drain.thread, NULL) == 0, "pthread_join");

        check_manager_stream(&in);
        check_runs(&in);
        check_answers(&in);
        check_model(&in);
        if (verbose)
                fprintf(report, "fuzz-direct: %zu calls recorded, %zu ran, %zu + %zu answered, %u rounds\n",
                        in.n_records, in.state.n_runs, in.callers[0].n_answers, in.callers[1].n_answers,
                        round);

        input_done(&in);
        return 0;
}

/* worker_direct_open() refuses what a node manager would never send, closing the descriptor. */
static void check_open_refusals(void) {
        kactor_ctx ctx = {};
        int sv[2], pair[2];

        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) >= 0, "socketpair: %m");
        CHECK(client_new_fd(sv[0], true, &ctx.client) >= 0, "client_new_fd");
        ctx.kind = WORKER_ACTOR;
        ctx.class = &fuzz_class;

        CHECK(direct_open(&ctx, -1, FUZZ_DIRECT_UID, FUZZ_DIRECT_PREFIX(1), 0) < 0,
              "DIRECT_OPEN without a descriptor taken");
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) >= 0, "socketpair: %m");
        CHECK(direct_open(&ctx, pair[0], FUZZ_DIRECT_UID, FUZZ_DIRECT_PREFIX(1) | 1, 0) == -EBADMSG,
              "DIRECT_OPEN with a prefix that has sequence bits taken");
        CHECK(fcntl(pair[0], F_GETFD) < 0 && errno == EBADF, "a refused descriptor left open");
        pair[0] = fcntl(pair[1], F_DUPFD_CLOEXEC, 3);
        CHECK(pair[0] >= 0, "fcntl: %m");
        CHECK(direct_open(&ctx, pair[0], UINT64_C(1) << 32, FUZZ_DIRECT_PREFIX(1), 0) == -EBADMSG,
              "DIRECT_OPEN with a uid past 32 bits taken");
        CHECK(fcntl(pair[0], F_GETFD) < 0 && errno == EBADF, "a refused descriptor left open");
        CHECK(ctx.n_direct == 0 && !ctx.direct && ctx.client->fds.n == 0, "a refused socket kept");
        safe_close(pair[1]);
        kactor_client_free(ctx.client);
        free(ctx.direct_marks);
}

/* A DCALL of a frame's size whose record would not fit one is refused (inputs are cut at 64 KiB,
 * so the fuzzer cannot make it): the worker once exited on it. */
static void check_too_large_for_a_record(void) {
        static const char head[] = { (char) 0x93, 12, (char) 0xcf, 0, 0, 1, 0, 0, 0, 0, 1,
                                     (char) 0xa4, 'e', 'c', 'h', 'o', (char) 0x91, (char) 0xc6 };
        size_t len = PROTO_FRAME_MAX;
        size_t n = len - sizeof(head) - 4;
        char *p = calloc(1, len);
        CHECK(p, "out of memory");
        memcpy(p, head, sizeof(head));
        p[sizeof(head)] = (char) (n >> 24);
        p[sizeof(head) + 1] = (char) (n >> 16);
        p[sizeof(head) + 2] = (char) (n >> 8);
        p[sizeof(head) + 3] = (char) n;

        WorkerDirect d = { .id_hi = FUZZ_DIRECT_HI, .prefix = FUZZ_DIRECT_PREFIX(1) };
        DirectCall call = {};
        const char *why = NULL;
        Frame f;
        frame_init(&f);
        int r = worker_direct_parse(&d, 0, &f, p, len, &call, &why);
        CHECK(r == -EBADMSG && why, "a DCALL of %zu bytes was taken (%d)", len, r);
        /* Below the limit, the same call is one. */
        n = DIRECT_CALL_MAX - sizeof(head) - 4;
        p[sizeof(head)] = (char) (n >> 24);
        p[sizeof(head) + 1] = (char) (n >> 16);
        p[sizeof(head) + 2] = (char) (n >> 8);
        p[sizeof(head) + 3] = (char) n;
        r = worker_direct_parse(&d, 0, &f, p, DIRECT_CALL_MAX, &call, &why);
        CHECK(r == 0, "a DCALL of %zu bytes was refused: %s", (size_t) DIRECT_CALL_MAX, why ?: "-");
        frame_done(&f);
        free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        report = stderr;
        verbose = getenv("FUZZ_VERBOSE") && streq(getenv("FUZZ_VERBOSE"), "1");
        if (!verbose) {
                /* The worker says why it closes each direct socket: once per input, too often to
                 * read. Sanitizers and libFuzzer write to the descriptor, not to this stream. */
                FILE *null = fopen("/dev/null", "we");
                if (null)
                        stderr = null;
        }
        check_open_refusals();
        check_too_large_for_a_record();
        return 0;
}
