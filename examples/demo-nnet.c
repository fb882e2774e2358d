/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The seed's GPU example:
 *
 *   @ray.remote(num_gpus=1)
 *   class NeuralNet: ...   # sees ray.get_gpu_ids() and CUDA_VISIBLE_DEVICES
 *
 * Creates a NeuralNet with num_gpus=1, trains it and prints its accuracy, the GPU ids the node
 * manager assigned to it and CUDA_VISIBLE_DEVICES as the actor sees it. Then asks for more GPUs
 * than are free and prints the "not enough GPUs" error (InsufficientResources).
 *
 * Usage: demo-nnet MODULE_DIR [GPUS_TO_ASK_FOR_LAST]
 *   The last request asks for 2 GPUs by default: more than are free on a node started with
 *   --gpus 2 once the first actor holds one. Pass a larger count for nodes with more GPUs.
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

#define GET_TIMEOUT_USEC (120ULL * 1000 * 1000)
#define MIN_ACCURACY 0.9

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

/* Calls a method, waits for its result, and returns it: -EREMOTEIO (after printing why) when the
 * node manager refused or the method failed. */
static int call_and_get(kactor_client *c, kactor_actor actor, const char *method, const kactor_value *args,
                        kactor_value **ret) {
        kactor_value *v = NULL;
        kactor_ref ref;
        int r;

        r = kactor_call(c, actor, method, args, &ref);
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
                kactor_value_free(v);
                return -EREMOTEIO;
        }
        *ret = v;
        return 0;
}

/* "0,1": the ids as CUDA_VISIBLE_DEVICES lists them. NULL when out of memory. */
static char *gpu_ids_format(const kactor_value *ids) {
        char *s = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&s, &size);
        if (!f)
                return NULL;
        for (size_t i = 0; i < kactor_value_list_size(ids); i++)
                fprintf(f, "%s%" PRIi64, i > 0 ? "," : "", kactor_value_get_int(kactor_value_list_get(ids, i)));
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

static int show_net(kactor_client *c, kactor_actor net) {
        kactor_value *args = NULL, *v = NULL;
        char *json = NULL, *ids = NULL;
        double accuracy;
        int r;

        /* train(epochs=100, learning_rate=0.5) */
        args = kactor_value_new_list();
        if (!args || kactor_value_list_append(args, kactor_value_new_int(100)) < 0 ||
            kactor_value_list_append(args, kactor_value_new_double(0.5)) < 0) {
                kactor_value_free(args);
                return -ENOMEM;
        }
        r = call_and_get(c, net, "train", args, &v);
        kactor_value_free(args);
        if (r < 0)
                return r;
        r = kactor_value_as_double(v, &accuracy);
        kactor_value_free(v);
        if (r < 0) {
                fprintf(stderr, "train() did not return a number\n");
                return -EBADMSG;
        }
        printf("  accuracy after 100 epochs on held-out data: %.3f (chance: 0.333)\n", accuracy);
        if (accuracy < MIN_ACCURACY) {
                fprintf(stderr, "Accuracy %.3f is below %.2f\n", accuracy, MIN_ACCURACY);
                return -EBADMSG;
        }

        r = call_and_get(c, net, "gpu_ids", NULL, &v);
        if (r < 0)
                return r;
        json = kactor_value_to_json(v);
        if (kactor_value_type(v) != KACTOR_TYPE_LIST || kactor_value_list_size(v) != 1) {
                fprintf(stderr, "gpu_ids() should list exactly one GPU, got %s\n", json ?: "?");
                r = -EBADMSG;
        } else {
                printf("  GPU ids inside the actor (kactor_ctx_gpu_ids): %s\n", json ?: "?");
                ids = gpu_ids_format(v);
                if (!ids)
                        r = -ENOMEM;
        }
        free(json);
        kactor_value_free(v);
        if (r < 0)
                return r;

        r = call_and_get(c, net, "cuda_visible_devices", NULL, &v);
        if (r < 0) {
                free(ids);
                return r;
        }
        if (kactor_value_type(v) != KACTOR_TYPE_STRING) {
                printf("  CUDA_VISIBLE_DEVICES inside the actor: (not set)\n");
                fprintf(stderr, "CUDA_VISIBLE_DEVICES should be set inside a GPU actor\n");
                r = -EBADMSG;
        } else {
                const char *cuda = kactor_value_get_string(v, NULL);

                printf("  CUDA_VISIBLE_DEVICES inside the actor: \"%s\"\n", cuda);
                if (strcmp(cuda, ids) != 0) {
                        fprintf(stderr, "CUDA_VISIBLE_DEVICES should be \"%s\", the actor's GPU ids\n", ids);
                        r = -EBADMSG;
                }
        }
        kactor_value_free(v);
        free(ids);
        return r;
}

int main(int argc, char *argv[]) {
        /* n_samples, n_features, n_classes, seed */
        static const int64_t data_params[] = { 1000, 8, 3, 7 };
        kactor_value *args = NULL, *v = NULL;
        kactor_client *c = NULL;
        kactor_actor net = {}, greedy = {};
        bool have_net = false, have_greedy = false;
        uint32_t too_many = 2;
        char *module = NULL;
        int r, ret = EXIT_FAILURE;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "Usage: %s MODULE_DIR [GPUS_TO_ASK_FOR_LAST]\n", argv[0]);
                return EXIT_FAILURE;
        }
        if (argc == 3)
                too_many = (uint32_t) strtoul(argv[2], NULL, 0);
        module = module_path(argv[1], "nnet");
        if (!module) {
                fprintf(stderr, "Cannot find the module directory %s: %m\n", argv[1]);
                return EXIT_FAILURE;
        }

        r = kactor_connect(NULL, &c);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the node manager: %s\n", strerror(-r));
                goto finish;
        }

        args = kactor_value_new_int_list(data_params, sizeof(data_params) / sizeof(data_params[0]));
        if (!args) {
                fprintf(stderr, "Out of memory\n");
                goto finish;
        }

        struct kactor_actor_opts one_gpu = { .sz = sizeof(one_gpu), .num_gpus = 1 };
        r = kactor_create_actor(c, module, "NeuralNet", args, &one_gpu, &net);
        if (r < 0) {
                fprintf(stderr, "Failed to create NeuralNet with num_gpus=1: %s\n", client_strerror(c, r));
                goto finish;
        }
        have_net = true;
        printf("NeuralNet created with num_gpus=1 (1000 samples, 8 features, 3 classes):\n");
        if (show_net(c, net) < 0)
                goto finish;

        /* The first actor still holds its GPU; ask for more than are left. */
        printf("A second NeuralNet asking for num_gpus=%" PRIu32 " must be refused:\n", too_many);
        struct kactor_actor_opts greedy_opts = { .sz = sizeof(greedy_opts), .num_gpus = too_many };
        r = kactor_create_actor(c, module, "NeuralNet", args, &greedy_opts, &greedy);
        if (r == -EREMOTEIO && kactor_client_error(c) == KACTOR_ERROR_INSUFFICIENT_RESOURCES) {
                printf("  %s: %s\n", kactor_error_name(kactor_client_error(c)), kactor_client_error_message(c));
        } else if (r < 0) {
                fprintf(stderr, "Expected InsufficientResources, got: %s\n", client_strerror(c, r));
                goto finish;
        } else {
                /* Accepted: perhaps the refusal comes when the actor is placed. Its calls say so. */
                have_greedy = true;
                r = call_and_get(c, greedy, "gpu_ids", NULL, &v);
                if (r >= 0) {
                        fprintf(stderr, "The node gave %" PRIu32 " more GPUs; pass a larger count as the "
                                "second argument to see the refusal.\n", too_many);
                        goto finish;
                }
                printf("  (the actor was accepted, and its first call failed as shown above)\n");
        }

        ret = EXIT_SUCCESS;

finish:
        kactor_value_free(v);
        kactor_value_free(args);
        if (have_greedy)
                (void) kactor_actor_release(c, greedy);
        /* Releasing the last handle stops the actor and frees its GPU. */
        if (have_net)
                (void) kactor_actor_release(c, net);
        kactor_client_free(c);
        free(module);
        return ret;
}
