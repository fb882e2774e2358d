/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The state journal: what a node manager that restarts needs to take its actors back (persist.h,
 * docs/restart.md).
 *
 * <runtime-dir>/state is a sequence of batches, each the records of one write: a 4-byte length and
 * the CRC-32 of what follows (both little-endian), then records, each a native-protocol frame
 * (4-byte length, a msgpack array [type, 0, fields...] and an optional trailing value). The first
 * record is the header (magic, format version, the version of the node manager that wrote it, the
 * node id). The records of an event loop iteration are written with one
 * write() before anything that iteration answered leaves (manager.c's on_flush), so a crash at any
 * point leaves a journal that says at least what anyone was told. At start the journal is read,
 * then rewritten as a snapshot of what is live (state.new, renamed over it); it is rewritten
 * again whenever it has grown to more than twice its last snapshot and 16 MiB more.
 *
 * The actors' lineage (J_LOG records) is not in it but in <runtime-dir>/lineage.<generation>, in the
 * same batches, appended to in the same iteration just before the state's batch, which then says
 * how far the lineage file goes (J_LINEAGE): bytes after that are not read. A logged call's record
 * is written once, and not again with every snapshot of the state: the lineage file is rewritten
 * (as the next generation, named by a J_LINEAGE record in the state before the old file goes) only
 * when more than half of it is dead (dropped by checkpoints, or of actors that ended), and at
 * start. Journals of format version 1, with the lineage inline, are read too.
 *
 * Reading stops at the first damaged record (a bad length or CRC): what came before is restored,
 * the rest is lost, and the log says where. A header of another format version is not read at all:
 * the file is set aside as state.unreadable and the manager starts empty (the actors of the old
 * one are then orphans, reaped as after a crash).
 */

#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "actor-isolation.h"
#include "actor.h"
#include "codec.h"
#include "direct-results.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "req-error.h"
#include "spec-check.h"
#include "tasks.h"
#include "transport.h"
#include "worker-spawn.h"

#define PERSIST_MAGIC "kactor-state"
#define PERSIST_COMPACT_SLACK (16u * 1024u * 1024u)
#define PERSIST_ID_BLOCK 65536u

typedef enum JournalRecord {
        J_HEADER = 1,     /* [magic, format version, kactor version, node hi]                   */
        J_IDS,            /* [connection prefixes reserved up to, local ids reserved up to]     */
        J_CONN,           /* [prefix, uid]: a connection (client or worker) that may hold things */
        J_CONN_END,       /* [prefix]: it closed, and let go of everything                       */
        J_ACTOR,          /* [id, name, module, module arg, class, uid, run uid, run gid, [gpus],
                           *  cpus, memory max, tasks max, max restarts, detached, checkpoint
                           *  interval, [allowed uids], [allowed gids]] + constructor args       */
        J_WORKER,         /* [id, pid, prefix, restarts, cgroup kind, cgroup id, unit, path, dir,
                           *  start time]                                                         */
        J_ACTOR_END,      /* [id]: dead, or gone                                                 */
        J_LOG,            /* [id, seq, index, result id, method, error code] + args              */
        J_CHECKPOINT,     /* [id, index, seq] + state                                            */
        J_SEQ,            /* [id, seq]: a result of its worker needing no record was handled     */
        J_OBJECT,         /* [id, state, owner prefix, pinned, error code, message, uid] (+ value) */
        J_FREE,           /* [id]                                                               */
        J_HOLD,           /* [prefix, id, what, held]                                           */
        J_READY,          /* [id]: its constructor (or restore) finished: calls may have run     */
        J_BUS_OWNER,      /* [id, unique name or nil]: the D-Bus connection that owns it         */
        J_BUS_REQUEST,    /* [object, kind, actor or nil, method or function, module or nil, uid,
                           *  cpus] + args: a call or task made over D-Bus, not yet answered (a
                           *  D-Bus caller sends nothing again: the next manager does, for it)   */
        J_LINEAGE,        /* [generation, length]: lineage.<generation> holds the lineage, in the
                           *  same batches (J_LOG records only), up to length bytes             */
} JournalRecord;

/* The formats read: 1 has the lineage inline, 2 in the lineage file. */
#define PERSIST_FORMAT_VERSION_MIN 1

typedef struct LoadedConn {
        uint64_t prefix;
        uid_t uid;
        UT_hash_handle hh;
} LoadedConn;

typedef struct HoldKey {
        uint64_t prefix;
        kactor_id id;
        uint32_t what;
} HoldKey;

typedef struct LoadedHold {
        HoldKey key;
        UT_hash_handle hh;
} LoadedHold;

typedef struct LoadedObject {
        kactor_id id;
        const char *payload; /* the J_OBJECT record, in the file's contents */
        size_t len;
        uint64_t owner;      /* restore_objects(): the owner's prefix, for restore_holds() */
        /* Owner and pin changed after the record (J_HOLD of PERSIST_HOLD_OWN, _PIN). */
        bool owner_changed, pin_changed, pinned;
        uint64_t new_owner;
        UT_hash_handle hh;
} LoadedObject;

typedef struct LoadedActor {
        kactor_id id;
        const char *actor, *worker; /* J_ACTOR and the last J_WORKER */
        size_t actor_len, worker_len;
        LineageLog lineage;
        uint64_t seq; /* the last seq of its worker whose result is journaled */
        bool ready;   /* J_READY came */
        const char *bus_owner; /* in the file's contents (not NUL-terminated) */
        size_t bus_owner_len;
        UT_hash_handle hh;
} LoadedActor;

/* A J_BUS_REQUEST record: as read (Loaded), or kept for the next snapshot (Persist). */
typedef struct BusRequest {
        kactor_id id;        /* its result object */
        const char *payload; /* the record (Loaded: in the file's contents; Persist: data) */
        size_t len;
        char *data;
        UT_hash_handle hh;
} BusRequest;

typedef struct Loaded {
        char *data; /* the file */
        size_t size;
        bool has_lineage; /* a J_LINEAGE record names the lineage file, and how far it goes */
        uint64_t lineage_gen, lineage_len;
        LoadedConn *conns;
        LoadedHold *holds;
        LoadedObject *objects;
        LoadedActor *actors;
        BusRequest *bus_requests;
} Loaded;

typedef struct Persist {
        Manager *manager;
        char *path;
        int fd;
        Buffer buf; /* this iteration's records */
        msgpack_packer pk;
        uint64_t file_size, snapshot_size;
        uint64_t conn_reserved, local_reserved;
        int lock_fd; /* <runtime-dir>/state.lock, held while we run: one node manager per directory */
        bool quiet; /* restoring or closing: hooks write nothing */
        bool failed; /* a write failed: logged once, the journal is off */
        Loaded *loaded;
        BusRequest *bus_requests; /* unanswered D-Bus requests, for snapshots */
        /* The lineage file: its generation, its size, this iteration's records for it, and the
         * size it had when it was last written whole. */
        char *lineage_prefix; /* <runtime-dir>/lineage */
        int lineage_fd;
        uint64_t lineage_gen, lineage_size, lineage_whole_size;
        Buffer lineage_buf;
        bool lineage_reuse; /* at start: the file read goes on (cut to its length) */
        /* Actors whose worker's last handled seq changed this iteration (Actor.persist_seq_slot):
         * one J_SEQ each at the end of it, not one per call. */
        struct PendingSeq {
                kactor_id id;
                uint64_t seq;
        } *pending_seqs;
        size_t n_pending_seqs, cap_pending_seqs;
} Persist;

static void pending_seq_write(Persist *p, Actor *a);

static bool persist_on(Manager *m) {
        return m->persist && !m->persist->quiet && !m->persist->failed && m->persist->fd >= 0;
}

/* --- writing ------------------------------------------------------------------------------------- */

static int rec_begin(Persist *p, JournalRecord type, uint32_t n_fields, size_t *ret_off) {
        return frame_begin_request(&p->buf, &p->pk, type, 0, n_fields, ret_off);
}

/* Closes the record begun at off (r: what packing it returned). */
static int rec_end(Persist *p, size_t off, int r) {
        if (r >= 0)
                r = frame_end(&p->buf, off);
        if (r < 0)
                p->buf.end = off;
        return r;
}

static int pack_u64s(msgpack_packer *pk, size_t n, const uint64_t *v) {
        for (size_t i = 0; i < n; i++)
                if (msgpack_pack_uint64(pk, v[i]) < 0)
                        return -ENOMEM;
        return 0;
}

/* msgpack's smallest form of an unsigned integer, as msgpack_pack_uint64() writes it. */
static char *put_uint(char *p, uint64_t v) {
        if (v < 0x80)
                *p++ = (char) v;
        else if (v <= UINT8_MAX) {
                *p++ = (char) 0xcc;
                *p++ = (char) v;
        } else if (v <= UINT16_MAX) {
                uint16_t be = htobe16((uint16_t) v);
                *p++ = (char) 0xcd;
                p = mempcpy(p, &be, sizeof(be));
        } else if (v <= UINT32_MAX) {
                uint32_t be = htobe32((uint32_t) v);
                *p++ = (char) 0xce;
                p = mempcpy(p, &be, sizeof(be));
        } else {
                uint64_t be = htobe64(v);
                *p++ = (char) 0xcf;
                p = mempcpy(p, &be, sizeof(be));
        }
        return p;
}

/* An id as codec_pack_id() writes it: fixext 16, the type, hi and lo big-endian. */
static char *put_id(char *p, int8_t type, kactor_id id) {
        uint64_t be[2] = { htobe64(id.hi), htobe64(id.lo) };
        *p++ = (char) 0xd8;
        *p++ = (char) type;
        return mempcpy(p, be, sizeof(be));
}

/* A string (or nil for NULL) as msgpack_pack_str() and its body write it. */
static char *put_str(char *p, const char *s, size_t len) {
        if (!s) {
                *p++ = (char) 0xc0;
                return p;
        }
        if (len < 32)
                *p++ = (char) (0xa0 | len);
        else if (len <= UINT8_MAX) {
                *p++ = (char) 0xd9;
                *p++ = (char) len;
        } else if (len <= UINT16_MAX) {
                uint16_t be = htobe16((uint16_t) len);
                *p++ = (char) 0xda;
                p = mempcpy(p, &be, sizeof(be));
        } else {
                uint32_t be = htobe32((uint32_t) len);
                *p++ = (char) 0xdb;
                p = mempcpy(p, &be, sizeof(be));
        }
        return mempcpy(p, s, len);
}

#define PUT_UINT_MAX 9
#define PUT_ID_SIZE 18
#define PUT_STR_HEADER_MAX 5
/* A record's frame header and array header (at most 15 fields) with its type: what rec_put_begin()
 * writes. */
#define PUT_REC_HEADER (PROTO_HEADER_SIZE + 3)
_Static_assert(J_LINEAGE < 0x80, "records are written with their type as a positive fixint");

/* Begins a record of n_fields (<= 13) fields in b, written in place in a reservation of max bytes
 * more than its header: returns where its fields go (NULL: out of memory), *ret_off its start. */
static char *rec_put_begin(Buffer *b, JournalRecord type, unsigned n_fields, size_t max, size_t *ret_off) {
        assert(n_fields <= 13);
        if (buffer_reserve(b, PUT_REC_HEADER + max) < 0)
                return NULL;
        *ret_off = b->end;
        char *q = b->data + b->end + PROTO_HEADER_SIZE;
        *q++ = (char) (0x90 | (n_fields + 2));
        *q++ = (char) type;
        *q++ = 0;
        return q;
}

/* Ends the record begun at off, its last byte before q. */
static int rec_put_end(Buffer *b, size_t off, char *q) {
        b->end = (size_t) (q - b->data);
        int r = frame_end(b, off);
        if (r < 0)
                b->end = off;
        return r;
}

static void rec_simple(Persist *p, JournalRecord type, kactor_id id, int8_t ext, size_t n, const uint64_t *v) {
        size_t off;
        char *q = rec_put_begin(&p->buf, type, 1 + n, PUT_ID_SIZE + n * PUT_UINT_MAX, &off);
        if (!q)
                return;
        q = put_id(q, ext, id);
        for (size_t i = 0; i < n; i++)
                q = put_uint(q, v[i]);
        (void) rec_put_end(&p->buf, off, q);
}

static void rec_simple_u64s(Persist *p, JournalRecord type, size_t n, const uint64_t *v) {
        size_t off;
        char *q = rec_put_begin(&p->buf, type, n, n * PUT_UINT_MAX, &off);
        if (!q)
                return;
        for (size_t i = 0; i < n; i++)
                q = put_uint(q, v[i]);
        (void) rec_put_end(&p->buf, off, q);
}

static int write_header(Persist *p) {
        Manager *m = p->manager;
        size_t off;
        int r = rec_begin(p, J_HEADER, 4, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&p->pk, PERSIST_MAGIC) < 0 || msgpack_pack_uint32(&p->pk, PERSIST_FORMAT_VERSION) < 0 ||
                        pack_cstr(&p->pk, KACTOR_VERSION) < 0 || msgpack_pack_uint64(&p->pk, m->node_hi) < 0
                ? -ENOMEM
                : 0;
        return rec_end(p, off, r);
}

/* Ids handed out are above what the journal reserved: reserve the next block before any leaves. */
static void write_ids(Persist *p, bool force) {
        Manager *m = p->manager;
        if (!force && m->next_conn + PERSIST_ID_BLOCK / 2 < p->conn_reserved &&
            m->next_local + PERSIST_ID_BLOCK / 2 < p->local_reserved)
                return;
        p->conn_reserved = m->next_conn + PERSIST_ID_BLOCK;
        p->local_reserved = m->next_local + PERSIST_ID_BLOCK;
        size_t off;
        int r = rec_begin(p, J_IDS, 2, &off);
        if (r >= 0)
                r = msgpack_pack_uint64(&p->pk, p->conn_reserved) < 0 ||
                                msgpack_pack_uint64(&p->pk, p->local_reserved) < 0
                        ? -ENOMEM
                        : 0;
        (void) rec_end(p, off, r);
}

/* The pack_*() writers append a record whatever persist_on() says: a snapshot is written while
 * the journal is not open yet (the first one, after a restore), and must have everything. */
static void pack_conn(Persist *p, uint64_t prefix, uid_t uid) {
        size_t off;
        int r = rec_begin(p, J_CONN, 2, &off);
        if (r >= 0)
                r = pack_u64s(&p->pk, 2, (uint64_t[]){ prefix, uid });
        (void) rec_end(p, off, r);
}

void persist_conn(Manager *m, uint64_t prefix, uid_t uid) {
        if (persist_on(m))
                pack_conn(m->persist, prefix, uid);
}

void persist_conn_end(Manager *m, uint64_t prefix) {
        if (!persist_on(m))
                return;
        Persist *p = m->persist;
        size_t off;
        int r = rec_begin(p, J_CONN_END, 1, &off);
        if (r >= 0)
                r = pack_u64s(&p->pk, 1, &prefix);
        (void) rec_end(p, off, r);
}

/* Field i, a list of at most SPEC_ALLOW_MAX ids, into *ret (NULL when empty or absent). */
static int field_u32_list(const Frame *f, uint32_t i, uint32_t **ret, size_t *ret_n) {
        const msgpack_object *o = frame_field(f, i);
        *ret = NULL;
        *ret_n = 0;
        if (!o)
                return 0; /* written before owners were kept */
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > SPEC_ALLOW_MAX)
                return -EBADMSG;
        if (o->via.array.size == 0)
                return 0;
        _cleanup_free_ uint32_t *v = calloc(o->via.array.size, sizeof(uint32_t));
        if (!v)
                return -ENOMEM;
        for (uint32_t k = 0; k < o->via.array.size; k++) {
                if (o->via.array.ptr[k].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                    o->via.array.ptr[k].via.u64 >= UINT32_MAX)
                        return -EBADMSG;
                v[k] = (uint32_t) o->via.array.ptr[k].via.u64;
        }
        *ret_n = o->via.array.size;
        *ret = TAKE_PTR(v);
        return 0;
}

static int pack_actor(Persist *p, Actor *a) {
        msgpack_packer *pk = &p->pk;
        size_t off;
        int r = rec_begin(p, J_ACTOR, 17, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(pk, CODEC_EXT_ACTOR, a->id);
        if (r >= 0)
                r = pack_cstr(pk, a->name) < 0 || pack_cstr(pk, a->module) < 0 || pack_cstr(pk, a->module_arg) < 0 ||
                                pack_cstr(pk, a->class_name) < 0 || msgpack_pack_uint32(pk, a->uid) < 0 ||
                                msgpack_pack_uint32(pk, a->run_uid) < 0 || msgpack_pack_uint32(pk, a->run_gid) < 0 ||
                                msgpack_pack_array(pk, a->n_gpus) < 0
                        ? -ENOMEM
                        : 0;
        for (size_t i = 0; r >= 0 && i < a->n_gpus; i++)
                r = msgpack_pack_uint32(pk, a->gpus[i]) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = msgpack_pack_double(pk, a->num_cpus) < 0 || msgpack_pack_uint64(pk, a->memory_max) < 0 ||
                                msgpack_pack_uint64(pk, a->tasks_max) < 0 ||
                                msgpack_pack_int64(pk, a->max_restarts) < 0 ||
                                (a->detached ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0 ||
                                msgpack_pack_uint32(pk, a->checkpoint_interval) < 0
                        ? -ENOMEM
                        : 0;
        if (r >= 0)
                r = codec_pack_u32_list(pk, a->allow_users, a->n_allow_users);
        if (r >= 0)
                r = codec_pack_u32_list(pk, a->allow_groups, a->n_allow_groups);
        if (r >= 0)
                r = buffer_append(&p->buf, a->args, a->args_len);
        return rec_end(p, off, r);
}

static int pack_worker(Persist *p, Actor *a) {
        msgpack_packer *pk = &p->pk;
        Worker *w = a->worker;
        ActorCgroup *cg = a->cgroup;
        size_t off;
        int r = rec_begin(p, J_WORKER, 10, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(pk, CODEC_EXT_ACTOR, a->id);
        if (r >= 0)
                r = msgpack_pack_int64(pk, w->pid) < 0 ||
                                msgpack_pack_uint64(pk, w->conn ? w->conn->id_prefix : w->attach_prefix) < 0 ||
                                msgpack_pack_uint32(pk, a->restarts) < 0 || pack_cstr(pk, cg ? cg->kind : NULL) < 0 ||
                                pack_cstr(pk, cg ? cg->id : NULL) < 0 || pack_cstr(pk, cg ? cg->unit : NULL) < 0 ||
                                pack_cstr(pk, cg ? cg->path : NULL) < 0 || pack_cstr(pk, cg ? cg->v2_dir : NULL) < 0 ||
                                msgpack_pack_uint64(pk, w->starttime) < 0
                        ? -ENOMEM
                        : 0;
        return rec_end(p, off, r);
}

static bool actor_persisted(const Actor *a) {
        return !a->shadow && a->state != ACTOR_DEAD;
}

void persist_actor(Actor *a) {
        if (persist_on(a->manager) && actor_persisted(a))
                (void) pack_actor(a->manager->persist, a);
}

void persist_actor_worker(Actor *a) {
        Manager *m = a->manager;
        if (!persist_on(m) || !actor_persisted(a) || !a->worker)
                return;
        uint64_t prefix = a->worker->conn ? a->worker->conn->id_prefix : a->worker->attach_prefix;
        persist_conn(m, prefix, a->run_uid);
        /* A new worker's seqs count from 1: the old one's last comes before its record. */
        pending_seq_write(m->persist, a);
        (void) pack_worker(m->persist, a);
}

void persist_actor_ready(Actor *a) {
        if (persist_on(a->manager) && actor_persisted(a))
                rec_simple(a->manager->persist, J_READY, a->id, CODEC_EXT_ACTOR, 0, NULL);
}

static void pack_bus_owner(Persist *p, Actor *a) {
        size_t off;
        int r = rec_begin(p, J_BUS_OWNER, 2, &off);
        if (r < 0)
                return;
        r = codec_pack_id(&p->pk, CODEC_EXT_ACTOR, a->id);
        if (r >= 0)
                r = pack_cstr(&p->pk, a->bus_owner);
        (void) rec_end(p, off, r);
}

void persist_bus_owner(Actor *a) {
        if (persist_on(a->manager) && actor_persisted(a))
                pack_bus_owner(a->manager->persist, a);
}

void persist_actor_end(Actor *a) {
        if (persist_on(a->manager) && !a->shadow)
                rec_simple(a->manager->persist, J_ACTOR_END, a->id, CODEC_EXT_ACTOR, 0, NULL);
}


/*
 * A lineage record's fields, and its arguments (already packed) as the trailing value: the bytes
 * rec_begin() and the packer would write, written in place in one reservation. Every logged call
 * comes through here (and again when the lineage file is written whole).
 */
static int pack_log(Buffer *b, Actor *a, const LineageRecord *rec, uint64_t seq) {
        size_t mlen = rec->method ? strlen(rec->method) : 0, off;
        char *q = rec_put_begin(b, J_LOG, 6,
                                PUT_ID_SIZE + 2 * PUT_UINT_MAX + PUT_ID_SIZE + PUT_STR_HEADER_MAX + mlen +
                                        PUT_UINT_MAX + rec->args_len,
                                &off);
        if (!q)
                return -ENOMEM;
        q = put_id(q, CODEC_EXT_ACTOR, a->id);
        q = put_uint(q, seq);
        q = put_uint(q, rec->index);
        q = put_id(q, CODEC_EXT_OBJECT, rec->result);
        q = put_str(q, rec->method, mlen);
        q = put_uint(q, rec->code);
        if (rec->args_len > 0)
                q = mempcpy(q, rec->args, rec->args_len);
        return rec_put_end(b, off, q);
}

/* The seq of a's worker to journal at the end of this iteration (J_SEQ: what the worker need not
 * send again); the last one of the iteration is the one that counts. */
static void pending_seq(Persist *p, Actor *a, uint64_t seq) {
        size_t i = a->persist_seq_slot;
        if (i > 0 && i <= p->n_pending_seqs && kactor_id_equal(p->pending_seqs[i - 1].id, a->id)) {
                p->pending_seqs[i - 1].seq = MAX(p->pending_seqs[i - 1].seq, seq);
                return;
        }
        if (p->n_pending_seqs == p->cap_pending_seqs) {
                size_t cap = MAX(p->cap_pending_seqs * 2, (size_t) 16);
                struct PendingSeq *n = reallocarray(p->pending_seqs, cap, sizeof(*n));
                if (!n) {
                        /* Written now instead: one record more. */
                        rec_simple(p, J_SEQ, a->id, CODEC_EXT_ACTOR, 1, &seq);
                        return;
                }
                p->pending_seqs = n;
                p->cap_pending_seqs = cap;
        }
        p->pending_seqs[p->n_pending_seqs++] = (struct PendingSeq){ a->id, seq };
        a->persist_seq_slot = p->n_pending_seqs;
}

/* Writes a's pending seq now: what comes next (a new worker's record) must follow it. */
static void pending_seq_write(Persist *p, Actor *a) {
        size_t i = a->persist_seq_slot;
        a->persist_seq_slot = 0;
        if (i == 0 || i > p->n_pending_seqs || !kactor_id_equal(p->pending_seqs[i - 1].id, a->id))
                return;
        rec_simple(p, J_SEQ, a->id, CODEC_EXT_ACTOR, 1, &p->pending_seqs[i - 1].seq);
        p->pending_seqs[i - 1].id = (kactor_id){};
}

/* At the end of an iteration: the pending seqs of the actors still journaled. */
static void pending_seqs_write(Persist *p) {
        Manager *m = p->manager;
        for (size_t i = 0; i < p->n_pending_seqs; i++) {
                struct PendingSeq *q = &p->pending_seqs[i];
                if (kactor_id_is_null(q->id))
                        continue;
                Actor *a = manager_find_actor(m, q->id);
                if (!a || !actor_persisted(a))
                        continue;
                a->persist_seq_slot = 0;
                rec_simple(p, J_SEQ, a->id, CODEC_EXT_ACTOR, 1, &q->seq);
        }
        p->n_pending_seqs = 0;
}

void persist_lineage(Actor *a, const LineageRecord *rec, uint64_t seq) {
        Persist *p = a->manager->persist;
        if (!rec || !persist_on(a->manager) || !actor_persisted(a))
                return;
        (void) pack_log(&p->lineage_buf, a, rec, seq);
        pending_seq(p, a, seq);
}

void persist_seq(Actor *a, uint64_t seq) {
        if (persist_on(a->manager) && actor_persisted(a))
                pending_seq(a->manager->persist, a, seq);
}

static int pack_checkpoint(Persist *p, Actor *a, uint64_t seq) {
        size_t off;
        int r = rec_begin(p, J_CHECKPOINT, 3, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(&p->pk, CODEC_EXT_ACTOR, a->id);
        if (r >= 0)
                r = pack_u64s(&p->pk, 2, (uint64_t[]){ a->lineage.checkpoint_index, seq });
        if (r >= 0)
                r = buffer_append(&p->buf, a->lineage.checkpoint, a->lineage.checkpoint_len);
        return rec_end(p, off, r);
}

void persist_checkpoint(Actor *a) {
        if (persist_on(a->manager) && actor_persisted(a) && a->lineage.checkpoint)
                (void) pack_checkpoint(a->manager->persist, a, 0);
}

/* Its owner's prefix: the connection that holds it, or the one that made it when it is finished
 * before it is handed over (a put: its id is in the maker's range). */
static uint64_t object_owner_prefix(const Object *o) {
        const Conn *c = o->owner;
        return c ? c->id_prefix : o->persisted_owner;
}

/* Every finished object comes through here: written in place, as pack_log() does. */
static int pack_finished(Persist *p, kactor_id id, ObjectState state, uint64_t owner, bool pinned, kactor_error error,
                         const char *message, uid_t uid, const char *data, size_t len) {
        size_t mlen = message ? strlen(message) : 0, vlen = state == OBJECT_READY ? len : 0, off;
        char *q = rec_put_begin(&p->buf, J_OBJECT, 7,
                                PUT_ID_SIZE + 5 * PUT_UINT_MAX + 1 + PUT_STR_HEADER_MAX + mlen + vlen, &off);
        if (!q)
                return -ENOMEM;
        q = put_id(q, CODEC_EXT_OBJECT, id);
        q = put_uint(q, state);
        q = put_uint(q, owner);
        *q++ = (char) (pinned ? 0xc3 : 0xc2);
        q = put_uint(q, error);
        q = put_str(q, message, mlen);
        q = put_uint(q, uid);
        if (vlen > 0)
                q = mempcpy(q, data, vlen);
        return rec_put_end(&p->buf, off, q);
}

static int pack_object(Persist *p, Object *o) {
        return pack_finished(p, o->id, o->state, object_owner_prefix(o), o->pinned, o->error,
                             o->state == OBJECT_FAILED ? o->message : NULL, o->uid, o->data, o->len);
}

/* A direct call's result kept for its caller (direct-results.h): the record an object of it has. */
static int pack_direct_result(Persist *p, const Conn *c, const DirectResult *d) {
        return pack_finished(p, (kactor_id){ p->manager->node_hi, d->lo },
                             d->error == KACTOR_OK ? OBJECT_READY : OBJECT_FAILED, c->id_prefix, false,
                             (kactor_error) d->error, d->message, c->uid, d->data, d->len);
}

static bool object_persistable(const Object *o) {
        /* An evicted value is not here to write: it is rebuilt or read back on demand, which a
         * restarted manager cannot do for it (docs/restart.md). */
        return o->state == OBJECT_FAILED || (o->state == OBJECT_READY && o->data);
}

static void bus_request_free(BusRequest **head, BusRequest *b) {
        HASH_DEL(*head, b);
        free(b->data);
        free(b);
}

/* The object's request is answered (or gone): nothing to send again for it. */
static bool bus_request_forget(Persist *p, kactor_id id) {
        BusRequest *b;
        HASH_FIND(hh, p->bus_requests, &id, sizeof(id), b);
        if (!b)
                return false;
        bus_request_free(&p->bus_requests, b);
        return true;
}

void persist_object(Manager *m, Object *o) {
        if (m->persist)
                (void) bus_request_forget(m->persist, o->id);
        if (!persist_on(m) || !object_persistable(o))
                return;
        if (pack_object(m->persist, o) >= 0) {
                o->persisted = true;
                o->persisted_owner = object_owner_prefix(o);
        }
}

bool persist_direct_result(Manager *m, const Conn *c, const DirectResult *d) {
        return persist_on(m) && pack_direct_result(m->persist, c, d) >= 0;
}

void persist_direct_result_freed(Manager *m, kactor_id id) {
        if (persist_on(m))
                rec_simple(m->persist, J_FREE, id, CODEC_EXT_OBJECT, 0, NULL);
}

void persist_object_freed(Manager *m, Object *o) {
        bool requested = m->persist && bus_request_forget(m->persist, o->id);
        if (persist_on(m) && (o->persisted || requested))
                rec_simple(m->persist, J_FREE, o->id, CODEC_EXT_OBJECT, 0, NULL);
}

/* Keeps the record packed at off (the tail of the batch) for the snapshots to come. */
static int bus_request_keep(Persist *p, kactor_id id, const char *record, size_t len) {
        BusRequest *b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->data = memdup(record, len);
        if (!b->data) {
                free(b);
                return -ENOMEM;
        }
        b->id = id;
        b->payload = b->data;
        b->len = len;
        HASH_ADD(hh, p->bus_requests, id, sizeof(b->id), b);
        return 0;
}

void persist_bus_request(Manager *m, Object *o, const char *module, kactor_id actor, const char *method, double num_cpus,
                         const char *args, size_t args_len) {
        if (!persist_on(m) || o->state != OBJECT_PENDING)
                return;
        Persist *p = m->persist;
        msgpack_packer *pk = &p->pk;
        size_t off;
        int r = rec_begin(p, J_BUS_REQUEST, 7, &off);
        if (r < 0)
                return;
        r = codec_pack_id(pk, CODEC_EXT_OBJECT, o->id);
        if (r >= 0)
                r = msgpack_pack_uint32(pk, module ? 1 : 0) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = module ? (msgpack_pack_nil(pk) < 0 ? -ENOMEM : 0) : codec_pack_id(pk, CODEC_EXT_ACTOR, actor);
        if (r >= 0)
                r = pack_cstr(pk, method) < 0 || pack_cstr(pk, module) < 0 || msgpack_pack_uint32(pk, o->uid) < 0 ||
                                msgpack_pack_double(pk, num_cpus) < 0
                        ? -ENOMEM
                        : 0;
        if (r >= 0)
                r = buffer_append(&p->buf, args, args_len);
        if (rec_end(p, off, r) < 0)
                return;
        (void) bus_request_keep(p, o->id, p->buf.data + off, p->buf.end - off);
}

static void pack_hold(Persist *p, uint64_t prefix, kactor_id id, PersistHold what, bool held) {
        size_t off;
        char *q = rec_put_begin(&p->buf, J_HOLD, 4, 2 * PUT_UINT_MAX + PUT_ID_SIZE + 1, &off);
        if (!q)
                return;
        q = put_uint(q, prefix);
        q = put_id(q, what == PERSIST_HOLD_ACTOR ? CODEC_EXT_ACTOR : CODEC_EXT_OBJECT, id);
        q = put_uint(q, what);
        *q++ = (char) (held ? 0xc3 : 0xc2);
        (void) rec_put_end(&p->buf, off, q);
}

void persist_hold(Manager *m, uint64_t prefix, kactor_id id, PersistHold what, bool held) {
        if (persist_on(m))
                pack_hold(m->persist, prefix, id, what, held);
}

static int write_all(int fd, const char *data, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Writes the records in b as one batch: its length and CRC-32, then the records. */
static int write_batch(int fd, const Buffer *b) {
        size_t len = buffer_size(b);
        if (len > UINT32_MAX)
                return -E2BIG;
        uint32_t crc = (uint32_t) crc32_z(0, (const Bytef *) b->data + b->start, len);
        uint8_t head[8] = { len, len >> 8, len >> 16, len >> 24, crc, crc >> 8, crc >> 16, crc >> 24 };
        struct iovec iov[2] = { { head, sizeof(head) }, { b->data + b->start, len } };
        size_t total = sizeof(head) + len;
        for (;;) {
                ssize_t n = writev(fd, iov, 2);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if ((size_t) n == total)
                        return 0;
                /* Short (a full disk, say): the rest as it is. */
                size_t done = (size_t) n;
                if (done < sizeof(head)) {
                        int r = write_all(fd, (const char *) head + done, sizeof(head) - done);
                        return r < 0 ? r : write_all(fd, b->data + b->start, len);
                }
                return write_all(fd, b->data + b->start + (done - sizeof(head)), len - (done - sizeof(head)));
        }
}

static char *lineage_path(const Persist *p, uint64_t gen) {
        char *path;
        if (asprintf(&path, "%s.%" PRIu64, p->lineage_prefix, gen) < 0)
                return NULL;
        return path;
}

/* Where the lineage file is and how far it goes: what a reader takes of it. */
static void rec_lineage(Persist *p) {
        if (p->lineage_gen > 0)
                rec_simple_u64s(p, J_LINEAGE, 2, (uint64_t[]){ p->lineage_gen, p->lineage_size });
}

/* A snapshot goes out in batches of about this size as it is made, so that its buffer stays small and
 * in cache however long the actors' logs are: a snapshot holds every logged call since each actor's
 * last checkpoint, and it is rewritten as the journal grows. */
#define PERSIST_SNAPSHOT_BATCH (1024u * 1024u)

/* Writes what b has so far to fd as a batch (*written counts it), once there is at least min. */
static int batch_spill(Buffer *b, int fd, size_t min, uint64_t *written) {
        if (buffer_size(b) < MAX(min, (size_t) 1))
                return 0;
        int r = write_batch(fd, b);
        if (r < 0)
                return r;
        *written += 8 + buffer_size(b);
        b->start = b->end = 0;
        return 0;
}

/* Everything live, as records: what a new journal starts with. Long logs are written to fd as they
 * are packed (*written counts it); the rest is left in p->buf. */
static int persist_snapshot(Persist *p, int fd, uint64_t *written) {
        Manager *m = p->manager;
        int r;

        r = write_header(p);
        if (r < 0)
                return r;
        write_ids(p, true);
        Conn *c;
        LIST_FOREACH(c, &m->conns, link) {
                /* A placeholder too: its client has not come back yet (one that only calls its
                 * actors directly may not need to until after the next restart), and comes back to
                 * what it held however many restarts that takes. */
                if (c->dead || (!c->welcomed && !c->worker && !c->ghost))
                        continue;
                pack_conn(p, c->id_prefix, c->uid);
                Hold *h, *tmp;
                HASH_ITER(hh, c->holds, h, tmp)
                        pack_hold(p, c->id_prefix, h->id, h->actor ? PERSIST_HOLD_ACTOR : PERSIST_HOLD_OBJECT, true);
        }
        Actor *a, *atmp;
        HASH_ITER(hh, m->actors, a, atmp) {
                if (!actor_persisted(a))
                        continue;
                r = pack_actor(p, a);
                if (r >= 0 && a->worker)
                        r = pack_worker(p, a);
                if (r >= 0 && (a->state == ACTOR_ALIVE || lineage_size(&a->lineage) > 0 || a->lineage.checkpoint))
                        rec_simple(p, J_READY, a->id, CODEC_EXT_ACTOR, 0, NULL);
                if (r >= 0 && a->bus_owner)
                        pack_bus_owner(p, a);
                if (r >= 0 && a->lineage.checkpoint)
                        r = pack_checkpoint(p, a, 0);
                /* Its log is in the lineage file (J_LINEAGE, below). */
                if (r >= 0)
                        r = batch_spill(&p->buf, fd, PERSIST_SNAPSHOT_BATCH, written);
                if (r >= 0 && a->worker)
                        /* Results up to here are known; their seqs do not matter past this point. */
                        rec_simple(p, J_SEQ, a->id, CODEC_EXT_ACTOR, 1,
                                   (uint64_t[]){ MAX(a->worker->handled_seq, a->journaled_seq) });
                if (r < 0)
                        return r;
        }
        Object *o, *otmp;
        HASH_ITER(hh, m->store.objects, o, otmp) {
                if (!object_persistable(o))
                        continue;
                r = pack_object(p, o);
                if (r < 0)
                        return r;
                o->persisted = true;
        }
        LIST_FOREACH(c, &m->conns, link)
                for (size_t i = 0; c->direct_results && i < c->direct_results->n_slots; i++) {
                        DirectResult *d = &c->direct_results->slots[i];
                        if (d->lo == 0)
                                continue;
                        r = pack_direct_result(p, c, d);
                        if (r < 0)
                                return r;
                        d->persisted = true;
                }
        BusRequest *b, *btmp;
        HASH_ITER(hh, p->bus_requests, b, btmp) {
                r = buffer_append(&p->buf, b->payload, b->len);
                if (r < 0)
                        return r;
        }
        rec_lineage(p);
        return 0;
}

/* Writes the whole lineage as the next generation of the lineage file (its fd in *ret_fd, its
 * size in *ret_size): what a J_LINEAGE record then makes the one to read. */
static int lineage_write_whole(Persist *p, uint64_t gen, int *ret_fd, uint64_t *ret_size) {
        Manager *m = p->manager;
        _cleanup_free_ char *path = lineage_path(p, gen);
        _cleanup_(buffer_free) Buffer b = {};
        uint64_t size = 0;
        int r = 0;

        if (!path)
                return -ENOMEM;
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        Actor *a, *atmp;
        HASH_ITER(hh, m->actors, a, atmp) {
                if (!actor_persisted(a))
                        continue;
                for (size_t i = 0; r >= 0 && i < lineage_size(&a->lineage); i++) {
                        r = pack_log(&b, a, lineage_at(&a->lineage, i), 0);
                        if (r >= 0)
                                r = batch_spill(&b, fd, PERSIST_SNAPSHOT_BATCH, &size);
                }
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = batch_spill(&b, fd, 0, &size);
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        *ret_size = size;
        return 0;
}

/* Removes the lineage files but the one of generation keep (0: all of them). */
static void lineage_remove_others(Persist *p, uint64_t keep) {
        _cleanup_free_ char *dir = strdup(p->lineage_prefix);
        if (!dir)
                return;
        char *slash = strrchr(dir, '/');
        const char *base = slash ? slash + 1 : dir;
        if (slash)
                *slash = 0;
        DIR *d = opendir(slash ? dir : ".");
        if (!d)
                return;
        size_t n = strlen(base);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, base, n) != 0 || de->d_name[n] != '.')
                        continue;
                char *end;
                errno = 0;
                unsigned long long gen = strtoull(de->d_name + n + 1, &end, 10);
                if (errno != 0 || *end != 0 || end == de->d_name + n + 1 || gen == keep)
                        continue;
                (void) unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

/* Rewrites the journal as a snapshot (state.new, renamed over state); with whole_lineage, the
 * lineage file too, as its next generation (at start: the one read may hold bytes past its length,
 * or be inline in a journal of format version 1). */
static int persist_compact(Persist *p, bool whole_lineage) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1, lineage_fd = -1;
        uint64_t lineage_gen = p->lineage_gen, lineage_size = p->lineage_size;
        int r;

        if (asprintf(&tmp, "%s.new", p->path) < 0)
                return -ENOMEM;
        if (whole_lineage) {
                lineage_gen++;
                r = lineage_write_whole(p, lineage_gen, &lineage_fd, &lineage_size);
                if (r < 0)
                        return r;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = negative_errno();
                goto fail_lineage;
        }
        Buffer saved = p->buf;
        uint64_t written = 0, old_gen = p->lineage_gen, old_size = p->lineage_size;
        p->buf = (Buffer){};
        msgpack_packer_init(&p->pk, &p->buf, buffer_msgpack_write);
        p->lineage_gen = lineage_gen;
        p->lineage_size = lineage_size;
        r = persist_snapshot(p, fd, &written);
        if (r >= 0)
                r = batch_spill(&p->buf, fd, 0, &written);
        if (r >= 0 && rename(tmp, p->path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                buffer_free(&p->buf);
                p->buf = saved;
                msgpack_packer_init(&p->pk, &p->buf, buffer_msgpack_write);
                p->lineage_gen = old_gen;
                p->lineage_size = old_size;
                goto fail_lineage;
        }
        /* What this iteration had queued is in the snapshot already. */
        buffer_free(&saved);
        p->file_size = p->snapshot_size = written;
        p->buf.start = p->buf.end = 0;
        safe_close(p->fd);
        p->fd = TAKE_FD(fd);
        if (whole_lineage) {
                safe_close(p->lineage_fd);
                p->lineage_fd = TAKE_FD(lineage_fd);
                p->lineage_whole_size = lineage_size;
        }
        /* The state names its generation now: any other (the one before, one a crash left) goes. */
        lineage_remove_others(p, lineage_gen);
        return 0;

fail_lineage:
        if (whole_lineage) {
                _cleanup_free_ char *path = lineage_path(p, lineage_gen);
                if (path)
                        (void) unlink(path);
        }
        return r;
}

/* Writes this iteration's batches, the lineage file's first (the state's then says how far it
 * goes); then the results they held are durable, which the workers learn
 * (worker_results_durable()): with no journal at all they are at once, nothing being kept. */
void persist_flush(Manager *m) {
        Persist *p = m->persist;
        if (persist_on(m)) {
                write_ids(p, false);
                if (buffer_size(&p->lineage_buf) > 0) {
                        int r = write_batch(p->lineage_fd, &p->lineage_buf);
                        if (r < 0) {
                                log_error_errno(r, "Failed to write the lineage file %s.%" PRIu64 ", actors will not survive a restart of the node manager: %m",
                                                p->lineage_prefix, p->lineage_gen);
                                p->failed = true;
                        } else {
                                p->lineage_size += 8 + buffer_size(&p->lineage_buf);
                                rec_lineage(p);
                        }
                        p->lineage_buf.start = p->lineage_buf.end = 0;
                }
                pending_seqs_write(p);
                if (!p->failed && buffer_size(&p->buf) > 0) {
                        int r = write_batch(p->fd, &p->buf);
                        if (r < 0) {
                                log_error_errno(r, "Failed to write the state journal %s, actors will not survive a restart of the node manager: %m",
                                                p->path);
                                p->failed = true;
                        } else {
                                p->file_size += 8 + buffer_size(&p->buf);
                                p->buf.start = p->buf.end = 0;
                        }
                }
                /* The lineage file is rewritten when more than half of it is dead: the live
                 * lineage in memory (records and checkpoints, which take more room there than
                 * here) stands for what is live in it. */
                bool whole_lineage = p->lineage_size > p->lineage_whole_size + PERSIST_COMPACT_SLACK &&
                        p->lineage_size > 2 * (uint64_t) m->lineage_bytes + PERSIST_COMPACT_SLACK;
                if (!p->failed &&
                    (whole_lineage || p->file_size > 2 * p->snapshot_size + PERSIST_COMPACT_SLACK)) {
                        int r = persist_compact(p, whole_lineage);
                        if (r < 0) {
                                log_warning_errno(r, "Failed to compact the state journal %s: %m", p->path);
                                /* Not tried again (a full disk, say) before either file has grown by
                                 * as much again: not at every iteration. */
                                p->snapshot_size = p->file_size / 2;
                                p->lineage_whole_size = p->lineage_size;
                        }
                }
        }
        worker_results_durable(m);
}

/* --- reading ------------------------------------------------------------------------------------- */

static void loaded_free(Loaded *l) {
        if (!l)
                return;
        LoadedConn *c, *ctmp;
        HASH_ITER(hh, l->conns, c, ctmp) {
                HASH_DEL(l->conns, c);
                free(c);
        }
        LoadedHold *h, *htmp;
        HASH_ITER(hh, l->holds, h, htmp) {
                HASH_DEL(l->holds, h);
                free(h);
        }
        LoadedObject *o, *otmp;
        HASH_ITER(hh, l->objects, o, otmp) {
                HASH_DEL(l->objects, o);
                free(o);
        }
        LoadedActor *a, *atmp;
        HASH_ITER(hh, l->actors, a, atmp) {
                HASH_DEL(l->actors, a);
                lineage_done(&a->lineage);
                free(a);
        }
        BusRequest *b, *btmp;
        HASH_ITER(hh, l->bus_requests, b, btmp)
                bus_request_free(&l->bus_requests, b);
        free(l->data);
        free(l);
}

/* The actor a record names; made when it is the first record of it (its worker is recorded as it
 * starts, before the actor's own record). */
static LoadedActor *loaded_actor(Loaded *l, const Frame *f) {
        kactor_id id;
        LoadedActor *a;
        if (frame_field_id(f, 0, CODEC_EXT_ACTOR, &id) < 0)
                return NULL;
        HASH_FIND(hh, l->actors, &id, sizeof(id), a);
        if (a || f->type == J_ACTOR_END)
                return a;
        a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->id = id;
        lineage_init(&a->lineage);
        HASH_ADD(hh, l->actors, id, sizeof(a->id), a);
        return a;
}

/* One record into l. -EBADMSG for a record that does not parse. */
static int load_record(Loaded *l, const Frame *f, const char *payload, size_t len) {
        kactor_id id;
        uint64_t u, v;
        LoadedActor *a;

        switch (f->type) {
        case J_IDS:
        case J_HEADER:
                return 0; /* read by persist_open() */
        case J_CONN: {
                LoadedConn *c;
                if (frame_field_u64(f, 0, &u) < 0 || frame_field_u64(f, 1, &v) < 0)
                        return -EBADMSG;
                HASH_FIND(hh, l->conns, &u, sizeof(u), c);
                if (!c) {
                        c = calloc(1, sizeof(*c));
                        if (!c)
                                return -ENOMEM;
                        c->prefix = u;
                        HASH_ADD(hh, l->conns, prefix, sizeof(c->prefix), c);
                }
                c->uid = (uid_t) v;
                return 0;
        }
        case J_CONN_END: {
                LoadedConn *c;
                if (frame_field_u64(f, 0, &u) < 0)
                        return -EBADMSG;
                HASH_FIND(hh, l->conns, &u, sizeof(u), c);
                if (c) {
                        HASH_DEL(l->conns, c);
                        free(c);
                }
                LoadedHold *h, *tmp;
                HASH_ITER(hh, l->holds, h, tmp)
                        if (h->key.prefix == u) {
                                HASH_DEL(l->holds, h);
                                free(h);
                        }
                return 0;
        }
        case J_ACTOR:
                a = loaded_actor(l, f);
                if (!a)
                        return -EBADMSG;
                a->actor = payload;
                a->actor_len = len;
                return 0;
        case J_WORKER:
                a = loaded_actor(l, f);
                if (a) {
                        a->worker = payload;
                        a->worker_len = len;
                        a->seq = 0; /* a new worker counts from 1 */
                }
                return 0;
        case J_ACTOR_END:
                a = loaded_actor(l, f);
                if (a) {
                        HASH_DEL(l->actors, a);
                        lineage_done(&a->lineage);
                        free(a);
                }
                return 0;
        case J_LOG: {
                const char *method;
                size_t method_len;
                kactor_id result;
                uint64_t index, code;
                a = loaded_actor(l, f);
                if (!a)
                        return 0;
                if (frame_field_u64(f, 1, &u) < 0 || frame_field_u64(f, 2, &index) < 0 ||
                    frame_field_id(f, 3, CODEC_EXT_OBJECT, &result) < 0 ||
                    frame_field_str(f, 4, &method, &method_len) < 0 || frame_field_u64(f, 5, &code) < 0 ||
                    !f->has_body || index == 0)
                        return -EBADMSG;
                /* An index the log has is not appended twice; a gap (never written) is skipped. */
                if (index >= a->lineage.next_index) {
                        if (lineage_size(&a->lineage) == 0)
                                a->lineage.next_index = index;
                        _cleanup_free_ char *m = strndup(method, method_len);
                        if (!m)
                                return -ENOMEM;
                        if (index == a->lineage.next_index &&
                            lineage_append(&a->lineage, result, m, f->body_raw, f->body_len,
                                           code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_TASK_FAILED) < 0)
                                return -ENOMEM;
                }
                a->seq = MAX(a->seq, u);
                return 0;
        }
        case J_CHECKPOINT:
                a = loaded_actor(l, f);
                if (!a)
                        return 0;
                if (frame_field_u64(f, 1, &u) < 0 || frame_field_u64(f, 2, &v) < 0 || !f->has_body)
                        return -EBADMSG;
                if (u >= a->lineage.checkpoint_index && u < a->lineage.next_index) {
                        if (lineage_checkpoint(&a->lineage, u, f->body_raw, f->body_len) < 0)
                                return -ENOMEM;
                } else {
                        /* A snapshot: the checkpoint comes first, the records after it follow. */
                        lineage_done(&a->lineage);
                        lineage_init(&a->lineage);
                        if (lineage_restore(&a->lineage, u, f->body_raw, f->body_len) < 0)
                                return -EBADMSG;
                }
                a->seq = MAX(a->seq, v);
                return 0;
        case J_BUS_OWNER:
                a = loaded_actor(l, f);
                if (a && frame_field_str(f, 1, &a->bus_owner, &a->bus_owner_len) < 0)
                        a->bus_owner = NULL;
                return 0;
        case J_READY:
                a = loaded_actor(l, f);
                if (a)
                        a->ready = true;
                return 0;
        case J_SEQ:
                a = loaded_actor(l, f);
                if (a && frame_field_u64(f, 1, &u) >= 0)
                        a->seq = MAX(a->seq, u);
                return 0;
        case J_BUS_REQUEST: {
                BusRequest *b;
                if (frame_field_id(f, 0, CODEC_EXT_OBJECT, &id) < 0)
                        return -EBADMSG;
                HASH_FIND(hh, l->bus_requests, &id, sizeof(id), b);
                if (!b) {
                        b = calloc(1, sizeof(*b));
                        if (!b)
                                return -ENOMEM;
                        b->id = id;
                        HASH_ADD(hh, l->bus_requests, id, sizeof(b->id), b);
                }
                b->payload = payload;
                b->len = len;
                return 0;
        }
        case J_OBJECT: {
                LoadedObject *o;
                BusRequest *b;
                if (frame_field_id(f, 0, CODEC_EXT_OBJECT, &id) < 0)
                        return -EBADMSG;
                HASH_FIND(hh, l->bus_requests, &id, sizeof(id), b);
                if (b) /* answered */
                        bus_request_free(&l->bus_requests, b);
                HASH_FIND(hh, l->objects, &id, sizeof(id), o);
                if (o) /* made again (rebuilt): the later value, in the later place */
                        HASH_DEL(l->objects, o);
                else if (!(o = calloc(1, sizeof(*o))))
                        return -ENOMEM;
                *o = (LoadedObject){ .id = id, .payload = payload, .len = len };
                HASH_ADD(hh, l->objects, id, sizeof(o->id), o);
                return 0;
        }
        case J_FREE: {
                LoadedObject *o;
                BusRequest *b;
                if (frame_field_id(f, 0, CODEC_EXT_OBJECT, &id) < 0)
                        return -EBADMSG;
                HASH_FIND(hh, l->bus_requests, &id, sizeof(id), b);
                if (b) /* released before it was answered */
                        bus_request_free(&l->bus_requests, b);
                HASH_FIND(hh, l->objects, &id, sizeof(id), o);
                if (o) {
                        HASH_DEL(l->objects, o);
                        free(o);
                }
                return 0;
        }
        case J_HOLD: {
                HoldKey k = {};
                bool held;
                if (frame_field_u64(f, 0, &k.prefix) < 0 || frame_field_u64(f, 2, &u) < 0 || u > PERSIST_HOLD_PIN ||
                    frame_field_bool(f, 3, &held) < 0 ||
                    frame_field_id(f, 1, u == PERSIST_HOLD_ACTOR ? CODEC_EXT_ACTOR : CODEC_EXT_OBJECT, &k.id) < 0)
                        return -EBADMSG;
                k.what = (uint32_t) u;
                if (k.what == PERSIST_HOLD_OWN || k.what == PERSIST_HOLD_PIN) {
                        LoadedObject *o;
                        HASH_FIND(hh, l->objects, &k.id, sizeof(k.id), o);
                        if (!o)
                                return 0;
                        if (k.what == PERSIST_HOLD_OWN) {
                                o->owner_changed = true;
                                o->new_owner = held ? k.prefix : 0;
                        } else {
                                o->pin_changed = true;
                                o->pinned = held;
                        }
                        return 0;
                }
                LoadedHold *h;
                HASH_FIND(hh, l->holds, &k, sizeof(k), h);
                if (held && !h) {
                        h = calloc(1, sizeof(*h));
                        if (!h)
                                return -ENOMEM;
                        h->key = k;
                        HASH_ADD(hh, l->holds, key, sizeof(h->key), h);
                } else if (!held && h) {
                        HASH_DEL(l->holds, h);
                        free(h);
                }
                return 0;
        }
        case J_LINEAGE:
                if (frame_field_u64(f, 0, &u) < 0 || frame_field_u64(f, 1, &v) < 0 || u == 0)
                        return -EBADMSG;
                l->has_lineage = true;
                l->lineage_gen = u;
                l->lineage_len = v;
                return 0;
        default:
                return -EBADMSG;
        }
}

static int read_file(int fd, char **ret, size_t *ret_size) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        size_t size = (size_t) st.st_size;
        char *data = malloc(size ?: 1);
        if (!data)
                return -ENOMEM;
        size_t k = 0;
        while (k < size) {
                ssize_t n = read(fd, data + k, size - k);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        free(data);
                        return n < 0 ? negative_errno() : -EIO;
                }
                k += (size_t) n;
        }
        *ret = data;
        *ret_size = size;
        return 0;
}

/* Sets a journal that cannot be used aside, for whoever wants to look at it. */
static void persist_set_aside(Persist *p, const char *why) {
        _cleanup_free_ char *aside = NULL;
        if (asprintf(&aside, "%s.unreadable", p->path) >= 0 && rename(p->path, aside) >= 0)
                log_error("The state journal %s %s; it was moved to %s and nothing was restored: the actors of "
                          "the previous node manager are stopped.",
                          p->path, why, aside);
        else
                log_error("The state journal %s %s; nothing was restored.", p->path, why);
}

/* Walks the batches of a journal file: calls fn for each record, in order, until fn returns
 * non-zero (returned) or damage (a bad length or CRC, a record that does not parse: *ret_damage
 * says which, *ret_at where). *ret_records counts the records read. */
static int walk_batches(const char *data, size_t size, int (*fn)(void *userdata, const Frame *f, const char *payload, size_t len),
                        void *userdata, size_t *ret_records, size_t *ret_at, const char **ret_damage) {
        Frame f;
        size_t at = 0, n_records = 0;
        const char *damage = NULL;
        int r = 0;

        frame_init(&f);
        while (at < size && !damage && r == 0) {
                /* A batch: length, CRC, records. */
                const uint8_t *h = (const uint8_t *) data + at;
                if (size - at < 8) {
                        damage = "a batch is cut short";
                        break;
                }
                size_t len = h[0] | (size_t) h[1] << 8 | (size_t) h[2] << 16 | (size_t) h[3] << 24;
                uint32_t crc = h[4] | (uint32_t) h[5] << 8 | (uint32_t) h[6] << 16 | (uint32_t) h[7] << 24;
                if (len > size - at - 8) {
                        damage = "a batch is cut short";
                        break;
                }
                if (crc != (uint32_t) crc32_z(0, h + 8, len)) {
                        damage = "a checksum does not match";
                        break;
                }
                Buffer b = { .data = (char *) data + at + 8, .start = 0, .end = len, .cap = len };
                while (buffer_size(&b) > 0 && r == 0) {
                        const char *payload;
                        size_t plen;
                        if (frame_peek(&b, &payload, &plen) <= 0 || frame_parse(&f, payload, plen) < 0) {
                                damage = "a record does not parse";
                                break;
                        }
                        b.start += PROTO_HEADER_SIZE + plen;
                        r = fn(userdata, &f, payload, plen);
                        n_records++;
                }
                if (!damage && r == 0)
                        at += 8 + len;
        }
        frame_done(&f);
        *ret_records = n_records;
        *ret_at = at;
        *ret_damage = damage;
        return r;
}

typedef struct LoadState {
        Persist *p;
        Loaded *l;
        size_t n;       /* records so far */
        bool set_aside; /* the file was set aside: nothing is restored */
} LoadState;

static int load_state_record(void *userdata, const Frame *f, const char *payload, size_t len) {
        LoadState *s = userdata;
        Persist *p = s->p;
        Manager *m = p->manager;

        if (s->n++ == 0) {
                const char *magic;
                size_t magic_len;
                uint64_t version, hi;
                if (f->type != J_HEADER || frame_field_str(f, 0, &magic, &magic_len) < 0 ||
                    magic_len != strlen(PERSIST_MAGIC) || memcmp(magic, PERSIST_MAGIC, magic_len) != 0) {
                        persist_set_aside(p, "is not a kactor state journal");
                        s->set_aside = true;
                        return 1;
                }
                if (frame_field_u64(f, 1, &version) < 0 || version < PERSIST_FORMAT_VERSION_MIN ||
                    version > PERSIST_FORMAT_VERSION) {
                        _cleanup_free_ char *why = NULL;
                        const char *wrote = "?";
                        size_t wrote_len = 1;
                        (void) frame_field_str(f, 2, &wrote, &wrote_len);
                        if (asprintf(&why, "has format version %" PRIu64 " (written by kactor-nodemgr %.*s); this node manager (%s) reads versions %u to %u",
                                     version, (int) wrote_len, wrote, KACTOR_VERSION, PERSIST_FORMAT_VERSION_MIN,
                                     PERSIST_FORMAT_VERSION) < 0)
                                why = NULL;
                        persist_set_aside(p, why ?: "has another format version");
                        s->set_aside = true;
                        return 1;
                }
                if (frame_field_u64(f, 3, &hi) >= 0 && hi != 0) {
                        m->node_hi = hi;
                        snprintf(m->node_id, sizeof(m->node_id), "%016" PRIx64, hi);
                }
                return 0;
        }
        if (f->type == J_IDS) {
                uint64_t conn, local;
                if (frame_field_u64(f, 0, &conn) >= 0 && frame_field_u64(f, 1, &local) >= 0) {
                        m->next_conn = MAX(m->next_conn, conn);
                        m->next_local = MAX(m->next_local, local);
                }
                return 0;
        }
        int r = load_record(s->l, f, payload, len);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                log_warning("The state journal %s has a malformed record (type %u); it is skipped.", p->path, f->type);
        return 0;
}

/* A record of the lineage file: a J_LOG of an actor the state has (its seq is in the state). */
static int load_lineage_record(void *userdata, const Frame *f, const char *payload, size_t len) {
        LoadState *s = userdata;
        kactor_id id;
        LoadedActor *a = NULL;

        if (f->type != J_LOG || frame_field_id(f, 0, CODEC_EXT_ACTOR, &id) < 0) {
                log_warning("The lineage file %s.%" PRIu64 " has a malformed record (type %u); it is skipped.",
                            s->p->lineage_prefix, s->l->lineage_gen, f->type);
                return 0;
        }
        HASH_FIND(hh, s->l->actors, &id, sizeof(id), a);
        if (!a)
                return 0; /* it ended */
        uint64_t seq = a->seq;
        int r = load_record(s->l, f, payload, len);
        a->seq = seq;
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                log_warning("The lineage file %s.%" PRIu64 " has a malformed record; it is skipped.",
                            s->p->lineage_prefix, s->l->lineage_gen);
        return 0;
}

/* Reads the lineage file the state names, up to the length it names (its records are copied into
 * the actors' logs). Read whole, it is the one this node manager goes on appending to. */
static int load_lineage(Persist *p, Loaded *l) {
        _cleanup_free_ char *path = lineage_path(p, l->lineage_gen), *data = NULL;
        if (!path)
                return -ENOMEM;
        /* The next generation is after the one read, whatever is on the disk. */
        p->lineage_gen = l->lineage_gen;
        p->lineage_size = p->lineage_whole_size = l->lineage_len;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                log_error_errno(errno, "Failed to open the lineage file %s, which the state journal names: %m; the actors are restored without their lineage.",
                                path);
                return 0;
        }
        size_t size;
        int r = read_file(fd, &data, &size);
        if (r < 0) {
                log_error_errno(r, "Failed to read the lineage file %s: %m; the actors are restored without their lineage.",
                                path);
                return 0;
        }
        if (size < l->lineage_len)
                log_error("The lineage file %s is %zu bytes long, the state journal says %" PRIu64 ": what it has is restored.",
                          path, size, l->lineage_len);
        /* Bytes past the length were written by an iteration whose state did not make it. */
        size = MIN(size, (size_t) l->lineage_len);

        LoadState s = { .p = p, .l = l };
        size_t n_records, at;
        const char *damage;
        r = walk_batches(data, size, load_lineage_record, &s, &n_records, &at, &damage);
        if (r < 0)
                return r;
        if (damage)
                log_error("The lineage file %s is damaged at byte %zu (%s): the %zu records before it are restored, what follows is lost.",
                          path, at, damage, n_records);
        else
                p->lineage_reuse = size == l->lineage_len;
        log_info("Read the lineage file %s (%zu records, %zu bytes).", path, n_records, size);
        return 0;
}

/* Reads the journal into p->loaded. 0 also when there is none or it is unusable (logged). */
static int persist_load(Persist *p) {
        Manager *m = p->manager;
        _cleanup_close_ int fd = open(p->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Failed to open the state journal %s: %m", p->path);

        Loaded *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        int r = read_file(fd, &l->data, &l->size);
        if (r < 0) {
                free(l);
                return log_error_errno(r, "Failed to read the state journal %s: %m", p->path);
        }

        LoadState s = { .p = p, .l = l };
        size_t n_records, at;
        const char *damage;
        r = walk_batches(l->data, l->size, load_state_record, &s, &n_records, &at, &damage);
        if (r < 0 || s.set_aside) {
                loaded_free(l);
                return r < 0 ? log_error_errno(r, "Out of memory.") : 0;
        }
        if (damage) {
                if (n_records == 0) {
                        loaded_free(l);
                        persist_set_aside(p, "is damaged at its start");
                        return 0;
                }
                log_error("The state journal %s is damaged at byte %zu (%s): the %zu records before it are restored, what follows is lost.",
                          p->path, at, damage, n_records);
        }
        if (l->has_lineage) {
                r = load_lineage(p, l);
                if (r < 0) {
                        loaded_free(l);
                        return log_error_errno(r, "Out of memory.");
                }
        }
        p->loaded = l;
        log_info("Read the state journal %s (%zu records, %zu bytes): node %s, %u actors, %u objects, %u connections%s.",
                 p->path, n_records, l->size, m->node_id, HASH_COUNT(l->actors), HASH_COUNT(l->objects),
                 HASH_COUNT(l->conns), damage ? " (damaged: see above)" : "");
        return 0;
}

int persist_open(Manager *m) {
        _cleanup_free_ char *lock = NULL;
        Persist *p = calloc(1, sizeof(*p));
        if (!p)
                return log_error_errno(-ENOMEM, "Out of memory.");
        p->manager = m;
        p->fd = p->lock_fd = p->lineage_fd = -1;
        msgpack_packer_init(&p->pk, &p->buf, buffer_msgpack_write);
        m->persist = p;
        if (asprintf(&p->path, "%s/%s", m->runtime_dir, PERSIST_FILE_NAME) < 0 ||
            asprintf(&p->lineage_prefix, "%s/%s", m->runtime_dir, PERSIST_LINEAGE_FILE_NAME) < 0 ||
            asprintf(&lock, "%s.lock", p->path) < 0)
                return log_error_errno(-ENOMEM, "Out of memory.");

        /* A second node manager on the same directory would take the first one's actors: refused
         * before anything is read. */
        if (mkdir(m->runtime_dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create the runtime directory %s: %m", m->runtime_dir);
        p->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (p->lock_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", lock);
        if (flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return log_error_errno(-EBUSY, "Another node manager runs with the runtime directory %s.",
                                               m->runtime_dir);
                return log_error_errno(errno, "Failed to lock %s: %m", lock);
        }
        return persist_load(p);
}

bool persist_keeps_cgroup(Manager *m, const char *kind, const char *id) {
        Loaded *l = m->persist ? m->persist->loaded : NULL;
        kactor_id aid;
        LoadedActor *a;

        if (!l || !kind || !id || !streq(kind, "actor") || kactor_id_from_string(id, &aid) < 0)
                return false;
        HASH_FIND(hh, l->actors, &aid, sizeof(aid), a);
        return a && a->actor && a->worker;
}

/* --- restoring ----------------------------------------------------------------------------------- */

static char *field_strdup_or_null(const Frame *f, uint32_t i) {
        const msgpack_object *o = frame_field(f, i);
        if (!o || o->type != MSGPACK_OBJECT_STR)
                return NULL;
        return strndup(o->via.str.ptr, o->via.str.size);
}

/* Makes one actor live again from its records: listed, with its worker adopted (or restarted from
 * its lineage when the worker is gone). */
static int restore_actor(Manager *m, LoadedActor *la) {
        _cleanup_free_ char *name = NULL, *module = NULL, *module_arg = NULL, *class_name = NULL;
        _cleanup_free_ char *cg_kind = NULL, *cg_id = NULL, *unit = NULL, *path = NULL, *v2_dir = NULL;
        _cleanup_free_ uint32_t *gpus = NULL, *allow_users = NULL, *allow_groups = NULL;
        size_t n_allow_users = 0, n_allow_groups = 0;
        Frame f, w;
        uint64_t uid, run_uid, run_gid, memory_max, tasks_max, interval, restarts = 0, prefix = 0, starttime = 0;
        int64_t max_restarts, pid = 0;
        bool detached;
        double cpus = 0;
        int r;

        frame_init(&f);
        frame_init(&w);
        r = frame_parse(&f, la->actor, la->actor_len);
        if (r >= 0 && (!(module = field_strdup_or_null(&f, 2)) || !(class_name = field_strdup_or_null(&f, 4)) ||
                       frame_field_u64(&f, 5, &uid) < 0 || frame_field_u64(&f, 6, &run_uid) < 0 ||
                       frame_field_u64(&f, 7, &run_gid) < 0 || frame_field_u64(&f, 10, &memory_max) < 0 ||
                       frame_field_u64(&f, 11, &tasks_max) < 0 || frame_field_i64(&f, 12, &max_restarts) < 0 ||
                       frame_field_bool(&f, 13, &detached) < 0 || frame_field_u64(&f, 14, &interval) < 0 ||
                       field_u32_list(&f, 15, &allow_users, &n_allow_users) < 0 ||
                       field_u32_list(&f, 16, &allow_groups, &n_allow_groups) < 0))
                r = -EBADMSG;
        const msgpack_object *g = frame_field(&f, 8), *c = frame_field(&f, 9);
        if (r >= 0 && (!g || g->type != MSGPACK_OBJECT_ARRAY || !c))
                r = -EBADMSG;
        if (r >= 0) {
                if (c->type == MSGPACK_OBJECT_FLOAT64 || c->type == MSGPACK_OBJECT_FLOAT32)
                        cpus = c->via.f64;
                else if (c->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        cpus = (double) c->via.u64;
                gpus = calloc(g->via.array.size ?: 1, sizeof(uint32_t));
                if (!gpus)
                        r = -ENOMEM;
                for (uint32_t i = 0; r >= 0 && i < g->via.array.size; i++) {
                        if (g->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                                r = -EBADMSG;
                        else
                                gpus[i] = (uint32_t) g->via.array.ptr[i].via.u64;
                }
                name = field_strdup_or_null(&f, 1);
                module_arg = field_strdup_or_null(&f, 3);
        }
        if (r >= 0 && la->worker) {
                r = frame_parse(&w, la->worker, la->worker_len);
                if (r >= 0 && (frame_field_i64(&w, 1, &pid) < 0 || frame_field_u64(&w, 2, &prefix) < 0 ||
                               frame_field_u64(&w, 3, &restarts) < 0 || frame_field_u64(&w, 9, &starttime) < 0))
                        r = -EBADMSG;
                cg_kind = field_strdup_or_null(&w, 4);
                cg_id = field_strdup_or_null(&w, 5);
                unit = field_strdup_or_null(&w, 6);
                path = field_strdup_or_null(&w, 7);
                v2_dir = field_strdup_or_null(&w, 8);
        }
        if (r < 0) {
                frame_done(&f);
                frame_done(&w);
                char s[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(la->id, s);
                log_error("The state journal's record of actor %s is malformed; the actor is not restored.", s);
                return 0;
        }

        ActorRestore spec = {
                .spec = {
                        .checkpoint_interval = (uint32_t) interval,
                        .module = module_arg ?: module,
                        .class_name = class_name,
                        .args = f.has_body ? f.body_raw : NULL,
                        .args_len = f.has_body ? f.body_len : 0,
                        .name = name,
                        .num_gpus = g->via.array.size,
                        .num_cpus = cpus,
                        .memory_max = memory_max,
                        .max_restarts = (int32_t) max_restarts,
                        .detached = detached,
                        .uid = (uid_t) uid,
                        .tasks_max = tasks_max,
                        .allow_users = allow_users,
                        .n_allow_users = n_allow_users,
                        .allow_groups = allow_groups,
                        .n_allow_groups = n_allow_groups,
                        .id = la->id,
                        .lineage = &la->lineage,
                },
                .module_path = module,
                .run_uid = (uid_t) run_uid,
                .run_gid = (gid_t) run_gid,
                .gpus = gpus,
                .restarts = (uint32_t) restarts,
                .pid = (pid_t) pid,
                .starttime = starttime,
                .prefix = prefix,
                .journaled_seq = la->seq,
                .ready = la->ready,
                .bus_owner = la->bus_owner ? strndupa(la->bus_owner, la->bus_owner_len) : NULL,
                .cgroup = {
                        .kind = cg_kind && streq(cg_kind, "task") ? "task" : "actor",
                        .id = cg_id,
                        .unit = unit,
                        .path = path,
                        .v2_dir = v2_dir,
                        .pid = (pid_t) pid,
                        .limits = { .memory_max = memory_max, .cpus = cpus, .tasks_max = tasks_max },
                },
        };
        r = actor_restore(m, &spec);
        frame_done(&f);
        frame_done(&w);
        return r;
}

/* Objects first (held by us meanwhile), then what their values name is held by them. */
static int restore_objects(Manager *m, Loaded *l) {
        LoadedObject *lo, *tmp;
        LoadedConn *lc;
        Frame f;

        frame_init(&f);
        HASH_ITER(hh, l->objects, lo, tmp) {
                uint64_t state, owner, code;
                bool pinned;
                Object *o;

                if (frame_parse(&f, lo->payload, lo->len) < 0 || frame_field_u64(&f, 1, &state) < 0 ||
                    frame_field_u64(&f, 2, &owner) < 0 || frame_field_bool(&f, 3, &pinned) < 0 ||
                    frame_field_u64(&f, 4, &code) < 0 || (state == OBJECT_READY && !f.has_body))
                        continue;
                if (lo->owner_changed)
                        owner = lo->new_owner;
                if (lo->pin_changed)
                        pinned = lo->pinned;
                if (objstore_add(&m->store, lo->id, &o) < 0)
                        continue;
                /* Its owner; a journal from before owners were kept: its holder's user, else root. */
                uint64_t uid;
                uint64_t first_owner = 0;
                (void) frame_field_u64(&f, 2, &first_owner);
                if (frame_field_u64(&f, 6, &uid) >= 0 && uid <= UINT32_MAX)
                        o->uid = (uid_t) uid;
                else {
                        HASH_FIND(hh, l->conns, &first_owner, sizeof(first_owner), lc);
                        o->uid = lc ? lc->uid : 0;
                }
                if (state == OBJECT_READY) {
                        _cleanup_free_ kactor_id *ids = NULL;
                        _cleanup_free_ uint8_t *is_actor = NULL;
                        size_t n = 0;
                        if (codec_scan_ids(f.body_raw, f.body_len, &ids, &is_actor, &n, NULL) < 0 ||
                            objstore_set_ready(&m->store, o, f.body_raw, f.body_len, ids, is_actor, n) < 0) {
                                (void) objstore_set_failed(&m->store, o, KACTOR_ERROR_TASK_FAILED,
                                                           "the value could not be restored after a restart of the node manager");
                        }
                } else {
                        _cleanup_free_ char *msg = field_strdup_or_null(&f, 5);
                        (void) objstore_set_failed(&m->store, o,
                                                   code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_TASK_FAILED,
                                                   msg ?: "failed");
                }
                o->persisted = true;
                o->pinned = pinned;
                if (pinned)
                        objstore_ref(o); /* the pin's own reference, as manager-bus.c takes it */
                lo->owner = owner;
        }
        frame_done(&f);
        return 0;
}

/* Connections that were open hold again what they held, through placeholders that wait for them
 * (transport); our own hold on each object ends. */
static int restore_holds(Manager *m, Loaded *l) {
        LoadedConn *lc, *ctmp;
        HASH_ITER(hh, l->conns, lc, ctmp) {
                Conn *g = NULL;
                int r = m->transport->ghost_new(m, lc->prefix, lc->uid, &g);
                if (r < 0)
                        return log_error_errno(r, "Failed to restore connection %" PRIx64 ": %m", lc->prefix);
                Worker *w;
                LIST_FOREACH(w, &m->workers, link)
                        if (w->adopted && w->attach_prefix == lc->prefix)
                                g->worker_session = true;
                LoadedHold *h, *htmp;
                HASH_ITER(hh, l->holds, h, htmp)
                        if (h->key.prefix == lc->prefix && h->key.what != PERSIST_HOLD_OWN)
                                (void) m->transport->hold(g, h->key.id, h->key.what == PERSIST_HOLD_ACTOR);
                LoadedObject *lo, *otmp;
                HASH_ITER(hh, l->objects, lo, otmp) {
                        Object *o;
                        if (lo->owner != lc->prefix || lc->prefix == 0 ||
                            !(o = objstore_find(&m->store, lo->id)) || o->owner)
                                continue;
                        objstore_ref(o);
                        m->transport->own(g, o);
                }
        }
        LoadedObject *lo, *otmp;
        HASH_ITER(hh, l->objects, lo, otmp)
                objstore_unref(&m->store, objstore_find(&m->store, lo->id));
        return 0;
}

/* The calls and tasks D-Bus callers made and were not answered: made again with the same result
 * objects, pinned as before (a worker that ran one sends its result again as it re-attaches, which
 * answers the call made again; one that did not run is run). A libkactor client does this itself. */
static void restore_bus_requests(Manager *m, Loaded *l) {
        BusRequest *b, *tmp;
        Frame f;

        frame_init(&f);
        HASH_ITER(hh, l->bus_requests, b, tmp) {
                _cleanup_free_ char *method = NULL, *module = NULL;
                uint64_t kind, uid;
                kactor_id actor = {};
                double cpus = 1;
                ReqError e = {};
                Object *o = NULL;
                int r;

                if (objstore_find(&m->store, b->id))
                        continue;
                if (frame_parse(&f, b->payload, b->len) < 0 || frame_field_u64(&f, 1, &kind) < 0 || kind > 1 ||
                    frame_field_u64(&f, 5, &uid) < 0 || uid >= UINT32_MAX || !(method = field_strdup_or_null(&f, 3)) ||
                    (kind == 0 && frame_field_id(&f, 2, CODEC_EXT_ACTOR, &actor) < 0) ||
                    (kind == 1 && !(module = field_strdup_or_null(&f, 4)))) {
                        log_warning("The state journal's record of a D-Bus request is malformed; it is not made again.");
                        continue;
                }
                const msgpack_object *c = frame_field(&f, 6);
                if (c && (c->type == MSGPACK_OBJECT_FLOAT64 || c->type == MSGPACK_OBJECT_FLOAT32))
                        cpus = c->via.f64;
                const char *args = f.has_body ? f.body_raw : "\x90";
                size_t args_len = f.has_body ? f.body_len : 1;
                r = kind == 0 ? actor_submit_call(m, actor, b->id, method, strlen(method), args, args_len, (uid_t) uid,
                                                  &o, &e)
                              : tasks_submit(m, b->id, module, method, cpus, args, args_len, (uid_t) uid, NULL, &o, &e);
                req_error_done(&e);
                if (r < 0 || !o) {
                        log_warning_errno(r, "Failed to make a D-Bus caller's %s %s again after the restart: %m",
                                          kind == 0 ? "call" : "task", method);
                        continue;
                }
                o->pinned = true; /* its reference is the pin, as manager-bus.c takes it */
                if (o->state == OBJECT_PENDING)
                        (void) bus_request_keep(m->persist, b->id, b->payload, b->len);
        }
        frame_done(&f);
}

int persist_restore(Manager *m) {
        Persist *p = m->persist;
        Loaded *l = p ? p->loaded : NULL;
        int r = 0;

        if (!p)
                return 0;
        if (l) {
                p->quiet = true;
                unsigned n_actors = HASH_COUNT(l->actors), n_objects = HASH_COUNT(l->objects);
                LoadedActor *a, *tmp;
                /* Actors first, so that handles inside values find them; their constructor arguments'
                 * holds come after the objects. */
                HASH_ITER(hh, l->actors, a, tmp)
                        if (a->actor)
                                (void) restore_actor(m, a);
                (void) restore_objects(m, l);
                actor_restore_args_all(m);
                restore_bus_requests(m, l);
                r = restore_holds(m, l);
                p->quiet = false;
                actor_restore_finish_all(m);
                log_info("Restored %u actors and %u objects from %s; waiting for their workers to re-attach.", n_actors,
                         n_objects, p->path);
                loaded_free(l);
                p->loaded = NULL;
        }
        /* A fresh journal: a snapshot of what is live now. The lineage file read goes on from its
         * length (what a crash left past it is cut); else, as after an upgrade, its next generation
         * is written whole. */
        bool whole = true;
        if (p->lineage_reuse) {
                _cleanup_free_ char *path = lineage_path(p, p->lineage_gen);
                int fd = path ? open(path, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
                if (fd >= 0 && ftruncate(fd, (off_t) p->lineage_size) >= 0) {
                        p->lineage_fd = fd;
                        whole = false;
                } else {
                        log_warning_errno(errno, "Failed to reopen the lineage file %s, writing it again: %m",
                                          path ?: p->lineage_prefix);
                        safe_close(fd);
                }
        }
        int k = persist_compact(p, whole);
        if (k < 0) {
                log_error_errno(k, "Failed to write the state journal %s, actors will not survive a restart of the node manager: %m",
                                p->path);
                p->failed = true;
        }
        return r;
}

void persist_close(Manager *m, bool keep) {
        Persist *p = m->persist;
        if (!p)
                return;
        if (keep)
                persist_flush(m);
        p->quiet = true;
        if (!keep && p->path)
                (void) unlink(p->path);
        if (!keep && p->lineage_prefix)
                lineage_remove_others(p, 0);
        safe_close(p->fd);
        p->fd = -1;
        p->lineage_fd = safe_close(p->lineage_fd);
}

void persist_free(Manager *m) {
        Persist *p = TAKE_PTR(m->persist);
        if (!p)
                return;
        loaded_free(p->loaded);
        BusRequest *b, *btmp;
        HASH_ITER(hh, p->bus_requests, b, btmp)
                bus_request_free(&p->bus_requests, b);
        safe_close(p->fd);
        safe_close(p->lock_fd);
        safe_close(p->lineage_fd);
        buffer_free(&p->buf);
        buffer_free(&p->lineage_buf);
        free(p->pending_seqs);
        free(p->path);
        free(p->lineage_prefix);
        free(p);
}
