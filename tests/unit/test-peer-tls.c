/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The peer connections' TLS (nodemgr/cluster/peer-tls.c), two ends joined in memory: the keyring
 * file, PSK handshakes with any key of the acceptor's keyring and none outside it, what a reload
 * keeps and what it refuses, the output cap, and certificates of one CA against another's.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "peer-tls.h"

#define SECRET_A "the-first-secret-of-these-tests"
#define SECRET_B "the-second-secret-of-these-tests"
#define SECRET_C "a-third-secret-nobody-else-has"

static char dir[64];

static void setup(void) {
        snprintf(dir, sizeof(dir), "/tmp/kactor-test-peer-tls-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

static void teardown(void) {
        (void) nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(peer_tls, .init = setup, .fini = teardown);

static const char *file(const char *name, const char *content) {
        static char path[4][128];
        static unsigned next;
        char *p = path[next++ % ELEMENTSOF(path)];
        snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
        if (content) {
                FILE *f = fopen(p, "we");
                cr_assert_not_null(f);
                cr_assert(fputs(content, f) >= 0);
                cr_assert_eq(fclose(f), 0);
        }
        return p;
}

static PeerTlsContext *context_new(const char *name, const char *content) {
        PeerTlsContext *c = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = peer_tls_context_new(&(PeerTlsConfig){ .secret_file = file(name, content) }, &c, &reason);
        cr_assert_eq(r, 0, "%s", reason ?: strerror(-r));
        return c;
}

/* Moves what one end wrote to the other's input. */
static void carry(PeerTls *from, PeerTls *to) {
        Buffer *o = peer_tls_output(from);
        cr_assert_eq(buffer_append(peer_tls_input(to), o->data + o->start, buffer_size(o)), 0);
        buffer_consume(o, buffer_size(o));
}

/* Runs a handshake to its end: 0, or the first error of either side. */
static int handshake(PeerTls *dialler, PeerTls *acceptor) {
        Buffer plain = {};
        int r = 0;
        for (unsigned i = 0; i < 8 && r >= 0; i++) {
                carry(dialler, acceptor);
                r = peer_tls_receive(acceptor, &plain);
                carry(acceptor, dialler);
                if (r >= 0)
                        r = peer_tls_receive(dialler, &plain);
                if (peer_tls_is_established(dialler) && peer_tls_is_established(acceptor))
                        break;
        }
        cr_assert_eq(buffer_size(&plain), 0);
        buffer_free(&plain);
        return r;
}

static const char *key_id(const char *secret) {
        static char hex[17];
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        cr_assert_not_null(HMAC(EVP_sha256(), secret, (int) strlen(secret),
                                (const uint8_t *) "kactor key id", 13, mac, &len));
        for (size_t i = 0; i < 8; i++)
                snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        return hex;
}

Test(peer_tls, keyring_has_one_secret_per_line_the_primary_first) {
        PeerTlsContext *c = context_new("keyring", "\n" SECRET_B "\r\n\n" SECRET_A "\n");
        cr_assert_eq(peer_tls_context_n_keys(c), 2);
        const PeerKey *k = peer_tls_context_key(c, 0);
        cr_assert_eq(k->secret_len, strlen(SECRET_B));
        cr_assert(memcmp(k->secret, SECRET_B, k->secret_len) == 0);
        cr_assert_str_eq(k->id_hex, key_id(SECRET_B));
        cr_assert_str_eq(peer_tls_context_key(c, 1)->id_hex, key_id(SECRET_A));
        cr_assert_null(peer_tls_context_key(c, 2));
        cr_assert(strstr(peer_tls_context_describe(c), key_id(SECRET_B)));
        peer_tls_context_free(c);
}

Test(peer_tls, keyring_that_is_not_valid_is_refused_with_a_reason) {
        static const struct {
                const char *content;
                const char *reason;
        } bad[] = {
                { "", "holds no secret" },
                { "\n\r\n", "holds no secret" },
                { SECRET_A "\nfifteen-bytes!!\n", "line 2 of" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                PeerTlsContext *c = NULL;
                _cleanup_free_ char *reason = NULL;
                int r = peer_tls_context_new(&(PeerTlsConfig){ .secret_file = file("bad", bad[i].content) },
                                             &c, &reason);
                cr_assert_eq(r, -EINVAL, "%zu: %d", i, r);
                cr_assert(reason && strstr(reason, bad[i].reason), "%zu: %s", i, reason);
        }
        PeerTlsContext *c = NULL;
        _cleanup_free_ char *reason = NULL;
        cr_assert_eq(
                peer_tls_context_new(&(PeerTlsConfig){ .secret_file = file("missing", NULL) }, &c, &reason),
                -ENOENT);
        cr_assert(reason && strstr(reason, "cannot read"));
        free(reason);
        reason = NULL;
        cr_assert_eq(peer_tls_context_new(&(PeerTlsConfig){}, &c, &reason), -EINVAL);
        free(reason);
        reason = NULL;
        cr_assert_eq(peer_tls_context_new(&(PeerTlsConfig){ .cert_file = "x" }, &c, &reason), -EINVAL);
        cr_assert(reason && strstr(reason, "all three"), "%s", reason);
}

Test(peer_tls, handshake_with_any_key_of_the_acceptors_keyring) {
        PeerTlsContext *dialling = context_new("dial", SECRET_B "\n");
        PeerTlsContext *accepting = context_new("accept", SECRET_A "\n" SECRET_B "\n");
        PeerTls *d, *a;
        cr_assert_eq(peer_tls_new(dialling, true, &d), 0);
        cr_assert_eq(peer_tls_new(accepting, false, &a), 0);
        cr_assert_eq(handshake(d, a), 0, "%s / %s", peer_tls_error(d), peer_tls_error(a));
        cr_assert(peer_tls_is_established(d) && peer_tls_is_established(a));
        cr_assert_str_eq(peer_tls_describe(d), key_id(SECRET_B));
        cr_assert_str_eq(peer_tls_describe(a), key_id(SECRET_B));

        /* Both ends have the same binding, which is the session's. */
        uint8_t bd[PEER_BINDING_SIZE], ba[PEER_BINDING_SIZE];
        cr_assert_eq(peer_tls_binding(d, bd), 0);
        cr_assert_eq(peer_tls_binding(a, ba), 0);
        cr_assert(memcmp(bd, ba, sizeof(bd)) == 0);

        /* 4 MiB across: each flush encrypts no more than the output cap. */
        Buffer out = {}, in = {};
        size_t total = 4u << 20, rounds = 0;
        for (size_t i = 0; i < total; i++)
                cr_assert_eq(buffer_append(&out, &(char){ (char) (i * 7) }, 1), 0);
        while (buffer_size(&out) > 0 || buffer_size(peer_tls_output(d)) > 0) {
                cr_assert_eq(peer_tls_send(d, &out), 0);
                cr_assert_leq(buffer_size(peer_tls_output(d)), PEER_TLS_OUTPUT_MAX + 65536 + 4096);
                carry(d, a);
                cr_assert_eq(peer_tls_receive(a, &in), 0, "%s", peer_tls_error(a));
                rounds++;
        }
        cr_assert_eq(buffer_size(&in), total);
        cr_assert_gt(rounds, total / (PEER_TLS_OUTPUT_MAX + 65536));
        for (size_t i = 0; i < total; i++)
                cr_assert_eq(in.data[in.start + i], (char) (i * 7));
        buffer_free(&out);
        buffer_free(&in);

        /* The acceptor drops the key: the connection may not go on; the dialler keeps it. */
        file("accept", SECRET_A "\n");
        _cleanup_free_ char *reason = NULL;
        cr_assert_eq(peer_tls_context_reload(accepting, &reason), 0, "%s", reason);
        cr_assert(!peer_tls_trusted(a));
        cr_assert(peer_tls_trusted(d));
        peer_tls_free(d);
        peer_tls_free(a);
        peer_tls_context_free(dialling);
        peer_tls_context_free(accepting);
}

Test(peer_tls, key_outside_the_acceptors_keyring_is_refused) {
        PeerTlsContext *dialling = context_new("dial", SECRET_C "\n" SECRET_A "\n");
        PeerTlsContext *accepting = context_new("accept", SECRET_A "\n" SECRET_B "\n");
        PeerTls *d, *a;
        cr_assert_eq(peer_tls_new(dialling, true, &d), 0);
        cr_assert_eq(peer_tls_new(accepting, false, &a), 0);
        /* The dialler offers its primary only. */
        cr_assert_eq(handshake(d, a), -EKEYREJECTED);
        cr_assert(!peer_tls_is_established(a));
        _cleanup_free_ char *why = NULL;
        cr_assert(asprintf(&why, "its key id %s is not in this node's keyring", key_id(SECRET_C)) >= 0);
        cr_assert_str_eq(peer_tls_error(a), why);
        /* The alert it sent tells the dialler. */
        carry(a, d);
        Buffer plain = {};
        cr_assert_eq(peer_tls_receive(d, &plain), -EKEYREJECTED);
        cr_assert_not_null(peer_tls_error(d));
        peer_tls_free(d);
        peer_tls_free(a);

        /* A reload that fails keeps the keyring. */
        file("accept", "short\n");
        _cleanup_free_ char *reason = NULL;
        cr_assert_eq(peer_tls_context_reload(accepting, &reason), -EINVAL);
        cr_assert_eq(peer_tls_context_n_keys(accepting), 2);
        peer_tls_context_free(dialling);
        peer_tls_context_free(accepting);
}

Test(peer_tls, bytes_that_are_not_tls_are_refused) {
        PeerTlsContext *c = context_new("keyring", SECRET_A "\n");
        PeerTls *a;
        cr_assert_eq(peer_tls_new(c, false, &a), 0);
        /* A HELLO frame in clear: a length, then msgpack. */
        static const char hello[] = "\x2d\x00\x00\x00\x96\xcc\x80\x00\x02";
        cr_assert_eq(buffer_append(peer_tls_input(a), hello, sizeof(hello) - 1), 0);
        Buffer plain = {};
        cr_assert_eq(peer_tls_receive(a, &plain), -EKEYREJECTED);
        cr_assert_str_eq(peer_tls_error(a), "it does not speak TLS 1.3");
        cr_assert_eq(buffer_size(&plain), 0);
        peer_tls_free(a);
        peer_tls_context_free(c);
}

static PeerTlsContext *cert_context(const char *node, const char *ca) {
        char cert[160], key[160], ca_file[160];
        snprintf(cert, sizeof(cert), "%s/%s.pem", dir, node);
        snprintf(key, sizeof(key), "%s/%s.key", dir, node);
        snprintf(ca_file, sizeof(ca_file), "%s/%s.pem", dir, ca);
        PeerTlsContext *c = NULL;
        _cleanup_free_ char *reason = NULL;
        int r = peer_tls_context_new(
                &(PeerTlsConfig){ .cert_file = cert, .key_file = key, .ca_file = ca_file }, &c, &reason);
        cr_assert_eq(r, 0, "%s", reason);
        cr_assert(peer_tls_context_uses_certificates(c));
        return c;
}

Test(peer_tls, certificates_of_one_ca_and_not_of_another) {
        _cleanup_free_ char *cmd = NULL;
        cr_assert(
                asprintf(
                        &cmd,
                        "set -e; cd %s; exec >openssl.log 2>&1\n"
                        "key() { k=$1; shift; openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                        "-keyout $k.key \"$@\"; }\n"
                        "key ca1 -x509 -out ca1.pem -subj /CN=ca1 -days 2\n"
                        "key ca2 -x509 -out ca2.pem -subj /CN=ca2 -days 2\n"
                        "for n in a:ca1 b:ca1 c:ca2; do\n"
                        "  key ${n%%:*} -out ${n%%:*}.csr -subj /CN=${n%%:*}\n"
                        "  openssl x509 -req -in ${n%%:*}.csr -CA ${n#*:}.pem -CAkey ${n#*:}.key -CAcreateserial "
                        "-out ${n%%:*}.pem -days 2\n"
                        "done\n",
                        dir) >= 0);
        cr_assert_eq(system(cmd), 0, "openssl failed: see %s/openssl.log", dir);

        PeerTlsContext *ca = cert_context("a", "ca1"), *cb = cert_context("b", "ca1"),
                       *cc = cert_context("c", "ca2");
        PeerTls *d, *a;
        cr_assert_eq(peer_tls_new(ca, true, &d), 0);
        cr_assert_eq(peer_tls_new(cb, false, &a), 0);
        cr_assert_eq(handshake(d, a), 0, "%s / %s", peer_tls_error(d), peer_tls_error(a));
        cr_assert_str_eq(peer_tls_describe(d), "/CN=b");
        cr_assert_str_eq(peer_tls_describe(a), "/CN=a");
        cr_assert(peer_tls_trusted(d) && peer_tls_trusted(a));
        peer_tls_free(d);
        peer_tls_free(a);

        /* Another CA's, either side. */
        for (unsigned i = 0; i < 2; i++) {
                cr_assert_eq(peer_tls_new(i == 0 ? cc : ca, true, &d), 0);
                cr_assert_eq(peer_tls_new(i == 0 ? cb : cc, false, &a), 0);
                cr_assert_eq(handshake(d, a), -EKEYREJECTED);
                cr_assert(!peer_tls_is_established(d) || !peer_tls_is_established(a));
                peer_tls_free(d);
                peer_tls_free(a);
        }

        /* A certificate that the CA it is given did not sign is refused at once. */
        PeerTlsContext *c = NULL;
        _cleanup_free_ char *reason = NULL;
        char cert[160], key[160], ca_file[160];
        snprintf(cert, sizeof(cert), "%s/c.pem", dir);
        snprintf(key, sizeof(key), "%s/c.key", dir);
        snprintf(ca_file, sizeof(ca_file), "%s/ca1.pem", dir);
        cr_assert_eq(peer_tls_context_new(
                             &(PeerTlsConfig){ .cert_file = cert, .key_file = key, .ca_file = ca_file }, &c,
                             &reason),
                     -EINVAL);
        cr_assert(reason && strstr(reason, "does not verify against the CA"), "%s", reason);
        peer_tls_context_free(ca);
        peer_tls_context_free(cb);
        peer_tls_context_free(cc);
}
