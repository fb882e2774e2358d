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
};

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

