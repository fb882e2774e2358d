/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SWIM membership as pure logic (nodemgr/cluster/membership.c): probes, suspicion, death, refutation. */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "membership.h"

#define MS(x) ((uint64_t) (x) * 1000)

static const MembershipConfig config = {
        .probe_interval = MS(200),
        .probe_timeout = MS(100),
        .suspect_timeout = MS(1000),
        .indirect_k = 2,
};

static MemberUpdate update(const char *id, MemberState state, uint64_t inc) {
        return (MemberUpdate) { .id = id, .id_len = strlen(id), .address = "127.0.0.1:1", .address_len = 11,
                                .incarnation = inc, .state = state, .resources = { 4, 4, 1, 1 } };
}

static void setup3(Membership *ms) {
        cr_assert_eq(membership_init(ms, "self", "127.0.0.1:9", &config, 42), 0);
        MemberUpdate a = update("a", MEMBER_ALIVE, 0), b = update("b", MEMBER_ALIVE, 0);
        cr_assert_eq(membership_apply(ms, &a, "a", 0), 1);
        cr_assert_eq(membership_apply(ms, &b, "b", 0), 1);
        cr_assert_eq(ms->n_members, 3);
}

/* Runs the protocol to `until` acking nobody but those in `ackers`; returns the actions seen. */
static size_t run(Membership *ms, uint64_t from, uint64_t until, const char *ackers, size_t *n_ping_req) {
        size_t n_ping = 0;
        for (uint64_t t = from; t <= until; t += MS(10)) {
                MembershipAction act[MEMBERSHIP_ACTIONS_MAX];
                uint64_t next;
                size_t n = membership_tick(ms, t, act, &next);
                cr_assert_geq(next, t);
                for (size_t i = 0; i < n; i++) {
                        if (act[i].kind == MEMBERSHIP_SEND_PING) {
                                n_ping++;
                                if (strstr(ackers, act[i].target))
                                        membership_ack(ms, act[i].seq, act[i].target, t);
                        } else if (n_ping_req)
                                (*n_ping_req)++;
                }
        }
        return n_ping;
}

Test(membership, members_that_answer_stay_alive) {
        Membership ms;
        setup3(&ms);
        cr_assert_gt(run(&ms, 0, MS(5000), "a b", NULL), 10);
        cr_assert_eq(membership_find(&ms, "a", 1)->state, MEMBER_ALIVE);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_ALIVE);
        membership_done(&ms);
}

Test(membership, silent_member_is_suspected_after_indirect_probes_then_dead) {
        Membership ms;
        size_t n_ping_req = 0;
        setup3(&ms);
        run(&ms, 0, MS(700), "a", &n_ping_req);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_SUSPECT);
        cr_assert_gt(n_ping_req, 0, "indirect probes were sent before suspecting");
        cr_assert_eq(membership_find(&ms, "a", 1)->state, MEMBER_ALIVE);
        run(&ms, MS(710), MS(2000), "a", NULL);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_DEAD, "declared dead within the suspect timeout");
        membership_done(&ms);
}

Test(membership, suspected_node_refutes_with_a_higher_incarnation) {
        Membership ms;
        cr_assert_eq(membership_init(&ms, "self", "", &config, 1), 0);
        MemberUpdate u = update("self", MEMBER_SUSPECT, 0);
        ms.changed = false;
        cr_assert_eq(membership_apply(&ms, &u, "a", 0), 1);
        cr_assert_eq(membership_self(&ms)->incarnation, 1);
        cr_assert_eq(membership_self(&ms)->state, MEMBER_ALIVE);
        cr_assert(ms.changed);
        u = update("self", MEMBER_DEAD, 5);
        membership_apply(&ms, &u, "a", 0);
        cr_assert_eq(membership_self(&ms)->incarnation, 6);
        membership_done(&ms);
}

Test(membership, refutation_overrides_suspicion_and_death_only_when_newer) {
        Membership ms;
        setup3(&ms);
        MemberUpdate s = update("b", MEMBER_SUSPECT, 0);
        cr_assert_eq(membership_apply(&ms, &s, "a", MS(1)), 1);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_SUSPECT);
        MemberUpdate stale = update("b", MEMBER_ALIVE, 0);
        cr_assert_eq(membership_apply(&ms, &stale, "a", MS(2)), 0, "an old alive does not clear a suspicion");
        MemberUpdate refute = update("b", MEMBER_ALIVE, 1);
        cr_assert_eq(membership_apply(&ms, &refute, "b", MS(3)), 1);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_ALIVE);
        /* b spoke to us at 3 ms: a's verdict counts once the suspicion timeout has passed since. */
        MemberUpdate dead = update("b", MEMBER_DEAD, 1);
        membership_apply(&ms, &dead, "a", MS(1004));
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_DEAD);
        cr_assert_eq(membership_apply(&ms, &refute, "b", MS(1005)), 0, "dead beats alive of the same incarnation");
        MemberUpdate rejoin = update("b", MEMBER_ALIVE, 2);
        cr_assert_eq(membership_apply(&ms, &rejoin, "b", MS(1006)), 1);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_ALIVE);
        membership_done(&ms);
}

Test(membership, others_verdicts_do_not_beat_what_we_heard_ourselves) {
        Membership ms;
        setup3(&ms);
        MemberUpdate own = update("b", MEMBER_ALIVE, 0);
        cr_assert_eq(membership_apply(&ms, &own, "b", MS(100)), 0);
        /* a (cut off a while ago) says b is dead; b spoke to us 0.5 s ago: b stays alive. */
        MemberUpdate dead = update("b", MEMBER_DEAD, 0), suspect = update("b", MEMBER_SUSPECT, 0);
        cr_assert_eq(membership_apply(&ms, &dead, "a", MS(600)), 0);
        cr_assert_eq(membership_apply(&ms, &suspect, "a", MS(700)), 0);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_ALIVE);
        /* Silent for longer than the suspicion timeout: the verdict counts. */
        cr_assert_eq(membership_apply(&ms, &dead, "a", MS(1200)), 1);
        cr_assert_eq(membership_find(&ms, "b", 1)->state, MEMBER_DEAD);
        membership_done(&ms);
}

Test(membership, resources_come_from_the_member_itself) {
        Membership ms;
        setup3(&ms);
        MemberUpdate u = update("a", MEMBER_ALIVE, 0);
        u.resources = (MemberResources) { 8, 2, 4, 3 };
        membership_apply(&ms, &u, "b", 0);
        cr_assert_eq(membership_find(&ms, "a", 1)->resources.gpus_total, 1, "relayed resources are not taken");
        membership_apply(&ms, &u, "a", 0);
        cr_assert_eq(membership_find(&ms, "a", 1)->resources.gpus_total, 4);
        cr_assert_eq(membership_find(&ms, "a", 1)->resources.cpus_free, 2);
        membership_done(&ms);
}

Test(membership, table_is_capped_and_bad_entries_refused) {
        Membership ms;
        cr_assert_eq(membership_init(&ms, "self", "", &config, 1), 0);
        char id[16];
        int r = 0;
        for (int i = 0; i < MEMBERSHIP_MEMBERS_MAX + 5 && r >= 0; i++) {
                snprintf(id, sizeof(id), "n%d", i);
                MemberUpdate u = update(id, MEMBER_ALIVE, 0);
                r = membership_apply(&ms, &u, NULL, 0);
        }
        cr_assert_eq(r, -EBUSY);
        cr_assert_eq(ms.n_members, MEMBERSHIP_MEMBERS_MAX);
        MemberUpdate bad = update("x\n", MEMBER_ALIVE, 0);
        cr_assert_eq(membership_apply(&ms, &bad, NULL, 0), -EINVAL);
        bad = update("y", MEMBER_ALIVE, 0);
        bad.resources.gpus_free = 9;
        cr_assert_eq(membership_apply(&ms, &bad, NULL, 0), -EINVAL);
        membership_done(&ms);
}

Test(membership, entries_pack_and_parse_back) {
        Membership ms;
        setup3(&ms);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        cr_assert_eq(membership_pack(&ms, &pk), 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
        cr_assert_eq(u.data.via.array.size, 3);
        MemberUpdate mu;
        cr_assert_eq(member_update_parse(&u.data.via.array.ptr[1], &mu), 0);
        cr_assert_eq(mu.id_len, 1);
        cr_assert_eq(mu.id[0], 'a');
        cr_assert_eq(mu.state, MEMBER_ALIVE);
        cr_assert_eq(mu.resources.cpus_total, 4);
        cr_assert_eq(member_update_parse(&u.data, &mu), -EBADMSG);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
        membership_done(&ms);
}
