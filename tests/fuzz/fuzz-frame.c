/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libFuzzer target for what the node manager does with bytes from a socket before it trusts them:
 *
 *   - the native frame decoder: the input is cut into chunks appended to a Buffer (as reads would
 *     append them), and every complete frame is taken with frame_peek(), parsed with frame_parse(),
 *     its header fields read with the frame_field_*() readers, its body turned into a value with
 *     codec_value_from_object() and walked with codec_foreach_id();
 *   - codec_decode() on the whole input;
 *   - lineage_record_unpack() on the whole input (records will come from peers).
 *
 * Besides crashes and sanitizer reports it checks that the decoders agree with each other: a body
 * decodes to the same value through codec_value_from_object() and codec_decode(), a decoded value
 * survives codec_encode() + codec_decode(), codec_foreach_id() finds exactly the ids the value
 * holds, and an unpacked lineage record packs and unpacks to the same record.
 *
 * Built by tests/fuzz/run.sh with clang -fsanitize=fuzzer,address,undefined.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lineage.h"
#include "proto.h"

#define CHECK(cond, ...)                                                                                    \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "fuzz-frame: %s:%d: check failed: %s: ", __FILE__, __LINE__,        \
                                #cond);                                                                     \
                        fprintf(stderr, __VA_ARGS__);                                                       \
                        fputc('\n', stderr);                                                                \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Ids a value holds, at any depth (what codec_foreach_id() must find). */
static size_t value_count_ids(const kactor_value *v) {
        size_t n = 0;

        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_OBJECT:
        case KACTOR_TYPE_ACTOR:
                return 1;
        case KACTOR_TYPE_LIST:
                for (size_t i = 0; i < kactor_value_list_size(v); i++)
                        n += value_count_ids(kactor_value_list_get(v, i));
                return n;
        case KACTOR_TYPE_MAP:
                for (size_t i = 0; i < kactor_value_map_size(v); i++)
                        n += value_count_ids(kactor_value_map_value(v, i));
                return n;
        default:
                return 0;
        }
}

typedef struct IdCount {
        size_t n, top;
} IdCount;

static int count_id(int8_t type, kactor_id id, bool top, void *userdata) {
        IdCount *c = userdata;

        CHECK(type == CODEC_EXT_OBJECT || type == CODEC_EXT_ACTOR, "ext type %d", type);
        c->n++;
        c->top += top;
        return 0;
}

/* A decoded value: encodes, decodes back to an equal value, renders as JSON. */
static void check_value(const kactor_value *v) {
        kactor_value *again = NULL;
        char *buf = NULL, *json;
        size_t len = 0;
        int r;

        r = codec_encode(v, &buf, &len);
        if (r == -ENOMEM)
                return;
        CHECK(r == 0, "codec_encode of a decoded value: %s", strerror(-r));
        r = codec_decode(buf, len, &again);
        CHECK(r == 0 || r == -ENOMEM, "a re-encoded value does not decode: %s", strerror(-r));
        if (r == 0)
                CHECK(kactor_value_equal(v, again), "a value changed through encode + decode");
        kactor_value_free(again);
        free(buf);

        json = kactor_value_to_json(v);
        free(json);
        again = kactor_value_copy(v);
        if (again)
                CHECK(kactor_value_equal(v, again), "a copy differs");
        kactor_value_free(again);
}

/* One parsed frame: what the node manager reads from it. */
static void check_frame(const Frame *f) {
        for (uint32_t i = 0; i <= f->n_fields; i++) {
                uint64_t u;
                int64_t s;
                bool b;
                const char *str;
                size_t len;
                char *dup = NULL;
                kactor_id id;

                (void)frame_field_u64(f, i, &u);
                (void)frame_field_i64(f, i, &s);
                (void)frame_field_bool(f, i, &b);
                if (frame_field_str(f, i, &str, &len) == 0 && len > 0)
                        CHECK(str != NULL, "a string field without bytes");
                if (frame_field_strdup(f, i, &dup) == 0) {
                        CHECK(strlen(dup) <= len, "frame_field_strdup() longer than the field");
                        free(dup);
                }
                (void)frame_field_id(f, i, CODEC_EXT_OBJECT, &id);
                (void)frame_field_id(f, i, CODEC_EXT_ACTOR, &id);
        }
        CHECK(frame_field(f, f->n_fields) == NULL, "a field past the end");

        if (!f->has_body)
                return;

        kactor_value *v = NULL, *raw = NULL;
        IdCount ids = {};
        int r = codec_value_from_object(&f->body.data, &v), k;

        if (r == -ENOMEM)
                return;
        CHECK(r == 0, "a body that passed codec_validate() does not convert: %s", strerror(-r));
        k = codec_foreach_id(&f->body.data, count_id, &ids);
        CHECK(k >= 0, "codec_foreach_id on a valid body: %s", strerror(-k));
        CHECK((size_t)k == ids.n, "codec_foreach_id returned %d but called back %zu times", k, ids.n);
        CHECK(ids.n == value_count_ids(v), "codec_foreach_id found %zu ids, the value holds %zu", ids.n,
              value_count_ids(v));

        /* The raw bytes of the body decode to the same value. */
        r = codec_decode(f->body_raw, f->body_len, &raw);
        CHECK(r == 0 || r == -ENOMEM, "a parsed body does not decode on its own: %s", strerror(-r));
        if (r == 0)
                CHECK(kactor_value_equal(v, raw), "the body decodes differently on its own");
        kactor_value_free(raw);
        check_value(v);
        kactor_value_free(v);
}

/* The input as a stream: appended in chunks, frames taken as they complete. */
static void fuzz_stream(const uint8_t *data, size_t size) {
        Buffer b = {};
        Frame f;
        size_t chunk, off = 0;

        if (size == 0)
                return;
        chunk = (size_t)data[0] % 64 + 1;
        data++;
        size--;
        frame_init(&f);
        while (off < size) {
                size_t n = size - off < chunk ? size - off : chunk;
                const char *payload;
                size_t len;
                int r;

                if (buffer_append(&b, data + off, n) < 0)
                        break;
                off += n;
                while ((r = frame_peek(&b, &payload, &len)) > 0) {
                        CHECK(len > 0 && len <= PROTO_FRAME_MAX, "frame_peek gave %zu bytes", len);
                        CHECK(PROTO_HEADER_SIZE + len <= buffer_size(&b), "frame_peek past the buffer");
                        if (frame_parse(&f, payload, len) == 0)
                                check_frame(&f);
                        buffer_consume(&b, PROTO_HEADER_SIZE + len);
                }
                if (r < 0) {
                        CHECK(r == -EMSGSIZE || r == -EBADMSG, "frame_peek: %s", strerror(-r));
                        break; /* the connection would be closed */
                }
        }
        frame_done(&f);
        buffer_free(&b);
}

static void fuzz_decode(const uint8_t *data, size_t size) {
        kactor_value *v = NULL;
        int r = codec_decode(data, size, &v);

        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM, "codec_decode: %s", strerror(-r));
                return;
        }
        check_value(v);
        kactor_value_free(v);
}

static void fuzz_lineage_record(const uint8_t *data, size_t size) {
        LineageRecord rec = {}, again = {};
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int r = lineage_record_unpack((const char *)data, size, &rec);

        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM, "lineage_record_unpack: %s", strerror(-r));
                return;
        }
        CHECK(rec.index > 0, "a record with index 0");
        CHECK(rec.method != NULL && rec.args != NULL, "a record without method or args");

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        r = lineage_record_pack(&pk, &rec);
        if (r == 0) {
                r = lineage_record_unpack(sb.data, sb.size, &again);
                CHECK(r == 0 || r == -ENOMEM, "a re-packed record does not unpack: %s", strerror(-r));
                if (r == 0) {
                        CHECK(again.index == rec.index && kactor_id_equal(again.result, rec.result) &&
                                      again.code == rec.code && strcmp(again.method, rec.method) == 0 &&
                                      again.args_len == rec.args_len &&
                                      memcmp(again.args, rec.args, rec.args_len) == 0,
                              "a record changed through pack + unpack");
                        lineage_record_done(&again);
                }
        }
        msgpack_sbuffer_destroy(&sb);
        lineage_record_done(&rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_stream(data, size);
        fuzz_decode(data, size);
        fuzz_lineage_record(data, size);
        return 0;
}
