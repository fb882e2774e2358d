/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes the seed corpus of fuzz-frame into DIR: valid native frame streams (each prefixed by the
 * chunk-size byte fuzz-frame reads first), packed values, and packed lineage records, made with
 * the project's own encoders so that they follow the protocol as it is.
 *
 *   seeds DIR
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lineage.h"
#include "peer-proto.h"
#include "proto.h"

static const char *dir;
static unsigned n_seeds;

static void die(const char *what) {
        fprintf(stderr, "seeds: %s\n", what);
        exit(1);
}

static void write_seed(const char *kind, const void *data, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s-%02u", dir, kind, n_seeds++);
        f = fopen(path, "we");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
                die("cannot write a seed file");
}

static kactor_id id_of(uint64_t hi, uint64_t lo) {
        return (kactor_id){.hi = hi, .lo = lo};
}

/* A value with a bit of everything: ints of every width, doubles, strings with NULs, bytes, nested
 * lists and maps, references, handles, an error. */
static kactor_value *rich_value(void) {
        static const uint8_t bytes[] = {0, 1, 2, 0xff, 0, 0x80};
        kactor_value *l = kactor_value_new_list(), *m = kactor_value_new_map(),
                     *inner = kactor_value_new_list();

        if (!l || !m || !inner)
                die("out of memory");
        kactor_value_list_append(l, kactor_value_new_int(0));
        kactor_value_list_append(l, kactor_value_new_int(-1));
        kactor_value_list_append(l, kactor_value_new_int(300));
        kactor_value_list_append(l, kactor_value_new_int(-70000));
        kactor_value_list_append(l, kactor_value_new_int(INT64_MAX));
        kactor_value_list_append(l, kactor_value_new_int(INT64_MIN));
        kactor_value_list_append(l, kactor_value_new_double(3.25));
        kactor_value_list_append(l, kactor_value_new_bool(true));
        kactor_value_list_append(l, kactor_value_new_nil());
        kactor_value_list_append(l, kactor_value_new_stringn("a\0b", 3));
        kactor_value_list_append(l, kactor_value_new_bytes(bytes, sizeof(bytes)));
        kactor_value_list_append(l, kactor_value_new_object(id_of(0x0102030405060708, 0x1112131415161718)));
        kactor_value_list_append(l, kactor_value_new_actor(id_of(1, 2)));
        kactor_value_list_append(inner, kactor_value_new_object(id_of(3, 4)));
        kactor_value_list_append(inner, kactor_value_new_string("nested"));
        kactor_value_map_set(m, "list", inner);
        kactor_value_map_set(m, "error", kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, "it failed"));
        kactor_value_map_set(m, "handle", kactor_value_new_actor(id_of(5, 6)));
        kactor_value_list_append(l, m);
        return l;
}

static kactor_value *simple_args(void) {
        kactor_value *l = kactor_value_new_list();

        if (!l)
                die("out of memory");
        kactor_value_list_append(l, kactor_value_new_int(42));
        kactor_value_list_append(l, kactor_value_new_string("hello"));
        return l;
}

static void pack_value(msgpack_packer *pk, const kactor_value *v) {
        if (codec_pack_value(pk, v) < 0)
                die("cannot pack a value");
}

/* Frames, each built by fn into a Buffer; written as one stream seed with a chunk-size byte. */
typedef void (*frame_fn)(msgpack_packer *pk);

static void frame_hello(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_HELLO);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, PROTO_VERSION);
        msgpack_pack_uint32(pk, 1234);
}

static void frame_create_actor(msgpack_packer *pk) {
        kactor_value *args = simple_args();

        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_CREATE_ACTOR);
        msgpack_pack_uint64(pk, 7);
        pack_cstr(pk, "/usr/lib/kactor/modules/counter.so");
        pack_cstr(pk, "Counter");
        msgpack_pack_map(pk, 2);
        pack_cstr(pk, "num_gpus");
        msgpack_pack_uint32(pk, 1);
        pack_cstr(pk, "name");
        pack_cstr(pk, "my-counter");
        pack_value(pk, args);
        kactor_value_free(args);
}

static void frame_call(msgpack_packer *pk) {
        kactor_value *args = rich_value();

        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_CALL);
        msgpack_pack_uint64(pk, 17);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        pack_cstr(pk, "increment");
        pack_value(pk, args);
        kactor_value_free(args);
}

static void frame_submit(msgpack_packer *pk) {
        kactor_value *args = simple_args();

        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_SUBMIT);
        msgpack_pack_uint64(pk, 18);
        pack_cstr(pk, "testmod");
        pack_cstr(pk, "add");
        msgpack_pack_map(pk, 1);
        pack_cstr(pk, "num_cpus");
        msgpack_pack_double(pk, 0.5);
        pack_value(pk, args);
        kactor_value_free(args);
}

static void frame_put(msgpack_packer *pk) {
        kactor_value *v = rich_value();

        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, MSG_PUT);
        msgpack_pack_uint64(pk, 19);
        pack_value(pk, v);
        kactor_value_free(v);
}

static void frame_get(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_GET);
        msgpack_pack_uint64(pk, 20);
        msgpack_pack_uint64(pk, 1000000);
        msgpack_pack_array(pk, 2);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(1, 17));
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(1, 18));
}

static void frame_wait(msgpack_packer *pk) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_WAIT);
        msgpack_pack_uint64(pk, 21);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, 1);
        msgpack_pack_array(pk, 1);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(1, 17));
}

static void frame_release(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_RELEASE);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_array(pk, 1);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(1, 17));
        msgpack_pack_array(pk, 1);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
}

static void frame_kill(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_KILL);
        msgpack_pack_uint64(pk, 22);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        msgpack_pack_true(pk);
}

static void frame_reply(msgpack_packer *pk) {
        kactor_value *v = rich_value();

        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_REPLY);
        msgpack_pack_uint64(pk, 20);
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_nil(pk);
        msgpack_pack_array(pk, 1);
        pack_value(pk, v);
        kactor_value_free(v);
}

static void frame_result(msgpack_packer *pk) {
        kactor_value *v = rich_value();

        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_RESULT);
        msgpack_pack_uint64(pk, 3);
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_nil(pk);
        msgpack_pack_uint32(pk, RESULT_READ_ONLY);
        pack_value(pk, v);
        kactor_value_free(v);
}

static void frame_init_done(msgpack_packer *pk) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_INIT_DONE);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, 0);
        pack_cstr(pk, "");
        msgpack_pack_uint32(pk, INIT_CAN_SAVE);
}

/* Peer messages of remote actors and lineage replicas (nodemgr/remote-proto.c). */
static void pack_spec(msgpack_packer *pk) {
        pack_cstr(pk, "counter");
        pack_cstr(pk, "Counter");
        msgpack_pack_array(pk, 9);
        msgpack_pack_nil(pk);
        msgpack_pack_double(pk, 0.5);
        msgpack_pack_uint32(pk, 1);
        msgpack_pack_uint64(pk, 1 << 20);
        msgpack_pack_int32(pk, -1);
        msgpack_pack_false(pk);
        msgpack_pack_uint32(pk, 1000);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, 0);
}

static void peer_create(msgpack_packer *pk) {
        kactor_value *args = simple_args();
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint32(pk, PEER_MSG_CREATE);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        pack_spec(pk);
        pack_value(pk, args);
        kactor_value_free(args);
}

static void peer_call(msgpack_packer *pk) {
        kactor_value *args = rich_value();
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, PEER_MSG_CALL);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(9, 11));
        pack_cstr(pk, "increment");
        pack_value(pk, args);
        kactor_value_free(args);
}

static void peer_result(msgpack_packer *pk) {
        kactor_value *v = rich_value();
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint32(pk, PEER_MSG_RESULT);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(9, 11));
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_nil(pk);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        pack_value(pk, v);
        kactor_value_free(v);
}

static void peer_hold(msgpack_packer *pk) {
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint32(pk, PEER_MSG_HOLD);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_array(pk, 2);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 12));
}

static void peer_moved(msgpack_packer *pk) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, PEER_MSG_MOVED);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        pack_cstr(pk, "00000000000000ab");
        pack_cstr(pk, "");
}

static void peer_repl_create(msgpack_packer *pk) {
        static const char state[] = "\x81\xa1n\x05";
        kactor_value *args = simple_args();
        msgpack_pack_array(pk, 9);
        msgpack_pack_uint32(pk, PEER_MSG_REPL_CREATE);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        pack_spec(pk);
        msgpack_pack_array(pk, 2);
        pack_cstr(pk, "00000000000000ab");
        pack_cstr(pk, "00000000000000cd");
        msgpack_pack_uint64(pk, 5);
        msgpack_pack_bin(pk, sizeof(state) - 1);
        msgpack_pack_bin_body(pk, state, sizeof(state) - 1);
        pack_value(pk, args);
        kactor_value_free(args);
}

static void peer_repl_record(msgpack_packer *pk) {
        msgpack_sbuffer sb;
        msgpack_packer rpk;
        kactor_value *args = simple_args();
        LineageRecord r = {.index = 6, .result = id_of(9, 13), .method = (char *)"increment"};

        if (codec_encode(args, &r.args, &r.args_len) < 0)
                die("cannot encode arguments");
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&rpk, &sb, msgpack_sbuffer_write);
        if (lineage_record_pack(&rpk, &r) < 0)
                die("cannot pack a lineage record");
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, PEER_MSG_REPL_RECORD);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        msgpack_pack_bin(pk, (uint32_t) sb.size);
        msgpack_pack_bin_body(pk, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        free(r.args);
        kactor_value_free(args);
}

static void peer_repl_ack(msgpack_packer *pk) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, PEER_MSG_REPL_ACK);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        msgpack_pack_uint64(pk, 6);
        msgpack_pack_false(pk);
}

static void add_frame(Buffer *b, frame_fn fn) {
        msgpack_packer pk;
        size_t off = frame_begin(b);

        msgpack_packer_init(&pk, b, buffer_msgpack_write);
        fn(&pk);
        if (frame_end(b, off) < 0)
                die("cannot finish a frame");
}

static void stream_seed(uint8_t chunk, const frame_fn *fns, size_t n) {
        Buffer b = {};

        if (buffer_append(&b, &chunk, 1) < 0)
                die("out of memory");
        for (size_t i = 0; i < n; i++)
                add_frame(&b, fns[i]);
        write_seed("stream", b.data + b.start, buffer_size(&b));
        buffer_free(&b);
}

static void value_seed(const kactor_value *v) {
        char *buf;
        size_t len;

        if (codec_encode(v, &buf, &len) < 0)
                die("cannot encode a value");
        write_seed("value", buf, len);
        free(buf);
}

static void lineage_seed(const char *method, const kactor_value *args, uint64_t index) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        LineageRecord r = {.index = index, .result = id_of(0xabc, index), .method = (char *)method};

        if (codec_encode(args, &r.args, &r.args_len) < 0)
                die("cannot encode arguments");
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (lineage_record_pack(&pk, &r) < 0)
                die("cannot pack a lineage record");
        write_seed("lineage", sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        free(r.args);
}

int main(int argc, char *argv[]) {
        static const frame_fn client[] = {frame_hello,  frame_create_actor, frame_call,
                                          frame_submit, frame_put,          frame_get,
                                          frame_wait,   frame_release,      frame_kill};
        static const frame_fn worker[] = {frame_init_done, frame_result, frame_reply};
        static const frame_fn peer[] = {peer_create, peer_call,        peer_result,      peer_hold,
                                        peer_moved,  peer_repl_create, peer_repl_record, peer_repl_ack};
        kactor_value *rich, *simple, *empty;

        if (argc != 2)
                die("usage: seeds DIR");
        dir = argv[1];

        /* Whole sessions, read in chunks of 1, 7 and 64 bytes; then each frame alone. */
        stream_seed(0, client, sizeof(client) / sizeof(client[0]));
        stream_seed(6, client, sizeof(client) / sizeof(client[0]));
        stream_seed(63, worker, sizeof(worker) / sizeof(worker[0]));
        for (size_t i = 0; i < sizeof(client) / sizeof(client[0]); i++)
                stream_seed(63, &client[i], 1);
        for (size_t i = 0; i < sizeof(worker) / sizeof(worker[0]); i++)
                stream_seed(63, &worker[i], 1);
        stream_seed(63, peer, sizeof(peer) / sizeof(peer[0]));
        for (size_t i = 0; i < sizeof(peer) / sizeof(peer[0]); i++)
                stream_seed(63, &peer[i], 1);

        rich = rich_value();
        simple = simple_args();
        empty = kactor_value_new_list();
        if (!empty)
                die("out of memory");
        value_seed(rich);
        value_seed(simple);
        value_seed(empty);
        lineage_seed("increment", simple, 1);
        lineage_seed("add", rich, 1001);
        lineage_seed("", empty, UINT64_MAX);
        kactor_value_free(rich);
        kactor_value_free(simple);
        kactor_value_free(empty);
        printf("%u seeds in %s\n", n_seeds, dir);
        return 0;
}
