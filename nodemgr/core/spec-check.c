/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The options callers give and the limits every request is held to (spec-check.h). */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "macro.h"
#include "req-error.h"
#include "spec-check.h"
#include "utf8.h"

/* The rules as messages say them; the numbers are those of spec-check.h. */
#define RULE_NUM_CPUS "a finite number between 0 and 1000000"
#define RULE_NUM_GPUS "an integer between 0 and 1024"
#define RULE_MEMORY_MAX "0 (no limit) or a number of bytes between 1048576 (1 MiB) and 1152921504606846976 (1 EiB)"
#define RULE_TASKS_MAX "an integer between 0 (no limit) and 4194304"
#define RULE_MAX_RESTARTS "-1 (no limit) or an integer between 0 and 2147483647"
#define RULE_CHECKPOINT_INTERVAL "an integer between 0 (the node's default) and 4294967294"

/* A number as a caller gave it: an integer, or a double (which may be anything, NaN included). */
typedef struct Number {
        bool is_int;
        int64_t i;
        double d;
} Number;

static int refuse(ReqError *e, const char *key, const char *rule, const Number *n) {
        if (n->is_int)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must be %s, got %" PRIi64, key, rule, n->i);
        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must be %s, got %g", key, rule, n->d);
}

static int option_number(const char *key, const char *rule, const kactor_value *v, Number *ret, ReqError *e) {
        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_INT:
                *ret = (Number){ .is_int = true, .i = kactor_value_get_int(v), .d = (double) kactor_value_get_int(v) };
                return 0;
        case KACTOR_TYPE_DOUBLE:
                *ret = (Number){ .d = kactor_value_get_double(v) };
                return 0;
        default:
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must be %s, got a %s", key, rule,
                                 kactor_type_to_string(kactor_value_type(v)));
        }
}

/* Whether n is an integer in [min, max] (a double counts when its value is integral). */
static bool number_in(const Number *n, int64_t min, int64_t max) {
        if (n->is_int)
                return n->i >= min && n->i <= max;
        return isfinite(n->d) && n->d == trunc(n->d) && n->d >= (double) min && n->d <= (double) max;
}

/* Reads an integer option in [min, max]. */
static int option_integer(const char *key, const char *rule, const kactor_value *v, int64_t min, int64_t max,
                          int64_t *ret, ReqError *e) {
        Number n;
        int r = option_number(key, rule, v, &n, e);
        if (r < 0)
                return r;
        if (!number_in(&n, min, max))
                return refuse(e, key, rule, &n);
        *ret = n.is_int ? n.i : (int64_t) n.d;
        return 0;
}

static int check_string(const char *what, const char *s, size_t len, size_t max, bool empty_ok, ReqError *e) {
        if (len == 0 && !empty_ok)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must not be empty", what);
        if (len > max)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must be at most %zu bytes, got %zu", what, max,
                                 len);
        /* Names show on D-Bus, which refuses what is not UTF-8: one such name would break listing
         * every actor (GetManagedObjects). */
        if ((len > 0 && memchr(s, 0, len)) || !utf8_is_valid(s, len))
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must be UTF-8 without NUL bytes", what);
        return 0;
}

static int option_string(const char *key, const kactor_value *v, size_t max, bool empty_ok, char **ret,
                         ReqError *e) {
        if (kactor_value_type(v) != KACTOR_TYPE_STRING)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s must be a string, got a %s", key,
                                 kactor_type_to_string(kactor_value_type(v)));
        size_t len;
        const char *s = kactor_value_get_string(v, &len);
        int r = check_string(key, s, len, max, empty_ok, e);
        if (r < 0)
                return r;
        char *copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

static int check_num_cpus(double d, ReqError *e) {
        if (!(isfinite(d) && d >= 0 && d <= SPEC_NUM_CPUS_MAX))
                return refuse(e, "NumCpus", RULE_NUM_CPUS, &(Number){ .d = d });
        return 0;
}

static bool memory_max_valid(uint64_t v) {
        return v == 0 || (v >= SPEC_MEMORY_MAX_MIN && v <= SPEC_MEMORY_MAX_MAX);
}

void actor_option_strings_done(ActorOptionStrings *s) {
        free(s->name);
        free(s->user);
        free(s->node);
        free(s->allow_users);
        free(s->allow_groups);
        *s = (ActorOptionStrings){};
}

static bool key_is(const char *key, size_t len, const char *name) {
        return len == strlen(name) && memcmp(key, name, len) == 0;
}

static int refuse_unknown(const char *key, size_t key_len, ReqError *e) {
        if (!utf8_is_valid(key, key_len) || memchr(key, 0, key_len))
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "unknown option (its name is not UTF-8)");
        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "unknown option %.*s%s", (int) MIN(key_len, (size_t) 64),
                         key, key_len > 64 ? "..." : "");
}

/* AllowUsers, AllowGroups: a list of names or numbers (strings or integers), resolved now. uid_t
 * and gid_t are both 32-bit unsigned: one reader for both. */
static int option_ids(const char *name, const kactor_value *v, bool groups, uint32_t **ret, size_t *ret_n,
                      ReqError *e) {
        if (kactor_value_type(v) != KACTOR_TYPE_LIST)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS,
                                 "%s must be a list of %s names or numbers (D-Bus type 'as' or 'au'), got a %s", name,
                                 groups ? "group" : "user", kactor_type_to_string(kactor_value_type(v)));
        size_t n = kactor_value_list_size(v);
        if (n > SPEC_ALLOW_MAX)
                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s has %zu entries, at most %d are allowed", name, n,
                                 SPEC_ALLOW_MAX);
        _cleanup_free_ uint32_t *ids = calloc(n ?: 1, sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const kactor_value *item = kactor_value_list_get(v, i);
                int64_t k;
                switch (kactor_value_type(item)) {
                case KACTOR_TYPE_INT:
                        k = kactor_value_get_int(item);
                        if (k < 0 || k >= (int64_t) UINT32_MAX)
                                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s: %" PRId64 " is not a %s id", name,
                                                 k, groups ? "group" : "user");
                        ids[i] = (uint32_t) k;
                        break;
                case KACTOR_TYPE_STRING: {
                        size_t len;
                        const char *s = kactor_value_get_string(item, &len);
                        int r = check_string(name, s, len, SPEC_NAME_LEN_MAX, false, e);
                        if (r < 0)
                                return r;
                        r = groups ? access_parse_group(s, (gid_t *) &ids[i]) : access_parse_user(s, (uid_t *) &ids[i]);
                        if (r < 0)
                                return req_error(e, KACTOR_ERROR_INVALID_ARGS, "%s: no %s '%s'", name,
                                                 groups ? "group" : "user", s);
                        break;
                }
                default:
                        return req_error(e, KACTOR_ERROR_INVALID_ARGS,
                                         "%s must be a list of %s names or numbers, and entry %zu is a %s", name,
                                         groups ? "group" : "user", i, kactor_type_to_string(kactor_value_type(item)));
                }
        }
        free(*ret);
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

int actor_option_set(ActorSpec *spec, ActorOptionStrings *strings, const char *key, size_t key_len,
                     const kactor_value *v, ReqError *e) {
        int64_t i;
        int r;

        if (key_is(key, key_len, "NumCpus")) {
                Number n;
                r = option_number("NumCpus", RULE_NUM_CPUS, v, &n, e);
                if (r >= 0)
                        r = check_num_cpus(n.d, e);
                if (r >= 0)
                        spec->num_cpus = n.d;
                return r;
        }
        if (key_is(key, key_len, "NumGpus")) {
                r = option_integer("NumGpus", RULE_NUM_GPUS, v, 0, SPEC_NUM_GPUS_MAX, &i, e);
                if (r >= 0)
                        spec->num_gpus = (uint32_t) i;
                return r;
        }
        if (key_is(key, key_len, "MemoryMax")) {
                r = option_integer("MemoryMax", RULE_MEMORY_MAX, v, 0, (int64_t) SPEC_MEMORY_MAX_MAX, &i, e);
                if (r >= 0 && !memory_max_valid((uint64_t) i))
                        r = refuse(e, "MemoryMax", RULE_MEMORY_MAX, &(Number){ .is_int = true, .i = i });
                if (r >= 0)
                        spec->memory_max = (uint64_t) i;
                return r;
        }
        if (key_is(key, key_len, "TasksMax")) {
                r = option_integer("TasksMax", RULE_TASKS_MAX, v, 0, SPEC_TASKS_MAX_MAX, &i, e);
                if (r >= 0)
                        spec->tasks_max = (uint64_t) i;
                return r;
        }
        if (key_is(key, key_len, "MaxRestarts")) {
                r = option_integer("MaxRestarts", RULE_MAX_RESTARTS, v, -1, INT32_MAX, &i, e);
                if (r >= 0)
                        spec->max_restarts = (int32_t) i;
                return r;
        }
        if (key_is(key, key_len, "CheckpointInterval")) {
                r = option_integer("CheckpointInterval", RULE_CHECKPOINT_INTERVAL, v, 0,
                                   SPEC_CHECKPOINT_INTERVAL_MAX, &i, e);
                if (r >= 0)
                        spec->checkpoint_interval = (uint32_t) i;
                return r;
        }
        if (key_is(key, key_len, "Detached")) {
                if (kactor_value_type(v) != KACTOR_TYPE_BOOL)
                        return req_error(e, KACTOR_ERROR_INVALID_ARGS, "Detached must be a bool, got a %s",
                                         kactor_type_to_string(kactor_value_type(v)));
                spec->detached = kactor_value_get_bool(v);
                return 0;
        }
        if (key_is(key, key_len, "Name")) {
                r = option_string("Name", v, SPEC_NAME_LEN_MAX, false, &strings->name, e);
                if (r >= 0)
                        spec->name = strings->name;
                return r;
        }
        /* Only root may run an actor as another user: actor_isolation_resolve_user() says so, for
         * every way an actor is made. */
        if (key_is(key, key_len, "User")) {
                r = option_string("User", v, SPEC_NAME_LEN_MAX, false, &strings->user, e);
                if (r >= 0)
                        spec->user = strings->user;
                return r;
        }
        if (key_is(key, key_len, "Node")) {
                r = option_string("Node", v, SPEC_NODE_LEN_MAX, true, &strings->node, e);
                if (r >= 0)
                        spec->node = *strings->node ? strings->node : NULL; /* empty: anywhere */
                return r;
        }
        if (key_is(key, key_len, "AllowUsers")) {
                r = option_ids("AllowUsers", v, false, &strings->allow_users, &strings->n_allow_users, e);
                if (r >= 0) {
                        spec->allow_users = strings->allow_users;
                        spec->n_allow_users = strings->n_allow_users;
                }
                return r;
        }
        if (key_is(key, key_len, "AllowGroups")) {
                r = option_ids("AllowGroups", v, true, &strings->allow_groups, &strings->n_allow_groups, e);
                if (r >= 0) {
                        spec->allow_groups = strings->allow_groups;
                        spec->n_allow_groups = strings->n_allow_groups;
                }
                return r;
        }
        return refuse_unknown(key, key_len, e);
}

int task_option_set(double *num_cpus, const char *key, size_t key_len, const kactor_value *v, ReqError *e) {
        if (key_is(key, key_len, "NumCpus")) {
                Number n;
                int r = option_number("NumCpus", RULE_NUM_CPUS, v, &n, e);
                if (r >= 0)
                        r = check_num_cpus(n.d, e);
                if (r >= 0)
                        *num_cpus = n.d;
                return r;
        }
        return refuse_unknown(key, key_len, e);
}

int actor_spec_check(const ActorSpec *spec, ReqError *e) {
        int r;

        if (spec->module) {
                r = check_string("Module", spec->module, strlen(spec->module), SPEC_MODULE_LEN_MAX, true, e);
                if (r < 0)
                        return r;
        }
        if (spec->class_name) {
                r = check_string("Class", spec->class_name, strlen(spec->class_name), SPEC_NAME_LEN_MAX, true, e);
                if (r < 0)
                        return r;
        }
        if (spec->name) {
                r = check_string("Name", spec->name, strlen(spec->name), SPEC_NAME_LEN_MAX, false, e);
                if (r < 0)
                        return r;
        }
        if (spec->user) {
                r = check_string("User", spec->user, strlen(spec->user), SPEC_NAME_LEN_MAX, false, e);
                if (r < 0)
                        return r;
        }
        if (spec->node) {
                r = check_string("Node", spec->node, strlen(spec->node), SPEC_NODE_LEN_MAX, true, e);
                if (r < 0)
                        return r;
        }
        r = check_num_cpus(spec->num_cpus, e);
        if (r < 0)
                return r;
        if (spec->num_gpus > SPEC_NUM_GPUS_MAX)
                return refuse(e, "NumGpus", RULE_NUM_GPUS, &(Number){ .is_int = true, .i = spec->num_gpus });
        if (!memory_max_valid(spec->memory_max))
                /* Past INT64_MAX it shows as a double: still the number it is, near enough. */
                return spec->memory_max > INT64_MAX
                               ? refuse(e, "MemoryMax", RULE_MEMORY_MAX, &(Number){ .d = (double) spec->memory_max })
                               : refuse(e, "MemoryMax", RULE_MEMORY_MAX,
                                        &(Number){ .is_int = true, .i = (int64_t) spec->memory_max });
        if (spec->tasks_max > SPEC_TASKS_MAX_MAX)
                return spec->tasks_max > INT64_MAX
                               ? refuse(e, "TasksMax", RULE_TASKS_MAX, &(Number){ .d = (double) spec->tasks_max })
                               : refuse(e, "TasksMax", RULE_TASKS_MAX,
                                        &(Number){ .is_int = true, .i = (int64_t) spec->tasks_max });
        if (spec->max_restarts < -1)
                return refuse(e, "MaxRestarts", RULE_MAX_RESTARTS,
                              &(Number){ .is_int = true, .i = spec->max_restarts });
        if (spec->checkpoint_interval > SPEC_CHECKPOINT_INTERVAL_MAX)
                return refuse(e, "CheckpointInterval", RULE_CHECKPOINT_INTERVAL,
                              &(Number){ .is_int = true, .i = spec->checkpoint_interval });
        return 0;
}

int task_spec_check(const char *module, const char *function, double num_cpus, ReqError *e) {
        int r = check_string("Module", module ?: "", strlen(module ?: ""), SPEC_MODULE_LEN_MAX, true, e);
        if (r >= 0)
                r = check_string("Function", function ?: "", strlen(function ?: ""), SPEC_NAME_LEN_MAX, true, e);
        if (r >= 0)
                r = check_num_cpus(num_cpus, e);
        return r;
}

int call_method_check(const char *method, size_t len, ReqError *e) {
        return check_string("Method", method, len, SPEC_NAME_LEN_MAX, true, e);
}

int actor_name_check(const char *name, size_t len, ReqError *e) {
        return check_string("Name", name, len, SPEC_NAME_LEN_MAX, true, e);
}
