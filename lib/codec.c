/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <limits.h>
#include <msgpack/unpack_define.h>

#include "codec.h"
#include "macro.h"

/*
 * msgpack-c's C unpacker keeps at most MSGPACK_EMBED_STACK_SIZE (32) non-empty containers open and
 * fails deeper input, so values nested deeper than that could be encoded but never decoded. The limit
 * used everywhere here (pack, decode, validate, walk) is therefore the smaller of the two: a container
 * nested inside CODEC_DEPTH_LIMIT others is refused.
 */
#define CODEC_DEPTH_LIMIT MIN(CODEC_MAX_DEPTH, MSGPACK_EMBED_STACK_SIZE)

/* Maps of up to this many entries are checked for duplicate keys pairwise, larger ones by sorting. */
#define DUPLICATE_CHECK_PAIRWISE_MAX 8

/* From value.c (no header of its own): appends a key known to be new, without a lookup. */
int value_map_append_unchecked(kactor_value *map, const char *key, size_t key_len, kactor_value *item);

static void msgpack_unpacked_destroyp(msgpack_unpacked *u) {
        msgpack_unpacked_destroy(u);
}

static void msgpack_sbuffer_destroyp(msgpack_sbuffer *b) {
        msgpack_sbuffer_destroy(b);
}

/* The packer functions return what the write callback returned: anything but 0 is a failed write,
 * which for the buffers used with this codec means out of memory. */
static bool id_type_valid(int8_t type) {
        return type == CODEC_EXT_OBJECT || type == CODEC_EXT_ACTOR;
}

static int pack_result(int r) {
        return r == 0 ? 0 : -ENOMEM;
}

void codec_id_to_bytes(kactor_id id, uint8_t out[16]) {
        for (size_t i = 0; i < 8; i++) {
                out[i] = (uint8_t)(id.hi >> (56 - 8 * i));
                out[8 + i] = (uint8_t)(id.lo >> (56 - 8 * i));
        }
}

kactor_id codec_id_from_bytes(const uint8_t in[16]) {
        kactor_id id = {};

        for (size_t i = 0; i < 8; i++) {
                id.hi = (id.hi << 8) | in[i];
                id.lo = (id.lo << 8) | in[8 + i];
        }
        return id;
}

int codec_pack_u32_list(msgpack_packer *pk, const uint32_t *v, size_t n) {
        if (msgpack_pack_array(pk, n) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (msgpack_pack_uint32(pk, v[i]) < 0)
                        return -ENOMEM;
        return 0;
}

int codec_pack_id(msgpack_packer *pk, int8_t type, kactor_id id) {
        uint8_t b[16];
        int r;

        if (!pk || !id_type_valid(type))
                return -EINVAL;

        codec_id_to_bytes(id, b);
        r = msgpack_pack_ext(pk, sizeof(b), type);
        if (r != 0)
                return pack_result(r);
        return pack_result(msgpack_pack_ext_body(pk, b, sizeof(b)));
}

int codec_object_to_id(const msgpack_object *o, int8_t type, kactor_id *ret) {
        if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != type || o->via.ext.size != 16)
                return -EBADMSG;
        if (ret)
                *ret = codec_id_from_bytes((const uint8_t *)o->via.ext.ptr);
        return 0;
}

static bool error_code_valid(unsigned code) {
        return code > KACTOR_OK && code < _KACTOR_ERROR_MAX;
}

static int pack_value(msgpack_packer *pk, const kactor_value *v, unsigned depth) {
        const char *s;
        size_t n;
        int r;

        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_NIL:
                return pack_result(msgpack_pack_nil(pk));

        case KACTOR_TYPE_BOOL:
                return pack_result(kactor_value_get_bool(v) ? msgpack_pack_true(pk)
                                                            : msgpack_pack_false(pk));

        case KACTOR_TYPE_INT:
                return pack_result(msgpack_pack_int64(pk, kactor_value_get_int(v)));

        case KACTOR_TYPE_DOUBLE:
                return pack_result(msgpack_pack_double(pk, kactor_value_get_double(v)));

        case KACTOR_TYPE_STRING:
                s = kactor_value_get_string(v, &n);
                if (n > UINT32_MAX)
                        return -EINVAL;
                r = msgpack_pack_str(pk, n);
                if (r != 0)
                        return pack_result(r);
                return pack_result(msgpack_pack_str_body(pk, s, n));

        case KACTOR_TYPE_BYTES:
                s = kactor_value_get_bytes(v, &n);
                if (n > UINT32_MAX)
                        return -EINVAL;
                r = msgpack_pack_bin(pk, n);
                if (r != 0)
                        return pack_result(r);
                return pack_result(msgpack_pack_bin_body(pk, s, n));

        case KACTOR_TYPE_LIST:
                if (depth >= CODEC_DEPTH_LIMIT)
                        return -EINVAL;
                n = kactor_value_list_size(v);
                if (n > UINT32_MAX)
                        return -EINVAL;
                r = msgpack_pack_array(pk, n);
                if (r != 0)
                        return pack_result(r);
                for (size_t i = 0; i < n; i++) {
                        r = pack_value(pk, kactor_value_list_get(v, i), depth + 1);
                        if (r < 0)
                                return r;
                }
                return 0;

        case KACTOR_TYPE_MAP:
                if (depth >= CODEC_DEPTH_LIMIT)
                        return -EINVAL;
                n = kactor_value_map_size(v);
                if (n > UINT32_MAX)
                        return -EINVAL;
                r = msgpack_pack_map(pk, n);
                if (r != 0)
                        return pack_result(r);
                for (size_t i = 0; i < n; i++) {
                        const char *key = kactor_value_map_key(v, i);
                        size_t key_len = strlen(key);

                        r = msgpack_pack_str(pk, key_len);
                        if (r == 0)
                                r = msgpack_pack_str_body(pk, key, key_len);
                        if (r != 0)
                                return pack_result(r);
                        r = pack_value(pk, kactor_value_map_value(v, i), depth + 1);
                        if (r < 0)
                                return r;
                }
                return 0;

        case KACTOR_TYPE_OBJECT:
                return codec_pack_id(pk, CODEC_EXT_OBJECT, kactor_value_get_id(v));

        case KACTOR_TYPE_ACTOR:
                return codec_pack_id(pk, CODEC_EXT_ACTOR, kactor_value_get_id(v));

        case KACTOR_TYPE_ERROR: {
                kactor_error code = kactor_value_error_code(v);
                const char *message = kactor_value_error_message(v);
                uint8_t c;

                if (!error_code_valid(code))
                        return -EINVAL;
                n = strlen(message);
                if (n >= UINT32_MAX)
                        return -EINVAL;
                c = (uint8_t)code;
                r = msgpack_pack_ext(pk, 1 + n, CODEC_EXT_ERROR);
                if (r == 0)
                        r = msgpack_pack_ext_body(pk, &c, 1);
                if (r == 0)
                        r = msgpack_pack_ext_body(pk, message, n);
                return pack_result(r);
        }

        default:
                return -EINVAL;
        }
}

int codec_pack_value(msgpack_packer *pk, const kactor_value *v) {
        if (!pk || !v)
                return -EINVAL;
        return pack_value(pk, v, 0);
}

int codec_encode(const kactor_value *v, char **ret_buf, size_t *ret_len) {
        _cleanup_(msgpack_sbuffer_destroyp) msgpack_sbuffer sbuf = {};
        msgpack_packer pk;
        int r;

        if (!ret_buf || !ret_len)
                return -EINVAL;

        msgpack_sbuffer_init(&sbuf);
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);

        r = codec_pack_value(&pk, v);
        if (r < 0)
                return r;

        *ret_len = sbuf.size;
        *ret_buf = msgpack_sbuffer_release(&sbuf);
        return 0;
}

static int str_compare(const void *a, const void *b) {
        const msgpack_object_str *x = *(const msgpack_object_str *const *)a;
        const msgpack_object_str *y = *(const msgpack_object_str *const *)b;
        int c;

        /* msgpack gives NULL for empty strings: memcmp() must not see them. */
        c = MIN(x->size, y->size) > 0 ? memcmp(x->ptr, y->ptr, MIN(x->size, y->size)) : 0;
        if (c != 0)
                return c;
        return x->size < y->size ? -1 : x->size > y->size;
}

static bool str_equal(const msgpack_object_str *x, const msgpack_object_str *y) {
        return x->size == y->size && (x->size == 0 || memcmp(x->ptr, y->ptr, x->size) == 0);
}

/* Keys are already known to be strings. Returns 1 when two are equal, 0 when not, or -ENOMEM. */
static int map_has_duplicate_keys(const msgpack_object_map *m) {
        _cleanup_free_ const msgpack_object_str **keys = NULL;

        if (m->size <= DUPLICATE_CHECK_PAIRWISE_MAX) {
                for (uint32_t i = 0; i < m->size; i++)
                        for (uint32_t j = i + 1; j < m->size; j++)
                                if (str_equal(&m->ptr[i].key.via.str, &m->ptr[j].key.via.str))
                                        return 1;
                return 0;
        }

        keys = malloc(sizeof(*keys) * m->size);
        if (!keys)
                return -ENOMEM;
        for (uint32_t i = 0; i < m->size; i++)
                keys[i] = &m->ptr[i].key.via.str;
        qsort(keys, m->size, sizeof(*keys), str_compare);
        for (uint32_t i = 1; i < m->size; i++)
                if (str_equal(keys[i - 1], keys[i]))
                        return 1;
        return 0;
}

/* Checks o and, when ret is not NULL, builds its value: both use the same rules by construction. */
static int object_to_value(const msgpack_object *o, unsigned depth, kactor_value **ret) {
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        int r;

        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
                if (ret)
                        v = kactor_value_new_nil();
                break;

        case MSGPACK_OBJECT_BOOLEAN:
                if (ret)
                        v = kactor_value_new_bool(o->via.boolean);
                break;

        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                if (o->via.u64 > INT64_MAX)
                        return -EBADMSG;
                if (ret)
                        v = kactor_value_new_int((int64_t)o->via.u64);
                break;

        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                if (ret)
                        v = kactor_value_new_int(o->via.i64);
                break;

        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                if (ret)
                        v = kactor_value_new_double(o->via.f64);
                break;

        case MSGPACK_OBJECT_STR:
                if (ret)
                        v = kactor_value_new_stringn(o->via.str.size > 0 ? o->via.str.ptr : "",
                                                     o->via.str.size);
                break;

        case MSGPACK_OBJECT_BIN:
                if (ret)
                        v = kactor_value_new_bytes(o->via.bin.size > 0 ? o->via.bin.ptr : "",
                                                   o->via.bin.size);
                break;

        case MSGPACK_OBJECT_ARRAY:
                if (depth >= CODEC_DEPTH_LIMIT)
                        return -EBADMSG;
                if (ret) {
                        v = kactor_value_new_list();
                        if (!v)
                                return -ENOMEM;
                }
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        kactor_value *item = NULL;

                        r = object_to_value(o->via.array.ptr + i, depth + 1, ret ? &item : NULL);
                        if (r < 0)
                                return r;
                        if (ret) {
                                r = kactor_value_list_append(v, item);
                                if (r < 0)
                                        return r;
                        }
                }
                break;

        case MSGPACK_OBJECT_MAP:
                if (depth >= CODEC_DEPTH_LIMIT)
                        return -EBADMSG;
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object *key = &o->via.map.ptr[i].key;

                        /* Value keys are C strings: an embedded NUL could not be looked up. */
                        if (key->type != MSGPACK_OBJECT_STR ||
                            (key->via.str.size > 0 && memchr(key->via.str.ptr, 0, key->via.str.size)))
                                return -EBADMSG;
                }
                r = map_has_duplicate_keys(&o->via.map);
                if (r < 0)
                        return r;
                if (r > 0)
                        return -EBADMSG;

                if (ret) {
                        v = kactor_value_new_map();
                        if (!v)
                                return -ENOMEM;
                }
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = o->via.map.ptr + i;
                        kactor_value *item = NULL;

                        r = object_to_value(&kv->val, depth + 1, ret ? &item : NULL);
                        if (r < 0)
                                return r;
                        if (ret) {
                                r = value_map_append_unchecked(
                                        v, kv->key.via.str.size > 0 ? kv->key.via.str.ptr : "",
                                        kv->key.via.str.size, item);
                                if (r < 0)
                                        return r;
                        }
                }
                break;

        case MSGPACK_OBJECT_EXT: {
                const uint8_t *p = (const uint8_t *)o->via.ext.ptr;
                uint32_t n = o->via.ext.size;

                switch (o->via.ext.type) {
                case CODEC_EXT_OBJECT:
                case CODEC_EXT_ACTOR:
                        if (n != 16)
                                return -EBADMSG;
                        if (ret) {
                                kactor_id id = codec_id_from_bytes(p);

                                v = o->via.ext.type == CODEC_EXT_OBJECT ? kactor_value_new_object(id)
                                                                        : kactor_value_new_actor(id);
                        }
                        break;

                case CODEC_EXT_ERROR: {
                        _cleanup_free_ char *message = NULL;

                        if (n < 1 || !error_code_valid(p[0]) || memchr(p + 1, 0, n - 1))
                                return -EBADMSG;
                        if (ret) {
                                message = strndup((const char *)p + 1, n - 1);
                                if (!message)
                                        return -ENOMEM;
                                v = kactor_value_new_error((kactor_error)p[0], message);
                        }
                        break;
                }

                default:
                        return -EBADMSG;
                }
                break;
        }

        default:
                return -EBADMSG;
        }

        if (ret) {
                if (!v)
                        return -ENOMEM;
                *ret = TAKE_PTR(v);
        }
        return 0;
}

int codec_value_from_object(const msgpack_object *o, kactor_value **ret) {
        if (!o || !ret)
                return -EINVAL;
        return object_to_value(o, 0, ret);
}

int codec_validate(const msgpack_object *o) {
        if (!o)
                return -EBADMSG;
        return object_to_value(o, 0, NULL);
}

/*
 * msgpack-c's unpacker allocates room for all the elements a container header announces before it
 * reads them: five bytes announcing 2^32 elements make it ask for 128 GiB. This scan runs first and
 * bounds that: every element takes at least one byte, so a count larger than the bytes left is
 * malformed, and so is nesting past the limit. It only walks headers and lengths; the unpacker still
 * does the parsing.
 */
int codec_check_bounds(const void *buf, size_t len, size_t *ret_len) {
        const uint8_t *p = buf;
        uint64_t pending[CODEC_DEPTH_LIMIT + 1];
        unsigned depth = 0;
        size_t off = 0;

        pending[0] = 1;
        for (;;) {
                uint64_t count = 0, payload = 0;
                size_t header = 1, width = 0;
                bool container = false;
                uint8_t b;

                while (depth > 0 && pending[depth] == 0)
                        depth--;
                if (pending[depth] == 0)
                        break;
                pending[depth]--;

                if (off >= len)
                        return -EBADMSG;
                b = p[off];

                if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
                        ; /* fixints, nil, bool */
                else if (b <= 0x8f) {
                        container = true;
                        count = 2 * (uint64_t)(b & 0x0f);
                } else if (b <= 0x9f) {
                        container = true;
                        count = b & 0x0f;
                } else if (b <= 0xbf)
                        payload = b & 0x1f;
                else
                        switch (b) {
                        case 0xc4:
                        case 0xd9: /* bin 8, str 8 */
                                width = 1;
                                break;
                        case 0xc5:
                        case 0xda:
                                width = 2;
                                break;
                        case 0xc6:
                        case 0xdb:
                                width = 4;
                                break;
                        case 0xc7:
                        case 0xc8:
                        case 0xc9: /* ext 8/16/32: length, then the type byte */
                                width = (size_t)1 << (b - 0xc7);
                                payload = 1;
                                break;
                        case 0xca:
                                payload = 4;
                                break;
                        case 0xcb:
                                payload = 8;
                                break;
                        case 0xcc:
                        case 0xcd:
                        case 0xce:
                        case 0xcf:
                                payload = (uint64_t)1 << (b - 0xcc);
                                break;
                        case 0xd0:
                        case 0xd1:
                        case 0xd2:
                        case 0xd3:
                                payload = (uint64_t)1 << (b - 0xd0);
                                break;
                        case 0xd4:
                        case 0xd5:
                        case 0xd6:
                        case 0xd7:
                        case 0xd8: /* fixext: type + 2^k */
                                payload = 1 + ((uint64_t)1 << (b - 0xd4));
                                break;
                        case 0xdc:
                        case 0xde:
                                container = true;
                                width = 2;
                                break;
                        case 0xdd:
                        case 0xdf:
                                container = true;
                                width = 4;
                                break;
                        default: /* 0xc1: never used */
                                return -EBADMSG;
                        }

                if (width > 0) {
                        uint64_t x = 0;

                        if (len - off - 1 < width)
                                return -EBADMSG;
                        for (size_t i = 0; i < width; i++)
                                x = (x << 8) | p[off + 1 + i];
                        header += width;
                        if (!container)
                                payload += x;
                        else
                                count = (b == 0xde || b == 0xdf) ? 2 * x : x;
                }

                if (len - off < header || len - off - header < payload)
                        return -EBADMSG;
                off += header + payload;

                if (container) {
                        if (depth >= CODEC_DEPTH_LIMIT || count > len - off)
                                return -EBADMSG;
                        if (count > 0)
                                pending[++depth] = count;
                }
        }

        if (ret_len)
                *ret_len = off;
        else if (off != len)
                return -EBADMSG;
        return 0;
}

int codec_decode(const void *buf, size_t len, kactor_value **ret) {
        _cleanup_(msgpack_unpacked_destroyp) msgpack_unpacked u = {};
        size_t off = 0;
        int r;

        if (!ret)
                return -EINVAL;
        if (!buf || len == 0)
                return -EBADMSG;

        r = codec_check_bounds(buf, len, NULL);
        if (r < 0)
                return r;

        msgpack_unpacked_init(&u);
        /* NOMEM is also what msgpack-c reports for input nested too deeply: treat all as malformed. */
        if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
                return -EBADMSG;

        return object_to_value(&u.data, 0, ret);
}

static int foreach_id(const msgpack_object *o, unsigned depth, bool top, codec_id_fn fn, void *userdata) {
        int n = 0, r;

        switch (o->type) {
        case MSGPACK_OBJECT_EXT: {
                kactor_id id;

                if (!id_type_valid(o->via.ext.type) || o->via.ext.size != 16)
                        return 0;
                id = codec_id_from_bytes((const uint8_t *)o->via.ext.ptr);
                if (fn) {
                        r = fn(o->via.ext.type, id, top, userdata);
                        if (r < 0)
                                return r;
                }
                return 1;
        }

        case MSGPACK_OBJECT_ARRAY:
                if (depth >= CODEC_DEPTH_LIMIT)
                        return -EBADMSG;
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        r = foreach_id(o->via.array.ptr + i, depth + 1, depth == 0, fn, userdata);
                        if (r < 0)
                                return r;
                        if (r > INT_MAX - n)
                                return -EOVERFLOW;
                        n += r;
                }
                return n;

        case MSGPACK_OBJECT_MAP:
                if (depth >= CODEC_DEPTH_LIMIT)
                        return -EBADMSG;
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        r = foreach_id(&o->via.map.ptr[i].val, depth + 1, false, fn, userdata);
                        if (r < 0)
                                return r;
                        if (r > INT_MAX - n)
                                return -EOVERFLOW;
                        n += r;
                }
                return n;

        default:
                return 0;
        }
}

int codec_foreach_id(const msgpack_object *o, codec_id_fn fn, void *userdata) {
        if (!o)
                return -EINVAL;
        return foreach_id(o, 0, false, fn, userdata);
}

typedef struct ScanState {
        kactor_id *ids;
        uint8_t *actor;
        size_t n, allocated;
        bool top_refs;
} ScanState;

static int scan_one(int8_t type, kactor_id id, bool top, void *userdata) {
        ScanState *s = userdata;
        if (s->n == s->allocated) {
                size_t n = MAX(s->allocated * 2, (size_t) 4);
                kactor_id *ids = realloc(s->ids, n * sizeof(kactor_id));
                if (!ids)
                        return -ENOMEM;
                s->ids = ids;
                uint8_t *a = realloc(s->actor, n);
                if (!a)
                        return -ENOMEM;
                s->actor = a;
                s->allocated = n;
        }
        s->ids[s->n] = id;
        s->actor[s->n] = type == CODEC_EXT_ACTOR;
        s->n++;
        if (top && type == CODEC_EXT_OBJECT)
                s->top_refs = true;
        return 0;
}

int codec_scan_ids(const char *data, size_t len, kactor_id **ret_ids, uint8_t **ret_actor, size_t *ret_n,
                   bool *ret_top_refs) {
        ScanState s = {};

        *ret_ids = NULL;
        *ret_actor = NULL;
        *ret_n = 0;
        if (ret_top_refs)
                *ret_top_refs = false;

        /* Ids travel as fixext16 (0xd8): a value without that byte names nothing. */
        if (!memchr(data, 0xd8, len))
                return 0;

        if (codec_check_bounds(data, len, NULL) < 0)
                return -EBADMSG;

        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        int r = msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS ? 0 : -EBADMSG;
        if (r >= 0)
                r = codec_foreach_id(&u.data, scan_one, &s);
        msgpack_unpacked_destroy(&u);
        if (r < 0) {
                free(s.ids);
                free(s.actor);
                return r;
        }
        *ret_ids = s.ids;
        *ret_actor = s.actor;
        *ret_n = s.n;
        if (ret_top_refs)
                *ret_top_refs = s.top_refs;
        return 0;
}

bool codec_value_names_ids(const kactor_value *v) {
        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_OBJECT:
        case KACTOR_TYPE_ACTOR:
                return true;
        case KACTOR_TYPE_LIST:
                for (size_t i = 0; i < kactor_value_list_size(v); i++)
                        if (codec_value_names_ids(kactor_value_list_get(v, i)))
                                return true;
                return false;
        case KACTOR_TYPE_MAP:
                for (size_t i = 0; i < kactor_value_map_size(v); i++)
                        if (codec_value_names_ids(kactor_value_map_value(v, i)))
                                return true;
                return false;
        default:
                return false;
        }
}
