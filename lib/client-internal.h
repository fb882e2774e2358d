/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the worker runtime needs from the client beyond the public API. */

#include "kactor/client.h"
#include "proto.h"

/* A frame the worker must handle (EXEC, TASK), set aside while the client waited for a reply. */
typedef struct PendingFrame {
        struct PendingFrame *next;
        uint32_t type;
        uint64_t id;
        size_t len;
        char payload[];
} PendingFrame;

/* A CALL, SUBMIT or PUT frame the node manager may not have for good: sent again, in order, after a
 * reconnect that got the session back (see client_track_frame()). */
typedef struct ResendEntry {
        uint64_t lo;   /* the object's id, low half (the high half is the client's id_hi) */
        size_t offset; /* of the frame in ResendLog.frames */
        uint32_t len;  /* the whole frame, length prefix included; 0: no longer kept */
        bool released; /* released, but perhaps before the node manager had the frame */
} ResendEntry;

typedef struct ResendLog {
        Buffer frames;        /* the frames, back to back, in the order they were sent */
        ResendEntry *entries; /* in the same order, so sorted by lo */
        size_t first;         /* entries before this one are all dropped */
        size_t n, cap;
        size_t live_bytes;  /* bytes of the frames still kept */
        uint64_t acked_lo;  /* frames of objects below this lo were handled by the node manager */
        uint64_t *released; /* lo of entries released but not yet known to be handled */
        size_t n_released, cap_released;
        Buffer releases; /* RELEASE frames not yet known to be handled */
} ResendLog;

struct kactor_client {
        int fd;
        Buffer in;
        Buffer out;
        msgpack_packer pk;        /* writes frames into out */
        Frame frame;              /* the frame last parsed from in */
        const char *last_payload; /* its payload, valid until the next read */
        size_t last_len;
        PendingFrame *current_pending; /* the set-aside frame client_next_frame() returned last */

        char node_id[KACTOR_ID_STRING_MAX];
        uint64_t id_hi; /* ids this client makes: {id_hi, id_lo_prefix | seq} */
        uint64_t id_lo_prefix;
        uint64_t next_seq;
        uint64_t next_reqid;

        kactor_error error;
        char *error_message;

        /* Worker mode: frames other than replies are queued here instead of refused. */
        bool worker;
        PendingFrame *pending_head, *pending_tail;

        /* Reconnecting (ordinary clients only; a worker's connection is re-attached by its runtime).
         * reconnect_timeout_ms < 0: never, and nothing is tracked. */
        char *socket_path;
        int reconnect_timeout_ms;
        uint64_t reconnect_deadline; /* CLOCK_MONOTONIC µs; 0: not reconnecting */
        uint64_t out_written;        /* bytes written on this connection */
        ResendLog resend;

        /* The request waiting for its reply, kept to be sent again after a reconnect. */
        Buffer request;
        uint64_t request_end;  /* out_written once all of it is written */
        uint64_t request_mark; /* the lo of the next object made after it */

        /* Objects of sessions the node manager lost: a Get gives their error. Sorted by id. */
        kactor_id *lost;
        size_t n_lost, cap_lost;

        /* Descriptors that came with the input (SCM_RIGHTS), for the frames that carry them. */
        FdQueue fds;

        /* Direct calls (client-direct.c): on unless turned off; the actors called, and the objects
         * of direct calls not yet delivered. */
        bool direct_on;
        uint32_t node_features;           /* PROTO_FEATURE_*: what the node manager offers */
        struct ClientDirect *directs;     /* uthash, by actor id */
        /* Their objects by the id's sequence number, modulo n_direct_slots (a power of two): ids are
         * made one after the other, so a batch's sit side by side; one that a later id wrapping
         * around finds still there moves to direct_overflow (uthash by id). n_direct_objs: all. */
        struct DirectObject *direct_slots;
        size_t n_direct_slots, n_direct_objs, n_direct_overflow;
        struct DirectOverflow *direct_overflow;
        struct DirectWatch *direct_watch;  /* uthash: relayed calls that end a direct pause */
        struct pollfd *direct_pfd;         /* what a wait on the direct sockets polls, */
        struct ClientDirect **direct_poll; /* and for which */
        Frame direct_frame;                /* parses the answers (client-direct.c) */
        size_t n_direct_poll;
};

/* Sends the request just packed at off in c->out and waits for its reply (across reconnects). */
int client_request(kactor_client *c, uint32_t type, uint64_t reqid, size_t off);
/* Keeps a copy of the CALL, SUBMIT or PUT frame at off (object lo) to send again after a reconnect. */
int client_track_frame(kactor_client *c, uint64_t lo, size_t off);
/* The id of the next object this client makes. */
kactor_id client_new_id(kactor_client *c);

/* Connects a new socket to the node manager's at path. 0 and the fd, or a negative errno. */
int client_connect_socket(const char *path, int *ret_fd);

/* Wraps a connected socket (the worker's end of its socketpair). */
int client_new_fd(int fd, bool worker, kactor_client **ret);

void client_set_identity(kactor_client *c, const char *node_id, uint64_t id_hi, uint64_t id_lo_prefix);

/*
 * Returns the next frame that is not a reply (worker mode), blocking; flushes first. The frame is
 * parsed into *f and stays valid until the next client call. Returns 1, 0 at end of stream, or a
 * negative errno.
 */
int client_next_frame(kactor_client *c, Frame *f);

/* Worker mode: drops the tasks set aside and not started, and tells the node manager which
 * (RECALLED); it runs them elsewhere. */
int client_recall_tasks(kactor_client *c);

/* Buffers output; flushes when it grows large. */
int client_maybe_flush(kactor_client *c);

/* Worker mode: the next frame when one is already here (set aside, or whole in the input), without
 * reading: 1 with it in *f, 0 when none is, or a negative errno. */
int client_poll_frame(kactor_client *c, Frame *f);


/* Direct calls (client-direct.c; docs/protocol.md, "Direct calls"). */

/* Whether direct calls are on for a client made with opts (the option, else $KACTOR_DIRECT_CALLS). */
bool client_direct_wanted(const struct kactor_connect_opts *opts);
/* Calls method on actor directly when it can: 1 when it did (*ret is the result), 0
 * when the call must go relayed (after the direct calls before it to that actor have answered, so
 * the order holds), or a negative errno. */
int client_direct_call(kactor_client *c, kactor_actor actor, const char *method, const kactor_value *args,
                       kactor_ref *ret);
/* A call to actor went relayed (object lo): direct calls to it wait until it is known done. */
void client_direct_relayed(kactor_client *c, kactor_actor actor, uint64_t lo);
/* Before a relayed request names the objects in v: direct calls among them must have answered (then
 * the node manager has their records). */
int client_direct_settle(kactor_client *c, const kactor_value *v);
/* Objects known done (delivered by a Get, ready in a Wait): relayed calls that paused direct ones. */
void client_direct_seen(kactor_client *c, const kactor_ref *refs, size_t n, const bool *ready);
/* Waits (until deadline, CLOCK_MONOTONIC µs, 0: none) for the answers of the direct calls among
 * refs; with num_returns, only until that many of refs are answered. 0, -ETIMEDOUT, or an errno. */
int client_direct_wait_refs(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                            uint64_t deadline);
/* Moves the answers of direct calls among refs into values[] (NULL slots); *ret_all says whether
 * every slot is filled. client_direct_put_back() undoes it (the rest could not be had). */
int client_direct_take(kactor_client *c, const kactor_ref *refs, size_t n, kactor_value **values, bool *ret_all);
void client_direct_put_back(kactor_client *c, const kactor_ref *refs, size_t n, kactor_value **values);
void client_direct_forget(kactor_client *c, const kactor_ref *refs, size_t n);
/* How many of refs are direct calls not answered yet. */
size_t client_direct_pending(kactor_client *c, const kactor_ref *refs, size_t n);
/* Marks the answered direct calls among refs ready. Returns how many. */
size_t client_direct_ready(kactor_client *c, const kactor_ref *refs, size_t n, bool *ready);
/* Releases refs: those of direct calls not yet answered are released once they are. Returns the
 * number of refs left in refs (moved to its front) for a RELEASE now. */
size_t client_direct_release(kactor_client *c, kactor_ref *refs, size_t n);
int client_direct_flush_all(kactor_client *c);
/* The caller let go of actor: its direct socket ends once the calls sent on it have answered. */
int client_direct_actor_released(kactor_client *c, kactor_actor actor);
void client_direct_free_all(kactor_client *c);
