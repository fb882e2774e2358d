/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The systemd backend in a real systemd node booted with systemd-nspawn (TESTING.md); the steps are
 * in systemd-node.sh beside this file: the service started with systemctl from the unit files, actors
 * created with busctl, their scopes in systemctl list-units, the device program surviving
 * daemon-reload, nothing left after Kill and stop; in systemd-owners.sh, who may use whose actors; and
 * in systemd-deb.sh, the Debian package installed, used and purged.
 */

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../skip.h"

TestSuite(systemd, .timeout = 120);

/* Runs SCRIPT (beside this file) on the checkout and the build directory; exit 77: skipped. */
static void run_node_script(const char *script) {
        const char *build = getenv("KACTOR_BUILD");
        char *abs = realpath(build && *build ? build : "build", NULL), *cmd = NULL;
        cr_assert_not_null(abs, "no build directory");
        char *copy = strdup(abs);
        cr_assert_not_null(copy);
        const char *checkout = dirname(copy); /* the build directory's parent */
        cr_assert_geq(asprintf(&cmd, "'%s/tests/integration/%s' '%s' '%s'", checkout, script, checkout, abs), 0);
        int status = system(cmd);
        cr_assert_neq(status, -1);
        int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        if (rc == 77)
                kactor_skip_test("systemd-nspawn or root is missing");
        cr_assert_eq(rc, 0, "%s failed (exit %d); its output is above", script, rc);
        free(cmd);
        free(copy);
        free(abs);
}

Test(systemd, scopes_in_a_real_systemd_node) {
        run_node_script("systemd-node.sh");
}

/* Owners, sharing and polkit (systemd-owners.sh): users A and B of group kactor, a third member, an
 * admin whom a polkit rule authorizes, an outsider and root, with busctl on the system bus. */
Test(systemd, owners_and_polkit_in_a_real_systemd_node) {
        run_node_script("systemd-owners.sh");
}

/* The Debian package (systemd-deb.sh): `make deb`'s .deb installed with dpkg in a node whose /usr,
 * /etc and /var are overlays, the service enabled and running, busctl and kactorctl as root and as a
 * member of group kactor, then apt-get remove and dpkg --purge leaving nothing of the package. The
 * first run in a build folder builds the package too (make deb), hence the longer timeout. */
Test(systemd, package_in_a_real_systemd_node, .timeout = 300) {
        run_node_script("systemd-deb.sh");
}

/* The journal (systemd-journal.sh): an actor's stdout and stderr under its own identifier, worker,
 * user and scope; the node manager's entries without ERRNO=0, with creation, kills and the method a
 * worker died in. */
Test(systemd, journal_entries_of_actors_and_the_node_manager) {
        run_node_script("systemd-journal.sh");
}
