/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NeuralNet: the seed's GPU actor example. It is created with num_gpus=N; inside it, the GPUs the
 * node manager assigned are in kactor_ctx_gpu_ids() and in CUDA_VISIBLE_DEVICES, and the device
 * cgroup lets it open those GPUs and no others. The "network" is a softmax classifier
 * (multinomial logistic regression) trained with batch gradient descent in plain C on a synthetic
 * data set the actor makes itself, so the example runs on machines without a GPU too; a real
 * model would hand CUDA_VISIBLE_DEVICES' devices to its framework here.
 *
 *   class NeuralNet(n_samples=1000, n_features=8, n_classes=3, seed=1)
 *           train(epochs=100, learning_rate=0.5) -> double   accuracy on the held-out fifth
 *           gpu_ids() -> [int, ...]                         the GPUs assigned to this actor
 *           cuda_visible_devices() -> string or nil         CUDA_VISIBLE_DEVICES as the actor sees it
 *
 * The data: one Gaussian blob per class around a random centre, labels drawn at random, all from
 * a seeded generator, so the same arguments always give the same data and the same accuracy.
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <kactor/module.h>

/* Every method has the same signature; most use only some of its parameters. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define CENTRE_SPREAD 1.5 /* standard deviation of the class centres; the points' own is 1 */

typedef struct NeuralNet {
        size_t n_samples, n_train, n_features, n_classes;
        double *x;       /* n_samples x n_features, row-major */
        uint32_t *y;     /* n_samples labels */
        double *weights; /* n_classes x (n_features + 1); the last column is the bias */
        double *scratch; /* n_classes x (n_features + 1) gradient, then n_classes probabilities */
        uint32_t *gpu_ids;
        size_t n_gpu_ids;
        char *cuda_visible_devices;
} NeuralNet;

static void nnet_free(void *state) {
        NeuralNet *net = state;

        if (!net)
                return;
        free(net->x);
        free(net->y);
        free(net->weights);
        free(net->scratch);
        free(net->gpu_ids);
        free(net->cuda_visible_devices);
        free(net);
}

static uint64_t rng_next(uint64_t *s) {
        uint64_t x = *s; /* xorshift64* */

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in (0, 1): never 0, so log() below is safe. */
static double rng_uniform(uint64_t *s) {
        return ((double) (rng_next(s) >> 11) + 0.5) * 0x1.0p-53;
}

/* Standard normal, by Box-Muller (the second value is dropped: simpler, and speed doesn't matter). */
static double rng_normal(uint64_t *s) {
        double u1 = rng_uniform(s), u2 = rng_uniform(s);

        return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* The i-th argument as an int within [min, max], or def when there are fewer arguments. */
static int arg_int_opt(kactor_ctx *ctx, const kactor_value *args, size_t i, const char *name, int64_t def,
                       int64_t min, int64_t max, int64_t *ret) {
        int64_t v = def;
        int r;

        if (args && kactor_value_list_size(args) > i) {
                r = kactor_arg_int(ctx, args, i, &v);
                if (r < 0)
                        return r;
        }
        if (v < min || v > max)
                return kactor_fail(ctx, "%s must be in %" PRIi64 "..%" PRIi64 ", got %" PRIi64, name, min, max, v);
        *ret = v;
        return 0;
}

/* The same for a double; an int is accepted too. */
static int arg_double_opt(kactor_ctx *ctx, const kactor_value *args, size_t i, const char *name, double def,
                          double min, double max, double *ret) {
        double v = def;

        if (args && kactor_value_list_size(args) > i) {
                const kactor_value *a = kactor_value_list_get(args, i);
                int64_t iv;

                if (kactor_value_type(a) == KACTOR_TYPE_INT && kactor_value_as_int(a, &iv) >= 0)
                        v = (double) iv;
                else if (kactor_value_type(a) != KACTOR_TYPE_DOUBLE || kactor_value_as_double(a, &v) < 0)
                        return kactor_fail(ctx, "%s must be a number, got a %s", name,
                                           kactor_type_to_string(kactor_value_type(a)));
        }
        if (!(v >= min && v <= max)) /* also rejects NaN */
                return kactor_fail(ctx, "%s must be in %g..%g, got %g", name, min, max, v);
        *ret = v;
        return 0;
}

static void dataset_generate(NeuralNet *net, uint64_t seed) {
        size_t d = net->n_features;
        uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
        double *centres = net->scratch; /* n_classes x d fits in the scratch space */

        if (rng == 0)
                rng = 1;
        for (size_t c = 0; c < net->n_classes; c++)
                for (size_t j = 0; j < d; j++)
                        centres[c * d + j] = CENTRE_SPREAD * rng_normal(&rng);

        for (size_t i = 0; i < net->n_samples; i++) {
                uint32_t label = (uint32_t) (rng_next(&rng) % net->n_classes);

                net->y[i] = label;
                for (size_t j = 0; j < d; j++)
                        net->x[i * d + j] = centres[label * d + j] + rng_normal(&rng);
        }
}

static int nnet_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        int64_t n_samples = 0, n_features = 0, n_classes = 0, seed = 0;
        const uint32_t *ids = NULL;
        const char *cuda;
        NeuralNet *net;
        size_t n_ids;
        int r;

        r = arg_int_opt(ctx, args, 0, "n_samples", 1000, 10, 1000000, &n_samples);
        if (r < 0)
                return r;
        r = arg_int_opt(ctx, args, 1, "n_features", 8, 1, 1024, &n_features);
        if (r < 0)
                return r;
        r = arg_int_opt(ctx, args, 2, "n_classes", 3, 2, 256, &n_classes);
        if (r < 0)
                return r;
        r = arg_int_opt(ctx, args, 3, "seed", 1, INT64_MIN, INT64_MAX, &seed);
        if (r < 0)
                return r;
        if (n_samples * n_features > 16 * 1024 * 1024)
                return kactor_fail(ctx, "n_samples x n_features must be at most %d, got %" PRIi64, 16 * 1024 * 1024,
                                   n_samples * n_features);

        net = calloc(1, sizeof(*net));
        if (!net)
                return -ENOMEM;
        net->n_samples = (size_t) n_samples;
        net->n_train = net->n_samples - net->n_samples / 5;
        net->n_features = (size_t) n_features;
        net->n_classes = (size_t) n_classes;
        net->x = calloc(net->n_samples * net->n_features, sizeof(double));
        net->y = calloc(net->n_samples, sizeof(uint32_t));
        net->weights = calloc(net->n_classes * (net->n_features + 1), sizeof(double));
        net->scratch = calloc(net->n_classes * (net->n_features + 2), sizeof(double));
        if (!net->x || !net->y || !net->weights || !net->scratch) {
                nnet_free(net);
                return -ENOMEM;
        }

        /* What a GPU framework would look at to pick its devices. */
        n_ids = kactor_ctx_gpu_ids(ctx, &ids);
        if (n_ids > 0) {
                net->gpu_ids = malloc(n_ids * sizeof(uint32_t));
                if (!net->gpu_ids) {
                        nnet_free(net);
                        return -ENOMEM;
                }
                memcpy(net->gpu_ids, ids, n_ids * sizeof(uint32_t));
                net->n_gpu_ids = n_ids;
        }
        cuda = getenv("CUDA_VISIBLE_DEVICES");
        if (cuda) {
                net->cuda_visible_devices = strdup(cuda);
                if (!net->cuda_visible_devices) {
                        nnet_free(net);
                        return -ENOMEM;
                }
        }

        dataset_generate(net, (uint64_t) seed);

        *ret_state = net;
        return 0;
}

/* Softmax of sample i's scores into probs[]; returns the most likely class. */
static size_t nnet_predict(const NeuralNet *net, size_t i, double *probs) {
        size_t d = net->n_features, best = 0;
        const double *x = net->x + i * d;
        double max = -INFINITY, sum = 0.0;

        for (size_t c = 0; c < net->n_classes; c++) {
                const double *w = net->weights + c * (d + 1);
                double z = w[d];

                for (size_t j = 0; j < d; j++)
                        z += w[j] * x[j];
                probs[c] = z;
                if (z > max) {
                        max = z;
                        best = c;
                }
        }
        for (size_t c = 0; c < net->n_classes; c++) {
                probs[c] = exp(probs[c] - max); /* shifted by the maximum: no overflow */
                sum += probs[c];
        }
        for (size_t c = 0; c < net->n_classes; c++)
                probs[c] /= sum;
        return best;
}

static void nnet_epoch(NeuralNet *net, double learning_rate) {
        size_t d = net->n_features, n_weights = net->n_classes * (d + 1);
        double *grad = net->scratch, *probs = net->scratch + n_weights;

        memset(grad, 0, n_weights * sizeof(double));
        for (size_t i = 0; i < net->n_train; i++) {
                const double *x = net->x + i * d;

                (void) nnet_predict(net, i, probs);
                /* d(cross-entropy)/d(score_c) = p_c - [c == label] */
                for (size_t c = 0; c < net->n_classes; c++) {
                        double g = probs[c] - (c == net->y[i] ? 1.0 : 0.0);
                        double *gw = grad + c * (d + 1);

                        for (size_t j = 0; j < d; j++)
                                gw[j] += g * x[j];
                        gw[d] += g;
                }
        }
        for (size_t k = 0; k < n_weights; k++)
                net->weights[k] -= learning_rate * grad[k] / (double) net->n_train;
}

static double nnet_test_accuracy(NeuralNet *net) {
        double *probs = net->scratch + net->n_classes * (net->n_features + 1);
        size_t correct = 0, n_test = net->n_samples - net->n_train;

        for (size_t i = net->n_train; i < net->n_samples; i++)
                if (nnet_predict(net, i, probs) == net->y[i])
                        correct++;
        return n_test > 0 ? (double) correct / (double) n_test : 0.0;
}

static int nnet_train(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        NeuralNet *net = state;
        double learning_rate = 0.0;
        int64_t epochs = 0;
        int r;

        r = arg_int_opt(ctx, args, 0, "epochs", 100, 0, 100000, &epochs);
        if (r < 0)
                return r;
        r = arg_double_opt(ctx, args, 1, "learning_rate", 0.5, 1e-9, 100.0, &learning_rate);
        if (r < 0)
                return r;

        for (int64_t e = 0; e < epochs; e++)
                nnet_epoch(net, learning_rate);

        *ret = kactor_value_new_double(nnet_test_accuracy(net));
        return *ret ? 0 : -ENOMEM;
}

static int nnet_gpu_ids(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        NeuralNet *net = state;
        kactor_value *list;

        list = kactor_value_new_list();
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < net->n_gpu_ids; i++) {
                int r = kactor_value_list_append(list, kactor_value_new_int(net->gpu_ids[i]));
                if (r < 0) {
                        kactor_value_free(list);
                        return r;
                }
        }
        *ret = list;
        return 0;
}

static int nnet_cuda_visible_devices(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        NeuralNet *net = state;

        *ret = net->cuda_visible_devices ? kactor_value_new_string(net->cuda_visible_devices)
                                         : kactor_value_new_nil();
        return *ret ? 0 : -ENOMEM;
}

static const kactor_method nnet_methods[] = {
        { .name = "train", .fn = nnet_train },
        { .name = "gpu_ids", .fn = nnet_gpu_ids, .flags = KACTOR_METHOD_READ_ONLY },
        { .name = "cuda_visible_devices", .fn = nnet_cuda_visible_devices, .flags = KACTOR_METHOD_READ_ONLY },
        {}
};

static const kactor_class nnet_class = {
        .name = "NeuralNet",
        .init = nnet_init,
        .destroy = nnet_free,
        .methods = nnet_methods,
};

KACTOR_MODULE(.name = "nnet", .classes = (const kactor_class *const[]) { &nnet_class, NULL });
