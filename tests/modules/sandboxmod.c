/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Probe: what an actor meets of the service's system call filter (units/kactor-nodemgr.service.in;
 * tests/integration/systemd-node.sh). Each call is one the filter refuses with EPERM, made so that
 * without the filter it fails with another errno and changes nothing. (Calls that systemd-nspawn
 * refuses by itself, as most of @obsolete, would tell nothing in the test's node.)
 */

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kactor/module.h"

static int probe_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        *ret_state = NULL;
        return 0;
}

/* syscall_errno(name) -> the errno of that call (0: it succeeded):
 *   "ptrace"   PTRACE_PEEKDATA of pid 0, not a tracee: ESRCH (@debug: EPERM)
 *   "setns"    on no fd: EBADF (RestrictNamespaces=: EPERM)
 *   "seccomp"  SECCOMP_GET_ACTION_AVAIL of SECCOMP_RET_ERRNO: 0 (allowed: it only takes rights away) */
static int probe_syscall_errno(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        const char *name;
        long r;

        int k = kactor_arg_string(ctx, args, 0, &name);
        if (k < 0)
                return k;
        errno = 0;
        if (strcmp(name, "ptrace") == 0)
                r = ptrace(PTRACE_PEEKDATA, 0, NULL, NULL);
        else if (strcmp(name, "setns") == 0)
                r = setns(-1, CLONE_NEWNET);
        else if (strcmp(name, "seccomp") == 0) {
                unsigned action = SECCOMP_RET_ERRNO;
                r = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
        } else
                return kactor_fail(ctx, "unknown system call %s", name);
        *ret = kactor_value_new_int(r < 0 ? errno : 0);
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method probe_methods[] = {
        { .name = "syscall_errno", .fn = probe_syscall_errno },
        {},
};

static const kactor_class probe_class = {
        .name = "Probe",
        .init = probe_init,
        .methods = probe_methods,
};

KACTOR_MODULE(.name = "sandboxmod", .classes = (const kactor_class *const[]) { &probe_class, NULL });
