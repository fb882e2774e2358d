/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>

#include "bus-value.h"
#include "macro.h"

/*
 * How deeply containers may nest, counted as D-Bus counts them: every variant, array, struct and dict
 * entry is one level, so a list inside a list takes two ("av" in "v") and a map three. The D-Bus
 * specification caps a message at 64 levels including variants, and a bus daemon drops messages that
 * go deeper; the limit also keeps the recursion here bounded for messages from peers.
 */
#define BUS_VALUE_DEPTH_MAX 64

/* Dicts of up to this many entries are checked for duplicate keys pairwise, larger ones by sorting. */
#define DUPLICATE_CHECK_PAIRWISE_MAX 8

/* From lib/value.c (no header of its own): appends a key known to be new, without a lookup. */
int value_map_append_unchecked(kactor_value *map, const char *key, size_t key_len, kactor_value *item);

static void value_freep(kactor_value **v) {
        kactor_value_free(*v);
}

static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

static char *path_for_id(const char *prefix, kactor_id id) {
        char s[KACTOR_ID_STRING_MAX];
        char *p;

        kactor_id_to_string(id, s);
        if (asprintf(&p, "%s/%s", prefix, s) < 0)
                return NULL;
        return p;
}

char *bus_actor_path(kactor_id id) {
        return path_for_id(KACTOR_BUS_ACTOR_PREFIX, id);
}

char *bus_object_path(kactor_id id) {
        return path_for_id(KACTOR_BUS_OBJECT_PREFIX, id);
}

int bus_path_parse(const char *path, kactor_type *ret_type, kactor_id *ret_id) {
        kactor_type type;
        const char *e;
        kactor_id id;
        int r;

        if (!path)
                return -EINVAL;

        if ((e = startswith(path, KACTOR_BUS_ACTOR_PREFIX "/")))
                type = KACTOR_TYPE_ACTOR;
        else if ((e = startswith(path, KACTOR_BUS_OBJECT_PREFIX "/")))
                type = KACTOR_TYPE_OBJECT;
        else
                return -EINVAL;

        r = kactor_id_from_string(e, &id);
        if (r < 0)
                return r;

        if (ret_type)
                *ret_type = type;
        if (ret_id)
                *ret_id = id;
        return 0;
}

static int key_compare(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns 1 when two keys of map are equal, 0 when none are, or -ENOMEM. */
static int map_has_duplicate_keys(const kactor_value *map) {
        _cleanup_free_ const char **keys = NULL;
        size_t n = kactor_value_map_size(map);

        if (n <= DUPLICATE_CHECK_PAIRWISE_MAX) {
                for (size_t i = 0; i < n; i++)
                        for (size_t j = i + 1; j < n; j++)
                                if (streq(kactor_value_map_key(map, i), kactor_value_map_key(map, j)))
                                        return 1;
                return 0;
        }

        keys = malloc(sizeof(*keys) * n);
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                keys[i] = kactor_value_map_key(map, i);
        qsort(keys, n, sizeof(*keys), key_compare);
        for (size_t i = 1; i < n; i++)
                if (streq(keys[i - 1], keys[i]))
                        return 1;
        return 0;
}

static int read_value(sd_bus_message *m, unsigned depth, bus_path_resolve_fn resolve, void *userdata,
                      kactor_value **ret);

/* Reads the members of the container just entered until its end, each as a list item. */
static int read_members(sd_bus_message *m, unsigned depth, bus_path_resolve_fn resolve, void *userdata,
                        kactor_value *list) {
        int r;

        for (;;) {
                kactor_value *item = NULL;

                r = sd_bus_message_at_end(m, false);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 0;

                r = read_value(m, depth, resolve, userdata, &item);
                if (r < 0)
                        return r;
                r = kactor_value_list_append(list, item);
                if (r < 0)
                        return r;
        }
}

/* A dict "a{s…}": the array is not entered yet. */
static int read_dict(sd_bus_message *m, const char *contents, unsigned depth, bus_path_resolve_fn resolve,
                     void *userdata, kactor_value **ret) {
        _cleanup_(value_freep) kactor_value *map = NULL;
        _cleanup_free_ char *entry = NULL;
        size_t n;
        int r;

        /* contents is "{s…}": the dict entry's own signature is what is between the braces. */
        n = strlen(contents);
        if (n < 4 || contents[0] != '{' || contents[n - 1] != '}')
                return -EINVAL;
        if (contents[1] != 's')
                return -EINVAL;
        if (depth + 2 > BUS_VALUE_DEPTH_MAX)
                return -EINVAL;
        entry = strndup(contents + 1, n - 2);
        if (!entry)
                return -ENOMEM;

        map = kactor_value_new_map();
        if (!map)
                return -ENOMEM;

        r = sd_bus_message_enter_container(m, 'a', contents);
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', entry)) > 0) {
                kactor_value *item = NULL;
                const char *key;

                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                r = read_value(m, depth + 2, resolve, userdata, &item);
                if (r < 0)
                        return r;
                r = value_map_append_unchecked(map, key, strlen(key), item);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        /* Keys were appended without lookups, so that large dicts stay linear; check them in bulk. */
        r = map_has_duplicate_keys(map);
        if (r < 0)
                return r;
        if (r > 0)
                return -EINVAL;

        *ret = TAKE_PTR(map);
        return 0;
}

static int read_path(const char *path, bus_path_resolve_fn resolve, void *userdata, kactor_value **ret) {
        kactor_type type;
        kactor_id id;
        int r;

        if (resolve) {
                r = resolve(path, &type, &id, userdata);
                if (r < 0)
                        return r;
        } else if (bus_path_parse(path, &type, &id) < 0)
                return -ENOENT; /* names nothing known, as a resolver would say */

        switch (type) {
        case KACTOR_TYPE_ACTOR:
                *ret = kactor_value_new_actor(id);
                break;
        case KACTOR_TYPE_OBJECT:
                *ret = kactor_value_new_object(id);
                break;
        default:
                return -EINVAL;
        }
        return *ret ? 0 : -ENOMEM;
}

/* Reads one complete value; depth is the number of containers around it since the start. */
static int read_value(sd_bus_message *m, unsigned depth, bus_path_resolve_fn resolve, void *userdata,
                      kactor_value **ret) {
        _cleanup_(value_freep) kactor_value *v = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO; /* nothing left to read */

        switch (type) {
        case SD_BUS_TYPE_BOOLEAN: {
                int b;

                r = sd_bus_message_read_basic(m, type, &b);
                if (r < 0)
                        return r;
                v = kactor_value_new_bool(b);
                break;
        }

        case SD_BUS_TYPE_BYTE:
        case SD_BUS_TYPE_INT16:
        case SD_BUS_TYPE_UINT16:
        case SD_BUS_TYPE_INT32:
        case SD_BUS_TYPE_UINT32:
        case SD_BUS_TYPE_INT64:
        case SD_BUS_TYPE_UINT64: {
                /* Every integer becomes an int64; a 't' above INT64_MAX does not fit. */
                union {
                        uint8_t y;
                        int16_t n;
                        uint16_t q;
                        int32_t i;
                        uint32_t u;
                        int64_t x;
                        uint64_t t;
                } x;
                int64_t i;

                r = sd_bus_message_read_basic(m, type, &x);
                if (r < 0)
                        return r;
                switch (type) {
                case SD_BUS_TYPE_BYTE:
                        i = x.y;
                        break;
                case SD_BUS_TYPE_INT16:
                        i = x.n;
                        break;
                case SD_BUS_TYPE_UINT16:
                        i = x.q;
                        break;
                case SD_BUS_TYPE_INT32:
                        i = x.i;
                        break;
                case SD_BUS_TYPE_UINT32:
                        i = x.u;
                        break;
                case SD_BUS_TYPE_INT64:
                        i = x.x;
                        break;
                default:
                        if (x.t > INT64_MAX)
                                return -ERANGE;
                        i = (int64_t) x.t;
                }
                v = kactor_value_new_int(i);
                break;
        }

        case SD_BUS_TYPE_DOUBLE: {
                double x;

                r = sd_bus_message_read_basic(m, type, &x);
                if (r < 0)
                        return r;
                v = kactor_value_new_double(x);
                break;
        }

        case SD_BUS_TYPE_STRING: {
                const char *s;

                r = sd_bus_message_read_basic(m, type, &s);
                if (r < 0)
                        return r;
                v = kactor_value_new_string(s);
                break;
        }

        case SD_BUS_TYPE_OBJECT_PATH: {
                const char *path;

                r = sd_bus_message_read_basic(m, type, &path);
                if (r < 0)
                        return r;
                r = read_path(path, resolve, userdata, &v);
                if (r < 0)
                        return r;
                break;
        }

        case SD_BUS_TYPE_SIGNATURE: {
                const char *s;

                /* The empty signature is how nil travels; any other one is not a value. */
                r = sd_bus_message_read_basic(m, type, &s);
                if (r < 0)
                        return r;
                if (s[0] != 0)
                        return -EINVAL;
                v = kactor_value_new_nil();
                break;
        }

        case SD_BUS_TYPE_VARIANT:
                if (depth + 1 > BUS_VALUE_DEPTH_MAX)
                        return -EINVAL;
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                r = read_value(m, depth + 1, resolve, userdata, &v);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                break;

        case SD_BUS_TYPE_ARRAY:
                if (depth + 1 > BUS_VALUE_DEPTH_MAX)
                        return -EINVAL;

                if (streq(contents, "y")) {
                        const void *p;
                        size_t n;

                        r = sd_bus_message_read_array(m, 'y', &p, &n);
                        if (r < 0)
                                return r;
                        v = kactor_value_new_bytes(n > 0 ? p : "", n);
                        break;
                }

                if (contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN) {
                        r = read_dict(m, contents, depth, resolve, userdata, &v);
                        if (r < 0)
                                return r;
                        break;
                }

                v = kactor_value_new_list();
                if (!v)
                        return -ENOMEM;
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                r = read_members(m, depth + 1, resolve, userdata, v);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                break;

        case SD_BUS_TYPE_STRUCT:
                if (depth + 1 > BUS_VALUE_DEPTH_MAX)
                        return -EINVAL;
                v = kactor_value_new_list();
                if (!v)
                        return -ENOMEM;
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                r = read_members(m, depth + 1, resolve, userdata, v);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                break;

        default:
                /* 'h' (file descriptors have no value form) and anything newer. */
                return -EINVAL;
        }

        if (!v)
                return -ENOMEM;
        *ret = TAKE_PTR(v);
        return 0;
}

int bus_message_read_value(sd_bus_message *m, bus_path_resolve_fn resolve, void *userdata,
                           kactor_value **ret) {
        if (!m || !ret)
                return -EINVAL;
        return read_value(m, 0, resolve, userdata, ret);
}

int bus_message_read_value_list(sd_bus_message *m, bus_path_resolve_fn resolve, void *userdata,
                                kactor_value **ret) {
        const char *contents;
        char type;
        int r;

        if (!m || !ret)
                return -EINVAL;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        if (type != SD_BUS_TYPE_ARRAY || !streq(contents, "v"))
                return -EINVAL;

        return read_value(m, 0, resolve, userdata, ret);
}

/* Whether v can be appended: no error values, no strings D-Bus cannot carry, and no deeper than the
 * limit, counting its own variant. Stops descending at the limit, however deep v goes. */
static bool value_appendable(const kactor_value *v, unsigned depth) {
        const char *s;
        size_t n;

        depth++; /* its variant */
        if (depth > BUS_VALUE_DEPTH_MAX)
                return false;

        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_NIL:
        case KACTOR_TYPE_BOOL:
        case KACTOR_TYPE_INT:
        case KACTOR_TYPE_DOUBLE:
        case KACTOR_TYPE_OBJECT:
        case KACTOR_TYPE_ACTOR:
                return true;
        case KACTOR_TYPE_STRING:
                /* D-Bus strings end at the first NUL: refuse rather than cut one short. */
                s = kactor_value_get_string(v, &n);
                return strlen(s) == n;
        case KACTOR_TYPE_BYTES:
                return depth + 1 <= BUS_VALUE_DEPTH_MAX;
        case KACTOR_TYPE_LIST:
                if (depth + 1 > BUS_VALUE_DEPTH_MAX)
                        return false;
                for (size_t i = 0; i < kactor_value_list_size(v); i++)
                        if (!value_appendable(kactor_value_list_get(v, i), depth + 1))
                                return false;
                return true;
        case KACTOR_TYPE_MAP:
                if (depth + 2 > BUS_VALUE_DEPTH_MAX)
                        return false;
                for (size_t i = 0; i < kactor_value_map_size(v); i++)
                        if (!value_appendable(kactor_value_map_value(v, i), depth + 2))
                                return false;
                return true;
        default:
                return false; /* errors are not data */
        }
}

static int append_id(sd_bus_message *m, const kactor_value *v) {
        _cleanup_free_ char *path = NULL;

        path = kactor_value_type(v) == KACTOR_TYPE_ACTOR ? bus_actor_path(kactor_value_get_id(v))
                                                         : bus_object_path(kactor_value_get_id(v));
        if (!path)
                return -ENOMEM;
        return sd_bus_message_append(m, "v", "o", path);
}

static int append_value(sd_bus_message *m, const kactor_value *v) {
        int r;

        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_NIL:
                return sd_bus_message_append(m, "v", "g", "");

        case KACTOR_TYPE_BOOL:
                return sd_bus_message_append(m, "v", "b", (int)kactor_value_get_bool(v));

        case KACTOR_TYPE_INT:
                return sd_bus_message_append(m, "v", "x", kactor_value_get_int(v));

        case KACTOR_TYPE_DOUBLE:
                return sd_bus_message_append(m, "v", "d", kactor_value_get_double(v));

        case KACTOR_TYPE_STRING:
                return sd_bus_message_append(m, "v", "s", kactor_value_get_string(v, NULL));

        case KACTOR_TYPE_BYTES: {
                const void *p;
                size_t n;

                p = kactor_value_get_bytes(v, &n);
                r = sd_bus_message_open_container(m, 'v', "ay");
                if (r < 0)
                        return r;
                r = sd_bus_message_append_array(m, 'y', p, n);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }

        case KACTOR_TYPE_LIST:
                r = sd_bus_message_open_container(m, 'v', "av");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'a', "v");
                if (r < 0)
                        return r;
                for (size_t i = 0; i < kactor_value_list_size(v); i++) {
                        r = append_value(m, kactor_value_list_get(v, i));
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);

        case KACTOR_TYPE_MAP:
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r < 0)
                        return r;
                r = sd_bus_message_open_container(m, 'a', "{sv}");
                if (r < 0)
                        return r;
                for (size_t i = 0; i < kactor_value_map_size(v); i++) {
                        r = sd_bus_message_open_container(m, 'e', "sv");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_append_basic(m, 's', kactor_value_map_key(v, i));
                        if (r < 0)
                                return r;
                        r = append_value(m, kactor_value_map_value(v, i));
                        if (r < 0)
                                return r;
                        r = sd_bus_message_close_container(m);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);

        case KACTOR_TYPE_OBJECT:
        case KACTOR_TYPE_ACTOR:
                return append_id(m, v);

        default:
                return -EINVAL;
        }
}

int bus_message_append_value(sd_bus_message *m, const kactor_value *v) {
        if (!m || !v)
                return -EINVAL;

        /* Checked up front, so that what cannot be sent leaves the message as it was. Strings that are
         * not UTF-8 are still refused by sd-bus half way; a message that failed is to be dropped. */
        if (!value_appendable(v, 0))
                return -EINVAL;

        return append_value(m, v);
}
