/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An actor's lineage log: every call that changed its state, in execution order, after an optional
 * checkpoint. Replaying it on a fresh worker (constructor or restore, then the calls) rebuilds the
 * actor exactly. Pure logic: no I/O, no D-Bus.
 *
 * Records have a versioned wire form (lineage_record_pack()/lineage_record_unpack()) so that peers
 * can keep replicas.
 *
 *   [LINEAGE_RECORD_VERSION, kind, index, result id (ext 1), method, error code] + args
 *
 * `index` counts the actor's logged calls from 1; the caller and its per-caller sequence number are
 * the result id's connection and sequence halves (see docs/protocol.md).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "kactor/value.h"

#define LINEAGE_RECORD_VERSION 1

typedef enum LineageKind {
        LINEAGE_CALL = 1,
        LINEAGE_CHECKPOINT = 2,
} LineageKind;

/* In a log, method and args point into the log's own storage (below) and live as long as the record;
 * a record from lineage_record_unpack() owns them (lineage_record_done()). */
typedef struct LineageRecord {
        uint64_t index;
        kactor_id result;
        char *method;
        char *args;
        size_t args_len;
        kactor_error code; /* how the call ended; replay runs it again either way */
} LineageRecord;

typedef struct LineageMethod LineageMethod;
typedef struct LineageChunk LineageChunk;

typedef struct LineageLog {
        LineageRecord *records; /* index base_index + i is records[(start + i) % allocated] */
        size_t n, start, allocated;
        uint64_t next_index; /* the index the next call gets */
        uint64_t base_index; /* the index of records[start] */
        size_t bytes;        /* memory held by records: per record its struct, method and args, as if
                              * each had its own copies (what LineageBytes and the node's limit count) */

        /* The records' storage, so that appending a call allocates nothing most of the time: each
         * method name once (refcounted by the records that name it), and arguments up to
         * LINEAGE_ARGS_CHUNKED_MAX bytes packed into chunks in record order, each freed when the last
         * record in it is dropped (records are only ever dropped oldest first). Larger arguments have
         * an allocation of their own. Plain pointers only: a log may be moved by assignment. */
        LineageMethod *methods;     /* uthash by name */
        LineageMethod *last_method; /* the last one appended: most calls repeat it */
        LineageChunk *chunk_head, *chunk_tail;

        /* The state after call checkpoint_index, as the module's save hook made it (packed). */
        char *checkpoint;
        size_t checkpoint_len;
        uint64_t checkpoint_index;
} LineageLog;

void lineage_init(LineageLog *log);
void lineage_done(LineageLog *log);

/* Arguments up to this size share chunks; larger ones are allocated on their own. */
#define LINEAGE_ARGS_CHUNKED_MAX 1024

/* Appends a call (copies method and args into the log's storage). Returns its index (>= 1) or
 * -ENOMEM, and then the log is unchanged. */
int64_t lineage_append(LineageLog *log, kactor_id result, const char *method, const char *args,
                       size_t args_len, kactor_error code);

/* The record with this index, or NULL (never logged, or before the checkpoint). */
const LineageRecord *lineage_get(const LineageLog *log, uint64_t index);

/* The records after the checkpoint, in order: for (i = 0; i < lineage_size(log); i++) lineage_at(log, i). */
static inline size_t lineage_size(const LineageLog *log) {
        return log->n;
}
const LineageRecord *lineage_at(const LineageLog *log, size_t i);

/* Records a checkpoint of the state after call `index` (copies state) and drops the records up to
 * it. -EINVAL if index is not a logged call at or after the current checkpoint. */
int lineage_checkpoint(LineageLog *log, uint64_t index, const char *state, size_t len);

/* Starts an empty log from a checkpoint of the state after call `index` (a replica's copy). -EBUSY
 * when the log is not empty. */
int lineage_restore(LineageLog *log, uint64_t index, const char *state, size_t len);

/* The index of the last logged call (0: none). */
static inline uint64_t lineage_last_index(const LineageLog *log) {
        return log->next_index - 1;
}

/* Wire form of one record. */
int lineage_record_pack(msgpack_packer *pk, const LineageRecord *r);
/* Parses a packed record; returns 0 and fills *ret (malloc'd fields; free with
 * lineage_record_done()), or -EBADMSG (also for an unknown version). */
int lineage_record_unpack(const char *data, size_t len, LineageRecord *ret);
void lineage_record_done(LineageRecord *r);
