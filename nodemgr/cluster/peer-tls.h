/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What peer connections are secured with (docs/cluster.md, "Transport security"): the node's
 * credentials (PeerTlsContext: a keyring of cluster secrets, or a certificate, its key and the
 * cluster's CA) and TLS 1.3 on each connection (PeerTls).
 *
 * A PeerTls does no I/O of its own: the caller moves the bytes between the socket and two buffers
 * of ciphertext (peer_tls_input(), peer_tls_output()), so that it keeps its non-blocking sockets,
 * its caps on what a stranger may send and its output budget; the plaintext goes through the
 * caller's own buffers (peer_tls_receive(), peer_tls_send()).
 *
 * With a keyring, TLS uses an external PSK derived from one secret (HKDF-SHA256, info "kactor peer
 * psk v1") with ECDHE (psk_dhe_ke); its identity is the secret's key id, so the accepting side
 * knows which of its secrets the dialling side used. The first secret of the file is the primary,
 * used to dial; every one is accepted. With a certificate, both sides present one and verify the
 * other's against the CA.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define PEER_KEY_ID_SIZE 8 /* the first bytes of HMAC-SHA256(secret, "kactor key id") */
#define PEER_KEYS_MAX 16   /* secrets in a keyring file */
#define PEER_SECRET_MIN 16 /* bytes in a secret */
#define PEER_SECRET_MAX 4096
#define PEER_PSK_SIZE 32
#define PEER_BINDING_SIZE 32 /* peer_tls_binding() */

typedef struct PeerKey {
        uint8_t *secret;
        size_t secret_len;
        uint8_t id[PEER_KEY_ID_SIZE];
        char id_hex[2 * PEER_KEY_ID_SIZE + 1]; /* the PSK identity */
        uint8_t psk[PEER_PSK_SIZE];
} PeerKey;

typedef struct PeerTlsConfig {
        const char *secret_file; /* a keyring: one secret per non-empty line, the primary first */
        const char *cert_file;   /* or a certificate (chain, PEM), its key and the CA that signs */
        const char *key_file;    /* the cluster's certificates: all three, instead of the keyring */
        const char *ca_file;
        bool plaintext; /* no TLS: the keyring only signs the handshake (for measurements) */
} PeerTlsConfig;

typedef struct PeerTlsContext PeerTlsContext;
typedef struct PeerTls PeerTls;

/* Reads the credentials. Returns 0, or a negative errno with *ret_reason (malloc'd; may be NULL on
 * OOM) saying what is wrong for an operator: -EINVAL for a bad configuration or file, the error of
 * a file that cannot be read, -EIO for what OpenSSL refused. */
int peer_tls_context_new(const PeerTlsConfig *config, PeerTlsContext **ret, char **ret_reason);
PeerTlsContext *peer_tls_context_free(PeerTlsContext *c);
/* Reads the files again (SIGHUP). On failure the context keeps what it had, and says why as
 * peer_tls_context_new() does. Connections made from now on use what was read; those made before
 * keep theirs: peer_tls_trusted() says whether they still may. */
int peer_tls_context_reload(PeerTlsContext *c, char **ret_reason);
bool peer_tls_context_uses_tls(const PeerTlsContext *c);
bool peer_tls_context_uses_certificates(const PeerTlsContext *c);
/* The largest handshake a peer may need to send (certificates are larger than a key id). */
size_t peer_tls_context_handshake_max(const PeerTlsContext *c);
/* "2 secrets, primary 0a1b2c3d4e5f6a7b", or "certificate CN=...": for logs. Owned by c. */
const char *peer_tls_context_describe(const PeerTlsContext *c);
/* The keyring, the primary first (none with certificates). */
size_t peer_tls_context_n_keys(const PeerTlsContext *c);
const PeerKey *peer_tls_context_key(const PeerTlsContext *c, size_t i);
const PeerKey *peer_tls_context_find_key(const PeerTlsContext *c, const uint8_t id[static PEER_KEY_ID_SIZE]);

/* A connection's TLS, as the dialling side (TLS client) or the accepting one. -ENOMEM, -EIO. */
int peer_tls_new(PeerTlsContext *c, bool dialled, PeerTls **ret);
PeerTls *peer_tls_free(PeerTls *t);
/* Ciphertext read from the socket goes here (appended)... */
Buffer *peer_tls_input(PeerTls *t);
/* ... and what is here goes to the socket (consumed by the caller as it is sent). */
Buffer *peer_tls_output(PeerTls *t);
/* Runs the handshake on what arrived, then decrypts what it can into plain (appended): every
 * whole record, leaving nothing buffered in TLS. Returns 0; -ECONNRESET when the peer closed its
 * side (close_notify); -EKEYREJECTED when the handshake failed (the wrong secret or certificate, or
 * no TLS at all), -EPROTO when a record is bad, with peer_tls_error() saying why. An alert for the
 * peer may be left in the output. */
int peer_tls_receive(PeerTls *t, Buffer *plain);
/* Once the handshake is done, encrypts plain (consumed) into the output, as long as the output
 * holds less than PEER_TLS_OUTPUT_MAX. Returns 0 or a negative errno. */
int peer_tls_send(PeerTls *t, Buffer *plain);
#define PEER_TLS_OUTPUT_MAX (256u * 1024u)
bool peer_tls_is_established(const PeerTls *t);
/* Why the handshake or a record failed, in words (owned by t); NULL when nothing failed. */
const char *peer_tls_error(const PeerTls *t);
/* 32 bytes both ends of this TLS session have and nobody else (an exporter, RFC 8446 7.5), once
 * established: the handshake's proofs are bound to the session with it. */
int peer_tls_binding(PeerTls *t, uint8_t ret[static PEER_BINDING_SIZE]);
/* Whether the connection may go on with the credentials read last: its key is still in the
 * keyring, its peer's certificate still verifies against the CA. A connection still in its
 * handshake is judged when it completes (peer_tls_receive() fails it then). */
bool peer_tls_trusted(PeerTls *t);
/* The key id the connection uses ("" with certificates), or the peer certificate's subject. */
const char *peer_tls_describe(PeerTls *t);
