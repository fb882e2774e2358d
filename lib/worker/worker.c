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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "worker-privileges.h"
#include "worker-runtime.h"

#define ZYGOTE_REQUEST_MAX (128 * 1024)

#define JOURNAL_STDOUT_SOCKET "/run/systemd/journal/stdout"

extern char **environ;

/*
 * An actor's stdout and stderr, when the node manager runs under systemd: a journal stream of the
 * actor's own, with $KACTOR_WORKER_JOURNAL (kactor-actor-ID) as its SYSLOG_IDENTIFIER. The worker
 * opens it itself, after it became the actor's user, so that the journal's trusted fields are the
 * actor's (_PID, _UID, and _SYSTEMD_UNIT: its scope under the systemd backend), not the node
 * manager's: a stream the node manager opened would carry _UID=0 for whatever the actor writes.
 * The protocol is sd_journal_stream_fd()'s: a header of lines (identifier, unit, priority, level
 * prefix, forward to syslog, kmsg, console), then the text. Without the journal, stdio stays as it
 * came (the node manager's).
 */
static void worker_journal_stream(void) {
        const char *ident = getenv("KACTOR_WORKER_JOURNAL");
        if (!ident)
                return;
        char *id = strdup(ident);
        (void) unsetenv("KACTOR_WORKER_JOURNAL");
        if (!id || !*id || strchr(id, '\n')) {
                free(id);
                return;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = JOURNAL_STDOUT_SOCKET };
        char *header = NULL;
        /* Info by default; a line may say its own priority with a "<N>" prefix (sd-daemon.h). */
        int n = asprintf(&header, "%s\n\n%d\n1\n0\n0\n0\n", id, LOG_INFO);
        free(id);
        if (fd < 0 || n < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || shutdown(fd, SHUT_RD) < 0 ||
            send(fd, header, (size_t) n, MSG_NOSIGNAL) != n) {
                free(header);
                if (fd >= 0)
                        close(fd);
                return;
        }
        free(header);
        fflush(stdout);
        fflush(stderr);
        if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
                close(fd);
                return;
        }
        close(fd);
        /* Line by line, as a terminal would show it, not in 4 KiB blocks at exit. */
        (void) setvbuf(stdout, NULL, _IOLBF, 0);
        /* So that code that logs to the journal when stderr is connected to it sees that it is. */
        struct stat st;
        char buf[64];
        if (fstat(STDERR_FILENO, &st) >= 0) {
                snprintf(buf, sizeof(buf), "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
                (void) setenv("JOURNAL_STREAM", buf, 1);
        }
}

static int worker_run(int argc, char *argv[]) {
        /* Become the actor's user, without capabilities, before anything from outside is read. */
        int r = privileges_drop_worker_from_env();
        if (r < 0) {
                fprintf(stderr, "kactor-worker: cannot drop privileges: %s\n", strerror(-r));
                return 1;
        }
        worker_journal_stream();
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
