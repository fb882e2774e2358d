/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "peer-tls.h"
#include "peer.h"
#include "time-util.h"

/* To finish HELLO + AUTH: on a connection we dialled, and on one a stranger made (short: it holds a
 * place in the strangers' pool, and the handshake takes one round trip). */
#define PEER_DIAL_TIMEOUT_USEC (5 * UINT64_C(1000000))
#define PEER_HANDSHAKE_TIMEOUT_USEC (2 * UINT64_C(1000000))
/* accept() out of file descriptors or memory: the listener rests this long, not to spin. */
#define PEER_ACCEPT_RETRY_USEC (100 * UINT64_C(1000))
#define PEER_ACCEPT_BATCH 16
/* What strangers can make happen at will is logged once per interval at most. */
#define PEER_LOG_INTERVAL_USEC (10 * UINT64_C(1000000))
#define PEER_DIAL_INTERVAL_USEC (500 * UINT64_C(1000))
#define PEER_READ_CHUNK 65536
#define PEER_TICK_ACCURACY_USEC 1000
#define PEER_RELAYS_MAX 64
#define PEER_RELAY_SEQ_BIT (UINT64_C(1) << 63)
/* Data frames (remote calls, replication) are not capped by count but by what is queued: a peer
 * that stops reading is dropped past this. */
#define PEER_OUT_MAX (256u * 1024u * 1024u)

static const char LABEL_DIAL[] = "kactor-peer-dial";
static const char LABEL_ACCEPT[] = "kactor-peer-accept";

typedef struct PeerConn PeerConn;

struct PeerConn {
        Cluster *cluster;
        unsigned n_ref;
        int fd;
        sd_event_source *io;
        sd_event_source *timeout; /* authentication deadline */
        PeerTls *tls;             /* NULL without TLS (KACTOR_PEER_PLAINTEXT) */
        Buffer in, out;           /* frames, in clear: TLS takes from out and adds to in */
        msgpack_packer pk;
        size_t n_queued;          /* frames in out */
        bool outbound;            /* else a stranger until it authenticates (peer_conn_is_stranger()) */
        bool connecting;
        bool got_hello;
        bool authenticated;       /* the peer proved the secret (or its certificate) */
        bool has_key;             /* without TLS: the key of the keyring its proof checked with */
        uint8_t key_id[PEER_KEY_ID_SIZE];
        bool dead;
        bool dirty;               /* data frames queued: flushed at the end of the loop iteration */
        LIST_ENTRY(PeerConn) dirty_link;
        uint8_t nonce[PEER_NONCE_SIZE];
        uint8_t peer_nonce[PEER_NONCE_SIZE];
        char *peer_id;
        char *dial_address;
        uint64_t since;           /* when it was accepted or dialled */
        struct in_addr address;   /* an inbound connection's source */
        size_t in_unauth;         /* bytes read before it authenticated */
        LIST_ENTRY(PeerConn) link;
        LIST_ENTRY(PeerConn) stranger_link;
};

/* A data frame that arrived while this node may have been declared dead (it was frozen): held
 * until the cluster says whether it still counts us in. */
typedef struct HeldFrame {
        char *peer_id;
        char *payload;
        size_t len;
        LIST_ENTRY(HeldFrame) link;
} HeldFrame;

#define PEER_HELD_MAX (64u * 1024u * 1024u)

typedef struct Relay {
        uint64_t seq;          /* ours, sent to the target */
        uint64_t origin_seq;
        char *origin;
} Relay;

struct Cluster {
        const ClusterOps *ops;
        void *userdata;
        sd_event *event;
        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *tick_source;
        sd_event_source *dial_source;
        PeerTlsContext *credentials;     /* the keyring or the certificate, and TLS's settings */
        sd_event_source *sighup_source;
        char *listen_address;
        char **seeds;
        Membership ms;
        sd_event_source *accept_retry;
        LIST_HEAD(, PeerConn) conns;
        LIST_HEAD(, PeerConn) dirty;
        LIST_HEAD(, PeerConn) strangers; /* also in conns */
        unsigned n_conns;                /* dialled or authenticated: at most PEER_MAX */
        unsigned n_strangers;            /* accepted, not authenticated yet: at most PEER_STRANGERS_MAX */
        LogRateLimit drop_log, evict_log, accept_log;
        LogRateLimit refused_log;        /* TLS handshakes refused: a wrong secret or certificate */
        Frame frame;
        /* Freezes: when the loop did not run for longer than the suspicion timeout, the others may
         * have declared us dead and rebuilt our actors: data frames wait (held) until an ack to a
         * probe sent after the freeze says what they think. */
        uint64_t last_active;
        bool stalled;
        uint64_t stall_seq;
        char **stall_pending;     /* members that have to answer a probe sent since the freeze */
        size_t n_stall_pending;
        LIST_HEAD(, HeldFrame) held;
        HeldFrame *held_tail;
        size_t held_bytes;
        uint64_t memory_total, memory_available, memory_read_usec;
        Relay relays[PEER_RELAYS_MAX];
        size_t relay_next;
        uint64_t relay_seq;
        /* Peers that lost a connection while another one to them lived: what went out on the lost
         * one may be lost too, so the node goes over what it owes them again (ops->peer_connected),
         * from a defer source, once the loop is out of the I/O that found the loss. */
        char **resend;
        size_t n_resend;
        sd_event_source *resend_source;
        bool freeing;
};

static int parse_address(const char *s, struct sockaddr_in *ret) {
        const char *colon = s ? strrchr(s, ':') : NULL;
        if (!colon || colon == s || colon - s >= INET_ADDRSTRLEN)
                return -EINVAL;
        char host[INET_ADDRSTRLEN];
        memcpy(host, s, colon - s);
        host[colon - s] = 0;
        char *end;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || port == 0 || port > 65535)
                return -EINVAL;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return -EINVAL;
        *ret = sa;
        return 0;
}

/* --- connections ---------------------------------------------------------------------------------- */

static void peer_conn_close(PeerConn *p);

static PeerConn *peer_conn_ref(PeerConn *p) {
        p->n_ref++;
        return p;
}

static PeerConn *peer_conn_unref(PeerConn *p) {
        if (!p || --p->n_ref > 0)
                return NULL;
        peer_tls_free(p->tls);
        buffer_free(&p->in);
        buffer_free(&p->out);
        free(p->peer_id);
        free(p->dial_address);
        free(p);
        return NULL;
}

static void peer_conn_unrefp(PeerConn **p) {
        peer_conn_unref(*p);
}

/* An inbound connection that has not proved the secret: it holds a place in the strangers' pool,
 * not one of the PEER_MAX places of peers. */
static bool peer_conn_is_stranger(const PeerConn *p) {
        return !p->outbound && !p->authenticated;
}

/* Closes the connection; others are not touched. The object goes with its last reference. */
static PeerConn *cluster_find_conn(Cluster *c, const char *id);

static int on_resend(sd_event_source *s, void *userdata) {
        Cluster *c = userdata;
        char **ids = TAKE_PTR(c->resend);
        size_t n = c->n_resend;
        c->n_resend = 0;
        for (size_t i = 0; i < n; i++) {
                if (cluster_find_conn(c, ids[i]) && c->ops && c->ops->peer_connected)
                        c->ops->peer_connected(c->userdata, ids[i]);
                free(ids[i]);
        }
        free(ids);
        return 0;
}

/* p, authenticated, goes while another connection to its peer lives on (a reload closed the one keyed
 * by a removed secret, the peer dialled again meanwhile): frames queued on p, or sent and not yet
 * read by the peer, are gone, and no new authentication will say so. */
static void peer_conn_lost_with_another(PeerConn *p) {
        Cluster *c = p->cluster;
        PeerConn *q;
        bool other = false;
        LIST_FOREACH(q, &c->conns, link)
                if (q != p && q->authenticated && q->peer_id && streq(q->peer_id, p->peer_id))
                        other = true;
        if (!other)
                return; /* the next authentication resends */
        for (size_t i = 0; i < c->n_resend; i++)
                if (streq(c->resend[i], p->peer_id))
                        return;
        char **v = realloc(c->resend, (c->n_resend + 1) * sizeof(char *));
        if (!v)
                return;
        c->resend = v;
        if (!(c->resend[c->n_resend] = strdup(p->peer_id)))
                return;
        c->n_resend++;
        int r = c->resend_source ? 0 : sd_event_add_defer(c->event, &c->resend_source, on_resend, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->resend_source, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to arrange to resend to peer %s: %m", p->peer_id);
}

static void peer_conn_close(PeerConn *p) {
        if (p->dead)
                return;
        p->dead = true;
        if (p->dirty) {
                LIST_REMOVE(p, dirty_link);
                p->dirty = false;
        }
        p->io = sd_event_source_disable_unref(p->io);
        p->timeout = sd_event_source_disable_unref(p->timeout);
        p->fd = safe_close(p->fd);
        LIST_REMOVE(p, link);
        if (p->authenticated && p->peer_id && !p->cluster->freeing)
                peer_conn_lost_with_another(p);
        if (peer_conn_is_stranger(p)) {
                LIST_REMOVE(p, stranger_link);
                p->cluster->n_strangers--;
        } else
                p->cluster->n_conns--;
        peer_conn_unref(p);
}

static void peer_conn_drop(PeerConn *p, int error, const char *why) {
        log_debug("Dropping peer connection %s (%s): %s: %s", p->peer_id ?: "?", p->dial_address ?: "inbound", why,
                  strerror(error < 0 ? -error : error));
        /* An authenticated peer that breaks is worth a line; peers that never authenticated (a
         * wrong secret retries twice a second, strangers at will) get one line in 10 s at most,
         * and those that TLS refused (a wrong key or certificate: worth telling an operator even
         * while strangers connect) one more. */
        LogRateLimit *rl = error == -EKEYREJECTED ? &p->cluster->refused_log : &p->cluster->drop_log;
        unsigned suppressed;
        if (p->authenticated ? error != 0 :
                               log_ratelimit_test(rl, now_usec(CLOCK_MONOTONIC), PEER_LOG_INTERVAL_USEC, &suppressed))
                log_info("Peer %s dropped: %s.", p->peer_id ?: p->dial_address ?: "(inbound)", why);
        peer_conn_close(p);
}

/* What goes to the socket: the frames themselves, or TLS records. */
static Buffer *peer_conn_wire_out(PeerConn *p) {
        return p->tls ? peer_tls_output(p->tls) : &p->out;
}

/* Writable matters only when there are bytes for the socket: with TLS, frames that wait in out do
 * so for the handshake, or for a read (each flush encrypts what the socket may take). */
static int peer_conn_update_events(PeerConn *p) {
        uint32_t events = EPOLLIN;
        if (p->connecting || buffer_size(peer_conn_wire_out(p)) > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(p->io, events);
}

/* Sends what the socket takes. With TLS, frames are encrypted as their records leave: no more than
 * PEER_TLS_OUTPUT_MAX of records wait, the rest stays in out as frames, where PEER_OUT_MAX counts
 * it. */
static int peer_conn_flush(PeerConn *p) {
        Buffer *wire = peer_conn_wire_out(p);
        bool blocked = false;
        int r;

        if (p->dead)
                return -ENOTCONN;
        for (;;) {
                size_t queued = buffer_size(&p->out);
                if (p->tls && peer_tls_is_established(p->tls)) {
                        r = peer_tls_send(p->tls, &p->out);
                        if (r < 0)
                                return r;
                }
                while (buffer_size(wire) > 0) {
                        ssize_t n = send(p->fd, wire->data + wire->start, buffer_size(wire),
                                         MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EAGAIN || errno == EINTR) {
                                        blocked = true;
                                        break;
                                }
                                return -errno;
                        }
                        buffer_consume(wire, (size_t) n);
                }
                /* More to encrypt, now that the socket took the records: again, unless TLS took
                 * nothing (it waits for the handshake or a read). */
                if (!p->tls || blocked || buffer_size(&p->out) == 0 || buffer_size(&p->out) == queued)
                        break;
        }
        if (buffer_size(&p->out) == 0)
                p->n_queued = 0;
        if (wire->start >= wire->cap / 2)
                buffer_compact(wire);
        return peer_conn_update_events(p);
}

/* Frame builder: the header is packed by the caller between begin and end. */
static size_t peer_frame_begin(PeerConn *p) {
        /* Between frames: what was sent goes, so that the output does not grow past what waits. */
        if (p->out.start >= p->out.cap / 2)
                buffer_compact(&p->out);
        return frame_begin(&p->out);
}

/* Finishes a frame: -EMSGSIZE when it is larger than a peer frame may be, -EBUSY when the peer
 * already has its cap of frames queued (it is not reading); the frame is dropped then. */
static int peer_frame_end(PeerConn *p, size_t offset) {
        size_t len = p->out.end - offset - PROTO_HEADER_SIZE;
        if (len > PEER_FRAME_MAX || p->n_queued >= PEER_QUEUE_MAX || buffer_size(&p->out) > PEER_OUT_MAX) {
                p->out.end = offset;
                return len > PEER_FRAME_MAX ? -EMSGSIZE : -EBUSY;
        }
        int r = frame_end(&p->out, offset);
        if (r < 0)
                return r;
        p->n_queued++;
        if (p->connecting)
                return 0;
        r = peer_conn_flush(p);
        if (r < 0) {
                peer_conn_drop(p, r, "write failed");
                return r;
        }
        return 0;
}

/* A data frame: never dropped for the count of frames queued (a lost call or record would be lost
 * for good), sent with the others at the end of the event loop iteration. */
static int peer_data_frame_end(PeerConn *p, size_t offset) {
        size_t len = p->out.end - offset - PROTO_HEADER_SIZE;
        if (len > PEER_FRAME_MAX) {
                p->out.end = offset;
                return -EMSGSIZE;
        }
        if (buffer_size(&p->out) > PEER_OUT_MAX) {
                peer_conn_drop(p, -ENOBUFS, "it does not read what is sent to it");
                return -ENOBUFS;
        }
        int r = frame_end(&p->out, offset);
        if (r < 0)
                return r;
        if (!p->dirty && !p->connecting) {
                p->dirty = true;
                LIST_INSERT_HEAD(&p->cluster->dirty, p, dirty_link);
        }
        return 0;
}

static int peer_send_hello(PeerConn *p) {
        Cluster *c = p->cluster;
        size_t off = peer_frame_begin(p);
        msgpack_pack_array(&p->pk, 6);
        msgpack_pack_uint32(&p->pk, PEER_MSG_HELLO);
        msgpack_pack_uint64(&p->pk, 0);
        msgpack_pack_uint32(&p->pk, PEER_PROTO_VERSION);
        pack_cstr(&p->pk, membership_self(&c->ms)->id);
        pack_cstr(&p->pk, c->listen_address ?: "");
        msgpack_pack_bin(&p->pk, PEER_NONCE_SIZE);
        msgpack_pack_bin_body(&p->pk, p->nonce, PEER_NONCE_SIZE);
        return peer_frame_end(p, off);
}

/* HMAC(key, label | nonce_a | nonce_b | id) */
static int peer_mac(const uint8_t *key, size_t key_len, const char *label, const uint8_t *nonce_a,
                    const uint8_t *nonce_b, const char *id, size_t id_len, uint8_t ret[PEER_MAC_SIZE]) {
        size_t ll = strlen(label);
        size_t n = ll + 2 * PEER_NONCE_SIZE + id_len;
        _cleanup_free_ uint8_t *msg = malloc(n);
        unsigned md_len = 0;
        if (!msg)
                return -ENOMEM;
        memcpy(msg, label, ll);
        memcpy(msg + ll, nonce_a, PEER_NONCE_SIZE);
        memcpy(msg + ll + PEER_NONCE_SIZE, nonce_b, PEER_NONCE_SIZE);
        memcpy(msg + ll + 2 * PEER_NONCE_SIZE, id, id_len);
        if (!HMAC(EVP_sha256(), key, (int) key_len, msg, n, ret, &md_len) || md_len != PEER_MAC_SIZE)
                return -EIO;
        return 0;
}

/* The key AUTH proves: with TLS, the session's own (peer_tls_binding()): the handshake that the
 * secret or the certificates authenticated is the one HELLO and AUTH travel in, and a node id is
 * bound to it. Without TLS, a secret of the keyring, as before TLS: the primary to prove, any to
 * check (index i). */
static int peer_auth_key(PeerConn *p, size_t i, uint8_t binding[static PEER_BINDING_SIZE],
                         const uint8_t **ret_key, size_t *ret_len, const PeerKey **ret_secret) {
        if (p->tls) {
                if (i > 0)
                        return -ENOENT;
                int r = peer_tls_binding(p->tls, binding);
                if (r < 0)
                        return r;
                *ret_key = binding;
                *ret_len = PEER_BINDING_SIZE;
                *ret_secret = NULL;
                return 0;
        }
        const PeerKey *k = peer_tls_context_key(p->cluster->credentials, i);
        if (!k)
                return -ENOENT;
        *ret_key = k->secret;
        *ret_len = k->secret_len;
        *ret_secret = k;
        return 0;
}

static int peer_send_auth(PeerConn *p) {
        Cluster *c = p->cluster;
        const char *self = membership_self(&c->ms)->id;
        uint8_t mac[PEER_MAC_SIZE], binding[PEER_BINDING_SIZE];
        const uint8_t *key;
        const PeerKey *secret;
        size_t key_len;
        int r = peer_auth_key(p, 0, binding, &key, &key_len, &secret);
        if (r >= 0)
                r = peer_mac(key, key_len, p->outbound ? LABEL_DIAL : LABEL_ACCEPT, p->peer_nonce, p->nonce, self,
                             strlen(self), mac);
        OPENSSL_cleanse(binding, sizeof(binding));
        if (r < 0)
                return r;
        size_t off = peer_frame_begin(p);
        msgpack_pack_array(&p->pk, 3);
        msgpack_pack_uint32(&p->pk, PEER_MSG_AUTH);
        msgpack_pack_uint64(&p->pk, 0);
        msgpack_pack_bin(&p->pk, PEER_MAC_SIZE);
        msgpack_pack_bin_body(&p->pk, mac, PEER_MAC_SIZE);
        return peer_frame_end(p, off);
}

/* PING, ACK: [T, seq, from, members]; PING_REQ: [T, seq, from, target, members]. */
static int peer_send_membership(PeerConn *p, uint32_t type, uint64_t seq, const char *target) {
        Cluster *c = p->cluster;
        size_t off = peer_frame_begin(p);
        msgpack_pack_array(&p->pk, target ? 5 : 4);
        msgpack_pack_uint32(&p->pk, type);
        msgpack_pack_uint64(&p->pk, seq);
        pack_cstr(&p->pk, membership_self(&c->ms)->id);
        if (target)
                pack_cstr(&p->pk, target);
        if (membership_pack(&c->ms, &p->pk) < 0) {
                p->out.end = off;
                return -ENOMEM;
        }
        return peer_frame_end(p, off);
}

static PeerConn *cluster_find_conn(Cluster *c, const char *id) {
        PeerConn *p, *best = NULL;
        LIST_FOREACH(p, &c->conns, link)
                if (p->authenticated && p->peer_id && streq(p->peer_id, id) && (!best || p->outbound))
                        best = p;
        return best;
}

int cluster_frame_begin(Cluster *c, const char *node, PeerFrame *ret) {
        PeerConn *p = c ? cluster_find_conn(c, node) : NULL;
        if (!p || p->dead)
                return -ENOTCONN;
        *ret = (PeerFrame) { .conn = p, .pk = &p->pk, .out = &p->out, .offset = peer_frame_begin(p) };
        return 0;
}

int cluster_frame_end(PeerFrame *f, int r) {
        if (r < 0) {
                f->out->end = f->offset;
                return r;
        }
        return peer_data_frame_end(f->conn, f->offset);
}

void cluster_flush(Cluster *c) {
        PeerConn *p;
        if (!c)
                return;
        while ((p = LIST_FIRST(&c->dirty))) {
                LIST_REMOVE(p, dirty_link);
                p->dirty = false;
                int r = peer_conn_flush(p);
                if (r < 0)
                        peer_conn_drop(p, r, "write failed");
        }
}

const char *cluster_self_id(Cluster *c) {
        return membership_self(&c->ms)->id;
}

static int cluster_send(Cluster *c, const char *id, uint32_t type, uint64_t seq, const char *target) {
        PeerConn *p = cluster_find_conn(c, id);
        if (!p)
                return -ENOTCONN;
        return peer_send_membership(p, type, seq, target);
}

static void held_frames_free(Cluster *c) {
        HeldFrame *h;
        while ((h = LIST_FIRST(&c->held))) {
                LIST_REMOVE(h, link);
                free(h->peer_id);
                free(h->payload);
                free(h);
        }
        c->held_tail = NULL;
        c->held_bytes = 0;
}

static int cluster_hold_frame(Cluster *c, const char *peer_id, const char *payload, size_t len) {
        if (c->held_bytes + len > PEER_HELD_MAX)
                return -ENOBUFS;
        HeldFrame *h = calloc(1, sizeof(*h));
        if (!h || !(h->peer_id = strdup(peer_id)) || !(h->payload = malloc(len ?: 1))) {
                if (h)
                        free(h->peer_id);
                free(h);
                return -ENOMEM;
        }
        memcpy(h->payload, payload, len);
        h->len = len;
        if (c->held_tail)
                LIST_INSERT_AFTER(c->held_tail, h, link);
        else
                LIST_INSERT_HEAD(&c->held, h, link);
        c->held_tail = h;
        c->held_bytes += len;
        return 0;
}

static void stall_pending_free(Cluster *c) {
        for (size_t i = 0; i < c->n_stall_pending; i++)
                free(c->stall_pending[i]);
        free(c->stall_pending);
        c->stall_pending = NULL;
        c->n_stall_pending = 0;
}

/* Every member we knew has answered since the freeze (and told us of the actors that moved away
 * meanwhile, which are stopped here): what was held runs now, in its order. */
static void cluster_unstall(Cluster *c) {
        if (!c->stalled)
                return;
        c->stalled = false;
        stall_pending_free(c);
        size_t n = 0;
        HeldFrame *h;
        while ((h = LIST_FIRST(&c->held))) {
                LIST_REMOVE(h, link);
                if (!LIST_FIRST(&c->held))
                        c->held_tail = NULL;
                c->held_bytes -= h->len;
                Frame f;
                frame_init(&f);
                if (frame_parse(&f, h->payload, h->len) >= 0)
                        (void) c->ops->handle_frame(c->userdata, h->peer_id, &f);
                frame_done(&f);
                free(h->peer_id);
                free(h->payload);
                free(h);
                n++;
        }
        if (n > 0)
                log_info("Running %zu peer requests held while the cluster's view of this node was unknown.", n);
}

static void cluster_stall_answered(Cluster *c, const char *from) {
        size_t left = 0;
        for (size_t i = 0; i < c->n_stall_pending; i++) {
                char *id = c->stall_pending[i];
                if (!id)
                        continue;
                Member *mb = membership_find(&c->ms, id, strlen(id));
                if (streq(id, from) || !mb || mb->state == MEMBER_DEAD)
                        { free(id); c->stall_pending[i] = NULL; }
                else
                        left++;
        }
        if (left == 0)
                cluster_unstall(c);
}

/* Notes that the loop runs; a gap longer than the suspicion timeout was a freeze. */
static void cluster_note_active(Cluster *c) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        if (c->last_active > 0 && now - c->last_active > c->ms.config.suspect_timeout && !c->stalled) {
                c->stalled = true;
                c->stall_seq = c->ms.next_seq;
                stall_pending_free(c);
                c->stall_pending = calloc(c->ms.n_members, sizeof(char *));
                for (size_t i = 1; c->stall_pending && i < c->ms.n_members; i++)
                        if (c->ms.members[i].state != MEMBER_DEAD)
                                c->stall_pending[c->n_stall_pending++] = strdup(c->ms.members[i].id);
                log_warning("This node did not run for %" PRIu64 " ms (longer than the suspicion timeout): "
                            "holding peer requests until the cluster confirms it is still a member.",
                            (now - c->last_active) / 1000);
        }
        c->last_active = now;
}

/* Tells a member back from the dead that it was declared dead, and where the actors that moved
 * meanwhile live now: it stops its copies of those. */
static int cluster_send_dead_notice(Cluster *c, const char *id, uint64_t incarnation) {
        PeerConn *p = cluster_find_conn(c, id);
        if (!p)
                return -ENOTCONN;
        size_t off = peer_frame_begin(p);
        msgpack_pack_array(&p->pk, 5);
        msgpack_pack_uint32(&p->pk, PEER_MSG_DEAD_NOTICE);
        msgpack_pack_uint64(&p->pk, 0);
        pack_cstr(&p->pk, membership_self(&c->ms)->id);
        msgpack_pack_uint64(&p->pk, incarnation);
        if (c->ops->pack_moved(c->userdata, &p->pk, id) < 0) {
                p->out.end = off;
                return -ENOMEM;
        }
        return peer_data_frame_end(p, off);
}

static void cluster_changed(Cluster *c) {
        if (!c->ms.changed)
                return;
        c->ms.changed = false;
        /* A new member is dialled at once rather than at the next dial tick, so that its first
         * probe finds a connection. */
        (void) sd_event_source_set_time_relative(c->dial_source, 0);
        if (c->ms.declared_dead)
                log_notice("Peers had declared this node dead: it refuted with incarnation %" PRIu64 ".",
                           membership_self(&c->ms)->incarnation);
        c->ms.declared_dead = false;
        c->ops->members_changed(c->userdata);
}

static void cluster_apply_members(Cluster *c, PeerConn *p, const msgpack_object *members) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        for (uint32_t k = 0; k < members->via.array.size; k++) {
                MemberUpdate u;
                if (member_update_parse(&members->via.array.ptr[k], &u) < 0)
                        continue; /* checked by peer_message_parse() */
                int r = membership_apply(&c->ms, &u, p->peer_id, now);
                if (r == -EBUSY)
                        log_debug("Member table full, ignoring member %.*s.", (int) u.id_len, u.id);
        }
}

/* HELLO: the peer says who it is and sends its nonce; we answer with our AUTH. */
static int peer_handle_hello(PeerConn *p, const PeerMessage *pm) {
        Cluster *c = p->cluster;
        const char *self = membership_self(&c->ms)->id;
        if (pm->version != PEER_PROTO_VERSION)
                return -EPROTO;
        if (strlen(self) == pm->from_len && memcmp(self, pm->from, pm->from_len) == 0)
                return -ELOOP; /* ourselves */
        if (memcmp(pm->blob, p->nonce, PEER_NONCE_SIZE) == 0)
                return -EBADMSG; /* a reflected nonce */
        p->peer_id = strndup(pm->from, pm->from_len);
        if (!p->peer_id)
                return -ENOMEM;
        memcpy(p->peer_nonce, pm->blob, PEER_NONCE_SIZE);
        p->got_hello = true;
        return peer_send_auth(p);
}

/* AUTH: the peer proves it is the other end of this TLS session (or, without TLS, that it knows a
 * secret of the keyring) for the node id it said; from here it is a peer. */
static int peer_handle_auth(PeerConn *p, const PeerMessage *pm) {
        Cluster *c = p->cluster;
        uint8_t expected[PEER_MAC_SIZE], binding[PEER_BINDING_SIZE];
        bool proved = false;
        int r = 0;
        for (size_t i = 0; !proved && r >= 0; i++) {
                const uint8_t *key;
                const PeerKey *secret;
                size_t key_len;
                r = peer_auth_key(p, i, binding, &key, &key_len, &secret);
                if (r >= 0)
                        r = peer_mac(key, key_len, p->outbound ? LABEL_ACCEPT : LABEL_DIAL, p->nonce, p->peer_nonce,
                                     p->peer_id, strlen(p->peer_id), expected);
                if (r >= 0 && CRYPTO_memcmp(expected, pm->blob, PEER_MAC_SIZE) == 0) {
                        proved = true;
                        if (secret) {
                                p->has_key = true;
                                memcpy(p->key_id, secret->id, PEER_KEY_ID_SIZE);
                        }
                }
        }
        OPENSSL_cleanse(binding, sizeof(binding));
        if (!proved)
                return r == -ENOENT ? -EACCES : r;
        if (!p->outbound) {
                /* From the strangers' pool to the peers' places. */
                if (c->n_conns >= PEER_MAX)
                        return -EBUSY;
                LIST_REMOVE(p, stranger_link);
                c->n_strangers--;
                c->n_conns++;
        }
        p->authenticated = true;
        p->timeout = sd_event_source_disable_unref(p->timeout);
        log_info("Peer %s authenticated (%s, %s%s).", p->peer_id, p->outbound ? "outbound" : "inbound",
                 !p->tls                                              ? "without TLS" :
                 peer_tls_context_uses_certificates(c->credentials) ? "TLS, certificate " :
                                                                        "TLS, key ",
                 p->tls ? peer_tls_describe(p->tls) : "");
        /* Join: tell it what we know at once (seq 0: no probe waits for the ack). */
        r = peer_send_membership(p, PEER_MSG_PING, 0, NULL);
        /* Whatever went to it on a connection that broke goes again. */
        if (r >= 0 && !p->dead)
                c->ops->peer_connected(c->userdata, p->peer_id);
        return r;
}

/* Before authentication only the handshake is taken, in its order: HELLO, then AUTH. */
static int peer_handle_handshake(PeerConn *p, const PeerMessage *pm) {
        if (pm->type == PEER_MSG_HELLO && !p->got_hello)
                return peer_handle_hello(p, pm);
        if (pm->type == PEER_MSG_AUTH && p->got_hello)
                return peer_handle_auth(p, pm);
        return -EPERM;
}

/* A handshake message from a peer already authenticated. */
static int peer_handle_handshake_again(PeerConn *p, const PeerMessage *pm) {
        return -EPROTO;
}

static int peer_handle_dead_notice(PeerConn *p, const PeerMessage *pm) {
        Cluster *c = p->cluster;
        log_warning("Peer %s says this node was declared dead (incarnation %" PRIu64 "); %u of the "
                    "actors it knows moved.", p->peer_id, pm->incarnation, pm->moved->via.array.size);
        c->ops->dead_notice(c->userdata, pm->moved);
        return 0;
}

static int peer_handle_ping(PeerConn *p, const PeerMessage *pm, uint64_t now) {
        (void) peer_send_membership(p, PEER_MSG_ACK, pm->seq, NULL);
        return 0;
}

static int peer_handle_ack(PeerConn *p, const PeerMessage *pm, uint64_t now) {
        Cluster *c = p->cluster;
        if (pm->seq & PEER_RELAY_SEQ_BIT) {
                for (size_t i = 0; i < PEER_RELAYS_MAX; i++) {
                        Relay *rl = &c->relays[i];
                        if (rl->origin && rl->seq == pm->seq) {
                                (void) cluster_send(c, rl->origin, PEER_MSG_ACK, rl->origin_seq, NULL);
                                { free(rl->origin); rl->origin = NULL; }
                        }
                }
        } else {
                _cleanup_free_ char *from = strndup(pm->from, pm->from_len);
                if (from)
                        membership_ack(&c->ms, pm->seq, from, now);
                /* Answers to probes sent since the freeze, from every member we knew alive:
                 * their tables are the cluster's view now (a death would fence us). */
                if (c->stalled && pm->seq >= c->stall_seq && from)
                        cluster_stall_answered(c, from);
        }
        return 0;
}

static int peer_handle_ping_req(PeerConn *p, const PeerMessage *pm, uint64_t now) {
        Cluster *c = p->cluster;
        _cleanup_free_ char *target = strndup(pm->target, pm->target_len);
        if (!target)
                return -ENOMEM;
        Relay *rl = &c->relays[c->relay_next++ % PEER_RELAYS_MAX];
        free(rl->origin);
        *rl = (Relay) { .seq = PEER_RELAY_SEQ_BIT | ++c->relay_seq, .origin_seq = pm->seq,
                        .origin = strdup(p->peer_id) };
        if (cluster_send(c, target, PEER_MSG_PING, rl->seq, NULL) < 0)
                { free(rl->origin); rl->origin = NULL; }
        return 0;
}

/* PING, ACK, PING_REQ: each carries the sender's member entries, applied before the message itself. */
static int peer_handle_swim(PeerConn *p, const PeerMessage *pm,
                            int (*handle)(PeerConn *p, const PeerMessage *pm, uint64_t now)) {
        Cluster *c = p->cluster;
        cluster_apply_members(c, p, pm->members);
        for (size_t i = 0; i < c->ms.n_resurrected; i++)
                (void) cluster_send_dead_notice(c, c->ms.resurrected[i], c->ms.resurrected_incarnation[i]);
        membership_resurrected_clear(&c->ms);
        int r = handle(p, pm, now_usec(CLOCK_MONOTONIC));
        if (r < 0)
                return r;
        cluster_changed(c);
        return 0;
}

static int peer_handle_swim_ping(PeerConn *p, const PeerMessage *pm) {
        return peer_handle_swim(p, pm, peer_handle_ping);
}

static int peer_handle_swim_ack(PeerConn *p, const PeerMessage *pm) {
        return peer_handle_swim(p, pm, peer_handle_ack);
}

static int peer_handle_swim_ping_req(PeerConn *p, const PeerMessage *pm) {
        return peer_handle_swim(p, pm, peer_handle_ping_req);
}

/* The messages of an authenticated peer, by type from PEER_MSG_HELLO (every type peer_message_parse()
 * takes). */
static int (*const peer_handlers[])(PeerConn *p, const PeerMessage *pm) = {
        [PEER_MSG_HELLO - PEER_MSG_HELLO] = peer_handle_handshake_again,
        [PEER_MSG_AUTH - PEER_MSG_HELLO] = peer_handle_handshake_again,
        [PEER_MSG_PING - PEER_MSG_HELLO] = peer_handle_swim_ping,
        [PEER_MSG_ACK - PEER_MSG_HELLO] = peer_handle_swim_ack,
        [PEER_MSG_PING_REQ - PEER_MSG_HELLO] = peer_handle_swim_ping_req,
        [PEER_MSG_DEAD_NOTICE - PEER_MSG_HELLO] = peer_handle_dead_notice,
};

static int peer_handle_frame(PeerConn *p, const Frame *f) {
        Cluster *c = p->cluster;
        PeerMessage pm;
        int r;

        if (f->type >= PEER_MSG_DATA_FIRST && f->type < _PEER_MSG_DATA_END) {
                if (!p->authenticated)
                        return -EPERM;
                return c->ops->handle_frame(c->userdata, p->peer_id, f);
        }
        r = peer_message_parse(f, &pm);
        if (r < 0)
                return r;
        if (!p->authenticated)
                return peer_handle_handshake(p, &pm);
        if (pm.type - PEER_MSG_HELLO >= ELEMENTSOF(peer_handlers) || !peer_handlers[pm.type - PEER_MSG_HELLO])
                return -EPROTO;
        if (pm.type != PEER_MSG_HELLO && pm.type != PEER_MSG_AUTH &&
            (strlen(p->peer_id) != pm.from_len || memcmp(p->peer_id, pm.from, pm.from_len) != 0))
                return -EPROTO; /* a peer speaks only for itself */
        return peer_handlers[pm.type - PEER_MSG_HELLO](p, &pm);
}

/* What a connection may send before it has authenticated: the handshake (with TLS, its own first,
 * then HELLO and AUTH inside it). */
static size_t peer_conn_input_max_unauth(PeerConn *p) {
        return p->tls ? peer_tls_context_handshake_max(p->cluster->credentials) : PEER_INPUT_MAX_UNAUTH;
}

static int peer_conn_read(PeerConn *p) {
        _cleanup_(peer_conn_unrefp) PeerConn *ref = peer_conn_ref(p);
        Cluster *c = p->cluster;
        size_t input_max = peer_conn_input_max_unauth(p);
        /* Before authentication, no more than the handshake needs is read (and held): what comes
         * after AUTH in the same read stays in the socket until the peer is known. */
        size_t want = p->authenticated ? PEER_READ_CHUNK : input_max - p->in_unauth;
        Buffer *wire = p->tls ? peer_tls_input(p->tls) : &p->in;
        int r = buffer_reserve_read(wire, want);
        if (r < 0)
                return r;
        ssize_t n = recv(p->fd, wire->data + wire->end, want, MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        wire->end += (size_t) n;
        if (!p->authenticated)
                p->in_unauth += (size_t) n;
        if (p->tls) {
                /* The TLS handshake, then the frames in its records; none before it is done. */
                bool was_established = peer_tls_is_established(p->tls);
                r = peer_tls_receive(p->tls, &p->in);
                if (r < 0)
                        return r;
                if (!was_established && peer_tls_is_established(p->tls))
                        log_debug("Peer connection %s%s: TLS established, %s %s.", p->outbound ? "to " : "from ",
                                  p->dial_address ?: inet_ntoa(p->address),
                                  peer_tls_context_uses_certificates(c->credentials) ? "certificate" : "key",
                                  peer_tls_describe(p->tls));
        }

        while (!p->dead && buffer_size(&p->in) >= PROTO_HEADER_SIZE) {
                const uint8_t *h = (const uint8_t *) p->in.data + p->in.start;
                uint32_t len = (uint32_t) h[0] | (uint32_t) h[1] << 8 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 24;
                if (len > (p->authenticated ? PEER_FRAME_MAX : PEER_FRAME_MAX_UNAUTH))
                        return -EMSGSIZE;
                const char *payload;
                size_t plen;
                r = frame_peek(&p->in, &payload, &plen);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = frame_parse(&c->frame, payload, plen);
                if (r >= 0 && c->stalled && p->authenticated && c->frame.type >= PEER_MSG_DATA_FIRST &&
                    c->frame.type < _PEER_MSG_DATA_END)
                        r = cluster_hold_frame(c, p->peer_id, payload, plen);
                else if (r >= 0)
                        r = peer_handle_frame(p, &c->frame);
                frame_done(&c->frame);
                frame_init(&c->frame);
                if (r < 0)
                        return r;
                buffer_consume(&p->in, PROTO_HEADER_SIZE + plen);
        }
        if (!p->dead && !p->authenticated && p->in_unauth >= input_max)
                return -ENOBUFS;
        return 0;
}

static int on_peer_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        PeerConn *p = userdata;
        _cleanup_(peer_conn_unrefp) PeerConn *ref = peer_conn_ref(p);
        int r;

        cluster_note_active(p->cluster);
        if (p->connecting && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t l = sizeof(err);
                if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                        err = errno;
                if (err != 0) {
                        log_debug("Connecting to %s failed: %s", p->dial_address, strerror(err));
                        peer_conn_close(p);
                        return 0;
                }
                p->connecting = false;
        }
        if (revents & EPOLLIN) {
                r = peer_conn_read(p);
                if (r < 0) {
                        _cleanup_free_ char *why = NULL;
                        const char *tls_error = p->tls ? peer_tls_error(p->tls) : NULL;
                        if (tls_error) {
                                /* The alert that says why, if TLS left one, goes before the close. */
                                (void) peer_conn_flush(p);
                                const char *what = r == -EKEYREJECTED ? "authentication failed: TLS handshake" :
                                                                        "TLS";
                                if (asprintf(&why, "%s: %s", what, tls_error) < 0)
                                        why = NULL;
                        }
                        peer_conn_drop(p, r == -ECONNRESET ? 0 : r,
                                       why ?: r == -EMSGSIZE ? "oversized frame" :
                                       r == -ENOBUFS ? "too much input before authenticating" :
                                       r == -EACCES ? "authentication failed" :
                                       r == -EBUSY ? "too many peers" :
                                       r == -ECONNRESET ? "closed" : "bad frame or protocol error");
                        return 0;
                }
        } else if (revents & (EPOLLERR | EPOLLHUP)) {
                peer_conn_drop(p, 0, "hung up");
                return 0;
        }
        if (!p->dead) {
                r = peer_conn_flush(p);
                if (r < 0)
                        peer_conn_drop(p, r, "write failed");
        }
        return 0;
}

static int on_peer_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        PeerConn *p = userdata;
        peer_conn_drop(p, -ETIMEDOUT, "did not authenticate in time");
        return 0;
}

/* Takes over fd: one we dialled (dial_address), or one accepted from address. -EBUSY when its cap
 * (PEER_MAX, or PEER_STRANGERS_MAX for an accepted one) is reached. */
static int peer_conn_new(Cluster *c, int fd, bool connecting, const char *dial_address, const struct in_addr *address) {
        bool outbound = !address;
        if (outbound ? c->n_conns >= PEER_MAX : c->n_strangers >= PEER_STRANGERS_MAX) {
                safe_close(fd);
                return -EBUSY;
        }
        PeerConn *p = calloc(1, sizeof(*p));
        if (!p) {
                safe_close(fd);
                return -ENOMEM;
        }
        *p = (PeerConn) { .cluster = c, .n_ref = 1, .fd = fd, .outbound = outbound, .connecting = connecting,
                          .since = now_usec(CLOCK_MONOTONIC), .address = address ? *address : (struct in_addr) {} };
        msgpack_packer_init(&p->pk, &p->out, buffer_msgpack_write);
        LIST_INSERT_HEAD(&c->conns, p, link);
        if (outbound)
                c->n_conns++;
        else {
                LIST_INSERT_HEAD(&c->strangers, p, stranger_link);
                c->n_strangers++;
        }
        /* A failed first send closes the connection: keep it until we are done with it here. */
        _cleanup_(peer_conn_unrefp) PeerConn *ref = peer_conn_ref(p);
        int r = -ENOMEM;
        if (dial_address && !(p->dial_address = strdup(dial_address)))
                goto fail;
        r = getrandom(p->nonce, sizeof(p->nonce), 0) == (ssize_t) sizeof(p->nonce) ? 0 : -EIO;
        if (r < 0)
                goto fail;
        /* The dialling side's TLS opens with its ClientHello; HELLO waits in out for the handshake. */
        if (peer_tls_context_uses_tls(c->credentials)) {
                r = peer_tls_new(c->credentials, outbound, &p->tls);
                if (r < 0)
                        goto fail;
        }
        r = sd_event_add_io(c->event, &p->io, fd, EPOLLIN | EPOLLOUT, on_peer_io, p);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(c->event, &p->timeout, CLOCK_MONOTONIC,
                                       outbound ? PEER_DIAL_TIMEOUT_USEC : PEER_HANDSHAKE_TIMEOUT_USEC, 0,
                                       on_peer_timeout, p);
        if (r < 0)
                goto fail;
        r = peer_send_hello(p);
        if (r < 0)
                goto fail;
        return peer_conn_update_events(p);
fail:
        peer_conn_close(p);
        return r;
}

/*
 * The strangers' pool is full and one more has connected: a stranger goes to make room, so that
 * accepting never stops (a newcomer refused would be a member kept out as long as a flood keeps the
 * pool full). The one that goes is the oldest of the source address that holds the most places: a
 * flood from a few addresses evicts only its own connections, however fast it reconnects, while a
 * member's, from an address of its own, stays for its handshake (one round trip). When every
 * address holds one place, the oldest goes: a newcomer then has until PEER_STRANGERS_MAX more have
 * come.
 */
static void cluster_evict_stranger(Cluster *c) {
        PeerConn *p, *q, *victim = NULL;
        unsigned victim_count = 0;

        LIST_FOREACH(p, &c->strangers, stranger_link) {
                unsigned count = 0;
                LIST_FOREACH(q, &c->strangers, stranger_link)
                        count += q->address.s_addr == p->address.s_addr;
                if (!victim || count > victim_count || (count == victim_count && p->since < victim->since)) {
                        victim = p;
                        victim_count = count;
                }
        }
        if (!victim)
                return;

        unsigned suppressed;
        if (log_ratelimit_test(&c->evict_log, now_usec(CLOCK_MONOTONIC), PEER_LOG_INTERVAL_USEC, &suppressed)) {
                char address[INET_ADDRSTRLEN] = "?";
                (void) inet_ntop(AF_INET, &victim->address, address, sizeof(address));
                log_warning("Too many unauthenticated peer connections (%u): closing the oldest from %s, which holds %u "
                            "(%u more closed since the last message).",
                            PEER_STRANGERS_MAX, address, victim_count, suppressed);
        }
        peer_conn_close(victim);
}

static int on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_ON);
        return 0;
}

/* accept() failed for want of file descriptors or memory: the connection stays queued and the
 * listener readable, so accepting again at once would spin. The listener rests a moment instead
 * (connections wait in the backlog meanwhile). */
static void cluster_accept_pause(Cluster *c, int error) {
        unsigned suppressed;
        int r;

        if (log_ratelimit_test(&c->accept_log, now_usec(CLOCK_MONOTONIC), PEER_LOG_INTERVAL_USEC, &suppressed))
                log_warning_errno(error, "Failed to accept a peer connection: %m (%u more failures since the last "
                                  "message); trying again in %" PRIu64 " ms.",
                                  suppressed, PEER_ACCEPT_RETRY_USEC / 1000);
        if (c->accept_retry) {
                r = sd_event_source_set_time_relative(c->accept_retry, PEER_ACCEPT_RETRY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->accept_retry, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(c->event, &c->accept_retry, CLOCK_MONOTONIC, PEER_ACCEPT_RETRY_USEC, 0,
                                               on_accept_retry, c);
        /* Without the timer, listening on is better than never again. */
        if (r >= 0)
                (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_OFF);
}

/* The connection went away before it was taken, or a network error belongs to it alone: take the
 * next. */
static bool accept_error_is_connection(int error) {
        switch (error) {
        case ECONNABORTED: case EPROTO: case EINTR: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
        case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
                return true;
        default:
                return false;
        }
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Cluster *c = userdata;
        /* A batch at a time: the listener stays readable for the rest, and the connections already
         * there get their turn in between. */
        for (unsigned i = 0; i < PEER_ACCEPT_BATCH; i++) {
                struct sockaddr_in sa = {};
                socklen_t salen = sizeof(sa);
                int cfd = accept4(fd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN)
                                break;
                        if (accept_error_is_connection(errno))
                                continue;
                        cluster_accept_pause(c, -errno);
                        break;
                }
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
                if (c->n_strangers >= PEER_STRANGERS_MAX)
                        cluster_evict_stranger(c);
                int r = peer_conn_new(c, cfd, false, NULL, &sa.sin_addr);
                if (r < 0)
                        log_debug("Refusing a peer connection: %s", strerror(-r));
        }
        return 0;
}

static int cluster_dial(Cluster *c, const char *address) {
        struct sockaddr_in sa;
        int r = parse_address(address, &sa);
        if (r < 0)
                return r;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
        /* From the address we listen on: peers (and firewalls) see one address per node. */
        struct sockaddr_in local;
        if (c->listen_address && parse_address(c->listen_address, &local) >= 0) {
                local.sin_port = 0;
                if (bind(fd, (struct sockaddr *) &local, sizeof(local)) < 0)
                        log_debug("Cannot dial from %s: %m", c->listen_address);
        }
        bool connecting = false;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno != EINPROGRESS) {
                        r = -errno;
                        safe_close(fd);
                        return r;
                }
                connecting = true;
        }
        return peer_conn_new(c, fd, connecting, address, NULL);
}

static bool cluster_has_conn(Cluster *c, const char *id, const char *address) {
        PeerConn *p;
        /* Not a stranger's word: one that says it is a member must not keep us from dialling it. */
        LIST_FOREACH(p, &c->conns, link)
                if ((id && p->peer_id && p->authenticated && streq(p->peer_id, id)) ||
                    (address && p->dial_address && streq(p->dial_address, address)))
                        return true;
        return false;
}

static int on_dial(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        /* Seeds until we know their ids, and every member we have no connection with. */
        for (char **a = c->seeds; a && *a; a++)
                if (!cluster_has_conn(c, NULL, *a) && !(c->listen_address && streq(*a, c->listen_address))) {
                        bool known = false;
                        for (size_t i = 1; i < c->ms.n_members; i++)
                                if (streq(c->ms.members[i].address, *a) &&
                                    cluster_find_conn(c, c->ms.members[i].id))
                                        known = true;
                        if (!known)
                                (void) cluster_dial(c, *a);
                }
        for (size_t i = 1; i < c->ms.n_members; i++) {
                Member *mb = &c->ms.members[i];
                if (*mb->address && !cluster_has_conn(c, mb->id, mb->address))
                        (void) cluster_dial(c, mb->address);
        }
        (void) sd_event_source_set_time_relative(s, PEER_DIAL_INTERVAL_USEC);
        return 0;
}

/* MemTotal and MemAvailable of /proc/meminfo, in bytes (read at most once a second). */
static void read_memory(Cluster *c, uint64_t *ret_total, uint64_t *ret_available) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        if (c->memory_read_usec == 0 || now - c->memory_read_usec >= 1000000) {
                _cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
                char line[128];
                unsigned long long kb;
                c->memory_read_usec = now;
                while (f && fgets(line, sizeof(line), f)) {
                        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
                                c->memory_total = (uint64_t) kb * 1024;
                        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
                                c->memory_available = (uint64_t) kb * 1024;
                }
                if (c->memory_available > c->memory_total)
                        c->memory_available = c->memory_total;
        }
        *ret_total = c->memory_total;
        *ret_available = c->memory_available;
}

static void cluster_update_self(Cluster *c) {
        MemberResources res = {};
        c->ops->get_resources(c->userdata, &res);
        read_memory(c, &res.memory_total, &res.memory_free);
        if (res.cpus_free < 0)
                res.cpus_free = 0;
        membership_set_self_resources(&c->ms, &res);
}

void cluster_resources_changed(Cluster *c) {
        if (c)
                cluster_update_self(c);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;
        MembershipAction actions[MEMBERSHIP_ACTIONS_MAX];
        uint64_t now = now_usec(CLOCK_MONOTONIC), next;

        cluster_note_active(c);
        cluster_update_self(c);
        size_t n = membership_tick(&c->ms, now, actions, &next);
        for (size_t i = 0; i < n; i++) {
                if (actions[i].kind == MEMBERSHIP_SEND_PING)
                        (void) cluster_send(c, actions[i].target, PEER_MSG_PING, actions[i].seq, NULL);
                else
                        (void) cluster_send(c, actions[i].via, PEER_MSG_PING_REQ, actions[i].seq, actions[i].target);
        }
        cluster_changed(c);
        (void) sd_event_source_set_time_relative(s, next > now ? next - now : 1000);
        return 0;
}

/* Connections that may not go on with the credentials read last are closed: their peers are
 * dialled again (at once), with the new ones. */
static bool peer_conn_trusted(PeerConn *p) {
        if (p->tls)
                return peer_tls_trusted(p->tls);
        return !p->has_key || peer_tls_context_find_key(p->cluster->credentials, p->key_id);
}

int cluster_reload_secrets(Cluster *c) {
        _cleanup_free_ char *reason = NULL;
        bool certificates = peer_tls_context_uses_certificates(c->credentials);
        unsigned closed = 0;
        PeerConn *p;
        int r;

        r = peer_tls_context_reload(c->credentials, &reason);
        if (r < 0)
                return log_error_errno(r, "Failed to reload the cluster's credentials, keeping those read "
                                       "before (%s): %s",
                                       peer_tls_context_describe(c->credentials), reason ?: strerror(-r));
        for (;;) {
                PeerConn *untrusted = NULL;
                LIST_FOREACH(p, &c->conns, link)
                        if (!peer_conn_trusted(p)) {
                                untrusted = p;
                                break;
                        }
                if (!untrusted)
                        break;
                if (untrusted->authenticated)
                        log_info("Peer %s: closing its connection, %s; dialling it again.", untrusted->peer_id,
                                 certificates ? "whose certificate no longer verifies" :
                                                "whose key left the keyring");
                peer_conn_close(untrusted);
                closed++;
        }
        log_info("Reloaded the cluster's credentials: %s; %u connection%s closed.",
                 peer_tls_context_describe(c->credentials), closed, closed == 1 ? "" : "s");
        (void) sd_event_source_set_time_relative(c->dial_source, 0);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) cluster_reload_secrets(userdata);
        return 0;
}

/* KACTOR_PEER_PLAINTEXT=1: peers talk without TLS, as before it, to measure what it costs. */
static bool cluster_plaintext_requested(void) {
        const char *e = getenv("KACTOR_PEER_PLAINTEXT");
        return e && (streq(e, "1") || streq(e, "yes") || streq(e, "true"));
}

static void cluster_freep_(Cluster **c) {
        cluster_free(*c);
}

int cluster_new(const ClusterConfig *config, Cluster **ret) {
        int r;
        _cleanup_(cluster_freep_) Cluster *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->ops = config->ops;
        c->userdata = config->userdata;
        c->event = config->event;
        c->listen_fd = -1;
        LIST_INIT(&c->conns);
        LIST_INIT(&c->dirty);
        LIST_INIT(&c->strangers);
        LIST_INIT(&c->held);
        frame_init(&c->frame);

        PeerTlsConfig tc = { .secret_file = config->secret_file, .cert_file = config->cert_file,
                             .key_file = config->key_file, .ca_file = config->ca_file,
                             .plaintext = cluster_plaintext_requested() };
        _cleanup_free_ char *reason = NULL;
        r = peer_tls_context_new(&tc, &c->credentials, &reason);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the cluster's credentials: %s", reason ?: strerror(-r));
        if (tc.plaintext)
                log_warning("peer traffic is not encrypted (KACTOR_PEER_PLAINTEXT): for measurement only");
        uint64_t seed;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
                seed = now_usec(CLOCK_MONOTONIC);
        r = membership_init(&c->ms, config->node_id, config->listen, &config->membership, seed);
        if (r < 0)
                return log_error_errno(r, "Failed to set up membership: %m");
        c->ms.members[0].state_since = now_usec(CLOCK_MONOTONIC);
        cluster_update_self(c);

        size_t n = 0;
        for (char **a = config->join; a && *a; a++)
                n++;
        c->seeds = calloc(n + 1, sizeof(char *));
        if (!c->seeds)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct sockaddr_in sa;
                if (parse_address(config->join[i], &sa) < 0)
                        return log_error_errno(-EINVAL, "Invalid --join address %s (ADDR:PORT, IPv4).", config->join[i]);
                if (!(c->seeds[i] = strdup(config->join[i])))
                        return -ENOMEM;
        }

        if (config->listen) {
                struct sockaddr_in sa;
                if (parse_address(config->listen, &sa) < 0)
                        return log_error_errno(-EINVAL, "Invalid --listen address %s (ADDR:PORT, IPv4).", config->listen);
                c->listen_address = strdup(config->listen);
                if (!c->listen_address)
                        return -ENOMEM;
                c->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (c->listen_fd < 0)
                        return log_error_errno(-errno, "Failed to create the peer socket: %m");
                (void) setsockopt(c->listen_fd, SOL_SOCKET, SO_REUSEADDR, &(int) { 1 }, sizeof(int));
                /* A deep backlog: a connection that finds it full has its SYN dropped and retries
                 * only a second later, a member's as a flood's. */
                if (bind(c->listen_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
                    listen(c->listen_fd, SOMAXCONN) < 0)
                        return log_error_errno(-errno, "Failed to listen on %s: %m", config->listen);
                r = sd_event_add_io(c->event, &c->listen_source, c->listen_fd, EPOLLIN, on_accept, c);
                if (r < 0)
                        return r;
        }

        /* The protocol's timer fires to the millisecond: the default accuracy (250 ms) would add
         * up to a quarter of a second to every probe and every suspicion. */
        r = sd_event_add_time_relative(c->event, &c->tick_source, CLOCK_MONOTONIC, 0, PEER_TICK_ACCURACY_USEC, on_tick,
                                       c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->tick_source, SD_EVENT_ON);
        if (r >= 0)
                r = sd_event_add_time_relative(c->event, &c->dial_source, CLOCK_MONOTONIC, 0, 0, on_dial, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->dial_source, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to add the cluster timers: %m");

        /* SIGHUP (systemctl reload) re-reads the credentials. signalfd needs it blocked. */
        sigset_t hup;
        sigemptyset(&hup);
        sigaddset(&hup, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &hup, NULL) < 0)
                return log_error_errno(-errno, "Failed to block SIGHUP: %m");
        r = sd_event_add_signal(c->event, &c->sighup_source, SIGHUP, on_sighup, c);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGHUP: %m");

        log_info("Cluster: node %s listening on %s, %zu seed%s; peers authenticate with %s.", config->node_id,
                 c->listen_address ?: "(nothing)", n, n == 1 ? "" : "s", peer_tls_context_describe(c->credentials));
        *ret = TAKE_PTR(c);
        return 0;
}

Cluster *cluster_free(Cluster *c) {
        if (!c)
                return NULL;
        c->freeing = true;
        PeerConn *p;
        while ((p = LIST_FIRST(&c->conns)))
                peer_conn_close(p);
        sd_event_source_disable_unref(c->resend_source);
        for (size_t i = 0; i < c->n_resend; i++)
                free(c->resend[i]);
        free(c->resend);
        sd_event_source_disable_unref(c->listen_source);
        sd_event_source_disable_unref(c->accept_retry);
        sd_event_source_disable_unref(c->tick_source);
        sd_event_source_disable_unref(c->dial_source);
        sd_event_source_disable_unref(c->sighup_source);
        safe_close(c->listen_fd);
        for (size_t i = 0; i < PEER_RELAYS_MAX; i++)
                free(c->relays[i].origin);
        held_frames_free(c);
        stall_pending_free(c);
        membership_done(&c->ms);
        frame_done(&c->frame);
        peer_tls_context_free(c->credentials);
        free(c->listen_address);
        for (char **a = c->seeds; a && *a; a++)
                free(*a);
        free(c->seeds);
        free(c);
        return NULL;
}

Membership *cluster_membership(Cluster *c) {
        return c ? &c->ms : NULL;
}
