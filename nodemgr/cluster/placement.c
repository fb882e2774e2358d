/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <string.h>

#include "hash-util.h"
#include "macro.h"
#include "placement.h"

bool placement_fits(const PlacementRoom *free, const PlacementRoom *need) {
        return need->gpus <= free->gpus && need->cpus <= free->cpus + 1e-9 && need->memory <= free->memory;
}

/* The node's room less what this node placed there and the node may not show yet. */
static PlacementRoom room_left(const PlacementNode *node, const PlacementHolds *holds, uint64_t now) {
        PlacementRoom room = node->free;
        if (!holds)
                return room;
        for (size_t k = 0; k < PLACEMENT_HOLDS_MAX; k++) {
                const PlacementRoom *taken = &holds->holds[k].taken;
                if (holds->holds[k].node != node->id || holds->holds[k].until < now)
                        continue;
                room.gpus = room.gpus > taken->gpus ? room.gpus - taken->gpus : 0;
                room.cpus = MAX(room.cpus - taken->cpus, 0.0);
                room.memory = room.memory > taken->memory ? room.memory - taken->memory : 0;
        }
        return room;
}

int placement_choose_node(const PlacementNode *nodes, size_t n_nodes, const PlacementHolds *holds,
                          const PlacementRoom *need, uint64_t now, size_t *ret_index) {
        PlacementRoom best_room = {};
        size_t best = SIZE_MAX;

        for (size_t i = 0; i < n_nodes; i++) {
                PlacementRoom room = room_left(&nodes[i], holds, now);
                if (!placement_fits(&room, need))
                        continue;
                if (best == SIZE_MAX || room.gpus > best_room.gpus ||
                    (room.gpus == best_room.gpus && room.cpus > best_room.cpus)) {
                        best = i;
                        best_room = room;
                }
        }
        if (best == SIZE_MAX)
                return -ENOSPC;
        *ret_index = best;
        return 0;
}

void placement_hold(PlacementHolds *holds, uint64_t node, const PlacementRoom *taken, uint64_t now) {
        holds->holds[holds->next++ % PLACEMENT_HOLDS_MAX] = (typeof(holds->holds[0])) {
                .node = node,
                .taken = *taken,
                .until = now + PLACEMENT_HOLD_USEC,
        };
}

uint64_t placement_rendezvous_score(kactor_id actor, uint64_t node) {
        /* The score must not change: every node computes the same replica list for an actor. */
        return hash_mix64(actor.hi ^ hash_mix64(actor.lo ^ hash_mix64(node)));
}

void placement_rendezvous_sort(kactor_id actor, uint64_t *nodes, size_t n_nodes) {
        /* An insertion sort: a cluster has few members (MEMBERSHIP_MEMBERS_MAX). Distinct nodes
         * never tie, since the score is a bijection of the node for a given actor. */
        for (size_t i = 1; i < n_nodes; i++) {
                uint64_t node = nodes[i], score = placement_rendezvous_score(actor, node);
                size_t k = i;
                for (; k > 0 && placement_rendezvous_score(actor, nodes[k - 1]) < score; k--)
                        nodes[k] = nodes[k - 1];
                nodes[k] = node;
        }
}

static bool address_taken_over(const QuorumMember *members, size_t n_members, const char *address) {
        if (!address || !*address)
                return false;
        for (size_t k = 0; k < n_members; k++)
                if (members[k].state != QUORUM_DEAD && members[k].address && streq(members[k].address, address))
                        return true;
        return false;
}

bool placement_has_quorum(const QuorumMember *members, size_t n_members, uint64_t now) {
        size_t alive = 0, voters = 0;

        for (size_t i = 0; i < n_members; i++) {
                const QuorumMember *mb = &members[i];
                if (mb->state == QUORUM_ALIVE)
                        alive++;
                if (mb->state != QUORUM_DEAD) {
                        voters++;
                        continue;
                }
                if (now - mb->state_since > PLACEMENT_QUORUM_FORGET_USEC)
                        continue;
                if (!address_taken_over(members, n_members, mb->address))
                        voters++;
        }
        return alive * 2 > voters;
}
