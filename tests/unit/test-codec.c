/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>

#include "codec.h"
#include "macro.h"

/* msgpack-c's unpacker holds at most 32 open containers; the codec's effective nesting limit. */
#define DEPTH_LIMIT 32

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void setup(void) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void teardown(void) {
        msgpack_sbuffer_destroy(&sb);
}

TestSuite(codec, .init = setup, .fini = teardown);

static void sb_reset(void) {
        msgpack_sbuffer_clear(&sb);
}

/* Encodes v (taking it), checks that decoding, unpacking + codec_value_from_object and codec_validate all
 * agree that it is the same value. */
static void expect_round_trip(kactor_value *v) {
        _cleanup_(kactor_value_freep) kactor_value *owned = v, *back = NULL, *back2 = NULL;
        _cleanup_free_ char *buf = NULL;
        msgpack_unpacked u;
        size_t len, off = 0;

        cr_assert_not_null(owned);
        cr_assert_eq(codec_encode(owned, &buf, &len), 0);
        cr_assert_gt(len, 0);
        cr_assert_eq(codec_decode(buf, len, &back), 0);
        cr_expect(kactor_value_equal(owned, back), "decoded value equals the original");

        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
        cr_expect_eq(off, len);
        cr_expect_eq(codec_validate(&u.data), 0);
        cr_expect_eq(codec_value_from_object(&u.data, &back2), 0);
        cr_expect(kactor_value_equal(owned, back2));
        msgpack_unpacked_destroy(&u);
}

/* Decodes len bytes at p, which must be malformed; validate must agree whenever msgpack-c can unpack them.
 */
static void expect_bytes_malformed(const void *p, size_t len) {
        kactor_value *v = NULL;
        msgpack_unpacked u;
        size_t off = 0;

        cr_expect_eq(codec_decode(p, len, &v), -EBADMSG);
        cr_expect_null(v, "ret is untouched on failure");

        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, p, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len) {
                cr_expect_eq(codec_validate(&u.data), -EBADMSG);
                cr_expect_eq(codec_value_from_object(&u.data, &v), -EBADMSG);
                cr_expect_null(v);
        }
        msgpack_unpacked_destroy(&u);
}

/* Only decodes: for input that msgpack-c's unpacker alone would choke on. */
static void expect_decode_fails(const void *p, size_t len) {
        kactor_value *v = NULL;

        cr_expect_eq(codec_decode(p, len, &v), -EBADMSG);
        cr_expect_null(v);
}

static void expect_packed_malformed(void) {
        expect_bytes_malformed(sb.data, sb.size);
}

/* A value with every type in it, nested. */
static kactor_value *make_tree(void) {
        kactor_value *root = kactor_value_new_list(), *m = kactor_value_new_map(),
                     *inner = kactor_value_new_list();

        cr_assert(root && m && inner);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_bytes("\0\xff\0", 3)), 0);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_double(-0.5)), 0);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_list()), 0);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_map()), 0);
        cr_assert_eq(kactor_value_map_set(m, "inner", inner), 0);
        cr_assert_eq(kactor_value_map_set(m, "actor", kactor_value_new_actor((kactor_id){7, 8})), 0);
        cr_assert_eq(kactor_value_map_set(m, "", kactor_value_new_stringn("x\0y", 3)), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_int(INT64_MIN)), 0);
        cr_assert_eq(kactor_value_list_append(root, m), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_object((kactor_id){UINT64_MAX, 1})), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_error(KACTOR_ERROR_ACTOR_DIED, "gone")),
                     0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_nil()), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_bool(true)), 0);
        cr_assert_eq(kactor_value_list_append(root, kactor_value_new_string("caf\xc3\xa9")), 0);
        return root;
}

static kactor_value *make_nested_lists(unsigned levels) {
        kactor_value *v = kactor_value_new_list();

        cr_assert_not_null(v);
        for (unsigned i = 1; i < levels; i++) {
                kactor_value *outer = kactor_value_new_list();

                cr_assert_not_null(outer);
                cr_assert_eq(kactor_value_list_append(outer, v), 0);
                v = outer;
        }
        return v;
}

Test(codec, round_trips_scalars) {
        static const int64_t ints[] = {0,
                                       1,
                                       -1,
                                       127,
                                       128,
                                       -32,
                                       -33,
                                       255,
                                       256,
                                       65535,
                                       65536,
                                       -32768,
                                       -32769,
                                       INT32_MAX,
                                       INT32_MIN,
                                       UINT32_MAX,
                                       (int64_t)UINT32_MAX + 1,
                                       INT64_MAX,
                                       INT64_MIN,
                                       INT64_MIN + 1};
        static const double doubles[] = {0.0,     1.5,    -2.25,    0.1,       DBL_MAX, -DBL_MAX,
                                         DBL_MIN, 5e-324, INFINITY, -INFINITY, NAN};

        expect_round_trip(kactor_value_new_nil());
        expect_round_trip(kactor_value_new_bool(true));
        expect_round_trip(kactor_value_new_bool(false));
        for (size_t i = 0; i < ELEMENTSOF(ints); i++)
                expect_round_trip(kactor_value_new_int(ints[i]));
        for (size_t i = 0; i < ELEMENTSOF(doubles); i++)
                expect_round_trip(kactor_value_new_double(doubles[i]));
}

Test(codec, keeps_the_sign_of_negative_zero) {
        _cleanup_(kactor_value_freep) kactor_value *v = kactor_value_new_double(-0.0), *back = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t len;

        cr_assert_eq(codec_encode(v, &buf, &len), 0);
        cr_assert_eq(codec_decode(buf, len, &back), 0);
        cr_expect_eq(kactor_value_type(back), KACTOR_TYPE_DOUBLE);
        cr_expect(signbit(kactor_value_get_double(back)));
}

Test(codec, round_trips_strings_and_bytes) {
        _cleanup_free_ char *big = malloc(70000);

        cr_assert_not_null(big);
        for (size_t i = 0; i < 70000; i++)
                big[i] = (char)('a' + i % 26);

        expect_round_trip(kactor_value_new_string(""));
        expect_round_trip(kactor_value_new_string("hello"));
        expect_round_trip(kactor_value_new_stringn("a\0b\0", 4));
        expect_round_trip(kactor_value_new_stringn(big, 300));   /* str 16 */
        expect_round_trip(kactor_value_new_stringn(big, 70000)); /* str 32 */
        expect_round_trip(kactor_value_new_bytes("", 0));
        expect_round_trip(kactor_value_new_bytes("\0\0\0", 3));
        expect_round_trip(kactor_value_new_bytes(big, 70000));
}

Test(codec, round_trips_ids_and_errors) {
        expect_round_trip(kactor_value_new_object((kactor_id){0, 0}));
        expect_round_trip(kactor_value_new_object((kactor_id){UINT64_MAX, UINT64_MAX}));
        expect_round_trip(kactor_value_new_actor((kactor_id){0x0102030405060708ULL, 0x090a0b0c0d0e0f10ULL}));
        for (int c = KACTOR_OK + 1; c < _KACTOR_ERROR_MAX; c++)
                expect_round_trip(kactor_value_new_error(c, "what went wrong"));
        /* fixext 1/2/4/8/16 and ext 8/16/32, by the length of the message */
        static const size_t lengths[] = {0, 1, 3, 7, 15, 16, 200, 300, 70000};
        _cleanup_free_ char *msg = malloc(70001);

        cr_assert_not_null(msg);
        for (size_t i = 0; i < ELEMENTSOF(lengths); i++) {
                memset(msg, 'm', lengths[i]);
                msg[lengths[i]] = 0;
                expect_round_trip(kactor_value_new_error(KACTOR_ERROR_TIMEOUT, msg));
        }
}

Test(codec, round_trips_nested_lists_and_maps) {
        kactor_value *big = kactor_value_new_map();

        expect_round_trip(make_tree());
        expect_round_trip(kactor_value_new_list());
        expect_round_trip(kactor_value_new_map());

        /* Large enough that the duplicate key check sorts. */
        cr_assert_not_null(big);
        for (int i = 0; i < 100; i++) {
                char key[16];

                snprintf(key, sizeof(key), "k%d", 99 - i);
                cr_assert_eq(kactor_value_map_set(big, key, kactor_value_new_int(i)), 0);
        }
        expect_round_trip(big);
}

Test(codec, keeps_map_insertion_order) {
        _cleanup_(kactor_value_freep) kactor_value *m = kactor_value_new_map(), *back = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t len;

        cr_assert_eq(kactor_value_map_set(m, "z", kactor_value_new_int(1)), 0);
        cr_assert_eq(kactor_value_map_set(m, "a", kactor_value_new_int(2)), 0);
        cr_assert_eq(codec_encode(m, &buf, &len), 0);
        cr_assert_eq(codec_decode(buf, len, &back), 0);
        cr_expect_str_eq(kactor_value_map_key(back, 0), "z");
        cr_expect_str_eq(kactor_value_map_key(back, 1), "a");
}

Test(codec, round_trips_the_deepest_nesting_it_allows) {
        expect_round_trip(make_nested_lists(DEPTH_LIMIT));
}

Test(codec, empty_list_and_nil_differ_on_the_wire) {
        _cleanup_(kactor_value_freep) kactor_value *l = kactor_value_new_list(), *n = kactor_value_new_nil(),
                                                   *back = NULL;
        _cleanup_free_ char *bl = NULL, *bn = NULL;
        size_t ll, ln;

        cr_assert_eq(codec_encode(l, &bl, &ll), 0);
        cr_assert_eq(codec_encode(n, &bn, &ln), 0);
        cr_expect(ll == 1 && (uint8_t)bl[0] == 0x90);
        cr_expect(ln == 1 && (uint8_t)bn[0] == 0xc0);
        cr_assert_eq(codec_decode(bl, ll, &back), 0);
        cr_expect_eq(kactor_value_type(back), KACTOR_TYPE_LIST);
}

Test(codec, encodes_ints_compactly_and_ids_as_fixext16) {
        _cleanup_(kactor_value_freep) kactor_value *i = kactor_value_new_int(5), *o = NULL;
        _cleanup_free_ char *bi = NULL, *bo = NULL;
        static const uint8_t expected[] = {
                0xd8, CODEC_EXT_OBJECT, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        size_t li, lo;

        o = kactor_value_new_object((kactor_id){0x0102030405060708ULL, 0x090a0b0c0d0e0f10ULL});
        cr_assert_eq(codec_encode(i, &bi, &li), 0);
        cr_expect(li == 1 && bi[0] == 5);
        cr_assert_eq(codec_encode(o, &bo, &lo), 0);
        cr_assert_eq(lo, sizeof(expected));
        cr_expect(memcmp(bo, expected, lo) == 0, "ext 1, id.hi then id.lo, big-endian");
}

Test(codec, id_bytes_are_big_endian) {
        kactor_id id = {0x0102030405060708ULL, 0x1112131415161718ULL};
        uint8_t b[16];

        codec_id_to_bytes(id, b);
        cr_expect_eq(b[0], 0x01);
        cr_expect_eq(b[7], 0x08);
        cr_expect_eq(b[8], 0x11);
        cr_expect_eq(b[15], 0x18);
        cr_expect(kactor_id_equal(codec_id_from_bytes(b), id));
}

Test(codec, pack_id_reads_back_only_as_its_type) {
        kactor_id id = {3, 4}, back = {9, 9};
        msgpack_unpacked u;
        msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 1};

        cr_assert_eq(codec_pack_id(&pk, CODEC_EXT_ACTOR, id), 0);
        cr_expect_eq(codec_pack_id(&pk, CODEC_EXT_ERROR, id), -EINVAL);
        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
        cr_expect_eq(codec_object_to_id(&u.data, CODEC_EXT_OBJECT, &back), -EBADMSG);
        cr_expect(back.hi == 9 && back.lo == 9);
        cr_expect_eq(codec_object_to_id(&u.data, CODEC_EXT_ACTOR, &back), 0);
        cr_expect(kactor_id_equal(back, id));
        cr_expect_eq(codec_object_to_id(&o, CODEC_EXT_ACTOR, &back), -EBADMSG);
        msgpack_unpacked_destroy(&u);
}

Test(codec, accepts_other_msgpack_encodings_of_the_same_values) {
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;

        /* uint 8 for a small number, uint 64 at INT64_MAX, int 64 for a positive one, float 32. */
        msgpack_pack_array(&pk, 4);
        msgpack_pack_fix_uint8(&pk, 5);
        msgpack_pack_fix_uint64(&pk, INT64_MAX);
        msgpack_pack_fix_int64(&pk, 7);
        msgpack_pack_float(&pk, 0.5f);
        cr_assert_eq(codec_decode(sb.data, sb.size, &v), 0);
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 0)), 5);
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 1)), INT64_MAX);
        cr_expect_eq(kactor_value_get_int(kactor_value_list_get(v, 2)), 7);
        cr_expect_eq(kactor_value_get_double(kactor_value_list_get(v, 3)), 0.5);
}

Test(codec, rejects_uint64_above_int64_max) {
        msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
        expect_packed_malformed();

        sb_reset();
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, UINT64_MAX);
        expect_packed_malformed();
}

Test(codec, rejects_trailing_bytes) {
        msgpack_pack_int(&pk, 1);
        msgpack_pack_nil(&pk);
        expect_packed_malformed();

        sb_reset();
        msgpack_pack_array(&pk, 0);
        msgpack_pack_array(&pk, 0);
        expect_packed_malformed();
}

Test(codec, rejects_empty_and_truncated_buffers) {
        _cleanup_(kactor_value_freep) kactor_value *t = make_tree();
        _cleanup_free_ char *buf = NULL;
        kactor_value *v = NULL;
        size_t len;

        cr_expect_eq(codec_decode("", 0, &v), -EBADMSG);
        cr_expect_eq(codec_decode(NULL, 0, &v), -EBADMSG);

        cr_assert_eq(codec_encode(t, &buf, &len), 0);
        for (size_t n = 1; n < len; n++)
                expect_bytes_malformed(buf, n);
}

Test(codec, rejects_id_ext_of_the_wrong_size) {
        static const uint32_t sizes[] = {0, 1, 8, 15, 17, 32};
        static const char zeros[32] = {};

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                for (int8_t type = CODEC_EXT_OBJECT; type <= CODEC_EXT_ACTOR; type++) {
                        sb_reset();
                        msgpack_pack_ext(&pk, sizes[i], type);
                        msgpack_pack_ext_body(&pk, zeros, sizes[i]);
                        expect_packed_malformed();
                }
}

Test(codec, rejects_unknown_ext_types) {
        static const int8_t types[] = {0, 4, 5, 100, 127, -1, -128};
        static const char zeros[16] = {};

        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                sb_reset();
                msgpack_pack_ext(&pk, 16, types[i]);
                msgpack_pack_ext_body(&pk, zeros, 16);
                expect_packed_malformed();
        }
}

static void pack_error_ext(const void *payload, size_t n) {
        sb_reset();
        msgpack_pack_ext(&pk, n, CODEC_EXT_ERROR);
        msgpack_pack_ext_body(&pk, payload, n);
}

Test(codec, rejects_bad_error_payloads) {
        uint8_t b[8] = {};

        pack_error_ext(b, 0); /* no code */
        expect_packed_malformed();

        b[0] = KACTOR_OK;
        pack_error_ext(b, 1);
        expect_packed_malformed();

        b[0] = _KACTOR_ERROR_MAX;
        pack_error_ext(b, 1);
        expect_packed_malformed();

        b[0] = 255;
        pack_error_ext(b, 1);
        expect_packed_malformed();

        memcpy(b,
               "\x01"
               "a\0b",
               4); /* a NUL inside the message */
        pack_error_ext(b, 4);
        expect_packed_malformed();

        /* ...while a code alone is a valid error with an empty message. */
        b[0] = KACTOR_ERROR_TIMEOUT;
        pack_error_ext(b, 1);
        {
                _cleanup_(kactor_value_freep) kactor_value *v = NULL;

                cr_assert_eq(codec_decode(sb.data, sb.size, &v), 0);
                cr_expect_eq(kactor_value_error_code(v), KACTOR_ERROR_TIMEOUT);
                cr_expect_str_eq(kactor_value_error_message(v), "");
        }
}

Test(codec, rejects_non_string_map_keys) {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_nil(&pk);
        expect_packed_malformed();

        sb_reset();
        msgpack_pack_map(&pk, 1);
        msgpack_pack_bin(&pk, 1);
        msgpack_pack_bin_body(&pk, "k", 1);
        msgpack_pack_nil(&pk);
        expect_packed_malformed();

        sb_reset();
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "ok", 2);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        expect_packed_malformed();

        sb_reset();
        msgpack_pack_map(&pk, 1);
        msgpack_pack_array(&pk, 0);
        msgpack_pack_nil(&pk);
        expect_packed_malformed();

        /* A key with a NUL in it could not be looked up as a C string. */
        sb_reset();
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "a\0b", 3);
        msgpack_pack_nil(&pk);
        expect_packed_malformed();
}

Test(codec, rejects_duplicate_map_keys) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_str_with_body(&pk, "a", 1);
        msgpack_pack_int(&pk, 2);
        expect_packed_malformed();

        /* A large map, checked by sorting. */
        sb_reset();
        msgpack_pack_map(&pk, 40);
        for (int i = 0; i < 40; i++) {
                char key[16];
                int n = snprintf(key, sizeof(key), "key%d", i == 39 ? 3 : i);

                msgpack_pack_str_with_body(&pk, key, n);
                msgpack_pack_int(&pk, i);
        }
        expect_packed_malformed();
}

static void pack_nested_arrays(unsigned levels, bool innermost_empty) {
        sb_reset();
        for (unsigned i = 0; i < levels; i++)
                msgpack_pack_array(&pk, i + 1 == levels && innermost_empty ? 0 : 1);
        if (!innermost_empty)
                msgpack_pack_int(&pk, 1);
}

Test(codec, rejects_too_deep_nesting) {
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;

        pack_nested_arrays(DEPTH_LIMIT, false);
        cr_expect_eq(codec_decode(sb.data, sb.size, &v), 0, "%d levels are fine", DEPTH_LIMIT);

        pack_nested_arrays(DEPTH_LIMIT + 1, false);
        expect_packed_malformed();
        pack_nested_arrays(DEPTH_LIMIT + 1, true);
        expect_packed_malformed();
        pack_nested_arrays(CODEC_MAX_DEPTH + 1, false);
        expect_packed_malformed();
        pack_nested_arrays(10000, false);
        expect_packed_malformed();

        /* Maps count as well. */
        sb_reset();
        for (unsigned i = 0; i <= DEPTH_LIMIT; i++) {
                msgpack_pack_map(&pk, 1);
                msgpack_pack_str_with_body(&pk, "k", 1);
        }
        msgpack_pack_nil(&pk);
        expect_packed_malformed();
}

Test(codec, validate_refuses_hand_built_objects_nested_too_deeply) {
        msgpack_object objs[DEPTH_LIMIT + 2] = {};

        for (size_t i = 0; i < ELEMENTSOF(objs); i++)
                if (i + 1 < ELEMENTSOF(objs))
                        objs[i] = (msgpack_object){.type = MSGPACK_OBJECT_ARRAY,
                                                   .via.array = {.size = 1, .ptr = &objs[i + 1]}};
                else
                        objs[i] = (msgpack_object){.type = MSGPACK_OBJECT_NIL};

        cr_expect_eq(codec_validate(&objs[0]), -EBADMSG);
        cr_expect_eq(codec_validate(&objs[1]), 0);
        cr_expect_lt(codec_foreach_id(&objs[0], NULL, NULL), 0);
}

Test(codec, pack_refuses_values_it_could_not_decode) {
        _cleanup_(kactor_value_freep)
                kactor_value *deep = make_nested_lists(DEPTH_LIMIT + 1),
                             *e0 = kactor_value_new_error(KACTOR_OK, "not an error"),
                             *emax = kactor_value_new_error(_KACTOR_ERROR_MAX, "unknown");
        char *buf = NULL;
        size_t len = 0;

        cr_expect_eq(codec_encode(deep, &buf, &len), -EINVAL);
        cr_expect_eq(codec_encode(e0, &buf, &len), -EINVAL);
        cr_expect_eq(codec_encode(emax, &buf, &len), -EINVAL);
        cr_expect_null(buf);
        cr_expect_eq(len, 0);
        cr_expect_eq(codec_pack_value(&pk, NULL), -EINVAL);
}

Test(codec, rejects_counts_and_lengths_beyond_the_buffer) {
        /* Each of these announces far more than the buffer holds; decoding must neither allocate for the
         * announced size (the sanitizer build aborts on such allocations, as msgpack_unpack_next() alone
         * would make them) nor read past the end. */
        msgpack_pack_array(&pk, UINT32_MAX);
        expect_decode_fails(sb.data, sb.size);

        sb_reset();
        msgpack_pack_map(&pk, UINT32_MAX);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_nil(&pk);
        expect_decode_fails(sb.data, sb.size);

        sb_reset();
        for (int i = 0; i < 20; i++)
                msgpack_pack_array(&pk, 1u << 24);
        expect_decode_fails(sb.data, sb.size);

        sb_reset();
        msgpack_pack_str(&pk, UINT32_MAX);
        msgpack_pack_str_body(&pk, "abc", 3);
        expect_decode_fails(sb.data, sb.size);

        sb_reset();
        msgpack_pack_bin(&pk, 1000);
        expect_decode_fails(sb.data, sb.size);

        sb_reset();
        msgpack_pack_ext(&pk, UINT32_MAX, CODEC_EXT_ERROR);
        expect_decode_fails(sb.data, sb.size);

        expect_decode_fails("\xc1", 1); /* never used */
        expect_decode_fails("\xdd\x00\x00", 3);
        expect_decode_fails("\xcf\x00", 2);
}

/* xorshift64*: the same sequence on every run. */
static uint64_t rnd(uint64_t *s) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ULL;
}

Test(codec, survives_mutated_input) {
        _cleanup_(kactor_value_freep) kactor_value *t = make_tree();
        _cleanup_free_ char *orig = NULL;
        uint64_t seed = 0x9e3779b97f4a7c15ULL;
        size_t len;

        cr_assert_eq(codec_encode(t, &orig, &len), 0);

        for (int iter = 0; iter < 20000; iter++) {
                _cleanup_(kactor_value_freep) kactor_value *v = NULL, *again = NULL;
                _cleanup_free_ char *re = NULL;
                char buf[512];
                size_t n = len, relen;
                int flips = 1 + (int)(rnd(&seed) % 4);

                cr_assert_leq(len, sizeof(buf));
                memcpy(buf, orig, len);
                for (int f = 0; f < flips; f++) {
                        size_t at = rnd(&seed) % n;

                        switch (rnd(&seed) % 4) {
                        case 0:
                                buf[at] = (char)rnd(&seed);
                                break;
                        case 1:
                                buf[at] ^= (char)(1u << (rnd(&seed) % 8));
                                break;
                        case 2:
                                n = at + 1; /* truncate */
                                break;
                        default:
                                buf[at] = (char)"\xc1\xdd\xdf\xc9\xd8\xcf\xdb\x7f"[rnd(&seed) % 8];
                                break;
                        }
                }

                /* Whatever decodes must encode and decode to the same value again. */
                if (codec_decode(buf, n, &v) == 0) {
                        cr_assert_eq(codec_encode(v, &re, &relen), 0);
                        cr_assert_eq(codec_decode(re, relen, &again), 0);
                        cr_assert(kactor_value_equal(v, again));
                }
        }

        /* And random bytes. */
        for (int iter = 0; iter < 20000; iter++) {
                _cleanup_(kactor_value_freep) kactor_value *v = NULL;
                uint8_t buf[24];
                size_t n = 1 + rnd(&seed) % sizeof(buf);

                for (size_t i = 0; i < n; i++)
                        buf[i] = (uint8_t)rnd(&seed);
                (void)codec_decode(buf, n, &v);
        }
}

typedef struct Found {
        int8_t types[16];
        kactor_id ids[16];
        bool top[16];
        int n;
        int fail_at;
} Found;

static int collect(int8_t type, kactor_id id, bool top, void *userdata) {
        Found *f = userdata;

        if (f->n == f->fail_at)
                return -ENOLINK;
        cr_assert_lt(f->n, 16);
        f->types[f->n] = type;
        f->ids[f->n] = id;
        f->top[f->n] = top;
        f->n++;
        return 0;
}

static void unpack_value(kactor_value *v, msgpack_unpacked *u, char **ret_buf) {
        _cleanup_(kactor_value_freep) kactor_value *owned = v;
        size_t len;

        cr_assert_eq(codec_encode(owned, ret_buf, &len), 0);
        msgpack_unpacked_init(u);
        cr_assert_eq(msgpack_unpack_next(u, *ret_buf, len, NULL), MSGPACK_UNPACK_SUCCESS);
}

Test(codec, foreach_id_finds_handles_at_any_depth_and_flags_top_level_ones) {
        kactor_value *args = kactor_value_new_list(), *nested = kactor_value_new_list(),
                     *m = kactor_value_new_map(), *deep = make_nested_lists(10);
        _cleanup_free_ char *buf = NULL;
        Found f = {.fail_at = -1};
        msgpack_unpacked u;
        kactor_value *inner = deep;

        /* [object 1, actor 2, [object 3, "x"], {"h": actor 4, "e": error}, [[...[object 5]...]], 7] */
        while (kactor_value_list_size(inner) > 0)
                inner = (kactor_value *)kactor_value_list_get(inner, 0);
        cr_assert_eq(kactor_value_list_append(inner, kactor_value_new_object((kactor_id){0, 5})), 0);
        cr_assert_eq(kactor_value_list_append(nested, kactor_value_new_object((kactor_id){0, 3})), 0);
        cr_assert_eq(kactor_value_list_append(nested, kactor_value_new_string("x")), 0);
        cr_assert_eq(kactor_value_map_set(m, "h", kactor_value_new_actor((kactor_id){0, 4})), 0);
        cr_assert_eq(kactor_value_map_set(m, "e", kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, "no id")),
                     0);
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_object((kactor_id){0, 1})), 0);
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_actor((kactor_id){0, 2})), 0);
        cr_assert_eq(kactor_value_list_append(args, nested), 0);
        cr_assert_eq(kactor_value_list_append(args, m), 0);
        cr_assert_eq(kactor_value_list_append(args, deep), 0);
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_int(7)), 0);

        unpack_value(args, &u, &buf);
        cr_expect_eq(codec_foreach_id(&u.data, collect, &f), 5);
        cr_assert_eq(f.n, 5);
        for (int i = 0; i < 5; i++)
                cr_expect_eq(f.ids[i].lo, (uint64_t)i + 1, "found in order");
        cr_expect(f.types[0] == CODEC_EXT_OBJECT && f.top[0]);
        cr_expect(f.types[1] == CODEC_EXT_ACTOR && f.top[1]);
        cr_expect(f.types[2] == CODEC_EXT_OBJECT && !f.top[2]);
        cr_expect(f.types[3] == CODEC_EXT_ACTOR && !f.top[3]);
        cr_expect(f.types[4] == CODEC_EXT_OBJECT && !f.top[4]);
        cr_expect_eq(codec_foreach_id(&u.data, NULL, NULL), 5, "without a callback it counts");
        msgpack_unpacked_destroy(&u);
}

Test(codec, foreach_id_stops_at_the_first_callback_error) {
        kactor_value *args = kactor_value_new_list();
        _cleanup_free_ char *buf = NULL;
        Found f = {.fail_at = 1};
        msgpack_unpacked u;

        for (uint64_t i = 0; i < 3; i++)
                cr_assert_eq(kactor_value_list_append(args, kactor_value_new_object((kactor_id){0, i})), 0);
        unpack_value(args, &u, &buf);
        cr_expect_eq(codec_foreach_id(&u.data, collect, &f), -ENOLINK);
        cr_expect_eq(f.n, 1);
        msgpack_unpacked_destroy(&u);
}

Test(codec, foreach_id_on_a_lone_handle_is_not_top_level) {
        _cleanup_free_ char *buf = NULL, *buf2 = NULL;
        Found f = {.fail_at = -1};
        msgpack_unpacked u;

        unpack_value(kactor_value_new_actor((kactor_id){1, 2}), &u, &buf);
        cr_expect_eq(codec_foreach_id(&u.data, collect, &f), 1);
        cr_expect(f.n == 1 && !f.top[0]);
        msgpack_unpacked_destroy(&u);

        unpack_value(kactor_value_new_string("no ids"), &u, &buf2);
        cr_expect_eq(codec_foreach_id(&u.data, collect, &f), 0);
        msgpack_unpacked_destroy(&u);
}
