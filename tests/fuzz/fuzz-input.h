/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the manager fuzz targets (fuzz-native.c, fuzz-peer-session.c) and the seed writer
 * (seeds.c) agree on: the fixed ids of the node under test and of the fuzzing peer, the cluster
 * secret, and the record format of an input.
 *
 * An input is a setup byte, then records: a header byte, a 16-bit little-endian length, and that
 * many payload bytes. The header's top two bits say what the record is (FUZZ_REC_*); its low two
 * bits pick one of the input's connections (fuzz-native). The event loop runs until idle after each
 * record.
 */

#include <stdint.h>

/* The node's id (manager_new() takes it from sd_id128_randomize(), which fuzz-manager.c fixes):
 * seeds can then name the node's objects and actors. */
#define FUZZ_NODE_HI UINT64_C(0x00000000000000a1)
#define FUZZ_NODE_ID "00000000000000a1"
/* The peer fuzz-peer-session plays, and the secret both know. */
#define FUZZ_PEER_HI UINT64_C(0x00000000000000b2)
#define FUZZ_PEER_ID "00000000000000b2"
#define FUZZ_PEER_SECRET "kactor-fuzz-cluster-secret-0123456789"
#define FUZZ_PEER_PORT 7946

/* Connections of fuzz-native are numbered from 1 in each input: the k-th one makes objects with ids
 * (FUZZ_NODE_HI, FUZZ_CONN_PREFIX(k) | seq). */
#define FUZZ_CONN_PREFIX(k) ((uint64_t) (k) << 40)
#define FUZZ_CONNS_MAX 4

/* fuzz-native's setup byte: bits 0-1, the number of connections less one; bit 2, connection 2 is
 * an outsider's (a uid that may not use the node manager). fuzz-peer-session's: bit 0, no
 * handshake (the records go to a connection that has not authenticated); bit 1, over TLS (else
 * the peers speak in clear, KACTOR_PEER_PLAINTEXT). */
#define FUZZ_SETUP_OUTSIDER 0x04
#define FUZZ_SETUP_NO_HANDSHAKE 0x01
#define FUZZ_SETUP_TLS 0x02

enum {
        FUZZ_REC_FRAME = 0, /* the payload of one frame: the length prefix is added */
        FUZZ_REC_RAW = 1,   /* bytes sent as they are */
        FUZZ_REC_CLOSE = 2, /* fuzz-native: the client closes the connection; fuzz-peer-session: the
                             * peer reconnects (a new connection, authenticated again) */
        FUZZ_REC_PAUSE = 3, /* fuzz-native: the client stops reading the connection's replies (until
                             * the end); fuzz-peer-session: the loop runs for a moment of real time */
};

#define FUZZ_REC_HEADER(kind, conn) ((uint8_t) ((kind) << 6 | ((conn) & 3)))
#define FUZZ_REC_KIND(h) ((h) >> 6)
#define FUZZ_REC_CONN(h) ((h) & 3)
