/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "json-util.h"
#include "kactor/value.h"
#include "macro.h"

typedef struct MapEntry {
        char *key;
        kactor_value *value;
} MapEntry;

struct kactor_value {
        kactor_type type;
        union {
                bool b;
                int64_t i;
                double d;
                struct {
                        /* NUL-terminated for convenience, also for bytes; len excludes the NUL. */
                        char *data;
                        size_t len;
                } str;
                struct {
                        kactor_value **items;
                        size_t n, allocated;
                } list;
                struct {
                        MapEntry *entries;
                        size_t n, allocated;
                } map;
                kactor_id id;
                struct {
                        kactor_error code;
                        char *message;
                } error;
        };
};

/* Not in a header of its own: shared with codec.c and bus-value.c, hidden from the library ABI. */
int value_map_append_unchecked(kactor_value *map, const char *key, size_t key_len, kactor_value *item);

static const char *const error_names[_KACTOR_ERROR_MAX] = {
        [KACTOR_ERROR_TASK_FAILED] = "io.kactor.Error.TaskFailed",
        [KACTOR_ERROR_ACTOR_DIED] = "io.kactor.Error.ActorDied",
        [KACTOR_ERROR_NO_SUCH_ACTOR] = "io.kactor.Error.NoSuchActor",
        [KACTOR_ERROR_NO_SUCH_OBJECT] = "io.kactor.Error.NoSuchObject",
        [KACTOR_ERROR_MODULE_NOT_FOUND] = "io.kactor.Error.ModuleNotFound",
        [KACTOR_ERROR_NO_SUCH_METHOD] = "io.kactor.Error.NoSuchMethod",
        [KACTOR_ERROR_TIMEOUT] = "io.kactor.Error.Timeout",
        [KACTOR_ERROR_NAME_TAKEN] = "io.kactor.Error.NameTaken",
        [KACTOR_ERROR_ACCESS_DENIED] = "io.kactor.Error.AccessDenied",
        [KACTOR_ERROR_INSUFFICIENT_RESOURCES] = "io.kactor.Error.InsufficientResources",
        [KACTOR_ERROR_INVALID_ARGS] = "org.freedesktop.DBus.Error.InvalidArgs",
        [KACTOR_ERROR_NOT_SUPPORTED] = "io.kactor.Error.NotSupported",
        [KACTOR_ERROR_PROTOCOL] = "io.kactor.Error.Protocol",
};

static const char *const type_names[_KACTOR_TYPE_MAX] = {
        [KACTOR_TYPE_NIL] = "nil",       [KACTOR_TYPE_BOOL] = "bool",     [KACTOR_TYPE_INT] = "int",
        [KACTOR_TYPE_DOUBLE] = "double", [KACTOR_TYPE_STRING] = "string", [KACTOR_TYPE_BYTES] = "bytes",
        [KACTOR_TYPE_LIST] = "list",     [KACTOR_TYPE_MAP] = "map",       [KACTOR_TYPE_OBJECT] = "object",
        [KACTOR_TYPE_ACTOR] = "actor",   [KACTOR_TYPE_ERROR] = "error",
};

static kactor_value *value_new(kactor_type type) {
        kactor_value *v;

        v = calloc(1, sizeof(kactor_value));
        if (!v)
                return NULL;
        v->type = type;
        return v;
}

static bool value_is(const kactor_value *v, kactor_type type) {
        return v && v->type == type;
}

_public_ kactor_value *kactor_value_new_nil(void) {
        return value_new(KACTOR_TYPE_NIL);
}

_public_ kactor_value *kactor_value_new_bool(bool b) {
        kactor_value *v;

        v = value_new(KACTOR_TYPE_BOOL);
        if (!v)
                return NULL;
        v->b = b;
        return v;
}

_public_ kactor_value *kactor_value_new_int(int64_t i) {
        kactor_value *v;

        v = value_new(KACTOR_TYPE_INT);
        if (!v)
                return NULL;
        v->i = i;
        return v;
}

_public_ kactor_value *kactor_value_new_double(double d) {
        kactor_value *v;

        v = value_new(KACTOR_TYPE_DOUBLE);
        if (!v)
                return NULL;
        v->d = d;
        return v;
}

static kactor_value *value_new_blob(kactor_type type, const void *p, size_t len) {
        _cleanup_free_ kactor_value *v = NULL;

        if (!p && len > 0)
                return NULL;
        if (len == SIZE_MAX)
                return NULL;

        v = value_new(type);
        if (!v)
                return NULL;
        v->str.data = malloc(len + 1);
        if (!v->str.data)
                return NULL;
        if (len > 0)
                memcpy(v->str.data, p, len);
        v->str.data[len] = 0;
        v->str.len = len;
        return TAKE_PTR(v);
}

_public_ kactor_value *kactor_value_new_string(const char *s) {
        /* NULL is taken as the empty string rather than failing, as "" is what callers mean. */
        return value_new_blob(KACTOR_TYPE_STRING, s ?: "", s ? strlen(s) : 0);
}

_public_ kactor_value *kactor_value_new_stringn(const char *s, size_t len) {
        return value_new_blob(KACTOR_TYPE_STRING, s, len);
}

_public_ kactor_value *kactor_value_new_bytes(const void *p, size_t len) {
        return value_new_blob(KACTOR_TYPE_BYTES, p, len);
}

_public_ kactor_value *kactor_value_new_list(void) {
        return value_new(KACTOR_TYPE_LIST);
}

_public_ kactor_value *kactor_value_new_map(void) {
        return value_new(KACTOR_TYPE_MAP);
}

static kactor_value *value_new_id(kactor_type type, kactor_id id) {
        kactor_value *v;

        v = value_new(type);
        if (!v)
                return NULL;
        v->id = id;
        return v;
}

_public_ kactor_value *kactor_value_new_object(kactor_id id) {
        return value_new_id(KACTOR_TYPE_OBJECT, id);
}

_public_ kactor_value *kactor_value_new_actor(kactor_id id) {
        return value_new_id(KACTOR_TYPE_ACTOR, id);
}

_public_ kactor_value *kactor_value_new_error(kactor_error code, const char *message) {
        _cleanup_free_ kactor_value *v = NULL;

        v = value_new(KACTOR_TYPE_ERROR);
        if (!v)
                return NULL;
        v->error.code = code;
        v->error.message = strdup(message ?: "");
        if (!v->error.message)
                return NULL;
        return TAKE_PTR(v);
}

_public_ kactor_value *kactor_value_free(kactor_value *v) {
        if (!v)
                return NULL;

        switch (v->type) {
        case KACTOR_TYPE_STRING:
        case KACTOR_TYPE_BYTES:
                free(v->str.data);
                break;
        case KACTOR_TYPE_LIST:
                for (size_t i = 0; i < v->list.n; i++)
                        kactor_value_free(v->list.items[i]);
                free(v->list.items);
                break;
        case KACTOR_TYPE_MAP:
                for (size_t i = 0; i < v->map.n; i++) {
                        free(v->map.entries[i].key);
                        kactor_value_free(v->map.entries[i].value);
                }
                free(v->map.entries);
                break;
        case KACTOR_TYPE_ERROR:
                free(v->error.message);
                break;
        default:
                break;
        }
        free(v);
        return NULL;
}

static void value_freep(kactor_value **v) {
        kactor_value_free(*v);
}

_public_ kactor_value *kactor_value_copy(const kactor_value *v) {
        _cleanup_(value_freep) kactor_value *c = NULL;

        if (!v)
                return NULL;

        switch (v->type) {
        case KACTOR_TYPE_STRING:
        case KACTOR_TYPE_BYTES:
                return value_new_blob(v->type, v->str.data, v->str.len);
        case KACTOR_TYPE_ERROR:
                return kactor_value_new_error(v->error.code, v->error.message);
        case KACTOR_TYPE_LIST:
                c = kactor_value_new_list();
                if (!c)
                        return NULL;
                for (size_t i = 0; i < v->list.n; i++)
                        if (kactor_value_list_append(c, kactor_value_copy(v->list.items[i])) < 0)
                                return NULL;
                return TAKE_PTR(c);
        case KACTOR_TYPE_MAP:
                c = kactor_value_new_map();
                if (!c)
                        return NULL;
                /* The source's keys are unique already: no lookups needed. */
                for (size_t i = 0; i < v->map.n; i++) {
                        const MapEntry *e = v->map.entries + i;

                        if (value_map_append_unchecked(c, e->key, strlen(e->key),
                                                       kactor_value_copy(e->value)) < 0)
                                return NULL;
                }
                return TAKE_PTR(c);
        default:
                c = value_new(v->type);
                if (!c)
                        return NULL;
                *c = *v;
                return TAKE_PTR(c);
        }
}

static bool double_equal(double a, double b) {
        /* NaN equals NaN here, so that a value always equals its copy and its decoded encoding. */
        return a == b || (isnan(a) && isnan(b));
}

_public_ bool kactor_value_equal(const kactor_value *a, const kactor_value *b) {
        if (a == b)
                return true;
        if (!a || !b || a->type != b->type)
                return false;

        switch (a->type) {
        case KACTOR_TYPE_NIL:
                return true;
        case KACTOR_TYPE_BOOL:
                return a->b == b->b;
        case KACTOR_TYPE_INT:
                return a->i == b->i;
        case KACTOR_TYPE_DOUBLE:
                return double_equal(a->d, b->d);
        case KACTOR_TYPE_STRING:
        case KACTOR_TYPE_BYTES:
                return a->str.len == b->str.len && memcmp(a->str.data, b->str.data, a->str.len) == 0;
        case KACTOR_TYPE_LIST:
                if (a->list.n != b->list.n)
                        return false;
                for (size_t i = 0; i < a->list.n; i++)
                        if (!kactor_value_equal(a->list.items[i], b->list.items[i]))
                                return false;
                return true;
        case KACTOR_TYPE_MAP:
                /* Same keys with equal values; the order of insertion does not matter. Keys are unique,
                 * so equal sizes and every key of a found in b is enough. */
                if (a->map.n != b->map.n)
                        return false;
                for (size_t i = 0; i < a->map.n; i++) {
                        const MapEntry *e = a->map.entries + i;

                        if (!kactor_value_equal(e->value, kactor_value_map_get(b, e->key)))
                                return false;
                }
                return true;
        case KACTOR_TYPE_OBJECT:
        case KACTOR_TYPE_ACTOR:
                return kactor_id_equal(a->id, b->id);
        case KACTOR_TYPE_ERROR:
                return a->error.code == b->error.code && streq(a->error.message, b->error.message);
        default:
                return false;
        }
}

_public_ kactor_type kactor_value_type(const kactor_value *v) {
        return v ? v->type : _KACTOR_TYPE_MAX;
}

_public_ const char *kactor_type_to_string(kactor_type t) {
        if ((unsigned)t >= _KACTOR_TYPE_MAX)
                return NULL;
        return type_names[t];
}

_public_ bool kactor_value_get_bool(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_BOOL) ? v->b : false;
}

_public_ int64_t kactor_value_get_int(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_INT) ? v->i : 0;
}

_public_ double kactor_value_get_double(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_DOUBLE) ? v->d : 0.0;
}

_public_ const char *kactor_value_get_string(const kactor_value *v, size_t *ret_len) {
        if (!value_is(v, KACTOR_TYPE_STRING))
                return NULL;
        if (ret_len)
                *ret_len = v->str.len;
        return v->str.data;
}

_public_ const void *kactor_value_get_bytes(const kactor_value *v, size_t *ret_len) {
        if (!value_is(v, KACTOR_TYPE_BYTES))
                return NULL;
        if (ret_len)
                *ret_len = v->str.len;
        return v->str.data;
}

_public_ kactor_id kactor_value_get_id(const kactor_value *v) {
        if (!value_is(v, KACTOR_TYPE_OBJECT) && !value_is(v, KACTOR_TYPE_ACTOR))
                return (kactor_id){};
        return v->id;
}

_public_ int kactor_value_as_int(const kactor_value *v, int64_t *ret) {
        if (!value_is(v, KACTOR_TYPE_INT))
                return -EINVAL;
        if (ret)
                *ret = v->i;
        return 0;
}

_public_ int kactor_value_as_double(const kactor_value *v, double *ret) {
        double d;

        if (value_is(v, KACTOR_TYPE_DOUBLE))
                d = v->d;
        else if (value_is(v, KACTOR_TYPE_INT))
                d = (double)v->i;
        else
                return -EINVAL;
        if (ret)
                *ret = d;
        return 0;
}

_public_ size_t kactor_value_list_size(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_LIST) ? v->list.n : 0;
}

_public_ const kactor_value *kactor_value_list_get(const kactor_value *v, size_t i) {
        if (!value_is(v, KACTOR_TYPE_LIST) || i >= v->list.n)
                return NULL;
        return v->list.items[i];
}

/* Makes room for one more element of `size` bytes in *p, which holds *allocated of them. */
static int array_grow(void **p, size_t *allocated, size_t n, size_t size) {
        size_t a;
        void *q;

        if (n < *allocated)
                return 0;
        a = MAX(*allocated * 2, (size_t)4);
        if (a <= *allocated || a > SIZE_MAX / size)
                return -ENOMEM;
        q = realloc(*p, a * size);
        if (!q)
                return -ENOMEM;
        *p = q;
        *allocated = a;
        return 0;
}

_public_ int kactor_value_list_append(kactor_value *list, kactor_value *item) {
        _cleanup_(value_freep) kactor_value *owned = item;
        int r;

        if (!item)
                return -ENOMEM; /* the constructor that made it failed */
        if (item == list) {
                /* Freeing it would free the list under the caller: refuse and leave it alone. */
                TAKE_PTR(owned);
                return -EINVAL;
        }
        if (!value_is(list, KACTOR_TYPE_LIST))
                return -EINVAL;

        r = array_grow((void **)&list->list.items, &list->list.allocated, list->list.n,
                       sizeof(kactor_value *));
        if (r < 0)
                return r;
        list->list.items[list->list.n++] = TAKE_PTR(owned);
        return 0;
}

_public_ size_t kactor_value_map_size(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_MAP) ? v->map.n : 0;
}

_public_ const char *kactor_value_map_key(const kactor_value *v, size_t i) {
        if (!value_is(v, KACTOR_TYPE_MAP) || i >= v->map.n)
                return NULL;
        return v->map.entries[i].key;
}

_public_ const kactor_value *kactor_value_map_value(const kactor_value *v, size_t i) {
        if (!value_is(v, KACTOR_TYPE_MAP) || i >= v->map.n)
                return NULL;
        return v->map.entries[i].value;
}

static MapEntry *map_find(const kactor_value *v, const char *key) {
        for (size_t i = 0; i < v->map.n; i++)
                if (streq(v->map.entries[i].key, key))
                        return v->map.entries + i;
        return NULL;
}

_public_ const kactor_value *kactor_value_map_get(const kactor_value *v, const char *key) {
        const MapEntry *e;

        if (!value_is(v, KACTOR_TYPE_MAP) || !key)
                return NULL;
        e = map_find(v, key);
        return e ? e->value : NULL;
}

/* Appends key (copied, key_len bytes, no NUL among them) without looking for it first: for callers that
 * know the key is new, such as decoders that check for duplicates in bulk. Takes ownership of item as
 * kactor_value_map_set() does. */
int value_map_append_unchecked(kactor_value *map, const char *key, size_t key_len, kactor_value *item) {
        _cleanup_(value_freep) kactor_value *owned = item;
        _cleanup_free_ char *k = NULL;
        int r;

        if (!item)
                return -ENOMEM;
        if (item == map) {
                TAKE_PTR(owned); /* as in kactor_value_list_append() */
                return -EINVAL;
        }
        if (!value_is(map, KACTOR_TYPE_MAP) || !key)
                return -EINVAL;

        k = strndup(key, key_len);
        if (!k)
                return -ENOMEM;
        r = array_grow((void **)&map->map.entries, &map->map.allocated, map->map.n, sizeof(MapEntry));
        if (r < 0)
                return r;
        map->map.entries[map->map.n++] = (MapEntry){
                .key = TAKE_PTR(k),
                .value = TAKE_PTR(owned),
        };
        return 0;
}

_public_ int kactor_value_map_set(kactor_value *map, const char *key, kactor_value *item) {
        _cleanup_(value_freep) kactor_value *owned = item;
        MapEntry *e;

        if (!item)
                return -ENOMEM;
        if (item == map) {
                TAKE_PTR(owned); /* as in kactor_value_list_append() */
                return -EINVAL;
        }
        if (!value_is(map, KACTOR_TYPE_MAP) || !key)
                return -EINVAL;

        e = map_find(map, key);
        if (e) {
                kactor_value_free(e->value);
                e->value = TAKE_PTR(owned);
                return 0;
        }
        return value_map_append_unchecked(map, key, strlen(key), TAKE_PTR(owned));
}

_public_ kactor_error kactor_value_error_code(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_ERROR) ? v->error.code : KACTOR_OK;
}

_public_ const char *kactor_value_error_message(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_ERROR) ? v->error.message : NULL;
}

_public_ bool kactor_value_is_error(const kactor_value *v) {
        return value_is(v, KACTOR_TYPE_ERROR);
}

_public_ const char *kactor_error_name(kactor_error code) {
        if ((unsigned)code >= _KACTOR_ERROR_MAX)
                return NULL;
        return error_names[code];
}

_public_ kactor_error kactor_error_from_name(const char *name) {
        if (!name)
                return _KACTOR_ERROR_MAX;
        for (size_t i = 0; i < ELEMENTSOF(error_names); i++)
                if (streq_ptr(error_names[i], name))
                        return (kactor_error)i;
        return _KACTOR_ERROR_MAX;
}

_public_ void kactor_id_to_string(kactor_id id, char buf[KACTOR_ID_STRING_MAX]) {
        snprintf(buf, KACTOR_ID_STRING_MAX, "%016" PRIx64 "%016" PRIx64, id.hi, id.lo);
}

static int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

_public_ int kactor_id_from_string(const char *s, kactor_id *ret) {
        uint64_t half[2] = {};

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < 32; i++) {
                int x = unhexchar(s[i]); /* stops at the NUL of a short string */

                if (x < 0)
                        return -EINVAL;
                half[i / 16] = (half[i / 16] << 4) | (uint64_t)x;
        }
        if (s[32] != 0)
                return -EINVAL;

        if (ret)
                *ret = (kactor_id){.hi = half[0], .lo = half[1]};
        return 0;
}

_public_ kactor_value *kactor_value_new_int_list(const int64_t *items, size_t n) {
        _cleanup_(value_freep) kactor_value *l = NULL;

        if (!items && n > 0)
                return NULL;

        l = kactor_value_new_list();
        if (!l)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (kactor_value_list_append(l, kactor_value_new_int(items[i])) < 0)
                        return NULL;
        return TAKE_PTR(l);
}

/* JSON rendering into a growable string; the first failure sticks and the result is NULL. */
typedef struct Json {
        char *buf;
        size_t len, allocated;
        bool oom;
} Json;

static void json_put(Json *j, const char *s, size_t n) {
        if (j->oom)
                return;
        if (n >= j->allocated - j->len || !j->buf) {
                size_t a = MAX(j->allocated * 2, j->len + n + 64);
                char *p;

                if (a < j->len + n + 1) {
                        j->oom = true;
                        return;
                }
                p = realloc(j->buf, a);
                if (!p) {
                        j->oom = true;
                        return;
                }
                j->buf = p;
                j->allocated = a;
        }
        memcpy(j->buf + j->len, s, n);
        j->len += n;
        j->buf[j->len] = 0;
}

static void json_puts(Json *j, const char *s) {
        json_put(j, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void json_printf(Json *j, const char *fmt, ...) {
        char tmp[64];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(tmp)) {
                j->oom = true;
                return;
        }
        json_put(j, tmp, n);
}

static void json_put_string_piece(const char *s, size_t n, void *userdata) {
        json_put(userdata, s, n);
}

static void json_string(Json *j, const char *s, size_t n) {
        json_string_write(s, n, json_put_string_piece, j);
}

static void json_double(Json *j, double d) {
        const char *point = localeconv()->decimal_point;
        size_t point_len = point ? strlen(point) : 0, o = 0;
        char tmp[64], out[64];

        if (!isfinite(d)) {
                json_puts(j, "null");
                return;
        }

        /* The shortest form that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
                snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
                if (strtod(tmp, NULL) == d)
                        break;
        }

        /* printf follows LC_NUMERIC; JSON wants '.' whatever the program's locale. */
        for (const char *p = tmp; *p && o < sizeof(out) - 3;) {
                if (point_len > 0 && strncmp(p, point, point_len) == 0) {
                        out[o++] = '.';
                        p += point_len;
                } else
                        out[o++] = *p++;
        }
        out[o] = 0;

        /* An integral double still reads as a double: 1.0, not 1. */
        if (!strpbrk(out, ".eE"))
                strcpy(out + o, ".0");
        json_puts(j, out);
}

static void json_id(Json *j, const char *kind, kactor_id id) {
        char s[KACTOR_ID_STRING_MAX];

        kactor_id_to_string(id, s);
        json_printf(j, "{\"%s\": \"%s\"}", kind, s);
}

static void json_value(Json *j, const kactor_value *v) {
        static const char hex[] = "0123456789abcdef";

        if (!v) {
                json_puts(j, "null");
                return;
        }

        switch (v->type) {
        case KACTOR_TYPE_NIL:
                json_puts(j, "null");
                break;
        case KACTOR_TYPE_BOOL:
                json_puts(j, v->b ? "true" : "false");
                break;
        case KACTOR_TYPE_INT:
                json_printf(j, "%" PRIi64, v->i);
                break;
        case KACTOR_TYPE_DOUBLE:
                json_double(j, v->d);
                break;
        case KACTOR_TYPE_STRING:
                json_string(j, v->str.data, v->str.len);
                break;
        case KACTOR_TYPE_BYTES:
                json_puts(j, "{\"bytes\": \"");
                for (size_t i = 0; i < v->str.len; i++) {
                        unsigned char c = (unsigned char)v->str.data[i];
                        char h[2] = {hex[c >> 4], hex[c & 15]};

                        json_put(j, h, 2);
                }
                json_puts(j, "\"}");
                break;
        case KACTOR_TYPE_LIST:
                json_puts(j, "[");
                for (size_t i = 0; i < v->list.n; i++) {
                        if (i > 0)
                                json_puts(j, ", ");
                        json_value(j, v->list.items[i]);
                }
                json_puts(j, "]");
                break;
        case KACTOR_TYPE_MAP:
                json_puts(j, "{");
                for (size_t i = 0; i < v->map.n; i++) {
                        if (i > 0)
                                json_puts(j, ", ");
                        json_string(j, v->map.entries[i].key, strlen(v->map.entries[i].key));
                        json_puts(j, ": ");
                        json_value(j, v->map.entries[i].value);
                }
                json_puts(j, "}");
                break;
        case KACTOR_TYPE_OBJECT:
                json_id(j, "object", v->id);
                break;
        case KACTOR_TYPE_ACTOR:
                json_id(j, "actor", v->id);
                break;
        case KACTOR_TYPE_ERROR: {
                const char *name = kactor_error_name(v->error.code);

                json_puts(j, "{\"error\": ");
                if (name)
                        json_string(j, name, strlen(name));
                else
                        json_puts(j, "null");
                json_puts(j, ", \"message\": ");
                json_string(j, v->error.message, strlen(v->error.message));
                json_puts(j, "}");
                break;
        }
        default:
                json_puts(j, "null");
                break;
        }
}

_public_ char *kactor_value_to_json(const kactor_value *v) {
        Json j = {};

        json_value(&j, v);
        if (j.oom) {
                free(j.buf);
                return NULL;
        }
        return j.buf;
}
