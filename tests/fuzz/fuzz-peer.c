/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libFuzzer target for what a node manager does with bytes from a peer before and after it is
 * authenticated (nodemgr/cluster/peer.c): the input is cut into chunks appended to a Buffer, every complete
 * frame under the peer size cap is parsed with frame_parse() and checked with peer_message_parse(),
 * and the member entries of membership messages are applied to a membership table
 * (membership_apply()), which is then ticked, packed and parsed back. Frames of remote actors and
 * lineage replication are checked with remote_message_parse() (nodemgr/cluster/remote-proto.c).
 *
 * Checks besides sanitizers: the table never exceeds its cap, this node stays first and alive, and
 * every packed entry parses back.
 *
 * Built by tests/fuzz/run.sh with clang -fsanitize=fuzzer,address,undefined.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership.h"
#include "peer-proto.h"
#include "proto.h"
#include "remote-proto.h"

#define CHECK(cond)                                                                                         \
        do {                                                                                                \
                if (!(cond)) {                                                                              \
                        fprintf(stderr, "fuzz-peer: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_table(Membership *ms) {
        CHECK(ms->n_members >= 1 && ms->n_members <= MEMBERSHIP_MEMBERS_MAX);
        CHECK(strcmp(membership_self(ms)->id, "self") == 0);
        CHECK(membership_self(ms)->state == MEMBER_ALIVE);

        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        CHECK(membership_pack(ms, &pk) == 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        CHECK(msgpack_unpack_next(&u, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS);
        CHECK(u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == ms->n_members);
        for (uint32_t i = 0; i < u.data.via.array.size; i++) {
                MemberUpdate mu;
                CHECK(member_update_parse(&u.data.via.array.ptr[i], &mu) == 0);
        }
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
}

/* What a parsed remote message promises to its handlers. */
static void check_remote(const RemoteMessage *m) {
        CHECK(m->type >= PEER_MSG_DATA_FIRST && m->type < _PEER_MSG_DATA_END);
        CHECK(m->n_replicas <= REMOTE_REPLICAS_MAX);
        CHECK(!m->text || m->text_len <= 4096);
        if (m->type == PEER_MSG_CREATE || m->type == PEER_MSG_REPL_CREATE)
                CHECK(m->spec.module && *m->spec.module && m->spec.class_name && *m->spec.class_name);
        if (m->type == PEER_MSG_REPL_RECORD)
                CHECK(m->record.index > 0 && m->record.method);
        if (m->ids)
                for (uint32_t i = 0; i < m->ids->via.array.size; i++)
                        (void) remote_message_id(m, i);
        if (m->type == PEER_MSG_RESULT)
                CHECK((m->code == 0) == (m->body != NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const MembershipConfig config = { .probe_interval = 200000, .probe_timeout = 100000,
                                                 .suspect_timeout = 1000000, .indirect_k = 2 };
        Membership ms;
        Buffer in = {};
        Frame f;
        uint64_t now = 1;

        CHECK(membership_init(&ms, "self", "127.0.0.1:1", &config, 7) == 0);
        frame_init(&f);

        /* The first byte picks the chunk size, as reads of various sizes would cut the stream. */
        size_t chunk = size > 0 ? (size_t) data[0] % 61 + 1 : 1;
        for (size_t off = size > 0 ? 1 : 0; off < size; off += chunk) {
                size_t n = size - off < chunk ? size - off : chunk;
                if (buffer_append(&in, data + off, n) < 0)
                        break;
                for (;;) {
                        if (buffer_size(&in) < PROTO_HEADER_SIZE)
                                break;
                        const uint8_t *h = (const uint8_t *) in.data + in.start;
                        uint32_t len = (uint32_t) h[0] | (uint32_t) h[1] << 8 | (uint32_t) h[2] << 16 |
                                       (uint32_t) h[3] << 24;
                        if (len > PEER_FRAME_MAX)
                                goto done; /* the peer would be dropped */
                        const char *payload;
                        size_t plen;
                        int r = frame_peek(&in, &payload, &plen);
                        if (r < 0)
                                goto done;
                        if (r == 0)
                                break;
                        CHECK(plen == len);
                        if (frame_parse(&f, payload, plen) >= 0 && f.type >= PEER_MSG_DATA_FIRST) {
                                RemoteMessage rm;
                                if (remote_message_parse(&f, &rm) >= 0) {
                                        check_remote(&rm);
                                        remote_message_done(&rm);
                                }
                        } else if (frame_parse(&f, payload, plen) >= 0) {
                                PeerMessage pm;
                                if (peer_message_parse(&f, &pm) >= 0 && pm.members) {
                                        CHECK(pm.members->type == MSGPACK_OBJECT_ARRAY);
                                        for (uint32_t k = 0; k < pm.members->via.array.size; k++) {
                                                MemberUpdate u;
                                                CHECK(member_update_parse(&pm.members->via.array.ptr[k], &u) == 0);
                                                int ar = membership_apply(&ms, &u, "peer", now);
                                                CHECK(ar >= 0 || ar == -EBUSY || ar == -EINVAL || ar == -ENOMEM);
                                        }
                                        membership_ack(&ms, pm.seq, "peer", now);
                                }
                        }
                        frame_done(&f);
                        frame_init(&f);
                        buffer_consume(&in, PROTO_HEADER_SIZE + plen);

                        MembershipAction act[MEMBERSHIP_ACTIONS_MAX];
                        uint64_t next;
                        now += 50000;
                        size_t na = membership_tick(&ms, now, act, &next);
                        CHECK(na <= MEMBERSHIP_ACTIONS_MAX && next >= now);
                        check_table(&ms);
                }
        }
done:
        check_table(&ms);
        frame_done(&f);
        buffer_free(&in);
        membership_done(&ms);
        return 0;
}
