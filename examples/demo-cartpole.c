/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The seed's Gym example: an actor that wraps a stateful simulator.
 *
 *   env = CartPole.remote(seed)
 *   obs = ray.get(env.reset.remote())
 *   while not done: obs, reward, done = ray.get(env.step.remote(policy(obs)))
 *
 * The policy pushes the cart the way the pole is falling (by its angle and where its angular
 * velocity takes it next). Prints the episode's length and final observation, then shows that a
 * bad action comes back as a TaskFailed error value while the actor carries on.
 *
 * Usage: demo-cartpole MODULE_DIR [SEED]
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

#define MAX_STEPS 200
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

/* Calls a method with one int argument (or none when arg < 0), waits for the result and returns it;
 * an error value is returned as such. */
static int call_and_get(kactor_client *c, kactor_actor actor, const char *method, int64_t arg,
                        kactor_value **ret) {
        kactor_value *args = NULL;
        kactor_ref ref;
        int r;

        if (arg >= 0) {
                args = kactor_value_new_list();
                if (!args)
                        return -ENOMEM;
                r = kactor_value_list_append(args, kactor_value_new_int(arg));
                if (r < 0) {
                        kactor_value_free(args);
                        return r;
                }
        }

        r = kactor_call(c, actor, method, args, &ref);
        kactor_value_free(args);
        if (r < 0)
                return r;
        r = kactor_get1(c, ref, GET_TIMEOUT_USEC, ret);
        (void) kactor_ref_release(c, &ref, 1);
        return r;
}

/* Reads [x, x_dot, theta, theta_dot]. */
static int observation_read(const kactor_value *obs, double ret[4]) {
        if (kactor_value_type(obs) != KACTOR_TYPE_LIST || kactor_value_list_size(obs) != 4)
                return -EBADMSG;
        for (size_t i = 0; i < 4; i++)
                if (kactor_value_as_double(kactor_value_list_get(obs, i), &ret[i]) < 0)
                        return -EBADMSG;
        return 0;
}

static void observation_print(const char *what, const double obs[4]) {
        printf("%s[x=%+.4f, x_dot=%+.4f, theta=%+.4f, theta_dot=%+.4f]\n", what, obs[0], obs[1], obs[2], obs[3]);
}

static int report_error_value(const char *what, const kactor_value *v) {
        if (!kactor_value_is_error(v))
                return 0;
        fprintf(stderr, "%s failed: %s: %s\n", what, kactor_error_name(kactor_value_error_code(v)) ?: "error",
                kactor_value_error_message(v));
        return -EREMOTEIO;
}

static int run_episode(kactor_client *c, kactor_actor env) {
        kactor_value *v = NULL;
        double obs[4], total_reward = 0.0;
        bool done = false;
        int steps = 0, r;

        r = call_and_get(c, env, "reset", -1, &v);
        if (r < 0) {
                fprintf(stderr, "reset() failed: %s\n", client_strerror(c, r));
                return r;
        }
        r = report_error_value("reset()", v);
        if (r >= 0 && observation_read(v, obs) < 0) {
                fprintf(stderr, "reset() did not return [x, x_dot, theta, theta_dot]\n");
                r = -EBADMSG;
        }
        kactor_value_free(v);
        if (r < 0)
                return r;
        observation_print("initial observation: ", obs);

        while (!done && steps < MAX_STEPS) {
                /* Push the way the pole is falling, looking a little ahead. */
                int64_t action = obs[2] + 0.5 * obs[3] > 0 ? 1 : 0;
                const kactor_value *reward, *d;
                double rw = 0.0;

                r = call_and_get(c, env, "step", action, &v);
                if (r < 0) {
                        fprintf(stderr, "step() failed: %s\n", client_strerror(c, r));
                        return r;
                }
                r = report_error_value("step()", v);
                if (r < 0) {
                        kactor_value_free(v);
                        return r;
                }
                reward = kactor_value_map_get(v, "reward");
                d = kactor_value_map_get(v, "done");
                if (observation_read(kactor_value_map_get(v, "observation"), obs) < 0 ||
                    kactor_value_as_double(reward, &rw) < 0 || kactor_value_type(d) != KACTOR_TYPE_BOOL) {
                        fprintf(stderr, "step() did not return {\"observation\": [...], \"reward\": r, \"done\": b}\n");
                        kactor_value_free(v);
                        return -EBADMSG;
                }
                done = kactor_value_get_bool(d);
                total_reward += rw;
                steps++;
                kactor_value_free(v);

                if (steps % 25 == 0)
                        printf("  step %3d: theta=%+.4f x=%+.4f\n", steps, obs[2], obs[0]);
        }

        printf("episode length: %d steps (%s), total reward %.1f\n", steps,
               done ? "the pole fell or the cart left the track" : "balanced for the whole episode", total_reward);
        observation_print("final observation:   ", obs);
        return 0;
}

int main(int argc, char *argv[]) {
        kactor_value *args = NULL, *v = NULL;
        kactor_client *c = NULL;
        kactor_actor env = {};
        bool have_env = false;
        char *module = NULL;
        int64_t seed = 42;
        int r, ret = EXIT_FAILURE;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "Usage: %s MODULE_DIR [SEED]\n", argv[0]);
                return EXIT_FAILURE;
        }
        if (argc == 3)
                seed = strtoll(argv[2], NULL, 0);
        module = module_path(argv[1], "cartpole");
        if (!module) {
                fprintf(stderr, "Cannot find the module directory %s: %m\n", argv[1]);
                return EXIT_FAILURE;
        }

        r = kactor_connect(NULL, &c);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the node manager: %s\n", strerror(-r));
                goto finish;
        }

        args = kactor_value_new_list();
        if (!args || kactor_value_list_append(args, kactor_value_new_int(seed)) < 0) {
                fprintf(stderr, "Out of memory\n");
                goto finish;
        }
        r = kactor_create_actor(c, module, "CartPole", args, NULL, &env);
        if (r < 0) {
                fprintf(stderr, "Failed to create CartPole: %s\n", client_strerror(c, r));
                goto finish;
        }
        have_env = true;
        printf("CartPole actor created (seed %" PRIi64 "); one episode, a step per call:\n", seed);

        if (run_episode(c, env) < 0)
                goto finish;

        /* Bad input is the method's error, reported to the caller; the actor lives on. */
        printf("step(7), an invalid action, gives an error value:\n");
        r = call_and_get(c, env, "step", 7, &v);
        if (r < 0) {
                fprintf(stderr, "step(7) failed to run: %s\n", client_strerror(c, r));
                goto finish;
        }
        if (!kactor_value_is_error(v) || kactor_value_error_code(v) != KACTOR_ERROR_TASK_FAILED) {
                fprintf(stderr, "step(7) should have failed with TaskFailed\n");
                goto finish;
        }
        printf("  %s: %s\n", kactor_error_name(kactor_value_error_code(v)), kactor_value_error_message(v));
        v = kactor_value_free(v);

        r = call_and_get(c, env, "reset", -1, &v);
        if (r < 0 || report_error_value("reset() after the error", v) < 0) {
                if (r < 0)
                        fprintf(stderr, "reset() after the error failed: %s\n", client_strerror(c, r));
                goto finish;
        }
        printf("  ...and the actor still answers: reset() works after it.\n");

        ret = EXIT_SUCCESS;

finish:
        kactor_value_free(v);
        kactor_value_free(args);
        if (have_env)
                (void) kactor_actor_release(c, env);
        kactor_client_free(c);
        free(module);
        return ret;
}
