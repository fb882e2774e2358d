/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The module API: how to write actors and remote functions in C.
 *
 * A module is a shared object that exports one `kactor_module` named `kactor_module_info`, most
 * easily with KACTOR_MODULE(). kactor-worker loads it with dlopen(). An actor class has a
 * constructor that builds the actor's state from its arguments, a destructor, and methods; a
 * remote function takes arguments and returns a value. All of them report failure by returning
 * kactor_fail(ctx, "...") (or any negative errno), which the caller sees as TaskFailed with the
 * message.
 *
 *   static int counter_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state);
 *   static int counter_increment(kactor_ctx *ctx, void *state, const kactor_value *args,
 *                                kactor_value **ret);
 *
 *   static const kactor_method counter_methods[] = {
 *           { .name = "increment", .fn = counter_increment },
 *           { .name = "get", .fn = counter_get, .flags = KACTOR_METHOD_READ_ONLY },
 *           {}
 *   };
 *   static const kactor_class counter_class = {
 *           .name = "Counter", .init = counter_init, .destroy = free, .methods = counter_methods,
 *   };
 *   KACTOR_MODULE(.classes = (const kactor_class *const[]) { &counter_class, NULL });
 *
 * Inside a method, kactor_ctx_client() is a kactor_client (see <kactor/client.h>) through which the
 * module can call other actors whose handles it received, submit tasks, put and get objects.
 */

#include <kactor/client.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KACTOR_MODULE_ABI 1

typedef struct kactor_ctx kactor_ctx;

/* Builds the actor's state from the constructor arguments (a list). */
typedef int (*kactor_init_fn)(kactor_ctx *ctx, const kactor_value *args, void **ret_state);
/* Runs a method. `args` is a list; on success *ret is the result (NULL means nil). */
typedef int (*kactor_method_fn)(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret);
/* Runs a remote function. */
typedef int (*kactor_function_fn)(kactor_ctx *ctx, const kactor_value *args, kactor_value **ret);

enum {
        /* The method does not change the actor's state: it is not kept in the actor's lineage and
         * not replayed when the actor is rebuilt. */
        KACTOR_METHOD_READ_ONLY = 1 << 0,
};

typedef struct kactor_method {
        const char *name;
        kactor_method_fn fn;
        uint32_t flags;
} kactor_method;

typedef struct kactor_class {
        const char *name;
        kactor_init_fn init;
        void (*destroy)(void *state); /* may be NULL */
        const kactor_method *methods; /* terminated by an entry with name NULL */
        /* Optional checkpoint hooks: save serializes the state into a value; restore builds the
         * state from one (instead of init followed by a replay of every call). */
        int (*save)(kactor_ctx *ctx, void *state, kactor_value **ret);
        int (*restore)(kactor_ctx *ctx, const kactor_value *saved, void **ret_state);
} kactor_class;

typedef struct kactor_function {
        const char *name;
        kactor_function_fn fn;
} kactor_function;

typedef struct kactor_module {
        uint32_t abi;                           /* KACTOR_MODULE_ABI */
        const char *name;                       /* optional, for messages */
        const kactor_class *const *classes;     /* NULL-terminated, may be NULL */
        const kactor_function *functions;       /* terminated by an entry with name NULL; may be NULL */
} kactor_module;

/*
 * Defines the module's kactor_module_info; the arguments are its fields after abi, as designated
 * initializers. In C++ (designated initializers are C++20's) name them in the order of the struct,
 * and give classes an array of your own, as C++ has no compound literals:
 *
 *   static const kactor_class *const classes[] = { &counter_class, nullptr };
 *   KACTOR_MODULE(.name = "counter", .classes = classes);
 *
 * In C++ a const object at namespace scope has internal linkage and a mangled name, which the
 * worker's dlsym() would not find: the extern "C" declaration first gives the definition C linkage.
 */
#ifdef __cplusplus
#define KACTOR_MODULE(...)                                                                      \
        extern "C" __attribute__((visibility("default"))) const kactor_module kactor_module_info; \
        const kactor_module kactor_module_info = { .abi = KACTOR_MODULE_ABI, __VA_ARGS__ }
#else
#define KACTOR_MODULE(...)                                                                      \
        __attribute__((visibility("default"))) const kactor_module kactor_module_info = {       \
                .abi = KACTOR_MODULE_ABI, __VA_ARGS__                                            \
        }
#endif

/* Records a failure message for the caller and returns -EREMOTEIO; `return kactor_fail(...)`. */
int kactor_fail(kactor_ctx *ctx, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* The worker's client: call other actors, submit tasks, put and get objects. Do not free it. */
kactor_client *kactor_ctx_client(kactor_ctx *ctx);

/* The GPUs assigned to this actor (their ids), as also given in CUDA_VISIBLE_DEVICES. */
size_t kactor_ctx_gpu_ids(kactor_ctx *ctx, const uint32_t **ret_ids);

/* This actor's handle; the null id inside a task. */
kactor_actor kactor_ctx_self(kactor_ctx *ctx);

/* Convenience for argument lists: the i-th argument as an int / double / string, or an error
 * (kactor_fail with a message naming the argument) when it is missing or of another type. */
int kactor_arg_int(kactor_ctx *ctx, const kactor_value *args, size_t i, int64_t *ret);
int kactor_arg_double(kactor_ctx *ctx, const kactor_value *args, size_t i, double *ret);
int kactor_arg_string(kactor_ctx *ctx, const kactor_value *args, size_t i, const char **ret);
int kactor_arg_actor(kactor_ctx *ctx, const kactor_value *args, size_t i, kactor_actor *ret);

#ifdef __cplusplus
}
#endif
