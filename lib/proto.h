/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The native protocol between libkactor clients, workers and the node manager (docs/protocol.md).
 *
 * A stream of frames: a 32-bit little-endian payload length, then the payload. The payload is a
 * MessagePack array, the header, [type, id, fields...], optionally followed by one value (the
 * arguments of a call, the value of a put, the results of a get). Frames larger than
 * PROTO_FRAME_MAX are refused (-EMSGSIZE) and the connection closed.
 *
 * The first frame from a client is HELLO carrying PROTO_VERSION; the node manager answers WELCOME
 * or closes the connection with a REPLY that says why.
 */

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <stdint.h>

#include <msgpack.h>

#include "kactor/value.h"

#define PROTO_VERSION 1
#define PROTO_FRAME_MAX (64u * 1024u * 1024u)
#define PROTO_HEADER_SIZE 4
/* The ids a connection makes: {node's high half, its prefix | n}, n below 2^40 (WELCOME). */
#define PROTO_ID_SEQ_BITS 40
#define PROTO_ID_SEQ_MASK ((UINT64_C(1) << PROTO_ID_SEQ_BITS) - 1)

typedef enum ProtoMsg {
        /* client -> nodemgr */
        MSG_HELLO = 1,    /* [T, 0, version, pid, (id prefix of a session to take back)]  */
        MSG_CREATE_ACTOR, /* [T, reqid, module, class, options map] + args list          */
        MSG_GET_ACTOR,    /* [T, reqid, name]                                             */
        MSG_CALL,         /* [T, object lo, actor id, method, (resent from a direct socket)]
                           * + args (no reply)                                            */
        MSG_SUBMIT,       /* [T, object lo, module, function, options map] + args (no reply) */
        MSG_PUT,          /* [T, object lo] + value                        (no reply)    */
        MSG_GET,          /* [T, reqid, timeout usec, [object ids]]                       */
        MSG_WAIT,         /* [T, reqid, timeout usec, num_returns, [object ids]]          */
        MSG_RELEASE,      /* [T, 0, [object ids], [actor ids]]            (no reply)     */
        MSG_KILL,         /* [T, reqid, actor id, no_restart]                             */
        MSG_OPEN_DIRECT,  /* [T, reqid, actor id]: answered with a direct socket (SCM_RIGHTS) */

        /* client -> worker, on a direct socket */
        MSG_DCALL,        /* [T, object lo, method] + args                                */

        /* nodemgr -> client */
        MSG_WELCOME = 32, /* [T, 0, version, node id string, id prefix hi, id prefix lo,
                           *  (features)]                                                   */
        MSG_REPLY,        /* [T, reqid, error code, message] (+ value)                     */

        /* worker -> client, on a direct socket */
        MSG_DRESULT,      /* [T, object lo, error code, message, flags] + value when the code is 0 */

        /* nodemgr -> worker */
        MSG_INIT = 64, /* [T, 0, kind, actor id, module, class, [gpu ids], node id, id hi,
                        *  id range, checkpoint (nil, or the saved state)] + args       */
        MSG_EXEC,      /* [T, seq, method, result id, ack] + args: ack is the last seq whose
                        * result the node manager has durably (persist.c); the worker keeps
                        * the results after it until then, to send them again on ATTACH   */
        MSG_TASK,      /* [T, seq, module, function] + args                            */
        MSG_SAVE,      /* [T, seq]: run the class's save hook (a checkpoint)            */
        MSG_RECALL,    /* [T, 0]: give back the tasks sent but not started              */
        MSG_ACK,       /* [T, seq]: results up to seq are durable (when no EXEC says so)  */
        MSG_STOP,      /* [T, 0]: stop now (run the destructor and exit)                 */
        MSG_DIRECT_OPEN, /* [T, 0, caller uid, id hi, id prefix, highest id made]: a direct socket
                          * (SCM_RIGHTS)                                                  */
        MSG_DIRECT_CLOSE, /* [T, 0]: close every direct socket; calls read and not run are not run */

        /* worker -> nodemgr */
        MSG_INIT_DONE = 96, /* [T, 0, error code, message, flags]                            */
        MSG_RESULT,         /* [T, seq, error code, message, flags] + value when the code is 0 */
        MSG_RECALLED,       /* [T, 0, [seqs]]: these tasks were not started and never will be */
        MSG_ATTACH,         /* [T, 0, version, actor id, id prefix, last seq, flags,
                             *  [[seq, result id, method, args (bin), RESULT payload (bin)]...]]:
                             *  an actor's worker whose node manager restarted, on the socket;
                             *  answered with REPLY                                            */
        MSG_DIRECT,         /* [T, 0, object id, method, time read (ns)] + args: the record of a
                             *  direct call, written before it runs                            */
        MSG_DIRECT_CLOSED,  /* [T, 0, id prefix]: a direct socket of that caller is closed      */
} ProtoMsg;

/* Features a node manager offers, in WELCOME (one that sends none offers none). */
enum {
        PROTO_FEATURE_DIRECT = 1 << 0, /* OPEN_DIRECT: direct calls */
};

/* Flags of RESULT. */
enum {
        RESULT_READ_ONLY = 1 << 0, /* the method is read-only: not kept in the lineage */
        RESULT_DIRECT = 1 << 1,    /* the result of the direct call recorded last (MSG_DIRECT) */
};
/* Flags of DRESULT. */
enum {
        DRESULT_FETCH = 1 << 0, /* the value names objects or actors: get it from the node manager */
};
/* Flags of INIT_DONE. */
enum {
        INIT_CAN_SAVE = 1 << 0, /* the class has save and restore hooks */
};
/* Flags of ATTACH. */
enum {
        ATTACH_READY = 1 << 0,    /* INIT_DONE was sent (its constructor or restore is done) */
        ATTACH_CAN_SAVE = 1 << 1, /* as INIT_CAN_SAVE */
};

typedef enum WorkerKind {
        WORKER_ACTOR = 1,
        WORKER_TASK = 2,
} WorkerKind;

/* A growable byte buffer with a consumed prefix: used for both directions of a connection. */
typedef struct Buffer {
        char *data;
        size_t start; /* first unconsumed byte */
        size_t end;   /* one past the last byte */
        size_t cap;
} Buffer;

void buffer_free(Buffer *b);
/* Makes room for n more bytes at the end (grows; the data stays where it is). */
int buffer_grow(Buffer *b, size_t n);
/* Room for n more bytes at end; 0 or -ENOMEM. Inline: every packed field comes through here. */
static inline int buffer_reserve(Buffer *b, size_t n) {
        return b->cap - b->end >= n ? 0 : buffer_grow(b, n);
}
static inline int buffer_append(Buffer *b, const void *p, size_t n) {
        int r = buffer_reserve(b, n);
        if (r < 0)
                return r;
        if (n > 0)
                memcpy(b->data + b->end, p, n);
        b->end += n;
        return 0;
}
static inline size_t buffer_size(const Buffer *b) {
        return b->end - b->start;
}
void buffer_consume(Buffer *b, size_t n);
/* Moves the unconsumed bytes to the front: offsets into b (a frame being packed, a payload being
 * read) are void after it. */
void buffer_compact(Buffer *b);
/* Room for n more bytes to read into, compacting first when that saves growing: for input buffers,
 * between reads, when nothing points into them. */
int buffer_reserve_read(Buffer *b, size_t n);
/* msgpack_packer write callback: data is a Buffer*. */
int buffer_msgpack_write(void *data, const char *buf, size_t len);

/* Starts a frame in b: returns the offset to give to frame_end(). */
size_t frame_begin(Buffer *b);
/* Finishes it: writes the length. -EMSGSIZE (and the frame dropped) when it is too large. */
int frame_end(Buffer *b, size_t offset);

/* Starts a frame in b and packs, through pk (which writes to b), the start of its header: an array
 * of 2 + n_fields items, the type and the id; the caller packs the n_fields fields and any value,
 * then calls frame_end() with *ret_offset. -ENOMEM (nothing left in b) on failure. */
int frame_begin_request(Buffer *b, msgpack_packer *pk, uint32_t type, uint64_t id, uint32_t n_fields,
                        size_t *ret_offset);

/* Finds the next complete frame at the start of b: returns 1 and the payload (which stays valid
 * until b is changed), 0 when more bytes are needed, -EMSGSIZE for an oversized frame, -EBADMSG
 * for an empty one. The caller consumes PROTO_HEADER_SIZE + *ret_len bytes when done. */
int frame_peek(const Buffer *b, const char **ret_payload, size_t *ret_len);

/* A parsed frame: the header array and, when present, the trailing value (raw and unpacked). */
typedef struct Frame {
        msgpack_zone *zone;      /* the parsed objects', cleared for the next frame, not freed */
        msgpack_unpacked header; /* the array (.zone unused) */
        msgpack_unpacked body;   /* .data.type == MSGPACK_OBJECT_NIL and has_body false if none */
        bool has_body;
        const char *body_raw; /* the trailing value's bytes, inside the payload */
        size_t body_len;
        uint32_t type;
        uint64_t id;
        const msgpack_object *fields; /* header fields after type and id */
        uint32_t n_fields;
} Frame;

void frame_init(Frame *f);
void frame_done(Frame *f);
/* Parses a payload: 0, or -EBADMSG when it is not [uint type, uint id, ...] (+ one valid value). */
int frame_parse(Frame *f, const char *payload, size_t len);

/* Field readers: -EBADMSG when the field is missing or of another type. Strings are borrowed from
 * the frame and not NUL-terminated; frame_field_strdup() copies. */
int frame_field_u64(const Frame *f, uint32_t i, uint64_t *ret);
int frame_field_i64(const Frame *f, uint32_t i, int64_t *ret);
int frame_field_bool(const Frame *f, uint32_t i, bool *ret);
int frame_field_str(const Frame *f, uint32_t i, const char **ret, size_t *ret_len);
int frame_field_strdup(const Frame *f, uint32_t i, char **ret);
int frame_field_id(const Frame *f, uint32_t i, int8_t ext_type, kactor_id *ret);
const msgpack_object *frame_field(const Frame *f, uint32_t i);

/* Descriptors received with SCM_RIGHTS, in the order they came, until a frame takes them. */
#define FD_QUEUE_MAX 16
typedef struct FdQueue {
        int fds[FD_QUEUE_MAX];
        size_t n;
} FdQueue;

/* recv() into buf, keeping the descriptors that came with the bytes in q (O_CLOEXEC; those past
 * FD_QUEUE_MAX are closed). Returns what recv() does. */
ssize_t proto_recv(int sock, void *buf, size_t len, int flags, FdQueue *q);
/* send() of buf with fd attached to its first byte (SCM_RIGHTS). Returns what send() does. */
ssize_t proto_send_fd(int sock, const void *buf, size_t len, int flags, int fd);
/* The oldest descriptor in q (the caller owns it), or -EBADMSG when none came. */
int fd_queue_take(FdQueue *q);
void fd_queue_close(FdQueue *q);

/* Packs a string of known length, and a C string (NULL packs nil). */
int pack_str(msgpack_packer *pk, const char *s, size_t len);
int pack_cstr(msgpack_packer *pk, const char *s);
