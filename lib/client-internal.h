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
};

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

