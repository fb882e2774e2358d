/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The seed's handle-passing example:
 *
 *   @ray.remote
 *   def f(counter):
 *       for _ in range(100): ray.get(counter.increment.remote())
 *
 *   counter = Counter.remote()
 *   [f.remote(counter) for _ in range(4)]     # four tasks share one actor through its handle
 *   ray.get(counter.get.remote())              # read while they run: the value rises
 *
 * Then one of the seed's limitations, lifted: a task creates a Counter and returns its handle,
 * and the caller uses it.
 *
 * Usage: demo-handles MODULE_DIR
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

#define N_TASKS 4
#define N_INCREMENTS 100
#define DELAY_MSEC 2 /* between a task's increments, so there is time to watch */
#define POLL_USEC (40ULL * 1000)
#define MAX_POLLS 1500 /* 60 s */
#define GET_TIMEOUT_USEC (60ULL * 1000 * 1000)

static const char *client_strerror(kactor_client *c, int r) {
        if (r == -EREMOTEIO && kactor_client_error_message(c)[0] != '\0')
                return kactor_client_error_message(c);
        return strerror(-r);
}

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

/* Calls a method without arguments and returns its int result. */
static int call_get_int(kactor_client *c, kactor_actor actor, const char *method, int64_t *ret) {
        kactor_value *v = NULL;
        kactor_ref ref;
        int r;

        r = kactor_call(c, actor, method, NULL, &ref);
        if (r < 0) {
                fprintf(stderr, "%s() could not be called: %s\n", method, client_strerror(c, r));
                return r;
        }
        r = kactor_get1(c, ref, GET_TIMEOUT_USEC, &v);
        (void) kactor_ref_release(c, &ref, 1);
        if (r < 0) {
                fprintf(stderr, "%s(): no result: %s\n", method, client_strerror(c, r));
                return r;
        }
        if (kactor_value_is_error(v)) {
                fprintf(stderr, "%s() failed: %s: %s\n", method, kactor_error_name(kactor_value_error_code(v)) ?: "error",
                        kactor_value_error_message(v));
                r = -EREMOTEIO;
        } else if (kactor_value_as_int(v, ret) < 0) {
                fprintf(stderr, "%s() did not return an int\n", method);
                r = -EBADMSG;
        }
        kactor_value_free(v);
        return r;
}

/* Four tasks increment one counter through its handle while we watch it rise. */
static int share_counter(kactor_client *c, const char *module) {
        struct kactor_task_opts task_opts = {
                .sz = sizeof(task_opts),
                /* They mostly wait for the counter; a small share lets all four run at once even on
                 * a two-CPU node. */
                .num_cpus = 0.25,
        };
        kactor_ref tasks[N_TASKS];
        kactor_value *args = NULL, **results = NULL;
        kactor_actor counter;
        size_t n_tasks = 0;
        int64_t value, last_seen = -1, best = 0;
        bool all_done = false;
        int r;

        r = kactor_create_actor(c, module, "Counter", NULL, NULL, &counter);
        if (r < 0) {
                fprintf(stderr, "Failed to create a Counter: %s\n", client_strerror(c, r));
                return r;
        }

        /* increment_loop(counter, 100, delay_ms): the handle is an argument like any value. */
        args = kactor_value_new_list();
        if (!args || kactor_value_list_append(args, kactor_value_new_actor_handle(counter)) < 0 ||
            kactor_value_list_append(args, kactor_value_new_int(N_INCREMENTS)) < 0 ||
            kactor_value_list_append(args, kactor_value_new_int(DELAY_MSEC)) < 0) {
                fprintf(stderr, "Out of memory\n");
                r = -ENOMEM;
                goto finish;
        }
        printf("One Counter, %d tasks increment_loop(counter, %d) sharing its handle.\n", N_TASKS, N_INCREMENTS);
        for (; n_tasks < N_TASKS; n_tasks++) {
                r = kactor_submit(c, module, "increment_loop", args, &task_opts, &tasks[n_tasks]);
                if (r < 0) {
                        fprintf(stderr, "Failed to submit increment_loop: %s\n", client_strerror(c, r));
                        goto finish;
                }
        }
        r = kactor_flush(c);
        if (r < 0) {
                fprintf(stderr, "Failed to send the tasks: %s\n", strerror(-r));
                goto finish;
        }

        printf("Reading the counter while the tasks run (the values must never go down):\n");
        for (int polls = 0; !all_done && polls < MAX_POLLS; polls++) {
                bool ready[N_TASKS];

                r = kactor_wait(c, tasks, n_tasks, n_tasks, POLL_USEC, ready);
                if (r < 0 && r != -ETIMEDOUT) {
                        fprintf(stderr, "Failed to wait for the tasks: %s\n", client_strerror(c, r));
                        goto finish;
                }
                all_done = r == (int) n_tasks;

                r = call_get_int(c, counter, "get", &value);
                if (r < 0)
                        goto finish;
                if (value < last_seen) {
                        fprintf(stderr, "The counter went down from %" PRIi64 " to %" PRIi64 "\n", last_seen, value);
                        r = -EBADMSG;
                        goto finish;
                }
                if (value != last_seen)
                        printf("  counter.get() = %" PRIi64 "%s\n", value, all_done ? " (all tasks done)" : "");
                last_seen = value;
        }
        if (!all_done) {
                fprintf(stderr, "The tasks did not finish within a minute\n");
                r = -ETIMEDOUT;
                goto finish;
        }

        r = kactor_get(c, tasks, n_tasks, GET_TIMEOUT_USEC, &results);
        if (r < 0) {
                fprintf(stderr, "Failed to get the tasks' results: %s\n", client_strerror(c, r));
                goto finish;
        }
        printf("The last value each task saw:");
        for (size_t i = 0; i < n_tasks; i++) {
                int64_t v;

                if (kactor_value_is_error(results[i])) {
                        fprintf(stderr, "\nTask %zu failed: %s: %s\n", i,
                                kactor_error_name(kactor_value_error_code(results[i])) ?: "error",
                                kactor_value_error_message(results[i]));
                        r = -EREMOTEIO;
                } else if (kactor_value_as_int(results[i], &v) < 0) {
                        fprintf(stderr, "\nTask %zu returned something other than an int\n", i);
                        r = -EBADMSG;
                } else {
                        printf(" %" PRIi64, v);
                        best = v > best ? v : best;
                }
        }
        printf("\n");
        kactor_values_free(results, n_tasks);
        if (r < 0)
                goto finish;

        r = call_get_int(c, counter, "get", &value);
        if (r < 0)
                goto finish;
        printf("Final value: %" PRIi64 " (expected %d)\n", value, N_TASKS * N_INCREMENTS);
        if (value != N_TASKS * N_INCREMENTS || best != value) {
                fprintf(stderr, "Wrong final value: increments were lost or counted twice\n");
                r = -EBADMSG;
                goto finish;
        }
        r = 0;

finish:
        kactor_value_free(args);
        if (n_tasks > 0)
                (void) kactor_ref_release(c, tasks, n_tasks);
        (void) kactor_actor_release(c, counter);
        return r;
}

/* A task creates a Counter and returns its handle; we call the counter through it. */
static int returned_handle(kactor_client *c, const char *module) {
        kactor_value *args = NULL, *v = NULL;
        kactor_actor counter = {};
        bool have_counter = false;
        char id[KACTOR_ID_STRING_MAX];
        int64_t value;
        kactor_ref ref;
        int r;

        args = kactor_value_new_list();
        if (!args || kactor_value_list_append(args, kactor_value_new_int(100)) < 0) {
                kactor_value_free(args);
                return -ENOMEM;
        }
        printf("A task creates a Counter(100) and returns its handle:\n");
        r = kactor_submit(c, module, "make_counter", args, NULL, &ref);
        kactor_value_free(args);
        if (r < 0) {
                fprintf(stderr, "Failed to submit make_counter: %s\n", client_strerror(c, r));
                return r;
        }
        r = kactor_get1(c, ref, GET_TIMEOUT_USEC, &v);
        (void) kactor_ref_release(c, &ref, 1);
        if (r < 0) {
                fprintf(stderr, "make_counter(): no result: %s\n", client_strerror(c, r));
                return r;
        }
        if (kactor_value_is_error(v)) {
                fprintf(stderr, "make_counter() failed: %s: %s\n",
                        kactor_error_name(kactor_value_error_code(v)) ?: "error", kactor_value_error_message(v));
                r = -EREMOTEIO;
                goto finish;
        }
        if (kactor_value_type(v) != KACTOR_TYPE_ACTOR) {
                fprintf(stderr, "make_counter() returned a %s, not an actor handle\n",
                        kactor_type_to_string(kactor_value_type(v)));
                r = -EBADMSG;
                goto finish;
        }
        /* Receiving the handle in a value makes this client one of its holders. */
        counter = kactor_value_get_actor(v);
        have_counter = true;
        kactor_id_to_string(counter.id, id);
        printf("  make_counter() returned the actor handle %s\n", id);

        r = call_get_int(c, counter, "increment", &value);
        if (r < 0)
                goto finish;
        printf("  increment() through it returned %" PRIi64 " (expected 101)\n", value);
        if (value != 101) {
                r = -EBADMSG;
                goto finish;
        }
        r = 0;

finish:
        kactor_value_free(v);
        if (have_counter)
                (void) kactor_actor_release(c, counter);
        return r;
}

int main(int argc, char *argv[]) {
        kactor_client *c = NULL;
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

        if (share_counter(c, module) < 0)
                goto finish;
        if (returned_handle(c, module) < 0)
                goto finish;

        printf("OK: handles passed to tasks, used concurrently, and returned from a task.\n");
        ret = EXIT_SUCCESS;

finish:
        kactor_client_free(c);
        free(module);
        return ret;
}
