/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libFuzzer target that drives the peer layer of a real node manager (nodemgr/cluster/peer.c, remote.c,
 * membership.c, and what they reach in the core) as another node of the cluster would: each input
 * starts a clustered manager listening on 127.0.0.1, connects to it over TCP, completes the real
 * handshake (HELLO both ways, AUTH with HMAC-SHA256 over the known secret), sends its records
 * (fuzz-input.h) as peer messages, then disconnects and frees the manager. A fresh manager per
 * input keeps inputs independent (membership and replicas would otherwise carry over) and lets
 * LeakSanitizer see what one input leaves.
 *
 * Peers speak without TLS (KACTOR_PEER_PLAINTEXT=1), so that the fuzzer's bytes reach the frame
 * layer as they are, unless the setup byte says FUZZ_SETUP_TLS: then the connection is TLS 1.3
 * with the PSK of the secret (peer-tls.c, the dialling side), AUTH is bound to the session, frames
 * go inside records, and raw records go to the socket as they are (past the TLS layer's checks).
 *
 * The target runs in a network namespace of its own (made in LLVMFuzzerInitialize()): the members
 * that fuzzed gossip makes up are dialled there, where nothing but this manager listens.
 *
 * Checks besides sanitizers: the handshake succeeds (the manager's first membership message
 * arrives), and every frame the manager sends parses with its own parsers (peer_message_parse(),
 * remote_message_parse()).
 *
 * Built by tests/fuzz/run.sh with clang -fsanitize=fuzzer,address,undefined.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-input.h"
#include "fuzz-manager.h"
#include "macro.h"
#include "membership.h"
#include "peer-proto.h"
#include "peer-tls.h"
#include "proto.h"
#include "remote-proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Records that let real time pass, per input: each costs a few milliseconds. */
#define PAUSES_MAX 2
#define PAUSE_USEC 2000

static char *secret_file;
static char listen_address[32];
static bool verbose;
static PeerTlsContext *tls_context; /* the fuzzer's side, from the same secret */

typedef struct Peer {
        Manager *manager;
        int fd;
        Buffer in;
        Frame frame;
        bool got_hello, got_auth, got_ping;
        uint8_t manager_nonce[PEER_NONCE_SIZE];
        bool use_tls;
        PeerTls *tls;     /* with FUZZ_SETUP_TLS: in holds what it decrypted */
        bool tls_failed;  /* the manager broke the session (or the input did) */
        Buffer plain;     /* frames on their way into TLS */
} Peer;

/* Brings up lo in the new network namespace. */
static int loopback_up(void) {
        struct ifreq ifr = { .ifr_name = "lo" };
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP;
        return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        if (unshare(CLONE_NEWNET) < 0 || loopback_up() < 0) {
                fprintf(stderr, "fuzz-peer-session: cannot make a network namespace of its own (needs root): %s\n",
                        strerror(errno));
                exit(1);
        }
        const char *dir = fuzz_fixture_setup();
        verbose = getenv("FUZZ_VERBOSE") && streq(getenv("FUZZ_VERBOSE"), "1");
        if (asprintf(&secret_file, "%s/cluster-secret", dir) < 0)
                abort();
        FILE *f = fopen(secret_file, "we");
        if (!f || fputs(FUZZ_PEER_SECRET "\n", f) < 0 || fclose(f) != 0)
                abort();
        snprintf(listen_address, sizeof(listen_address), "127.0.0.1:%u", FUZZ_PEER_PORT);
        _cleanup_free_ char *reason = NULL;
        if (peer_tls_context_new(&(PeerTlsConfig) { .secret_file = secret_file }, &tls_context, &reason) < 0) {
                fprintf(stderr, "fuzz-peer-session: %s\n", reason ?: "cannot set TLS up");
                exit(1);
        }
        return 0;
}

/* Each frame the manager sends must parse with the manager's own parsers. */
static void peer_check_frame(Frame *f, void *userdata) {
        Peer *p = userdata;
        if (verbose)
                fprintf(stderr, "fuzz-peer-session: got message %" PRIu32 "\n", f->type);
        if (f->type >= PEER_MSG_DATA_FIRST) {
                RemoteMessage rm;
                CHECK(f->type < _PEER_MSG_DATA_END);
                CHECK(remote_message_parse(f, &rm) >= 0);
                remote_message_done(&rm);
                return;
        }
        PeerMessage pm;
        CHECK(peer_message_parse(f, &pm) >= 0);
        if (pm.type == PEER_MSG_HELLO && !p->got_hello) {
                memcpy(p->manager_nonce, pm.blob, PEER_NONCE_SIZE);
                p->got_hello = true;
        } else if (pm.type == PEER_MSG_AUTH)
                p->got_auth = true;
        else if (pm.type == PEER_MSG_PING)
                p->got_ping = true;
}

/* With TLS: the records that came, decrypted into in, and the frames in it checked. */
static void peer_read_tls(Peer *p) {
        for (;;) {
                Buffer *raw = peer_tls_input(p->tls);
                CHECK(buffer_reserve_read(raw, 65536) >= 0);
                ssize_t n = recv(p->fd, raw->data + raw->end, raw->cap - raw->end, MSG_DONTWAIT);
                if (n <= 0)
                        return;
                raw->end += (size_t) n;
                if (p->tls_failed)
                        continue;
                if (peer_tls_receive(p->tls, &p->in) < 0) {
                        /* Only raw records of the input break it. */
                        p->tls_failed = true;
                        continue;
                }
                for (;;) {
                        const char *payload;
                        size_t len;
                        int r = frame_peek(&p->in, &payload, &len);
                        CHECK(r >= 0);
                        if (r == 0)
                                break;
                        CHECK(len <= PEER_FRAME_MAX);
                        CHECK(frame_parse(&p->frame, payload, len) >= 0);
                        peer_check_frame(&p->frame, p);
                        buffer_consume(&p->in, PROTO_HEADER_SIZE + len);
                }
        }
}

static void peer_read(void *userdata) {
        Peer *p = userdata;
        if (p->fd < 0)
                return;
        if (p->tls)
                peer_read_tls(p);
        else
                fuzz_read_frames(p->fd, &p->in, &p->frame, PEER_FRAME_MAX, peer_check_frame, p);
}

static void peer_disconnect(Peer *p) {
        p->fd = safe_close(p->fd);
        buffer_free(&p->in);
        buffer_free(&p->plain);
        p->tls = peer_tls_free(p->tls);
        p->tls_failed = false;
        frame_done(&p->frame);
        frame_init(&p->frame);
        p->got_hello = p->got_auth = p->got_ping = false;
}

/* What TLS wrote, to the socket. */
static int peer_flush_tls(Peer *p) {
        Buffer *o = peer_tls_output(p->tls);
        int r = fuzz_write_all(p->manager, p->fd, o->data + o->start, buffer_size(o), peer_read, p);
        buffer_consume(o, buffer_size(o));
        return r;
}

/* Bytes of the stream: in clear, or into TLS records. */
static int peer_send_bytes(Peer *p, const void *data, size_t len) {
        if (!p->tls)
                return fuzz_write_all(p->manager, p->fd, data, len, peer_read, p);
        CHECK(buffer_append(&p->plain, data, len) >= 0);
        while (buffer_size(&p->plain) > 0) {
                if (p->tls_failed || !peer_tls_is_established(p->tls) || peer_tls_send(p->tls, &p->plain) < 0)
                        return -EPIPE;
                int r = peer_flush_tls(p);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int peer_send_frame(Peer *p, const void *payload, size_t len) {
        uint8_t prefix[PROTO_HEADER_SIZE] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24 };
        int r = peer_send_bytes(p, prefix, sizeof(prefix));
        return r < 0 ? r : peer_send_bytes(p, payload, len);
}

static int peer_send_packed(Peer *p, msgpack_sbuffer *sb) {
        int r = peer_send_frame(p, sb->data, sb->size);
        msgpack_sbuffer_clear(sb);
        return r;
}

/* Pumps until cond holds or nothing more happens. */
static bool peer_wait(Peer *p, const bool *cond) {
        for (unsigned i = 0; i < 16 && !*cond; i++)
                if (fuzz_manager_pump(p->manager, 64, peer_read, p) == 0 && !*cond)
                        break;
        return *cond;
}

/* With TLS, its handshake first: the ClientHello went with the connection. */
static void peer_handshake_tls(Peer *p) {
        for (unsigned i = 0; i < 16 && !peer_tls_is_established(p->tls); i++) {
                CHECK(peer_flush_tls(p) >= 0);
                (void) fuzz_manager_pump(p->manager, 64, peer_read, p);
                CHECK(!p->tls_failed);
        }
        CHECK(peer_tls_is_established(p->tls));
        CHECK(peer_flush_tls(p) >= 0); /* our Finished */
}

/* The dialling side of the handshake (peer.c): HELLO, then AUTH = HMAC(key, "kactor-peer-dial" |
 * the manager's nonce | ours | our id), the key being the secret, or with TLS the session's
 * binding. */
static void peer_handshake(Peer *p) {
        static const uint8_t nonce[PEER_NONCE_SIZE] = "fuzz-peer-session-nonce-0123456";
        static const char label[] = "kactor-peer-dial";
        msgpack_sbuffer sb;
        msgpack_packer pk;

        if (p->tls)
                peer_handshake_tls(p);
        CHECK(peer_wait(p, &p->got_hello));
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint32(&pk, PEER_MSG_HELLO);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_uint32(&pk, PEER_PROTO_VERSION);
        pack_cstr(&pk, FUZZ_PEER_ID);
        pack_cstr(&pk, "");
        msgpack_pack_bin(&pk, PEER_NONCE_SIZE);
        msgpack_pack_bin_body(&pk, nonce, PEER_NONCE_SIZE);
        CHECK(peer_send_packed(p, &sb) >= 0);
        CHECK(peer_wait(p, &p->got_auth));

        uint8_t msg[sizeof(label) - 1 + 2 * PEER_NONCE_SIZE + sizeof(FUZZ_PEER_ID) - 1];
        uint8_t mac[PEER_MAC_SIZE];
        unsigned mac_len = 0;
        memcpy(msg, label, sizeof(label) - 1);
        memcpy(msg + sizeof(label) - 1, p->manager_nonce, PEER_NONCE_SIZE);
        memcpy(msg + sizeof(label) - 1 + PEER_NONCE_SIZE, nonce, PEER_NONCE_SIZE);
        memcpy(msg + sizeof(label) - 1 + 2 * PEER_NONCE_SIZE, FUZZ_PEER_ID, sizeof(FUZZ_PEER_ID) - 1);
        uint8_t binding[PEER_BINDING_SIZE];
        if (p->tls) {
                CHECK(peer_tls_binding(p->tls, binding) >= 0);
                CHECK(HMAC(EVP_sha256(), binding, sizeof(binding), msg, sizeof(msg), mac, &mac_len));
        } else
                CHECK(HMAC(EVP_sha256(), FUZZ_PEER_SECRET, (int) strlen(FUZZ_PEER_SECRET), msg, sizeof(msg), mac,
                           &mac_len));
        CHECK(mac_len == PEER_MAC_SIZE);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, PEER_MSG_AUTH);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_bin(&pk, PEER_MAC_SIZE);
        msgpack_pack_bin_body(&pk, mac, PEER_MAC_SIZE);
        CHECK(peer_send_packed(p, &sb) >= 0);
        msgpack_sbuffer_destroy(&sb);
        /* Authenticated, the manager tells us its members at once. */
        CHECK(peer_wait(p, &p->got_ping));
}

static void peer_connect(Peer *p, bool handshake) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(FUZZ_PEER_PORT),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        /* Reset on close: no TIME_WAIT left per input. */
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };

        /* The listen backlog takes it: connect() returns before the manager accepts. A refusal (seen
         * once in thousands of inputs on a loaded machine) is tried again, the manager run between. */
        for (unsigned attempt = 0;; attempt++) {
                p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                CHECK(p->fd >= 0);
                CHECK(setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) >= 0);
                (void) setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
                if (connect(p->fd, (struct sockaddr *) &sa, sizeof(sa)) >= 0)
                        break;
                int e = errno;
                close(p->fd);
                p->fd = -1;
                if (attempt >= 20 || (e != ECONNREFUSED && e != EADDRNOTAVAIL && e != EAGAIN && e != EINTR)) {
                        fprintf(stderr, "connect to the node manager's peer port: %s\n", strerror(e));
                        CHECK(false);
                }
                (void) fuzz_manager_pump(p->manager, 64, NULL, NULL);
                (void) usleep(1000);
        }
        CHECK(fcntl(p->fd, F_SETFL, O_NONBLOCK) >= 0);
        frame_init(&p->frame);
        /* Without the handshake, a stranger that speaks in clear to the node, TLS or not. */
        if (p->use_tls && handshake)
                CHECK(peer_tls_new(tls_context, true, &p->tls) >= 0);
        if (handshake)
                peer_handshake(p);
        else
                (void) fuzz_manager_pump(p->manager, 64, peer_read, p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ManagerConfig config;
        Peer p = { .fd = -1 };
        unsigned pauses = 0;

        if (size < 1)
                return 0;
        bool handshake = !(data[0] & FUZZ_SETUP_NO_HANDSHAKE);
        p.use_tls = data[0] & FUZZ_SETUP_TLS;
        /* The manager reads it when its cluster starts. */
        if (p.use_tls)
                CHECK(unsetenv("KACTOR_PEER_PLAINTEXT") == 0);
        else
                CHECK(setenv("KACTOR_PEER_PLAINTEXT", "1", 1) == 0);

        fuzz_fixture_config(&config);
        config.cluster_listen = listen_address;
        config.cluster_secret_file = secret_file;
        p.manager = fuzz_manager_new(&config);
        (void) fuzz_manager_pump(p.manager, 64, NULL, NULL);
        peer_connect(&p, handshake);

        for (size_t off = 1; off + 3 <= size;) {
                uint8_t h = data[off];
                size_t len = (size_t) data[off + 1] | (size_t) data[off + 2] << 8;
                off += 3;
                if (len > size - off)
                        len = size - off;
                const uint8_t *payload = data + off;
                off += len;

                if (p.fd < 0)
                        break;
                int r = 0;
                switch (FUZZ_REC_KIND(h)) {
                case FUZZ_REC_FRAME:
                        r = peer_send_frame(&p, payload, len);
                        break;
                case FUZZ_REC_RAW:
                        /* As they are, past TLS when there is TLS. */
                        r = fuzz_write_all(p.manager, p.fd, payload, len, peer_read, &p);
                        break;
                case FUZZ_REC_CLOSE:
                        /* Gone and back: what was owed on the old connection is sent again. */
                        peer_disconnect(&p);
                        (void) fuzz_manager_pump(p.manager, 64, NULL, NULL);
                        peer_connect(&p, handshake);
                        break;
                case FUZZ_REC_PAUSE:
                        if (pauses++ < PAUSES_MAX)
                                (void) usleep(PAUSE_USEC);
                        break;
                }
                if (r < 0)
                        break; /* the manager dropped us, or does not read */
                (void) fuzz_manager_pump(p.manager, 256, peer_read, &p);
        }

        peer_disconnect(&p);
        (void) fuzz_manager_pump(p.manager, 256, NULL, NULL);
        manager_free(p.manager);
        return 0;
}
