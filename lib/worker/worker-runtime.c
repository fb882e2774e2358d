/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The worker runtime: what runs inside kactor-worker (it is linked into that program, not into
 * libkactor; the module API that modules call, module-api.c, is libkactor's). It loads modules, runs an actor's
 * constructor and then its calls, one at a time in the order the node manager sent them, or runs
 * tasks for the task pool. Module code talks to the node manager through the same connection,
 * with the ordinary client API (kactor_ctx_client()).
 */

#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <time.h>

#include "client-internal.h"
#include "module-ctx.h"
#include "codec.h"
#include "kactor/module.h"
#include "macro.h"
#include "probes.h"
#include "time-util.h"
#include "worker-direct.h"
#include "worker-runtime.h"

/* How long a worker whose node manager went away waits for the next one before it gives up
 * (exits, and its actor is lost): KACTOR_WORKER_REATTACH_SEC overrides it. */
#define WORKER_REATTACH_USEC (300 * USEC_PER_SEC)

/* Results are sent in batches while calls are quick; before a call whose method has taken longer
 * than this (on average, or which has not run yet) the results so far are sent first, so a slow
 * call never holds back the results of the calls before it. */
#define WORKER_FAST_CALL_NSEC 50000ULL
#define WORKER_MAX_BATCH 256

/* Loads a module (once per path). On failure *ret_error says why. */
static int worker_load_module(kactor_ctx *ctx, const char *path, LoadedModule **ret, char **ret_error) {
        for (LoadedModule *m = ctx->modules; m; m = m->next)
                if (streq(m->path, path)) {
                        *ret = m;
                        return 0;
                }

        void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                const char *e = dlerror();
                if (asprintf(ret_error, "failed to load module %s: %s", path, e ?: "unknown error") < 0)
                        *ret_error = NULL;
                return -ENOEXEC;
        }
        const kactor_module *info = dlsym(dl, "kactor_module_info");
        if (!info || info->abi != KACTOR_MODULE_ABI) {
                if (asprintf(ret_error, "%s is not a kactor module (%s)", path,
                             info ? "unsupported module ABI" : "no kactor_module_info symbol") < 0)
                        *ret_error = NULL;
                dlclose(dl);
                return -ENOEXEC;
        }

        size_t n_functions = 0;
        for (const kactor_function *fn = info->functions; fn && fn->name; fn++)
                n_functions++;
        LoadedModule *m = calloc(1, sizeof(*m));
        if (!m || !(m->path = strdup(path)) ||
            !(m->function_stats = calloc(n_functions + 1, sizeof(MethodStats)))) {
                if (m)
                        free(m->path);
                free(m);
                dlclose(dl);
                return -ENOMEM;
        }
        m->dl = dl;
        m->info = info;
        m->next = ctx->modules;
        ctx->modules = m;
        *ret = m;
        return 0;
}

int worker_send_result(kactor_ctx *ctx, uint32_t type, uint64_t seq, int r, kactor_error code,
                              kactor_value *value, uint32_t flags) {
        kactor_client *c = ctx->client;
        const char *msg = NULL;
        _cleanup_free_ char *fallback = NULL;

        if (r >= 0 && value && kactor_value_is_error(value)) {
                /* A module that returns an error value reports a failure. */
                code = kactor_value_error_code(value);
                msg = kactor_value_error_message(value);
                r = -EREMOTEIO;
        } else if (r < 0 && code == KACTOR_OK)
                code = KACTOR_ERROR_TASK_FAILED;

        if (r < 0) {
                msg = msg ?: ctx->error;
                if (!msg) {
                        if (asprintf(&fallback, "failed: %s", strerror(-r)) < 0)
                                fallback = NULL;
                        msg = fallback ?: "failed";
                }
        }

        /* A method's result also says when it ran (CLOCK_MONOTONIC ns), for the node manager's tracing. */
        bool times = type == MSG_RESULT && ctx->exec_end_ns != 0;
        size_t size_before = buffer_size(&c->out);
        size_t off;
        int k = frame_begin_request(&c->out, &c->pk, type, seq, times ? 5 : 3, &off);
        if (k < 0)
                return k;
        k = msgpack_pack_uint32(&c->pk, r < 0 ? code : KACTOR_OK) < 0 ||
                        pack_cstr(&c->pk, r < 0 ? msg : NULL) < 0 || msgpack_pack_uint32(&c->pk, flags) < 0
                ? -ENOMEM
                : 0;
        if (k >= 0 && times)
                k = msgpack_pack_uint64(&c->pk, ctx->exec_start_ns) < 0 ||
                                msgpack_pack_uint64(&c->pk, ctx->exec_end_ns) < 0
                        ? -ENOMEM
                        : 0;
        if (k >= 0 && r >= 0 && type == MSG_RESULT) {
                if (value)
                        k = codec_pack_value(&c->pk, value);
                else
                        k = msgpack_pack_nil(&c->pk) < 0 ? -ENOMEM : 0;
        }
        if (k < 0) {
                c->out.end = off;
                return k;
        }
        k = frame_end(&c->out, off);
        if (k == -EMSGSIZE)
                /* Too large to send back: say so instead of the value. */
                return worker_send_result(ctx, type, seq, -EMSGSIZE, KACTOR_ERROR_TASK_FAILED, NULL, flags);
        if (k >= 0)
                ctx->last_result_len = buffer_size(&c->out) - size_before;
        if (k >= 0 && type == MSG_RESULT && ctx->kind == WORKER_ACTOR)
                ctx->n_results++;
        if (k >= 0 && type == MSG_INIT_DONE) {
                ctx->init_done = r >= 0;
                ctx->can_save = flags & INIT_CAN_SAVE;
        }
        free(ctx->error);
        ctx->error = NULL;
        return k;
}

/* Sends what is buffered first unless the function about to run is known to be quick. */
static int worker_flush_before(kactor_ctx *ctx, const MethodStats *st) {
        if (buffer_size(&ctx->client->out) == 0)
                ctx->batched = 0;
        if (ctx->batched > 0 &&
            (st->avg_nsec == 0 || st->avg_nsec > WORKER_FAST_CALL_NSEC ||
             ctx->batched >= WORKER_MAX_BATCH)) {
                int r = kactor_flush(ctx->client);
                /* The node manager went: the method runs all the same, and what could not be sent
                 * goes again with ATTACH (the next read finds the connection gone). */
                if (r < 0 && !(ctx->may_reattach && (r == -EPIPE || r == -ECONNRESET)))
                        return r;
                ctx->batched = 0;
        }
        return 0;
}

static void worker_account(kactor_ctx *ctx, MethodStats *st, uint64_t t0) {
        uint64_t dt = now_nsec(CLOCK_MONOTONIC) - t0 + 1;
        st->avg_nsec = st->avg_nsec == 0 ? dt : (st->avg_nsec * 7 + dt) / 8;
        ctx->batched++;
}

int worker_decode_args(const Frame *f, kactor_value **ret) {
        if (!f->has_body)
                return (*ret = kactor_value_new_list()) ? 0 : -ENOMEM;
        int r = codec_value_from_object(&f->body.data, ret);
        if (r < 0)
                return r;
        if (kactor_value_type(*ret) != KACTOR_TYPE_LIST) {
                *ret = kactor_value_free(*ret);
                return -EBADMSG;
        }
        return 0;
}

/* Reads INIT's header: the worker's kind, its actor id, its GPUs and the node's identity; for an
 * actor, also the module and class to load (*ret_module and *ret_class_name, NULL for a task). */
static int worker_read_init(kactor_ctx *ctx, const Frame *f, char **ret_module, char **ret_class_name) {
        _cleanup_free_ char *module = NULL, *class_name = NULL, *node = NULL;
        uint64_t kind, hi, lo;
        kactor_id self;
        int r;

        if (f->type != MSG_INIT)
                return -EBADMSG;
        r = frame_field_u64(f, 0, &kind);
        if (r < 0)
                return r;
        if (kind != WORKER_ACTOR && kind != WORKER_TASK)
                return -EBADMSG;
        ctx->kind = kind;
        r = frame_field_id(f, 1, CODEC_EXT_ACTOR, &self);
        if (r < 0)
                return r;
        ctx->self = (kactor_actor){ self };
        if (kind == WORKER_ACTOR) {
                r = frame_field_strdup(f, 2, &module);
                if (r >= 0)
                        r = frame_field_strdup(f, 3, &class_name);
                if (r < 0)
                        return r;
        }
        const msgpack_object *gpus = frame_field(f, 4);
        if (!gpus || gpus->type != MSGPACK_OBJECT_ARRAY)
                return -EBADMSG;
        if (gpus->via.array.size > 0) {
                ctx->gpu_ids = calloc(gpus->via.array.size, sizeof(uint32_t));
                if (!ctx->gpu_ids)
                        return -ENOMEM;
                for (uint32_t i = 0; i < gpus->via.array.size; i++) {
                        if (gpus->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                                return -EBADMSG;
                        ctx->gpu_ids[i] = (uint32_t) gpus->via.array.ptr[i].via.u64;
                }
                ctx->n_gpu_ids = gpus->via.array.size;
        }
        r = frame_field_strdup(f, 5, &node);
        if (r >= 0)
                r = frame_field_u64(f, 6, &hi);
        if (r >= 0)
                r = frame_field_u64(f, 7, &lo);
        if (r < 0)
                return r;
        client_set_identity(ctx->client, node, hi, lo);
        ctx->id_prefix = lo;

        *ret_module = TAKE_PTR(module);
        *ret_class_name = TAKE_PTR(class_name);
        return 0;
}

/* Answers INIT with a failure: ctx->error (or what r says) and code. Returns r unless the answer
 * itself could not be queued. */
static int worker_init_fail(kactor_ctx *ctx, int r, kactor_error code) {
        return worker_send_result(ctx, MSG_INIT_DONE, 0, r, code, NULL, 0) ?: r;
}

/* Loads the module and finds the actor's class in it; on failure, answers INIT_DONE with why. */
static int worker_load_class(kactor_ctx *ctx, const char *module, const char *class_name) {
        _cleanup_free_ char *error = NULL;
        LoadedModule *lm;
        int r;

        r = worker_load_module(ctx, module, &lm, &error);
        if (r < 0) {
                ctx->error = TAKE_PTR(error);
                return worker_init_fail(ctx, r, KACTOR_ERROR_MODULE_NOT_FOUND);
        }
        const kactor_module *info = lm->info;
        for (size_t i = 0; info->classes && info->classes[i]; i++)
                if (info->classes[i]->name && streq(info->classes[i]->name, class_name)) {
                        ctx->class = info->classes[i];
                        break;
                }
        if (!ctx->class) {
                kactor_fail(ctx, "module %s has no actor class '%s'", module, class_name);
                return worker_init_fail(ctx, -ENOENT, KACTOR_ERROR_NO_SUCH_METHOD);
        }
        for (const kactor_method *m = ctx->class->methods; m && m->name; m++)
                ctx->n_methods++;
        ctx->method_stats = calloc(ctx->n_methods + 1, sizeof(MethodStats));
        if (!ctx->method_stats)
                return -ENOMEM;
        return 0;
}

/* Rebuilt from a checkpoint: restores the state, then the calls after it are replayed. */
static int worker_restore(kactor_ctx *ctx, const msgpack_object *checkpoint) {
        _cleanup_(kactor_value_freep) kactor_value *saved = NULL;
        int r;

        if (!ctx->class->restore)
                r = kactor_fail(ctx, "actor class %s has no restore hook", ctx->class->name);
        else {
                r = codec_value_from_object(checkpoint, &saved);
                if (r >= 0)
                        r = ctx->class->restore(ctx, saved, &ctx->state);
        }
        if (r < 0) {
                if (!ctx->error)
                        kactor_fail(ctx, "restoring %s from its checkpoint failed: %s", ctx->class->name,
                                    strerror(-r));
                return worker_init_fail(ctx, r, KACTOR_ERROR_TASK_FAILED);
        }
        return 0;
}

/* Runs the class's constructor with the arguments of INIT. */
static int worker_construct(kactor_ctx *ctx, const kactor_value *args) {
        int r;

        if (!ctx->class->init)
                return 0;
        r = ctx->class->init(ctx, args, &ctx->state);
        if (r < 0) {
                if (!ctx->error)
                        kactor_fail(ctx, "constructor of %s failed: %s", ctx->class->name, strerror(-r));
                else {
                        char *m = NULL;
                        /* Formatted before the old message is freed: it is one of the arguments. */
                        int k = asprintf(&m, "constructor of %s failed: %s", ctx->class->name, ctx->error);
                        if (k >= 0) {
                                free(ctx->error);
                                ctx->error = m;
                        }
                }
                return worker_init_fail(ctx, r, KACTOR_ERROR_TASK_FAILED);
        }
        return 0;
}

/* The first frame: INIT. A task worker is ready at once; an actor's worker loads its class and
 * restores its checkpoint or runs its constructor. Either way the node manager hears INIT_DONE. */
static int worker_init(kactor_ctx *ctx, Frame *f) {
        _cleanup_free_ char *module = NULL, *class_name = NULL;
        _cleanup_(kactor_value_freep) kactor_value *args = NULL;
        int r;

        r = worker_read_init(ctx, f, &module, &class_name);
        if (r < 0)
                return r;
        if (ctx->kind == WORKER_TASK)
                return worker_send_result(ctx, MSG_INIT_DONE, 0, 0, KACTOR_OK, NULL, 0);

        r = worker_decode_args(f, &args);
        if (r < 0)
                return r;

        (void) prctl(PR_SET_NAME, class_name, 0, 0, 0);

        r = worker_load_class(ctx, module, class_name);
        if (r < 0)
                return r;

        const msgpack_object *checkpoint = frame_field(f, 8);
        if (checkpoint && checkpoint->type != MSGPACK_OBJECT_NIL)
                r = worker_restore(ctx, checkpoint);
        else
                r = worker_construct(ctx, args);
        if (r < 0)
                return r;
        return worker_send_result(ctx, MSG_INIT_DONE, 0, 0, KACTOR_OK, NULL,
                                  ctx->class->save && ctx->class->restore ? INIT_CAN_SAVE : 0);
}

/* A checkpoint: the state as the class's save hook renders it. */
static int worker_save(kactor_ctx *ctx, Frame *f) {
        _cleanup_(kactor_value_freep) kactor_value *saved = NULL;
        int r;

        if (!ctx->class->save) {
                kactor_fail(ctx, "actor class %s has no save hook", ctx->class->name);
                return worker_send_result(ctx, MSG_RESULT, f->id, -EOPNOTSUPP, KACTOR_ERROR_NOT_SUPPORTED,
                                          NULL, 0);
        }
        r = ctx->class->save(ctx, ctx->state, &saved);
        return worker_send_result(ctx, MSG_RESULT, f->id, r, KACTOR_OK, r >= 0 ? saved : NULL, 0);
}

int worker_run_method(kactor_ctx *ctx, const char *name, size_t len, const kactor_value *args, uint64_t seq,
                      WorkerRun *ret) {
        *ret = (WorkerRun){};

        size_t i = 0;
        const kactor_method *m = ctx->class->methods;
        for (; m && m->name; m++, i++)
                if (strlen(m->name) == len && memcmp(m->name, name, len) == 0)
                        break;
        if (!m || !m->name) {
                kactor_fail(ctx, "actor class %s has no method '%.*s'", ctx->class->name,
                            (int) MIN(len, 256), name);
                ret->r = -ENOENT;
                ret->code = KACTOR_ERROR_NO_SUCH_METHOD;
                return 0;
        }

        MethodStats *st = &ctx->method_stats[i];
        int r = worker_flush_before(ctx, st);
        if (r < 0)
                return r;

        uint64_t t0 = now_nsec(CLOCK_MONOTONIC);
        KACTOR_PROBE(call_started, kactor_trace_id_hash(ctx->self.id.hi, ctx->self.id.lo), seq);
        ret->r = m->fn(ctx, ctx->state, args, &ret->result);
        uint64_t dt = now_nsec(CLOCK_MONOTONIC) - t0 + 1;
        KACTOR_PROBE(call_finished, kactor_trace_id_hash(ctx->self.id.hi, ctx->self.id.lo), seq, t0,
                     t0 + dt - 1);
        st->avg_nsec = st->avg_nsec == 0 ? dt : (st->avg_nsec * 7 + dt) / 8;

        ctx->batched++;
        ctx->exec_start_ns = t0;
        ctx->exec_end_ns = t0 + dt - 1;
        ret->flags = (m->flags & KACTOR_METHOD_READ_ONLY) ? RESULT_READ_ONLY : 0;
        if (ret->r < 0)
                ret->result = kactor_value_free(ret->result);
        return 0;
}

static int worker_exec(kactor_ctx *ctx, Frame *f) {
        const char *name;
        size_t len;
        _cleanup_(kactor_value_freep) kactor_value *args = NULL;
        WorkerRun run;
        int r;

        r = frame_field_str(f, 0, &name, &len);
        if (r < 0)
                return r;
        r = worker_decode_args(f, &args);
        if (r < 0)
                return r;
        r = worker_run_method(ctx, name, len, args, f->id, &run);
        if (r < 0)
                return r;
        r = worker_send_result(ctx, MSG_RESULT, f->id, run.r, run.code, run.result, run.flags);
        kactor_value_free(run.result);
        ctx->exec_start_ns = ctx->exec_end_ns = 0;
        return r;
}

static int worker_task(kactor_ctx *ctx, Frame *f) {
        _cleanup_free_ char *module = NULL, *function = NULL, *error = NULL;
        _cleanup_(kactor_value_freep) kactor_value *args = NULL, *result = NULL;
        LoadedModule *lm;
        int r;

        r = frame_field_strdup(f, 0, &module);
        if (r >= 0)
                r = frame_field_strdup(f, 1, &function);
        if (r >= 0)
                r = worker_decode_args(f, &args);
        if (r < 0)
                return r;

        r = worker_load_module(ctx, module, &lm, &error);
        if (r < 0) {
                ctx->error = TAKE_PTR(error);
                return worker_send_result(ctx, MSG_RESULT, f->id, r, KACTOR_ERROR_MODULE_NOT_FOUND, NULL, 0);
        }
        size_t i = 0;
        const kactor_function *fn = lm->info->functions;
        for (; fn && fn->name; fn++, i++)
                if (streq(fn->name, function))
                        break;
        if (!fn || !fn->name) {
                kactor_fail(ctx, "module %s has no function '%s'", module, function);
                return worker_send_result(ctx, MSG_RESULT, f->id, -ENOENT, KACTOR_ERROR_NO_SUCH_METHOD, NULL,
                                          0);
        }

        /* Tasks come several at a time when there are many: as for methods, results are sent in
         * batches only while the function is quick. */
        r = worker_flush_before(ctx, &lm->function_stats[i]);
        if (r < 0)
                return r;
        uint64_t t0 = now_nsec(CLOCK_MONOTONIC);
        r = fn->fn(ctx, args, &result);
        worker_account(ctx, &lm->function_stats[i], t0);
        return worker_send_result(ctx, MSG_RESULT, f->id, r, KACTOR_OK, r >= 0 ? result : NULL, 0);
}

/*
 * Surviving the node manager. An actor's results stay here until the node manager says they are
 * durable (the ack of EXEC, or ACK): when it dies before that, the worker runs on with what it has
 * received, then connects to the socket again and sends them in ATTACH, so that no call it ran is
 * lost or run twice (docs/restart.md).
 */
typedef struct RetainedResult {
        struct RetainedResult *next;
        uint64_t seq;
        kactor_id result;
        size_t method_len, args_len, frame_len;
        char data[]; /* method, args, the RESULT payload */
} RetainedResult;

static void worker_retained_ack(kactor_ctx *ctx, uint64_t seq) {
        while (ctx->retained_head && ctx->retained_head->seq <= seq) {
                RetainedResult *r = ctx->retained_head;
                ctx->retained_head = r->next;
                ctx->retained_bytes -= r->method_len + r->args_len + r->frame_len;
                free(r);
        }
        if (!ctx->retained_head)
                ctx->retained_tail = NULL;
}

int worker_retain(kactor_ctx *ctx, kactor_id result, const char *method, size_t method_len, const char *args,
                  size_t args_len) {
        const Buffer *out = &ctx->client->out;

        if (ctx->last_result_len <= PROTO_HEADER_SIZE || ctx->last_result_len > buffer_size(out))
                return 0;
        size_t frame_len = ctx->last_result_len - PROTO_HEADER_SIZE;
        RetainedResult *r = malloc(sizeof(*r) + method_len + args_len + frame_len);
        if (!r)
                return -ENOMEM;
        r->next = NULL;
        r->seq = ctx->n_results;
        r->result = result;
        r->method_len = method_len;
        r->args_len = args_len;
        r->frame_len = frame_len;
        memcpy(r->data, method, method_len);
        if (args_len > 0)
                memcpy(r->data + method_len, args, args_len);
        memcpy(r->data + method_len + args_len, out->data + out->end - frame_len, frame_len);
        if (ctx->retained_tail)
                ctx->retained_tail->next = r;
        else
                ctx->retained_head = r;
        ctx->retained_tail = r;
        ctx->retained_bytes += method_len + args_len + frame_len;
        return 0;
}

/* Keeps the call of EXEC frame f and the RESULT frame just queued for it (the tail of out). */
static int worker_retain_exec(kactor_ctx *ctx, const Frame *f) {
        const char *method;
        size_t method_len;
        kactor_id result;

        /* A node manager that sends no result id keeps no journal to re-attach to. */
        if (frame_field_str(f, 0, &method, &method_len) < 0 ||
            frame_field_id(f, 1, CODEC_EXT_OBJECT, &result) < 0)
                return 0;
        return worker_retain(ctx, result, method, method_len, f->has_body ? f->body_raw : NULL,
                             f->has_body ? f->body_len : 0);
}

static uint64_t worker_reattach_usec(void) {
        const char *e = getenv("KACTOR_WORKER_REATTACH_SEC");
        char *end;
        if (e) {
                unsigned long long n = strtoull(e, &end, 10);
                if (*e && !*end && n <= 86400)
                        return n * USEC_PER_SEC;
        }
        return WORKER_REATTACH_USEC;
}

/* Connects to path, trying again until deadline: at once, then after 10 ms, doubling up to 250 ms.
 * Not inotify: instances are a per-user resource (128 by default), and a node manager that restarts
 * under a thousand actors would find none left for itself; under systemd the socket stays (the
 * service's fd store) and the first try connects. */
static int worker_connect_wait(const char *path, uint64_t deadline) {
        uint64_t delay = 10 * 1000;

        for (;;) {
                int fd;
                int r = client_connect_socket(path, &fd);
                if (r >= 0)
                        return fd;
                /* EACCES: a socket just made, not yet ours to use (an older node manager chmod()s it
                 * after bind()). */
                if (r != -ECONNREFUSED && r != -ENOENT && r != -EAGAIN && r != -EACCES)
                        return r;
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= deadline)
                        return -ETIMEDOUT;
                uint64_t wait = MIN(deadline - now, delay);
                struct timespec ts = { .tv_sec = (time_t) (wait / USEC_PER_SEC),
                                       .tv_nsec = (long) (wait % USEC_PER_SEC) * 1000 };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
                delay = MIN(delay * 2, (uint64_t) 250 * 1000);
        }
}

/* Sends ATTACH on a fresh connection and reads the answer: 0 when taken back, -ECONNREFUSED when
 * refused, another negative errno when the connection broke first (a node manager going away as we
 * connected: try again). */
static int worker_attach_once(kactor_ctx *ctx, int fd) {
        kactor_client *c = ctx->client;
        size_t off;
        int r;

        safe_close(c->fd);
        c->fd = fd;
        /* Whatever was unsent or half read belongs to the old connection; the results are retained. */
        c->in.start = c->in.end = 0;
        c->out.start = c->out.end = 0;

        size_t n = 0;
        for (RetainedResult *x = ctx->retained_head; x; x = x->next)
                n++;
        r = frame_begin_request(&c->out, &c->pk, MSG_ATTACH, 0, 6, &off);
        if (r < 0)
                return r;
        uint32_t flags = (ctx->init_done ? ATTACH_READY : 0) | (ctx->can_save ? ATTACH_CAN_SAVE : 0);
        r = msgpack_pack_uint32(&c->pk, PROTO_VERSION) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, ctx->self.id);
        if (r >= 0)
                r = msgpack_pack_uint64(&c->pk, ctx->id_prefix) < 0 || msgpack_pack_uint64(&c->pk, ctx->n_results) < 0 ||
                                msgpack_pack_uint32(&c->pk, flags) < 0 || msgpack_pack_array(&c->pk, n) < 0
                        ? -ENOMEM
                        : 0;
        for (RetainedResult *x = ctx->retained_head; r >= 0 && x; x = x->next) {
                r = msgpack_pack_array(&c->pk, 5) < 0 || msgpack_pack_uint64(&c->pk, x->seq) < 0 ? -ENOMEM : 0;
                if (r >= 0)
                        r = codec_pack_id(&c->pk, CODEC_EXT_OBJECT, x->result);
                if (r >= 0)
                        r = pack_str(&c->pk, x->data, x->method_len);
                if (r >= 0)
                        r = msgpack_pack_bin(&c->pk, x->args_len) < 0 ||
                                        msgpack_pack_bin_body(&c->pk, x->data + x->method_len, x->args_len) < 0 ||
                                        msgpack_pack_bin(&c->pk, x->frame_len) < 0 ||
                                        msgpack_pack_bin_body(&c->pk, x->data + x->method_len + x->args_len,
                                                              x->frame_len) < 0
                                ? -ENOMEM
                                : 0;
        }
        if (r >= 0)
                r = frame_end(&c->out, off);
        if (r < 0) {
                fprintf(stderr, "kactor-worker: cannot re-attach: %s.\n", strerror(-r));
                return r == -ENOMEM || r == -EMSGSIZE ? -ECONNREFUSED : r;
        }

        Frame reply;
        frame_init(&reply);
        r = client_next_frame(c, &reply);
        if (r == 0)
                r = -ECONNRESET;
        if (r > 0 && reply.type != MSG_REPLY) {
                fprintf(stderr, "kactor-worker: an unexpected answer to ATTACH (frame type %u).\n", reply.type);
                r = -ECONNREFUSED;
        } else if (r > 0) {
                uint64_t code = KACTOR_ERROR_PROTOCOL;
                const char *msg = NULL;
                size_t len = 0;
                (void) frame_field_u64(&reply, 0, &code);
                (void) frame_field_str(&reply, 1, &msg, &len);
                if (code != KACTOR_OK) {
                        fprintf(stderr, "kactor-worker: the node manager refused to take this actor back: %.*s\n",
                                (int) len, msg ?: "no reason given");
                        r = -ECONNREFUSED;
                } else
                        r = 0;
        }
        frame_done(&reply);
        return r;
}

/* The node manager went away: waits for the next one on its socket and re-attaches, sending the
 * results it has not called durable. 0 when attached again. */
static int worker_reattach(kactor_ctx *ctx, const char *path) {
        int r;

        fprintf(stderr, "kactor-worker: the node manager went away; waiting for it on %s.\n", path);
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + worker_reattach_usec();
        for (;;) {
                int fd = worker_connect_wait(path, deadline);
                if (fd < 0) {
                        fprintf(stderr, "kactor-worker: no node manager came back on %s: %s.\n", path,
                                strerror(-fd));
                        return fd;
                }
                r = worker_attach_once(ctx, fd);
                if (r == 0)
                        break;
                if (r == -ECONNREFUSED || now_usec(CLOCK_MONOTONIC) >= deadline)
                        return r;
                /* The old one's socket, closing as we came: the next one makes it again. */
                struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
                (void) nanosleep(&ts, NULL);
        }
        /* Everything sent again is durable now. */
        worker_retained_ack(ctx, UINT64_MAX);
        fprintf(stderr, "kactor-worker: re-attached to the node manager.\n");
        return 0;
}

/* The node manager's next frame; while none has come, the direct calls that have. */
static int worker_next_frame(kactor_ctx *ctx, Frame *f) {
        for (;;) {
                if (!ctx->direct)
                        return client_next_frame(ctx->client, f);
                int r = client_poll_frame(ctx->client, f);
                if (r != 0)
                        return r;
                r = worker_direct_wait(ctx);
                if (r < 0)
                        return r;
                if (r > 0)
                        return client_next_frame(ctx->client, f);
        }
}

int kactor_worker_main(int argc, char *argv[]) {
        kactor_ctx ctx = {};
        Frame f;
        int fd = 3, r;

        const char *e = getenv("KACTOR_WORKER_FD");
        if (e)
                fd = atoi(e);
        if (fd < 0 || argc > 1) {
                fprintf(stderr,
                        "kactor-worker is started by kactor-nodemgr; it is not meant to be run by hand.\n");
                return 2;
        }
        unsetenv("KACTOR_WORKER_FD");
        /* Where to find the node manager again if it restarts (an actor's worker outlives it). */
        _cleanup_free_ char *reattach_path = getenv("KACTOR_WORKER_SOCKET") ? strdup(getenv("KACTOR_WORKER_SOCKET")) : NULL;
        unsetenv("KACTOR_WORKER_SOCKET");

        /* A task worker ends with the node manager, even in the middle of a long call; an actor's
         * worker (the one told where to find it again) outlives it and re-attaches. */
        if (!reattach_path) {
                pid_t parent = getppid();
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
                if (getppid() != parent)
                        return 1;
        }

        r = client_new_fd(fd, true, &ctx.client);
        if (r < 0)
                return 1;
        frame_init(&f);
        frame_init(&ctx.direct_frame);

        r = client_next_frame(ctx.client, &f);
        if (r <= 0)
                goto finish;
        r = worker_init(&ctx, &f);
        if (r < 0 || (ctx.kind == WORKER_ACTOR && !ctx.class)) {
                (void) kactor_flush(ctx.client);
                goto finish;
        }
        ctx.may_reattach = ctx.kind == WORKER_ACTOR && reattach_path;
        for (;;) {
                r = worker_next_frame(&ctx, &f);
                if ((r == 0 || r == -ECONNRESET || r == -EPIPE) && ctx.kind == WORKER_ACTOR && reattach_path) {
                        r = worker_reattach(&ctx, reattach_path);
                        if (r < 0)
                                break;
                        /* The next node manager knows none of the direct sockets: their callers
                         * send again what was not answered, and open new ones. */
                        worker_direct_close_all(&ctx);
                        continue;
                }
                if (r <= 0)
                        break;
                if (f.type == MSG_EXEC && ctx.kind == WORKER_ACTOR) {
                        uint64_t ack;
                        if (frame_field_u64(&f, 2, &ack) >= 0)
                                worker_retained_ack(&ctx, ack);
                        kactor_id result;
                        if (ctx.n_direct_marks > 0 && frame_field_id(&f, 1, CODEC_EXT_OBJECT, &result) >= 0)
                                worker_direct_note_exec(&ctx, result);
                        r = worker_exec(&ctx, &f);
                        if (r >= 0 && reattach_path)
                                r = worker_retain_exec(&ctx, &f);
                } else if (f.type == MSG_DIRECT_OPEN && ctx.kind == WORKER_ACTOR) {
                        r = worker_direct_open(&ctx, &f);
                } else if (f.type == MSG_DIRECT_CLOSE && ctx.kind == WORKER_ACTOR) {
                        worker_direct_close(&ctx);
                        r = 0;
                } else if (f.type == MSG_ACK && ctx.kind == WORKER_ACTOR) {
                        worker_retained_ack(&ctx, f.id);
                        r = 0;
                } else if (f.type == MSG_STOP) {
                        r = 0;
                        break;
                } else if (f.type == MSG_SAVE && ctx.kind == WORKER_ACTOR)
                        r = worker_save(&ctx, &f);
                else if (f.type == MSG_RECALL && ctx.kind == WORKER_TASK)
                        r = client_recall_tasks(ctx.client);
                else if (f.type == MSG_TASK && ctx.kind == WORKER_TASK)
                        r = worker_task(&ctx, &f);
                else
                        r = -EBADMSG;
                if (r < 0)
                        break;
                r = client_maybe_flush(ctx.client);
                if (r < 0 && !(ctx.may_reattach && (r == -EPIPE || r == -ECONNRESET)))
                        break; /* else the next read finds the connection gone, and re-attaches */
        }

finish:
        (void) kactor_flush(ctx.client);
        worker_direct_close_all(&ctx);
        if (ctx.class && ctx.class->destroy && ctx.state)
                ctx.class->destroy(ctx.state);
        frame_done(&f);
        kactor_client_free(ctx.client);
        /* Modules stay loaded: destructors of static objects in them may still run at exit. */
        while (ctx.modules) {
                LoadedModule *m = ctx.modules;
                ctx.modules = m->next;
                free(m->path);
                free(m->function_stats);
                free(m);
        }
        worker_retained_ack(&ctx, UINT64_MAX);
        free(ctx.gpu_ids);
        free(ctx.direct_marks);
        free(ctx.method_stats);
        free(ctx.error);
        return r < 0 ? 1 : 0;
}
