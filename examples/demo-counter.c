/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The seed's counter example:
 *
 *   counters = [Counter.remote() for _ in range(10)]
 *   ray.get([c.increment.remote() for c in counters])       # [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
 *   ray.get([counters[0].increment.remote() for _ in range(5)])  # [2, 3, 4, 5, 6]
 *
 * Usage: demo-counter MODULE_DIR   (the directory holding counter.so; the node manager's socket is
 * $KACTOR_SOCKET, else /run/kactor/nodemgr.sock). Exits non-zero when the results differ.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf() */
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kactor/client.h>

#define N_COUNTERS 10
#define N_MORE 5
#define GET_TIMEOUT_USEC (60ULL * 1000 * 1000)

static const char *client_strerror(kactor_client *c, int r) {
        if (r == -EREMOTEIO && kactor_client_error_message(c)[0] != '\0')
                return kactor_client_error_message(c);
        return strerror(-r);
}

/* DIR/NAME.so with DIR made absolute: the node manager resolves paths from its own directory. */
static char *module_path(const char *dir, const char *name) {
        char *abs, *path;

        abs = realpath(dir, NULL);
        if (!abs)
                return NULL;
        if (asprintf(&path, "%s/%s.so", abs, name) < 0)
                path = NULL;
        free(abs);
        return path;
}

/* Prints the results as a list of ints and compares them with want[]. */
static int print_and_check(kactor_value **values, const int64_t *want, size_t n) {
        bool ok = true;

        printf("[");
        for (size_t i = 0; i < n; i++) {
                int64_t v;

                if (kactor_value_is_error(values[i])) {
                        printf("%s%s", i > 0 ? ", " : "", kactor_error_name(kactor_value_error_code(values[i])));
                        fprintf(stderr, "\nresult %zu failed: %s\n", i, kactor_value_error_message(values[i]));
                        ok = false;
                } else if (kactor_value_as_int(values[i], &v) < 0) {
                        printf("%s<%s>", i > 0 ? ", " : "", kactor_type_to_string(kactor_value_type(values[i])));
                        ok = false;
                } else {
                        printf("%s%" PRIi64, i > 0 ? ", " : "", v);
                        ok = ok && v == want[i];
                }
        }
        printf("]\n");
        return ok ? 0 : -EBADMSG;
}

int main(int argc, char *argv[]) {
        static const int64_t want_first[N_COUNTERS] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
        static const int64_t want_more[N_MORE] = { 2, 3, 4, 5, 6 };
        kactor_actor counters[N_COUNTERS];
        kactor_ref refs[N_COUNTERS];
        kactor_value **values = NULL;
        kactor_client *c = NULL;
        size_t n_counters = 0, n_refs = 0;
        char *module = NULL;
        int r, ret = EXIT_FAILURE;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s MODULE_DIR\n", argv[0]);
                return EXIT_FAILURE;
        }
        module = module_path(argv[1], "counter");
        if (!module) {
                fprintf(stderr, "Cannot find the module directory %s: %m\n", argv[1]);
                return EXIT_FAILURE;
        }

        r = kactor_connect(NULL, &c);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the node manager: %s\n", strerror(-r));
                goto finish;
        }

        for (; n_counters < N_COUNTERS; n_counters++) {
                r = kactor_create_actor(c, module, "Counter", NULL, NULL, &counters[n_counters]);
                if (r < 0) {
                        fprintf(stderr, "Failed to create Counter %zu: %s\n", n_counters, client_strerror(c, r));
                        goto finish;
                }
        }

        /* Ten calls in flight at once, one get for all of them. */
        printf("Ten counters, each incremented once (10 calls in flight, then one get):\n");
        for (; n_refs < N_COUNTERS; n_refs++) {
                r = kactor_call(c, counters[n_refs], "increment", NULL, &refs[n_refs]);
                if (r < 0) {
                        fprintf(stderr, "Failed to call increment: %s\n", client_strerror(c, r));
                        goto finish;
                }
        }
        r = kactor_get(c, refs, n_refs, GET_TIMEOUT_USEC, &values);
        if (r < 0) {
                fprintf(stderr, "Failed to get the results: %s\n", client_strerror(c, r));
                goto finish;
        }
        r = print_and_check(values, want_first, N_COUNTERS);
        kactor_values_free(values, N_COUNTERS);
        values = NULL;
        (void) kactor_ref_release(c, refs, n_refs);
        n_refs = 0;
        if (r < 0) {
                fprintf(stderr, "Expected [1, 1, 1, 1, 1, 1, 1, 1, 1, 1].\n");
                goto finish;
        }

        /* Calls on one actor run one at a time, in the order they were made. */
        printf("The first counter incremented five more times:\n");
        for (; n_refs < N_MORE; n_refs++) {
                r = kactor_call(c, counters[0], "increment", NULL, &refs[n_refs]);
                if (r < 0) {
                        fprintf(stderr, "Failed to call increment: %s\n", client_strerror(c, r));
                        goto finish;
                }
        }
        r = kactor_get(c, refs, n_refs, GET_TIMEOUT_USEC, &values);
        if (r < 0) {
                fprintf(stderr, "Failed to get the results: %s\n", client_strerror(c, r));
                goto finish;
        }
        r = print_and_check(values, want_more, N_MORE);
        kactor_values_free(values, N_MORE);
        values = NULL;
        if (r < 0) {
                fprintf(stderr, "Expected [2, 3, 4, 5, 6].\n");
                goto finish;
        }

        printf("OK: calls on different actors ran in parallel, calls on one actor ran in order.\n");
        ret = EXIT_SUCCESS;

finish:
        if (c) {
                if (n_refs > 0)
                        (void) kactor_ref_release(c, refs, n_refs);
                /* With the last handle gone, each counter stops. */
                for (size_t i = 0; i < n_counters; i++)
                        (void) kactor_actor_release(c, counters[i]);
        }
        kactor_client_free(c);
        free(module);
        return ret;
}
