/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The replica's side: the lineage of peers' actors kept here, and acknowledged to their host. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor.h"
#include "call.h"
#include "codec.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "remote-internal.h"
#include "req-error.h"
#include "time-util.h"

/* --- replicas (a peer's actors kept here) --------------------------------------------------------- */

Replica *remote_replica_find(Remote *r, kactor_id id) {
        Replica *rep;
        HASH_FIND(hh, r->replica_set, &id, sizeof(id), rep);
        return rep;
}

void remote_replica_free(Remote *r, Replica *rep) {
        if (rep->ack_due)
                LIST_REMOVE(rep, ack_link);
        HASH_DEL(r->replica_set, rep);
        spec_wire_done(&rep->spec);
        free(rep->args);
        lineage_done(&rep->log);
        free(rep);
}

static int send_ack(Remote *r, uint64_t node, kactor_id actor, uint64_t index, bool need_sync) {
        PeerFrame f;
        int k = remote_frame_start(r, node, PEER_MSG_REPL_ACK, 3, &f);
        if (k < 0)
                return k;
        k = codec_pack_id(f.pk, CODEC_EXT_ACTOR, actor);
        if (k >= 0)
                k = remote_pk_ok(msgpack_pack_uint64(f.pk, index) |
                          (need_sync ? msgpack_pack_true(f.pk) : msgpack_pack_false(f.pk)));
        return cluster_frame_end(&f, k);
}

/* --- frames --------------------------------------------------------------------------------------- */

static void do_repl_drop(Remote *r, uint64_t from, kactor_id id) {
        Replica *rep = remote_replica_find(r, id);
        if (rep && rep->host == from)
                remote_replica_free(r, rep);
}

/* Whether `from` may keep a replica of the actor here: not when the actor lives here, nor when
 * another live node hosts it (from is a stale host, back from a partition). */
static bool replica_host_ok(Remote *r, uint64_t from, kactor_id id) {
        Actor *a = manager_find_actor(r->manager, id);
        if (a && a->state != ACTOR_DEAD)
                return false;
        Replica *rep = remote_replica_find(r, id);
        if (rep && rep->host != from && remote_node_alive(r, rep->host))
                return false;
        Location *l = remote_location_find(r, id);
        return !l || l->node == from || !remote_node_alive(r, l->node);
}

int remote_replica_handle_repl_create(Remote *r, uint64_t from, RemoteMessage *msg) {
        if (!replica_host_ok(r, from, msg->actor))
                return 0;
        Replica *rep = remote_replica_find(r, msg->actor);
        if (rep && rep->host == from && msg->index >= rep->log.checkpoint_index &&
            msg->index <= lineage_last_index(&rep->log)) {
                /* What we have is the start of what it sends: keep it (the records that follow are
                 * repeats), take the new list of replicas. */
                rep->n_replicas = msg->n_replicas;
                memcpy(rep->replicas, msg->replicas, sizeof(uint64_t) * rep->n_replicas);
                (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), false);
                return 0;
        }
        if (rep)
                remote_replica_free(r, rep);
        rep = calloc(1, sizeof(*rep));
        if (!rep)
                return -ENOMEM;
        rep->id = msg->actor;
        rep->host = from;
        lineage_init(&rep->log);
        rep->n_replicas = msg->n_replicas;
        memcpy(rep->replicas, msg->replicas, sizeof(uint64_t) * rep->n_replicas);
        if (msg->body && !(rep->args = malloc(msg->body_len))) {
                free(rep);
                return -ENOMEM;
        }
        if (msg->body)
                memcpy(rep->args, msg->body, msg->body_len);
        rep->args_len = msg->body_len;
        rep->spec = msg->spec; /* taken */
        msg->spec = (SpecWire) {};
        if (msg->blob)
                (void) lineage_restore(&rep->log, msg->index, msg->blob, msg->blob_len);
        HASH_ADD(hh, r->replica_set, id, sizeof(rep->id), rep);
        (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), false);
        return 0;
}

int remote_replica_handle_repl_record(Remote *r, uint64_t from, RemoteMessage *msg) {
        const LineageRecord *rec = &msg->record;
        Replica *rep = remote_replica_find(r, msg->actor);
        if (!rep || rep->host != from) {
                if (replica_host_ok(r, from, msg->actor))
                        (void) send_ack(r, from, msg->actor, 0, true); /* missed its start: everything */
        } else if (rec->index == rep->log.next_index) {
                if (lineage_append(&rep->log, rec->result, rec->method, rec->args, rec->args_len, rec->code) >= 0 &&
                    !rep->ack_due) {
                        rep->ack_due = true;
                        LIST_INSERT_HEAD(&r->acks_due, rep, ack_link);
                }
        } else
                /* A repeat is acknowledged again; a gap asks for everything. */
                (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), rec->index > rep->log.next_index);
        return 0;
}

int remote_replica_handle_repl_checkpoint(Remote *r, uint64_t from, RemoteMessage *msg) {
        Replica *rep = remote_replica_find(r, msg->actor);
        if (rep && rep->host == from && lineage_checkpoint(&rep->log, msg->index, msg->blob, msg->blob_len) < 0)
                (void) send_ack(r, from, msg->actor, lineage_last_index(&rep->log), true);
        return 0;
}

int remote_replica_handle_repl_drop(Remote *r, uint64_t from, RemoteMessage *msg) {
        return remote_for_each_id(r, from, msg, do_repl_drop);
}
/* Records stored since the last flush: one ack per actor, for the last of them. */
void remote_replica_flush_acks(Remote *r) {
        Replica *rep;
        while ((rep = LIST_FIRST(&r->acks_due))) {
                LIST_REMOVE(rep, ack_link);
                rep->ack_due = false;
                (void) send_ack(r, rep->host, rep->id, lineage_last_index(&rep->log), false);
        }
}
