/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The fork server (see lib/worker/worker.c): workers are forked by a small kactor-worker process instead
 * of being exec'd by the node manager. An exec costs the dynamic loader's work and a copy and
 * close of the node manager's file table, which holds two fds per worker; a fork of the fork server
 * costs neither. Its children are made the node manager's own (CLONE_PARENT), so they are watched
 * and reaped as before. Without a fork server (it could not start, or died), workers are spawned
 * directly.
 */

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "log.h"
#include "macro.h"
#include "manager.h"
#include "worker-spawn.h"
#include "zygote.h"

/* A fork takes well under this; past it the fork server is taken for dead. */
#define ZYGOTE_REPLY_TIMEOUT_MSEC 5000

extern char **environ;

static int on_zygote_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Manager *m = userdata;

        if (!m->stopping)
                log_warning("The fork server (PID %d) exited; workers are spawned directly from now on.",
                            (int) m->zygote_pid);
        m->zygote_pid = 0;
        m->zygote_fd = safe_close(m->zygote_fd);
        m->zygote_source = sd_event_source_disable_unref(m->zygote_source);
        manager_maybe_exit(m);
        return 0;
}

int zygote_start(Manager *m) {
        _cleanup_close_ int fd_child = -1;
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        m->zygote_fd = sv[0];
        fd_child = sv[1];

        size_t n = 0;
        while (environ[n])
                n++;
        char **env = calloc(n + 2, sizeof(char *));
        if (!env)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0 && strncmp(environ[i], "LISTEN_", 7) != 0)
                        env[k++] = environ[i];
        env[k++] = (char *) "KACTOR_ZYGOTE_FD=3";

        r = worker_spawn_process(m->worker_path, env, fd_child, &pid);
        free(env);
        if (r < 0) {
                m->zygote_fd = safe_close(m->zygote_fd);
                return r;
        }
        m->zygote_pid = pid;
        r = sd_event_add_child(m->event, &m->zygote_source, pid, WEXITED, on_zygote_exit, m);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                m->zygote_pid = 0;
                m->zygote_fd = safe_close(m->zygote_fd);
                return r;
        }
        (void) sd_event_source_set_description(m->zygote_source, "fork-server");
        return 0;
}

void zygote_stop(Manager *m) {
        /* It ends when its socket closes; its exit is reaped by on_zygote_exit(). */
        m->zygote_fd = safe_close(m->zygote_fd);
}

int zygote_spawn(Manager *m, char *const *env, int fd, pid_t *ret_pid) {
        if (m->zygote_fd < 0)
                return -ENOTCONN;

        /* The environment, NUL-terminated strings back to back. */
        size_t len = 0;
        for (char *const *e = env; *e; e++)
                len += strlen(*e) + 1;
        _cleanup_free_ char *buf = malloc(len ?: 1);
        if (!buf)
                return -ENOMEM;
        char *p = buf;
        for (char *const *e = env; *e; e++)
                p = stpcpy(p, *e) + 1;

        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));

        if (sendmsg(m->zygote_fd, &mh, MSG_NOSIGNAL) < 0)
                goto broken;

        struct pollfd pfd = { .fd = m->zygote_fd, .events = POLLIN };
        int k = poll(&pfd, 1, ZYGOTE_REPLY_TIMEOUT_MSEC);
        if (k <= 0)
                goto broken;
        int result;
        ssize_t n = recv(m->zygote_fd, &result, sizeof(result), 0);
        if (n != (ssize_t) sizeof(result))
                goto broken;
        if (result < 0)
                return result;
        *ret_pid = result;
        return 0;

broken:
        /* Whatever happened, it is not usable: spawn directly from now on. */
        log_warning("The fork server does not answer; spawning workers directly from now on.");
        if (m->zygote_pid > 0)
                (void) kill(m->zygote_pid, SIGKILL);
        zygote_stop(m);
        return -ENOTCONN;
}
