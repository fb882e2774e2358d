/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "membership.h"
#include "proto.h"

static const char *const member_state_table[_MEMBER_STATE_MAX] = {
        [MEMBER_ALIVE] = "alive",
        [MEMBER_SUSPECT] = "suspect",
        [MEMBER_DEAD] = "dead",
};

const char *member_state_to_string(MemberState s) {
        return s >= 0 && s < _MEMBER_STATE_MAX ? member_state_table[s] : "unknown";
}

int member_state_from_string(const char *s, size_t len) {
        for (int i = 0; i < _MEMBER_STATE_MAX; i++)
                if (strlen(member_state_table[i]) == len && memcmp(member_state_table[i], s, len) == 0)
                        return i;
        return -EINVAL;
}

static uint64_t rng_next(Membership *ms) {
        /* xorshift64*: spreads probe targets and ping-req helpers; not a security matter. */
        uint64_t x = ms->rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        ms->rng = x;
        return x * UINT64_C(2685821657736338717);
}

static bool valid_string(const char *s, size_t len, size_t max) {
        if (len > max)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

static bool valid_resources(const MemberResources *r) {
        return isfinite(r->cpus_total) && isfinite(r->cpus_free) && r->cpus_total >= 0 && r->cpus_free >= 0 &&
               r->cpus_total <= 1e6 && r->cpus_free <= 1e6 && r->gpus_total <= 1024 && r->gpus_free <= r->gpus_total &&
               r->memory_free <= r->memory_total;
}

int membership_init(Membership *ms, const char *self_id, const char *self_address, const MembershipConfig *config,
                    uint64_t seed) {
        if (!self_id || !*self_id || !valid_string(self_id, strlen(self_id), MEMBER_ID_MAX))
                return -EINVAL;
        *ms = (Membership) {
                .config = *config,
                .n_members = 1,
                .next_seq = 1,
                .rng = seed | 1,
        };
        if (ms->config.probe_interval == 0)
                ms->config.probe_interval = MEMBERSHIP_PROBE_INTERVAL_DEFAULT;
        if (ms->config.probe_timeout == 0 || ms->config.probe_timeout >= ms->config.probe_interval)
                ms->config.probe_timeout = ms->config.probe_interval / 2;
        if (ms->config.suspect_timeout == 0)
                ms->config.suspect_timeout = MEMBERSHIP_SUSPECT_TIMEOUT_DEFAULT;
        if (ms->config.indirect_k == 0)
                ms->config.indirect_k = MEMBERSHIP_INDIRECT_K_DEFAULT;
        Member *self = &ms->members[0];
        self->id = strdup(self_id);
        self->address = strdup(self_address ?: "");
        if (!self->id || !self->address) {
                membership_done(ms);
                return -ENOMEM;
        }
        self->state = MEMBER_ALIVE;
        return 0;
}

void membership_resurrected_clear(Membership *ms) {
        for (size_t i = 0; i < ms->n_resurrected; i++)
                free(ms->resurrected[i]);
        ms->n_resurrected = 0;
}

void membership_done(Membership *ms) {
        membership_resurrected_clear(ms);
        for (size_t i = 0; i < ms->n_members; i++) {
                free(ms->members[i].id);
                free(ms->members[i].address);
        }
        ms->n_members = 0;
}

Member *membership_find(Membership *ms, const char *id, size_t len) {
        for (size_t i = 0; i < ms->n_members; i++)
                if (strlen(ms->members[i].id) == len && memcmp(ms->members[i].id, id, len) == 0)
                        return &ms->members[i];
        return NULL;
}

void membership_set_self_resources(Membership *ms, const MemberResources *res) {
        ms->members[0].resources = *res;
}

static void member_set_state(Membership *ms, Member *mb, MemberState state, uint64_t incarnation, uint64_t now) {
        if (mb->state != state || mb->incarnation != incarnation)
                ms->changed = true;
        if (mb->state != state)
                mb->state_since = now;
        mb->state = state;
        mb->incarnation = incarnation;
}

int membership_apply(Membership *ms, const MemberUpdate *u, const char *from, uint64_t now) {
        if (!u->id || u->id_len == 0 || !valid_string(u->id, u->id_len, MEMBER_ID_MAX) ||
            !valid_string(u->address ?: "", u->address_len, MEMBER_ADDRESS_MAX) || u->state < 0 ||
            u->state >= _MEMBER_STATE_MAX || !valid_resources(&u->resources))
                return -EINVAL;

        Member *self = membership_self(ms);
        Member *mb = membership_find(ms, u->id, u->id_len);
        if (mb == self) {
                /* Refutation: whoever thinks we are suspect or dead learns a newer incarnation. */
                if (u->state != MEMBER_ALIVE && u->incarnation >= self->incarnation) {
                        if (u->state == MEMBER_DEAD)
                                ms->declared_dead = true;
                        self->incarnation = u->incarnation + 1;
                        ms->changed = true;
                        return 1;
                }
                if (u->incarnation > self->incarnation) { /* a past life of ours: stay ahead of it */
                        self->incarnation = u->incarnation + 1;
                        ms->changed = true;
                        return 1;
                }
                return 0;
        }

        bool own = from && strlen(from) == u->id_len && memcmp(from, u->id, u->id_len) == 0;
        if (!mb) {
                if (ms->n_members >= MEMBERSHIP_MEMBERS_MAX)
                        return -EBUSY;
                mb = &ms->members[ms->n_members];
                *mb = (Member) {
                        .id = strndup(u->id, u->id_len),
                        .address = strndup(u->address ?: "", u->address_len),
                        .incarnation = u->incarnation,
                        .state = u->state,
                        .resources = u->resources,
                        .state_since = now,
                        .last_heard = own ? now : 0,
                };
                if (!mb->id || !mb->address) {
                        free(mb->id);
                        free(mb->address);
                        return -ENOMEM;
                }
                ms->n_members++;
                ms->changed = true;
                return 1;
        }

        int changed = 0;
        if (own)
                mb->last_heard = now;
        /* Someone else says it is suspect or dead, but it spoke to us itself within the suspicion
         * timeout: our own evidence wins (our probes will tell if it is gone). A node that was cut
         * off and comes back with stale verdicts does not make the healthy side doubt itself. */
        bool heard = !own && mb->last_heard > 0 && now - mb->last_heard < ms->config.suspect_timeout;
        if (own) {
                if (memcmp(&mb->resources, &u->resources, sizeof(u->resources)) != 0) {
                        mb->resources = u->resources;
                        changed = 1;
                }
                if (u->address_len > 0 &&
                    (strlen(mb->address) != u->address_len || memcmp(mb->address, u->address, u->address_len) != 0)) {
                        char *a = strndup(u->address, u->address_len);
                        if (a) {
                                free(mb->address);
                                mb->address = a;
                                changed = 1;
                        }
                }
        }

        bool apply = false;
        switch (u->state) {
        case MEMBER_ALIVE:
                /* Alive overrides suspect and dead only with a newer incarnation (a refutation). */
                apply = u->incarnation > mb->incarnation;
                break;
        case MEMBER_SUSPECT:
                apply = !heard && ((mb->state == MEMBER_ALIVE && u->incarnation >= mb->incarnation) ||
                                   u->incarnation > mb->incarnation);
                break;
        case MEMBER_DEAD:
                apply = !heard &&
                        (mb->state != MEMBER_DEAD ? u->incarnation >= mb->incarnation : u->incarnation > mb->incarnation);
                break;
        default:
                break;
        }
        if (apply) {
                if (mb->state == MEMBER_DEAD && u->state == MEMBER_ALIVE &&
                    ms->n_resurrected < MEMBERSHIP_RESURRECTED_MAX) {
                        /* Back from the dead: it is told, in case it missed its death (a freeze:
                         * its refutation of the suspicion outran the news). */
                        ms->resurrected[ms->n_resurrected] = strdup(mb->id);
                        if (ms->resurrected[ms->n_resurrected])
                                ms->resurrected_incarnation[ms->n_resurrected++] = mb->incarnation;
                }
                member_set_state(ms, mb, u->state, u->incarnation, now);
                changed = 1;
        }
        return changed;
}

void membership_ack(Membership *ms, uint64_t seq, const char *from, uint64_t now) {
        if (ms->probing && seq == ms->probe_seq)
                ms->probe_acked = true;
}

static bool probeable(const Member *mb) {
        return mb->state != MEMBER_DEAD;
}

static size_t pick_target(Membership *ms) {
        /* Round robin over the live members, so each is probed within n periods. */
        for (size_t k = 0; k < ms->n_members; k++) {
                ms->probe_cursor = ms->probe_cursor + 1 >= ms->n_members ? 1 : ms->probe_cursor + 1;
                if (ms->probe_cursor > 0 && ms->probe_cursor < ms->n_members &&
                    probeable(&ms->members[ms->probe_cursor]))
                        return ms->probe_cursor;
        }
        return 0;
}

size_t membership_tick(Membership *ms, uint64_t now, MembershipAction *ret_actions, uint64_t *ret_next) {
        size_t n = 0;
        uint64_t next = now + ms->config.probe_interval;

        /* Suspects whose time ran out are dead. */
        for (size_t i = 1; i < ms->n_members; i++) {
                Member *mb = &ms->members[i];
                if (mb->state != MEMBER_SUSPECT)
                        continue;
                uint64_t deadline = mb->state_since + ms->config.suspect_timeout;
                if (now >= deadline)
                        member_set_state(ms, mb, MEMBER_DEAD, mb->incarnation, now);
                else if (deadline < next)
                        next = deadline;
        }

        if (ms->probing) {
                Member *t = ms->probe_target < ms->n_members ? &ms->members[ms->probe_target] : NULL;
                uint64_t timeout = ms->probe_started + ms->config.probe_timeout;
                uint64_t end = ms->probe_started + ms->config.probe_interval;

                /* An ack does not clear a suspicion: only the member's own refutation (a newer
                 * incarnation) does, and the ping that was acked told it it is suspected. */
                if (t && !ms->probe_acked && now >= end) {
                        if (t->state == MEMBER_ALIVE)
                                member_set_state(ms, t, MEMBER_SUSPECT, t->incarnation, now);
                } else if (t && !ms->probe_acked && now >= timeout && !ms->probe_indirect_sent) {
                        /* Indirect probes through k random other live members. */
                        size_t candidates[MEMBERSHIP_MEMBERS_MAX], nc = 0;
                        for (size_t i = 1; i < ms->n_members; i++)
                                if (i != ms->probe_target && ms->members[i].state == MEMBER_ALIVE)
                                        candidates[nc++] = i;
                        for (unsigned k = 0; k < ms->config.indirect_k && nc > 0 && n < MEMBERSHIP_ACTIONS_MAX; k++) {
                                size_t j = rng_next(ms) % nc;
                                ret_actions[n++] = (MembershipAction) {
                                        .kind = MEMBERSHIP_SEND_PING_REQ,
                                        .target = t->id,
                                        .via = ms->members[candidates[j]].id,
                                        .seq = ms->probe_seq,
                                };
                                candidates[j] = candidates[--nc];
                        }
                        ms->probe_indirect_sent = true;
                }
                if (now >= end || ms->probe_acked || !t)
                        ms->probing = false;
                else if (!ms->probe_indirect_sent && timeout < next)
                        next = timeout;
                else if (end < next)
                        next = end;
        }

        if (!ms->probing && now >= ms->next_probe) {
                size_t target = pick_target(ms);
                ms->next_probe = now + ms->config.probe_interval;
                /* Every tenth period, a dead member is pinged too (no ack is waited for): one that
                 * was only cut off hears it and refutes, so the two sides of a healed partition
                 * find each other again. */
                if (++ms->periods % MEMBERSHIP_DEAD_PING_PERIODS == 0 && n < MEMBERSHIP_ACTIONS_MAX) {
                        size_t dead[MEMBERSHIP_MEMBERS_MAX], nd = 0;
                        for (size_t i = 1; i < ms->n_members; i++)
                                if (ms->members[i].state == MEMBER_DEAD)
                                        dead[nd++] = i;
                        if (nd > 0)
                                ret_actions[n++] = (MembershipAction) {
                                        .kind = MEMBERSHIP_SEND_PING,
                                        .target = ms->members[dead[rng_next(ms) % nd]].id,
                                        .seq = 0,
                                };
                }
                if (target > 0 && n < MEMBERSHIP_ACTIONS_MAX) {
                        ms->probing = true;
                        ms->probe_target = target;
                        ms->probe_seq = ms->next_seq++;
                        ms->probe_started = now;
                        ms->probe_acked = false;
                        ms->probe_indirect_sent = false;
                        ret_actions[n++] = (MembershipAction) {
                                .kind = MEMBERSHIP_SEND_PING,
                                .target = ms->members[target].id,
                                .seq = ms->probe_seq,
                        };
                        if (now + ms->config.probe_timeout < next)
                                next = now + ms->config.probe_timeout;
                }
        } else if (!ms->probing && ms->next_probe < next)
                next = ms->next_probe;

        *ret_next = next;
        return n;
}

int membership_pack(const Membership *ms, msgpack_packer *pk) {
        int r = msgpack_pack_array(pk, ms->n_members);
        for (size_t i = 0; r >= 0 && i < ms->n_members; i++) {
                const Member *mb = &ms->members[i];
                r = msgpack_pack_array(pk, 10);
                if (r >= 0)
                        r = pack_cstr(pk, mb->id);
                if (r >= 0)
                        r = pack_cstr(pk, mb->address);
                if (r >= 0)
                        r = msgpack_pack_uint64(pk, mb->incarnation);
                if (r >= 0)
                        r = pack_cstr(pk, member_state_to_string(mb->state));
                if (r >= 0)
                        r = msgpack_pack_double(pk, mb->resources.cpus_total);
                if (r >= 0)
                        r = msgpack_pack_double(pk, mb->resources.cpus_free);
                if (r >= 0)
                        r = msgpack_pack_uint32(pk, mb->resources.gpus_total);
                if (r >= 0)
                        r = msgpack_pack_uint32(pk, mb->resources.gpus_free);
                if (r >= 0)
                        r = msgpack_pack_uint64(pk, mb->resources.memory_total);
                if (r >= 0)
                        r = msgpack_pack_uint64(pk, mb->resources.memory_free);
        }
        return r < 0 ? -ENOMEM : 0;
}

static int object_double(const msgpack_object *o, double *ret) {
        if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
                *ret = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                *ret = (double) o->via.u64;
        else
                return -EBADMSG;
        return 0;
}

static int object_u32(const msgpack_object *o, uint32_t *ret) {
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t) o->via.u64;
        return 0;
}

int member_update_parse(const msgpack_object *o, MemberUpdate *ret) {
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 10)
                return -EBADMSG;
        const msgpack_object *f = o->via.array.ptr;
        MemberUpdate u = {};
        if (f[0].type != MSGPACK_OBJECT_STR || f[1].type != MSGPACK_OBJECT_STR ||
            f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[3].type != MSGPACK_OBJECT_STR)
                return -EBADMSG;
        u.id = f[0].via.str.ptr;
        u.id_len = f[0].via.str.size;
        u.address = f[1].via.str.ptr;
        u.address_len = f[1].via.str.size;
        u.incarnation = f[2].via.u64;
        int s = member_state_from_string(f[3].via.str.ptr, f[3].via.str.size);
        if (s < 0)
                return -EBADMSG;
        u.state = s;
        if (object_double(&f[4], &u.resources.cpus_total) < 0 || object_double(&f[5], &u.resources.cpus_free) < 0 ||
            object_u32(&f[6], &u.resources.gpus_total) < 0 || object_u32(&f[7], &u.resources.gpus_free) < 0 ||
            f[8].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[9].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return -EBADMSG;
        u.resources.memory_total = f[8].via.u64;
        u.resources.memory_free = f[9].via.u64;
        if (u.id_len == 0 || !valid_string(u.id, u.id_len, MEMBER_ID_MAX) ||
            !valid_string(u.address, u.address_len, MEMBER_ADDRESS_MAX) || !valid_resources(&u.resources))
                return -EBADMSG;
        *ret = u;
        return 0;
}

int peer_message_parse(const Frame *f, PeerMessage *ret) {
        PeerMessage pm = { .type = f->type, .seq = f->id };
        const msgpack_object *o;
        int r;

        switch (f->type) {
        case PEER_MSG_HELLO:
                r = frame_field_u64(f, 0, &pm.version);
                if (r >= 0)
                        r = frame_field_str(f, 1, &pm.from, &pm.from_len);
                if (r >= 0)
                        r = frame_field_str(f, 2, &pm.address, &pm.address_len);
                if (r < 0)
                        return -EBADMSG;
                o = frame_field(f, 3);
                if (!o || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != PEER_NONCE_SIZE)
                        return -EBADMSG;
                pm.blob = (const uint8_t *) o->via.bin.ptr;
                if (pm.from_len == 0 || !valid_string(pm.from, pm.from_len, MEMBER_ID_MAX) ||
                    !valid_string(pm.address, pm.address_len, MEMBER_ADDRESS_MAX))
                        return -EBADMSG;
                break;
        case PEER_MSG_AUTH:
                o = frame_field(f, 0);
                if (!o || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != PEER_MAC_SIZE)
                        return -EBADMSG;
                pm.blob = (const uint8_t *) o->via.bin.ptr;
                break;
        case PEER_MSG_PING:
        case PEER_MSG_ACK:
        case PEER_MSG_PING_REQ: {
                uint32_t i = 0;
                if (frame_field_str(f, i++, &pm.from, &pm.from_len) < 0 || pm.from_len == 0 ||
                    !valid_string(pm.from, pm.from_len, MEMBER_ID_MAX))
                        return -EBADMSG;
                if (f->type == PEER_MSG_PING_REQ &&
                    (frame_field_str(f, i++, &pm.target, &pm.target_len) < 0 || pm.target_len == 0 ||
                     !valid_string(pm.target, pm.target_len, MEMBER_ID_MAX)))
                        return -EBADMSG;
                o = frame_field(f, i);
                if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > MEMBERSHIP_MEMBERS_MAX)
                        return -EBADMSG;
                for (uint32_t k = 0; k < o->via.array.size; k++) {
                        MemberUpdate u;
                        if (member_update_parse(&o->via.array.ptr[k], &u) < 0)
                                return -EBADMSG;
                }
                pm.members = o;
                break;
        }
        case PEER_MSG_DEAD_NOTICE:
                if (frame_field_str(f, 0, &pm.from, &pm.from_len) < 0 || pm.from_len == 0 ||
                    !valid_string(pm.from, pm.from_len, MEMBER_ID_MAX) || frame_field_u64(f, 1, &pm.incarnation) < 0)
                        return -EBADMSG;
                o = frame_field(f, 2);
                if (!o || o->type != MSGPACK_OBJECT_ARRAY)
                        return -EBADMSG;
                for (uint32_t k = 0; k < o->via.array.size; k++) {
                        const msgpack_object *e = &o->via.array.ptr[k];
                        kactor_id id;
                        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
                            codec_object_to_id(&e->via.array.ptr[0], CODEC_EXT_ACTOR, &id) < 0 ||
                            e->via.array.ptr[1].type != MSGPACK_OBJECT_STR ||
                            !valid_string(e->via.array.ptr[1].via.str.ptr, e->via.array.ptr[1].via.str.size,
                                          MEMBER_ID_MAX))
                                return -EBADMSG;
                }
                pm.moved = o;
                break;
        default:
                return -EBADMSG;
        }
        *ret = pm;
        return 0;
}
