/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writes seed corpora, made with the project's own encoders so that they follow the protocol as it
 * is:
 *
 *   seeds DIR                  fuzz-frame and fuzz-peer: native frame streams (each prefixed by the
 *                              chunk-size byte fuzz-frame reads first), peer messages, packed values
 *                              and lineage records
 *   seeds --native DIR         fuzz-native: client sessions (fuzz-input.h), one per request kind
 *                              and a few that mix them over several connections
 *   seeds --peer-session DIR   fuzz-peer-session: peer sessions, one per peer message kind and a
 *                              few that mix them
 *   seeds --direct DIR         fuzz-direct: what callers send on direct sockets (fuzz-direct.h), each
 *                              method of its class, many calls, each way a stream goes wrong, and
 *                              each setup
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz-direct.h"
#include "fuzz-input.h"
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

/* Peer messages of remote actors and lineage replicas (nodemgr/cluster/remote-proto.c). */
static void pack_spec(msgpack_packer *pk) {
        pack_cstr(pk, "counter");
        pack_cstr(pk, "Counter");
        msgpack_pack_array(pk, 11);
        msgpack_pack_nil(pk);
        msgpack_pack_double(pk, 0.5);
        msgpack_pack_uint32(pk, 1);
        msgpack_pack_uint64(pk, 1 << 20);
        msgpack_pack_int32(pk, -1);
        msgpack_pack_false(pk);
        msgpack_pack_uint32(pk, 1000);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_array(pk, 1); /* AllowUsers */
        msgpack_pack_uint32(pk, 1000);
        msgpack_pack_array(pk, 1); /* AllowGroups */
        msgpack_pack_uint32(pk, 100);
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
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint32(pk, PEER_MSG_CALL);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(9, 11));
        pack_cstr(pk, "increment");
        msgpack_pack_uint32(pk, 1000); /* the caller's uid */
        pack_value(pk, args);
        kactor_value_free(args);
}

static void peer_result(msgpack_packer *pk) {
        kactor_value *v = rich_value();
        msgpack_pack_array(pk, 7);
        msgpack_pack_uint32(pk, PEER_MSG_RESULT);
        msgpack_pack_uint64(pk, 0);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(9, 11));
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_nil(pk);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(9, 10));
        msgpack_pack_uint32(pk, 1000); /* the owner's uid */
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


/* --- fuzz-native: client sessions ------------------------------------------------------------- */

/* The connection the frames below are for (1-based, as fuzz-native numbers them). */
static unsigned seed_conn = 1;

static kactor_id conn_object(unsigned conn, uint64_t seq) {
        return id_of(FUZZ_NODE_HI, FUZZ_CONN_PREFIX(conn) | seq);
}

/* The actor the first CreateActor of an input would make (the manager's own ids count from 1). */
static kactor_id first_actor(void) {
        return id_of(FUZZ_NODE_HI, 1);
}

static void n_hello(msgpack_packer *pk) {
        frame_hello(pk);
}

static void n_hello_old(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_HELLO);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, PROTO_VERSION + 1);
        msgpack_pack_uint32(pk, 1);
}

/* A worker re-attaching after a restart (no such worker here: refused), with one result sent again. */
static void n_attach(msgpack_packer *pk) {
        msgpack_pack_array(pk, 8);
        msgpack_pack_uint32(pk, MSG_ATTACH);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, PROTO_VERSION);
        codec_pack_id(pk, CODEC_EXT_ACTOR, first_actor());
        msgpack_pack_uint64(pk, FUZZ_CONN_PREFIX(seed_conn));
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_uint32(pk, ATTACH_READY);
        msgpack_pack_array(pk, 1);
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint64(pk, 1);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_NODE_HI, FUZZ_CONN_PREFIX(seed_conn) | 1));
        pack_cstr(pk, "increment");
        msgpack_pack_bin(pk, 1);
        msgpack_pack_bin_body(pk, "\x90", 1);
        msgpack_pack_bin(pk, 6);
        msgpack_pack_bin_body(pk, "\x93\x61\x01\x00\xc0\x00", 6);
}

/* A client asking for a session back after a restart (none here: it gets a new one). */
static void n_hello_resume(msgpack_packer *pk) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_HELLO);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, PROTO_VERSION);
        msgpack_pack_uint32(pk, 1);
        msgpack_pack_uint64(pk, FUZZ_CONN_PREFIX(1));
}

static void n_put(msgpack_packer *pk, uint64_t seq, const kactor_value *v) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, MSG_PUT);
        msgpack_pack_uint64(pk, FUZZ_CONN_PREFIX(seed_conn) | seq);
        pack_value(pk, v);
}

static void n_put_1(msgpack_packer *pk) {
        kactor_value *v = simple_args();
        n_put(pk, 1, v);
        kactor_value_free(v);
}

/* A value that holds the first object and the first actor. */
static void n_put_2(msgpack_packer *pk) {
        kactor_value *v = kactor_value_new_list();
        if (!v)
                die("out of memory");
        kactor_value_list_append(v, kactor_value_new_object(conn_object(seed_conn, 1)));
        kactor_value_list_append(v, kactor_value_new_actor(first_actor()));
        kactor_value_list_append(v, kactor_value_new_string("two"));
        n_put(pk, 2, v);
        kactor_value_free(v);
}

static void n_put_rich(msgpack_packer *pk) {
        kactor_value *v = rich_value();
        n_put(pk, 5, v);
        kactor_value_free(v);
}

static void n_create(msgpack_packer *pk, const char *module, bool options) {
        kactor_value *args = kactor_value_new_list();
        if (!args)
                die("out of memory");
        kactor_value_list_append(args, kactor_value_new_object(conn_object(seed_conn, 1)));
        kactor_value_list_append(args, kactor_value_new_int(3));
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_CREATE_ACTOR);
        msgpack_pack_uint64(pk, 7);
        pack_cstr(pk, module);
        pack_cstr(pk, "Counter");
        if (options) {
                /* No MemoryMax and no NumCpus: the fixture's manager has no cgroups to enforce them
                 * with, and would refuse them. */
                msgpack_pack_map(pk, 7);
                pack_cstr(pk, "NumGpus");
                msgpack_pack_uint32(pk, 1);
                pack_cstr(pk, "NumCpus");
                msgpack_pack_double(pk, 0);
                pack_cstr(pk, "MaxRestarts");
                msgpack_pack_int32(pk, -1);
                pack_cstr(pk, "CheckpointInterval");
                msgpack_pack_uint32(pk, 10);
                pack_cstr(pk, "Detached");
                msgpack_pack_true(pk);
                pack_cstr(pk, "Name");
                pack_cstr(pk, "counter");
                pack_cstr(pk, "Node");
                pack_cstr(pk, FUZZ_NODE_ID);
        } else {
                msgpack_pack_map(pk, 1);
                pack_cstr(pk, "MemoryMax");
                msgpack_pack_uint64(pk, 1 << 30);
        }
        pack_value(pk, args);
        kactor_value_free(args);
}

static void n_create_fake(msgpack_packer *pk) {
        n_create(pk, "fake", true);
}

static void n_create_missing(msgpack_packer *pk) {
        n_create(pk, "missing", false);
}

static void n_create_path(msgpack_packer *pk) {
        n_create(pk, "/nonexistent/module.so", false);
}

static void n_get_actor(msgpack_packer *pk) {
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint32(pk, MSG_GET_ACTOR);
        msgpack_pack_uint64(pk, 8);
        pack_cstr(pk, "counter");
}

static void n_call(msgpack_packer *pk) {
        kactor_value *args = kactor_value_new_list();
        if (!args)
                die("out of memory");
        kactor_value_list_append(args, kactor_value_new_object(conn_object(seed_conn, 1)));
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_CALL);
        msgpack_pack_uint64(pk, FUZZ_CONN_PREFIX(seed_conn) | 3);
        codec_pack_id(pk, CODEC_EXT_ACTOR, first_actor());
        pack_cstr(pk, "increment");
        pack_value(pk, args);
        kactor_value_free(args);
}

static void n_submit(msgpack_packer *pk, uint64_t seq, const char *module) {
        kactor_value *args = kactor_value_new_list();
        if (!args)
                die("out of memory");
        kactor_value_list_append(args, kactor_value_new_object(conn_object(seed_conn, 1)));
        kactor_value_list_append(args, kactor_value_new_int(2));
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, MSG_SUBMIT);
        msgpack_pack_uint64(pk, FUZZ_CONN_PREFIX(seed_conn) | seq);
        pack_cstr(pk, module);
        pack_cstr(pk, "add");
        msgpack_pack_map(pk, 1);
        pack_cstr(pk, "NumCpus");
        msgpack_pack_double(pk, 0.5);
        pack_value(pk, args);
        kactor_value_free(args);
}

static void n_submit_fake(msgpack_packer *pk) {
        n_submit(pk, 4, "fake");
}

static void n_submit_missing(msgpack_packer *pk) {
        n_submit(pk, 6, "missing");
}

static void n_get_ids(msgpack_packer *pk, bool wait, uint64_t timeout, unsigned owner, const uint64_t *seqs,
                      size_t n) {
        msgpack_pack_array(pk, wait ? 5 : 4);
        msgpack_pack_uint32(pk, wait ? MSG_WAIT : MSG_GET);
        msgpack_pack_uint64(pk, wait ? 21 : 20);
        msgpack_pack_uint64(pk, timeout);
        if (wait)
                msgpack_pack_uint32(pk, 1);
        msgpack_pack_array(pk, (uint32_t) n);
        for (size_t i = 0; i < n; i++)
                codec_pack_id(pk, CODEC_EXT_OBJECT, conn_object(owner, seqs[i]));
}

static void n_get(msgpack_packer *pk) {
        static const uint64_t seqs[] = { 1, 2, 3 };
        n_get_ids(pk, false, 0, seed_conn, seqs, 3);
}

/* A Get that waits: for the task (pending) and with a timeout too large to add to the clock. */
static void n_get_pending(msgpack_packer *pk) {
        static const uint64_t seqs[] = { 4, 1 };
        n_get_ids(pk, false, UINT64_MAX, seed_conn, seqs, 2);
}

/* The first connection's objects, from another one. */
static void n_get_other(msgpack_packer *pk) {
        static const uint64_t seqs[] = { 1, 2 };
        n_get_ids(pk, false, 1000000, 1, seqs, 2);
}

static void n_wait(msgpack_packer *pk) {
        static const uint64_t seqs[] = { 4, 2, 1 };
        n_get_ids(pk, true, 1000, seed_conn, seqs, 3);
}

static void n_release(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_RELEASE);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_array(pk, 2);
        codec_pack_id(pk, CODEC_EXT_OBJECT, conn_object(seed_conn, 1));
        codec_pack_id(pk, CODEC_EXT_OBJECT, conn_object(1, 2));
        msgpack_pack_array(pk, 1);
        codec_pack_id(pk, CODEC_EXT_ACTOR, first_actor());
}

static void n_kill(msgpack_packer *pk) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint32(pk, MSG_KILL);
        msgpack_pack_uint64(pk, 22);
        codec_pack_id(pk, CODEC_EXT_ACTOR, first_actor());
        msgpack_pack_false(pk);
}

typedef struct Rec {
        uint8_t kind;
        unsigned conn; /* 1-based */
        frame_fn fn;   /* FUZZ_REC_FRAME */
} Rec;

static void record(Buffer *b, uint8_t kind, unsigned conn, const void *p, size_t len) {
        uint8_t h[3] = { FUZZ_REC_HEADER(kind, conn - 1), len & 0xff, (len >> 8) & 0xff };
        if (len > 0xffff || buffer_append(b, h, sizeof(h)) < 0 || buffer_append(b, p, len) < 0)
                die("cannot make a record");
}

static void session_seed(const char *kind, uint8_t setup, const Rec *recs, size_t n) {
        Buffer b = {};

        if (buffer_append(&b, &setup, 1) < 0)
                die("out of memory");
        for (size_t i = 0; i < n; i++) {
                Buffer f = {};
                if (recs[i].fn) {
                        msgpack_packer pk;
                        msgpack_packer_init(&pk, &f, buffer_msgpack_write);
                        seed_conn = recs[i].conn;
                        recs[i].fn(&pk);
                } else if (recs[i].kind == FUZZ_REC_RAW && buffer_append(&f, "\x05\x00\x00\x00\x93\x01", 6) < 0)
                        die("out of memory");
                record(&b, recs[i].kind, recs[i].conn, f.data ? f.data + f.start : "", buffer_size(&f));
                buffer_free(&f);
        }
        write_seed(kind, b.data + b.start, buffer_size(&b));
        buffer_free(&b);
}

#define F(c, fn) { FUZZ_REC_FRAME, (c), (fn) }

static void native_seeds(void) {
        static const frame_fn requests[] = { n_put_1,       n_put_2,          n_put_rich,    n_create_fake,
                                             n_create_missing, n_create_path, n_get_actor,   n_call,
                                             n_submit_fake, n_submit_missing, n_get,         n_get_pending,
                                             n_wait,        n_release,        n_kill,        frame_reply,
                                             frame_result,  frame_init_done };
        /* Each request kind alone after HELLO (a Put first, for those that name objects). */
        for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
                Rec recs[] = { F(1, n_hello), F(1, n_put_1), F(1, requests[i]) };
                session_seed("native", 0, recs, 3);
        }
        /* A whole session on one connection. */
        {
                Rec recs[] = { F(1, n_hello),       F(1, n_put_1),          F(1, n_put_2),
                               F(1, n_create_fake), F(1, n_create_missing), F(1, n_get_actor),
                               F(1, n_call),        F(1, n_submit_fake),    F(1, n_submit_missing),
                               F(1, n_get),         F(1, n_wait),           F(1, n_get_pending),
                               F(1, n_release),     F(1, n_kill),           F(1, n_get) };
                session_seed("native", 0, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* Two clients: the second gets the first one's objects (held through a value it got), the
         * first one goes, the second releases. */
        {
                Rec recs[] = { F(1, n_hello),     F(1, n_put_1),   F(1, n_put_2),
                               F(2, n_hello),     F(2, n_get_other), { FUZZ_REC_CLOSE, 1, NULL },
                               F(2, n_get_other), F(2, n_release), F(2, n_get_other) };
                session_seed("native", 1, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* An outsider (connection 2) and an old client (connection 3); root's still works. */
        {
                Rec recs[] = { F(1, n_hello), F(2, n_hello),     F(3, n_hello_old),
                               F(2, n_put_1), F(1, n_create_fake), F(1, n_get_actor) };
                session_seed("native", 2 | FUZZ_SETUP_OUTSIDER, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* After a restart: a stranger's ATTACH, and a client asking for a session back. */
        {
                Rec recs[] = { F(1, n_attach), F(2, n_hello_resume), F(2, n_put_1), F(2, n_get) };
                session_seed("native", 1, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* Requests before HELLO, a frame cut short, and a client that stops reading. */
        {
                Rec recs[] = { F(1, n_put_1), F(2, n_hello), { FUZZ_REC_RAW, 2, NULL },
                               F(3, n_hello), { FUZZ_REC_PAUSE, 3, NULL }, F(3, n_put_rich),
                               F(3, n_get),   F(3, n_get),  F(3, n_get) };
                session_seed("native", 2, recs, sizeof(recs) / sizeof(recs[0]));
        }
}

/* --- fuzz-peer-session: what a peer sends after the handshake ------------------------------- */

static kactor_id peer_actor(void) {
        return id_of(FUZZ_PEER_HI, 1);
}

static kactor_id node_actor(void) {
        return id_of(FUZZ_NODE_HI, 1);
}

static void ps_spec(msgpack_packer *pk) {
        pack_cstr(pk, "fake");
        pack_cstr(pk, "Counter");
        msgpack_pack_array(pk, 11);
        pack_cstr(pk, "remote-counter");
        msgpack_pack_double(pk, 0.5);
        msgpack_pack_uint32(pk, 1);
        msgpack_pack_uint64(pk, 1 << 20);
        msgpack_pack_int32(pk, -1);
        msgpack_pack_false(pk);
        msgpack_pack_uint32(pk, 10);
        msgpack_pack_uint64(pk, 0);
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_array(pk, 0); /* AllowUsers */
        msgpack_pack_array(pk, 0); /* AllowGroups */
}

static void ps_member(msgpack_packer *pk, const char *id, const char *address, const char *state) {
        msgpack_pack_array(pk, 10);
        pack_cstr(pk, id);
        pack_cstr(pk, address);
        msgpack_pack_uint64(pk, 1);
        pack_cstr(pk, state);
        msgpack_pack_double(pk, 4);
        msgpack_pack_double(pk, 2.5);
        msgpack_pack_uint32(pk, 2);
        msgpack_pack_uint32(pk, 1);
        msgpack_pack_uint64(pk, UINT64_C(1) << 34);
        msgpack_pack_uint64(pk, UINT64_C(1) << 33);
}

static void ps_members(msgpack_packer *pk) {
        msgpack_pack_array(pk, 3);
        ps_member(pk, FUZZ_PEER_ID, "", "alive");
        ps_member(pk, FUZZ_NODE_ID, "127.0.0.1:7946", "suspect");
        ps_member(pk, "00000000000000c3", "127.0.0.1:7950", "alive");
}

static void ps_membership(msgpack_packer *pk, uint32_t type, uint64_t seq, const char *target) {
        msgpack_pack_array(pk, target ? 5 : 4);
        msgpack_pack_uint32(pk, type);
        msgpack_pack_uint64(pk, seq);
        pack_cstr(pk, FUZZ_PEER_ID);
        if (target)
                pack_cstr(pk, target);
        ps_members(pk);
}

static void ps_ping(msgpack_packer *pk) {
        ps_membership(pk, PEER_MSG_PING, 1, NULL);
}

static void ps_ack(msgpack_packer *pk) {
        ps_membership(pk, PEER_MSG_ACK, 1, NULL);
}

static void ps_ping_req(msgpack_packer *pk) {
        ps_membership(pk, PEER_MSG_PING_REQ, 2, "00000000000000c3");
}

static void ps_dead_notice(msgpack_packer *pk) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint32(pk, PEER_MSG_DEAD_NOTICE);
        msgpack_pack_uint64(pk, 0);
        pack_cstr(pk, FUZZ_PEER_ID);
        msgpack_pack_uint64(pk, 3);
        msgpack_pack_array(pk, 1);
        msgpack_pack_array(pk, 2);
        codec_pack_id(pk, CODEC_EXT_ACTOR, node_actor());
        pack_cstr(pk, "00000000000000c3");
}

static void ps_header(msgpack_packer *pk, uint32_t type, uint32_t n_fields) {
        msgpack_pack_array(pk, n_fields + 2);
        msgpack_pack_uint32(pk, type);
        msgpack_pack_uint64(pk, 0);
}

/* The peer places an actor here. */
static void ps_create(msgpack_packer *pk) {
        kactor_value *args = simple_args();
        ps_header(pk, PEER_MSG_CREATE, 4);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        ps_spec(pk);
        pack_value(pk, args);
        kactor_value_free(args);
}

static void ps_created(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_CREATED, 3);
        codec_pack_id(pk, CODEC_EXT_ACTOR, node_actor());
        msgpack_pack_uint32(pk, KACTOR_ERROR_MODULE_NOT_FOUND);
        pack_cstr(pk, "no such module");
}

static void ps_call(msgpack_packer *pk) {
        kactor_value *args = simple_args();
        ps_header(pk, PEER_MSG_CALL, 4);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_PEER_HI, 2));
        pack_cstr(pk, "increment");
        msgpack_pack_uint32(pk, 0); /* the caller's uid */
        pack_value(pk, args);
        kactor_value_free(args);
}

static void ps_result(msgpack_packer *pk) {
        kactor_value *v = rich_value();
        ps_header(pk, PEER_MSG_RESULT, 5);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_NODE_HI, 2));
        msgpack_pack_uint32(pk, 0);
        msgpack_pack_nil(pk);
        codec_pack_id(pk, CODEC_EXT_ACTOR, id_of(FUZZ_PEER_HI, 1));
        msgpack_pack_uint32(pk, 0); /* the owner's uid */
        pack_value(pk, v);
        kactor_value_free(v);
}

static void ps_result_failed(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_RESULT, 5);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_PEER_HI, 2));
        msgpack_pack_uint32(pk, KACTOR_ERROR_ACTOR_DIED);
        pack_cstr(pk, "it died");
        msgpack_pack_nil(pk);
        msgpack_pack_uint32(pk, UINT32_MAX); /* no owner told */
}

static void ps_done(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_DONE, 1);
        msgpack_pack_array(pk, 2);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_PEER_HI, 2));
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_NODE_HI, 2));
}

static void ps_fetch(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_FETCH, 1);
        codec_pack_id(pk, CODEC_EXT_OBJECT, id_of(FUZZ_PEER_HI, 2));
}

static void ps_actor_list(msgpack_packer *pk, uint32_t type) {
        ps_header(pk, type, 1);
        msgpack_pack_array(pk, 2);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        codec_pack_id(pk, CODEC_EXT_ACTOR, node_actor());
}

static void ps_hold(msgpack_packer *pk) {
        ps_actor_list(pk, PEER_MSG_HOLD);
}

static void ps_release(msgpack_packer *pk) {
        ps_actor_list(pk, PEER_MSG_RELEASE);
}

static void ps_repl_drop(msgpack_packer *pk) {
        ps_actor_list(pk, PEER_MSG_REPL_DROP);
}

static void ps_kill(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_KILL, 3);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        msgpack_pack_true(pk);
        msgpack_pack_uint32(pk, 0); /* the caller's uid */
}

static void ps_moved(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_MOVED, 3);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        pack_cstr(pk, FUZZ_NODE_ID);
        pack_cstr(pk, "rebuilt");
}

static void ps_locate(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_LOCATE, 1);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
}

/* This node keeps a replica of the peer's actor. */
static void ps_repl_create(msgpack_packer *pk) {
        static const char state[] = "\x81\xa1n\x05";
        kactor_value *args = simple_args();
        ps_header(pk, PEER_MSG_REPL_CREATE, 7);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        ps_spec(pk);
        msgpack_pack_array(pk, 1);
        pack_cstr(pk, FUZZ_NODE_ID);
        msgpack_pack_uint64(pk, 2);
        msgpack_pack_bin(pk, sizeof(state) - 1);
        msgpack_pack_bin_body(pk, state, sizeof(state) - 1);
        pack_value(pk, args);
        kactor_value_free(args);
}

static void ps_repl_record_n(msgpack_packer *pk, uint64_t index) {
        msgpack_sbuffer sb;
        msgpack_packer rpk;
        kactor_value *args = simple_args();
        LineageRecord r = {.index = index, .result = id_of(FUZZ_PEER_HI, 10 + index), .method = (char *)"increment"};

        if (codec_encode(args, &r.args, &r.args_len) < 0)
                die("cannot encode arguments");
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&rpk, &sb, msgpack_sbuffer_write);
        if (lineage_record_pack(&rpk, &r) < 0)
                die("cannot pack a lineage record");
        ps_header(pk, PEER_MSG_REPL_RECORD, 2);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        msgpack_pack_bin(pk, (uint32_t) sb.size);
        msgpack_pack_bin_body(pk, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        free(r.args);
        kactor_value_free(args);
}

static void ps_repl_record(msgpack_packer *pk) {
        ps_repl_record_n(pk, 3);
}

static void ps_repl_record_next(msgpack_packer *pk) {
        ps_repl_record_n(pk, 4);
}

static void ps_repl_checkpoint(msgpack_packer *pk) {
        static const char state[] = "\x81\xa1n\x07";
        ps_header(pk, PEER_MSG_REPL_CHECKPOINT, 3);
        codec_pack_id(pk, CODEC_EXT_ACTOR, peer_actor());
        msgpack_pack_uint64(pk, 4);
        msgpack_pack_bin(pk, sizeof(state) - 1);
        msgpack_pack_bin_body(pk, state, sizeof(state) - 1);
}

static void ps_repl_ack(msgpack_packer *pk) {
        ps_header(pk, PEER_MSG_REPL_ACK, 3);
        codec_pack_id(pk, CODEC_EXT_ACTOR, node_actor());
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_true(pk);
}

/* Before authentication: a HELLO that claims to be this node, and an AUTH that is wrong. */
static void ps_hello_self(msgpack_packer *pk) {
        static const uint8_t nonce[PEER_NONCE_SIZE] = { 1, 2, 3 };
        ps_header(pk, PEER_MSG_HELLO, 4);
        msgpack_pack_uint32(pk, PEER_PROTO_VERSION);
        pack_cstr(pk, FUZZ_NODE_ID);
        pack_cstr(pk, "");
        msgpack_pack_bin(pk, sizeof(nonce));
        msgpack_pack_bin_body(pk, nonce, sizeof(nonce));
}

static void ps_hello(msgpack_packer *pk) {
        static const uint8_t nonce[PEER_NONCE_SIZE] = { 4, 5, 6 };
        ps_header(pk, PEER_MSG_HELLO, 4);
        msgpack_pack_uint32(pk, PEER_PROTO_VERSION);
        pack_cstr(pk, FUZZ_PEER_ID);
        pack_cstr(pk, "127.0.0.1:7947");
        msgpack_pack_bin(pk, sizeof(nonce));
        msgpack_pack_bin_body(pk, nonce, sizeof(nonce));
}

static void ps_auth_wrong(msgpack_packer *pk) {
        static const uint8_t mac[PEER_MAC_SIZE] = { 7 };
        ps_header(pk, PEER_MSG_AUTH, 1);
        msgpack_pack_bin(pk, sizeof(mac));
        msgpack_pack_bin_body(pk, mac, sizeof(mac));
}

static void peer_session_seeds(void) {
        static const frame_fn messages[] = {
                ps_ping,       ps_ack,     ps_ping_req,  ps_dead_notice, ps_create,      ps_created,
                ps_call,       ps_result,  ps_result_failed, ps_done,    ps_fetch,       ps_hold,
                ps_release,    ps_kill,    ps_moved,     ps_locate,      ps_repl_create, ps_repl_record,
                ps_repl_checkpoint, ps_repl_ack, ps_repl_drop, ps_hello, ps_auth_wrong,
        };
        /* Each message kind alone, after a PING that makes the peer a member. */
        for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
                Rec recs[] = { F(1, ps_ping), F(1, messages[i]) };
                session_seed("peer-session", 0, recs, 2);
        }
        /* An actor placed here, called, held, killed; results and fetches. */
        {
                Rec recs[] = { F(1, ps_ping),   F(1, ps_create), F(1, ps_hold),   F(1, ps_call),
                               F(1, ps_fetch),  F(1, ps_result), F(1, ps_done),   F(1, ps_locate),
                               F(1, ps_kill),   F(1, ps_release), F(1, ps_moved) };
                session_seed("peer-session", 0, recs, sizeof(recs) / sizeof(recs[0]));
                /* The same over TLS. */
                session_seed("peer-session", FUZZ_SETUP_TLS, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* A replica: made, records, a checkpoint, a reconnect (what was owed goes again), dropped. */
        {
                Rec recs[] = { F(1, ps_ping),           F(1, ps_repl_create),     F(1, ps_repl_record),
                               F(1, ps_repl_record_next), F(1, ps_repl_checkpoint), { FUZZ_REC_CLOSE, 1, NULL },
                               F(1, ps_ping),           { FUZZ_REC_PAUSE, 1, NULL }, F(1, ps_repl_drop) };
                session_seed("peer-session", 0, recs, sizeof(recs) / sizeof(recs[0]));
                session_seed("peer-session", FUZZ_SETUP_TLS, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* Membership gossip, a relayed probe, a death notice. */
        {
                Rec recs[] = { F(1, ps_ping), F(1, ps_ping_req), F(1, ps_ack), { FUZZ_REC_PAUSE, 1, NULL },
                               F(1, ps_dead_notice), F(1, ps_created), F(1, ps_repl_ack) };
                session_seed("peer-session", 0, recs, sizeof(recs) / sizeof(recs[0]));
        }
        /* No handshake: a stranger's HELLO and AUTH, one claiming to be this node, data frames. */
        {
                Rec recs[] = { F(1, ps_hello), F(1, ps_auth_wrong), F(1, ps_create) };
                session_seed("peer-session", FUZZ_SETUP_NO_HANDSHAKE, recs, 3);
                Rec self[] = { F(1, ps_hello_self), F(1, ps_ping) };
                session_seed("peer-session", FUZZ_SETUP_NO_HANDSHAKE, self, 2);
                /* Over TLS, a HELLO in clear (refused by TLS), and garbage after a TLS session. */
                session_seed("peer-session", FUZZ_SETUP_NO_HANDSHAKE | FUZZ_SETUP_TLS, recs, 1);
                Rec broken[] = { F(1, ps_ping), { FUZZ_REC_RAW, 1, NULL }, F(1, ps_ping) };
                session_seed("peer-session", FUZZ_SETUP_TLS, broken, 3);
        }
}

/* --- fuzz-direct: what callers send on direct sockets ----------------------------------------- */

/* A DCALL for caller k's object seq: [12, lo, method] + args (none when NULL). */
static void dcall(Buffer *b, unsigned caller, uint64_t seq, const char *method, const kactor_value *args) {
        msgpack_packer pk;
        size_t off = frame_begin(b);

        msgpack_packer_init(&pk, b, buffer_msgpack_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, MSG_DCALL);
        msgpack_pack_uint64(&pk, FUZZ_DIRECT_PREFIX(caller) | seq);
        pack_cstr(&pk, method);
        if (args)
                pack_value(&pk, args);
        if (frame_end(b, off) < 0)
                die("cannot finish a DCALL");
}

static void raw(Buffer *b, const void *p, size_t len) {
        if (buffer_append(b, p, len) < 0)
                die("out of memory");
}

/* An input: the setup byte, and the bytes of one caller or of two. */
static void direct_seed(uint8_t setup, Buffer *first, Buffer *second) {
        Buffer b = {};
        uint8_t h[3] = { setup, buffer_size(first) & 0xff, (buffer_size(first) >> 8) & 0xff };

        if (buffer_size(first) > 0xffff)
                die("a direct seed too large");
        raw(&b, h, second ? 3 : 1);
        raw(&b, first->data ? first->data + first->start : "", buffer_size(first));
        if (second)
                raw(&b, second->data ? second->data + second->start : "", buffer_size(second));
        write_seed("direct", b.data + b.start, buffer_size(&b));
        buffer_free(&b);
        buffer_free(first);
        if (second)
                buffer_free(second);
}

/* A value of every kind a direct call may take: nothing in it names an object or an actor. */
static kactor_value *plain_value(void) {
        static const uint8_t bytes[] = { 0, 1, 0xff };
        kactor_value *l = kactor_value_new_list(), *m = kactor_value_new_map(),
                     *inner = kactor_value_new_list();

        if (!l || !m || !inner)
                die("out of memory");
        kactor_value_list_append(l, kactor_value_new_int(INT64_MIN));
        kactor_value_list_append(l, kactor_value_new_double(-0.5));
        kactor_value_list_append(l, kactor_value_new_bool(false));
        kactor_value_list_append(l, kactor_value_new_nil());
        kactor_value_list_append(l, kactor_value_new_stringn("a\0b", 3));
        kactor_value_list_append(l, kactor_value_new_bytes(bytes, sizeof(bytes)));
        kactor_value_list_append(inner, kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, "inner"));
        kactor_value_map_set(m, "list", inner);
        kactor_value_list_append(l, m);
        return l;
}

/* Caller k's calls seq from..to, of method. */
static void dcalls(Buffer *b, unsigned caller, uint64_t from, uint64_t to, const char *method) {
        kactor_value *args = simple_args();

        for (uint64_t seq = from; seq <= to; seq++)
                dcall(b, caller, seq, method, args);
        kactor_value_free(args);
}

static void direct_seeds(void) {
        kactor_value *simple = simple_args(), *plain = plain_value(), *rich = rich_value(),
                     *error = kactor_value_new_list(), *number = kactor_value_new_int(7);
        static const char *const methods[] = { "echo", "first", "fail", "neg", "big",
                                               "ids",  "nil",   "get",  "nope" };
        Buffer b = {}, b2 = {};

        if (!error || !number ||
            kactor_value_list_append(error, kactor_value_new_error(KACTOR_ERROR_TASK_FAILED, "failed")) < 0)
                die("out of memory");

        /* Each method alone, and all of them in one stream; no arguments, plain ones, an error. */
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
                dcall(&b, 1, 1, methods[i], simple);
                direct_seed(0, &b, NULL);
        }
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
                dcall(&b, 1, 2 * i + 1, methods[i], i % 2 ? NULL : plain);
        dcall(&b, 1, 100, "first", error);
        dcall(&b, 1, 101, "echo", NULL);
        direct_seed(0, &b, NULL);

        /* Batches: more calls than one reads at a time. */
        dcalls(&b, 1, 1, 150, "echo");
        direct_seed(0, &b, NULL);

        /* Two good calls, then each way a stream goes wrong. */
        for (unsigned i = 0; i < 11; i++) {
                static const uint8_t too_large[] = { 0xff, 0xff, 0xff, 0xff, 0x93 };
                static const uint8_t empty[] = { 0, 0, 0, 0 };
                static const uint8_t cut[] = { 100, 0, 0, 0, 0x93, 12, 3 };
                static const uint8_t garbage[] = { 3, 0, 0, 0, 0xc1, 0xc1, 0xc1 };

                /* In order: an id not above the last, another caller's id, sequence 0, a frame other
                 * than DCALL, arguments naming ids, arguments that are not a list, no method, an
                 * oversized frame, an empty one, one cut short, one that does not parse. */
                dcalls(&b, 1, 1, 2, "echo");
                switch (i) {
                case 0:
                        dcall(&b, 1, 2, "echo", simple);
                        break;
                case 1:
                        dcall(&b, 2, 3, "echo", simple);
                        break;
                case 2:
                        dcall(&b, 1, 0, "echo", simple);
                        break;
                case 3:
                        add_frame(&b, frame_hello);
                        break;
                case 4:
                        dcall(&b, 1, 3, "echo", rich);
                        break;
                case 5:
                        dcall(&b, 1, 3, "echo", number);
                        break;
                case 6:
                        dcall(&b, 1, 3, "", simple);
                        break;
                case 7:
                        raw(&b, too_large, sizeof(too_large));
                        break;
                case 8:
                        raw(&b, empty, sizeof(empty));
                        break;
                case 9:
                        raw(&b, cut, sizeof(cut));
                        break;
                case 10:
                        raw(&b, garbage, sizeof(garbage));
                        break;
                }
                dcalls(&b, 1, 10, 11, "echo"); /* never read */
                direct_seed(0, &b, NULL);
        }

        /* Two callers; one caller on two sockets, its ids interleaved. */
        dcalls(&b, 1, 1, 70, "echo");
        dcalls(&b2, 2, 1, 3, "big");
        dcalls(&b2, 2, 4, 5, "get");
        direct_seed(FUZZ_DIRECT_TWO, &b, &b2);
        for (uint64_t seq = 1; seq <= 12; seq++)
                dcall(seq % 3 ? &b : &b2, 1, seq, seq % 4 ? "echo" : "get", simple);
        direct_seed(FUZZ_DIRECT_TWO | FUZZ_DIRECT_SAME_CALLER, &b, &b2);

        /* A caller that goes once it has sent; ids it made before; a relayed call ran; DIRECT_CLOSE; a
         * caller slow to read big answers; everything else at once. */
        dcalls(&b, 1, 1, 5, "big");
        dcalls(&b, 1, 6, 80, "echo");
        direct_seed(FUZZ_DIRECT_CALLER_GONE, &b, NULL);
        dcalls(&b, 1, FUZZ_DIRECT_MIN_SEQ, FUZZ_DIRECT_MIN_SEQ + 3, "echo");
        direct_seed(FUZZ_DIRECT_MIN_LO, &b, NULL);
        dcalls(&b, 1, FUZZ_DIRECT_MIN_SEQ + 1, FUZZ_DIRECT_MIN_SEQ + 3, "echo");
        direct_seed(FUZZ_DIRECT_MIN_LO, &b, NULL);
        dcalls(&b, 1, FUZZ_DIRECT_EXEC_SEQ, FUZZ_DIRECT_EXEC_SEQ + 2, "echo");
        direct_seed(FUZZ_DIRECT_EXEC, &b, NULL);
        dcalls(&b, 1, FUZZ_DIRECT_EXEC_SEQ + 1, FUZZ_DIRECT_EXEC_SEQ + 2, "get");
        direct_seed(FUZZ_DIRECT_EXEC | FUZZ_DIRECT_MIN_LO, &b, NULL);
        dcalls(&b, 1, 1, 200, "echo");
        direct_seed(FUZZ_DIRECT_CLOSE, &b, NULL);
        dcalls(&b, 1, 1, FUZZ_DIRECT_BIG_MAX + 2, "big");
        dcalls(&b, 1, FUZZ_DIRECT_BIG_MAX + 3, FUZZ_DIRECT_BIG_MAX + 4, "get");
        direct_seed(FUZZ_DIRECT_SLOW_READER, &b, NULL);
        dcalls(&b, 1, 1, 20, "big");
        dcalls(&b2, 1, 21, 40, "echo");
        direct_seed(FUZZ_DIRECT_SLOW_READER | FUZZ_DIRECT_CALLER_GONE | FUZZ_DIRECT_TWO, &b, &b2);
        dcalls(&b, 1, 9, 30, "echo");
        dcalls(&b2, 1, 31, 40, "big");
        direct_seed(0x7f, &b, &b2);
        /* A re-attach in the middle: every socket closes at once, answers left unsent. */
        dcalls(&b, 1, 1, 10, "big");
        dcalls(&b, 1, 11, 100, "echo");
        direct_seed(FUZZ_DIRECT_REATTACH | FUZZ_DIRECT_SLOW_READER, &b, NULL);
        dcalls(&b, 1, 1, 100, "echo");
        dcalls(&b2, 2, 1, 100, "echo");
        direct_seed(FUZZ_DIRECT_REATTACH | FUZZ_DIRECT_TWO, &b, &b2);

        kactor_value_free(simple);
        kactor_value_free(plain);
        kactor_value_free(rich);
        kactor_value_free(error);
        kactor_value_free(number);
}

int main(int argc, char *argv[]) {
        static const frame_fn client[] = {frame_hello,  frame_create_actor, frame_call,
                                          frame_submit, frame_put,          frame_get,
                                          frame_wait,   frame_release,      frame_kill};
        static const frame_fn worker[] = {frame_init_done, frame_result, frame_reply};
        static const frame_fn peer[] = {peer_create, peer_call,        peer_result,      peer_hold,
                                        peer_moved,  peer_repl_create, peer_repl_record, peer_repl_ack};
        kactor_value *rich, *simple, *empty;

        if (argc == 3 && strcmp(argv[1], "--native") == 0) {
                dir = argv[2];
                native_seeds();
                printf("%u seeds in %s\n", n_seeds, dir);
                return 0;
        }
        if (argc == 3 && strcmp(argv[1], "--peer-session") == 0) {
                dir = argv[2];
                peer_session_seeds();
                printf("%u seeds in %s\n", n_seeds, dir);
                return 0;
        }
        if (argc == 3 && strcmp(argv[1], "--direct") == 0) {
                dir = argv[2];
                direct_seeds();
                printf("%u seeds in %s\n", n_seeds, dir);
                return 0;
        }
        if (argc != 2)
                die("usage: seeds [--native|--peer-session|--direct] DIR");
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
