/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "client-internal.h"
#include "codec.h"
#include "macro.h"
#include "time-util.h"

/* Output is sent once this much is buffered, or when the caller waits for something. */
#define CLIENT_FLUSH_THRESHOLD (64u * 1024u)
#define CLIENT_READ_CHUNK (64u * 1024u)

/* Reconnecting: tries 10 ms apart, doubling to 500 ms, for 30 s unless told otherwise. A node
 * manager that accepted the connection gets at least a second to answer HELLO, even past that. */
#define CLIENT_RECONNECT_TIMEOUT_MS_DEFAULT 30000
#define CLIENT_RECONNECT_DELAY_MIN_MS 10u
#define CLIENT_RECONNECT_DELAY_MAX_MS 500u
#define CLIENT_HELLO_WAIT_MIN_USEC (1u * USEC_PER_SEC)
/* At most this much of sent CALL, SUBMIT and PUT frames is kept to send again; past it the oldest
 * are dropped (a Get of one after a lost session gets the node manager's answer). */
#define CLIENT_RESEND_MAX (256u * 1024u * 1024u)
/* The frames' storage is compacted once this much of it is dropped frames (and more than is kept),
 * and given back once it is empty if it grew past this. */
#define CLIENT_RESEND_SLACK (1u * 1024u * 1024u)
/* RELEASE frames kept until the node manager is known to have them; past it the oldest go (at
 * worst the node manager holds an object longer: until this client disconnects). */
#define CLIENT_RELEASES_MAX (16u * 1024u * 1024u)
/* Objects of lost sessions remembered, to answer a Get of them with the reason. */
#define CLIENT_LOST_MAX (4u * 1024u * 1024u)

#define CLIENT_SESSION_LOST_MESSAGE "the node manager restarted and lost this client's session"

static void client_set_error(kactor_client *c, kactor_error code, const char *msg, size_t len) {
        free(c->error_message);
        c->error = code;
        c->error_message = strndup(msg ? msg : "", msg ? len : 0);
}

static void client_set_errors(kactor_client *c, kactor_error code, const char *msg) {
        client_set_error(c, code, msg, strlen(msg));
}

int client_new_fd(int fd, bool worker, kactor_client **ret) {
        kactor_client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = fd;
        c->worker = worker;
        c->next_seq = 1;
        c->next_reqid = 1;
        c->reconnect_timeout_ms = -1; /* kactor_connect() turns it on */
        msgpack_packer_init(&c->pk, &c->out, buffer_msgpack_write);
        frame_init(&c->frame);
        frame_init(&c->direct_frame);
        *ret = c;
        return 0;
}

void client_set_identity(kactor_client *c, const char *node_id, uint64_t id_hi, uint64_t id_lo_prefix) {
        snprintf(c->node_id, sizeof(c->node_id), "%s", node_id);
        c->id_hi = id_hi;
        c->id_lo_prefix = id_lo_prefix;
}

/* Whether a broken connection is made again (and so whether sent frames are kept for it). */
static bool client_can_reconnect(const kactor_client *c) {
        return !c->worker && c->reconnect_timeout_ms >= 0 && c->socket_path;
}

/* The errors that mean the connection broke, as opposed to a bad frame or no memory. */
static bool error_is_disconnect(int r) {
        return r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN;
}

static void resend_log_done(ResendLog *l) {
        buffer_free(&l->frames);
        buffer_free(&l->releases);
        free(l->entries);
        free(l->released);
        *l = (ResendLog){};
}

/* Forgets every frame, keeping the memory. */
static void resend_log_clear(ResendLog *l) {
        l->frames.start = l->frames.end = 0;
        l->releases.start = l->releases.end = 0;
        l->first = l->n = 0;
        l->live_bytes = 0;
        l->acked_lo = 0;
        l->n_released = 0;
}

/* Moves the kept frames and their entries to the front, so that the frames lie back to back. */
static void resend_log_compact(ResendLog *l) {
        size_t at = 0, k = 0;
        for (size_t i = l->first; i < l->n; i++) {
                ResendEntry *e = &l->entries[i];
                if (e->len == 0)
                        continue;
                if (e->offset != at)
                        memmove(l->frames.data + at, l->frames.data + e->offset, e->len);
                e->offset = at;
                at += e->len;
                l->entries[k++] = *e;
        }
        l->frames.end = at;
        l->first = 0;
        l->n = k;
}

/* The entry of object lo, or NULL. Entries are sorted by lo (client_track_frame()). */
static ResendEntry *resend_log_find(ResendLog *l, uint64_t lo) {
        size_t a = l->first, b = l->n;
        while (a < b) {
                size_t m = a + (b - a) / 2;
                if (l->entries[m].lo < lo)
                        a = m + 1;
                else
                        b = m;
        }
        if (a < l->n && l->entries[a].lo == lo && l->entries[a].len > 0)
                return &l->entries[a];
        return NULL;
}

static void resend_log_drop(ResendLog *l, ResendEntry *e) {
        l->live_bytes -= e->len;
        e->len = 0;
        while (l->first < l->n && l->entries[l->first].len == 0)
                l->first++;
        if (l->first == l->n) {
                /* The usual case (each result fetched soon after its call): start over, for free. */
                l->first = l->n = 0;
                l->frames.start = l->frames.end = 0;
                if (l->frames.cap > CLIENT_RESEND_SLACK)
                        buffer_free(&l->frames);
        }
}

/*
 * Keeps a copy of the frame just packed at `off` in c->out, a CALL, SUBMIT or PUT of object lo, to
 * send again after a reconnect: the node manager may not have had it, and knows a frame sent again
 * on the same session and does not run it twice. Kept until a GET delivers the object's value or
 * the object is released. On failure the frame is taken back out of c->out: the call fails whole.
 */
int client_track_frame(kactor_client *c, uint64_t lo, size_t off) {
        ResendLog *l = &c->resend;
        size_t len = c->out.end - off;
        int r;

        if (!client_can_reconnect(c))
                return 0;

        /* Each compaction moves no more than was dropped since the last one. */
        if (l->frames.end - l->live_bytes > MAX(l->live_bytes, (size_t) CLIENT_RESEND_SLACK))
                resend_log_compact(l);
        if (l->n == l->cap) {
                if (l->first >= l->cap / 4 && l->first > 0) {
                        memmove(l->entries, l->entries + l->first, (l->n - l->first) * sizeof(ResendEntry));
                        l->n -= l->first;
                        l->first = 0;
                } else {
                        size_t cap = MAX(l->cap * 2, (size_t) 64);
                        ResendEntry *p = realloc(l->entries, cap * sizeof(ResendEntry));
                        if (!p) {
                                c->out.end = off;
                                return -ENOMEM;
                        }
                        l->entries = p;
                        l->cap = cap;
                }
        }
        r = buffer_append(&l->frames, c->out.data + off, len);
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        /* Entries, and their frames, stay in the order of their ids (resend_log_find() searches them
         * by halves, resend_log_compact() moves the frames in entry order): objects are made in
         * order, but a direct call made before later relayed ones is kept only once its socket broke
         * (lib/client-direct.c). Such a frame goes back before theirs: rare, so moved bytewise. */
        size_t at = l->n;
        while (at > l->first && l->entries[at - 1].lo > lo)
                at--;
        if (at < l->n) {
                size_t ins = l->entries[at].offset, tail = l->frames.end - len - ins;
                memmove(l->frames.data + ins + len, l->frames.data + ins, tail);
                memcpy(l->frames.data + ins, c->out.data + off, len);
                for (size_t i = at; i < l->n; i++)
                        l->entries[i].offset += len;
                memmove(l->entries + at + 1, l->entries + at, (l->n - at) * sizeof(ResendEntry));
                l->entries[at] = (ResendEntry){ .lo = lo, .offset = ins, .len = (uint32_t) len };
                l->n++;
        } else
                l->entries[l->n++] = (ResendEntry){ .lo = lo, .offset = l->frames.end - len, .len = (uint32_t) len };
        l->live_bytes += len;

        while (l->live_bytes > CLIENT_RESEND_MAX)
                resend_log_drop(l, &l->entries[l->first]);
        return 0;
}

/* A call whose frame was kept failed after all (the connection could not be made again): it is not
 * sent later behind the caller's back. */
static void client_untrack(kactor_client *c, uint64_t lo) {
        ResendEntry *e = resend_log_find(&c->resend, lo);
        if (e)
                resend_log_drop(&c->resend, e);
}

/* A GET delivered these objects' values: they are final, and no longer sent again. */
static void client_forget_objects(kactor_client *c, const kactor_ref *refs, size_t n) {
        if (c->resend.first == c->resend.n)
                return;
        for (size_t i = 0; i < n; i++) {
                if (refs[i].id.hi != c->id_hi)
                        continue;
                ResendEntry *e = resend_log_find(&c->resend, refs[i].id.lo);
                if (e)
                        resend_log_drop(&c->resend, e);
        }
}

static int id_compare(const void *a, const void *b) {
        const kactor_id *x = a, *y = b;
        if (x->hi != y->hi)
                return x->hi < y->hi ? -1 : 1;
        if (x->lo != y->lo)
                return x->lo < y->lo ? -1 : 1;
        return 0;
}

static kactor_id *client_find_lost(const kactor_client *c, kactor_id id) {
        if (c->n_lost == 0)
                return NULL;
        return bsearch(&id, c->lost, c->n_lost, sizeof(kactor_id), id_compare);
}

/*
 * The node manager dropped this client's objects as released, or will once the RELEASE frame just
 * packed at `off` in c->out reaches it. A frame of such an object is no longer sent again, unless
 * the node manager may not have had it yet: then it still goes first, and the RELEASE behind it, so
 * that a call made and released at once (for its effect) still runs, and a later call that takes
 * the object as an argument finds it.
 */
static int client_track_release(kactor_client *c, const kactor_ref *refs, size_t n, size_t off) {
        ResendLog *l = &c->resend;
        int r;

        for (size_t i = 0; i < n; i++) {
                kactor_id *lost = client_find_lost(c, refs[i].id);
                if (lost) {
                        memmove(lost, lost + 1, (c->lost + c->n_lost - (lost + 1)) * sizeof(kactor_id));
                        c->n_lost--;
                }
        }

        if (!client_can_reconnect(c))
                return 0;

        for (size_t i = 0; i < n && l->first < l->n; i++) {
                if (refs[i].id.hi != c->id_hi)
                        continue;
                ResendEntry *e = resend_log_find(l, refs[i].id.lo);
                if (!e || e->released)
                        continue;
                if (e->lo < l->acked_lo) {
                        resend_log_drop(l, e);
                        continue;
                }
                if (l->n_released == l->cap_released) {
                        size_t cap = MAX(l->cap_released * 2, (size_t) 16);
                        uint64_t *p = realloc(l->released, cap * sizeof(uint64_t));
                        if (!p)
                                continue; /* sent again, and released again: no harm */
                        l->released = p;
                        l->cap_released = cap;
                }
                e->released = true;
                l->released[l->n_released++] = e->lo;
        }

        r = buffer_append(&l->releases, c->out.data + off, c->out.end - off);
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        while (buffer_size(&l->releases) > CLIENT_RELEASES_MAX) {
                uint32_t le;
                memcpy(&le, l->releases.data + l->releases.start, sizeof(le));
                buffer_consume(&l->releases, PROTO_HEADER_SIZE + le32toh(le));
        }
        return 0;
}

/* The node manager answered a request: it handles frames in order, so it has every frame sent
 * before that request, the objects below `mark` among them. */
static void client_acked(kactor_client *c, uint64_t mark) {
        ResendLog *l = &c->resend;

        l->acked_lo = MAX(l->acked_lo, mark);
        for (size_t i = 0; i < l->n_released; i++) {
                ResendEntry *e = resend_log_find(l, l->released[i]);
                if (e)
                        resend_log_drop(l, e);
        }
        l->n_released = 0;
        l->releases.start = l->releases.end = 0;
}

/* Writes p, all of it. Returns 0, or a negative errno (-ENOTCONN when not connected). */
static int client_send_bytes(kactor_client *c, const char *p, size_t n) {
        if (n == 0)
                return 0;
        if (c->fd < 0)
                return -ENOTCONN;
        while (n > 0) {
                ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                c->out_written += (size_t) k;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Writes what is buffered, without reconnecting. */
static int client_send(kactor_client *c) {
        if (buffer_size(&c->out) == 0)
                return 0;
        if (c->fd < 0)
                return -ENOTCONN;
        while (buffer_size(&c->out) > 0) {
                ssize_t n = send(c->fd, c->out.data + c->out.start, buffer_size(&c->out), MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                c->out_written += (size_t) n;
                buffer_consume(&c->out, (size_t) n);
        }
        return 0;
}

/* Reads more input. Returns bytes read, 0 at end of stream, or a negative errno. */
static int client_fill(kactor_client *c) {
        if (c->fd < 0)
                return -ENOTCONN;
        int r = buffer_reserve_read(&c->in, CLIENT_READ_CHUNK);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = proto_recv(c->fd, c->in.data + c->in.end, c->in.cap - c->in.end, 0, &c->fds);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                c->in.end += (size_t) n;
                return (int) n;
        }
}

/* Parses the next frame from the input, reading as needed, until `deadline` (CLOCK_MONOTONIC µs; 0:
 * no limit). The frame (and c->last_payload) stays valid until the next read. Returns 1, or a
 * negative errno (-ECONNRESET at end of stream, -ETIMEDOUT past the deadline). Does not reconnect. */
static int client_read_frame_until(kactor_client *c, uint64_t deadline) {
        for (;;) {
                const char *payload;
                size_t len;
                int r = frame_peek(&c->in, &payload, &len);
                if (r < 0)
                        return r;
                if (r > 0) {
                        buffer_consume(&c->in, PROTO_HEADER_SIZE + len);
                        c->last_payload = payload;
                        c->last_len = len;
                        r = frame_parse(&c->frame, payload, len);
                        return r < 0 ? r : 1;
                }
                r = client_send(c);
                if (r < 0)
                        return r;
                if (deadline > 0) {
                        uint64_t now = now_usec(CLOCK_MONOTONIC);
                        if (now >= deadline)
                                return -ETIMEDOUT;
                        struct pollfd p = { .fd = c->fd, .events = POLLIN };
                        r = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                        if (r < 0 && errno != EINTR)
                                return negative_errno();
                        if (r <= 0)
                                continue;
                }
                r = client_fill(c);
                if (r <= 0)
                        return r == 0 ? -ECONNRESET : r;
        }
}

static int client_read_frame(kactor_client *c) {
        return client_read_frame_until(c, 0);
}

/* A call for this worker arrived while it waits for a reply: set it aside, in order. */
static int client_set_aside(kactor_client *c) {
        PendingFrame *p = malloc(sizeof(PendingFrame) + c->last_len);
        if (!p)
                return -ENOMEM;
        p->next = NULL;
        p->type = c->frame.type;
        p->id = c->frame.id;
        p->len = c->last_len;
        memcpy(p->payload, c->last_payload, c->last_len);
        if (c->pending_tail)
                c->pending_tail->next = p;
        else
                c->pending_head = p;
        c->pending_tail = p;
        return 0;
}

/* Waits for the reply to reqid. Returns 0 with the reply in c->frame, -EREMOTEIO when the node
 * manager reported an error (see kactor_client_error()), or another negative errno. Does not
 * reconnect (see client_request()). */
static int client_wait_reply(kactor_client *c, uint64_t reqid) {
        for (;;) {
                int r = client_read_frame(c);
                if (r < 0)
                        return r;

                if (c->frame.type == MSG_RECALL && c->worker) {
                        r = client_recall_tasks(c);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c->frame.type != MSG_REPLY) {
                        if (!c->worker ||
                            (c->frame.type != MSG_EXEC && c->frame.type != MSG_TASK &&
                             c->frame.type != MSG_SAVE && c->frame.type != MSG_ACK &&
                             c->frame.type != MSG_DIRECT_OPEN && c->frame.type != MSG_DIRECT_CLOSE))
                                return -EBADMSG;
                        r = client_set_aside(c);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c->frame.id != reqid)
                        return -EBADMSG;

                uint64_t code;
                r = frame_field_u64(&c->frame, 0, &code);
                if (r < 0)
                        return r;
                if (code != KACTOR_OK) {
                        const char *msg = "";
                        size_t msg_len = 0;
                        (void) frame_field_str(&c->frame, 1, &msg, &msg_len);
                        client_set_error(
                                c, code < _KACTOR_ERROR_MAX ? (kactor_error) code : KACTOR_ERROR_PROTOCOL,
                                msg, msg_len);
                        return -EREMOTEIO;
                }
                return 0;
        }
}

int client_recall_tasks(kactor_client *c) {
        PendingFrame **pp = &c->pending_head, *last = NULL;
        size_t n = 0;

        for (PendingFrame *p = c->pending_head; p; p = p->next)
                n += p->type == MSG_TASK;

        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_RECALLED, 0, 1, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_array(&c->pk, n) < 0 ? -ENOMEM : 0;
        while (r >= 0 && *pp) {
                PendingFrame *p = *pp;
                if (p->type != MSG_TASK) {
                        last = p;
                        pp = &p->next;
                        continue;
                }
                r = msgpack_pack_uint64(&c->pk, p->id) < 0 ? -ENOMEM : 0;
                *pp = p->next;
                free(p);
        }
        c->pending_tail = last;
        if (r < 0) {
                c->out.end = off;
                return r;
        }
        r = frame_end(&c->out, off);
        if (r < 0)
                return r;
        return kactor_flush(c);
}

int client_poll_frame(kactor_client *c, Frame *f) {
        if (c->pending_head)
                return client_next_frame(c, f);
        const char *payload;
        size_t len;
        int r = frame_peek(&c->in, &payload, &len);
        if (r <= 0)
                return r;
        return client_next_frame(c, f);
}

int client_next_frame(kactor_client *c, Frame *f) {
        free(c->current_pending);
        c->current_pending = NULL;

        if (c->pending_head) {
                PendingFrame *p = c->pending_head;
                c->pending_head = p->next;
                if (!c->pending_head)
                        c->pending_tail = NULL;
                c->current_pending = p;
                int r = frame_parse(f, p->payload, p->len);
                return r < 0 ? r : 1;
        }

        for (;;) {
                const char *payload;
                size_t len;
                int r = frame_peek(&c->in, &payload, &len);
                if (r < 0)
                        return r;
                if (r > 0) {
                        buffer_consume(&c->in, PROTO_HEADER_SIZE + len);
                        r = frame_parse(f, payload, len);
                        return r < 0 ? r : 1;
                }
                /* A peer that closed may have said something last (a worker's STOP): it is read before
                 * the failed write is reported. */
                int flushed = kactor_flush(c);
                if (flushed < 0 && flushed != -EPIPE && flushed != -ECONNRESET)
                        return flushed;
                r = client_fill(c);
                if (r <= 0)
                        return flushed < 0 ? flushed : r;
        }
}

kactor_id client_new_id(kactor_client *c) {
        return (kactor_id){ c->id_hi, c->id_lo_prefix | c->next_seq++ };
}

static int pack_args(msgpack_packer *pk, const kactor_value *args) {
        if (!args)
                return msgpack_pack_array(pk, 0) < 0 ? -ENOMEM : 0;
        if (kactor_value_type(args) != KACTOR_TYPE_LIST)
                return -EINVAL;
        return codec_pack_value(pk, args);
}

static int client_end_frame(kactor_client *c, size_t off, int r) {
        if (r < 0) {
                c->out.end = off; /* drop the half-written frame */
                return r;
        }
        return frame_end(&c->out, off);
}

int client_connect_socket(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/*
 * Says HELLO on c->fd, asking for the session of this client's id prefix back when `resume`, and
 * reads the WELCOME until `deadline` (CLOCK_MONOTONIC µs, 0: no limit). Returns 0 and the identity
 * the node manager gave, -EACCES or -EPROTO when it refused (kactor_client_error() says why), or
 * another negative errno.
 */
static int client_hello(kactor_client *c, bool resume, uint64_t deadline, char **ret_node, uint64_t *ret_hi,
                        uint64_t *ret_prefix) {
        size_t off;
        int r;

        r = frame_begin_request(&c->out, &c->pk, MSG_HELLO, 0, resume ? 3 : 2, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_uint32(&c->pk, PROTO_VERSION) < 0 || msgpack_pack_int64(&c->pk, getpid()) < 0 ||
                        (resume && msgpack_pack_uint64(&c->pk, c->id_lo_prefix) < 0)
                ? -ENOMEM
                : 0;
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_read_frame_until(c, deadline);
        if (r < 0)
                return r;

        if (c->frame.type == MSG_REPLY) {
                /* Refused: the reply says why. */
                const char *msg = "";
                size_t len = 0;
                uint64_t code = KACTOR_ERROR_PROTOCOL;
                (void) frame_field_u64(&c->frame, 0, &code);
                (void) frame_field_str(&c->frame, 1, &msg, &len);
                client_set_error(c,
                                 code > 0 && code < _KACTOR_ERROR_MAX ? (kactor_error) code
                                                                      : KACTOR_ERROR_PROTOCOL,
                                 msg, len);
                return code == KACTOR_ERROR_ACCESS_DENIED ? -EACCES : -EPROTO;
        }
        if (c->frame.type != MSG_WELCOME)
                return -EPROTO;

        uint64_t version, hi, lo;
        _cleanup_free_ char *node = NULL;
        r = frame_field_u64(&c->frame, 0, &version);
        if (r >= 0)
                r = frame_field_strdup(&c->frame, 1, &node);
        if (r >= 0)
                r = frame_field_u64(&c->frame, 2, &hi);
        if (r >= 0)
                r = frame_field_u64(&c->frame, 3, &lo);
        if (r < 0)
                return r;
        /* What it offers (an older node manager says nothing: nothing new). */
        uint64_t features = 0;
        (void) frame_field_u64(&c->frame, 4, &features);
        c->node_features = (uint32_t) features;
        *ret_node = TAKE_PTR(node);
        *ret_hi = hi;
        *ret_prefix = lo;
        return 0;
}

/* The node manager did not give the session back: the objects it held for this client are gone.
 * Those whose frames were kept are remembered, so that a Get of them says so; the client goes on
 * with the identity it was given. */
static void client_session_lost(kactor_client *c, const char *node, uint64_t hi, uint64_t prefix) {
        ResendLog *l = &c->resend;
        size_t n = c->n_lost;

        for (size_t i = l->first; i < l->n && n < CLIENT_LOST_MAX; i++) {
                const ResendEntry *e = &l->entries[i];
                if (e->len == 0 || e->released)
                        continue;
                if (n == c->cap_lost) {
                        size_t cap = MAX(c->cap_lost * 2, (size_t) 64);
                        kactor_id *p = realloc(c->lost, cap * sizeof(kactor_id));
                        if (!p)
                                break; /* those get the node manager's answer instead */
                        c->lost = p;
                        c->cap_lost = cap;
                }
                c->lost[n++] = (kactor_id){ c->id_hi, e->lo };
        }
        if (n > c->n_lost) {
                c->n_lost = n;
                qsort(c->lost, c->n_lost, sizeof(kactor_id), id_compare);
        }
        resend_log_clear(l);

        /* next_seq goes on: no id of the new session can be one of a session lost before. */
        client_set_identity(c, node, hi, prefix);
        client_set_errors(c, KACTOR_ERROR_NO_SUCH_OBJECT, CLIENT_SESSION_LOST_MESSAGE);
}

/* One try: connects, says HELLO, and sends again what the node manager may not have. Returns 1
 * when it gave the session back, 0 when it lost it, or a negative errno. */
static int client_reconnect_once(kactor_client *c) {
        _cleanup_free_ char *node = NULL;
        uint64_t hi, prefix;
        int fd, r;

        r = client_connect_socket(c->socket_path, &fd);
        if (r < 0)
                /* A socket just made may not be ours to use yet (an older node manager chmod()s it
                 * after bind()): try again, unlike a refusal in the HELLO. */
                return r == -EACCES ? -ECONNREFUSED : r;
        c->fd = fd;
        c->out_written = 0;
        c->in.start = c->in.end = 0;
        fd_queue_close(&c->fds); /* what came with the old connection's replies */
        c->out.start = c->out.end = 0;

        r = client_hello(c, true,
                         MAX(c->reconnect_deadline, now_usec(CLOCK_MONOTONIC) + CLIENT_HELLO_WAIT_MIN_USEC),
                         &node, &hi, &prefix);
        if (r < 0)
                goto fail;

        if (!streq(node, c->node_id) || hi != c->id_hi || prefix != c->id_lo_prefix) {
                client_session_lost(c, node, hi, prefix);
                return 0;
        }

        /* The kept frames in their order, then the releases that followed them. The node manager
         * drops a frame it had only part of, and knows those it had whole. */
        ResendLog *l = &c->resend;
        resend_log_compact(l);
        r = client_send_bytes(c, l->frames.data, l->frames.end);
        if (r >= 0)
                r = client_send_bytes(c, l->releases.data + l->releases.start, buffer_size(&l->releases));
        if (r < 0)
                goto fail;
        return 1;

fail:
        c->fd = safe_close(c->fd);
        return r;
}

/*
 * The connection broke: connects again, as often as it takes until the reconnect timeout. What was
 * buffered and not sent is dropped, as it is all sent again: the kept CALL, SUBMIT, PUT and RELEASE
 * frames by this function, the request waiting for a reply by client_request(). Returns 1 when the
 * node manager gave the session back, 0 when it lost it (kactor_client_error() says so), or a
 * negative errno: -ECONNRESET when it did not come back in time, -EACCES or -EPROTO when it
 * refused this client.
 */
static int client_reconnect(kactor_client *c) {
        unsigned delay_ms = CLIENT_RECONNECT_DELAY_MIN_MS;
        int r;

        c->fd = safe_close(c->fd);
        c->in.start = c->in.end = 0;
        c->out.start = c->out.end = 0;

        /* The deadline holds across tries, and across reconnects until the node manager answers
         * something: one that takes the connection and drops it again does not keep us here. */
        if (c->reconnect_deadline == 0)
                c->reconnect_deadline =
                        now_usec(CLOCK_MONOTONIC) + (uint64_t) c->reconnect_timeout_ms * 1000u;

        for (;;) {
                r = client_reconnect_once(c);
                if (r >= 0)
                        return r;
                if (r == -EACCES || r == -EPROTO || r == -ENOMEM)
                        break;

                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= c->reconnect_deadline) {
                        char msg[128];
                        snprintf(msg, sizeof(msg), "the node manager did not come back within %d ms",
                                 c->reconnect_timeout_ms);
                        client_set_errors(c, KACTOR_ERROR_TIMEOUT, msg);
                        r = -ECONNRESET;
                        break;
                }
                uint64_t wait_usec = MIN((uint64_t) delay_ms * 1000u, c->reconnect_deadline - now);
                struct timespec ts = { .tv_sec = (time_t) (wait_usec / USEC_PER_SEC),
                                       .tv_nsec = (long) (wait_usec % USEC_PER_SEC) * 1000 };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
                delay_ms = MIN(delay_ms * 2, CLIENT_RECONNECT_DELAY_MAX_MS);
        }

        /* Given up: the next call tries again, for as long. */
        c->reconnect_deadline = 0;
        return r;
}

/* Whether the node manager may run a request twice with no other effect than once. */
static bool request_is_idempotent(uint32_t type) {
        return type == MSG_GET || type == MSG_WAIT || type == MSG_GET_ACTOR || type == MSG_KILL ||
                type == MSG_OPEN_DIRECT;
}

/*
 * Sends the request just packed at `off` in c->out and waits for its reply, across reconnects: after
 * one it is sent again, behind the frames the node manager may not have had. Returns as
 * client_wait_reply(), -ECONNRESET for a CREATE_ACTOR that may have been handled and was not
 * answered, or -ESTALE when the node manager lost the session while a GET or a WAIT waited: the
 * caller asks again, now that the lost objects are known.
 */
int client_request(kactor_client *c, uint32_t type, uint64_t reqid, size_t off) {
        int r;

        /* A request may wait on what direct calls do: they go first. */
        r = client_direct_flush_all(c);
        if (r < 0)
                return r;

        if (!client_can_reconnect(c))
                return client_wait_reply(c, reqid);

        c->request.start = c->request.end = 0;
        r = buffer_append(&c->request, c->out.data + off, c->out.end - off);
        if (r < 0) {
                c->out.end = off;
                return r;
        }

        for (;;) {
                c->request_end = c->out_written + buffer_size(&c->out);
                c->request_mark = c->id_lo_prefix | c->next_seq;

                r = client_wait_reply(c, reqid);
                if (r >= 0 || r == -EREMOTEIO) {
                        c->reconnect_deadline = 0;
                        client_acked(c, c->request_mark);
                        return r;
                }
                if (!error_is_disconnect(r))
                        return r;

                if (!request_is_idempotent(type) && c->out_written >= c->request_end) {
                        /* Written whole: the node manager may have created the actor. The next call
                         * connects again. */
                        c->fd = safe_close(c->fd);
                        c->in.start = c->in.end = 0;
                        c->out.start = c->out.end = 0;
                        client_set_errors(c, KACTOR_ERROR_PROTOCOL,
                                          "the node manager restarted before answering: the actor may or "
                                          "may not exist");
                        return -ECONNRESET;
                }

                r = client_reconnect(c);
                if (r < 0)
                        return r;
                if (r == 0 && (type == MSG_GET || type == MSG_WAIT))
                        return -ESTALE;
                r = buffer_append(&c->out, c->request.data + c->request.start, buffer_size(&c->request));
                if (r < 0)
                        return r;
        }
}

_public_ kactor_client *kactor_client_free(kactor_client *c) {
        if (!c)
                return NULL;
        client_direct_free_all(c);
        if (c->fd >= 0)
                (void) client_send(c);
        safe_close(c->fd);
        buffer_free(&c->in);
        buffer_free(&c->out);
        frame_done(&c->frame);
        free(c->current_pending);
        while (c->pending_head) {
                PendingFrame *p = c->pending_head;
                c->pending_head = p->next;
                free(p);
        }
        free(c->error_message);
        free(c->socket_path);
        resend_log_done(&c->resend);
        buffer_free(&c->request);
        free(c->lost);
        free(c);
        return NULL;
}

_public_ kactor_error kactor_client_error(const kactor_client *c) {
        return c->error;
}

_public_ const char *kactor_client_error_message(const kactor_client *c) {
        return c->error_message ?: "";
}

_public_ const char *kactor_client_node_id(const kactor_client *c) {
        return c->node_id;
}

_public_ int kactor_flush(kactor_client *c) {
        if (!c)
                return -EINVAL;
        int r = client_direct_flush_all(c);
        if (r < 0)
                return r;
        r = client_send(c);
        if (r < 0 && error_is_disconnect(r) && client_can_reconnect(c)) {
                /* What was buffered is sent again by the reconnect, or is lost with the session. */
                r = client_reconnect(c);
                if (r > 0)
                        r = 0;
        }
        if (r >= 0)
                c->reconnect_deadline = 0;
        return r;
}

int client_maybe_flush(kactor_client *c) {
        if (buffer_size(&c->out) >= CLIENT_FLUSH_THRESHOLD)
                return kactor_flush(c);
        return 0;
}

/* The reconnect timeout: the caller's, else $KACTOR_RECONNECT_TIMEOUT_MS, else 30 s. */
static int connect_opts_reconnect_timeout(const struct kactor_connect_opts *opts) {
        if (opts && opts->sz >= offsetof(struct kactor_connect_opts, reconnect_timeout_ms) + sizeof(int) &&
            opts->reconnect_timeout_ms != 0)
                return opts->reconnect_timeout_ms;

        const char *e = getenv("KACTOR_RECONNECT_TIMEOUT_MS");
        if (e && *e) {
                char *end;
                errno = 0;
                long v = strtol(e, &end, 10);
                if (errno == 0 && *end == '\0' && v >= INT_MIN && v <= INT_MAX)
                        return (int) v;
        }
        return CLIENT_RECONNECT_TIMEOUT_MS_DEFAULT;
}

_public_ int kactor_connect(const struct kactor_connect_opts *opts, kactor_client **ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *node = NULL;
        const char *path = NULL;
        uint64_t hi, lo;
        int r;

        if (!ret)
                return -EINVAL;
        if (opts && opts->sz >= offsetof(struct kactor_connect_opts, socket_path) + sizeof(char *))
                path = opts->socket_path;
        if (!path)
                path = getenv("KACTOR_SOCKET");
        if (!path)
                path = KACTOR_DEFAULT_SOCKET;

        r = client_connect_socket(path, &fd);
        if (r < 0)
                return r;

        kactor_client *c;
        r = client_new_fd(fd, false, &c);
        if (r < 0)
                return r;
        fd = -1;

        c->reconnect_timeout_ms = connect_opts_reconnect_timeout(opts);
        if (c->reconnect_timeout_ms >= 0) {
                c->socket_path = strdup(path);
                if (!c->socket_path)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = client_hello(c, false, 0, &node, &hi, &lo);
        if (r < 0) {
                kactor_client_free(c);
                return r;
        }
        client_set_identity(c, node, hi, lo);
        c->direct_on = client_direct_wanted(opts);
        *ret = c;
        return 0;
}

static int pack_actor_options(msgpack_packer *pk, const struct kactor_actor_opts *o) {
        struct kactor_actor_opts d = { .sz = sizeof(d), .max_restarts = 0 };
        if (o) {
                /* Copy what the caller's (possibly older, smaller) struct has. */
                memcpy(&d, o, MIN(o->sz, sizeof(d)));
                d.sz = sizeof(d);
        }
        uint32_t n = 2 + (d.num_gpus > 0) + (d.num_cpus > 0) + (d.memory_max > 0) + (d.name != NULL) +
                (d.node != NULL) + (d.n_allow_users > 0) + (d.n_allow_groups > 0);
        if (msgpack_pack_map(pk, n) < 0)
                return -ENOMEM;
        if (pack_cstr(pk, "Detached") < 0 ||
            (d.detached ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0)
                return -ENOMEM;
        if (pack_cstr(pk, "MaxRestarts") < 0 || msgpack_pack_int64(pk, d.max_restarts) < 0)
                return -ENOMEM;
        if (d.num_gpus > 0 && (pack_cstr(pk, "NumGpus") < 0 || msgpack_pack_uint32(pk, d.num_gpus) < 0))
                return -ENOMEM;
        if (d.num_cpus > 0 && (pack_cstr(pk, "NumCpus") < 0 || msgpack_pack_double(pk, d.num_cpus) < 0))
                return -ENOMEM;
        if (d.memory_max > 0 &&
            (pack_cstr(pk, "MemoryMax") < 0 || msgpack_pack_uint64(pk, d.memory_max) < 0))
                return -ENOMEM;
        if (d.name && (pack_cstr(pk, "Name") < 0 || pack_cstr(pk, d.name) < 0))
                return -ENOMEM;
        if (d.node && (pack_cstr(pk, "Node") < 0 || pack_cstr(pk, d.node) < 0))
                return -ENOMEM;
        /* uid_t and gid_t are both 32-bit unsigned on Linux. */
        if (d.n_allow_users > 0 && (!d.allow_users || pack_cstr(pk, "AllowUsers") < 0 ||
                                    codec_pack_u32_list(pk, d.allow_users, d.n_allow_users) < 0))
                return -EINVAL;
        if (d.n_allow_groups > 0 && (!d.allow_groups || pack_cstr(pk, "AllowGroups") < 0 ||
                                     codec_pack_u32_list(pk, d.allow_groups, d.n_allow_groups) < 0))
                return -EINVAL;
        return 0;
}

_public_ int kactor_create_actor(kactor_client *c, const char *module, const char *class_name,
                                 const kactor_value *args, const struct kactor_actor_opts *opts,
                                 kactor_actor *ret) {
        if (!c || !module || !class_name || !ret)
                return -EINVAL;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_CREATE_ACTOR, reqid, 3, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&c->pk, module);
        if (r >= 0)
                r = pack_cstr(&c->pk, class_name);
        if (r >= 0)
                r = pack_actor_options(&c->pk, opts);
        if (r >= 0)
                r = pack_args(&c->pk, args);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;

        r = client_request(c, MSG_CREATE_ACTOR, reqid, off);
        if (r < 0)
                return r;
        kactor_id id;
        r = frame_field_id(&c->frame, 2, CODEC_EXT_ACTOR, &id);
        if (r < 0)
                return r;
        *ret = (kactor_actor){ id };
        return 0;
}

_public_ int kactor_get_actor(kactor_client *c, const char *name, kactor_actor *ret) {
        if (!c || !name || !ret)
                return -EINVAL;
        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_GET_ACTOR, reqid, 1, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&c->pk, name);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_request(c, MSG_GET_ACTOR, reqid, off);
        if (r < 0)
                return r;
        kactor_id id;
        r = frame_field_id(&c->frame, 2, CODEC_EXT_ACTOR, &id);
        if (r < 0)
                return r;
        *ret = (kactor_actor){ id };
        return 0;
}

_public_ int kactor_call(kactor_client *c, kactor_actor actor, const char *method, const kactor_value *args,
                         kactor_ref *ret) {
        if (!c || !method || !ret)
                return -EINVAL;
        int r = client_direct_call(c, actor, method, args, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        r = client_direct_settle(c, args);
        if (r < 0)
                return r;
        kactor_id id = client_new_id(c);
        size_t off;
        r = frame_begin_request(&c->out, &c->pk, MSG_CALL, id.lo, 2, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, actor.id);
        if (r >= 0)
                r = pack_cstr(&c->pk, method);
        if (r >= 0)
                r = pack_args(&c->pk, args);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_track_frame(c, id.lo, off);
        if (r < 0)
                return r;
        r = client_maybe_flush(c);
        if (r < 0) {
                client_untrack(c, id.lo);
                return r;
        }
        client_direct_relayed(c, actor, id.lo);
        *ret = (kactor_ref){ id };
        return 0;
}

_public_ int kactor_submit(kactor_client *c, const char *module, const char *function,
                           const kactor_value *args, const struct kactor_task_opts *opts, kactor_ref *ret) {
        if (!c || !module || !function || !ret)
                return -EINVAL;
        double num_cpus = 1;
        if (opts && opts->sz >= offsetof(struct kactor_task_opts, num_cpus) + sizeof(double))
                num_cpus = opts->num_cpus;

        int r = client_direct_settle(c, args);
        if (r < 0)
                return r;
        kactor_id id = client_new_id(c);
        size_t off;
        r = frame_begin_request(&c->out, &c->pk, MSG_SUBMIT, id.lo, 3, &off);
        if (r < 0)
                return r;
        r = pack_cstr(&c->pk, module);
        if (r >= 0)
                r = pack_cstr(&c->pk, function);
        if (r >= 0)
                r = msgpack_pack_map(&c->pk, 1) < 0 || pack_cstr(&c->pk, "NumCpus") < 0 ||
                                msgpack_pack_double(&c->pk, num_cpus) < 0
                        ? -ENOMEM
                        : 0;
        if (r >= 0)
                r = pack_args(&c->pk, args);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_track_frame(c, id.lo, off);
        if (r < 0)
                return r;
        r = client_maybe_flush(c);
        if (r < 0) {
                client_untrack(c, id.lo);
                return r;
        }
        *ret = (kactor_ref){ id };
        return 0;
}

_public_ int kactor_put(kactor_client *c, const kactor_value *value, kactor_ref *ret) {
        if (!c || !value || !ret || kactor_value_is_error(value))
                return -EINVAL;
        int r = client_direct_settle(c, value);
        if (r < 0)
                return r;
        kactor_id id = client_new_id(c);
        size_t off;
        r = frame_begin_request(&c->out, &c->pk, MSG_PUT, id.lo, 0, &off);
        if (r < 0)
                return r;
        r = codec_pack_value(&c->pk, value);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_track_frame(c, id.lo, off);
        if (r < 0)
                return r;
        r = client_maybe_flush(c);
        if (r < 0) {
                client_untrack(c, id.lo);
                return r;
        }
        *ret = (kactor_ref){ id };
        return 0;
}

static int pack_ref_list(msgpack_packer *pk, const kactor_ref *refs, size_t n) {
        if (msgpack_pack_array(pk, n) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = codec_pack_id(pk, CODEC_EXT_OBJECT, refs[i].id);
                if (r < 0)
                        return r;
        }
        return 0;
}

_public_ void kactor_values_free(kactor_value **values, size_t n) {
        if (!values)
                return;
        for (size_t i = 0; i < n; i++)
                kactor_value_free(values[i]);
        free(values);
}

/* The error a Get of an object of a lost session gives. */
static kactor_value *lost_value_new(void) {
        return kactor_value_new_error(KACTOR_ERROR_NO_SUCH_OBJECT, CLIENT_SESSION_LOST_MESSAGE);
}

/* Fills the slots of values still NULL: objects of a lost session here, the others from the node
 * manager. Returns 0, -ESTALE when the session was lost meanwhile (ask again), or a negative errno. */
static int client_get_values(kactor_client *c, const kactor_ref *refs, size_t n, uint64_t timeout_usec,
                             kactor_value **values) {
        size_t n_ask = 0;
        int r;

        for (size_t i = 0; i < n; i++) {
                if (!values[i] && c->n_lost > 0 && client_find_lost(c, refs[i].id)) {
                        values[i] = lost_value_new();
                        if (!values[i])
                                return -ENOMEM;
                }
                n_ask += !values[i];
        }
        if (n_ask == 0 && n > 0)
                return 0;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        r = frame_begin_request(&c->out, &c->pk, MSG_GET, reqid, 2, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_uint64(&c->pk, timeout_usec) < 0 || msgpack_pack_array(&c->pk, n_ask) < 0 ? -ENOMEM
                                                                                                   : 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                if (!values[i])
                        r = codec_pack_id(&c->pk, CODEC_EXT_OBJECT, refs[i].id);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_request(c, MSG_GET, reqid, off);
        if (r == -EREMOTEIO && c->error == KACTOR_ERROR_TIMEOUT)
                return -ETIMEDOUT;
        if (r < 0)
                return r;

        const msgpack_object *body = c->frame.has_body ? &c->frame.body.data : NULL;
        if (!body || body->type != MSGPACK_OBJECT_ARRAY || body->via.array.size != n_ask)
                return -EBADMSG;

        for (size_t i = 0, k = 0; i < n; i++) {
                if (values[i])
                        continue;
                r = codec_value_from_object(&body->via.array.ptr[k++], &values[i]);
                if (r < 0)
                        return r;
        }
        client_forget_objects(c, refs, n);
        return 0;
}

/* When a wait of timeout_usec (0: forever) started now ends: 0 for never. */
static uint64_t client_deadline(uint64_t timeout_usec) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        return timeout_usec == 0 || timeout_usec > UINT64_MAX - now ? 0 : now + timeout_usec;
}

_public_ int kactor_get(kactor_client *c, const kactor_ref *refs, size_t n, uint64_t timeout_usec,
                        kactor_value ***ret_values) {
        int r;

        if (!c || (!refs && n > 0) || !ret_values || n > UINT32_MAX)
                return -EINVAL;

        kactor_value **values = calloc(n ?: 1, sizeof(kactor_value *));
        if (!values)
                return -ENOMEM;
        uint64_t deadline = timeout_usec > 0 ? client_deadline(timeout_usec) : 0;
        if (c->n_direct_objs > 0) {
                /* Direct calls' answers come on their sockets; the node manager has the rest. */
                bool all = false;
                r = client_direct_wait_refs(c, refs, n, n, deadline);
                if (r >= 0)
                        r = client_direct_take(c, refs, n, values, &all);
                if (r < 0) {
                        client_direct_put_back(c, refs, n, values);
                        kactor_values_free(values, n);
                        return r;
                }
                if (all) {
                        client_direct_forget(c, refs, n);
                        *ret_values = values;
                        /* What waits for the node manager (releases) goes now, as with a Get it answers. */
                        (void) kactor_flush(c);
                        return 0;
                }
                if (deadline > 0) {
                        uint64_t now = now_usec(CLOCK_MONOTONIC);
                        timeout_usec = deadline > now ? deadline - now : 1;
                }
        }
        do
                r = client_get_values(c, refs, n, timeout_usec, values);
        while (r == -ESTALE);
        if (r < 0) {
                client_direct_put_back(c, refs, n, values);
                kactor_values_free(values, n);
                return r;
        }
        client_direct_forget(c, refs, n);
        client_direct_seen(c, refs, n, NULL);
        *ret_values = values;
        return 0;
}

_public_ int kactor_get1(kactor_client *c, kactor_ref ref, uint64_t timeout_usec, kactor_value **ret_value) {
        kactor_value **values;
        int r = kactor_get(c, &ref, 1, timeout_usec, &values);
        if (r < 0)
                return r;
        *ret_value = values[0];
        free(values);
        return 0;
}

/* As kactor_wait(); ready[i] already true for objects known to be lost (they are final: failed).
 * Returns the number ready, -ESTALE when the session was lost meanwhile (ask again), or a negative
 * errno. */
static int client_wait_objects(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                               uint64_t timeout_usec, bool *ready) {
        size_t n_lost = 0;
        int r;

        /* Ready already: objects of a lost session, answered direct calls. */
        for (size_t i = 0; i < n; i++) {
                if (!ready[i] && c->n_lost > 0 && client_find_lost(c, refs[i].id))
                        ready[i] = true;
                n_lost += ready[i];
        }
        if (n_lost == n && n > 0)
                return (int) n;

        uint64_t reqid = c->next_reqid++;
        size_t off;
        r = frame_begin_request(&c->out, &c->pk, MSG_WAIT, reqid, 3, &off);
        if (r < 0)
                return r;
        r = msgpack_pack_uint64(&c->pk, timeout_usec) < 0 ||
                        msgpack_pack_uint64(&c->pk, num_returns > n_lost ? num_returns - n_lost : 0) < 0 ||
                        msgpack_pack_array(&c->pk, n - n_lost) < 0
                ? -ENOMEM
                : 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                if (!ready[i])
                        r = codec_pack_id(&c->pk, CODEC_EXT_OBJECT, refs[i].id);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_request(c, MSG_WAIT, reqid, off);
        if (r < 0)
                return r;

        const msgpack_object *body = c->frame.has_body ? &c->frame.body.data : NULL;
        if (!body || body->type != MSGPACK_OBJECT_ARRAY || body->via.array.size != n - n_lost)
                return -EBADMSG;
        int n_ready = (int) n_lost;
        for (size_t i = 0, k = 0; i < n; i++) {
                if (ready[i]) /* lost */
                        continue;
                const msgpack_object *o = &body->via.array.ptr[k++];
                if (o->type != MSGPACK_OBJECT_BOOLEAN)
                        return -EBADMSG;
                ready[i] = o->via.boolean;
                n_ready += o->via.boolean;
        }
        return n_ready;
}

/*
 * A Wait on direct calls not answered yet and other objects: the answers come on the direct sockets
 * and the node manager knows the others, so the two are looked at in turns — what the sockets have,
 * then the node manager for a slice (5 ms, doubling up to 100 ms) — until num_returns are ready or
 * the deadline passes (0: none). Returns the number ready.
 */
static int client_wait_mixed(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                             uint64_t deadline, bool *ready) {
        _cleanup_free_ kactor_ref *sub = calloc(n, sizeof(kactor_ref));
        _cleanup_free_ bool *sub_ready = calloc(n, sizeof(bool));
        _cleanup_free_ size_t *at = calloc(n, sizeof(size_t));
        uint64_t slice = 5 * 1000;
        int r;

        if (!sub || !sub_ready || !at)
                return -ENOMEM;
        for (;;) {
                r = client_direct_wait_refs(c, refs, n, num_returns, UINT64_MAX);
                if (r < 0 && r != -ETIMEDOUT)
                        return r;
                memset(ready, 0, n * sizeof(bool));
                size_t k = client_direct_ready(c, refs, n, ready);
                if (k >= num_returns)
                        return (int) k;

                /* The others (neither direct pending nor answered) from the node manager. */
                size_t m = 0;
                for (size_t i = 0; i < n; i++)
                        if (!ready[i] && !client_direct_pending(c, refs + i, 1)) {
                                sub[m] = refs[i];
                                at[m++] = i;
                        }
                uint64_t now = now_usec(CLOCK_MONOTONIC), t = slice;
                if (deadline > 0)
                        t = deadline > now ? MIN(slice, deadline - now) : 1;
                if (m > 0) {
                        memset(sub_ready, 0, m * sizeof(bool));
                        do
                                r = client_wait_objects(c, sub, m, MIN(num_returns - k, m), t, sub_ready);
                        while (r == -ESTALE);
                        if (r < 0)
                                return r;
                        for (size_t j = 0; j < m; j++)
                                if (sub_ready[j]) {
                                        ready[at[j]] = true;
                                        k++;
                                }
                        client_direct_seen(c, sub, m, sub_ready);
                        if (k >= num_returns)
                                return (int) k;
                }
                if (m == 0 || (size_t) r == m) {
                        /* Only direct ones left to wait for: on their sockets, for a slice. */
                        size_t need = num_returns - (m > 0 ? m : 0);
                        r = client_direct_wait_refs(c, refs, n, need, now + t);
                        if (r < 0 && r != -ETIMEDOUT)
                                return r;
                }
                if (deadline > 0 && now_usec(CLOCK_MONOTONIC) >= deadline) {
                        memset(ready, 0, n * sizeof(bool));
                        k = client_direct_ready(c, refs, n, ready);
                        for (size_t j = 0; j < m; j++)
                                if (sub_ready[j]) {
                                        ready[at[j]] = true;
                                        k++;
                                }
                        return (int) k;
                }
                slice = MIN(slice * 2, (uint64_t) 100 * 1000);
        }
}

_public_ int kactor_wait(kactor_client *c, const kactor_ref *refs, size_t n, size_t num_returns,
                         uint64_t timeout_usec, bool *ret_ready) {
        int r;

        if (!c || (!refs && n > 0) || !ret_ready || num_returns > n || n > UINT32_MAX)
                return -EINVAL;

        memset(ret_ready, 0, n * sizeof(bool));
        if (c->n_direct_objs > 0) {
                uint64_t deadline = timeout_usec > 0 ? client_deadline(timeout_usec) : 0;
                size_t pending = client_direct_pending(c, refs, n);
                size_t relayed = n - pending - client_direct_ready(c, refs, n, ret_ready);
                memset(ret_ready, 0, n * sizeof(bool));
                if (pending > 0 && relayed == 0) {
                        /* All direct: wait on their sockets. */
                        r = client_direct_wait_refs(c, refs, n, num_returns, deadline);
                        if (r < 0 && r != -ETIMEDOUT)
                                return r;
                        (void) kactor_flush(c);
                        return (int) client_direct_ready(c, refs, n, ret_ready);
                }
                if (pending > 0)
                        return client_wait_mixed(c, refs, n, num_returns, deadline, ret_ready);
                /* Direct ones all answered: they are ready; the node manager is asked about the
                 * rest (client_wait_objects() counts the ready ones). */
                (void) client_direct_ready(c, refs, n, ret_ready);
        }
        do
                r = client_wait_objects(c, refs, n, num_returns, timeout_usec, ret_ready);
        while (r == -ESTALE);
        if (r > 0)
                client_direct_seen(c, refs, n, ret_ready);
        return r;
}

static int client_release(kactor_client *c, const kactor_ref *refs, size_t n, const kactor_actor *actor) {
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_RELEASE, 0, 2, &off);
        if (r < 0)
                return r;
        r = pack_ref_list(&c->pk, refs, n);
        if (r >= 0)
                r = msgpack_pack_array(&c->pk, actor ? 1 : 0) < 0 ? -ENOMEM : 0;
        if (r >= 0 && actor)
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, actor->id);
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        r = client_track_release(c, refs, n, off);
        if (r < 0)
                return r;
        return client_maybe_flush(c);
}

_public_ int kactor_ref_release(kactor_client *c, const kactor_ref *refs, size_t n) {
        if (!c || (!refs && n > 0) || n > UINT32_MAX)
                return -EINVAL;
        if (n == 0)
                return 0;
        if (c->n_direct_objs > 0) {
                /* Direct calls not answered yet are released once they are (the node manager may
                 * not have their records before). */
                _cleanup_free_ kactor_ref *now = memdup(refs, n * sizeof(kactor_ref));
                if (!now)
                        return -ENOMEM;
                n = client_direct_release(c, now, n);
                return n > 0 ? client_release(c, now, n, NULL) : 0;
        }
        return client_release(c, refs, n, NULL);
}

_public_ int kactor_actor_release(kactor_client *c, kactor_actor actor) {
        if (!c)
                return -EINVAL;
        int r = client_direct_actor_released(c, actor);
        if (r < 0)
                return r;
        return client_release(c, NULL, 0, &actor);
}

_public_ int kactor_kill(kactor_client *c, kactor_actor actor, bool no_restart) {
        if (!c)
                return -EINVAL;
        uint64_t reqid = c->next_reqid++;
        size_t off;
        int r = frame_begin_request(&c->out, &c->pk, MSG_KILL, reqid, 2, &off);
        if (r < 0)
                return r;
        r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, actor.id);
        if (r >= 0)
                r = (no_restart ? msgpack_pack_true(&c->pk) : msgpack_pack_false(&c->pk)) < 0 ? -ENOMEM : 0;
        r = client_end_frame(c, off, r);
        if (r < 0)
                return r;
        return client_request(c, MSG_KILL, reqid, off);
}
