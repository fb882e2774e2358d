/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration tests' module: actors and functions that make the runtime's behaviour visible
 * (call order, parallelism, failures, crashes, handle passing, GPU assignment).
 *
 * Classes: Recorder, Sleeper, Crasher, Failer, Echo, Holder, GpuProbe.
 * Functions: add, echo, fail, sleep, rendezvous, make_actor, call_actor, call_n, gpus.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <kactor/module.h>

static int64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int sleep_ms(int64_t ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

        while (nanosleep(&ts, &ts) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* The args after the first `skip` as a new list. */
static kactor_value *args_tail(const kactor_value *args, size_t skip) {
        kactor_value *l = kactor_value_new_list();

        for (size_t i = skip; l && i < kactor_value_list_size(args); i++)
                if (kactor_value_list_append(l, kactor_value_copy(kactor_value_list_get(args, i))) < 0)
                        return kactor_value_free(l);
        return l;
}

/* Calls `method` on `actor` through the worker's client and waits for the result; a failed call
 * fails this one with its message. */
static int call_and_get(kactor_ctx *ctx, kactor_actor actor, const char *method, const kactor_value *args,
                        kactor_value **ret) {
        kactor_client *c = kactor_ctx_client(ctx);
        kactor_value *v = NULL;
        kactor_ref ref;
        int r;

        r = kactor_call(c, actor, method, args, &ref);
        if (r < 0)
                return kactor_fail(ctx, "calling %s failed: %s: %s", method, strerror(-r),
                                   kactor_client_error_message(c));
        r = kactor_get1(c, ref, 0, &v);
        (void)kactor_ref_release(c, &ref, 1);
        if (r < 0)
                return kactor_fail(ctx, "getting the result of %s failed: %s: %s", method, strerror(-r),
                                   kactor_client_error_message(c));
        if (kactor_value_is_error(v)) {
                r = kactor_fail(ctx, "%s failed: %s: %s", method,
                                kactor_error_name(kactor_value_error_code(v)) ?: "?",
                                kactor_value_error_message(v));
                kactor_value_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

/* Sleeps args[0] ms; returns [start, end] in CLOCK_MONOTONIC nanoseconds. */
static kactor_value *timed_sleep(int64_t ms) {
        kactor_value *l = kactor_value_new_list();
        int64_t start = now_ns();

        (void)sleep_ms(ms);
        if (kactor_value_list_append(l, kactor_value_new_int(start)) < 0 ||
            kactor_value_list_append(l, kactor_value_new_int(now_ns())) < 0)
                return kactor_value_free(l);
        return l;
}

/*
 * rendezvous(dir, me, other, timeout_ms): creates dir/me, then waits (inotify) for dir/other.
 * True when the other side showed up within the timeout: proof that both ran at the same time,
 * with no timing assumption.
 */
static int do_rendezvous(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        const char *dir, *me, *other;
        char *mine = NULL, *theirs = NULL;
        int64_t timeout_ms, deadline;
        bool met = false;
        int fd = -1, r;

        if ((r = kactor_arg_string(ctx, args, 0, &dir)) < 0 ||
            (r = kactor_arg_string(ctx, args, 1, &me)) < 0 ||
            (r = kactor_arg_string(ctx, args, 2, &other)) < 0 ||
            (r = kactor_arg_int(ctx, args, 3, &timeout_ms)) < 0)
                return r;
        if (asprintf(&mine, "%s/%s", dir, me) < 0 || asprintf(&theirs, "%s/%s", dir, other) < 0) {
                free(mine);
                return -ENOMEM;
        }

        fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0 || inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO) < 0) {
                r = kactor_fail(ctx, "inotify on %s: %s", dir, strerror(errno));
                goto out;
        }
        r = open(mine, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (r < 0) {
                r = kactor_fail(ctx, "creating %s: %s", mine, strerror(errno));
                goto out;
        }
        close(r);

        deadline = now_ns() / 1000000 + timeout_ms;
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                char buf[4096];
                int64_t left;

                if (access(theirs, F_OK) == 0) {
                        met = true;
                        break;
                }
                left = deadline - now_ns() / 1000000;
                if (left <= 0)
                        break;
                (void)poll(&p, 1, (int)left);
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
        }
        *ret = kactor_value_new_bool(met);
        r = 0;
out:
        if (fd >= 0)
                close(fd);
        free(mine);
        free(theirs);
        return r;
}

/* --- Recorder: keeps the arguments of every call, in the order the calls ran ------------------ */

static int recorder_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        kactor_value *l = kactor_value_new_list();

        if (!l)
                return -ENOMEM;
        *ret_state = l;
        return 0;
}

static void recorder_destroy(void *state) {
        kactor_value_free(state);
}

/* record(args...) -> the number of calls recorded so far */
static int recorder_record(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int r = kactor_value_list_append(state, kactor_value_copy(args));

        if (r < 0)
                return r;
        *ret = kactor_value_new_int((int64_t)kactor_value_list_size(state));
        return 0;
}

/* records() -> [[args of call 1], [args of call 2], ...] */
static int recorder_records(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_copy(state);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method recorder_methods[] = {
        {.name = "record", .fn = recorder_record},
        {.name = "records", .fn = recorder_records, .flags = KACTOR_METHOD_READ_ONLY},
        {},
};

static const kactor_class recorder_class = {
        .name = "Recorder",
        .init = recorder_init,
        .destroy = recorder_destroy,
        .methods = recorder_methods,
};

/* --- Sleeper: takes time, and meets another actor ------------------------------------------- */

static int stateless_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        *ret_state = NULL;
        return 0;
}

/* sleep(ms) -> [start_ns, end_ns] */
static int sleeper_sleep(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t ms;
        int r = kactor_arg_int(ctx, args, 0, &ms);

        if (r < 0)
                return r;
        *ret = timed_sleep(ms);
        return *ret ? 0 : -ENOMEM;
}

/* sleep_then(ms, value) -> value, after ms */
static int sleeper_sleep_then(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t ms;
        int r = kactor_arg_int(ctx, args, 0, &ms);

        if (r < 0)
                return r;
        (void)sleep_ms(ms);
        *ret = kactor_value_list_size(args) > 1 ? kactor_value_copy(kactor_value_list_get(args, 1))
                                                : kactor_value_new_nil();
        return 0;
}

static int method_rendezvous(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        return do_rendezvous(ctx, args, ret);
}

static int method_ping(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_string("pong");
        return 0;
}

static int method_pid(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_int(getpid());
        return 0;
}

static const kactor_method sleeper_methods[] = {
        {.name = "sleep", .fn = sleeper_sleep},
        {.name = "sleep_then", .fn = sleeper_sleep_then},
        {.name = "rendezvous", .fn = method_rendezvous},
        {.name = "ping", .fn = method_ping, .flags = KACTOR_METHOD_READ_ONLY},
        {.name = "pid", .fn = method_pid, .flags = KACTOR_METHOD_READ_ONLY},
        {},
};

static const kactor_class sleeper_class = {
        .name = "Sleeper",
        .init = stateless_init,
        .methods = sleeper_methods,
};

/* --- Crasher: a worker that dies ------------------------------------------------------------ */

/* crash(): dies of SIGSEGV. The default action is restored first, so a sanitizer's handler cannot
 * turn the signal into an exit status. */
static int crasher_crash(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        (void)signal(SIGSEGV, SIG_DFL);
        (void)raise(SIGSEGV);
        return kactor_fail(ctx, "still alive after SIGSEGV");
}

/* exit_now(code): exits at once, without finishing the call. */
static int crasher_exit_now(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t code = 0;

        if (kactor_value_list_size(args) > 0 && kactor_arg_int(ctx, args, 0, &code) < 0)
                return -EINVAL;
        _exit((int)code);
}

static const kactor_method crasher_methods[] = {
        {.name = "crash", .fn = crasher_crash},
        {.name = "exit_now", .fn = crasher_exit_now},
        {.name = "ping", .fn = method_ping, .flags = KACTOR_METHOD_READ_ONLY},
        {.name = "pid", .fn = method_pid, .flags = KACTOR_METHOD_READ_ONLY},
        {},
};

static const kactor_class crasher_class = {
        .name = "Crasher",
        .init = stateless_init,
        .methods = crasher_methods,
};

/* --- Failer: a constructor and methods that report errors ----------------------------------- */

/* Failer("fail", message) fails its constructor with message; Failer() succeeds. */
static int failer_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        const char *what, *msg = "constructor failed";

        *ret_state = NULL;
        if (kactor_value_list_size(args) == 0)
                return 0;
        if (kactor_arg_string(ctx, args, 0, &what) < 0)
                return -EINVAL;
        if (kactor_value_list_size(args) > 1 && kactor_arg_string(ctx, args, 1, &msg) < 0)
                return -EINVAL;
        if (strcmp(what, "fail") == 0)
                return kactor_fail(ctx, "%s", msg);
        return 0;
}

/* fail(message): fails with message. */
static int failer_fail(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *msg;
        int r = kactor_arg_string(ctx, args, 0, &msg);

        if (r < 0)
                return r;
        return kactor_fail(ctx, "%s", msg);
}

/* fail_errno(): fails with -EINVAL and no message. */
static int failer_fail_errno(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        return -EINVAL;
}

static int failer_ok(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_string("ok");
        return 0;
}

static const kactor_method failer_methods[] = {
        {.name = "fail", .fn = failer_fail},
        {.name = "fail_errno", .fn = failer_fail_errno},
        {.name = "ok", .fn = failer_ok},
        {},
};

static const kactor_class failer_class = {
        .name = "Failer",
        .init = failer_init,
        .methods = failer_methods,
};

/* --- Echo: returns its arguments as it received them ---------------------------------------- */

static int echo_echo(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_copy(args);
        return *ret ? 0 : -ENOMEM;
}

/* types(args...) -> the type name of each argument */
static int echo_types(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        kactor_value *l = kactor_value_new_list();

        for (size_t i = 0; l && i < kactor_value_list_size(args); i++)
                if (kactor_value_list_append(
                            l, kactor_value_new_string(kactor_type_to_string(
                                       kactor_value_type(kactor_value_list_get(args, i))))) < 0)
                        l = NULL;
        *ret = l;
        return l ? 0 : -ENOMEM;
}

static const kactor_method echo_methods[] = {
        {.name = "echo", .fn = echo_echo},
        {.name = "types", .fn = echo_types},
        {},
};

static const kactor_class echo_class = {
        .name = "Echo",
        .init = stateless_init,
        .methods = echo_methods,
};

/* --- Holder: keeps an actor handle and calls through it ------------------------------------- */

typedef struct Holder {
        kactor_actor target;
        bool has_target;
} Holder;

/* Holder([handle]) */
static int holder_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        Holder *s = calloc(1, sizeof(Holder));
        int r;

        if (!s)
                return -ENOMEM;
        if (kactor_value_list_size(args) > 0) {
                r = kactor_arg_actor(ctx, args, 0, &s->target);
                if (r < 0) {
                        free(s);
                        return r;
                }
                s->has_target = true;
        }
        *ret_state = s;
        return 0;
}

/* set(handle) */
static int holder_set(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Holder *s = state;
        int r = kactor_arg_actor(ctx, args, 0, &s->target);

        if (r < 0)
                return r;
        s->has_target = true;
        return 0;
}

/* call(method, args...) -> what the held actor's method returned */
static int holder_call(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Holder *s = state;
        kactor_value *rest;
        const char *method;
        int r;

        if (!s->has_target)
                return kactor_fail(ctx, "no actor held");
        r = kactor_arg_string(ctx, args, 0, &method);
        if (r < 0)
                return r;
        rest = args_tail(args, 1);
        if (!rest)
                return -ENOMEM;
        r = call_and_get(ctx, s->target, method, rest, ret);
        kactor_value_free(rest);
        return r;
}

/* handle() -> the held handle */
static int holder_handle(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        Holder *s = state;

        if (!s->has_target)
                return kactor_fail(ctx, "no actor held");
        *ret = kactor_value_new_actor_handle(s->target);
        return 0;
}

/* self() -> this actor's own handle */
static int holder_self(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_new_actor_handle(kactor_ctx_self(ctx));
        return 0;
}

static const kactor_method holder_methods[] = {
        {.name = "set", .fn = holder_set},
        {.name = "call", .fn = holder_call},
        {.name = "handle", .fn = holder_handle, .flags = KACTOR_METHOD_READ_ONLY},
        {.name = "self", .fn = holder_self, .flags = KACTOR_METHOD_READ_ONLY},
        {},
};

static const kactor_class holder_class = {
        .name = "Holder",
        .init = holder_init,
        .destroy = free,
        .methods = holder_methods,
};

/* --- GpuProbe: what the actor was given ----------------------------------------------------- */

/* {"ids": [the ids of kactor_ctx_gpu_ids()], "cuda": $CUDA_VISIBLE_DEVICES or null} */
static kactor_value *gpu_report(kactor_ctx *ctx) {
        kactor_value *m = kactor_value_new_map(), *ids = kactor_value_new_list();
        const char *cuda = getenv("CUDA_VISIBLE_DEVICES");
        const uint32_t *gpus = NULL;
        size_t n = kactor_ctx_gpu_ids(ctx, &gpus);

        for (size_t i = 0; ids && i < n; i++)
                if (kactor_value_list_append(ids, kactor_value_new_int(gpus[i])) < 0)
                        ids = NULL;
        if (!m || !ids || kactor_value_map_set(m, "ids", ids) < 0 ||
            kactor_value_map_set(m, "cuda", cuda ? kactor_value_new_string(cuda) : kactor_value_new_nil()) <
                    0)
                return kactor_value_free(m);
        return m;
}

static int gpuprobe_gpus(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = gpu_report(ctx);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method gpuprobe_methods[] = {
        {.name = "gpus", .fn = gpuprobe_gpus, .flags = KACTOR_METHOD_READ_ONLY},
        {.name = "pid", .fn = method_pid, .flags = KACTOR_METHOD_READ_ONLY},
        {},
};

static const kactor_class gpuprobe_class = {
        .name = "GpuProbe",
        .init = stateless_init,
        .methods = gpuprobe_methods,
};

/* --- remote functions ------------------------------------------------------------------------ */

/* add(a, b) -> a + b */
static int fn_add(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        int64_t a, b;
        int r;

        if ((r = kactor_arg_int(ctx, args, 0, &a)) < 0 || (r = kactor_arg_int(ctx, args, 1, &b)) < 0)
                return r;
        *ret = kactor_value_new_int(a + b);
        return 0;
}

/* echo(args...) -> [args...] */
static int fn_echo(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        *ret = kactor_value_copy(args);
        return *ret ? 0 : -ENOMEM;
}

/* fail(message) */
static int fn_fail(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        const char *msg;
        int r = kactor_arg_string(ctx, args, 0, &msg);

        if (r < 0)
                return r;
        return kactor_fail(ctx, "%s", msg);
}

/* sleep(ms) -> [start_ns, end_ns] */
static int fn_sleep(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        int64_t ms;
        int r = kactor_arg_int(ctx, args, 0, &ms);

        if (r < 0)
                return r;
        *ret = timed_sleep(ms);
        return *ret ? 0 : -ENOMEM;
}

/* make_actor(module, class, args...) -> a handle to a new (not detached) actor */
static int fn_make_actor(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        struct kactor_actor_opts opts = {.sz = sizeof(opts)};
        kactor_client *c = kactor_ctx_client(ctx);
        const char *module, *class_name;
        kactor_value *rest;
        kactor_actor a;
        int r;

        if ((r = kactor_arg_string(ctx, args, 0, &module)) < 0 ||
            (r = kactor_arg_string(ctx, args, 1, &class_name)) < 0)
                return r;
        rest = args_tail(args, 2);
        if (!rest)
                return -ENOMEM;
        r = kactor_create_actor(c, module, class_name, rest, &opts, &a);
        kactor_value_free(rest);
        if (r < 0)
                return kactor_fail(ctx, "creating %s failed: %s", class_name,
                                   kactor_client_error_message(c));
        *ret = kactor_value_new_actor_handle(a);
        return 0;
}

/* call_actor(handle, method, args...) -> the method's result */
static int fn_call_actor(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        const char *method;
        kactor_value *rest;
        kactor_actor a;
        int r;

        if ((r = kactor_arg_actor(ctx, args, 0, &a)) < 0 ||
            (r = kactor_arg_string(ctx, args, 1, &method)) < 0)
                return r;
        rest = args_tail(args, 2);
        if (!rest)
                return -ENOMEM;
        r = call_and_get(ctx, a, method, rest, ret);
        kactor_value_free(rest);
        return r;
}

/* call_n(handle, method, n) -> [the results of n calls made back to back, in order] */
static int fn_call_n(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        kactor_client *c = kactor_ctx_client(ctx);
        kactor_value **values = NULL, *l = NULL;
        kactor_ref *refs = NULL;
        const char *method;
        kactor_actor a;
        int64_t n;
        int r;

        if ((r = kactor_arg_actor(ctx, args, 0, &a)) < 0 ||
            (r = kactor_arg_string(ctx, args, 1, &method)) < 0 || (r = kactor_arg_int(ctx, args, 2, &n)) < 0)
                return r;
        if (n < 0 || n > 100000)
                return kactor_fail(ctx, "bad count %lld", (long long)n);
        refs = calloc((size_t)n + 1, sizeof(kactor_ref));
        if (!refs)
                return -ENOMEM;
        for (int64_t i = 0; i < n; i++) {
                r = kactor_call(c, a, method, NULL, &refs[i]);
                if (r < 0) {
                        r = kactor_fail(ctx, "call %lld failed: %s", (long long)i,
                                        kactor_client_error_message(c));
                        goto out;
                }
        }
        r = kactor_get(c, refs, (size_t)n, 0, &values);
        if (r < 0) {
                r = kactor_fail(ctx, "get failed: %s: %s", strerror(-r), kactor_client_error_message(c));
                goto out;
        }
        l = kactor_value_new_list();
        for (int64_t i = 0; l && i < n; i++) {
                if (kactor_value_is_error(values[i])) {
                        r = kactor_fail(ctx, "call %lld: %s", (long long)i,
                                        kactor_value_error_message(values[i]));
                        l = kactor_value_free(l);
                        goto out;
                }
                if (kactor_value_list_append(l, kactor_value_copy(values[i])) < 0)
                        l = NULL;
        }
        *ret = l;
        r = l ? 0 : -ENOMEM;
out:
        if (values)
                kactor_values_free(values, (size_t)n);
        (void)kactor_ref_release(c, refs, (size_t)n);
        free(refs);
        return r;
}

static int fn_rendezvous(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        return do_rendezvous(ctx, args, ret);
}

/* gpus() -> as GpuProbe.gpus */
static int fn_gpus(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        *ret = gpu_report(ctx);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_function functions[] = {
        {.name = "add", .fn = fn_add},
        {.name = "echo", .fn = fn_echo},
        {.name = "fail", .fn = fn_fail},
        {.name = "sleep", .fn = fn_sleep},
        {.name = "make_actor", .fn = fn_make_actor},
        {.name = "call_actor", .fn = fn_call_actor},
        {.name = "call_n", .fn = fn_call_n},
        {.name = "rendezvous", .fn = fn_rendezvous},
        {.name = "gpus", .fn = fn_gpus},
        {},
};

KACTOR_MODULE(.name = "testmod",
              .classes = (const kactor_class *const[]){&recorder_class, &sleeper_class, &crasher_class,
                                                       &failer_class, &echo_class, &holder_class,
                                                       &gpuprobe_class, NULL},
              .functions = functions);
