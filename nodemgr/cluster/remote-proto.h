/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The peer messages of remote actors and lineage replication (PEER_MSG_CREATE and on, see
 * peer-proto.h and docs/cluster.md), checked before anything acts on them. Pure: no I/O, no
 * manager state; tests/fuzz/fuzz-peer.c runs it on arbitrary frames.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "kactor/value.h"
#include "lineage.h"
#include "proto.h"

#define REMOTE_REPLICAS_MAX 8
#define NODE_ID_STRING_MAX 17 /* 16 hex digits and the NUL */
#define REMOTE_UID_UNKNOWN UINT32_MAX

/* What an actor is made from, as it travels with CREATE and REPL_CREATE (owned strings). */
typedef struct SpecWire {
        char *module, *class_name, *name;
        double num_cpus;
        uint32_t num_gpus;
        uint64_t memory_max;
        int32_t max_restarts;
        bool detached;
        uint32_t checkpoint_interval;
        uint64_t tasks_max;
        uint32_t uid;
        uint32_t *allow_users, *allow_groups; /* at most SPEC_ALLOW_MAX each */
        size_t n_allow_users, n_allow_groups;
} SpecWire;

void spec_wire_done(SpecWire *s);
/* [module, class, [name or nil, cpus, gpus, memory max, max restarts, detached, checkpoint
 * interval, tasks max, uid, [allowed uids], [allowed gids]]]: three header fields. */
int spec_wire_pack(msgpack_packer *pk, const SpecWire *s);

typedef struct RemoteMessage {
        uint32_t type;
        kactor_id actor;           /* the actor the message is about (RESULT: when has_actor) */
        kactor_id object;          /* CALL, RESULT, FETCH */
        bool has_actor;            /* RESULT: of a call (else of a fetch) */
        const char *text;          /* CALL: the method; CREATED, RESULT: the message; MOVED: the cause */
        size_t text_len;
        uint64_t node;             /* MOVED: where it lives now (0: it could not be rebuilt) */
        uint64_t code;             /* CREATED, RESULT: a kactor_error */
        uint32_t uid;              /* CALL, KILL: the caller's user; RESULT: the object's owner
                                    * (REMOTE_UID_UNKNOWN: not known) */
        uint64_t index;            /* REPL_CREATE: the checkpoint's; REPL_CHECKPOINT, REPL_ACK */
        bool flag;                 /* KILL: no_restart; REPL_ACK: need_sync */
        const msgpack_object *ids; /* DONE: objects; HOLD, RELEASE, REPL_DROP: actors (each checked) */
        SpecWire spec;             /* CREATE, REPL_CREATE */
        uint64_t replicas[REMOTE_REPLICAS_MAX]; /* REPL_CREATE, in order */
        size_t n_replicas;
        const char *blob;          /* REPL_CREATE: the checkpoint (NULL: none); REPL_CHECKPOINT: the state */
        size_t blob_len;
        LineageRecord record;      /* REPL_RECORD */
        const char *body;          /* CREATE, REPL_CREATE, CALL: the arguments (a list; NULL: none);
                                    * RESULT: the value (when the code is 0) */
        size_t body_len;
} RemoteMessage;

/* Parses and checks a frame of the data range: 0, or -EBADMSG. Borrowed from the frame except the
 * spec and the record: free with remote_message_done(). */
int remote_message_parse(const Frame *f, RemoteMessage *ret);
void remote_message_done(RemoteMessage *m);

/* A node id (16 hex digits) as a number, 0 excluded. */
int node_id_parse(const char *s, size_t len, uint64_t *ret);
void node_id_format(uint64_t node, char buf[NODE_ID_STRING_MAX]);
/* The id of the i-th entry of a checked id list. */
kactor_id remote_message_id(const RemoteMessage *m, size_t i);
