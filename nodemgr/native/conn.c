/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The native protocol's transport (lib/proto.h, docs/protocol.md): libkactor clients on the unix
 * socket, and workers on their socketpairs. A connection's lifecycle, its buffers and their
 * flush, what it holds, accept() and the caps on clients with their rate-limited refusals. Reads
 * drain every complete frame and hand each to native.c; replies are buffered and sent once per
 * event loop iteration, so one syscall carries many frames in both directions.
 */

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "access.h"
#include "actor.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "conn.h"
#include "direct-results.h"
#include "transport.h"
#include "get-request.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "native.h"
#include "spec-check.h"
#include "strv.h"
#include "tasks.h"
#include "time-util.h"
#include "worker-spawn.h"

/* Reads start small (most connections are idle workers) and grow while reads fill them. */
#define CONN_READ_CHUNK_MIN (4u * 1024u)
#define CONN_READ_CHUNK_MAX (256u * 1024u)
/* Buffers larger than this are given back once empty. */
#define CONN_BUFFER_KEEP (64u * 1024u)
/* Per wakeup, so that one busy connection cannot starve the others. */
#define CONN_READ_BUDGET (4u * 1024u * 1024u)
/* Replies are built only while a connection's unsent output stays under this (one reply is always
 * built into an empty buffer, so a frame of up to PROTO_FRAME_MAX still goes). A client whose
 * replies do not fit is not read from until it has read them. */
#define CONN_OUT_BUDGET (16u * 1024u * 1024u)
/* Workers are always read from (they may block writing results while we write to them), so their
 * output is not paused but capped: a worker that does not read its calls is dropped past this. */
#define CONN_OUT_MAX (512u * 1024u * 1024u)
/* Before HELLO (a few dozen bytes) a client may send no more than this, within this long. */
#define CONN_HELLO_MAX (4u * 1024u)
#define CONN_HELLO_TIMEOUT_USEC (5u * 1000u * 1000u)
/* How long what a client held before a restart of the node manager waits for it to come back. */
#define CONN_GHOST_GRACE_USEC (60u * 1000u * 1000u)
/* The listening socket's name in the service's fd store. */
#define CONN_FDSTORE_NAME "native"
/* Client connections (workers' socketpairs are not counted): in all, and of one user other than
 * root and our own. The total is lowered to half the fd limit where that is less, and a sixteenth
 * of it is kept for root, so that no user can take the fds that workers and root's next HELLO
 * need. docs/protocol.md "Limits". */
#define CONN_MAX 4096u
#define CONN_MAX_PER_UID 512u
/* accept()s per wakeup: a flood of connections is refused quickly and the next one not kept waiting. */
#define CONN_ACCEPT_BATCH 64u
/* Out of fds: listening pauses this long (or until a connection closes) instead of spinning. */
#define CONN_ACCEPT_PAUSE_USEC (100u * 1000u)
/* Refusals and accept() failures are logged at most once per this. */
#define CONN_LOG_INTERVAL_USEC (10u * 1000u * 1000u)

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int conn_process(Conn *c);

/* The client connections of one user, for CONN_MAX_PER_UID. */
typedef struct ConnUser {
        uid_t uid;
        unsigned n;
        UT_hash_handle hh;
} ConnUser;

void conn_ref(Conn *c) {
        c->n_ref++;
}

void conn_release_all(Conn *c) {
        Manager *m = c->manager;

        while (c->gets.lh_first)
                get_request_free(c->gets.lh_first->get);

        Hold *h, *tmp;
        HASH_ITER(hh, c->holds, h, tmp) {
                HASH_DEL(c->holds, h);
                if (h->actor)
                        actor_unref_id(m, h->id);
                else
                        objstore_unref(&m->store, objstore_find(&m->store, h->id));
                free(h);
        }

        direct_results_free_all(m, c);
        while (c->owned) {
                Object *o = c->owned;
                c->owned = o->owner_next;
                if (c->owned)
                        c->owned->owner_prev = NULL;
                o->owner = NULL;
                o->owner_next = o->owner_prev = NULL;
                objstore_unref(&m->store, o);
        }
}

static void conn_destroy(Conn *c) {
        conn_release_all(c);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->hello_timer);
        safe_close(c->fd);
        buffer_free(&c->in);
        buffer_free(&c->out);
        free(c->direct_actors);
        free(c);
}

void conn_unref(Conn *c) {
        if (!c)
                return;
        if (--c->n_ref > 0)
                return;
        conn_destroy(c);
}

static void conn_resume_listening(Manager *m) {
        if (m->listen_retry)
                (void) sd_event_source_set_enabled(m->listen_retry, SD_EVENT_OFF);
        if (m->listen_source)
                (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_ON);
}

static void conn_user_put(Manager *m, ConnUser *u) {
        if (--u->n == 0) {
                HASH_DEL(m->conn_users, u);
                free(u);
        }
        m->n_client_conns--;
        /* An fd is free again: accept() may work now if it ran out. */
        if (m->listen_retry && sd_event_source_get_enabled(m->listen_retry, NULL) > 0)
                conn_resume_listening(m);
}

static void conn_user_remove(Conn *c) {
        if (c->user)
                conn_user_put(c->manager, TAKE_PTR(c->user));
}

void conn_close(Conn *c) {
        if (c->dead)
                return;
        c->dead = true;
        LIST_REMOVE(c, link);
        if (c->dirty) {
                LIST_REMOVE(c, dirty_link);
                c->dirty = false;
        }
        c->io = sd_event_source_disable_unref(c->io);
        c->hello_timer = sd_event_source_disable_unref(c->hello_timer);
        c->fd = safe_close(c->fd);
        /* Release what it held now: actors without handles stop, objects go. */
        if (c->welcomed || c->worker || c->ghost)
                persist_conn_end(c->manager, c->id_prefix);
        if (c->n_direct_actors > 0)
                native_forget_direct_caller(c);
        conn_release_all(c);
        if (c->worker)
                c->worker->conn = NULL;
        c->worker = NULL;
        conn_user_remove(c);
        conn_unref(c);
}

static int on_hello_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *c = userdata;

        log_debug("Closing a connection of UID %u: no HELLO within %u s.", (unsigned) c->uid,
                  CONN_HELLO_TIMEOUT_USEC / 1000000u);
        conn_ref(c);
        /* Say why, if it fits; nothing was sent to it yet, so it does. */
        (void) conn_send_reply_error(c, 0, KACTOR_ERROR_PROTOCOL, "no HELLO in time");
        (void) conn_flush(c);
        conn_close(c);
        conn_unref(c);
        return 0;
}

int conn_new(Manager *m, int fd, Worker *worker, Conn **ret) {
        Conn *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->manager = m;
        c->n_ref = 1;
        c->fd = fd;
        c->worker = worker;
        c->welcomed = worker != NULL;
        c->id_prefix = (++m->next_conn) << ID_SEQ_BITS;
        LIST_INIT(&c->gets);
        TAILQ_INIT(&c->parked);
        msgpack_packer_init(&c->pk, &c->out, buffer_msgpack_write);
        c->read_chunk = CONN_READ_CHUNK_MIN;

        r = sd_event_add_io(m->event, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r < 0) {
                c->fd = -1; /* the caller keeps the fd on failure */
                conn_destroy(c);
                return r;
        }
        (void) sd_event_source_set_description(c->io, worker ? "worker-conn" : "client-conn");
        if (!worker) {
                /* Coalesced with other timers: the deadline need not be exact. */
                r = sd_event_add_time_relative(m->event, &c->hello_timer, CLOCK_MONOTONIC,
                                               CONN_HELLO_TIMEOUT_USEC, 100 * 1000, on_hello_timeout, c);
                if (r < 0) {
                        c->fd = -1;
                        conn_destroy(c);
                        return r;
                }
                (void) sd_event_source_set_description(c->hello_timer, "client-hello");
        }
        LIST_INSERT_HEAD(&m->conns, c, link);
        *ret = c;
        return 0;
}

void conn_mark_dirty(Conn *c) {
        if (c->dirty || c->dead)
                return;
        c->dirty = true;
        LIST_INSERT_HEAD(&c->manager->dirty_conns, c, dirty_link);
}

bool conn_output_room(const Conn *c, size_t n) {
        size_t queued = buffer_size(&c->out);
        return queued == 0 || (queued < CONN_OUT_BUDGET && n <= CONN_OUT_BUDGET - queued);
}

/* Whether a client must wait with further requests until it has read what it was sent. */
static bool conn_output_full(const Conn *c) {
        return !TAILQ_EMPTY(&c->parked) || buffer_size(&c->out) >= CONN_OUT_BUDGET;
}

/* Sends what is buffered without blocking, and builds the parked replies as room appears. Returns 0
 * when all went, 1 when some is left (EPOLLOUT is armed), or a negative errno when the connection
 * broke. A paused client is resumed by the caller (conn_flush_all()). */
int conn_flush(Conn *c) {
        for (;;) {
                while (buffer_size(&c->out) > 0) {
                        ssize_t n = send(c->fd, c->out.data + c->out.start, buffer_size(&c->out),
                                         MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        goto blocked;
                                return negative_errno();
                        }
                        buffer_consume(&c->out, (size_t) n);
                }
                if (TAILQ_EMPTY(&c->parked) || native_answer_parked(c) == 0)
                        break;
        }
        if (c->closing)
                return -ECONNRESET;
        if (c->out.cap > CONN_BUFFER_KEEP)
                buffer_free(&c->out);
        /* A paused client must not be woken by input it will not read. */
        (void) sd_event_source_set_io_events(c->io, c->paused ? 0 : EPOLLIN);
        return 0;

blocked:
        if (buffer_size(&c->out) > CONN_OUT_MAX)
                return -ENOBUFS;
        /* Between frames: what was sent goes, so that the output does not grow past what waits. */
        if (c->out.start >= c->out.cap / 2)
                buffer_compact(&c->out);
        if (!TAILQ_EMPTY(&c->parked))
                (void) native_answer_parked(c);
        (void) sd_event_source_set_io_events(c->io, c->paused || c->closing ? EPOLLOUT : EPOLLIN | EPOLLOUT);
        return 1;
}

/* The client read its replies: handle the requests that waited, and read again. */
static void conn_resume(Conn *c) {
        conn_ref(c);
        c->paused = false;
        (void) sd_event_source_set_io_events(c->io, buffer_size(&c->out) > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
        if (conn_process(c) < 0)
                conn_close(c);
        conn_unref(c);
}

void conn_flush_all(Manager *m) {
        Conn *c;
        while ((c = m->dirty_conns.lh_first)) {
                LIST_REMOVE(c, dirty_link);
                c->dirty = false;
                if (conn_flush(c) < 0)
                        conn_close(c);
                else if (c->paused && !conn_output_full(c))
                        conn_resume(c);
        }
}

int conn_end_frame(Conn *c, size_t off, int r) {
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        r = frame_end(&c->out, off);
        if (r >= 0)
                conn_mark_dirty(c);
        return r;
}

int conn_end_frame_fd(Conn *c, size_t off, int r, int fd) {
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        r = frame_end(&c->out, off);
        if (r < 0)
                return r;
        while (c->out.start < off) {
                ssize_t n = send(c->fd, c->out.data + c->out.start, off - c->out.start, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        c->out.end = off;
                        conn_mark_dirty(c);
                        return errno == EAGAIN ? -EAGAIN : -errno;
                }
                c->out.start += (size_t) n;
        }
        for (;;) {
                ssize_t n = proto_send_fd(c->fd, c->out.data + off, c->out.end - off, MSG_DONTWAIT | MSG_NOSIGNAL, fd);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        c->out.end = off;
                        return errno == EAGAIN ? -EAGAIN : -errno;
                }
                /* The descriptor went with the first byte; the rest goes as any output. */
                buffer_consume(&c->out, (size_t) n);
                if (buffer_size(&c->out) > 0)
                        conn_mark_dirty(c);
                return 0;
        }
}

int conn_send_reply_error(Conn *c, uint64_t reqid, kactor_error code, const char *message) {
        size_t off = frame_begin(&c->out);
        int r = msgpack_pack_array(&c->pk, 4) < 0 || msgpack_pack_uint32(&c->pk, MSG_REPLY) < 0 ||
                        msgpack_pack_uint64(&c->pk, reqid) < 0 || msgpack_pack_uint32(&c->pk, code) < 0
                ? -ENOMEM
                : pack_cstr(&c->pk, message);
        return conn_end_frame(c, off, r);
}

/* A reply that carries an actor id (CreateActor, GetActor) or nothing. */
int conn_send_reply_ok(Conn *c, uint64_t reqid, const kactor_id *actor) {
        size_t off = frame_begin(&c->out);
        int r = msgpack_pack_array(&c->pk, actor ? 5 : 4) < 0 ||
                        msgpack_pack_uint32(&c->pk, MSG_REPLY) < 0 ||
                        msgpack_pack_uint64(&c->pk, reqid) < 0 ||
                        msgpack_pack_uint32(&c->pk, KACTOR_OK) < 0 || msgpack_pack_nil(&c->pk) < 0
                ? -ENOMEM
                : 0;
        if (r >= 0 && actor)
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, *actor);
        return conn_end_frame(c, off, r);
}

/* Refuses a connection: says why, then closes once that is sent. */
int conn_refuse(Conn *c, kactor_error code, const char *why) {
        log_debug("Dropping connection: %s", why);
        (void) conn_send_reply_error(c, 0, code, why);
        c->closing = true;
        /* Read nothing more; close once the answer is out. */
        (void) sd_event_source_set_io_events(c->io, EPOLLOUT);
        conn_mark_dirty(c);
        return -EBADMSG;
}

int conn_protocol_error(Conn *c, const char *why) {
        return conn_refuse(c, KACTOR_ERROR_PROTOCOL, why);
}

int conn_hold(Conn *c, kactor_id id, bool actor) {
        Manager *m = c->manager;
        Hold *h;

        /* An actor's own worker does not keep it alive through its own handle. */
        if (actor && c->worker && c->worker->actor && kactor_id_equal(c->worker->actor->id, id))
                return 0;
        HASH_FIND(hh, c->holds, &id, sizeof(id), h);
        if (h)
                return 0;
        if (!actor) {
                Object *o = objstore_find(&m->store, id);
                if (!o)
                        return 0;
                if (o->owner == c)
                        return 0;
                objstore_ref(o);
        } else if (!actor_ref_id(m, id))
                return 0; /* no such actor here, nor on a peer */
        h = calloc(1, sizeof(*h));
        if (!h) {
                if (actor)
                        actor_unref_id(m, id);
                else
                        objstore_unref(&m->store, objstore_find(&m->store, id));
                return -ENOMEM;
        }
        h->id = id;
        h->actor = actor;
        HASH_ADD(hh, c->holds, id, sizeof(h->id), h);
        persist_hold(m, c->id_prefix, id, actor ? PERSIST_HOLD_ACTOR : PERSIST_HOLD_OBJECT, true);
        return 1;
}

int conn_hold_ids_in(Conn *c, const Object *o) {
        for (size_t i = 0; i < o->n_contained; i++) {
                int r = conn_hold(c, o->contained[i], o->contained_actor[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

void conn_own(Conn *c, Object *o) {
        /* Finished before it had its owner: the journal learns the owner now, unless its record
         * named it already (a put). */
        if (o->persisted && o->persisted_owner != c->id_prefix) {
                persist_hold(c->manager, c->id_prefix, o->id, PERSIST_HOLD_OWN, true);
                o->persisted_owner = c->id_prefix;
        }
        o->owner = c;
        o->owner_prev = NULL;
        o->owner_next = c->owned;
        if (c->owned)
                c->owned->owner_prev = o;
        c->owned = o;
}

void conn_release_object(Conn *c, kactor_id id) {
        Manager *m = c->manager;
        Hold *h;

        if (id.hi == m->node_hi && direct_results_release(m, c, id.lo))
                return;
        Object *o = objstore_find(&m->store, id);

        if (o && o->owner == c) {
                if (o->owner_prev)
                        o->owner_prev->owner_next = o->owner_next;
                else
                        c->owned = o->owner_next;
                if (o->owner_next)
                        o->owner_next->owner_prev = o->owner_prev;
                o->owner = NULL;
                o->owner_next = o->owner_prev = NULL;
                /* Freed now (then its J_FREE says all), or held elsewhere: owned by nobody. */
                if (o->refs > 1 && o->persisted) {
                        persist_hold(m, c->id_prefix, id, PERSIST_HOLD_OWN, false);
                        o->persisted_owner = 0;
                }
                objstore_unref(&m->store, o);
                return;
        }
        HASH_FIND(hh, c->holds, &id, sizeof(id), h);
        if (h && !h->actor) {
                HASH_DEL(c->holds, h);
                free(h);
                if (o && o->refs > 1)
                        persist_hold(m, c->id_prefix, id, PERSIST_HOLD_OBJECT, false);
                objstore_unref(&m->store, o);
        }
}

void conn_release_actor(Conn *c, kactor_id id) {
        Hold *h;
        HASH_FIND(hh, c->holds, &id, sizeof(id), h);
        if (h && h->actor) {
                HASH_DEL(c->holds, h);
                free(h);
                persist_hold(c->manager, c->id_prefix, id, PERSIST_HOLD_ACTOR, false);
                actor_unref_id(c->manager, id);
        }
}

static int on_ghost_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *c = userdata;
        log_info("A client (UID %u) that was connected before the node manager restarted did not come back within %u s: what it held is released.",
                 (unsigned) c->uid, (unsigned) (CONN_GHOST_GRACE_USEC / 1000000u));
        conn_close(c);
        return 0;
}

void conn_attach_worker(Conn *c) {
        conn_user_remove(c);
        c->welcomed = true;
        c->hello_timer = sd_event_source_disable_unref(c->hello_timer);
        if (c->io)
                (void) sd_event_source_set_description(c->io, "worker-conn");
}

int conn_ghost_new(Manager *m, uint64_t prefix, uid_t uid, Conn **ret) {
        Conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        c->n_ref = 1;
        c->fd = -1;
        c->ghost = true;
        c->uid = uid;
        c->id_prefix = prefix;
        LIST_INIT(&c->gets);
        TAILQ_INIT(&c->parked);
        msgpack_packer_init(&c->pk, &c->out, buffer_msgpack_write);
        int r = sd_event_add_time_relative(m->event, &c->hello_timer, CLOCK_MONOTONIC, CONN_GHOST_GRACE_USEC,
                                           USEC_PER_SEC, on_ghost_timeout, c);
        if (r < 0) {
                conn_destroy(c);
                return r;
        }
        (void) sd_event_source_set_description(c->hello_timer, "client-grace");
        LIST_INSERT_HEAD(&m->conns, c, link);
        *ret = c;
        return 0;
}

Conn *conn_find_prefix(Manager *m, uint64_t prefix) {
        Conn *c;
        LIST_FOREACH(c, &m->conns, link)
                if (!c->dead && c->id_prefix == prefix && (c->welcomed || c->worker || c->ghost))
                        return c;
        return NULL;
}

void conn_take_over(Conn *c, Conn *g) {
        c->id_prefix = g->id_prefix;
        c->resumed = true;
        c->holds = TAKE_PTR(g->holds);
        c->owned = TAKE_PTR(g->owned);
        for (Object *o = c->owned; o; o = o->owner_next)
                o->owner = c;
        /* Nothing is left to release: it just goes (and its journal record with it: c has its ids). */
        g->dead = true;
        LIST_REMOVE(g, link);
        conn_unref(g);
}

/* Handles every complete frame in the input. Returns < 0 when the connection must close. */
static int conn_process(Conn *c) {
        for (;;) {
                const char *payload;
                size_t len;
                int r;

                if (c->closing || c->dead)
                        return 0;
                if (c->paused)
                        return 0;
                if (!c->worker && conn_output_full(c)) {
                        /* Its replies wait for it to read: so do its further requests. */
                        c->paused = true;
                        (void) sd_event_source_set_io_events(c->io, EPOLLOUT);
                        conn_mark_dirty(c);
                        return 0;
                }
                r = frame_peek(&c->in, &payload, &len);
                if (r < 0) {
                        (void) conn_protocol_error(
                                c, r == -EMSGSIZE ? "frame too large (limit 64 MiB)" : "empty frame");
                        return 0;
                }
                if (r == 0)
                        return 0;

                if (c->n_direct_actors > 0)
                        native_read_direct_records(c);
                if (c->dead || c->closing)
                        return 0;
                /* One frame for all connections: handlers copy what they keep. */
                r = frame_parse(&c->manager->frame, payload, len);
                if (r < 0) {
                        (void) conn_protocol_error(c, "malformed frame");
                        return 0;
                }
                r = native_dispatch(c, &c->manager->frame);
                if (c->dead)
                        return 0;
                buffer_consume(&c->in, PROTO_HEADER_SIZE + len);
                if (r < 0 && r != -EBADMSG)
                        return r;
        }
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;
        Manager *m = c->manager;
        size_t total = 0;
        int r = 0;

        conn_ref(c);
        if (revents & EPOLLOUT) {
                r = conn_flush(c);
                if (r < 0)
                        goto close;
                if (c->paused && !conn_output_full(c))
                        conn_mark_dirty(c); /* resumed by conn_flush_all() below */
        }

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                while (total < CONN_READ_BUDGET && !c->closing && !c->paused) {
                        size_t want = c->read_chunk;
                        if (!c->welcomed) {
                                /* Before HELLO only a HELLO's worth is read: a stranger costs next
                                 * to nothing. A worker the node manager waits for may send an ATTACH
                                 * of a frame's size (the results it kept). */
                                size_t limit = CONN_HELLO_MAX;
                                if (buffer_size(&c->in) >= CONN_HELLO_MAX && worker_awaiting_attach(m, c->pid))
                                        limit = PROTO_HEADER_SIZE + PROTO_FRAME_MAX;
                                if (buffer_size(&c->in) >= limit) {
                                        (void) conn_protocol_error(c, "no HELLO in the first 4 KiB");
                                        break;
                                }
                                want = MIN(want, limit - buffer_size(&c->in));
                        }
                        r = buffer_reserve_read(&c->in, want);
                        if (r < 0)
                                goto close;
                        ssize_t n = recv(c->fd, c->in.data + c->in.end,
                                         c->welcomed ? c->in.cap - c->in.end : want, MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        break;
                                goto close;
                        }
                        if (n == 0) {
                                /* End of stream: what was complete has been handled. */
                                (void) conn_process(c);
                                goto close;
                        }
                        c->in.end += (size_t) n;
                        total += (size_t) n;
                        r = conn_process(c);
                        if (r < 0 || c->dead)
                                goto close;
                        if ((size_t) n < c->read_chunk)
                                break;
                        c->read_chunk = MIN(c->read_chunk * 2, CONN_READ_CHUNK_MAX);
                }
        }
        if (buffer_size(&c->in) == 0 && c->in.cap > CONN_BUFFER_KEEP) {
                buffer_free(&c->in);
                c->read_chunk = CONN_READ_CHUNK_MIN;
        }
        conn_unref(c);
        /* Send what this read produced now, in the same loop iteration (everything it read was
         * handled, so the batch is complete); the post source covers the other event sources. The
         * journal first: a reply may say what only it records (persist.c). */
        persist_flush(m);
        conn_flush_all(m);
        return 0;

close:
        conn_close(c);
        conn_unref(c);
        return 0;
}

void conn_drain(Conn *c) {
        if (c->dead || c->closing)
                return;
        conn_ref(c);
        for (;;) {
                if (buffer_reserve_read(&c->in, c->read_chunk) < 0)
                        break;
                ssize_t n = recv(c->fd, c->in.data + c->in.end, c->in.cap - c->in.end, MSG_DONTWAIT);
                if (n <= 0)
                        break;
                c->in.end += (size_t) n;
                if (conn_process(c) < 0 || c->dead || c->closing)
                        break;
        }
        conn_unref(c);
}

/* Counts a new client connection of uid against the caps: 0, or -EUSERS with *ret_why set. */
static int conn_user_add(Manager *m, uid_t uid, ConnUser **ret, const char **ret_why) {
        bool privileged = uid == 0 || uid == geteuid();
        ConnUser *u;

        if (m->n_client_conns >= m->conn_max ||
            (!privileged && m->n_client_conns >= m->conn_max - m->conn_root_reserve)) {
                *ret_why = "too many connections to this node manager";
                return -EUSERS;
        }
        HASH_FIND(hh, m->conn_users, &uid, sizeof(uid), u);
        if (u && !privileged && u->n >= m->conn_max_per_uid) {
                *ret_why = "too many connections of this user";
                return -EUSERS;
        }
        if (!u) {
                u = calloc(1, sizeof(*u));
                if (!u) {
                        *ret_why = "out of memory";
                        return -ENOMEM;
                }
                u->uid = uid;
                HASH_ADD(hh, m->conn_users, uid, sizeof(u->uid), u);
        }
        u->n++;
        m->n_client_conns++;
        *ret = u;
        return 0;
}

/* Turns a connection away at once: a REPLY that says why (a fresh socket has room for it), then
 * close. Logged at most once per interval. */
static void conn_refuse_fd(Manager *m, int fd, const struct ucred *cred, int error, const char *why) {
        _cleanup_(buffer_free) Buffer b = {};
        msgpack_packer pk;
        unsigned suppressed;

        msgpack_packer_init(&pk, &b, buffer_msgpack_write);
        size_t off = frame_begin(&b);
        if (msgpack_pack_array(&pk, 4) >= 0 && msgpack_pack_uint32(&pk, MSG_REPLY) >= 0 &&
            msgpack_pack_uint64(&pk, 0) >= 0 &&
            msgpack_pack_uint32(&pk, KACTOR_ERROR_INSUFFICIENT_RESOURCES) >= 0 && pack_cstr(&pk, why) >= 0 &&
            frame_end(&b, off) >= 0)
                (void) send(fd, b.data, buffer_size(&b), MSG_DONTWAIT | MSG_NOSIGNAL);
        safe_close(fd);

        if (log_ratelimit_test(&m->conn_refused_log, now_usec(CLOCK_MONOTONIC), CONN_LOG_INTERVAL_USEC, &suppressed))
                log_warning_errno(error,
                                  "Refused a connection of UID %u (PID %d): %s (%u client connections, "
                                  "limits %u in all, %u per user); %u more refused since the last message.",
                                  (unsigned) cred->uid, (int) cred->pid, why, m->n_client_conns, m->conn_max,
                                  m->conn_max_per_uid, suppressed);
}

static int on_listen_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        conn_resume_listening(userdata);
        return 0;
}

/* accept() ran out of fds or memory: it would fail again at once, so stop listening for a moment
 * (connections wait in the backlog) instead of spinning, and say so once per interval. */
static void conn_pause_listening(Manager *m, int error) {
        unsigned suppressed;
        int r;

        if (log_ratelimit_test(&m->accept_failed_log, now_usec(CLOCK_MONOTONIC), CONN_LOG_INTERVAL_USEC, &suppressed))
                log_warning_errno(error,
                                  "Failed to accept a connection, pausing: %m (%u client connections; %u "
                                  "more failures since the last message).",
                                  m->n_client_conns, suppressed);

        if (!m->listen_retry) {
                sd_event_source *s;
                r = sd_event_add_time_relative(m->event, &s, CLOCK_MONOTONIC, CONN_ACCEPT_PAUSE_USEC, 0,
                                               on_listen_retry, m);
                if (r < 0)
                        return; /* keep listening: better busy than deaf */
                (void) sd_event_source_set_description(s, "listen-retry");
                /* Owned by the event loop and freed with it (manager_free() need not know it); we
                 * keep a borrowed pointer. */
                r = sd_event_source_set_floating(s, true);
                if (r < 0) {
                        sd_event_source_disable_unref(s);
                        return;
                }
                sd_event_source_unref(s);
                m->listen_retry = s;
        } else if (sd_event_source_set_time_relative(m->listen_retry, CONN_ACCEPT_PAUSE_USEC) < 0 ||
                   sd_event_source_set_enabled(m->listen_retry, SD_EVENT_ONESHOT) < 0)
                return;
        (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_OFF);
}

static void conn_accept_fd(Manager *m, int cfd) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        const char *why = NULL;
        ConnUser *u;
        Conn *c;
        int r;

        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                safe_close(cfd);
                return;
        }
        r = conn_user_add(m, cred.uid, &u, &why);
        if (r < 0) {
                conn_refuse_fd(m, cfd, &cred, r, why);
                return;
        }
        r = conn_new(m, cfd, NULL, &c);
        if (r < 0) {
                conn_user_put(m, u);
                conn_refuse_fd(m, cfd, &cred, r, "could not set up the connection");
                return;
        }
        c->user = u;
        c->uid = cred.uid;
        c->pid = cred.pid;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;

        for (unsigned i = 0; i < CONN_ACCEPT_BATCH; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                conn_pause_listening(m, errno);
                                return 0;
                        }
                        /* Something about that one connection (ECONNABORTED, EPERM, ...). */
                        continue;
                }
                conn_accept_fd(m, cfd);
        }
        return 0;
}

/* Raises the soft fd limit to the hard one (the unit sets LimitNOFILE=) and sizes the connection
 * caps from it. Called after the fork server started, which keeps the usual soft limit for workers
 * (code that uses select() needs fds below 1024). */
static void conn_setup_limits(Manager *m) {
        struct rlimit rl;
        rlim_t nofile = 1024;

        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                if (rl.rlim_cur < rl.rlim_max) {
                        struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
                        if (setrlimit(RLIMIT_NOFILE, &raised) >= 0)
                                rl.rlim_cur = rl.rlim_max;
                        else
                                log_debug("Could not raise the fd limit to %llu: %m",
                                          (unsigned long long) rl.rlim_max);
                }
                nofile = rl.rlim_cur;
        }
        m->conn_max = (unsigned) MIN((rlim_t) CONN_MAX, MAX(nofile / 2, (rlim_t) 32));
        m->conn_root_reserve = MAX(m->conn_max / 16, 2u);
        m->conn_max_per_uid = MIN(CONN_MAX_PER_UID, m->conn_max - m->conn_root_reserve);
        log_debug("fd limit %llu: at most %u client connections, %u of one user, %u kept for root.",
                  (unsigned long long) nofile, m->conn_max, m->conn_max_per_uid, m->conn_root_reserve);
}

/* Under systemd the listening socket lives in the service's fd store (FDSTORE=1, name "native"): a
 * restart takes it back, so clients and re-attaching workers that connect meanwhile wait in its
 * backlog rather than being refused. Returns the stored socket, or -1. */
static int conn_listen_stored(Manager *m) {
        char **names = NULL;
        int fd = -1;
        int n = sd_listen_fds_with_names(true, &names);
        for (int i = 0; i < n; i++) {
                int k = SD_LISTEN_FDS_START + i;
                if (fd < 0 && names && names[i] && streq(names[i], CONN_FDSTORE_NAME) &&
                    sd_is_socket_unix(k, SOCK_STREAM, 1, m->socket_path, 0) > 0)
                        fd = k;
                else
                        (void) close(k); /* not ours to keep */
        }
        strv_free(names);
        if (fd >= 0) {
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                (void) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        }
        return fd;
}

static int conn_listen(Manager *m) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (strlen(m->socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, m->socket_path);

        if (mkdir(m->runtime_dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();

        conn_setup_limits(m);

        m->listen_fd = conn_listen_stored(m);
        if (m->listen_fd >= 0) {
                m->listen_stored = true;
                log_debug("Listening on %s again (the socket the service's fd store kept).", m->socket_path);
        } else {
                m->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (m->listen_fd < 0)
                        return negative_errno();
                (void) unlink(m->socket_path);
                /* Access is decided per request (and by the D-Bus policy for the bus): the socket is
                 * made 0666 at once, not chmod()ed after, as re-attaching workers of other users
                 * connect the moment it appears (persist.c). */
                mode_t old_umask = umask(0111);
                r = bind(m->listen_fd, (struct sockaddr *) &sa, sizeof(sa));
                umask(old_umask);
                if (r < 0)
                        return negative_errno();
                if (listen(m->listen_fd, SOMAXCONN) < 0)
                        return negative_errno();
                /* A service of systemd's (it sets $INVOCATION_ID) keeps it across restarts. */
                if (getenv("INVOCATION_ID") &&
                    sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=" CONN_FDSTORE_NAME, &m->listen_fd, 1) > 0)
                        m->listen_stored = true;
        }
        r = sd_event_add_io(m->event, &m->listen_source, m->listen_fd, EPOLLIN, on_accept, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(m->listen_source, "listen");
        return 0;
}

static const TransportOps conn_transport_ops = {
        .conn_new = conn_new,
        .close = conn_close,
        .end_frame = conn_end_frame,
        .release_all = conn_release_all,
        .drain = conn_drain,
        .flush = conn_flush,
        .flush_all = conn_flush_all,
        .ghost_new = conn_ghost_new,
        .hold = conn_hold,
        .own = conn_own,
        .find = conn_find_prefix,
};

int native_setup(Manager *m) {
        m->transport = &conn_transport_ops;
        return conn_listen(m);
}
