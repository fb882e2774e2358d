/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a caller may ask for: one set of rules for the D-Bus service, the native socket and the
 * cluster. The options of CreateActor and SubmitTask are parsed here from kactor values (each
 * transport decodes its own encoding into those), and the core checks every request against the
 * same limits before it acts on it. The limits are stated in docs/dbus-api.md and docs/protocol.md.
 *
 * Every function returns 0, or -EREMOTEIO with KACTOR_ERROR_INVALID_ARGS in e and a message that
 * names the option and its limit (never echoing an overlong value), or -ENOMEM.
 */

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kactor/value.h"
#include "manager.h"

/* Lengths in bytes. Strings are UTF-8 without NUL bytes (they show on D-Bus). */
#define SPEC_NAME_LEN_MAX 255u              /* actor names, classes, methods, task functions, User */
#define SPEC_MODULE_LEN_MAX (PATH_MAX - 1u) /* a module name or path */
#define SPEC_NODE_LEN_MAX 64u               /* a node id */

#define SPEC_NUM_CPUS_MAX 1000000.0 /* as --num-cpus: no node has more */
#define SPEC_NUM_GPUS_MAX 1024u
/* MemoryMax: 0 (no limit), or at least what a worker needs to start, at most 1 EiB (what the
 * kernel's page counters can hold). */
#define SPEC_MEMORY_MAX_MIN (UINT64_C(1) << 20)
#define SPEC_MEMORY_MAX_MAX (UINT64_C(1) << 60)
#define SPEC_TASKS_MAX_MAX 4194304u /* the kernel's PID_MAX_LIMIT */
#define SPEC_CHECKPOINT_INTERVAL_MAX (UINT32_MAX - 1u)

/* The strings an ActorSpec points to once options set them; freed with actor_option_strings_done(). */
typedef struct ActorOptionStrings {
        char *name, *user, *node;
        uid_t *allow_users;  /* AllowUsers, resolved */
        size_t n_allow_users;
        gid_t *allow_groups; /* AllowGroups, resolved */
        size_t n_allow_groups;
} ActorOptionStrings;

/* At most this many entries in AllowUsers and in AllowGroups. */
#define SPEC_ALLOW_MAX 64

void actor_option_strings_done(ActorOptionStrings *s);

/* Sets CreateActor option `key` (key_len bytes) in spec from v. Integers may also come as doubles
 * with an integral value (a D-Bus 't' or a msgpack uint64 above 2^63-1 is passed as one). */
int actor_option_set(ActorSpec *spec, ActorOptionStrings *strings, const char *key, size_t key_len,
                     const kactor_value *v, ReqError *e);

/* Sets SubmitTask option `key` from v: NumCpus is the only one. */
int task_option_set(double *num_cpus, const char *key, size_t key_len, const kactor_value *v, ReqError *e);

/* The checks the core makes on every request, whichever way it came. */
int actor_spec_check(const ActorSpec *spec, ReqError *e);
int task_spec_check(const char *module, const char *function, double num_cpus, ReqError *e);
int call_method_check(const char *method, size_t len, ReqError *e);
/* An actor's name, as GetActor takes it. */
int actor_name_check(const char *name, size_t len, ReqError *e);
