/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SWIM-style cluster membership (Das, Gupta, Motivala 2002), as pure logic: no I/O and no clock of
 * its own. The caller feeds it the time, the messages that arrived (acks, member entries) and asks
 * it what to send (membership_tick()). cluster glue is in peer.c.
 *
 * Each protocol period (probe interval) one member is probed with a direct ping; without an ack
 * within the probe timeout, k other members are asked to ping it (ping-req); without any ack by the
 * end of the period it becomes suspect. A suspect not refuted within the suspect timeout is dead.
 * A member that hears it is suspected (or dead) raises its incarnation and announces itself alive,
 * which overrides the suspicion. Member entries are piggybacked on every ping and ack.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "peer-proto.h"
#include "proto.h"

typedef enum MemberState {
        MEMBER_ALIVE,
        MEMBER_SUSPECT,
        MEMBER_DEAD,
        _MEMBER_STATE_MAX,
} MemberState;

const char *member_state_to_string(MemberState s);
int member_state_from_string(const char *s, size_t len); /* -EINVAL when unknown */

typedef struct MemberResources {
        double cpus_total, cpus_free;
        uint32_t gpus_total, gpus_free;
        uint64_t memory_total, memory_free; /* bytes: the machine's, and what it has available */
} MemberResources;

typedef struct Member {
        char *id;
        char *address;      /* "ADDR:PORT" it listens on; may be empty */
        uint64_t incarnation;
        MemberState state;
        MemberResources resources;
        uint64_t state_since; /* usec: when it entered its state */
        uint64_t last_heard;  /* usec: when it last spoke to us itself (0: never) */
} Member;

/* One member entry as it travels: borrowed strings. */
typedef struct MemberUpdate {
        const char *id;
        size_t id_len;
        const char *address;
        size_t address_len;
        uint64_t incarnation;
        MemberState state;
        MemberResources resources;
} MemberUpdate;

typedef struct MembershipConfig {
        uint64_t probe_interval; /* usec */
        uint64_t probe_timeout;  /* usec */
        uint64_t suspect_timeout;
        unsigned indirect_k;
} MembershipConfig;

#define MEMBERSHIP_INDIRECT_K_DEFAULT 2
#define MEMBERSHIP_MEMBERS_MAX 64
#define MEMBER_ID_MAX 64
#define MEMBERSHIP_RESURRECTED_MAX 8
#define MEMBERSHIP_DEAD_PING_PERIODS 10
#define MEMBER_ADDRESS_MAX 128

typedef struct Membership {
        MembershipConfig config;
        Member members[MEMBERSHIP_MEMBERS_MAX]; /* [0] is this node */
        size_t n_members;
        bool changed;        /* a member was added or changed state or incarnation: cleared by the caller */
        bool declared_dead;  /* we heard we were declared dead (and refuted it): cleared by the caller */
        /* Members that came back from dead (a newer incarnation): the caller tells each of them
         * (DEAD_NOTICE) and clears the list. */
        char *resurrected[MEMBERSHIP_RESURRECTED_MAX];
        uint64_t resurrected_incarnation[MEMBERSHIP_RESURRECTED_MAX];
        size_t n_resurrected;

        /* The probe in progress. */
        bool probing;
        size_t probe_target;  /* index */
        uint64_t probe_seq;
        uint64_t probe_started;
        bool probe_acked;
        bool probe_indirect_sent;
        uint64_t next_probe;
        size_t probe_cursor;
        uint64_t periods;
        uint64_t next_seq;
        uint64_t rng;
} Membership;

/* What membership_tick() asks the caller to send. */
typedef enum MembershipActionKind {
        MEMBERSHIP_SEND_PING,     /* ping `target` with `seq` */
        MEMBERSHIP_SEND_PING_REQ, /* ask `via` to ping `target` for us, with `seq` */
} MembershipActionKind;

typedef struct MembershipAction {
        MembershipActionKind kind;
        const char *target;
        const char *via;
        uint64_t seq;
} MembershipAction;

#define MEMBERSHIP_ACTIONS_MAX 8

/* Sets up with this node as the only member (alive, incarnation 0). 0 or -EINVAL/-ENOMEM. */
int membership_init(Membership *ms, const char *self_id, const char *self_address, const MembershipConfig *config,
                    uint64_t seed);
void membership_done(Membership *ms);
void membership_resurrected_clear(Membership *ms);


Member *membership_find(Membership *ms, const char *id, size_t len);
static inline Member *membership_self(Membership *ms) {
        return &ms->members[0];
}
void membership_set_self_resources(Membership *ms, const MemberResources *res);

/*
 * Applies a member entry heard from `from` (NULL: unknown). Entries about this node that say suspect
 * or dead are refuted (our incarnation goes above theirs). Resources are taken from the member's
 * own entries only. Returns 1 when something changed, 0 when not, -EBUSY when the table is full,
 * -EINVAL for an invalid entry.
 */
int membership_apply(Membership *ms, const MemberUpdate *u, const char *from, uint64_t now);

/* An ack for seq from `from` (direct, or relayed through a ping-req). Marks `from` alive if known. */
void membership_ack(Membership *ms, uint64_t seq, const char *from, uint64_t now);

/*
 * Advances the protocol to `now`: fills ret_actions (up to MEMBERSHIP_ACTIONS_MAX) and returns how
 * many, and sets *ret_next to when it wants to be called again.
 */
size_t membership_tick(Membership *ms, uint64_t now, MembershipAction *ret_actions, uint64_t *ret_next);

/* Packs the member table (every member, this node first) as a msgpack array of entries
 * [id, address, incarnation, state, cpus total, cpus free, gpus total, gpus free, memory total,
 * memory free]. */
int membership_pack(const Membership *ms, msgpack_packer *pk);
/* Parses one entry; strings borrowed from o. -EBADMSG when malformed. */
int member_update_parse(const msgpack_object *o, MemberUpdate *ret);

/* A peer message's fields, checked (borrowed from the frame). */
typedef struct PeerMessage {
        uint32_t type;
        uint64_t seq;
        uint64_t version;               /* HELLO */
        const char *from;               /* HELLO: the node id; PING, ACK, PING_REQ: the sender */
        size_t from_len;
        const char *address;            /* HELLO */
        size_t address_len;
        const char *target;             /* PING_REQ */
        size_t target_len;
        const uint8_t *blob;            /* HELLO: the nonce; AUTH: the mac */
        uint64_t incarnation;           /* DEAD_NOTICE */
        const msgpack_object *moved;    /* DEAD_NOTICE: [[actor (ext 2), node id], ...], checked */
        const msgpack_object *members;  /* PING, ACK, PING_REQ: every entry parses */
} PeerMessage;

/* Checks a parsed peer frame: 0, or -EBADMSG when it is not a well-formed peer message. */
int peer_message_parse(const Frame *f, PeerMessage *ret);
