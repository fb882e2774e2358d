/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The integration test fixture: per test, a private dbus-daemon and a kactor-nodemgr on it, both
 * children of the test process, started in a fresh temp dir under /tmp and stopped by PID.
 *
 *   static Harness *h;
 *   static void setup(void) { h = harness_start(NULL); }
 *   static void teardown(void) { h = harness_stop(h); }
 *   TestSuite(dbus, .init = setup, .fini = teardown);
 *
 * The binaries come from $KACTOR_BUILD (an absolute build dir, set by `make check-integration`;
 * default "build"). Helpers assert with Criterion and fail the running test on error. Strings the
 * helpers return as `const char *` belong to the harness and live until harness_stop().
 *
 * harness_stop() also checks the daemon: that it was still running, that it exited 0 on SIGTERM and
 * that neither it nor a worker printed a sanitizer report. A daemon that fails these makes the test
 * binary exit non-zero (Criterion reports "exited during its setup or teardown").
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "kactor/client.h"
#include "kactor/value.h"

/* Bounds for everything that waits: a test never hangs longer than these. */
#define HARNESS_TIMEOUT_MS 10000u
#define HARNESS_TIMEOUT_USEC (HARNESS_TIMEOUT_MS * UINT64_C(1000))

#define HARNESS_BUS_NAME "io.kactor.NodeManager1"
#define HARNESS_BUS_PATH "/io/kactor/NodeManager1"
#define HARNESS_IFACE_MANAGER "io.kactor.NodeManager1"
#define HARNESS_IFACE_ACTOR "io.kactor.Actor1"

typedef struct HarnessOptions {
        unsigned gpus;           /* --gpus (default 2) */
        unsigned num_cpus;       /* --num-cpus (default 16) */
        const char *gpu_devices; /* --gpu-devices, instead of --gpus when set */
        const char *const *extra_args; /* more kactor-nodemgr arguments, NULL-terminated */
        const char *extra_env;   /* one more NAME=VALUE for kactor-nodemgr (and its workers) */
} HarnessOptions;

typedef struct Harness {
        char *dir;         /* the temp dir; removed by harness_stop() */
        char *build;       /* absolute build dir */
        char *bus_address; /* unix:path=DIR/bus */
        char *runtime_dir; /* DIR/run */
        char *socket_path; /* DIR/run/nodemgr.sock */
        char *dbus_log;
        char *nodemgr_log;
        pid_t dbus_pid;
        pid_t nodemgr_pid;
        int nodemgr_pidfd;
        unsigned gpus;
        HarnessOptions options; /* as started, for harness_restart_nodemgr() (its strings are copies) */
        char **owned_args, *owned_env, *owned_gpu_devices;
        sd_bus *bus; /* the harness's own connection, made on first use */

        kactor_client **clients;
        size_t n_clients;
        char **strings; /* returned as const char *, freed at stop */
        size_t n_strings;
} Harness;

/* CLOCK_MONOTONIC in milliseconds, for the tests' deadlines. */
int64_t harness_now_ms(void);

/* Starts dbus-daemon and kactor-nodemgr and waits for READY=1. Asserts on failure. */
Harness *harness_start(const HarnessOptions *opts);

/* Stops both, frees everything, removes the temp dir. Accepts NULL; returns NULL. Exits the test
 * process with status 1 (after cleaning up) when the daemon misbehaved (see above). */
Harness *harness_stop(Harness *h);

/* Stops the node manager with sig (SIGTERM: it exits 0, leaving its actors running; SIGKILL: a
 * crash) and starts a new one on the same bus and runtime directory, waiting for READY=1. Drops the
 * harness's bus connection (made again on use). Returns the old one's wait status. Asserts. */
int harness_restart_nodemgr(Harness *h, int sig);

/* Asserts that the node manager is still running (it did not crash). */
void harness_assert_running(Harness *h);

/* Kills the private dbus-daemon (SIGKILL) and drops the harness's connection to it; the node manager
 * keeps running. */
void harness_dbus_kill(Harness *h);
/* Starts a new dbus-daemon at the same address (h->bus_address) after harness_dbus_kill(). Asserts. */
void harness_dbus_start(Harness *h);

/* The tail of the node manager's log (stderr of it and its workers), for failure messages. */
const char *harness_nodemgr_log(Harness *h);

/* A string the harness frees at stop. */
const char *harness_keep(Harness *h, char *s);
/* A whole file (NUL-terminated; *ret_len its length when not NULL); harness-owned. */
const char *harness_read_file(Harness *h, const char *path, size_t *ret_len);
const char *harness_printf(Harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The absolute path of build/tests/modules/NAME.so, else build/examples/NAME.so. Asserts it exists. */
const char *harness_module(Harness *h, const char *name);

/* --- busctl ---------------------------------------------------------------------------------- */

/* Runs `busctl --address=BUS --timeout=… ARGS…` (a NULL-terminated list of arguments, each passed
 * as one argv entry). Returns busctl's exit status (or a negative errno when it could not run) and
 * its stdout and stderr together, without the trailing newline, in *ret_out (malloc'd; may be NULL). */
int harness_busctl(Harness *h, char **ret_out, ...) __attribute__((sentinel));

/* `busctl call io.kactor.NodeManager1 PATH INTERFACE METHOD [SIGNATURE ARGS…]`; same return. */
int harness_busctl_call(Harness *h, char **ret_out, const char *path, const char *interface,
                        const char *method, ...) __attribute__((sentinel));

/* The same, asserting exit status 0; returns the output (harness-owned). */
const char *harness_busctl_call_ok(Harness *h, const char *path, const char *interface, const char *method,
                                   ...) __attribute__((sentinel));

/* The first double-quoted word of busctl output, e.g. the path in `o "/io/…"`. Asserts there is one. */
const char *harness_busctl_path(Harness *h, const char *out);

/* --- sd-bus ---------------------------------------------------------------------------------- */

/* The harness's connection to the private bus (a bus client: Hello sent). */
sd_bus *harness_bus(Harness *h);
/* A new, separate connection the caller owns (sd_bus_flush_close_unref it). */
sd_bus *harness_bus_new(Harness *h);

/* Calls a method of the node manager through harness_bus(). Returns sd_bus_call's result: on a
 * D-Bus error, negative, with *error set (the caller frees it with sd_bus_error_free). */
int harness_bus_call(Harness *h, sd_bus_error *error, sd_bus_message **ret_reply, const char *path,
                     const char *interface, const char *member, const char *types, ...);

/* Property readers on the node manager, asserting success. */
const char *harness_property_string(Harness *h, const char *path, const char *interface, const char *name);
uint64_t harness_property_uint(Harness *h, const char *path, const char *interface, const char *name);

/* Waits (on PropertiesChanged, no polling) until the actor at `path` has State == state. Returns
 * true when it has, false after timeout_ms. */
bool harness_wait_actor_state(Harness *h, const char *path, const char *state, unsigned timeout_ms);

/* Waits until the node manager has `n` GPUs free. FreeGpus sends no PropertiesChanged, so this
 * polls it (every 10 ms, bounded). True when it has, false after timeout_ms. */
bool harness_wait_free_gpus(Harness *h, size_t n, unsigned timeout_ms);

/* --- processes ------------------------------------------------------------------------------- */

/* Waits until a process (any, not only a child) has exited. True when it has, false on timeout. */
bool harness_wait_pid_exit(pid_t pid, unsigned timeout_ms);
/* True while the process exists and is not a zombie. */
bool harness_pid_alive(pid_t pid);

/* --- libkactor ------------------------------------------------------------------------------- */

/* A raw connection to the unix socket at path (for frames a client would not send): the fd, or a
 * negative errno. No assertion: children use it. */
int harness_raw_connect(const char *path);
/* Sends all of n bytes: 0, -EPIPE when the peer closed the connection (EPIPE or ECONNRESET), or
 * another negative errno. */
int harness_raw_send(int fd, const void *p, size_t n);

/* A client connected to the node manager's socket. Closed at stop unless closed earlier with
 * harness_client_close(). */
kactor_client *harness_client(Harness *h);
/* The same with direct_calls as in struct kactor_connect_opts (1: on, -1: off, 0: the default). */
kactor_client *harness_client_direct(Harness *h, int direct_calls);
/* Closes a client of harness_client() now (its handles and references are dropped). */
void harness_client_close(Harness *h, kactor_client *c);

/* The D-Bus path of an actor / object. */
const char *harness_actor_path(Harness *h, kactor_actor a);
const char *harness_object_path(Harness *h, kactor_ref r);
/* The actor's worker PID from its Pid property, once the actor is alive. Asserts. */
pid_t harness_actor_pid(Harness *h, kactor_actor a);

/* Creates an actor (args in JSON, see harness_value(); NULL for none), asserting success. */
kactor_actor harness_create(Harness *h, kactor_client *c, const char *module, const char *class_name,
                            const char *args_json, const struct kactor_actor_opts *opts);
/* Calls a method and waits for its result (bounded); the caller frees the value. An error result is
 * returned as the error value. Asserts that the call and the get succeeded. */
kactor_value *harness_call(kactor_client *c, kactor_actor a, const char *method, const char *args_json);
/* Gets one object (bounded), asserting kactor_get1 returned 0. */
kactor_value *harness_get(kactor_client *c, kactor_ref r);

/* --- values ---------------------------------------------------------------------------------- */

/*
 * Builds a value from JSON: null, true, false, integers (-> INT), numbers with '.' or 'e'
 * (-> DOUBLE), strings, arrays (-> LIST), objects (-> MAP). Asserts on a syntax error. The caller
 * frees it.
 */
kactor_value *harness_value(const char *json);

/* A rendering of v for messages (harness-owned). */
const char *harness_value_str(Harness *h, const kactor_value *v);

/* Asserts that v equals the value of `json`. */
#define harness_assert_value(v, json) harness_assert_value_at(__FILE__, __LINE__, (v), (json))
void harness_assert_value_at(const char *file, int line, const kactor_value *v, const char *json);

/* Asserts that v is an error value with `code` whose message contains `needle` (NULL: any). */
#define harness_assert_error(v, code, needle)                                                               \
        harness_assert_error_at(__FILE__, __LINE__, (v), (code), (needle))
void harness_assert_error_at(const char *file, int line, const kactor_value *v, kactor_error code,
                             const char *needle);
