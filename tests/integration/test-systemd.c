/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The systemd backend in a real systemd node booted with systemd-nspawn (TESTING.md); the steps are
 * in systemd-node.sh beside this file: the service started with systemctl from the unit files, actors
 * created with busctl, their scopes in systemctl list-units, the device program surviving
 * daemon-reload, nothing left after Kill and stop.
 */

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../skip.h"

TestSuite(systemd, .timeout = 120);

Test(systemd, scopes_in_a_real_systemd_node) {
        const char *build = getenv("KACTOR_BUILD");
        char *abs = realpath(build && *build ? build : "build", NULL), *cmd = NULL;
        cr_assert_not_null(abs, "no build directory");
        char *copy = strdup(abs);
        cr_assert_not_null(copy);
        const char *checkout = dirname(copy); /* the build directory's parent */
        cr_assert_geq(asprintf(&cmd, "'%s/tests/integration/systemd-node.sh' '%s' '%s'", checkout, checkout, abs), 0);
        int status = system(cmd);
        cr_assert_neq(status, -1);
        int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        if (rc == 77)
                kactor_skip_test("systemd-nspawn or root is missing");
        cr_assert_eq(rc, 0, "systemd-node.sh failed (exit %d); its output is above", rc);
        free(cmd);
        free(copy);
        free(abs);
}
