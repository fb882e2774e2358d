/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where actors go in a cluster, as pure logic (no I/O, no clock of its own): the caller builds the
 * candidates from its member table and passes the time in (docs/cluster.md).
 *
 * - Placement: an actor that does not fit on this node goes to the alive peer with the most room
 *   that fits it, counting the placements this node made there recently (held for a while, since
 *   the peer's own member entries may not show them yet).
 * - Replicas: rendezvous hashing; each node has a score for each actor, the highest scores keep its
 *   replicas, so a node that joins or leaves moves only the replicas it gains or held.
 * - Quorum: a node rebuilds the actors of nodes it thinks dead only while it sees a strict majority
 *   of the cluster alive, so that the two sides of a partition never both do.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kactor/value.h"

/* What an actor needs, or what a node has free. */
typedef struct PlacementRoom {
        uint32_t gpus;
        double cpus;
        uint64_t memory; /* bytes */
} PlacementRoom;

/* A peer an actor may go to: an alive member, with the room its member entry shows. */
typedef struct PlacementNode {
        uint64_t id;
        PlacementRoom free;
} PlacementNode;

/* How long a placement on a peer counts against its room: until its own entries, sent as soon as
 * its resources change and at least every other probe period, show it. */
#define PLACEMENT_HOLD_USEC (500 * UINT64_C(1000))
#define PLACEMENT_HOLDS_MAX 64

/* The placements this node made recently, the oldest overwritten first. */
typedef struct PlacementHolds {
        struct {
                uint64_t node;
                PlacementRoom taken;
                uint64_t until; /* usec, the caller's clock */
        } holds[PLACEMENT_HOLDS_MAX];
        size_t next;
} PlacementHolds;

/* Whether what an actor needs fits in a node's free room (CPUs are fractional: a rounding error
 * does not refuse an actor). */
bool placement_fits(const PlacementRoom *free, const PlacementRoom *need);

/* The node with the most free GPUs, then CPUs, among those where `need` fits once what this node
 * placed there since `now` - PLACEMENT_HOLD_USEC is taken off. 0 and *ret_index, or -ENOSPC when
 * it fits on none. */
int placement_choose_node(const PlacementNode *nodes, size_t n_nodes, const PlacementHolds *holds,
                          const PlacementRoom *need, uint64_t now, size_t *ret_index);
/* Counts `taken` against `node`'s room until now + PLACEMENT_HOLD_USEC. */
void placement_hold(PlacementHolds *holds, uint64_t node, const PlacementRoom *taken, uint64_t now);

/* Rendezvous hashing: the node's score for the actor; the highest scores keep its replicas. */
uint64_t placement_rendezvous_score(kactor_id actor, uint64_t node);
/* Sorts nodes by their score for the actor, the best first: the first R are its replicas. */
void placement_rendezvous_sort(kactor_id actor, uint64_t *nodes, size_t n_nodes);

/* A dead member stops counting for the quorum after this long. */
#define PLACEMENT_QUORUM_FORGET_USEC (10 * 60 * UINT64_C(1000000))

typedef enum QuorumState {
        QUORUM_ALIVE,
        QUORUM_SUSPECT,
        QUORUM_DEAD,
} QuorumState;

/* A member of the cluster (this node included) as the quorum rule sees it. */
typedef struct QuorumMember {
        QuorumState state;
        uint64_t state_since; /* usec, the caller's clock: when it entered its state */
        const char *address;  /* "ADDR:PORT" it listens on; may be empty or NULL */
} QuorumMember;

/* Whether the members alive are a strict majority of the cluster: the members alive or suspect,
 * and those dead for less than PLACEMENT_QUORUM_FORGET_USEC whose address no live member has taken
 * over (a node restarted on the same address replaces its old self). */
bool placement_has_quorum(const QuorumMember *members, size_t n_members, uint64_t now);
