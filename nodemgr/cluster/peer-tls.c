/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "peer-tls.h"

#define PEER_KEYRING_FILE_MAX (PEER_KEYS_MAX * (PEER_SECRET_MAX + 2))
/* What a peer may send before it has authenticated: a ClientHello with a PSK identity and a key
 * share, and the handshake's first frames, take well under 1 KiB; a certificate chain takes more. */
#define PEER_HANDSHAKE_MAX_PSK 4096u
#define PEER_HANDSHAKE_MAX_CERT (32u * 1024u)
#define PEER_CERT_LIST_MAX (24u * 1024u)
#define PEER_TLS_READ_CHUNK 16384u
#define PEER_TLS_WRITE_CHUNK 65536u
#define PEER_SUBJECT_MAX 256

static const char PSK_INFO[] = "kactor peer psk v1";
static const char KEY_ID_LABEL[] = "kactor key id";
static const char BINDING_LABEL[] = "EXPORTER-kactor-peer-auth";
static const char SESSION_ID_CONTEXT[] = "kactor-peer";
/* The PSK's session is TLS_AES_128_GCM_SHA256: a PSK is bound to a hash, SHA-256 here, and the
 * handshake then picks one of the suites of that hash. */
static const unsigned char PSK_CIPHER_ID[2] = { 0x13, 0x01 };
static const char CIPHERSUITES[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

typedef struct PeerKeyring {
        PeerKey keys[PEER_KEYS_MAX];
        size_t n;
} PeerKeyring;

struct PeerTlsContext {
        char *secret_file, *cert_file, *key_file, *ca_file;
        bool plaintext;
        PeerKeyring keyring;
        SSL_CTX *ssl_ctx; /* NULL without TLS; with certificates, made again by each reload */
        BIO_METHOD *bio_method;
        uint64_t generation; /* of the credentials: one more at each reload that took */
        char *description;
};

struct PeerTls {
        PeerTlsContext *context;
        SSL *ssl;
        Buffer input, output; /* ciphertext */
        bool dialled;
        bool established;
        int failure; /* once failed, it stays so */
        char *error;
        uint64_t generation; /* of the credentials it started with */
        bool has_key;
        uint8_t key_id[PEER_KEY_ID_SIZE];
        char key_id_hex[2 * PEER_KEY_ID_SIZE + 1];
        char *subject;      /* the peer certificate's */
        size_t write_retry; /* a write OpenSSL asked to be retried, with the same length */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);

static int reason_set(char **ret_reason, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static int reason_set(char **ret_reason, int error, const char *format, ...) {
        if (ret_reason) {
                va_list ap;
                char *s;
                va_start(ap, format);
                if (vasprintf(&s, format, ap) < 0)
                        s = NULL;
                va_end(ap);
                free(*ret_reason);
                *ret_reason = s;
        }
        return error;
}

/* OpenSSL's last error, in words (into buf), and its queue emptied. */
static const char *openssl_error(char *buf, size_t size) {
        unsigned long e = ERR_peek_last_error();
        const char *s = e ? ERR_reason_error_string(e) : NULL;
        if (s)
                snprintf(buf, size, "%s", s);
        else if (e)
                ERR_error_string_n(e, buf, size);
        else
                snprintf(buf, size, "unknown error");
        ERR_clear_error();
        return buf;
}

/* --- the keyring -------------------------------------------------------------------------------- */

static void peer_keyring_done(PeerKeyring *k) {
        for (size_t i = 0; i < k->n; i++) {
                OPENSSL_cleanse(k->keys[i].secret, k->keys[i].secret_len);
                free(k->keys[i].secret);
        }
        OPENSSL_cleanse(k, sizeof(*k));
}

/* The key id (what a dialling side names its PSK with) and the PSK, from the secret. */
static int peer_key_derive(PeerKey *k) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        if (!HMAC(EVP_sha256(), k->secret, (int) k->secret_len, (const uint8_t *) KEY_ID_LABEL,
                  strlen(KEY_ID_LABEL), mac, &mac_len) ||
            mac_len < PEER_KEY_ID_SIZE)
                return -EIO;
        memcpy(k->id, mac, PEER_KEY_ID_SIZE);
        for (size_t i = 0; i < PEER_KEY_ID_SIZE; i++)
                snprintf(k->id_hex + 2 * i, 3, "%02x", k->id[i]);

        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
        size_t len = PEER_PSK_SIZE;
        if (!pctx || EVP_PKEY_derive_init(pctx) <= 0 || EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()) <= 0 ||
            EVP_PKEY_CTX_set1_hkdf_key(pctx, k->secret, (int) k->secret_len) <= 0 ||
            EVP_PKEY_CTX_add1_hkdf_info(pctx, (const unsigned char *) PSK_INFO, (int) strlen(PSK_INFO)) <=
                    0 ||
            EVP_PKEY_derive(pctx, k->psk, &len) <= 0 || len != PEER_PSK_SIZE) {
                ERR_clear_error();
                return -EIO;
        }
        return 0;
}

static int read_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        _cleanup_free_ char *buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0) {
                        int r = -errno;
                        OPENSSL_cleanse(buf, n);
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max) {
                        OPENSSL_cleanse(buf, n);
                        return -EFBIG;
                }
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

/* One secret per non-empty line (a trailing '\r' is not part of it), the primary first. */
static int peer_keyring_read(const char *path, PeerKeyring *ret, char **ret_reason) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        r = read_file(path, PEER_KEYRING_FILE_MAX, &buf, &len);
        if (r == -EFBIG)
                return reason_set(ret_reason, -EINVAL, "%s is larger than %u bytes", path,
                                  PEER_KEYRING_FILE_MAX);
        if (r < 0)
                return reason_set(ret_reason, r, "cannot read %s: %s", path, strerror(-r));

        PeerKeyring k = {};
        unsigned line = 0;
        for (const char *p = buf, *end = buf + len; p < end && r >= 0;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = (size_t) ((nl ?: end) - p);
                const char *s = p;
                p = nl ? nl + 1 : end;
                line++;
                if (n > 0 && s[n - 1] == '\r')
                        n--;
                if (n == 0)
                        continue;
                if (n < PEER_SECRET_MIN || n > PEER_SECRET_MAX)
                        r = reason_set(ret_reason, -EINVAL,
                                       "line %u of %s is %s than a secret may be (%u to %u bytes)", line,
                                       path, n < PEER_SECRET_MIN ? "shorter" : "longer", PEER_SECRET_MIN,
                                       PEER_SECRET_MAX);
                else if (k.n >= PEER_KEYS_MAX)
                        r = reason_set(ret_reason, -EINVAL, "%s holds more than %u secrets", path,
                                       PEER_KEYS_MAX);
                else {
                        PeerKey *key = &k.keys[k.n];
                        key->secret = malloc(n);
                        if (!key->secret)
                                r = -ENOMEM;
                        else {
                                memcpy(key->secret, s, n);
                                key->secret_len = n;
                                k.n++;
                                r = peer_key_derive(key);
                                if (r < 0)
                                        r = reason_set(ret_reason, r,
                                                       "cannot derive a key from line %u of %s", line, path);
                        }
                }
        }
        OPENSSL_cleanse(buf, len);
        if (r >= 0 && k.n == 0)
                r = reason_set(ret_reason, -EINVAL, "%s holds no secret", path);
        if (r < 0) {
                peer_keyring_done(&k);
                return r;
        }
        *ret = k;
        return 0;
}

size_t peer_tls_context_n_keys(const PeerTlsContext *c) {
        return c->keyring.n;
}

const PeerKey *peer_tls_context_key(const PeerTlsContext *c, size_t i) {
        return i < c->keyring.n ? &c->keyring.keys[i] : NULL;
}

const PeerKey *peer_tls_context_find_key(const PeerTlsContext *c,
                                         const uint8_t id[static PEER_KEY_ID_SIZE]) {
        for (size_t i = 0; i < c->keyring.n; i++)
                if (CRYPTO_memcmp(c->keyring.keys[i].id, id, PEER_KEY_ID_SIZE) == 0)
                        return &c->keyring.keys[i];
        return NULL;
}

/* --- the connection's byte streams: a BIO over the two Buffers ---------------------------------- */

static int peer_tls_bio_write(BIO *b, const char *data, size_t len, size_t *written) {
        PeerTls *t = BIO_get_data(b);
        BIO_clear_retry_flags(b);
        if (buffer_append(&t->output, data, len) < 0)
                return 0;
        *written = len;
        return 1;
}

static int peer_tls_bio_read(BIO *b, char *data, size_t len, size_t *read_bytes) {
        PeerTls *t = BIO_get_data(b);
        size_t n = MIN(len, buffer_size(&t->input));
        BIO_clear_retry_flags(b);
        if (n == 0) {
                /* Not the end: more comes when the socket is readable. */
                BIO_set_retry_read(b);
                return 0;
        }
        memcpy(data, t->input.data + t->input.start, n);
        buffer_consume(&t->input, n);
        *read_bytes = n;
        return 1;
}

static long peer_tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
        PeerTls *t = BIO_get_data(b);
        switch (cmd) {
        case BIO_CTRL_FLUSH:
                return 1;
        case BIO_CTRL_PENDING:
                return (long) buffer_size(&t->input);
        case BIO_CTRL_WPENDING:
                return (long) buffer_size(&t->output);
        default:
                return 0;
        }
}

static int peer_tls_bio_create(BIO *b) {
        BIO_set_init(b, 1);
        return 1;
}

static BIO_METHOD *peer_tls_bio_method_new(void) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kactor peer connection");
        if (!m || !BIO_meth_set_write_ex(m, peer_tls_bio_write) ||
            !BIO_meth_set_read_ex(m, peer_tls_bio_read) || !BIO_meth_set_ctrl(m, peer_tls_bio_ctrl) ||
            !BIO_meth_set_create(m, peer_tls_bio_create)) {
                BIO_meth_free(m);
                return NULL;
        }
        return m;
}

/* --- TLS contexts ------------------------------------------------------------------------------- */

static void peer_tls_set_error(PeerTls *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void peer_tls_set_error(PeerTls *t, const char *format, ...) {
        va_list ap;
        char *s;
        if (t->error)
                return; /* the first word is the cause */
        va_start(ap, format);
        if (vasprintf(&s, format, ap) >= 0)
                t->error = s;
        va_end(ap);
}

static void peer_tls_use_key(PeerTls *t, const PeerKey *k) {
        t->has_key = true;
        memcpy(t->key_id, k->id, PEER_KEY_ID_SIZE);
        memcpy(t->key_id_hex, k->id_hex, sizeof(t->key_id_hex));
}

static SSL_SESSION *peer_tls_psk_session(const SSL_CIPHER *cipher, const PeerKey *k) {
        SSL_SESSION *s = SSL_SESSION_new();
        if (!s || !SSL_SESSION_set1_master_key(s, k->psk, PEER_PSK_SIZE) ||
            !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) ||
            !SSL_SESSION_set1_id_context(s, (const unsigned char *) SESSION_ID_CONTEXT,
                                         strlen(SESSION_ID_CONTEXT))) {
                SSL_SESSION_free(s);
                return NULL;
        }
        return s;
}

/* The dialling side offers the primary key (called again with md after a HelloRetryRequest). */
static int peer_tls_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *id_len,
                                SSL_SESSION **sess) {
        PeerTls *t = SSL_get_app_data(ssl);
        const PeerKey *k = peer_tls_context_key(t->context, 0);
        const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, PSK_CIPHER_ID);

        *sess = NULL;
        *id = NULL;
        *id_len = 0;
        if (!k || !cipher)
                return 0;
        if (md && md != SSL_CIPHER_get_handshake_digest(cipher))
                return 1; /* no key for that hash */
        *sess = peer_tls_psk_session(cipher, k);
        if (!*sess)
                return 0;
        peer_tls_use_key(t, k);
        *id = (const unsigned char *) t->key_id_hex;
        *id_len = 2 * PEER_KEY_ID_SIZE;
        return 1;
}

/* The accepting side takes any key of its keyring. An identity it does not know leaves the
 * handshake without a PSK, and it fails then (there is no certificate to fall back to). */
static int peer_tls_find_session(SSL *ssl, const unsigned char *identity, size_t identity_len,
                                 SSL_SESSION **sess) {
        PeerTls *t = SSL_get_app_data(ssl);
        PeerTlsContext *c = t->context;
        const PeerKey *k = NULL;

        *sess = NULL;
        for (size_t i = 0; i < c->keyring.n && !k; i++)
                if (identity_len == 2 * PEER_KEY_ID_SIZE &&
                    memcmp(identity, c->keyring.keys[i].id_hex, identity_len) == 0)
                        k = &c->keyring.keys[i];
        if (!k) {
                bool printable = identity_len == 2 * PEER_KEY_ID_SIZE;
                for (size_t i = 0; printable && i < identity_len; i++)
                        printable = strchr("0123456789abcdef", identity[i]) && identity[i] != 0;
                if (printable)
                        peer_tls_set_error(t, "its key id %.*s is not in this node's keyring",
                                           (int) identity_len, (const char *) identity);
                else
                        peer_tls_set_error(t, "it offered no key of this node's keyring");
                return 1;
        }
        const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, PSK_CIPHER_ID);
        if (!cipher)
                return 0;
        *sess = peer_tls_psk_session(cipher, k);
        if (!*sess)
                return 0;
        peer_tls_use_key(t, k);
        return 1;
}

static int peer_tls_ssl_ctx_new(const PeerTlsContext *c, SSL_CTX **ret, char **ret_reason) {
        char error[256];
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_method());
        if (!ctx)
                return reason_set(ret_reason, -ENOMEM, "cannot make a TLS context: %s",
                                  openssl_error(error, sizeof(error)));
        if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
            !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
            !SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES) || !SSL_CTX_set_num_tickets(ctx, 0))
                return reason_set(ret_reason, -EIO, "cannot set TLS 1.3 up: %s",
                                  openssl_error(error, sizeof(error)));
        /* Every connection is a full handshake: no tickets, no resumption. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        /* OpenSSL takes a PSK for a session to resume, and wants to know whose. */
        if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *) SESSION_ID_CONTEXT,
                                            strlen(SESSION_ID_CONTEXT)))
                return reason_set(ret_reason, -EIO, "cannot set TLS 1.3 up: %s",
                                  openssl_error(error, sizeof(error)));
        /* What is written comes from a Buffer that may move between a write and its retry. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

        if (!c->cert_file) {
                SSL_CTX_set_psk_use_session_callback(ctx, peer_tls_use_session);
                SSL_CTX_set_psk_find_session_callback(ctx, peer_tls_find_session);
                *ret = TAKE_PTR(ctx);
                return 0;
        }

        /* The files are opened here first for a plain error when one cannot be read. */
        const char *files[] = { c->cert_file, c->key_file, c->ca_file };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_close_ int fd = open(files[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return reason_set(ret_reason, -errno, "cannot read %s: %m", files[i]);
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1)
                return reason_set(ret_reason, -EINVAL, "cannot load the certificate %s: %s", c->cert_file,
                                  openssl_error(error, sizeof(error)));
        if (SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1)
                return reason_set(ret_reason, -EINVAL, "cannot load the key %s: %s", c->key_file,
                                  openssl_error(error, sizeof(error)));
        if (SSL_CTX_check_private_key(ctx) != 1)
                return reason_set(ret_reason, -EINVAL, "the key %s is not the certificate's (%s): %s",
                                  c->key_file, c->cert_file, openssl_error(error, sizeof(error)));
        if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1)
                return reason_set(ret_reason, -EINVAL, "cannot load the CA %s: %s", c->ca_file,
                                  openssl_error(error, sizeof(error)));
        /* Peers would refuse a certificate that the CA did not sign: say so here, at once. */
        X509_STORE_CTX *x = X509_STORE_CTX_new();
        bool ok = x &&
                X509_STORE_CTX_init(x, SSL_CTX_get_cert_store(ctx), SSL_CTX_get0_certificate(ctx), NULL) ==
                        1 &&
                X509_verify_cert(x) == 1;
        int verify_error = x ? X509_STORE_CTX_get_error(x) : X509_V_ERR_OUT_OF_MEM;
        X509_STORE_CTX_free(x);
        ERR_clear_error();
        if (!ok)
                return reason_set(ret_reason, -EINVAL,
                                  "the certificate %s does not verify against the CA %s: %s", c->cert_file,
                                  c->ca_file, X509_verify_cert_error_string(verify_error));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_max_cert_list(ctx, PEER_CERT_LIST_MAX);
        *ret = TAKE_PTR(ctx);
        return 0;
}

static char *x509_subject(X509 *cert) {
        char buf[PEER_SUBJECT_MAX];
        if (!cert || !X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf)))
                return strdup("?");
        return strdup(buf);
}

static int peer_tls_context_describe_update(PeerTlsContext *c) {
        char *s = NULL;
        int r;
        if (c->cert_file) {
                _cleanup_free_ char *subject = x509_subject(SSL_CTX_get0_certificate(c->ssl_ctx));
                r = asprintf(&s, "certificate %s", subject ?: "?");
        } else
                r = asprintf(&s, "%zu secret%s, primary key %s%s", c->keyring.n,
                             c->keyring.n == 1 ? "" : "s", c->keyring.keys[0].id_hex,
                             c->plaintext ? ", without TLS" : "");
        if (r < 0)
                return -ENOMEM;
        free(c->description);
        c->description = s;
        return 0;
}

int peer_tls_context_new(const PeerTlsConfig *config, PeerTlsContext **ret, char **ret_reason) {
        bool certs = config->cert_file || config->key_file || config->ca_file;
        int r;

        if (certs && !(config->cert_file && config->key_file && config->ca_file))
                return reason_set(ret_reason, -EINVAL, "a certificate needs its key and the CA: all three");
        if (certs && config->secret_file)
                return reason_set(ret_reason, -EINVAL,
                                  "peers authenticate with a certificate or with a secret file, not both");
        if (!certs && !config->secret_file)
                return reason_set(ret_reason, -EINVAL, "peers need a secret file or a certificate");
        if (certs && config->plaintext)
                return reason_set(ret_reason, -EINVAL, "without TLS, peers authenticate with a secret file");

        PeerTlsContext *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->plaintext = config->plaintext;
        if ((config->secret_file && !(c->secret_file = strdup(config->secret_file))) ||
            (certs &&
             (!(c->cert_file = strdup(config->cert_file)) || !(c->key_file = strdup(config->key_file)) ||
              !(c->ca_file = strdup(config->ca_file))))) {
                peer_tls_context_free(c);
                return -ENOMEM;
        }
        r = c->secret_file ? peer_keyring_read(c->secret_file, &c->keyring, ret_reason) : 0;
        if (r >= 0 && !c->plaintext) {
                c->bio_method = peer_tls_bio_method_new();
                r = c->bio_method ? peer_tls_ssl_ctx_new(c, &c->ssl_ctx, ret_reason) : -ENOMEM;
        }
        if (r >= 0)
                r = peer_tls_context_describe_update(c);
        if (r < 0) {
                peer_tls_context_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

PeerTlsContext *peer_tls_context_free(PeerTlsContext *c) {
        if (!c)
                return NULL;
        peer_keyring_done(&c->keyring);
        SSL_CTX_free(c->ssl_ctx);
        BIO_meth_free(c->bio_method);
        free(c->secret_file);
        free(c->cert_file);
        free(c->key_file);
        free(c->ca_file);
        free(c->description);
        free(c);
        return NULL;
}

int peer_tls_context_reload(PeerTlsContext *c, char **ret_reason) {
        int r;
        if (c->secret_file) {
                PeerKeyring k;
                r = peer_keyring_read(c->secret_file, &k, ret_reason);
                if (r < 0)
                        return r;
                peer_keyring_done(&c->keyring);
                c->keyring = k;
        } else {
                SSL_CTX *ctx;
                r = peer_tls_ssl_ctx_new(c, &ctx, ret_reason);
                if (r < 0)
                        return r;
                /* Connections keep the context they were made with (SSL objects hold a reference). */
                SSL_CTX_free(c->ssl_ctx);
                c->ssl_ctx = ctx;
        }
        c->generation++;
        (void) peer_tls_context_describe_update(c);
        return 0;
}

bool peer_tls_context_uses_tls(const PeerTlsContext *c) {
        return c->ssl_ctx;
}

bool peer_tls_context_uses_certificates(const PeerTlsContext *c) {
        return c->cert_file;
}

size_t peer_tls_context_handshake_max(const PeerTlsContext *c) {
        return c->cert_file ? PEER_HANDSHAKE_MAX_CERT : PEER_HANDSHAKE_MAX_PSK;
}

const char *peer_tls_context_describe(const PeerTlsContext *c) {
        return c->description ?: "?";
}

/* --- connections -------------------------------------------------------------------------------- */

static int peer_tls_fail(PeerTls *t, int error) {
        char buf[256];
        unsigned long e = ERR_peek_last_error();
        long verify = SSL_get_verify_result(t->ssl);

        if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK)
                peer_tls_set_error(t, "its certificate: %s", X509_verify_cert_error_string(verify));
        else if (e && ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER)
                peer_tls_set_error(t, "it does not speak TLS 1.3");
        else
                peer_tls_set_error(t, "%s", openssl_error(buf, sizeof(buf)));
        ERR_clear_error();
        t->failure = error;
        return error;
}

int peer_tls_new(PeerTlsContext *c, bool dialled, PeerTls **ret) {
        if (!c->ssl_ctx)
                return -EINVAL;
        PeerTls *t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (PeerTls){ .context = c, .dialled = dialled, .generation = c->generation };
        t->ssl = SSL_new(c->ssl_ctx);
        BIO *b = t->ssl ? BIO_new(c->bio_method) : NULL;
        if (!b) {
                ERR_clear_error();
                peer_tls_free(t);
                return -ENOMEM;
        }
        BIO_set_data(b, t);
        SSL_set_bio(t->ssl, b, b);
        SSL_set_app_data(t->ssl, t);
        if (dialled) {
                SSL_set_connect_state(t->ssl);
                /* A server that does not take the key and shows a certificate instead is refused:
                 * with a keyring there is no CA to verify it against. */
                if (!c->cert_file)
                        SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
                /* The ClientHello, into the output: sent once the socket is connected. */
                ERR_clear_error();
                int r = SSL_do_handshake(t->ssl);
                int e = SSL_get_error(t->ssl, r);
                if (r != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                        ERR_clear_error();
                        peer_tls_free(t);
                        return -EIO;
                }
        } else
                SSL_set_accept_state(t->ssl);
        *ret = t;
        return 0;
}

PeerTls *peer_tls_free(PeerTls *t) {
        if (!t)
                return NULL;
        SSL_free(t->ssl);
        buffer_free(&t->input);
        buffer_free(&t->output);
        free(t->error);
        free(t->subject);
        free(t);
        return NULL;
}

Buffer *peer_tls_input(PeerTls *t) {
        return &t->input;
}

Buffer *peer_tls_output(PeerTls *t) {
        return &t->output;
}

bool peer_tls_is_established(const PeerTls *t) {
        return t->established && t->failure == 0;
}

const char *peer_tls_error(const PeerTls *t) {
        return t->error;
}

/* The handshake completed: what it proved is checked once more. */
static int peer_tls_established(PeerTls *t) {
        PeerTlsContext *c = t->context;
        if (!c->cert_file && !SSL_session_reused(t->ssl)) {
                peer_tls_set_error(t, "it did not use a key of the keyring");
                return t->failure = -EKEYREJECTED;
        }
        if (c->cert_file && !(t->subject = x509_subject(SSL_get0_peer_certificate(t->ssl))))
                return -ENOMEM;
        t->established = true;
        /* The credentials were reloaded while it connected: it has to pass the new ones. */
        if (t->generation != c->generation && !peer_tls_trusted(t)) {
                t->established = false;
                peer_tls_set_error(t, "its %s was removed while it connected",
                                   c->cert_file ? "certificate's CA" : "key");
                return t->failure = -EKEYREJECTED;
        }
        return 0;
}

int peer_tls_receive(PeerTls *t, Buffer *plain) {
        int r;

        if (t->failure < 0)
                return t->failure;
        ERR_clear_error();
        if (!t->established) {
                r = SSL_do_handshake(t->ssl);
                if (r != 1) {
                        int e = SSL_get_error(t->ssl, r);
                        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                                return 0;
                        return peer_tls_fail(t, -EKEYREJECTED);
                }
                r = peer_tls_established(t);
                if (r < 0)
                        return r;
        }
        /* Every record that is whole: nothing stays in TLS's buffers (SSL_pending()) for a socket
         * that will not become readable again. TLS reads a record's bytes as they come, so once the
         * input is empty and nothing is pending, there is no more to ask for. */
        while (buffer_size(&t->input) > 0 || SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl)) {
                size_t n = 0;
                r = buffer_reserve_read(plain, PEER_TLS_READ_CHUNK);
                if (r < 0)
                        return r;
                if (SSL_read_ex(t->ssl, plain->data + plain->end, plain->cap - plain->end, &n) == 1) {
                        plain->end += n;
                        continue;
                }
                int e = SSL_get_error(t->ssl, 0);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                        return 0;
                if (e == SSL_ERROR_ZERO_RETURN)
                        return -ECONNRESET;
                return peer_tls_fail(t, -EPROTO);
        }
        return 0;
}

int peer_tls_send(PeerTls *t, Buffer *plain) {
        if (t->failure < 0)
                return t->failure;
        if (!t->established)
                return 0;
        ERR_clear_error();
        while (buffer_size(plain) > 0 && buffer_size(&t->output) < PEER_TLS_OUTPUT_MAX) {
                size_t n = t->write_retry ?: MIN(buffer_size(plain), PEER_TLS_WRITE_CHUNK), written = 0;
                if (SSL_write_ex(t->ssl, plain->data + plain->start, n, &written) != 1) {
                        int e = SSL_get_error(t->ssl, 0);
                        /* The output always takes what TLS writes: a write waits only for the peer
                         * (a read), and is retried after the next one. */
                        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                                t->write_retry = n;
                                return 0;
                        }
                        return peer_tls_fail(t, -EPROTO);
                }
                t->write_retry = 0;
                buffer_consume(plain, written);
        }
        return 0;
}

int peer_tls_binding(PeerTls *t, uint8_t ret[static PEER_BINDING_SIZE]) {
        if (!peer_tls_is_established(t))
                return -ENOTCONN;
        if (SSL_export_keying_material(t->ssl, ret, PEER_BINDING_SIZE, BINDING_LABEL, strlen(BINDING_LABEL),
                                       NULL, 0, 0) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        return 0;
}

bool peer_tls_trusted(PeerTls *t) {
        PeerTlsContext *c = t->context;
        if (!c->cert_file)
                return !t->has_key || peer_tls_context_find_key(c, t->key_id);
        X509 *cert = SSL_get0_peer_certificate(t->ssl);
        if (!cert)
                return !t->established;
        X509_STORE_CTX *x = X509_STORE_CTX_new();
        bool ok = x &&
                X509_STORE_CTX_init(x, SSL_CTX_get_cert_store(c->ssl_ctx), cert,
                                    SSL_get_peer_cert_chain(t->ssl)) == 1 &&
                X509_STORE_CTX_set_default(x, t->dialled ? "ssl_server" : "ssl_client") == 1 &&
                X509_verify_cert(x) == 1;
        X509_STORE_CTX_free(x);
        ERR_clear_error();
        return ok;
}

const char *peer_tls_describe(PeerTls *t) {
        if (t->subject)
                return t->subject;
        return t->has_key ? t->key_id_hex : "";
}
