/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "hashmap.h"
#include "lineage.h"
#include "macro.h"

/* A method name, shared by the records that name it. */
struct LineageMethod {
        UT_hash_handle hh;
        size_t refs;
        size_t len;
        char name[];
};

/* Arguments of consecutive records, back to back. */
struct LineageChunk {
        LineageChunk *next;
        size_t size, used;
        size_t live; /* records whose arguments are here */
        char data[];
};

/* Chunks start at MIN bytes, so that an actor with a short log holds little, and double up to MAX.
 * MIN holds the largest arguments that go into chunks. */
#define LINEAGE_CHUNK_MIN LINEAGE_ARGS_CHUNKED_MAX
#define LINEAGE_CHUNK_MAX (64 * 1024)

/* The arguments of a record with none: never written, never freed. */
static char lineage_no_args[1];

void lineage_init(LineageLog *log) {
        *log = (LineageLog){ .next_index = 1, .base_index = 1 };
}

void lineage_record_done(LineageRecord *r) {
        free(r->method);
        free(r->args);
        *r = (LineageRecord){};
}

static LineageMethod *method_of(const LineageRecord *r) {
        return (LineageMethod *) (r->method - offsetof(LineageMethod, name));
}

static size_t record_bytes(const LineageRecord *r) {
        return sizeof(*r) + method_of(r)->len + 1 + r->args_len;
}

static LineageMethod *lineage_method_ref(LineageLog *log, const char *name) {
        size_t len = strlen(name);
        LineageMethod *m = log->last_method;

        if (!m || m->len != len || memcmp(m->name, name, len) != 0) {
                HASH_FIND(hh, log->methods, name, len, m);
                if (!m) {
                        m = malloc(offsetof(LineageMethod, name) + len + 1);
                        if (!m)
                                return NULL;
                        *m = (LineageMethod){ .len = len };
                        memcpy(m->name, name, len + 1);
                        HASH_ADD(hh, log->methods, name, len, m);
                }
        }
        m->refs++;
        log->last_method = m;
        return m;
}

static void lineage_method_unref(LineageLog *log, LineageMethod *m) {
        if (--m->refs > 0)
                return;
        if (log->last_method == m)
                log->last_method = NULL;
        HASH_DEL(log->methods, m);
        free(m);
}

/* Room for len bytes of arguments at the tail, in a new chunk if the last one is full. */
static char *lineage_args_reserve(LineageLog *log, size_t len) {
        LineageChunk *t = log->chunk_tail;

        if (t && t->live == 0)
                t->used = 0; /* all its records were dropped: start it over */
        if (!t || t->size - t->used < len) {
                size_t size = t ? MIN(t->size * 2, (size_t) LINEAGE_CHUNK_MAX) : LINEAGE_CHUNK_MIN;
                LineageChunk *c = malloc(offsetof(LineageChunk, data) + size);
                if (!c)
                        return NULL;
                *c = (LineageChunk){ .size = size };
                if (t)
                        t->next = c;
                else
                        log->chunk_head = c;
                log->chunk_tail = t = c;
        }
        return t->data + t->used;
}

/* Lets go of the oldest record's storage. */
static void lineage_record_release(LineageLog *log, LineageRecord *r) {
        if (r->args_len > LINEAGE_ARGS_CHUNKED_MAX)
                free(r->args);
        else if (r->args_len > 0) {
                /* Its arguments are in the oldest chunk that still holds any: chunks are filled in
                 * record order, and a chunk other than the last goes when it holds none. */
                LineageChunk *h = log->chunk_head;
                if (--h->live == 0 && h != log->chunk_tail) {
                        log->chunk_head = h->next;
                        free(h);
                }
        }
        lineage_method_unref(log, method_of(r));
        *r = (LineageRecord){};
}

void lineage_done(LineageLog *log) {
        for (size_t i = 0; i < log->n; i++) {
                LineageRecord *r = &log->records[(log->start + i) % log->allocated];
                if (r->args_len > LINEAGE_ARGS_CHUNKED_MAX)
                        free(r->args);
        }
        LineageMethod *m, *tmp;
        HASH_ITER(hh, log->methods, m, tmp) {
                HASH_DEL(log->methods, m);
                free(m);
        }
        for (LineageChunk *c = log->chunk_head, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        free(log->records);
        free(log->checkpoint);
        lineage_init(log);
}

static int lineage_grow(LineageLog *log) {
        size_t old = log->allocated, n = MAX(old * 2, (size_t) 16);
        /* realloc(): a large array is remapped, not copied. */
        LineageRecord *r = realloc(log->records, n * sizeof(LineageRecord));
        if (!r)
                return -ENOMEM;
        /* The ring is full; when it wraps, its older part is [start, old) and its newer [0, start).
         * Move the shorter one so that the ring continues in the new array. */
        if (log->start > 0) {
                size_t head = old - log->start;
                if (log->start <= head)
                        memcpy(r + old, r, log->start * sizeof(LineageRecord));
                else {
                        memcpy(r + n - head, r + log->start, head * sizeof(LineageRecord));
                        log->start = n - head;
                }
        }
        log->records = r;
        log->allocated = n;
        return 0;
}

int64_t lineage_append(LineageLog *log, kactor_id result, const char *method, const char *args,
                       size_t args_len, kactor_error code) {
        LineageRecord r = { .index = log->next_index, .result = result, .code = code, .args_len = args_len };
        LineageMethod *m;

        if (log->n == log->allocated && lineage_grow(log) < 0)
                return -ENOMEM;
        if (args_len > LINEAGE_ARGS_CHUNKED_MAX)
                r.args = malloc(args_len);
        else if (args_len > 0)
                r.args = lineage_args_reserve(log, args_len);
        else
                r.args = lineage_no_args;
        if (!r.args)
                return -ENOMEM;
        m = lineage_method_ref(log, method ?: "");
        if (!m) {
                if (args_len > LINEAGE_ARGS_CHUNKED_MAX)
                        free(r.args);
                return -ENOMEM;
        }
        r.method = m->name;
        if (args_len > 0)
                memcpy(r.args, args, args_len);
        if (args_len > 0 && args_len <= LINEAGE_ARGS_CHUNKED_MAX) {
                log->chunk_tail->used += args_len;
                log->chunk_tail->live++;
        }

        log->records[(log->start + log->n) % log->allocated] = r;
        if (log->n == 0)
                log->base_index = r.index;
        log->n++;
        log->next_index++;
        log->bytes += record_bytes(&r);
        return (int64_t) r.index;
}

const LineageRecord *lineage_at(const LineageLog *log, size_t i) {
        if (i >= log->n)
                return NULL;
        return &log->records[(log->start + i) % log->allocated];
}

const LineageRecord *lineage_get(const LineageLog *log, uint64_t index) {
        if (log->n == 0 || index < log->base_index || index >= log->base_index + log->n)
                return NULL;
        return lineage_at(log, index - log->base_index);
}

int lineage_checkpoint(LineageLog *log, uint64_t index, const char *state, size_t len) {
        if (index < log->checkpoint_index || index >= log->next_index)
                return -EINVAL;

        char *copy = malloc(len ?: 1);
        if (!copy)
                return -ENOMEM;
        if (len > 0)
                memcpy(copy, state, len);
        free(log->checkpoint);
        log->checkpoint = copy;
        log->checkpoint_len = len;
        log->checkpoint_index = index;

        while (log->n > 0 && log->records[log->start].index <= index) {
                LineageRecord *r = &log->records[log->start];
                log->bytes -= record_bytes(r);
                lineage_record_release(log, r);
                log->start = (log->start + 1) % log->allocated;
                log->n--;
        }
        log->base_index = log->n > 0 ? log->records[log->start].index : log->next_index;
        return 0;
}

int lineage_restore(LineageLog *log, uint64_t index, const char *state, size_t len) {
        if (log->n > 0 || log->checkpoint || index == 0)
                return -EBUSY;
        log->next_index = index + 1;
        log->base_index = log->next_index;
        return lineage_checkpoint(log, index, state, len);
}

int lineage_record_pack(msgpack_packer *pk, const LineageRecord *r) {
        if (msgpack_pack_array(pk, 6) < 0 || msgpack_pack_uint32(pk, LINEAGE_RECORD_VERSION) < 0 ||
            msgpack_pack_uint32(pk, LINEAGE_CALL) < 0 || msgpack_pack_uint64(pk, r->index) < 0)
                return -ENOMEM;
        int k = codec_pack_id(pk, CODEC_EXT_OBJECT, r->result);
        if (k < 0)
                return k;
        size_t mlen = strlen(r->method ?: "");
        if (msgpack_pack_str(pk, mlen) < 0 || msgpack_pack_str_body(pk, r->method ?: "", mlen) < 0 ||
            msgpack_pack_uint32(pk, r->code) < 0)
                return -ENOMEM;
        /* The arguments are already packed: they follow the header as they are. */
        return pk->callback(pk->data, r->args, r->args_len) < 0 ? -ENOMEM : 0;
}

int lineage_record_unpack(const char *data, size_t len, LineageRecord *ret) {
        msgpack_unpacked u;
        size_t off = 0;
        LineageRecord r = {};
        int k = -EBADMSG;

        msgpack_unpacked_init(&u);
        size_t header_len;
        if (codec_check_bounds(data, len, &header_len) < 0 || header_len >= len ||
            codec_check_bounds(data + header_len, len - header_len, NULL) < 0)
                goto finish;
        if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS)
                goto finish;
        const msgpack_object *h = &u.data;
        if (h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size != 6)
                goto finish;
        const msgpack_object *f = h->via.array.ptr;
        if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 != LINEAGE_RECORD_VERSION ||
            f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 != LINEAGE_CALL ||
            f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].via.u64 == 0 ||
            f[4].type != MSGPACK_OBJECT_STR || f[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            f[5].via.u64 >= _KACTOR_ERROR_MAX)
                goto finish;
        if (codec_object_to_id(&f[3], CODEC_EXT_OBJECT, &r.result) < 0)
                goto finish;
        if (memchr(f[4].via.str.ptr, 0, f[4].via.str.size))
                goto finish;
        r.index = f[2].via.u64;
        r.code = (kactor_error) f[5].via.u64;

        /* What follows is the arguments: exactly one valid list. */
        msgpack_unpacked a;
        size_t args_off = off;
        msgpack_unpacked_init(&a);
        bool ok = msgpack_unpack_next(&a, data, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
                a.data.type == MSGPACK_OBJECT_ARRAY && codec_validate(&a.data) >= 0;
        msgpack_unpacked_destroy(&a);
        if (!ok)
                goto finish;

        k = -ENOMEM;
        r.method = strndup(f[4].via.str.ptr, f[4].via.str.size);
        r.args_len = len - args_off;
        r.args = malloc(r.args_len);
        if (!r.method || !r.args)
                goto finish;
        memcpy(r.args, data + args_off, r.args_len);
        *ret = r;
        r = (LineageRecord){};
        k = 0;
finish:
        lineage_record_done(&r);
        msgpack_unpacked_destroy(&u);
        return k;
}
