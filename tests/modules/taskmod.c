/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * What a task sees of its isolation (tests/integration/test-task-isolation.c): its user,
 * capabilities and cgroup, a daemon it leaves behind, and what runs on its behalf (a task it submits,
 * an actor it creates).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kactor/client.h"
#include "kactor/module.h"
#include "proc-status.h"

/* {"uid", "euid", "gid", "pid", "cap_eff", "cap_bnd", "no_new_privs", "cgroup"} of this process */
static kactor_value *identity(void) {
        kactor_value *m = kactor_value_new_map();
        char *eff = status_field("CapEff"), *bnd = status_field("CapBnd");
        char cg[1024] = "";
        FILE *f = fopen("/proc/self/cgroup", "re");
        if (f) {
                char line[1024];
                while (fgets(line, sizeof(line), f))
                        if (strncmp(line, "0::", 3) == 0) {
                                snprintf(cg, sizeof(cg), "%s", line + 3);
                                cg[strcspn(cg, "\n")] = 0;
                        }
                fclose(f);
        }
        if (!m || kactor_value_map_set(m, "uid", kactor_value_new_int(getuid())) < 0 ||
            kactor_value_map_set(m, "euid", kactor_value_new_int(geteuid())) < 0 ||
            kactor_value_map_set(m, "gid", kactor_value_new_int(getgid())) < 0 ||
            kactor_value_map_set(m, "pid", kactor_value_new_int(getpid())) < 0 ||
            kactor_value_map_set(m, "cap_eff", kactor_value_new_string(eff ?: "?")) < 0 ||
            kactor_value_map_set(m, "cap_bnd", kactor_value_new_string(bnd ?: "?")) < 0 ||
            kactor_value_map_set(m, "no_new_privs", kactor_value_new_int(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0))) < 0 ||
            kactor_value_map_set(m, "cgroup", kactor_value_new_string(cg)) < 0)
                m = kactor_value_free(m);
        free(eff);
        free(bnd);
        return m;
}

/* identity() -> the task's identity (see identity()) */
static int fn_identity(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        *ret = identity();
        return *ret ? 0 : -ENOMEM;
}

/* spawn_daemon() -> {"daemon": the pid of a double-forked child in a session of its own, "worker": ours} */
static int fn_spawn_daemon(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                (void) setsid();
                pid_t daemon = fork();
                if (daemon == 0) {
                        /* Nothing of the worker's: not its socket, not the pipe. */
                        for (int fd = 0; fd < 1024; fd++)
                                (void) close(fd);
                        for (;;)
                                pause();
                }
                (void) !write(pipefd[1], &daemon, sizeof(daemon));
                _exit(daemon > 0 ? 0 : 1);
        }
        close(pipefd[1]);
        pid_t daemon = -1;
        ssize_t n = read(pipefd[0], &daemon, sizeof(daemon));
        close(pipefd[0]);
        (void) waitpid(pid, NULL, 0);
        if (n != sizeof(daemon) || daemon <= 0)
                return kactor_fail(ctx, "could not start the daemon");
        kactor_value *m = kactor_value_new_map();
        if (!m || kactor_value_map_set(m, "daemon", kactor_value_new_int(daemon)) < 0 ||
            kactor_value_map_set(m, "worker", kactor_value_new_int(getpid())) < 0)
                m = kactor_value_free(m);
        *ret = m;
        return m ? 0 : -ENOMEM;
}

/* nested_identity(module) -> the identity of a task this task submits (module's identity()) */
static int fn_nested_identity(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        kactor_client *c = kactor_ctx_client(ctx);
        const char *module;
        kactor_ref ref;
        int r = kactor_arg_string(ctx, args, 0, &module);
        if (r < 0)
                return r;
        r = kactor_submit(c, module, "identity", NULL, NULL, &ref);
        if (r < 0)
                return kactor_fail(ctx, "submit: %s", kactor_client_error_message(c));
        r = kactor_get1(c, ref, 0, ret);
        (void) kactor_ref_release(c, &ref, 1);
        if (r < 0)
                return kactor_fail(ctx, "get: %s", kactor_client_error_message(c));
        return 0;
}

/* actor_identity(module) -> the identity of an actor of module's class Probe this task creates */
static int fn_actor_identity(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret) {
        kactor_client *c = kactor_ctx_client(ctx);
        struct kactor_actor_opts opts = { .sz = sizeof(opts) };
        const char *module;
        kactor_actor a;
        kactor_ref ref;
        int r = kactor_arg_string(ctx, args, 0, &module);
        if (r < 0)
                return r;
        r = kactor_create_actor(c, module, "Probe", NULL, &opts, &a);
        if (r < 0)
                return kactor_fail(ctx, "create: %s", kactor_client_error_message(c));
        r = kactor_call(c, a, "identity", NULL, &ref);
        if (r < 0)
                return kactor_fail(ctx, "call: %s", kactor_client_error_message(c));
        r = kactor_get1(c, ref, 0, ret);
        (void) kactor_ref_release(c, &ref, 1);
        if (r < 0)
                return kactor_fail(ctx, "get: %s", kactor_client_error_message(c));
        return 0;
}

static int probe_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        *ret_state = NULL;
        return 0;
}

static int probe_identity(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        *ret = identity();
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method probe_methods[] = {
        { .name = "identity", .fn = probe_identity },
        {},
};

static const kactor_class probe_class = {
        .name = "Probe",
        .init = probe_init,
        .methods = probe_methods,
};

static const kactor_function functions[] = {
        { .name = "identity", .fn = fn_identity },
        { .name = "spawn_daemon", .fn = fn_spawn_daemon },
        { .name = "nested_identity", .fn = fn_nested_identity },
        { .name = "actor_identity", .fn = fn_actor_identity },
        {},
};

KACTOR_MODULE(.name = "taskmod", .classes = (const kactor_class *const[]) { &probe_class, NULL },
              .functions = functions);
