/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The lineage log: calls get consecutive indices from 1, a checkpoint drops the records it covers and
 * moves the base index, the ring keeps its order across wrap-around, the byte count follows the records,
 * and the record wire form round-trips and rejects anything but exactly one well-formed record. */

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lineage.h"
#include "macro.h"

static LineageLog lg;

static void setup(void) {
        lineage_init(&lg);
}

static void teardown(void) {
        lineage_done(&lg);
}

TestSuite(lineage, .init = setup, .fini = teardown);

static kactor_id id_of(uint64_t caller, uint64_t seq) {
        return (kactor_id) { .hi = caller, .lo = seq };
}

/* Appends a call whose method and args are derived from n, so that any record can be checked later. */
static int64_t append_n(LineageLog *log, uint64_t n) {
        char method[32], args[64];
        int len;

        snprintf(method, sizeof(method), "m%" PRIu64, n);
        len = snprintf(args, sizeof(args), "args-of-%" PRIu64 "-%s", n, n % 3 == 0 ? "long-tail" : "");
        return lineage_append(log, id_of(n % 3 + 1, n), method, args, (size_t) len, KACTOR_OK);
}

static void expect_record_n(const LineageRecord *r, uint64_t n) {
        char method[32], args[64];
        int len;

        cr_assert_not_null(r, "record %" PRIu64 " is there", n);
        snprintf(method, sizeof(method), "m%" PRIu64, n);
        len = snprintf(args, sizeof(args), "args-of-%" PRIu64 "-%s", n, n % 3 == 0 ? "long-tail" : "");
        cr_assert_eq(r->index, n);
        cr_assert_str_eq(r->method, method);
        cr_assert_eq(r->args_len, (size_t) len);
        cr_assert_arr_eq(r->args, args, (size_t) len);
        cr_assert(kactor_id_equal(r->result, id_of(n % 3 + 1, n)));
}

Test(lineage, new_log_is_empty) {
        cr_assert_eq(lineage_size(&lg), 0);
        cr_assert_eq(lineage_last_index(&lg), 0);
        cr_assert_eq(lg.bytes, 0);
        cr_assert_eq(lg.checkpoint_index, 0);
        cr_assert_null(lg.checkpoint);
        cr_assert_null(lineage_at(&lg, 0));
        cr_assert_null(lineage_get(&lg, 0));
        cr_assert_null(lineage_get(&lg, 1));
}

Test(lineage, appends_get_consecutive_indices_from_one) {
        for (uint64_t n = 1; n <= 5; n++) {
                cr_assert_eq(append_n(&lg, n), (int64_t) n);
                cr_assert_eq(lineage_last_index(&lg), n);
                cr_assert_eq(lineage_size(&lg), n);
        }
        for (uint64_t n = 1; n <= 5; n++) {
                expect_record_n(lineage_get(&lg, n), n);
                expect_record_n(lineage_at(&lg, n - 1), n);
        }
        cr_assert_null(lineage_get(&lg, 0));
        cr_assert_null(lineage_get(&lg, 6));
        cr_assert_null(lineage_at(&lg, 5));
}

Test(lineage, append_copies_method_and_args) {
        char method[] = "add", args[] = { '\x92', '\x01', '\x02' };

        cr_assert_eq(lineage_append(&lg, id_of(7, 9), method, args, sizeof(args), KACTOR_ERROR_TASK_FAILED), 1);
        memset(method, 'x', sizeof(method) - 1);
        memset(args, 0, sizeof(args));

        const LineageRecord *r = lineage_get(&lg, 1);
        cr_assert_not_null(r);
        cr_assert_str_eq(r->method, "add");
        cr_assert_eq(r->args_len, 3);
        cr_assert_arr_eq(r->args, ((char[]) { '\x92', '\x01', '\x02' }), 3);
        cr_assert_eq(r->code, KACTOR_ERROR_TASK_FAILED);
        cr_assert(kactor_id_equal(r->result, id_of(7, 9)));
}

Test(lineage, empty_args_and_null_method_are_kept) {
        cr_assert_eq(lineage_append(&lg, id_of(1, 1), NULL, NULL, 0, KACTOR_OK), 1);
        const LineageRecord *r = lineage_get(&lg, 1);
        cr_assert_not_null(r);
        cr_assert_str_eq(r->method, "");
        cr_assert_eq(r->args_len, 0);
}

Test(lineage, checkpoint_drops_the_records_it_covers) {
        static const char state[] = "state-after-4";

        for (uint64_t n = 1; n <= 10; n++)
                cr_assert_eq(append_n(&lg, n), (int64_t) n);

        cr_assert_eq(lineage_checkpoint(&lg, 4, state, sizeof(state)), 0);
        cr_assert_eq(lineage_size(&lg), 6);
        cr_assert_eq(lg.base_index, 5);
        cr_assert_eq(lg.checkpoint_index, 4);
        cr_assert_eq(lg.checkpoint_len, sizeof(state));
        cr_assert_arr_eq(lg.checkpoint, state, sizeof(state));
        cr_assert_neq(lg.checkpoint, state, "the checkpoint is a copy");
        cr_assert_eq(lineage_last_index(&lg), 10);

        for (uint64_t n = 1; n <= 4; n++)
                cr_assert_null(lineage_get(&lg, n), "record %" PRIu64 " is covered by the checkpoint", n);
        for (uint64_t n = 5; n <= 10; n++) {
                expect_record_n(lineage_get(&lg, n), n);
                expect_record_n(lineage_at(&lg, n - 5), n);
        }

        /* Indices go on from where they were, not from the checkpoint. */
        cr_assert_eq(append_n(&lg, 11), 11);
        expect_record_n(lineage_get(&lg, 11), 11);
        cr_assert_eq(lineage_size(&lg), 7);
}

Test(lineage, checkpoint_of_the_last_call_empties_the_log) {
        for (uint64_t n = 1; n <= 3; n++)
                append_n(&lg, n);
        cr_assert_eq(lineage_checkpoint(&lg, 3, "s", 1), 0);
        cr_assert_eq(lineage_size(&lg), 0);
        cr_assert_eq(lg.bytes, 0);
        cr_assert_eq(lg.base_index, 4, "the base is the index the next call gets");
        cr_assert_null(lineage_at(&lg, 0));
        cr_assert_null(lineage_get(&lg, 3));
        cr_assert_null(lineage_get(&lg, 4));

        cr_assert_eq(append_n(&lg, 4), 4);
        cr_assert_eq(lg.base_index, 4);
        expect_record_n(lineage_get(&lg, 4), 4);
        expect_record_n(lineage_at(&lg, 0), 4);
}

Test(lineage, checkpoint_before_any_call_is_the_initial_state) {
        cr_assert_eq(lineage_checkpoint(&lg, 0, "init", 4), 0);
        cr_assert_eq(lg.checkpoint_index, 0);
        cr_assert_eq(lg.checkpoint_len, 4);
        cr_assert_eq(lineage_size(&lg), 0);
        cr_assert_eq(append_n(&lg, 1), 1);
        expect_record_n(lineage_get(&lg, 1), 1);
}

Test(lineage, empty_checkpoint_state_is_allowed) {
        append_n(&lg, 1);
        cr_assert_eq(lineage_checkpoint(&lg, 1, NULL, 0), 0);
        cr_assert_eq(lg.checkpoint_len, 0);
        cr_assert_eq(lg.checkpoint_index, 1);
}

Test(lineage, checkpoint_rejects_indices_outside_the_log) {
        for (uint64_t n = 1; n <= 6; n++)
                append_n(&lg, n);
        cr_assert_eq(lineage_checkpoint(&lg, 3, "a", 1), 0);
        size_t bytes = lg.bytes;

        /* Not yet logged. */
        cr_assert_eq(lineage_checkpoint(&lg, 7, "b", 1), -EINVAL);
        cr_assert_eq(lineage_checkpoint(&lg, UINT64_MAX, "b", 1), -EINVAL);
        /* Before the current checkpoint: the log no longer has what it would need. */
        cr_assert_eq(lineage_checkpoint(&lg, 2, "b", 1), -EINVAL);

        /* Nothing changed. */
        cr_assert_eq(lg.checkpoint_index, 3);
        cr_assert_eq(lg.checkpoint_len, 1);
        cr_assert_eq(lg.checkpoint[0], 'a');
        cr_assert_eq(lineage_size(&lg), 3);
        cr_assert_eq(lg.base_index, 4);
        cr_assert_eq(lg.bytes, bytes);
        for (uint64_t n = 4; n <= 6; n++)
                expect_record_n(lineage_get(&lg, n), n);

        /* Again at the same index: a newer state of the same point replaces the old one. */
        cr_assert_eq(lineage_checkpoint(&lg, 3, "cc", 2), 0);
        cr_assert_eq(lg.checkpoint_len, 2);
        cr_assert_eq(lineage_size(&lg), 3);
}

Test(lineage, ring_keeps_order_across_many_appends_and_checkpoints) {
        uint64_t last = 0;
        size_t max_allocated = 0;

        /* A window that slides by checkpoints at uneven strides, so the ring's start goes all around it
         * many times and the window's size varies. */
        for (unsigned round = 0; round < 5000; round++) {
                unsigned k = 1 + round % 7;
                for (unsigned j = 0; j < k; j++) {
                        last++;
                        cr_assert_eq(append_n(&lg, last), (int64_t) last);
                }
                uint64_t keep = round % 5;
                uint64_t cp = last > keep ? last - keep : lg.checkpoint_index;
                if (cp < lg.checkpoint_index)
                        cp = lg.checkpoint_index;
                cr_assert_eq(lineage_checkpoint(&lg, cp, (const char *) &round, sizeof(round)), 0);

                cr_assert_eq(lg.checkpoint_index, cp);
                cr_assert_eq(lineage_size(&lg), last - cp);
                cr_assert_eq(lg.base_index, cp + 1);
                for (size_t i = 0; i < lineage_size(&lg); i++) {
                        const LineageRecord *r = lineage_at(&lg, i);
                        expect_record_n(r, cp + 1 + i);
                        cr_assert_eq(lineage_get(&lg, cp + 1 + i), r);
                }
                cr_assert_null(lineage_get(&lg, cp));
                cr_assert_null(lineage_get(&lg, last + 1));
                max_allocated = MAX(max_allocated, lg.allocated);
        }
        cr_assert_eq(lineage_last_index(&lg), last);
        /* The window never held more than 4 + 7 records: truncated space is reused, not grown. */
        cr_assert_leq(max_allocated, 16, "ring grew to %zu slots", max_allocated);
}

Test(lineage, ring_grows_while_wrapped_and_keeps_order) {
        uint64_t last = 0;

        /* Fill, drop the first half, then grow past the capacity while the live part wraps around the
         * array's end. */
        for (; last < 16; last++)
                append_n(&lg, last + 1);
        cr_assert_eq(lineage_checkpoint(&lg, 10, "x", 1), 0);
        for (; last < 100; last++)
                cr_assert_eq(append_n(&lg, last + 1), (int64_t) last + 1);
        cr_assert_eq(lineage_size(&lg), 90);
        for (uint64_t n = 11; n <= 100; n++) {
                expect_record_n(lineage_get(&lg, n), n);
                expect_record_n(lineage_at(&lg, n - 11), n);
        }
}

Test(lineage, bytes_follow_the_records_and_return_to_zero) {
        size_t per_record[201] = {};
        size_t total = 0;

        for (uint64_t n = 1; n <= 200; n++) {
                size_t before = lg.bytes;
                append_n(&lg, n);
                cr_assert_gt(lg.bytes, before, "a record costs bytes");
                per_record[n] = lg.bytes - before;
                cr_assert_geq(per_record[n], strlen("args-of-") + 1, "the record's payload is counted");
                total += per_record[n];
        }
        cr_assert_eq(lg.bytes, total);

        /* Larger args cost more. */
        cr_assert_gt(per_record[3], per_record[4]);

        /* Checkpoints subtract exactly what the dropped records added; the checkpoint state itself is not
         * a record. */
        size_t dropped = 0;
        for (uint64_t cp = 17; cp <= 200; cp += 17) {
                cr_assert_eq(lineage_checkpoint(&lg, cp, "a-rather-long-checkpoint-state", 30), 0);
                dropped = 0;
                for (uint64_t n = 1; n <= cp; n++)
                        dropped += per_record[n];
                cr_assert_eq(lg.bytes, total - dropped, "after checkpoint %" PRIu64, cp);
        }
        cr_assert_eq(lineage_checkpoint(&lg, 200, NULL, 0), 0);
        cr_assert_eq(lg.bytes, 0);
        cr_assert_eq(lineage_size(&lg), 0);

        /* And it counts again from zero. */
        append_n(&lg, 201);
        cr_assert_gt(lg.bytes, 0);
}

Test(lineage, done_frees_everything_and_leaves_an_empty_log) {
        for (uint64_t n = 1; n <= 40; n++)
                append_n(&lg, n);
        cr_assert_eq(lineage_checkpoint(&lg, 13, "s", 1), 0);
        lineage_done(&lg);
        cr_assert_eq(lineage_size(&lg), 0);
        cr_assert_eq(lineage_last_index(&lg), 0);
        cr_assert_eq(lg.bytes, 0);
        cr_assert_null(lg.checkpoint);
        cr_assert_eq(lg.checkpoint_index, 0);
        cr_assert_eq(append_n(&lg, 1), 1, "a log is reusable after done");
        /* Leaks, if any, show under the ASan build. */
}

/* --- wire form -------------------------------------------------------------------------------------- */

/* Packs a kactor value (taking it) and returns the bytes. */
static char *encode(kactor_value *v, size_t *ret_len) {
        _cleanup_(kactor_value_freep) kactor_value *owned = v;
        char *buf = NULL;

        cr_assert_not_null(owned);
        cr_assert_eq(codec_encode(owned, &buf, ret_len), 0);
        return buf;
}

static kactor_value *sample_args(void) {
        kactor_value *l = kactor_value_new_list(), *m = kactor_value_new_map();

        cr_assert_not_null(l);
        cr_assert_not_null(m);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_int(-42)), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_string("caller-b")), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_object(id_of(0xabcdef, 17))), 0);
        cr_assert_eq(kactor_value_list_append(l, kactor_value_new_bytes("\0\1\2", 3)), 0);
        cr_assert_eq(kactor_value_map_set(m, "k", kactor_value_new_double(2.5)), 0);
        cr_assert_eq(kactor_value_list_append(l, m), 0);
        return l;
}

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void wire_setup(void) {
        lineage_init(&lg);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void wire_teardown(void) {
        msgpack_sbuffer_destroy(&sb);
        lineage_done(&lg);
}

TestSuite(lineage_record, .init = wire_setup, .fini = wire_teardown);

/* Packs the record with this header (any fields) followed by args, by hand. */
typedef struct Header {
        unsigned n_fields;
        uint64_t version, kind, index;
        int8_t ext_type;
        uint32_t ext_size;
        const char *method;
        size_t method_len;
        uint64_t code;
} Header;

static Header good_header(void) {
        return (Header) { .n_fields = 6, .version = LINEAGE_RECORD_VERSION, .kind = LINEAGE_CALL, .index = 3,
                          .ext_type = CODEC_EXT_OBJECT, .ext_size = 16, .method = "add", .method_len = 3,
                          .code = KACTOR_OK };
}

static void pack_header(const Header *h) {
        static const uint8_t id[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

        msgpack_sbuffer_clear(&sb);
        cr_assert_eq(msgpack_pack_array(&pk, h->n_fields), 0);
        cr_assert_eq(msgpack_pack_uint64(&pk, h->version), 0);
        cr_assert_eq(msgpack_pack_uint64(&pk, h->kind), 0);
        cr_assert_eq(msgpack_pack_uint64(&pk, h->index), 0);
        cr_assert_eq(msgpack_pack_ext(&pk, h->ext_size, h->ext_type), 0);
        cr_assert_eq(msgpack_pack_ext_body(&pk, id, h->ext_size), 0);
        cr_assert_eq(msgpack_pack_str(&pk, h->method_len), 0);
        cr_assert_eq(msgpack_pack_str_body(&pk, h->method, h->method_len), 0);
        cr_assert_eq(msgpack_pack_uint64(&pk, h->code), 0);
        for (unsigned i = 6; i < h->n_fields; i++)
                cr_assert_eq(msgpack_pack_nil(&pk), 0);
}

static void append_raw(const void *p, size_t len) {
        cr_assert_eq(msgpack_sbuffer_write(&sb, p, len), 0);
}

static void append_good_args(void) {
        static const char args[] = { '\x92', '\x01', '\xa1', 'x' }; /* [1, "x"] */
        append_raw(args, sizeof(args));
}

static void expect_rejected(const char *what) {
        LineageRecord r = {};
        cr_expect_eq(lineage_record_unpack(sb.data, sb.size, &r), -EBADMSG, "%s is rejected", what);
        lineage_record_done(&r);
}

Test(lineage_record, round_trip_keeps_every_field) {
        _cleanup_free_ char *args = NULL;
        size_t args_len;
        LineageRecord back = {};

        args = encode(sample_args(), &args_len);
        int64_t idx = lineage_append(&lg, id_of(0x1122334455667788, 0x99aabbccddeeff00), "deposit", args, args_len,
                                     KACTOR_ERROR_TASK_FAILED);
        cr_assert_eq(idx, 1);
        const LineageRecord *r = lineage_get(&lg, 1);

        cr_assert_eq(lineage_record_pack(&pk, r), 0);
        cr_assert_eq(lineage_record_unpack(sb.data, sb.size, &back), 0);
        cr_assert_eq(back.index, 1);
        cr_assert(kactor_id_equal(back.result, r->result));
        cr_assert_str_eq(back.method, "deposit");
        cr_assert_eq(back.code, KACTOR_ERROR_TASK_FAILED);
        cr_assert_eq(back.args_len, args_len);
        cr_assert_arr_eq(back.args, args, args_len);

        /* The args are still the caller's value. */
        _cleanup_(kactor_value_freep) kactor_value *expected = sample_args(), *got = NULL;
        cr_assert_eq(codec_decode(back.args, back.args_len, &got), 0);
        cr_assert(kactor_value_equal(expected, got));

        /* Packing what was unpacked gives the same bytes. */
        msgpack_sbuffer sb2;
        msgpack_packer pk2;
        msgpack_sbuffer_init(&sb2);
        msgpack_packer_init(&pk2, &sb2, msgpack_sbuffer_write);
        cr_assert_eq(lineage_record_pack(&pk2, &back), 0);
        cr_assert_eq(sb2.size, sb.size);
        cr_assert_arr_eq(sb2.data, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb2);

        lineage_record_done(&back);
        cr_assert_null(back.method);
        cr_assert_null(back.args);
}

Test(lineage_record, round_trip_of_many_records_in_a_row) {
        /* Every record of a log, each packed on its own, comes back in order with its index. */
        for (uint64_t n = 1; n <= 50; n++) {
                _cleanup_free_ char *args = NULL;
                size_t args_len;
                int64_t items[] = { (int64_t) n, (int64_t) n * 1000 };
                args = encode(kactor_value_new_int_list(items, 2), &args_len);
                char method[16];
                snprintf(method, sizeof(method), "m%" PRIu64, n);
                cr_assert_eq(lineage_append(&lg, id_of(n % 3, n), method, args, args_len, KACTOR_OK), (int64_t) n);
        }
        cr_assert_eq(lineage_checkpoint(&lg, 20, "s", 1), 0);
        for (size_t i = 0; i < lineage_size(&lg); i++) {
                const LineageRecord *r = lineage_at(&lg, i);
                LineageRecord back = {};
                msgpack_sbuffer_clear(&sb);
                cr_assert_eq(lineage_record_pack(&pk, r), 0);
                cr_assert_eq(lineage_record_unpack(sb.data, sb.size, &back), 0);
                cr_assert_eq(back.index, 21 + i);
                cr_assert_str_eq(back.method, r->method);
                cr_assert(kactor_id_equal(back.result, r->result));
                cr_assert_eq(back.args_len, r->args_len);
                cr_assert_arr_eq(back.args, r->args, r->args_len);
                lineage_record_done(&back);
        }
}

Test(lineage_record, hand_packed_good_record_is_accepted) {
        /* The control for the rejections below: the same builder with nothing wrong. */
        Header h = good_header();
        LineageRecord r = {};

        pack_header(&h);
        append_good_args();
        cr_assert_eq(lineage_record_unpack(sb.data, sb.size, &r), 0);
        cr_assert_eq(r.index, 3);
        cr_assert_str_eq(r.method, "add");
        cr_assert_eq(r.result.hi, 0x0102030405060708);
        cr_assert_eq(r.result.lo, 0x090a0b0c0d0e0f10);
        cr_assert_eq(r.args_len, 4);
        lineage_record_done(&r);
}

Test(lineage_record, rejects_other_versions) {
        Header h = good_header();
        uint64_t versions[] = { 0, LINEAGE_RECORD_VERSION + 1, 255, UINT64_MAX };

        for (size_t i = 0; i < ELEMENTSOF(versions); i++) {
                h.version = versions[i];
                pack_header(&h);
                append_good_args();
                expect_rejected("an unknown version");
        }
}

Test(lineage_record, rejects_kinds_other_than_call) {
        Header h = good_header();
        uint64_t kinds[] = { 0, LINEAGE_CHECKPOINT, 3, 1000 };

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                h.kind = kinds[i];
                pack_header(&h);
                append_good_args();
                expect_rejected("an unknown kind");
        }
}

Test(lineage_record, rejects_a_malformed_header) {
        Header h;

        h = good_header(), h.index = 0;
        pack_header(&h), append_good_args(), expect_rejected("index 0");

        h = good_header(), h.ext_type = CODEC_EXT_ACTOR;
        pack_header(&h), append_good_args(), expect_rejected("a result that is an actor handle");

        h = good_header(), h.ext_size = 15;
        pack_header(&h), append_good_args(), expect_rejected("a 15-byte result id");

        h = good_header(), h.method = "a\0b", h.method_len = 3;
        pack_header(&h), append_good_args(), expect_rejected("a method name with a NUL");

        h = good_header(), h.code = _KACTOR_ERROR_MAX;
        pack_header(&h), append_good_args(), expect_rejected("an unknown error code");

        h = good_header(), h.n_fields = 5;
        msgpack_sbuffer_clear(&sb);
        cr_assert_eq(msgpack_pack_array(&pk, 5), 0);
        for (unsigned i = 0; i < 5; i++)
                cr_assert_eq(msgpack_pack_uint32(&pk, 1), 0);
        append_good_args();
        expect_rejected("a 5-field header");

        h = good_header(), h.n_fields = 7;
        pack_header(&h), append_good_args(), expect_rejected("a 7-field header");

        msgpack_sbuffer_clear(&sb);
        cr_assert_eq(msgpack_pack_map(&pk, 0), 0);
        append_good_args();
        expect_rejected("a header that is not an array");
}

Test(lineage_record, rejects_trailing_bytes) {
        Header h = good_header();

        pack_header(&h);
        append_good_args();
        append_raw("\xc0", 1);
        expect_rejected("a nil after the args");

        pack_header(&h);
        append_good_args();
        append_good_args();
        expect_rejected("two argument lists");

        pack_header(&h);
        append_good_args();
        append_raw("\x92", 1);
        expect_rejected("the start of another list after the args");
}

Test(lineage_record, rejects_args_that_are_not_one_valid_list) {
        Header h = good_header();

        pack_header(&h);
        expect_rejected("a record without args");

        pack_header(&h);
        append_raw("\x01", 1);
        expect_rejected("args that are an int");

        pack_header(&h);
        append_raw("\x91\x81\x01\x02", 4); /* [{1: 2}]: a map with an int key */
        expect_rejected("args with a non-string map key");

        pack_header(&h);
        append_raw("\x91\xd4\x07\x00", 4); /* [ext 7]: an unknown ext type */
        expect_rejected("args with an unknown ext type");
}

Test(lineage_record, rejects_every_truncation) {
        _cleanup_free_ char *args = NULL, *full = NULL;
        size_t args_len, full_len;

        args = encode(sample_args(), &args_len);
        cr_assert_eq(lineage_append(&lg, id_of(5, 6), "put", args, args_len, KACTOR_OK), 1);
        cr_assert_eq(lineage_record_pack(&pk, lineage_get(&lg, 1)), 0);
        full_len = sb.size;
        full = malloc(full_len);
        cr_assert_not_null(full);
        memcpy(full, sb.data, full_len);

        for (size_t len = 0; len < full_len; len++) {
                /* A copy of exactly len bytes, so that ASan sees any read past the end. */
                _cleanup_free_ char *p = malloc(len ?: 1);
                LineageRecord r = {};
                cr_assert_not_null(p);
                memcpy(p, full, len);
                cr_assert_eq(lineage_record_unpack(p, len, &r), -EBADMSG, "%zu of %zu bytes", len, full_len);
                lineage_record_done(&r);
        }

        LineageRecord r = {};
        cr_assert_eq(lineage_record_unpack(full, full_len, &r), 0);
        lineage_record_done(&r);
}
