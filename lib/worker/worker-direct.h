/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Direct calls, the worker's side (docs/protocol.md, "Direct calls"): the sockets the node manager
 * handed over, each to one caller, the calls read from them, their records to the node manager and
 * their answers.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "module-ctx.h"

typedef struct DirectMark {
        uint64_t prefix;
        uint64_t last_lo;
} DirectMark;

typedef struct WorkerDirect {
        struct WorkerDirect *next;
        int fd;
        uid_t uid;        /* the caller's user */
        uint64_t id_hi;   /* the ids the caller makes: {id_hi, prefix | n} */
        uint64_t prefix;
        Buffer in, out;
        msgpack_packer pk; /* writes into out */
        bool eof;          /* nothing more is read: closed once its answers are sent */
        bool broken;       /* its caller is gone: nothing can be sent either */
        unsigned batch;    /* calls read together next (worker-direct.c), 0: the least */
} WorkerDirect;

/* The largest DCALL payload: its record (the object id in full, the time read) must fit a frame. */
#define DIRECT_CALL_MAX (PROTO_FRAME_MAX - 64)

/* A DCALL frame as read: pointers into its payload. */
typedef struct DirectCall {
        kactor_id result;
        const char *method;
        size_t method_len;
        const char *args; /* the packed list; NULL: none */
        size_t args_len;
} DirectCall;

/* Parses payload (len bytes) as a DCALL from the caller of d (whose highest id run here is last_lo),
 * into f and *ret. -EBADMSG, with
 * *ret_why saying why, for anything else: another frame type, a malformed header, an id outside the
 * caller's range or not above the last one, arguments that are not a list or that name objects or
 * actors (those calls go relayed). Pure, for the fuzz target too. */
int worker_direct_parse(const WorkerDirect *d, uint64_t last_lo, Frame *f, const char *payload, size_t len,
                        DirectCall *ret, const char **ret_why);

/* A relayed call of object id result runs: a direct call must name a later one of its caller. */
void worker_direct_note_exec(kactor_ctx *ctx, kactor_id result);
/* Takes the socket of DIRECT_OPEN frame f (from the client's descriptor queue). */
int worker_direct_open(kactor_ctx *ctx, const Frame *f);
/* Waits for the node manager's next frame, running direct calls meanwhile: 1 when its socket has
 * input (or closed), 0 after a batch of direct calls (look at the node manager's frames first), or
 * a negative errno when writing to the node manager failed. */
int worker_direct_wait(kactor_ctx *ctx);
/* DIRECT_CLOSE: every direct socket ends once its answers are sent; the calls read from them and not
 * run are dropped (their callers send them again, relayed). */
void worker_direct_close(kactor_ctx *ctx);
/* Closes every direct socket, after sending what can be sent of their answers without waiting, and
 * frees what parsed their calls. */
void worker_direct_close_all(kactor_ctx *ctx);
