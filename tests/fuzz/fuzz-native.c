/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libFuzzer target that drives a real node manager (nodemgr/core/manager.c, native.c, get-request.c,
 * objstore.c, actor.c, tasks.c ...) with sequences of native requests, as clients on the native
 * socket would: each input opens up to FUZZ_CONNS_MAX connections (conn_new() on socketpairs, as
 * on_accept() makes them), sends its records (fuzz-input.h) to them, running the event loop until
 * idle after each, then closes them all.
 *
 * One manager serves every input (started in LLVMFuzzerInitialize()). Creating a worker fails at
 * once (fuzz-manager.h), so CreateActor and SubmitTask go through parsing, options, module
 * resolution, limits and resources and then fail; Put, Get, Wait, Release and GetActor need no
 * worker.
 *
 * Checks besides sanitizers: every frame the manager sends parses and is a WELCOME or a REPLY;
 * once the input's connections are closed, nothing is left of them: no connection, object, actor,
 * task, worker, and every CPU and GPU is free.
 *
 * Built by tests/fuzz/run.sh with clang -fsanitize=fuzzer,address,undefined.
 */

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-input.h"
#include "conn.h"
#include "fuzz-manager.h"
#include "macro.h"
#include "proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Manager *manager;
static bool verbose;

typedef struct Client {
        int fd;         /* ours; -1 once closed */
        bool paused;    /* not reading */
        Buffer in;
        Frame frame;
} Client;

typedef struct Session {
        Client clients[FUZZ_CONNS_MAX];
        size_t n;
} Session;

static void manager_done(void) {
        manager = manager_free(manager);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        ManagerConfig config;

        fuzz_fixture_setup();
        verbose = getenv("FUZZ_VERBOSE") && streq(getenv("FUZZ_VERBOSE"), "1");
        fuzz_fixture_config(&config);
        manager = fuzz_manager_new(&config);
        /* Before the fixture's teardown (atexit runs in reverse). */
        atexit(manager_done);
        return 0;
}

/* Each frame the manager sends a client must parse and be one a client may get. */
static void client_check_frame(Frame *f, void *userdata) {
        CHECK(f->type == MSG_WELCOME || f->type == MSG_REPLY);
        if (verbose && f->type == MSG_REPLY) {
                uint64_t code = 0;
                const char *msg = NULL;
                size_t msg_len = 0;
                (void) frame_field_u64(f, 0, &code);
                (void) frame_field_str(f, 1, &msg, &msg_len);
                fprintf(stderr, "fuzz-native: reply %" PRIu64 ": %" PRIu64 " %.*s\n", f->id, code, (int) msg_len,
                        msg ?: "");
        }
}

static void client_read(Client *c) {
        fuzz_read_frames(c->fd, &c->in, &c->frame, SIZE_MAX, client_check_frame, c);
}

static void session_drain(void *userdata) {
        Session *s = userdata;
        for (size_t i = 0; i < s->n; i++)
                if (s->clients[i].fd >= 0 && !s->clients[i].paused)
                        client_read(&s->clients[i]);
}

static void client_close(Client *c) {
        c->fd = safe_close(c->fd);
}

/* What must hold once every connection of the input is gone. */
static void check_idle(Manager *m) {
        CHECK(!LIST_FIRST(&m->conns));
        CHECK(!LIST_FIRST(&m->dirty_conns));
        CHECK(m->store.n_objects == 0);
        CHECK(m->store.bytes == 0);
        CHECK(HASH_COUNT(m->actors) == 0);
        CHECK(HASH_COUNT(m->actors_by_name) == 0);
        CHECK(m->n_actors_live == 0);
        CHECK(m->n_workers == 0 && !LIST_FIRST(&m->workers));
        CHECK(m->n_task_workers == 0);
        CHECK(!callqueue_pop_any(&m->tasks));
        CHECK(m->resources.cpus_used == 0);
        CHECK(resources_free_gpus(&m->resources) == m->resources.n_gpus);
        CHECK(m->lineage_bytes == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Manager *m = manager;
        Session s = {};

        if (size < 1)
                return 0;
        /* Every input starts from the same numbering: connection k makes ids with prefix k, and the
         * manager's own ids count from 1 (nothing of the last input is left to collide). */
        m->next_conn = 0;
        m->next_local = 0;

        s.n = (size_t) (data[0] & 3) + 1;
        for (size_t i = 0; i < s.n; i++) {
                Client *c = &s.clients[i];
                int sv[2];
                Conn *conn;

                frame_init(&c->frame);
                CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) >= 0);
                CHECK(conn_new(m, sv[0], NULL, &conn) >= 0);
                /* As on_accept() fills them in: root, or an outsider. */
                conn->uid = (i == 1 && (data[0] & FUZZ_SETUP_OUTSIDER)) ? 65534 : 0;
                conn->pid = getpid();
                c->fd = sv[1];
        }

        for (size_t off = 1; off + 3 <= size;) {
                uint8_t h = data[off];
                size_t len = (size_t) data[off + 1] | (size_t) data[off + 2] << 8;
                off += 3;
                if (len > size - off)
                        len = size - off;
                const uint8_t *payload = data + off;
                off += len;

                Client *c = &s.clients[FUZZ_REC_CONN(h) % s.n];
                if (c->fd < 0)
                        continue;
                switch (FUZZ_REC_KIND(h)) {
                case FUZZ_REC_FRAME: {
                        uint8_t prefix[PROTO_HEADER_SIZE] = { len & 0xff, (len >> 8) & 0xff, 0, 0 };
                        if (fuzz_write_all(m, c->fd, prefix, sizeof(prefix), session_drain, &s) < 0 ||
                            fuzz_write_all(m, c->fd, payload, len, session_drain, &s) < 0)
                                client_close(c);
                        break;
                }
                case FUZZ_REC_RAW:
                        if (fuzz_write_all(m, c->fd, payload, len, session_drain, &s) < 0)
                                client_close(c);
                        break;
                case FUZZ_REC_CLOSE:
                        client_close(c);
                        break;
                case FUZZ_REC_PAUSE:
                        c->paused = true;
                        break;
                }
                (void) fuzz_manager_pump(m, 256, session_drain, &s);
        }

        for (size_t i = 0; i < s.n; i++)
                client_close(&s.clients[i]);
        /* Each connection sees its end of stream and goes. */
        for (unsigned i = 0; i < 64 && LIST_FIRST(&m->conns); i++)
                (void) fuzz_manager_pump(m, 256, NULL, NULL);
        check_idle(m);

        for (size_t i = 0; i < s.n; i++) {
                buffer_free(&s.clients[i].in);
                frame_done(&s.clients[i].frame);
        }
        return 0;
}
