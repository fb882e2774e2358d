/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * An actor's stdout and stderr under systemd (docs/logging.md): every line the actor writes is a
 * journal entry with SYSLOG_IDENTIFIER=kactor-actor-ID and KACTOR_ACTOR_ID=ID. A journal stream (what
 * sd_journal_stream_fd() opens) carries an identifier and nothing else, so fds 1 and 2 are pipes
 * instead, and a thread of the worker reads them and sends each line with sd_journal_sendv(). The
 * sender is the worker itself, after it became the actor's user, so
 * the trusted fields journald adds are the actor's: _PID (the process, not the thread), _UID and its
 * scope. A thread, not a forwarder process: journald takes _PID from the sender's credentials, and a
 * thread moves with the worker into the actor's cgroup.
 *
 * The pipes are read until the worker exits: exit() (or a return from main) sends what they hold
 * and the partial lines before the process ends, and so does a crash, abort() or SIGTERM where
 * nothing else handles it (a line right before a crash is the one that matters most, and the thread
 * would lose the race against the process's end). What a worker wrote just before it was killed
 * (SIGKILL, the OOM killer) or called _exit() may be lost. Processes the worker forks write into the
 * same pipes: their lines are sent while the worker lives, with the worker's _PID.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "macro.h"
#include "worker-journal.h"

#define JOURNAL_NATIVE_SOCKET "/run/systemd/journal/socket"

/* A longer line is sent as several entries, split where journald splits a stream's lines (its
 * LineMax= default), the parts after the first at the first's priority. */
#define WORKER_JOURNAL_LINE_MAX (48 * 1024)

/* How long a worker dying of a signal waits for the thread to send what the pipes hold: long enough
 * for journald to take it, short enough that a busy journald does not hold up the death. */
#define WORKER_JOURNAL_FATAL_DRAIN_MSEC 1000

/* The pipes, indexed as the fds they stand for are numbered less one. */
enum {
        JOURNAL_STDOUT = STDOUT_FILENO - 1,
        JOURNAL_STDERR = STDERR_FILENO - 1,
        _JOURNAL_PIPES_MAX,
};

typedef struct JournalPipe {
        /* The read end, non-blocking; -1 once every writer has closed it. */
        int fd;
        /* A line's priority without a "<N>" prefix, as a digit: '6' for stdout, '3' for stderr. */
        char priority;
        /* Of a line split at WORKER_JOURNAL_LINE_MAX: its first part's; 0 at a line's start. */
        char line_priority;
        /* The line so far. */
        char *buf;
        size_t len;
} JournalPipe;

typedef struct JournalForwarder {
        /* The worker's: a process it forks inherits the pipes' write ends, not the thread. */
        pid_t pid;
        pthread_t thread;
        /* The thread's, once it runs. */
        atomic_int tid;
        /* The stdout and stderr the worker came with (the node manager's). */
        int saved_fds[_JOURNAL_PIPES_MAX];
        /* eventfds: send what the pipes hold, partial lines too; the thread did. */
        int drain_fd, drained_fd;
        /* After the drain, the thread returns. */
        atomic_bool stopping;
        char *identifier_field, *actor_id_field;
        JournalPipe pipes[_JOURNAL_PIPES_MAX];
        /* "MESSAGE=" and a line: sd_journal_sendv() takes each field whole (made once: the thread
         * allocates nothing per line). */
        char message[STRLEN("MESSAGE=") + WORKER_JOURNAL_LINE_MAX];
} JournalForwarder;

/* The worker's forwarder, for the exit handler and the fatal signals' handler. */
static JournalForwarder *forwarder;

/* A crash, abort(), and SIGTERM, which the node manager (to a worker that did not re-attach) and
 * systemd (stopping the actor's scope) end a worker with. */
static const int fatal_signals[] = { SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTERM };

static JournalForwarder *journal_forwarder_free(JournalForwarder *f) {
        if (!f)
                return NULL;
        safe_close(f->drain_fd);
        safe_close(f->drained_fd);
        for (size_t i = 0; i < ELEMENTSOF(f->pipes); i++) {
                safe_close(f->pipes[i].fd);
                free(f->pipes[i].buf);
                safe_close(f->saved_fds[i]);
        }
        free(f->identifier_field);
        free(f->actor_id_field);
        free(f);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(JournalForwarder *, journal_forwarder_free);

/* Writes all of iov to fd, or as much as it takes. */
static void journal_write_all(int fd, struct iovec *iov, int n) {
        while (n > 0) {
                ssize_t k = writev(fd, iov, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                for (; n > 0 && (size_t) k >= iov->iov_len; iov++, n--)
                        k -= (ssize_t) iov->iov_len;
                if (n > 0) {
                        iov->iov_base = (char *) iov->iov_base + k;
                        iov->iov_len -= (size_t) k;
                }
        }
}

/* One entry, sent by libsystemd as this process (the actor's user, pid and scope). The thread reuses
 * its one message buffer: a worker dying of a signal while it holds malloc's lock still has its lines
 * sent, unless the journal client itself needs memory then (the signal handler waits 1 s at most). */
static void journal_forwarder_send(JournalForwarder *f, char priority, const char *text, size_t len) {
        char priority_field[] = "PRIORITY=?";
        priority_field[STRLEN("PRIORITY=")] = priority;
        memcpy(f->message + STRLEN("MESSAGE="), text, len);
        struct iovec iov[] = {
                { .iov_base = f->identifier_field, .iov_len = strlen(f->identifier_field) },
                { .iov_base = f->actor_id_field, .iov_len = strlen(f->actor_id_field) },
                { .iov_base = priority_field, .iov_len = strlen(priority_field) },
                { .iov_base = f->message, .iov_len = STRLEN("MESSAGE=") + len },
        };
        if (sd_journal_sendv(iov, ELEMENTSOF(iov)) >= 0)
                return;
        /* journald did not take it (its socket is gone, or the entry is larger than the socket takes):
         * the stream the worker came with, the node manager's, with the priority as a prefix. */
        char prefix[] = "<?>";
        prefix[1] = priority;
        struct iovec line[] = {
                { .iov_base = prefix, .iov_len = strlen(prefix) },
                { .iov_base = (char *) text, .iov_len = len },
                { .iov_base = (char *) "\n", .iov_len = 1 },
        };
        journal_write_all(f->saved_fds[JOURNAL_STDERR], line, ELEMENTSOF(line));
}

/* Sends a line, or a part of one when end_of_line is false. A line's priority is its pipe's unless
 * it begins with sd-daemon.h's "<N>" prefix (N from 0 to 7), which is then not part of the text. */
static void journal_pipe_send(JournalForwarder *f, JournalPipe *p, const char *text, size_t len,
                              bool end_of_line) {
        char priority = p->line_priority;
        if (!priority) {
                priority = p->priority;
                if (len >= 3 && text[0] == '<' && text[1] >= '0' && text[1] <= '7' && text[2] == '>') {
                        priority = text[1];
                        text += 3;
                        len -= 3;
                }
        }
        journal_forwarder_send(f, priority, text, len);
        p->line_priority = end_of_line ? 0 : priority;
}

/* The n bytes just read onto the end of the buffer: sends the lines they end, and the buffer when it
 * is full with no line's end in it. */
static void journal_pipe_take(JournalForwarder *f, JournalPipe *p, size_t n) {
        size_t start = 0, scan = p->len, end = p->len + n;

        for (char *nl; (nl = memchr(p->buf + scan, '\n', end - scan));) {
                size_t at = (size_t) (nl - p->buf);
                journal_pipe_send(f, p, p->buf + start, at - start, true);
                start = scan = at + 1;
        }
        p->len = end - start;
        if (start > 0 && p->len > 0)
                memmove(p->buf, p->buf + start, p->len);
        if (p->len == WORKER_JOURNAL_LINE_MAX) {
                journal_pipe_send(f, p, p->buf, p->len, false);
                p->len = 0;
        }
}

/* Sends a partial line as a line of its own: at the end of the pipe, or of the worker. */
static void journal_pipe_flush(JournalForwarder *f, JournalPipe *p) {
        if (p->len > 0)
                journal_pipe_send(f, p, p->buf, p->len, true);
        p->len = 0;
        p->line_priority = 0;
}

/* Reads up to max bytes of what the pipe holds (it is non-blocking) and sends the lines they end.
 * Returns the bytes read, 0 when the pipe is empty or at its end. */
static size_t journal_pipe_read(JournalForwarder *f, JournalPipe *p, size_t max) {
        size_t total = 0;

        while (p->fd >= 0 && total < max) {
                ssize_t n = read(p->fd, p->buf + p->len, MIN(max - total, WORKER_JOURNAL_LINE_MAX - p->len));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        /* No writer is left: the worker's fds were pointed elsewhere at its exit and no
                         * process it forked has them any more. */
                        journal_pipe_flush(f, p);
                        p->fd = safe_close(p->fd);
                        break;
                }
                journal_pipe_take(f, p, (size_t) n);
                total += (size_t) n;
        }
        return total;
}

/* Sends what the pipe holds now, the partial line too; not what comes after (a process the worker
 * forked may go on writing: the worker's exit does not wait for it). */
static void journal_pipe_drain(JournalForwarder *f, JournalPipe *p) {
        int avail = 0;

        if (p->fd >= 0 && ioctl(p->fd, FIONREAD, &avail) >= 0 && avail > 0)
                (void) journal_pipe_read(f, p, (size_t) avail);
        journal_pipe_flush(f, p);
}

static void *journal_forwarder_run(void *userdata) {
        JournalForwarder *f = userdata;

        atomic_store(&f->tid, gettid());
        for (;;) {
                struct pollfd pfd[] = {
                        { .fd = f->pipes[JOURNAL_STDOUT].fd, .events = POLLIN },
                        { .fd = f->pipes[JOURNAL_STDERR].fd, .events = POLLIN },
                        { .fd = f->drain_fd, .events = POLLIN },
                };
                if (poll(pfd, ELEMENTSOF(pfd), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return NULL;
                }
                for (size_t i = 0; i < ELEMENTSOF(f->pipes); i++)
                        if (pfd[i].revents)
                                (void) journal_pipe_read(f, &f->pipes[i], WORKER_JOURNAL_LINE_MAX);
                if (pfd[2].revents) {
                        eventfd_t v;
                        (void) eventfd_read(f->drain_fd, &v);
                        for (size_t i = 0; i < ELEMENTSOF(f->pipes); i++)
                                journal_pipe_drain(f, &f->pipes[i]);
                        (void) eventfd_write(f->drained_fd, 1);
                        if (atomic_load(&f->stopping))
                                return NULL;
                }
        }
}

/* At exit: sends what the pipes hold, and stops the thread. */
static void journal_forwarder_stop(void) {
        JournalForwarder *f = forwarder;

        /* A process the worker forked exits: its lines are in the pipes, for the worker's thread. */
        if (!f || getpid() != f->pid)
                return;
        /* A fatal signal from here on finds no forwarder to wait for. */
        forwarder = NULL;
        (void) fflush(stdout);
        (void) fflush(stderr);
        /* What is written after this (destructors that run later in the exit, stdio's last flush)
         * goes where the worker's output went before: no one reads the pipes once the thread ends. */
        (void) dup2(f->saved_fds[JOURNAL_STDOUT], STDOUT_FILENO);
        (void) dup2(f->saved_fds[JOURNAL_STDERR], STDERR_FILENO);
        atomic_store(&f->stopping, true);
        (void) eventfd_write(f->drain_fd, 1);
        (void) pthread_join(f->thread, NULL);
        journal_forwarder_free(f);
}

/* A fatal signal: has the thread send what the pipes hold (only system calls here, which are safe in
 * a signal handler), then the signal's default action, as without this handler. */
static void journal_forwarder_on_fatal_signal(int sig, siginfo_t *si, void *ucontext) {
        JournalForwarder *f = forwarder;
        int saved_errno = errno;

        if (f && getpid() == f->pid && gettid() != atomic_load(&f->tid)) {
                struct pollfd pfd = { .fd = f->drained_fd, .events = POLLIN };
                (void) eventfd_write(f->drain_fd, 1);
                (void) poll(&pfd, 1, WORKER_JOURNAL_FATAL_DRAIN_MSEC);
        }
        /* SA_RESETHAND made the action the default again: a fault recurs as the instruction is run
         * again; a signal that was sent (kill(), abort()) is sent anew. */
        if (si->si_code <= 0)
                (void) raise(sig);
        errno = saved_errno;
}

/* Only where nothing handles the signal yet (a sanitizer does, in its builds); a handler a module
 * installs replaces this one. */
static void journal_forwarder_catch_fatal_signals(void) {
        struct sigaction sa = {
                .sa_sigaction = journal_forwarder_on_fatal_signal,
                .sa_flags = SA_SIGINFO | SA_RESETHAND,
        };
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ELEMENTSOF(fatal_signals); i++) {
                struct sigaction old;
                if (sigaction(fatal_signals[i], NULL, &old) >= 0 && !(old.sa_flags & SA_SIGINFO) &&
                    old.sa_handler == SIG_DFL)
                        (void) sigaction(fatal_signals[i], &sa, NULL);
        }
}

int worker_journal_start(const char *actor_id) {
        _cleanup_(journal_forwarder_freep) JournalForwarder *f = NULL;
        int write_fds[_JOURNAL_PIPES_MAX] = { -1, -1 }, r;

        if (forwarder)
                return -EALREADY;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        *f = (JournalForwarder) {
                .pid = getpid(),
                .saved_fds = { -1, -1 },
                .drain_fd = -1,
                .drained_fd = -1,
                .pipes = {
                        [JOURNAL_STDOUT] = { .fd = -1, .priority = '6' },
                        [JOURNAL_STDERR] = { .fd = -1, .priority = '3' },
                },
        };
        memcpy(f->message, "MESSAGE=", STRLEN("MESSAGE="));
        if (asprintf(&f->identifier_field, "SYSLOG_IDENTIFIER=kactor-actor-%s", actor_id) < 0) {
                f->identifier_field = NULL;
                return -ENOMEM;
        }
        if (asprintf(&f->actor_id_field, "KACTOR_ACTOR_ID=%s", actor_id) < 0) {
                f->actor_id_field = NULL;
                return -ENOMEM;
        }

        /* Whether journald is there, and takes this user's entries, before stdio changes. */
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (probe < 0)
                return -errno;
        struct sockaddr_un address = { .sun_family = AF_UNIX, .sun_path = JOURNAL_NATIVE_SOCKET };
        if (connect(probe, (struct sockaddr *) &address,
                    (socklen_t) (offsetof(struct sockaddr_un, sun_path) + sizeof(JOURNAL_NATIVE_SOCKET))) < 0)
                return -errno;

        f->drain_fd = eventfd(0, EFD_CLOEXEC);
        f->drained_fd = eventfd(0, EFD_CLOEXEC);
        if (f->drain_fd < 0 || f->drained_fd < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(f->pipes); i++) {
                int fds[2];
                if (pipe2(fds, O_CLOEXEC) < 0) {
                        r = -errno;
                        safe_close(write_fds[0]);
                        return r;
                }
                f->pipes[i].fd = fds[0];
                write_fds[i] = fds[1];
                f->pipes[i].buf = malloc(WORKER_JOURNAL_LINE_MAX);
                f->saved_fds[i] = fcntl((int) i + 1, F_DUPFD_CLOEXEC, 3);
                if (!f->pipes[i].buf || f->saved_fds[i] < 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
                        r = f->pipes[i].buf ? -errno : -ENOMEM;
                        safe_close(write_fds[0]);
                        safe_close(write_fds[1]);
                        return r;
                }
        }

        (void) fflush(stdout);
        (void) fflush(stderr);
        r = 0;
        if (dup2(write_fds[JOURNAL_STDOUT], STDOUT_FILENO) < 0 ||
            dup2(write_fds[JOURNAL_STDERR], STDERR_FILENO) < 0)
                r = -errno;
        safe_close(write_fds[0]);
        safe_close(write_fds[1]);
        if (r >= 0) {
                /* Signals are the worker's main thread's to take, as they were before. */
                sigset_t all, old;
                sigfillset(&all);
                (void) pthread_sigmask(SIG_SETMASK, &all, &old);
                r = -pthread_create(&f->thread, NULL, journal_forwarder_run, f);
                (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        if (r < 0) {
                (void) dup2(f->saved_fds[JOURNAL_STDOUT], STDOUT_FILENO);
                (void) dup2(f->saved_fds[JOURNAL_STDERR], STDERR_FILENO);
                return r;
        }
        (void) pthread_setname_np(f->thread, "kactor-journal");

        /* Line by line, as a terminal would show it, not in 4 KiB blocks at exit. */
        (void) setvbuf(stdout, NULL, _IOLBF, 0);
        /* stderr is a pipe now, not the node manager's stream that this names: code that writes to the
         * journal itself when its stderr is a stream writes lines to stderr instead, and they are sent
         * with this actor's fields. */
        (void) unsetenv("JOURNAL_STREAM");

        forwarder = TAKE_PTR(f);
        (void) atexit(journal_forwarder_stop);
        journal_forwarder_catch_fatal_signals();
        return 0;
}
