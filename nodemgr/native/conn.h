/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The native protocol's transport (conn.c): what the request handlers (native.c) use of a
 * connection. The core reaches the few it needs for workers' connections through TransportOps
 * (core/transport.h says why), installed by native_setup().
 */

#include "manager.h"


/* A Get or Wait of this connection: what the connection keeps about it, beside the core's request. */
typedef struct ConnGet {
        GetRequest *get;
        Conn *conn;
        uint64_t reqid;
        bool parked;     /* complete, its reply waiting for room in the connection's output */
        bool timed_out;
        LIST_ENTRY(ConnGet) link;
        TAILQ_ENTRY(ConnGet) parked_link;
} ConnGet;

int conn_new(Manager *m, int fd, Worker *worker, Conn **ret);
void conn_close(Conn *c);
/* Finishes a frame begun at off with frame_begin(): when r (what packing it returned) is negative
 * the frame is dropped and r returned; else it is closed and the connection flushed soon. */
int conn_end_frame(Conn *c, size_t off, int r);
/* The same, with descriptor fd attached to the frame's first byte (SCM_RIGHTS): what the output held
 * before it is sent first. -EAGAIN (and the frame dropped) when the peer has not read enough for
 * that now. fd stays the caller's. */
int conn_end_frame_fd(Conn *c, size_t off, int r, int fd);
/* Drops every hold, owned object and pending Get of the connection. */
void conn_release_all(Conn *c);
/* Reads and handles whatever the peer has sent (a worker that exited). */
void conn_drain(Conn *c);
int conn_flush(Conn *c);
/* Writes what every connection has queued. */
void conn_flush_all(Manager *m);
void conn_ref(Conn *c);
void conn_unref(Conn *c);
void conn_mark_dirty(Conn *c);
/* Whether a reply of n bytes may be built now: the output stays within its budget (or is empty). */
bool conn_output_room(const Conn *c, size_t n);
int conn_send_reply_error(Conn *c, uint64_t reqid, kactor_error code, const char *message);
/* A reply that carries an actor id (CreateActor, GetActor) or nothing. */
int conn_send_reply_ok(Conn *c, uint64_t reqid, const kactor_id *actor);
/* Refuses a connection (code: why, in the protocol's terms): says why, then closes once that is
 * sent. Returns -EBADMSG. */
int conn_refuse(Conn *c, kactor_error code, const char *why);
/* conn_refuse() for a broken stream (KACTOR_ERROR_PROTOCOL). */
int conn_protocol_error(Conn *c, const char *why);

/* The connection holds (one reference on) an actor or object it received. */
int conn_hold(Conn *c, kactor_id id, bool actor);
int conn_hold_ids_in(Conn *c, const Object *o);
/* It made the object, and holds it until it releases it or closes. */
void conn_own(Conn *c, Object *o);
void conn_release_object(Conn *c, kactor_id id);
void conn_release_actor(Conn *c, kactor_id id);
/* After a restart of the node manager (persist.c): a placeholder for a connection that was open,
 * holding what it held until the client comes back (conn_take_over()) or the grace period ends. */
int conn_ghost_new(Manager *m, uint64_t prefix, uid_t uid, Conn **ret);
/* A client connection becomes a re-attached worker's (not counted as a client any more). */
void conn_attach_worker(Conn *c);
/* The live connection (or placeholder) with this id prefix, or NULL. */
Conn *conn_find_prefix(Manager *m, uint64_t prefix);
/* c takes over what ghost g held, and its ids; g goes. */
void conn_take_over(Conn *c, Conn *g);
