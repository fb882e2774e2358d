/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactor-worker: one process per actor (and the task pool's workers), started by kactor-nodemgr
 * with its end of a socketpair as fd 3. The runtime is in libkactor (lib/worker/worker-runtime.c).
 *
 * Started with $KACTOR_ZYGOTE_FD, it is instead the node manager's fork server: it waits for spawn
 * requests (an environment, and a socket passed as SCM_RIGHTS) and forks a worker for each, made a
 * child of the node manager with CLONE_PARENT. A fork of this small, already linked process costs
 * a fraction of an exec of kactor-worker from the node manager, whose file table grows with every
 * actor.
 */

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "worker-journal.h"
#include "worker-privileges.h"
#include "worker-runtime.h"

#define ZYGOTE_REQUEST_MAX (128 * 1024)

extern char **environ;

/*
 * An actor's stdout and stderr, when the node manager runs under systemd: every line a journal entry
 * with the actor's fields, sent by a thread of this process (worker-journal.c) from after it became
 * the actor's user, so that the journal's trusted fields are the actor's (_PID, _UID, and _SYSTEMD_UNIT:
 * its scope under the systemd backend), not the node manager's. $KACTOR_WORKER_JOURNAL names the actor.
 * Without it, or when the journal cannot be reached, stdio stays as it came (the node manager's).
 */
static void worker_journal(void) {
        const char *e = getenv("KACTOR_WORKER_JOURNAL");
        if (!e)
                return;
        /* The id goes into fields as it is: nothing in it may end one. */
        char *id = strndup(e, 64);
        (void) unsetenv("KACTOR_WORKER_JOURNAL");
        if (id && *id && strspn(id, "0123456789abcdefABCDEF") == strlen(id))
                (void) worker_journal_start(id);
        free(id);
}

static int worker_run(int argc, char *argv[]) {
        /* Become the actor's user, without capabilities, before anything from outside is read. */
        int r = privileges_drop_worker_from_env();
        if (r < 0) {
                fprintf(stderr, "kactor-worker: cannot drop privileges: %s\n", strerror(-r));
                return 1;
        }
        worker_journal();
        return kactor_worker_main(argc, argv);
}

/* The request's environment: NUL-terminated strings back to back. */
static char **zygote_environment(char *buf, size_t len) {
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                n += buf[i] == 0;
        char **env = calloc(n + 1, sizeof(char *));
        if (!env)
                return NULL;
        for (size_t i = 0, k = 0; i < len && k < n; k++) {
                env[k] = buf + i;
                i += strlen(buf + i) + 1;
        }
        return env;
}

static void zygote_child(int sock, int fd, char **env) {
        sigset_t none;

        close(sock);
        if (fd != 3) {
                if (dup2(fd, 3) < 0)
                        _exit(1);
                close(fd);
        } else {
                /* The fd came with O_CLOEXEC: keep it across nothing, but clear the flag anyway. */
                int flags = fcntl(3, F_GETFD);
                if (flags >= 0)
                        (void) fcntl(3, F_SETFD, flags & ~FD_CLOEXEC);
        }
        environ = env;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = { (char *) "kactor-worker", NULL };
        exit(worker_run(1, argv));
}

static int zygote_main(int sock) {
        char *buf = malloc(ZYGOTE_REQUEST_MAX);
        if (!buf)
                return 1;

        for (;;) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control = {};
                struct iovec iov = { .iov_base = buf, .iov_len = ZYGOTE_REQUEST_MAX - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof(control) };

                ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* the node manager is gone */
                buf[n] = 0;

                int fd = -1;
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                    c->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(&fd, CMSG_DATA(c), sizeof(int));

                int result;
                char **env = fd >= 0 ? zygote_environment(buf, (size_t) n) : NULL;
                if (!env)
                        result = fd < 0 ? -EBADMSG : -ENOMEM;
                else {
                        /* A sibling of ours: the node manager's own child, which it reaps. */
                        pid_t pid = (pid_t) syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
                        if (pid == 0)
                                zygote_child(sock, fd, env);
                        result = pid < 0 ? -errno : pid;
                }
                free(env);
                if (fd >= 0)
                        close(fd);
                if (send(sock, &result, sizeof(result), MSG_NOSIGNAL) < 0)
                        break;
        }
        free(buf);
        return 0;
}

int main(int argc, char *argv[]) {
        const char *z = getenv("KACTOR_ZYGOTE_FD");
        if (z) {
                int sock = atoi(z);
                unsetenv("KACTOR_ZYGOTE_FD");
                return zygote_main(sock);
        }
        return worker_run(argc, argv);
}
