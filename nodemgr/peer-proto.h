/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The peer protocol between node managers (docs/cluster.md). It uses the native framing of
 * lib/proto.h (u32 LE length + msgpack header [type, id, fields...]) with its own message types,
 * numbered from 128 so they can never be taken for client or worker messages.
 *
 * A connection starts with HELLO in both directions, then AUTH in both directions: each side proves
 * it knows the cluster secret with HMAC-SHA256 over the other side's nonce. Nothing else is accepted
 * before both have been checked. Membership messages (SWIM) follow; every one carries the sender's
 * view of the members (a list of member entries, see membership.h), which is how membership
 * spreads.
 */

#define PEER_PROTO_VERSION 1
#define PEER_FRAME_MAX (1024u * 1024u)       /* a peer frame larger than this drops the peer */
#define PEER_FRAME_MAX_UNAUTH 4096u          /* before authentication */
#define PEER_NONCE_SIZE 32
#define PEER_MAC_SIZE 32                     /* HMAC-SHA256 */
#define PEER_MAX 64                          /* connections, and members */
#define PEER_QUEUE_MAX 256                   /* frames queued to one peer before sends fail -EBUSY */

typedef enum PeerMsg {
        PEER_MSG_HELLO = 128, /* [T, 0, version, node id, listen address, nonce (bin 32)]        */
        PEER_MSG_AUTH,        /* [T, 0, mac (bin 32)]: HMAC(secret, label | their nonce | our nonce
                               *  | our node id), label "kactor-peer-dial" or "kactor-peer-accept" */
        PEER_MSG_PING,        /* [T, seq, from id, [member entries]]                               */
        PEER_MSG_ACK,         /* [T, seq, from id, [member entries]]                               */
        PEER_MSG_PING_REQ,    /* [T, seq, from id, target id, [member entries]]: ping target for me */
} PeerMsg;
