/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Direct calls, the caller's side (docs/protocol.md, "Direct calls"). A call to an actor of this
 * node whose arguments name no object or actor goes over a socket to the actor's worker that the
 * node manager handed over (OPEN_DIRECT, once per actor); the answer comes back on it. The calls
 * sent and not answered are kept, to be sent to the node manager instead (as CALLs flagged resent,
 * with the same object ids) if the socket breaks. A caller's calls to one actor keep its order
 * across the two paths: a relayed call waits for the direct calls before it to answer, and direct
 * calls resume only once the relayed calls before them are known done.
 */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client-internal.h"
#include "codec.h"
#include "hashmap.h"
#include "macro.h"
#include "probes.h"
#include "time-util.h"

#define DIRECT_FLUSH_THRESHOLD (64u * 1024u)
#define DIRECT_READ_CHUNK (64u * 1024u)
/* An actor that could not be called directly now (not alive yet, busy): asked again after this. */
#define DIRECT_RETRY_USEC (100u * 1000u)

typedef enum DirectState {
        DIRECT_NONE,  /* not asked yet */
        DIRECT_OPEN,  /* a socket to its worker */
        DIRECT_CLOSING, /* the actor was released: the socket takes the answers still owed, then closes */
        DIRECT_RETRY, /* refused for now: ask again after retry_usec */
        DIRECT_NEVER, /* refused for good (another node's, replicated, not ours to call) */
} DirectState;

typedef struct ClientDirect {
        kactor_id actor;
        DirectState state;
        uint64_t retry_usec;
        int fd;
        Buffer in, out;
        msgpack_packer pk; /* writes DCALLs into out */
        Buffer sent;       /* the DCALL frames not answered, in order, whole */
        size_t n_unanswered;
        uint64_t *unanswered; /* their object ids (low half), a ring of unanswered_cap from _head */
        size_t unanswered_head, unanswered_cap;
        bool relayed_pending; /* a relayed call to the actor is not known done */
        uint64_t relayed_last; /* the last one */
        UT_hash_handle hh;
} ClientDirect;

typedef struct DirectObject {
        uint64_t lo;          /* 0: a free slot */
        ClientDirect *direct; /* while not answered */
        kactor_value *value;  /* the answer (an error value when the call failed) */
        bool fetch;           /* the node manager has the value (it names objects or actors) */
        bool released;        /* released before its answer: the RELEASE goes once it came */
        size_t taken;         /* client_direct_take(): the slot its value went to, plus one */
} DirectObject;

/* One that was still in its slot when a later id needed it (held for long, as results may be). */
typedef struct DirectOverflow {
        DirectObject o;
        UT_hash_handle hh;
} DirectOverflow;

#define DIRECT_SLOTS_MIN 256

typedef struct DirectWatch {
        uint64_t lo;
        ClientDirect *direct;
        UT_hash_handle hh;
} DirectWatch;

bool client_direct_wanted(const struct kactor_connect_opts *opts) {
        if (opts && opts->sz >= offsetof(struct kactor_connect_opts, direct_calls) + sizeof(int) &&
            opts->direct_calls != 0)
                return opts->direct_calls > 0;
        const char *e = getenv("KACTOR_DIRECT_CALLS");
        return !(e && (streq(e, "0") || streq(e, "no") || streq(e, "false") || streq(e, "off")));
}

static DirectObject *direct_slot(kactor_client *c, uint64_t lo) {
        return &c->direct_slots[(lo & PROTO_ID_SEQ_MASK) & (c->n_direct_slots - 1)];
}

/* Pointers to objects stay good until the next direct_object_add(). */
static void direct_object_free(kactor_client *c, DirectObject *o) {
        kactor_value_free(o->value);
        c->n_direct_objs--;
        if (o >= c->direct_slots && o < c->direct_slots + c->n_direct_slots) {
                *o = (DirectObject){};
                return;
        }
        DirectOverflow *v = container_of(o, DirectOverflow, o);
        HASH_DEL(c->direct_overflow, v);
        c->n_direct_overflow--;
        free(v);
}

static DirectObject *direct_object_find(kactor_client *c, uint64_t lo) {
        if (c->n_direct_objs == 0)
                return NULL;
        DirectObject *o = direct_slot(c, lo);
        if (o->lo == lo)
                return o;
        DirectOverflow *v = NULL;
        if (c->n_direct_overflow > 0)
                HASH_FIND(hh, c->direct_overflow, &lo, sizeof(lo), v);
        return v ? &v->o : NULL;
}

/* Doubles the slots: ids in distinct slots stay in distinct slots. */
static int direct_slots_grow(kactor_client *c) {
        size_t n = c->n_direct_slots ? 2 * c->n_direct_slots : DIRECT_SLOTS_MIN;
        DirectObject *slots = calloc(n, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_direct_slots; i++)
                if (c->direct_slots[i].lo != 0)
                        slots[(c->direct_slots[i].lo & PROTO_ID_SEQ_MASK) & (n - 1)] = c->direct_slots[i];
        free(c->direct_slots);
        c->direct_slots = slots;
        c->n_direct_slots = n;
        return 0;
}

/* A new object for id lo (not there yet), or NULL (out of memory). */
static DirectObject *direct_object_add(kactor_client *c, uint64_t lo) {
        if (c->n_direct_slots == 0 && direct_slots_grow(c) < 0)
                return NULL;
        DirectObject *o = direct_slot(c, lo);
        while (o->lo != 0) {
                if (2 * (c->n_direct_objs - c->n_direct_overflow) >= c->n_direct_slots) {
                        /* Crowded: more room. */
                        if (direct_slots_grow(c) < 0)
                                return NULL;
                        o = direct_slot(c, lo);
                        continue;
                }
                /* An old one, held while many came after it: out of the way. */
                DirectOverflow *v = malloc(sizeof(*v));
                if (!v)
                        return NULL;
                v->o = *o;
                HASH_ADD(hh, c->direct_overflow, o.lo, sizeof(v->o.lo), v);
                c->n_direct_overflow++;
                *o = (DirectObject){};
        }
        *o = (DirectObject){ .lo = lo };
        c->n_direct_objs++;
        return o;
}

/* A released call answered at last: its RELEASE goes now (the node manager has its record). */
static int direct_release_now(kactor_client *c, uint64_t lo) {
        kactor_ref ref = { { c->id_hi, lo } };
        return kactor_ref_release(c, &ref, 1);
}

/* The socket broke (the worker died, or re-attached to a new node manager, or said something
 * unexpected): the calls it did not answer go to the node manager, which runs each once. */
static int direct_broken(kactor_client *c, ClientDirect *d) {
        Frame f;
        int r = 0;

        frame_init(&f);
        d->fd = safe_close(d->fd);
        d->state = DIRECT_RETRY;
        d->retry_usec = now_usec(CLOCK_MONOTONIC) + DIRECT_RETRY_USEC;
        while (buffer_size(&d->sent) > 0) {
                const char *payload;
                size_t len;
                if (frame_peek(&d->sent, &payload, &len) <= 0 || frame_parse(&f, payload, len) < 0) {
                        r = -EBADMSG;
                        break;
                }
                const char *method;
                size_t method_len, off = 0;
                r = frame_field_str(&f, 0, &method, &method_len);
                if (r < 0)
                        break;
                r = frame_begin_request(&c->out, &c->pk, MSG_CALL, f.id, 3, &off);
                if (r < 0)
                        break;
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, d->actor);
                if (r >= 0)
                        r = pack_str(&c->pk, method, method_len);
                if (r >= 0)
                        r = msgpack_pack_true(&c->pk) < 0 ? -ENOMEM : 0;
                if (r >= 0)
                        r = f.has_body ? buffer_append(&c->out, f.body_raw, f.body_len)
                                       : (msgpack_pack_array(&c->pk, 0) < 0 ? -ENOMEM : 0);
                if (r < 0) {
                        c->out.end = off;
                        break;
                }
                r = frame_end(&c->out, off);
                if (r >= 0)
                        r = client_track_frame(c, f.id, off);
                if (r < 0)
                        break;
                buffer_consume(&d->sent, PROTO_HEADER_SIZE + len);

                d->relayed_pending = true;
                d->relayed_last = f.id;
                DirectObject *o = direct_object_find(c, f.id);
                if (o) {
                        bool released = o->released;
                        direct_object_free(c, o);
                        if (released) {
                                kactor_ref ref = { { c->id_hi, f.id } };
                                r = kactor_ref_release(c, &ref, 1);
                                if (r < 0)
                                        break;
                        }
                }
        }
        frame_done(&f);
        d->sent.start = d->sent.end = 0;
        d->in.start = d->in.end = 0;
        d->out.start = d->out.end = 0;
        d->n_unanswered = 0;
        d->unanswered_head = 0;
        if (d->relayed_pending) {
                DirectWatch *w;
                HASH_FIND(hh, c->direct_watch, &d->relayed_last, sizeof(uint64_t), w);
                if (!w && (w = calloc(1, sizeof(*w)))) {
                        w->lo = d->relayed_last;
                        w->direct = d;
                        HASH_ADD(hh, c->direct_watch, lo, sizeof(w->lo), w);
                }
        }
        if (r >= 0)
                r = client_maybe_flush(c);
        return r;
}

/* Takes the answers that have come on d. 0, or a negative errno of the client's own. */
static int direct_process(kactor_client *c, ClientDirect *d) {
        /* Kept, with its zone, from one round to the next. */
        Frame *f = &c->direct_frame;
        int r = 0;

        for (;;) {
                const char *payload, *head;
                size_t len, head_len;
                int k = frame_peek(&d->in, &payload, &len);
                if (k == 0)
                        break;
                uint64_t code = 0, flags = 0;
                const char *msg = NULL;
                size_t msg_len = 0;
                /* Answers come in the order of the calls: this one is the oldest's. */
                if (k < 0 || frame_parse(f, payload, len) < 0 || f->type != MSG_DRESULT ||
                    frame_field_u64(f, 0, &code) < 0 || frame_field_u64(f, 2, &flags) < 0 ||
                    d->n_unanswered == 0 || d->unanswered[d->unanswered_head] != f->id ||
                    frame_peek(&d->sent, &head, &head_len) <= 0 ||
                    (code == KACTOR_OK && !f->has_body && !(flags & DRESULT_FETCH)))
                        return direct_broken(c, d);
                (void) frame_field_str(f, 1, &msg, &msg_len);
                KACTOR_PROBE(direct_result_received, kactor_trace_id_hash(c->id_hi, f->id), code);

                DirectObject *o = direct_object_find(c, f->id);
                if (o) {
                        o->direct = NULL;
                        if (o->released) {
                                direct_object_free(c, o);
                                r = direct_release_now(c, f->id);
                        } else if (code != KACTOR_OK) {
                                _cleanup_free_ char *m = strndup(msg ?: "", msg_len);
                                o->value = kactor_value_new_error(
                                        code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_TASK_FAILED,
                                        m ?: "failed");
                                r = o->value ? 0 : -ENOMEM;
                        } else if (flags & DRESULT_FETCH)
                                o->fetch = true;
                        else
                                r = codec_value_from_object(&f->body.data, &o->value);
                }
                buffer_consume(&d->sent, PROTO_HEADER_SIZE + head_len);
                buffer_consume(&d->in, PROTO_HEADER_SIZE + len);
                d->unanswered_head = (d->unanswered_head + 1) % d->unanswered_cap;
                d->n_unanswered--;
                if (r < 0)
                        break;
        }
        /* The calls answered go: the kept ones do not grow past those not answered. */
        if (d->sent.start >= d->sent.cap / 2)
                buffer_compact(&d->sent);
        return r;
}

/* One round of I/O on the sockets with something to do, waiting until deadline (0: forever;
 * UINT64_MAX: not at all). 1 when something happened, 0 when nothing did in time, or an errno. */
static int direct_pump(kactor_client *c, uint64_t deadline) {
        size_t n = 0, n_directs = HASH_COUNT(c->directs);
        ClientDirect *d, *tmp;
        int r;

        if (n_directs == 0)
                return 0;
        if (c->n_direct_poll < n_directs) {
                struct pollfd *p = reallocarray(c->direct_pfd, n_directs, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                c->direct_pfd = p;
                ClientDirect **q = reallocarray(c->direct_poll, n_directs, sizeof(*q));
                if (!q)
                        return -ENOMEM;
                c->direct_poll = (struct ClientDirect **) q;
                c->n_direct_poll = n_directs;
        }
        struct pollfd *pfd = c->direct_pfd;
        ClientDirect **ds = (ClientDirect **) c->direct_poll;

        HASH_ITER(hh, c->directs, d, tmp) {
                if (d->state == DIRECT_CLOSING && d->n_unanswered == 0) {
                        d->fd = safe_close(d->fd);
                        d->state = DIRECT_NONE;
                        buffer_free(&d->in);
                        buffer_free(&d->out);
                        buffer_free(&d->sent);
                        continue;
                }
                if ((d->state != DIRECT_OPEN && d->state != DIRECT_CLOSING) ||
                    (d->n_unanswered == 0 && buffer_size(&d->out) == 0))
                        continue;
                pfd[n] = (struct pollfd){ .fd = d->fd,
                                          .events = POLLIN | (buffer_size(&d->out) > 0 ? POLLOUT : 0) };
                ds[n++] = d;
        }
        if (n == 0)
                return 0;
        int timeout = -1;
        if (deadline == UINT64_MAX)
                timeout = 0;
        else if (deadline > 0) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                timeout = now >= deadline ? 0 : (int) MIN((deadline - now + 999) / 1000, (uint64_t) INT_MAX);
        }
        r = poll(pfd, n, timeout);
        if (r < 0)
                return errno == EINTR ? 1 : -errno;
        if (r == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                d = ds[i];
                if (pfd[i].revents & POLLOUT) {
                        ssize_t k = send(d->fd, d->out.data + d->out.start, buffer_size(&d->out),
                                         MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (k < 0 && errno != EAGAIN && errno != EINTR) {
                                r = direct_broken(c, d);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (k > 0)
                                buffer_consume(&d->out, (size_t) k);
                }
                if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                        r = buffer_reserve_read(&d->in, DIRECT_READ_CHUNK);
                        if (r < 0)
                                return r;
                        ssize_t k = recv(d->fd, d->in.data + d->in.end, d->in.cap - d->in.end, MSG_DONTWAIT);
                        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (k <= 0) {
                                /* Answers that came whole before the end still count. */
                                r = direct_process(c, d);
                                if (r >= 0 && (d->state == DIRECT_OPEN || d->state == DIRECT_CLOSING))
                                        r = direct_broken(c, d);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        d->in.end += (size_t) k;
                        r = direct_process(c, d);
                        if (r < 0)
                                return r;
                }
        }
        return 1;
}

/* Sends what d has buffered, taking answers as they come (its worker may be writing to us). */
static int direct_flush(kactor_client *c, ClientDirect *d) {
        while (d->state == DIRECT_OPEN && buffer_size(&d->out) > 0) {
                ssize_t k = send(d->fd, d->out.data + d->out.start, buffer_size(&d->out), MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k > 0) {
                        buffer_consume(&d->out, (size_t) k);
                        continue;
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno != EAGAIN)
                        return direct_broken(c, d);
                int r = direct_pump(c, 0);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -EPROTO; /* d has output: it is polled */
        }
        return 0;
}

int client_direct_flush_all(kactor_client *c) {
        ClientDirect *d, *tmp;
        HASH_ITER(hh, c->directs, d, tmp)
                if (d->state == DIRECT_OPEN && buffer_size(&d->out) > 0) {
                        int r = direct_flush(c, d);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* Asks the node manager for a socket to d's actor. 0 (d's state says what came of it) or an errno
 * of the connection. A refusal is not an error of the caller's: kactor_client_error() stays. */
static int direct_open(kactor_client *c, ClientDirect *d) {
        kactor_error saved_error = c->error;
        char *saved_message = c->error_message;
        c->error_message = NULL;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_OPEN_DIRECT, reqid, 1, &off);
        if (r >= 0) {
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, d->actor);
                if (r < 0)
                        c->out.end = off;
                else
                        r = frame_end(&c->out, off);
        }
        if (r >= 0)
                r = client_request(c, MSG_OPEN_DIRECT, reqid, off);
        if (r >= 0) {
                int fd = fd_queue_take(&c->fds);
                if (fd >= 0) {
                        d->fd = fd;
                        d->state = DIRECT_OPEN;
                } else {
                        d->state = DIRECT_RETRY;
                        d->retry_usec = now_usec(CLOCK_MONOTONIC) + DIRECT_RETRY_USEC;
                }
        } else if (r == -EREMOTEIO) {
                kactor_error e = c->error;
                if (e == KACTOR_ERROR_NOT_SUPPORTED || e == KACTOR_ERROR_ACCESS_DENIED ||
                    e == KACTOR_ERROR_NO_SUCH_ACTOR || e == KACTOR_ERROR_ACTOR_DIED || e == KACTOR_ERROR_PROTOCOL)
                        d->state = DIRECT_NEVER;
                else {
                        d->state = DIRECT_RETRY;
                        d->retry_usec = now_usec(CLOCK_MONOTONIC) + DIRECT_RETRY_USEC;
                }
                r = 0;
        }
        free(c->error_message);
        c->error_message = saved_message;
        c->error = saved_error;
        return r;
}

/* Appends lo to the ids of d's calls not answered. */
static int direct_unanswered_push(ClientDirect *d, uint64_t lo) {
        if (d->n_unanswered == d->unanswered_cap) {
                size_t cap = MAX(d->unanswered_cap * 2, (size_t) 64);
                uint64_t *n = malloc(cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                /* In order from 0: the ring unrolled. */
                for (size_t i = 0; i < d->n_unanswered; i++)
                        n[i] = d->unanswered[(d->unanswered_head + i) % d->unanswered_cap];
                free(d->unanswered);
                d->unanswered = n;
                d->unanswered_cap = cap;
                d->unanswered_head = 0;
        }
        d->unanswered[(d->unanswered_head + d->n_unanswered) % d->unanswered_cap] = lo;
        d->n_unanswered++;
        return 0;
}

static ClientDirect *direct_get(kactor_client *c, kactor_actor actor) {
        ClientDirect *d;
        HASH_FIND(hh, c->directs, &actor.id, sizeof(actor.id), d);
        if (d)
                return d;
        d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->actor = actor.id;
        d->fd = -1;
        msgpack_packer_init(&d->pk, &d->out, buffer_msgpack_write);
        HASH_ADD(hh, c->directs, actor, sizeof(d->actor), d);
        return d;
}

/* Waits until every call sent directly to d's actor has answered (or was sent again relayed). */
static int direct_drain(kactor_client *c, ClientDirect *d) {
        int r = direct_flush(c, d);
        while (r >= 0 && (d->state == DIRECT_OPEN || d->state == DIRECT_CLOSING) && d->n_unanswered > 0) {
                r = direct_pump(c, 0);
                if (r == 0)
                        return -EPROTO; /* nothing to wait on: does not occur */
        }
        return r < 0 ? r : 0;
}

int client_direct_actor_released(kactor_client *c, kactor_actor actor) {
        ClientDirect *d;
        if (!c->directs)
                return 0;
        HASH_FIND(hh, c->directs, &actor.id, sizeof(actor.id), d);
        if (!d || d->state != DIRECT_OPEN)
                return 0;
        /* The calls sent go first; the socket, which holds the actor until its worker has run them,
         * then ends: the answers still come on it. */
        int r = direct_flush(c, d);
        if (r < 0 || d->state != DIRECT_OPEN)
                return r;
        (void) shutdown(d->fd, SHUT_WR);
        d->state = DIRECT_CLOSING;
        return 0;
}

int client_direct_call(kactor_client *c, kactor_actor actor, const char *method, const kactor_value *args,
                       kactor_ref *ret) {
        if (!c->direct_on || c->worker || !(c->node_features & PROTO_FEATURE_DIRECT))
                return 0;
        ClientDirect *d = direct_get(c, actor);
        if (!d)
                return -ENOMEM;

        bool plain = !args || !codec_value_names_ids(args);
        if (plain && !d->relayed_pending) {
                if (d->state == DIRECT_NONE ||
                    (d->state == DIRECT_RETRY && now_usec(CLOCK_MONOTONIC) >= d->retry_usec)) {
                        int r = direct_open(c, d);
                        if (r < 0)
                                return r;
                }
                if (d->state == DIRECT_OPEN) {
                        kactor_id id = client_new_id(c);
                        uint64_t lo = id.lo;
                        size_t off, sent_off;
                        int r = frame_begin_request(&d->out, &d->pk, MSG_DCALL, lo, 1, &off);
                        if (r >= 0)
                                r = pack_cstr(&d->pk, method);
                        if (r >= 0)
                                r = args ? codec_pack_value(&d->pk, args)
                                         : (msgpack_pack_array(&d->pk, 0) < 0 ? -ENOMEM : 0);
                        if (r >= 0)
                                r = frame_end(&d->out, off);
                        sent_off = d->sent.end;
                        if (r >= 0)
                                r = buffer_append(&d->sent, d->out.data + off, d->out.end - off);
                        if (r < 0) {
                                d->out.end = MIN(d->out.end, off);
                                d->sent.end = sent_off;
                                return r == -EMSGSIZE ? -EMSGSIZE : r;
                        }
                        DirectObject *o = direct_object_add(c, lo);
                        r = o ? direct_unanswered_push(d, lo) : -ENOMEM;
                        if (r < 0) {
                                if (o)
                                        direct_object_free(c, o);
                                d->out.end = MIN(d->out.end, off);
                                d->sent.end = sent_off;
                                return r;
                        }
                        o->direct = d;
                        KACTOR_PROBE(direct_call_sent, kactor_trace_id_hash(actor.id.hi, actor.id.lo),
                                     kactor_trace_id_hash(c->id_hi, lo), kactor_trace_method_id(method, strlen(method)));
                        *ret = (kactor_ref){ id };
                        if (buffer_size(&d->out) >= DIRECT_FLUSH_THRESHOLD) {
                                r = direct_flush(c, d);
                                if (r < 0)
                                        return r;
                        }
                        return 1;
                }
        }
        /* Relayed: after what went directly to this actor. */
        if ((d->state == DIRECT_OPEN || d->state == DIRECT_CLOSING) &&
            (d->n_unanswered > 0 || buffer_size(&d->out) > 0)) {
                int r = direct_drain(c, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

void client_direct_relayed(kactor_client *c, kactor_actor actor, uint64_t lo) {
        if (!c->direct_on || c->worker)
                return;
        ClientDirect *d = direct_get(c, actor);
        if (!d)
                return;
        DirectWatch *w;
        if (d->relayed_pending) {
                HASH_FIND(hh, c->direct_watch, &d->relayed_last, sizeof(uint64_t), w);
                if (w) {
                        HASH_DEL(c->direct_watch, w);
                        free(w);
                }
        }
        d->relayed_pending = true;
        d->relayed_last = lo;
        w = calloc(1, sizeof(*w));
        if (!w)
                return; /* it stays relayed: slower, in order */
        w->lo = lo;
        w->direct = d;
        HASH_ADD(hh, c->direct_watch, lo, sizeof(w->lo), w);
}

void client_direct_seen(kactor_client *c, const kactor_ref *refs, size_t n, const bool *ready) {
        if (!c->direct_watch)
                return;
        for (size_t i = 0; i < n; i++) {
                DirectWatch *w;
                if ((ready && !ready[i]) || refs[i].id.hi != c->id_hi)
                        continue;
                HASH_FIND(hh, c->direct_watch, &refs[i].id.lo, sizeof(uint64_t), w);
                if (!w)
                        continue;
                if (w->direct->relayed_last == w->lo)
                        w->direct->relayed_pending = false;
                HASH_DEL(c->direct_watch, w);
                free(w);
        }
}

static bool direct_unanswered(kactor_client *c, kactor_id id) {
        if (id.hi != c->id_hi)
                return false;
        DirectObject *o = direct_object_find(c, id.lo);
        return o && o->direct;
}

static int settle_id(kactor_client *c, const kactor_value *v) {
        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_OBJECT: {
                kactor_id id = kactor_value_get_id(v);
                while (direct_unanswered(c, id)) {
                        DirectObject *o = direct_object_find(c, id.lo);
                        int r = direct_drain(c, o->direct);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        case KACTOR_TYPE_LIST:
                for (size_t i = 0; i < kactor_value_list_size(v); i++) {
                        int r = settle_id(c, kactor_value_list_get(v, i));
                        if (r < 0)
                                return r;
                }
                return 0;
        case KACTOR_TYPE_MAP:
                for (size_t i = 0; i < kactor_value_map_size(v); i++) {
                        int r = settle_id(c, kactor_value_map_value(v, i));
                        if (r < 0)
                                return r;
                }
                return 0;
        default:
                return 0;
        }
}

int client_direct_settle(kactor_client *c, const kactor_value *v) {
        if (c->n_direct_objs == 0 || !v)
                return 0;
        return settle_id(c, v);
}

int client_direct_wait_refs(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                            uint64_t deadline) {
        if (c->n_direct_objs == 0)
                return 0;
        /* Everything buffered goes before waiting, relayed calls too: what is waited for may need
         * them (a method that waits for another actor's). */
        int r = kactor_flush(c);
        if (r < 0)
                return r;
        if (num_returns >= n) {
                /* Every one: each in turn (answers come in the order of the calls, so by the time
                 * one is here most after it are too). */
                for (size_t i = 0; i < n; i++)
                        for (;;) {
                                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo)
                                                                            : NULL;
                                if (!o || !o->direct)
                                        break;
                                r = direct_pump(c, deadline);
                                if (r < 0)
                                        return r;
                                if (r == 0)
                                        return deadline > 0 ? -ETIMEDOUT : -EPROTO;
                        }
                return 0;
        }
        for (;;) {
                size_t answered = 0, pending = 0;
                for (size_t i = 0; i < n; i++) {
                        if (refs[i].id.hi != c->id_hi)
                                continue;
                        DirectObject *o = direct_object_find(c, refs[i].id.lo);
                        if (!o)
                                continue;
                        if (o->direct)
                                pending++;
                        else
                                answered++;
                }
                if (pending == 0 || answered >= num_returns)
                        return 0;
                r = direct_pump(c, deadline);
                if (r < 0)
                        return r;
                /* Nothing happened: the time is up (with no deadline, nothing could happen: a call
                 * pending on no socket, which does not occur). */
                if (r == 0)
                        return deadline > 0 ? -ETIMEDOUT : -EPROTO;
        }
}

int client_direct_take(kactor_client *c, const kactor_ref *refs, size_t n, kactor_value **values, bool *ret_all) {
        bool all = true;
        for (size_t i = 0; i < n; i++) {
                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo) : NULL;
                if (!o || o->direct || o->fetch) {
                        all = all && values[i];
                        continue;
                }
                if (o->taken > 0) {
                        /* Asked for twice: the second gets a copy. */
                        values[i] = kactor_value_copy(values[o->taken - 1]);
                        if (!values[i])
                                return -ENOMEM;
                        continue;
                }
                values[i] = TAKE_PTR(o->value);
                o->taken = i + 1;
        }
        *ret_all = all;
        return 0;
}

void client_direct_put_back(kactor_client *c, const kactor_ref *refs, size_t n, kactor_value **values) {
        for (size_t i = 0; i < n; i++) {
                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo) : NULL;
                if (o && o->taken == i + 1) {
                        o->value = TAKE_PTR(values[i]);
                        o->taken = 0;
                }
        }
}

void client_direct_forget(kactor_client *c, const kactor_ref *refs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo) : NULL;
                /* Delivered: a later Get asks the node manager, which has it too. */
                if (o && !o->direct && (o->taken > 0 || o->fetch))
                        direct_object_free(c, o);
        }
}

size_t client_direct_pending(kactor_client *c, const kactor_ref *refs, size_t n) {
        size_t k = 0;
        for (size_t i = 0; i < n && c->n_direct_objs > 0; i++) {
                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo) : NULL;
                k += o && o->direct;
        }
        return k;
}

size_t client_direct_ready(kactor_client *c, const kactor_ref *refs, size_t n, bool *ready) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo) : NULL;
                if (o && !o->direct) {
                        ready[i] = true;
                        k++;
                }
        }
        return k;
}

size_t client_direct_release(kactor_client *c, kactor_ref *refs, size_t n) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                DirectObject *o = refs[i].id.hi == c->id_hi ? direct_object_find(c, refs[i].id.lo) : NULL;
                if (o && o->direct) {
                        o->released = true;
                        continue;
                }
                if (o)
                        direct_object_free(c, o);
                refs[k++] = refs[i];
        }
        return k;
}

void client_direct_free_all(kactor_client *c) {
        ClientDirect *d, *dtmp;
        DirectOverflow *v, *vtmp;
        DirectWatch *w, *wtmp;

        HASH_ITER(hh, c->directs, d, dtmp) {
                if (d->fd >= 0 && buffer_size(&d->out) > 0)
                        (void) send(d->fd, d->out.data + d->out.start, buffer_size(&d->out),
                                    MSG_DONTWAIT | MSG_NOSIGNAL);
                HASH_DEL(c->directs, d);
                safe_close(d->fd);
                buffer_free(&d->in);
                buffer_free(&d->out);
                buffer_free(&d->sent);
                free(d->unanswered);
                free(d);
        }
        for (size_t i = 0; i < c->n_direct_slots; i++)
                if (c->direct_slots[i].lo != 0)
                        direct_object_free(c, &c->direct_slots[i]);
        HASH_ITER(hh, c->direct_overflow, v, vtmp)
                direct_object_free(c, &v->o);
        c->direct_slots = mfree(c->direct_slots);
        c->n_direct_slots = 0;
        HASH_ITER(hh, c->direct_watch, w, wtmp) {
                HASH_DEL(c->direct_watch, w);
                free(w);
        }
        free(c->direct_pfd);
        free(c->direct_poll);
        frame_done(&c->direct_frame);
        fd_queue_close(&c->fds);
}
