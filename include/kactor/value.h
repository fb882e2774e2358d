/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * kactor values: the typed data that travels as arguments and results.
 *
 * A value is a tree owned by whoever holds the root; kactor_value_free() frees the whole tree.
 * Lists and maps take ownership of the values added to them. Getters return borrowed pointers that
 * stay valid while the value they came from lives.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kactor_type {
        KACTOR_TYPE_NIL,
        KACTOR_TYPE_BOOL,
        KACTOR_TYPE_INT,     /* int64 */
        KACTOR_TYPE_DOUBLE,
        KACTOR_TYPE_STRING,  /* UTF-8, length-delimited */
        KACTOR_TYPE_BYTES,
        KACTOR_TYPE_LIST,
        KACTOR_TYPE_MAP,     /* string keys, insertion order kept */
        KACTOR_TYPE_OBJECT,  /* object reference */
        KACTOR_TYPE_ACTOR,   /* actor handle */
        KACTOR_TYPE_ERROR,   /* only as a result: the call failed; see kactor_value_error_*() */
        _KACTOR_TYPE_MAX,
} kactor_type;

/* Error codes carried by error values and by replies. Each has a D-Bus error name. */
typedef enum kactor_error {
        KACTOR_OK = 0,
        KACTOR_ERROR_TASK_FAILED,            /* io.kactor.Error.TaskFailed */
        KACTOR_ERROR_ACTOR_DIED,             /* io.kactor.Error.ActorDied */
        KACTOR_ERROR_NO_SUCH_ACTOR,          /* io.kactor.Error.NoSuchActor */
        KACTOR_ERROR_NO_SUCH_OBJECT,         /* io.kactor.Error.NoSuchObject */
        KACTOR_ERROR_MODULE_NOT_FOUND,       /* io.kactor.Error.ModuleNotFound */
        KACTOR_ERROR_NO_SUCH_METHOD,         /* io.kactor.Error.NoSuchMethod */
        KACTOR_ERROR_TIMEOUT,                /* io.kactor.Error.Timeout */
        KACTOR_ERROR_NAME_TAKEN,             /* io.kactor.Error.NameTaken */
        KACTOR_ERROR_ACCESS_DENIED,          /* io.kactor.Error.AccessDenied */
        KACTOR_ERROR_INSUFFICIENT_RESOURCES, /* io.kactor.Error.InsufficientResources */
        KACTOR_ERROR_INVALID_ARGS,           /* org.freedesktop.DBus.Error.InvalidArgs */
        KACTOR_ERROR_NOT_SUPPORTED,          /* io.kactor.Error.NotSupported */
        KACTOR_ERROR_PROTOCOL,               /* io.kactor.Error.Protocol: malformed request */
        _KACTOR_ERROR_MAX,
} kactor_error;

/* A 128-bit id, unique across a cluster: the high half names the node that made it. */
typedef struct kactor_id {
        uint64_t hi;
        uint64_t lo;
} kactor_id;

#define KACTOR_ID_STRING_MAX 33 /* 32 hex digits and the NUL */

typedef struct kactor_value kactor_value;

/* Constructors: return NULL only when out of memory. Strings and bytes are copied. */
kactor_value *kactor_value_new_nil(void);
kactor_value *kactor_value_new_bool(bool b);
kactor_value *kactor_value_new_int(int64_t i);
kactor_value *kactor_value_new_double(double d);
kactor_value *kactor_value_new_string(const char *s);
kactor_value *kactor_value_new_stringn(const char *s, size_t len);
kactor_value *kactor_value_new_bytes(const void *p, size_t len);
kactor_value *kactor_value_new_list(void);
kactor_value *kactor_value_new_map(void);
kactor_value *kactor_value_new_object(kactor_id id);
kactor_value *kactor_value_new_actor(kactor_id id);
kactor_value *kactor_value_new_error(kactor_error code, const char *message);

/* Frees the value and everything in it. Accepts NULL; returns NULL. */
kactor_value *kactor_value_free(kactor_value *v);

/* A deep copy; NULL when out of memory. */
kactor_value *kactor_value_copy(const kactor_value *v);

/* True when both values have the same type and contents. Doubles compare with ==, except that NaN equals
 * NaN (so a value always equals its copy); maps compare as sets of key/value pairs, whatever the order of
 * insertion; an INT never equals a DOUBLE. */
bool kactor_value_equal(const kactor_value *a, const kactor_value *b);

kactor_type kactor_value_type(const kactor_value *v);
const char *kactor_type_to_string(kactor_type t);

/* Getters: the value must be of the matching type; they return 0 / false / NULL otherwise. */
bool kactor_value_get_bool(const kactor_value *v);
int64_t kactor_value_get_int(const kactor_value *v);
double kactor_value_get_double(const kactor_value *v);
const char *kactor_value_get_string(const kactor_value *v, size_t *ret_len); /* NUL-terminated */
const void *kactor_value_get_bytes(const kactor_value *v, size_t *ret_len);
kactor_id kactor_value_get_id(const kactor_value *v); /* OBJECT or ACTOR */

/* Numbers: returns 0 and stores the value when v is an INT (or a DOUBLE for _double), -EINVAL otherwise. */
int kactor_value_as_int(const kactor_value *v, int64_t *ret);
int kactor_value_as_double(const kactor_value *v, double *ret);

/* Lists. Append takes ownership of item, also on failure (then item is freed). Returns 0 or -ENOMEM
 * (also when item is NULL, so a failed constructor can be passed straight in), -EINVAL when list is not
 * a list. */
size_t kactor_value_list_size(const kactor_value *v);
const kactor_value *kactor_value_list_get(const kactor_value *v, size_t i);
int kactor_value_list_append(kactor_value *list, kactor_value *item);

/* Maps with string keys. Set replaces an existing key; takes ownership of item as append does. */
size_t kactor_value_map_size(const kactor_value *v);
const char *kactor_value_map_key(const kactor_value *v, size_t i);
const kactor_value *kactor_value_map_value(const kactor_value *v, size_t i);
const kactor_value *kactor_value_map_get(const kactor_value *v, const char *key);
int kactor_value_map_set(kactor_value *map, const char *key, kactor_value *item);

/* Error values. */
kactor_error kactor_value_error_code(const kactor_value *v);
const char *kactor_value_error_message(const kactor_value *v);
bool kactor_value_is_error(const kactor_value *v);

/* "io.kactor.Error.TaskFailed" and so on; NULL for KACTOR_OK or an unknown code. */
const char *kactor_error_name(kactor_error code);
/* The inverse; returns _KACTOR_ERROR_MAX for an unknown name. */
kactor_error kactor_error_from_name(const char *name);

/* Ids as 32 lowercase hex digits. Parse returns 0 or -EINVAL. */
void kactor_id_to_string(kactor_id id, char buf[KACTOR_ID_STRING_MAX]);
int kactor_id_from_string(const char *s, kactor_id *ret);
static inline bool kactor_id_equal(kactor_id a, kactor_id b) {
        return a.hi == b.hi && a.lo == b.lo;
}
static inline bool kactor_id_is_null(kactor_id a) {
        return a.hi == 0 && a.lo == 0;
}

/* A human-readable rendering, JSON where the value is JSON-like (objects and actors render as
 * {"object": "<id>"} / {"actor": "<id>"}, bytes as {"bytes": "<base16>"}, errors as
 * {"error": "<name>", "message": "..."}). Returns a malloc'd string or NULL when out of memory. */
char *kactor_value_to_json(const kactor_value *v);

/* Convenience: build a list from a printf-like spec is left to callers; these cover common cases. */
kactor_value *kactor_value_new_int_list(const int64_t *items, size_t n);

#ifdef __cplusplus
}
#endif
