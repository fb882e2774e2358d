/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Users and groups for the integration tests: see users.h. */

#include <criterion/criterion.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "users.h"

/* Runs cmd (a shell command line) until it exits 0, 50 times at most, 100 ms apart: useradd and
 * friends fail at once, rather than wait, while another process holds the lock on /etc/passwd or
 * /etc/group. Returns the last run's exit status (-1: it did not exit). */
static int users_run_tool(const char *cmd) {
        int status = -1;

        for (unsigned i = 0; i < 50; i++) {
                status = system(cmd);
                if (status == 0)
                        return 0;
                (void) usleep(100 * 1000);
        }
        return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void users_group_make(TestGroup *g, const char *prefix, const char *suffix, UsersGid gid) {
        _cleanup_free_ char *cmd = NULL;

        snprintf(g->name, sizeof(g->name), "%s%d%s", prefix, (int) getpid(), suffix);
        cr_assert_geq(asprintf(&cmd, "groupadd %s%s",
                               gid == USERS_GID_ABOVE_UIDS ? "-K GID_MIN=43000 -K GID_MAX=49999 " : "",
                               g->name),
                      0);
        cr_assert_eq(users_run_tool(cmd), 0, "%s failed", cmd);
        g->made = true;
        struct group *gr = getgrnam(g->name);
        cr_assert_not_null(gr, "no group %s after %s", g->name, cmd);
        g->gid = gr->gr_gid;
}

void users_group_remove(TestGroup *g) {
        _cleanup_free_ char *cmd = NULL;

        if (!g->made)
                return;
        /* userdel removes a user's primary group along with it when the group has the user's name
         * (USERGROUPS_ENAB in /etc/login.defs). */
        if (getgrnam(g->name) && asprintf(&cmd, "groupdel %s", g->name) >= 0)
                (void) users_run_tool(cmd);
        g->made = false;
}

void users_make(TestUser *u, const char *prefix, const char *suffix, const TestGroup *primary,
                const TestGroup *supplementary) {
        _cleanup_free_ char *cmd = NULL;

        snprintf(u->name, sizeof(u->name), "%s%d%s", prefix, (int) getpid(), suffix);
        cr_assert_geq(asprintf(&cmd, "useradd -M -N %s%s %s%s -s /usr/sbin/nologin %s", primary ? "-g " : "",
                               primary ? primary->name : "", supplementary ? "-G " : "",
                               supplementary ? supplementary->name : "", u->name),
                      0);
        cr_assert_eq(users_run_tool(cmd), 0, "%s failed", cmd);
        u->made = true;
        struct passwd *pw = getpwnam(u->name);
        cr_assert_not_null(pw, "no user %s after %s", u->name, cmd);
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
}

void users_remove(TestUser *u) {
        _cleanup_free_ char *cmd = NULL;

        if (!u->made)
                return;
        /* 2>/dev/null: userdel warns about the mail spool and home directory it did not find. */
        if (asprintf(&cmd, "userdel -f %s 2>/dev/null", u->name) >= 0)
                (void) users_run_tool(cmd);
        u->made = false;
}

int users_busctl(Harness *h, const TestUser *u, const char **ret_out, const char *fmt, ...) {
        _cleanup_free_ char *args = NULL, *cmd = NULL;
        char *out = NULL, buf[4096];
        size_t size = 0, n;
        va_list ap;

        va_start(ap, fmt);
        cr_assert_geq(vasprintf(&args, fmt, ap), 0);
        va_end(ap);
        cr_assert_geq(asprintf(&cmd,
                               "setpriv --reuid=%u --regid=%u --init-groups "
                               "busctl --address=%s --timeout=10 --no-pager %s 2>&1",
                               (unsigned) u->uid, (unsigned) u->gid, h->bus_address, args),
                      0);
        FILE *p = popen(cmd, "re");
        cr_assert_not_null(p, "%s: %m", cmd);
        FILE *mem = open_memstream(&out, &size);
        cr_assert_not_null(mem);
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
                fwrite(buf, 1, n, mem);
        cr_assert_eq(fclose(mem), 0);
        int status = pclose(p);
        while (size > 0 && out[size - 1] == '\n')
                out[--size] = 0;
        *ret_out = harness_keep(h, out);
        return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int users_busctl_get(Harness *h, const TestUser *u, const char **ret_out, const char *object_path) {
        return users_busctl(h, u, ret_out,
                            "call " HARNESS_BUS_NAME " " HARNESS_BUS_PATH " " HARNESS_IFACE_MANAGER
                            " Get aot 1 %s 10000000",
                            object_path);
}
