/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CartPole: an actor that wraps a stateful simulator, standing in for the seed's Gym environment
 * example. The physics are the classic cart-pole of Barto, Sutton and Anderson as Gym implements
 * it (CartPole-v0/v1: Euler integration, 0.02 s steps, the episode ends when the cart leaves
 * +-2.4 or the pole leans more than 12 degrees).
 *
 *   class CartPole(seed=0)
 *           reset() -> [x, x_dot, theta, theta_dot]     a new episode, state uniform in [-0.05, 0.05]
 *           step(action) -> {"observation": [...], "reward": 1.0, "done": bool}
 *                   action 0 pushes the cart left, 1 pushes it right; stepping on after "done"
 *                   gives reward 0.0, as Gym does.
 *
 * The random numbers come from the actor's own seeded generator, so an episode is reproducible and
 * a rebuilt actor that replays its calls reaches the same state.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include <kactor/module.h>

/* Every method has the same signature; most use only some of its parameters. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define GRAVITY 9.8
#define MASS_CART 1.0
#define MASS_POLE 0.1
#define TOTAL_MASS (MASS_CART + MASS_POLE)
#define POLE_HALF_LENGTH 0.5 /* "length" in Gym: half the pole's length */
#define POLE_MASS_LENGTH (MASS_POLE * POLE_HALF_LENGTH)
#define FORCE_MAG 10.0
#define TAU 0.02 /* seconds between state updates */
#define X_THRESHOLD 2.4
#define THETA_THRESHOLD_RADIANS (12.0 * 2.0 * M_PI / 360.0)

typedef struct CartPole {
        double x, x_dot, theta, theta_dot;
        uint64_t rng;
        bool started;          /* reset() was called */
        bool done;             /* the episode has ended */
} CartPole;

/* splitmix64: spreads any seed, 0 included, into a good xorshift state. */
static uint64_t seed_mix(uint64_t seed) {
        uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        return z != 0 ? z : 0x2545f4914f6cdd1dULL;
}

/* xorshift64*: small, fast and good enough for initial states. */
static uint64_t rng_next(uint64_t *s) {
        uint64_t x = *s;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [lo, hi). */
static double rng_uniform(uint64_t *s, double lo, double hi) {
        double u = (double) (rng_next(s) >> 11) * 0x1.0p-53;

        return lo + (hi - lo) * u;
}

static int cartpole_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        int64_t seed = 0;
        CartPole *env;
        int r;

        if (args && kactor_value_list_size(args) > 0) {
                r = kactor_arg_int(ctx, args, 0, &seed);
                if (r < 0)
                        return r;
        }

        env = calloc(1, sizeof(*env));
        if (!env)
                return -ENOMEM;
        env->rng = seed_mix((uint64_t) seed);

        *ret_state = env;
        return 0;
}

static kactor_value *observation_new(const CartPole *env) {
        const double obs[] = { env->x, env->x_dot, env->theta, env->theta_dot };
        kactor_value *list;

        list = kactor_value_new_list();
        if (!list)
                return NULL;
        for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
                if (kactor_value_list_append(list, kactor_value_new_double(obs[i])) < 0)
                        return kactor_value_free(list);
        return list;
}

static int cartpole_reset(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        CartPole *env = state;

        env->x = rng_uniform(&env->rng, -0.05, 0.05);
        env->x_dot = rng_uniform(&env->rng, -0.05, 0.05);
        env->theta = rng_uniform(&env->rng, -0.05, 0.05);
        env->theta_dot = rng_uniform(&env->rng, -0.05, 0.05);
        env->started = true;
        env->done = false;

        *ret = observation_new(env);
        return *ret ? 0 : -ENOMEM;
}

static void cartpole_advance(CartPole *env, int64_t action) {
        double force = action == 1 ? FORCE_MAG : -FORCE_MAG;
        double costheta = cos(env->theta), sintheta = sin(env->theta);
        double temp, thetaacc, xacc;

        temp = (force + POLE_MASS_LENGTH * env->theta_dot * env->theta_dot * sintheta) / TOTAL_MASS;
        thetaacc = (GRAVITY * sintheta - costheta * temp) /
                   (POLE_HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * costheta * costheta / TOTAL_MASS));
        xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS;

        /* Euler, in Gym's order: positions move with the old velocities. */
        env->x += TAU * env->x_dot;
        env->x_dot += TAU * xacc;
        env->theta += TAU * env->theta_dot;
        env->theta_dot += TAU * thetaacc;
}

static int cartpole_step(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        CartPole *env = state;
        kactor_value *result = NULL, *obs;
        bool was_done;
        int64_t action;
        int r;

        if (!args || kactor_value_list_size(args) != 1)
                return kactor_fail(ctx, "step() takes one argument, the action (0: push left, 1: push right)");
        if (kactor_value_as_int(kactor_value_list_get(args, 0), &action) < 0)
                return kactor_fail(ctx, "step(): the action must be the integer 0 or 1, got a %s",
                                   kactor_type_to_string(kactor_value_type(kactor_value_list_get(args, 0))));
        if (action != 0 && action != 1)
                return kactor_fail(ctx, "step(): invalid action %" PRIi64 " (0: push left, 1: push right)",
                                   action);
        if (!env->started)
                return kactor_fail(ctx, "step(): call reset() before the first step");

        /* Build the result in full before changing the state, so that a failure leaves it as it was. */
        CartPole next = *env;
        was_done = next.done;
        cartpole_advance(&next, action);
        next.done = next.x < -X_THRESHOLD || next.x > X_THRESHOLD || next.theta < -THETA_THRESHOLD_RADIANS ||
                    next.theta > THETA_THRESHOLD_RADIANS;

        result = kactor_value_new_map();
        if (!result)
                return -ENOMEM;
        obs = observation_new(&next);
        if (!obs) {
                kactor_value_free(result);
                return -ENOMEM;
        }
        r = kactor_value_map_set(result, "observation", obs);
        if (r >= 0)
                r = kactor_value_map_set(result, "reward", kactor_value_new_double(was_done ? 0.0 : 1.0));
        if (r >= 0)
                r = kactor_value_map_set(result, "done", kactor_value_new_bool(next.done));
        if (r < 0) {
                kactor_value_free(result);
                return r;
        }

        *env = next;
        *ret = result;
        return 0;
}

static const kactor_method cartpole_methods[] = {
        { .name = "reset", .fn = cartpole_reset },
        { .name = "step", .fn = cartpole_step },
        {}
};

static const kactor_class cartpole_class = {
        .name = "CartPole",
        .init = cartpole_init,
        .destroy = free,
        .methods = cartpole_methods,
};

KACTOR_MODULE(.name = "cartpole", .classes = (const kactor_class *const[]) { &cartpole_class, NULL });
