/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/*
 * The peer protocol between node managers (docs/cluster.md). It uses the native framing of
 * lib/proto.h (u32 LE length + msgpack header [type, id, fields...]) with its own message types,
 * numbered from 128 so they can never be taken for client or worker messages.
 *
 * A connection is TLS 1.3 (peer-tls.h; in clear only with KACTOR_PEER_PLAINTEXT=1, for
 * measurements), and these frames travel inside its records once its handshake is done. It starts
 * with HELLO in both directions, then AUTH in both directions: each side proves with HMAC-SHA256
 * over the other side's nonce and its own node id that it is the other end of this TLS session
 * (the key is exported from it), or without TLS that it knows a secret of the keyring. Nothing else
 * is accepted before both have been checked. Membership messages (SWIM) follow; every one carries the sender's
 * view of the members (a list of member entries, see membership.h), which is how membership
 * spreads.
 */

#define PEER_PROTO_VERSION 2

/* SWIM's default timings (usec): with them a node that stops answering is declared dead within
 * about a second on a quiet network. */
#define MEMBERSHIP_PROBE_INTERVAL_DEFAULT (100 * UINT64_C(1000))
#define MEMBERSHIP_PROBE_TIMEOUT_DEFAULT (50 * UINT64_C(1000))
#define MEMBERSHIP_SUSPECT_TIMEOUT_DEFAULT (600 * UINT64_C(1000))
#define PEER_FRAME_MAX (64u * 1024u * 1024u) /* a peer frame larger than this drops the peer: as a
                                              * client's (PROTO_FRAME_MAX), so whatever a client
                                              * may send can go on to another node */
#define PEER_FRAME_MAX_UNAUTH 4096u          /* before authentication */
#define PEER_INPUT_MAX_UNAUTH 4096u          /* bytes a connection may send in all before it has
                                              * authenticated (HELLO and AUTH take ~150): more
                                              * closes it */
#define PEER_NONCE_SIZE 32
#define PEER_MAC_SIZE 32                     /* HMAC-SHA256 */
#define PEER_MAX 64                          /* connections (dialled, or accepted and then
                                              * authenticated), and members */
#define PEER_STRANGERS_MAX 32                /* inbound connections not authenticated yet: a pool
                                              * of their own, apart from PEER_MAX */
#define PEER_QUEUE_MAX 256                   /* frames queued to one peer before sends fail -EBUSY */

typedef enum PeerMsg {
        PEER_MSG_HELLO = 128, /* [T, 0, version, node id, listen address, nonce (bin 32)]        */
        PEER_MSG_AUTH,        /* [T, 0, mac (bin 32)]: HMAC(key, label | their nonce | our nonce
                               *  | our node id), label "kactor-peer-dial" or "kactor-peer-accept";
                               *  key: exported from the TLS session (label "EXPORTER-kactor-peer-
                               *  auth", 32 bytes), or without TLS the secret */
        PEER_MSG_PING,        /* [T, seq, from id, [member entries]]                               */
        PEER_MSG_ACK,         /* [T, seq, from id, [member entries]]                               */
        PEER_MSG_PING_REQ,    /* [T, seq, from id, target id, [member entries]]: ping target for me */
        PEER_MSG_DEAD_NOTICE, /* [T, 0, from id, incarnation, [[actor, node id], ...]]: you were
                               *  declared dead at this incarnation, and these actors live on these
                               *  nodes now (sent to a member that comes back from dead)           */

        /* Remote actors and lineage replication (remote.c), numbered from PEER_MSG_DATA_FIRST.
         * Ids are ext 1 (object) / ext 2 (actor); node ids are strings. */
        PEER_MSG_CREATE = 140, /* [T, 0, actor, module, class, options map] + args: create with this id */
        PEER_MSG_CREATED,      /* [T, 0, actor, code, message]: the creation failed (code != 0) or not  */
        PEER_MSG_CALL,         /* [T, 0, actor, object, method, caller uid] + args: run a call, RESULT  */
        PEER_MSG_RESULT,       /* [T, 0, object, code, message, actor, owner uid] + value: a call's or
                                * a fetch's result                                                   */
        PEER_MSG_DONE,         /* [T, 0, [objects]]: results taken; the sender's copies may go          */
        PEER_MSG_FETCH,        /* [T, 0, object]: send this object's value when it is there (RESULT)    */
        PEER_MSG_HOLD,         /* [T, 0, [actors]]: the sender holds handles to these actors           */
        PEER_MSG_RELEASE,      /* [T, 0, [actors]]: ... no longer                                     */
        PEER_MSG_KILL,         /* [T, 0, actor, no_restart, caller uid]                                */
        PEER_MSG_MOVED,        /* [T, 0, actor, node id]: the actor now lives on that node             */
        PEER_MSG_LOCATE,       /* [T, 0, actor]: who hosts it? (answered with MOVED by the host)       */
        PEER_MSG_REPL_CREATE,  /* [T, 0, actor, module, class, options map, [replica ids], checkpoint
                                *  index, checkpoint (bin or nil)] + constructor args: keep a replica */
        PEER_MSG_REPL_RECORD,  /* [T, 0, actor, record (bin: lineage_record_pack())]                   */
        PEER_MSG_REPL_CHECKPOINT, /* [T, 0, actor, index, state (bin)]                                */
        PEER_MSG_REPL_ACK,     /* [T, 0, actor, index]: records up to index are stored                 */
        PEER_MSG_REPL_DROP,    /* [T, 0, actor]: the actor is gone; forget its replica                */
        _PEER_MSG_DATA_END,
} PeerMsg;

#define PEER_MSG_DATA_FIRST PEER_MSG_CREATE
