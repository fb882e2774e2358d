/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where actors go in a cluster, as pure logic (nodemgr/cluster/placement.c): the peer with room,
 * rendezvous replicas, the quorum rule. */

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "placement.h"

#define GIB (UINT64_C(1) << 30)
#define SEC UINT64_C(1000000)

static PlacementNode node(uint64_t id, uint32_t gpus, double cpus, uint64_t memory) {
        return (PlacementNode) { .id = id, .free = { .gpus = gpus, .cpus = cpus, .memory = memory } };
}

static kactor_id actor(uint64_t n) {
        return (kactor_id) { .hi = UINT64_C(0x1122334455667788), .lo = n };
}

Test(placement, placement_prefers_the_peer_with_the_most_room) {
        PlacementNode nodes[] = {
                node(1, 1, 8, 8 * GIB),
                node(2, 4, 2, 8 * GIB),
                node(3, 4, 6, 8 * GIB),
                node(4, 2, 16, 8 * GIB),
        };
        PlacementRoom need = { .gpus = 1, .cpus = 1, .memory = GIB };
        size_t i = SIZE_MAX;
        cr_assert_eq(placement_choose_node(nodes, 4, NULL, &need, 0, &i), 0);
        cr_assert_eq(nodes[i].id, 3, "the most free GPUs, then the most free CPUs");
}

Test(placement, placement_refuses_when_no_node_has_the_gpus) {
        PlacementNode nodes[] = { node(1, 1, 64, 64 * GIB), node(2, 2, 64, 64 * GIB) };
        PlacementRoom need = { .gpus = 3, .cpus = 1, .memory = GIB };
        size_t i = 77;
        cr_assert_eq(placement_choose_node(nodes, 2, NULL, &need, 0, &i), -ENOSPC);
        cr_assert_eq(i, 77, "no index is written on failure");
        cr_assert_eq(placement_choose_node(NULL, 0, NULL, &need, 0, &i), -ENOSPC, "no peers at all");
}

Test(placement, placement_skips_nodes_short_of_cpus_or_memory) {
        PlacementNode nodes[] = { node(1, 8, 0.5, 64 * GIB), node(2, 8, 64, GIB / 2), node(3, 0, 2, 2 * GIB) };
        PlacementRoom need = { .gpus = 0, .cpus = 1, .memory = GIB };
        size_t i;
        cr_assert_eq(placement_choose_node(nodes, 3, NULL, &need, 0, &i), 0);
        cr_assert_eq(nodes[i].id, 3, "the only node with both the CPUs and the memory, though it has no GPU");
}

Test(placement, placement_tolerates_rounding_in_fractional_cpus) {
        PlacementRoom free = { .gpus = 0, .cpus = 0.1 + 0.2, .memory = 0 };
        PlacementRoom need = { .gpus = 0, .cpus = 0.3, .memory = 0 };
        cr_assert(placement_fits(&free, &need));
        need.cpus = 0.31;
        cr_assert_not(placement_fits(&free, &need));
}

Test(placement, placement_counts_pending_placements) {
        PlacementNode nodes[] = { node(1, 4, 8, 8 * GIB), node(2, 3, 8, 8 * GIB) };
        PlacementRoom need = { .gpus = 2, .cpus = 1, .memory = GIB };
        PlacementHolds holds = {};
        uint64_t now = 100 * SEC;
        size_t i;

        cr_assert_eq(placement_choose_node(nodes, 2, &holds, &need, now, &i), 0);
        cr_assert_eq(nodes[i].id, 1);
        placement_hold(&holds, nodes[i].id, &need, now);
        /* Node 1 has not said yet that it is busier: this node counts what it sent there. */
        cr_assert_eq(placement_choose_node(nodes, 2, &holds, &need, now + 1, &i), 0);
        cr_assert_eq(nodes[i].id, 2, "node 1 has 2 GPUs left once the first actor is counted");
        placement_hold(&holds, nodes[i].id, &need, now + 1);
        cr_assert_eq(placement_choose_node(nodes, 2, &holds, &need, now + 2, &i), 0);
        cr_assert_eq(nodes[i].id, 1);
        placement_hold(&holds, nodes[i].id, &need, now + 2);
        cr_assert_eq(placement_choose_node(nodes, 2, &holds, &need, now + 3, &i), -ENOSPC,
                     "1 GPU left on each node");
}

Test(placement, pending_placements_stop_counting_after_the_hold) {
        PlacementNode nodes[] = { node(1, 1, 8, 8 * GIB) };
        PlacementRoom need = { .gpus = 1, .cpus = 1, .memory = GIB };
        PlacementHolds holds = {};
        size_t i;

        placement_hold(&holds, 1, &need, SEC);
        cr_assert_eq(placement_choose_node(nodes, 1, &holds, &need, SEC + PLACEMENT_HOLD_USEC, &i), -ENOSPC);
        cr_assert_eq(placement_choose_node(nodes, 1, &holds, &need, SEC + PLACEMENT_HOLD_USEC + 1, &i), 0,
                     "by then the node's own entries show the actor");
}

Test(placement, pending_placements_overwrite_the_oldest) {
        PlacementNode nodes[] = { node(1, 1, 1000, 1000 * GIB) };
        PlacementRoom gpu = { .gpus = 1, .cpus = 0, .memory = 0 }, cpu = { .gpus = 0, .cpus = 1, .memory = 0 };
        PlacementHolds holds = {};
        size_t i;

        placement_hold(&holds, 1, &gpu, SEC);
        cr_assert_eq(placement_choose_node(nodes, 1, &holds, &gpu, SEC, &i), -ENOSPC);
        for (size_t k = 0; k < PLACEMENT_HOLDS_MAX; k++)
                placement_hold(&holds, 1, &cpu, SEC);
        cr_assert_eq(placement_choose_node(nodes, 1, &holds, &gpu, SEC, &i), 0, "the table has a fixed size");
}

Test(placement, rendezvous_score_never_changes) {
        /* Every node computes the same replicas for an actor, whatever its version. */
        cr_assert_eq(placement_rendezvous_score(actor(42), UINT64_C(0xabcdef0123456789)),
                     UINT64_C(0x6eb3e0f2ec77fc7b));
}

Test(placement, rendezvous_sorts_the_best_score_first) {
        uint64_t nodes[] = { 11, 22, 33, 44, 55, 66, 77 };
        for (uint64_t a = 0; a < 50; a++) {
                placement_rendezvous_sort(actor(a), nodes, 7);
                for (size_t i = 1; i < 7; i++)
                        cr_assert_gt(placement_rendezvous_score(actor(a), nodes[i - 1]),
                                     placement_rendezvous_score(actor(a), nodes[i]));
        }
}

Test(placement, rendezvous_choice_is_stable_when_an_unrelated_node_leaves) {
        for (uint64_t a = 0; a < 200; a++) {
                uint64_t all[] = { 101, 102, 103, 104, 105, 106 };
                placement_rendezvous_sort(actor(a), all, 6);
                /* The node ranked last leaves: the first two (the replicas of R=2) stay, in order. */
                uint64_t left[] = { all[5], all[3], all[0], all[4], all[1] };
                placement_rendezvous_sort(actor(a), left, 5);
                cr_assert_eq(left[0], all[0]);
                cr_assert_eq(left[1], all[1]);
                /* A replica leaves: the other stays and the next in rank replaces it. */
                uint64_t without_first[] = { all[1], all[2], all[3], all[4], all[5] };
                placement_rendezvous_sort(actor(a), without_first, 5);
                cr_assert_eq(without_first[0], all[1]);
                cr_assert_eq(without_first[1], all[2]);
        }
}

Test(placement, rendezvous_spreads_replicas) {
        uint64_t ids[] = { 1, 2, 3, 4, 5 };
        unsigned first[5] = {};
        const unsigned n_actors = 5000;
        for (uint64_t a = 0; a < n_actors; a++) {
                uint64_t nodes[5];
                memcpy(nodes, ids, sizeof(ids));
                placement_rendezvous_sort(actor(a), nodes, 5);
                first[nodes[0] - 1]++;
        }
        for (size_t i = 0; i < 5; i++)
                cr_assert(first[i] > n_actors / 5 * 8 / 10 && first[i] < n_actors / 5 * 12 / 10,
                          "node %zu is the first replica of %u actors of %u", i + 1, first[i], n_actors);
}

static QuorumMember member(QuorumState state, const char *address) {
        return (QuorumMember) { .state = state, .state_since = 100 * SEC, .address = address };
}

Test(placement, quorum_requires_a_strict_majority) {
        QuorumMember ms[] = {
                member(QUORUM_ALIVE, "10.0.0.1:7000"),
                member(QUORUM_ALIVE, "10.0.0.2:7000"),
                member(QUORUM_DEAD, "10.0.0.3:7000"),
                member(QUORUM_DEAD, "10.0.0.4:7000"),
        };
        uint64_t now = 101 * SEC;
        cr_assert_not(placement_has_quorum(ms, 4, now), "2 of 4 is half, not a majority");
        cr_assert(placement_has_quorum(ms, 3, now), "2 of 3");
        cr_assert_not(placement_has_quorum(ms + 1, 2, now), "1 of 2");
        cr_assert(placement_has_quorum(ms, 1, now), "a node alone");
}

Test(placement, quorum_counts_suspects_as_members_not_as_alive) {
        QuorumMember ms[] = {
                member(QUORUM_ALIVE, "10.0.0.1:7000"),
                member(QUORUM_SUSPECT, "10.0.0.2:7000"),
                member(QUORUM_SUSPECT, "10.0.0.3:7000"),
        };
        cr_assert_not(placement_has_quorum(ms, 3, 101 * SEC));
        ms[1].state = QUORUM_ALIVE;
        cr_assert(placement_has_quorum(ms, 3, 101 * SEC));
}

Test(placement, quorum_forgets_members_dead_for_long) {
        QuorumMember ms[] = {
                member(QUORUM_ALIVE, "10.0.0.1:7000"),
                member(QUORUM_DEAD, "10.0.0.2:7000"),
                member(QUORUM_DEAD, "10.0.0.3:7000"),
        };
        cr_assert_not(placement_has_quorum(ms, 3, 100 * SEC + PLACEMENT_QUORUM_FORGET_USEC));
        cr_assert(placement_has_quorum(ms, 3, 100 * SEC + PLACEMENT_QUORUM_FORGET_USEC + 1),
                  "the cluster shrank to this node");
}

Test(placement, quorum_does_not_count_a_dead_member_restarted_on_its_address) {
        QuorumMember ms[] = {
                member(QUORUM_ALIVE, "10.0.0.1:7000"),
                member(QUORUM_DEAD, "10.0.0.2:7000"),
                member(QUORUM_ALIVE, "10.0.0.2:7000"), /* the same node, back with a new id */
                member(QUORUM_DEAD, "10.0.0.3:7000"),
        };
        cr_assert(placement_has_quorum(ms, 4, 101 * SEC), "2 alive of 3 members");
        ms[2].state = QUORUM_DEAD;
        cr_assert_not(placement_has_quorum(ms, 4, 101 * SEC), "a dead newcomer replaces no one");
        ms[1].address = "";
        ms[2].state = QUORUM_ALIVE;
        cr_assert_not(placement_has_quorum(ms, 4, 101 * SEC), "a member with no address is never replaced");
}
