/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Probe: what an actor sees of its isolation (tests/integration/test-isolation.c). */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "kactor/module.h"
#include "proc-status.h"

static int probe_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        *ret_state = NULL;
        return 0;
}

/* open_errno(path) -> 0 when open(path, O_RDWR) succeeded, else its errno (ENXIO, EPERM, ...) */
static int probe_open_errno(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *path;
        int r = kactor_arg_string(ctx, args, 0, &path);
        if (r < 0)
                return r;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        int e = fd < 0 ? errno : 0;
        if (fd >= 0)
                close(fd);
        *ret = kactor_value_new_int(e);
        return 0;
}

/* identity() -> {"uid", "gid", "euid", "cap_eff", "cap_prm", "cap_bnd", "no_new_privs", "cgroup"} */
static int probe_identity(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        kactor_value *m = kactor_value_new_map();
        char *eff = status_field("CapEff"), *prm = status_field("CapPrm"), *bnd = status_field("CapBnd");
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
            kactor_value_map_set(m, "gid", kactor_value_new_int(getgid())) < 0 ||
            kactor_value_map_set(m, "euid", kactor_value_new_int(geteuid())) < 0 ||
            kactor_value_map_set(m, "cap_eff", kactor_value_new_string(eff ?: "?")) < 0 ||
            kactor_value_map_set(m, "cap_prm", kactor_value_new_string(prm ?: "?")) < 0 ||
            kactor_value_map_set(m, "cap_bnd", kactor_value_new_string(bnd ?: "?")) < 0 ||
            kactor_value_map_set(m, "no_new_privs", kactor_value_new_int(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0))) < 0 ||
            kactor_value_map_set(m, "cgroup", kactor_value_new_string(cg)) < 0)
                m = kactor_value_free(m);
        free(eff);
        free(prm);
        free(bnd);
        *ret = m;
        return m ? 0 : -ENOMEM;
}

/* spawn_child() -> the pid of a child that sleeps in its own session (it must not outlive a Kill) */
static int probe_spawn_child(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) setsid();
                (void) prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
                for (int i = 0; i < 3; i++)
                        close(i);
                for (;;)
                        pause();
        }
        *ret = kactor_value_new_int(pid);
        return 0;
}

static const kactor_method probe_methods[] = {
        { .name = "open_errno", .fn = probe_open_errno },
        { .name = "identity", .fn = probe_identity },
        { .name = "spawn_child", .fn = probe_spawn_child },
        {},
};

static const kactor_class probe_class = {
        .name = "Probe",
        .init = probe_init,
        .methods = probe_methods,
};

KACTOR_MODULE(.name = "isomod", .classes = (const kactor_class *const[]) { &probe_class, NULL });
