/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration test fixture (see harness.h). Children are forked and exec'd with
 * PR_SET_PDEATHSIG=SIGKILL, so a test process that crashes takes its daemons with it; the test
 * process is a child subreaper, so workers a node manager leaves behind come back to it and are
 * found (and reported) at stop.
 */

#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus-value.h"
#include "harness.h"
#include "macro.h"

extern char **environ;

#define STOP_TIMEOUT_MS 10000u
#define BUSCTL_TIMEOUT_MS 30000u
#define LOG_TAIL_MAX 6000

/* --- small utilities ------------------------------------------------------------------------- */

int64_t harness_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now_ms(void) {
        return (uint64_t) harness_now_ms();
}

/* Milliseconds left until deadline, for poll(). */
static int ms_left(uint64_t deadline) {
        uint64_t n = now_ms();
        return n >= deadline ? 0 : (int)MIN(deadline - n, (uint64_t)INT32_MAX);
}

static char *xstrdup(const char *s) {
        char *p = strdup(s);
        cr_assert_not_null(p, "out of memory");
        return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        cr_assert_geq(r, 0, "out of memory");
        return s;
}

const char *harness_keep(Harness *h, char *s) {
        char **n;

        cr_assert_not_null(s, "out of memory");
        n = realloc(h->strings, (h->n_strings + 1) * sizeof(char *));
        cr_assert_not_null(n, "out of memory");
        h->strings = n;
        h->strings[h->n_strings++] = s;
        return s;
}

const char *harness_printf(Harness *h, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        cr_assert_geq(r, 0, "out of memory");
        return harness_keep(h, s);
}

/* Reads a whole file (NULL when it cannot). */
static char *read_file(const char *path, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        char *buf = NULL;
        size_t len = 0, cap = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        for (;;) {
                ssize_t n;

                if (cap - len < 4096) {
                        char *nb = realloc(buf, cap + 65536);
                        if (!nb) {
                                free(buf);
                                return NULL;
                        }
                        buf = nb;
                        cap += 65536;
                }
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        if (!buf)
                return NULL;
        buf[len] = 0;
        if (ret_len)
                *ret_len = len;
        return buf;
}

const char *harness_read_file(Harness *h, const char *path, size_t *ret_len) {
        char *data = read_file(path, ret_len);
        cr_assert_not_null(data, "cannot read %s: %m", path);
        return harness_keep(h, data);
}

/* Finds an executable in $PATH (before fork, so the child only calls execve). */
static char *find_program(const char *name) {
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                char *p = xasprintf("%s/%s", d, name);
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return xasprintf("/usr/bin/%s", name);
}

static void closedirp_(DIR **d) {
        if (*d)
                (void)closedir(*d);
}

static int pidfd_open_(pid_t pid) {
        return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* --- processes ------------------------------------------------------------------------------- */

/*
 * Forks and execs argv[0] with envp, its fds 0..n_fds-1 being fds[0..n_fds-1]. Returns the PID, or
 * a negative errno when the exec failed (reported through a CLOEXEC pipe).
 */
static pid_t spawn(char *const argv[], char *const envp[], const int *fds, size_t n_fds) {
        _cleanup_close_ int err_r = -1, err_w = -1;
        int pipefd[2], child_errno = 0;
        pid_t parent = getpid(), pid;
        ssize_t n;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        err_r = pipefd[0];
        err_w = pipefd[1];

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Only async-signal-safe calls from here on. */
                int tmp[8];
                sigset_t ss;

                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                for (size_t i = 0; i < n_fds && i < ELEMENTSOF(tmp); i++) {
                        tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
                        if (tmp[i] < 0)
                                goto fail;
                }
                for (size_t i = 0; i < n_fds && i < ELEMENTSOF(tmp); i++)
                        if (dup2(tmp[i], (int)i) < 0)
                                goto fail;
                sigemptyset(&ss);
                (void)sigprocmask(SIG_SETMASK, &ss, NULL);
                (void)signal(SIGPIPE, SIG_DFL);
                (void)signal(SIGTERM, SIG_DFL);
                (void)signal(SIGINT, SIG_DFL);
                (void)signal(SIGCHLD, SIG_DFL);
                execve(argv[0], argv, envp);
        fail:
                child_errno = errno;
                (void)!write(err_w, &child_errno, sizeof(child_errno));
                _exit(127);
        }

        err_w = safe_close(err_w);
        do
                n = read(err_r, &child_errno, sizeof(child_errno));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(child_errno)) {
                (void)waitpid(pid, NULL, 0);
                return -child_errno;
        }
        return pid;
}

bool harness_wait_pid_exit(pid_t pid, unsigned timeout_ms) {
        _cleanup_close_ int fd = -1;
        struct pollfd p;
        int r;

        fd = pidfd_open_(pid);
        if (fd < 0)
                return errno == ESRCH;
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        do
                r = poll(&p, 1, (int)timeout_ms);
        while (r < 0 && errno == EINTR);
        return r > 0;
}

bool harness_pid_alive(pid_t pid) {
        _cleanup_free_ char *stat = NULL;
        char path[64];
        const char *p;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        stat = read_file(path, NULL);
        if (!stat)
                return false;
        p = strrchr(stat, ')');
        return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Waits for a child of ours to exit within timeout_ms; returns its wait status, or -ETIMEDOUT. */
static int reap_child(pid_t pid, unsigned timeout_ms) {
        int status;

        if (!harness_wait_pid_exit(pid, timeout_ms))
                return -ETIMEDOUT;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return status;
}

/* sig, a bounded wait, then SIGKILL. Returns the wait status, or -ETIMEDOUT when it needed
 * SIGKILL (it is reaped then too). A node manager is stopped with SIGINT, which stops its actors too
 * (SIGTERM leaves them running for the next node manager: docs/restart.md). */
static int stop_child(pid_t pid, int sig, unsigned timeout_ms) {
        int status;

        if (pid <= 0)
                return 0;
        (void)kill(pid, sig);
        status = reap_child(pid, timeout_ms);
        if (status != -ETIMEDOUT)
                return status;
        (void)kill(pid, SIGKILL);
        (void)reap_child(pid, STOP_TIMEOUT_MS);
        return -ETIMEDOUT;
}

static char *describe_status(int status) {
        if (status == -ETIMEDOUT)
                return xasprintf("did not exit within %u ms of being told to stop (killed)", STOP_TIMEOUT_MS);
        if (status < 0)
                return xasprintf("could not be waited for: %s", strerror(-status));
        if (WIFEXITED(status))
                return xasprintf("exited with status %d", WEXITSTATUS(status));
        if (WIFSIGNALED(status))
                return xasprintf("was killed by signal %d (%s)", WTERMSIG(status),
                                 strsignal(WTERMSIG(status)));
        return xasprintf("ended with wait status 0x%x", (unsigned)status);
}

/* Our children other than `except` (orphans reparented to us as subreaper), up to max. */
static size_t list_children(pid_t *out, size_t max) {
        _cleanup_(closedirp_) DIR *d = NULL;
        struct dirent *de;
        size_t n = 0;
        pid_t self = getpid();

        d = opendir("/proc");
        if (!d)
                return 0;
        while ((de = readdir(d)) && n < max) {
                _cleanup_free_ char *stat = NULL;
                char path[300];
                const char *p;
                int ppid;

                if (!isdigit((unsigned char)de->d_name[0]))
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                stat = read_file(path, NULL);
                if (!stat)
                        continue;
                p = strrchr(stat, ')');
                if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid != self)
                        continue;
                out[n++] = (pid_t)atoi(de->d_name);
        }
        return n;
}

/* --- logs ------------------------------------------------------------------------------------ */

static const char *log_tail(Harness *h, const char *path) {
        _cleanup_free_ char *all = NULL;
        size_t len = 0;

        all = read_file(path, &len);
        if (!all)
                return "(no log)";
        if (len <= LOG_TAIL_MAX)
                return harness_keep(h, TAKE_PTR(all));
        return harness_printf(h, "[…]%s", all + len - LOG_TAIL_MAX);
}

const char *harness_nodemgr_log(Harness *h) {
        return log_tail(h, h->nodemgr_log);
}

/* The first line of a sanitizer report in a log, or NULL. */
static char *find_sanitizer_report(const char *path) {
        static const char *const markers[] = {
                "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",     "AddressSanitizer:DEADLYSIGNAL",
                ": runtime error: ",       "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer",
        };
        _cleanup_free_ char *all = read_file(path, NULL);

        if (!all)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(markers); i++) {
                const char *m = strstr(all, markers[i]), *b, *e;

                if (!m)
                        continue;
                for (b = m; b > all && b[-1] != '\n'; b--)
                        ;
                e = strchrnul(m, '\n');
                return strndup(b, (size_t)(e - b));
        }
        return NULL;
}

/* --- start and stop -------------------------------------------------------------------------- */

static const char dbus_config[] =
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n"
        "  <listen>unix:path=%s/bus</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <allow own=\"*\"/>\n"
        "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
        "    <allow receive_sender=\"*\"/>\n"
        "    <allow eavesdrop=\"true\"/>\n"
        "  </policy>\n"
        "</busconfig>\n";

static int write_file(const char *path, const char *content) {
        _cleanup_close_ int fd = -1;
        size_t len = strlen(content), done = 0;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        while (done < len) {
                ssize_t n = write(fd, content + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)n;
        }
        return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void)remove(path);
        return 0;
}

/* environ without the variables the harness sets, plus `extra` (NULL-terminated). */
static char **make_env(char *const *extra) {
        static const char *const drop[] = {"NOTIFY_SOCKET=",
                                           "DBUS_SYSTEM_BUS_ADDRESS=",
                                           "DBUS_SESSION_BUS_ADDRESS=",
                                           "KACTOR_SOCKET=",
                                           "LISTEN_FDS=",
                                           "LISTEN_PID="};
        size_t n = 0, m = 0, k = 0;
        char **env;

        while (environ[n])
                n++;
        while (extra && extra[m])
                m++;
        env = calloc(n + m + 1, sizeof(char *));
        cr_assert_not_null(env, "out of memory");
        for (size_t i = 0; i < n; i++) {
                bool skip = false;
                for (size_t j = 0; j < ELEMENTSOF(drop); j++)
                        if (strncmp(environ[i], drop[j], strlen(drop[j])) == 0)
                                skip = true;
                if (!skip)
                        env[k++] = environ[i];
        }
        for (size_t i = 0; i < m; i++)
                env[k++] = extra[i];
        return env;
}

/* Reads one line from fd within the deadline; watches pidfd for the writer dying first. */
static int read_line(int fd, int pidfd, uint64_t deadline, char *buf, size_t size) {
        size_t len = 0;

        for (;;) {
                struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
                ssize_t n;
                int r;

                r = poll(p, 2, ms_left(deadline));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                if (!(p[0].revents & (POLLIN | POLLHUP))) {
                        if (p[1].revents)
                                return -ECHILD;
                        continue;
                }
                n = read(fd, buf + len, size - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECHILD;
                len += (size_t)n;
                buf[len] = 0;
                if (strchr(buf, '\n'))
                        return 0;
                if (len + 1 >= size)
                        return -E2BIG;
        }
}

/* Waits for READY=1 on the notify socket. */
static int wait_ready(int notify_fd, int pidfd, uint64_t deadline) {
        for (;;) {
                struct pollfd p[2] = {{.fd = notify_fd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
                char buf[4096];
                ssize_t n;
                int r;

                r = poll(p, 2, ms_left(deadline));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                if (!(p[0].revents & POLLIN))
                        return -ECHILD; /* it exited before it was ready */
                n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        return -errno;
                }
                buf[n] = 0;
                for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                        if (streq(l, "READY=1"))
                                return 0;
        }
}

static void harness_free_all(Harness *h) {
        for (size_t i = 0; i < h->n_clients; i++)
                kactor_client_free(h->clients[i]);
        free(h->clients);
        h->bus = sd_bus_flush_close_unref(h->bus);
        for (size_t i = 0; i < h->n_strings; i++)
                free(h->strings[i]);
        free(h->strings);
        safe_close(h->nodemgr_pidfd);
        for (char **a = h->owned_args; a && *a; a++)
                free(*a);
        free(h->owned_args);
        free(h->owned_env);
        free(h->owned_gpu_devices);
        if (h->dir)
                (void)nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(h->dir);
        free(h->build);
        free(h->bus_address);
        free(h->runtime_dir);
        free(h->socket_path);
        free(h->dbus_log);
        free(h->nodemgr_log);
        free(h);
}

/* Starts dbus-daemon at DIR/bus (h->dbus_log open for appending); returns NULL and a malloc'd reason
 * on failure (the caller cleans up). */
static char *harness_start_dbus(Harness *h) {
        _cleanup_free_ char *dbus = NULL, *conf_path = NULL, *conf = NULL, *socket_path = NULL;
        _cleanup_close_ int devnull = -1, dbus_logfd = -1, addr_r = -1, addr_w = -1, dbus_pidfd = -1;
        _cleanup_free_ char **env = NULL;
        char line[1024];
        int pipefd[2], r;

        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        dbus_logfd = open(h->dbus_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (devnull < 0 || dbus_logfd < 0)
                return xasprintf("cannot open %s: %m", h->dbus_log);

        /* A socket a killed daemon left behind would make the new one fail to listen. */
        socket_path = xasprintf("%s/bus", h->dir);
        (void)unlink(socket_path);

        /* dbus-daemon, in the foreground; it prints its address on fd 3 once it listens. */
        conf_path = xasprintf("%s/bus.conf", h->dir);
        conf = xasprintf(dbus_config, h->dir);
        r = write_file(conf_path, conf);
        if (r < 0)
                return xasprintf("cannot write %s: %s", conf_path, strerror(-r));
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return xasprintf("pipe: %m");
        addr_r = pipefd[0];
        addr_w = pipefd[1];
        dbus = find_program("dbus-daemon");
        {
                _cleanup_free_ char *conf_arg = xasprintf("--config-file=%s", conf_path);
                char *argv[] = {dbus,
                                conf_arg,
                                (char *)"--nofork",
                                (char *)"--nopidfile",
                                (char *)"--nosyslog",
                                (char *)"--print-address=3",
                                NULL};
                int fds[] = {devnull, dbus_logfd, dbus_logfd, addr_w};

                env = make_env(NULL);
                h->dbus_pid = spawn(argv, env, fds, ELEMENTSOF(fds));
                env = mfree(env);
                if (h->dbus_pid < 0)
                        return xasprintf("cannot run %s: %s", dbus, strerror(-h->dbus_pid));
        }
        addr_w = safe_close(addr_w);
        dbus_pidfd = pidfd_open_(h->dbus_pid);
        r = read_line(addr_r, dbus_pidfd, now_ms() + HARNESS_TIMEOUT_MS, line, sizeof(line));
        if (r < 0)
                return xasprintf("dbus-daemon did not print its address: %s; its log:\n%s", strerror(-r),
                                 log_tail(h, h->dbus_log));
        if (!h->bus_address)
                h->bus_address = xasprintf("unix:path=%s", socket_path);
        return NULL;
}

/* Starts kactor-nodemgr on h's bus and runtime directory and waits for READY=1; returns NULL and a
 * malloc'd reason on failure (the caller cleans up). */
static char *harness_start_nodemgr(Harness *h) {
        const HarnessOptions *o = &h->options;
        _cleanup_free_ char *nodemgr = NULL, *notify = NULL, *module_path = NULL, *gpus = NULL, *cpus = NULL,
                            *env_notify = NULL, *env_bus = NULL, *addr_arg = NULL;
        _cleanup_close_ int devnull = -1, nodemgr_logfd = -1, notify_fd = -1;
        _cleanup_free_ char **env = NULL;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int r;

        nodemgr = xasprintf("%s/kactor-nodemgr", h->build);
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        nodemgr_logfd = open(h->nodemgr_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (devnull < 0 || nodemgr_logfd < 0)
                return xasprintf("cannot open logs in %s: %m", h->dir);

        /* The notify socket, then the node manager. */
        notify = xasprintf("%s/notify", h->dir);
        (void)unlink(notify);
        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (notify_fd < 0 || strlen(notify) >= sizeof(sa.sun_path))
                return xasprintf("cannot make notify socket %s: %m", notify);
        memcpy(sa.sun_path, notify, strlen(notify) + 1);
        if (bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return xasprintf("cannot bind %s: %m", notify);

        module_path = xasprintf("%s/tests/modules:%s/examples", h->build, h->build);
        gpus = xasprintf("%u", o->gpus);
        cpus = xasprintf("%u", o->num_cpus);
        env_notify = xasprintf("NOTIFY_SOCKET=%s", notify);
        env_bus = xasprintf("DBUS_SYSTEM_BUS_ADDRESS=%s", h->bus_address);
        addr_arg = xstrdup(h->bus_address);
        {
                char *argv[] = {nodemgr,
                                (char *)"--bus",
                                addr_arg,
                                (char *)"--runtime-dir",
                                h->runtime_dir,
                                (char *)"--module-path",
                                module_path,
                                (char *)(o->gpu_devices ? "--gpu-devices" : "--gpus"),
                                o->gpu_devices ? (char *)o->gpu_devices : gpus,
                                (char *)"--num-cpus",
                                cpus,
                                NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
                size_t k = 11;

                for (size_t i = 0; o->extra_args && o->extra_args[i]; i++) {
                        if (k + 1 >= ELEMENTSOF(argv))
                                return xasprintf("too many extra_args");
                        argv[k++] = (char *)o->extra_args[i];
                }
                char *extra[] = {env_notify, env_bus, (char *)o->extra_env, NULL};
                int fds[] = {devnull, nodemgr_logfd, nodemgr_logfd};

                env = make_env(extra);
                h->nodemgr_pid = spawn(argv, env, fds, ELEMENTSOF(fds));
                env = mfree(env);
                if (h->nodemgr_pid < 0)
                        return xasprintf("cannot run %s: %s", nodemgr, strerror(-h->nodemgr_pid));
        }
        h->nodemgr_pidfd = safe_close(h->nodemgr_pidfd);
        h->nodemgr_pidfd = pidfd_open_(h->nodemgr_pid);
        if (h->nodemgr_pidfd < 0)
                return xasprintf("pidfd_open: %m");

        r = wait_ready(notify_fd, h->nodemgr_pidfd, now_ms() + HARNESS_TIMEOUT_MS);
        if (r == -ECHILD) {
                int status = reap_child(h->nodemgr_pid, STOP_TIMEOUT_MS);
                _cleanup_free_ char *why = describe_status(status);

                h->nodemgr_pid = 0;
                return xasprintf("kactor-nodemgr %s before READY=1; its log:\n%s", why,
                                 log_tail(h, h->nodemgr_log));
        }
        if (r < 0)
                return xasprintf("kactor-nodemgr sent no READY=1 within %u ms (%s); its log:\n%s",
                                 HARNESS_TIMEOUT_MS, strerror(-r), log_tail(h, h->nodemgr_log));
        return NULL;
}

/* Starts the pieces; returns NULL and a malloc'd reason on failure (the caller cleans up). */
static char *harness_start_children(Harness *h) {
        _cleanup_free_ char *nodemgr = NULL;
        char *error;

        nodemgr = xasprintf("%s/kactor-nodemgr", h->build);
        if (access(nodemgr, X_OK) < 0)
                return xasprintf("%s is missing (run make; KACTOR_BUILD=%s): %m", nodemgr, h->build);

        h->dbus_log = xasprintf("%s/dbus.log", h->dir);
        h->nodemgr_log = xasprintf("%s/nodemgr.log", h->dir);
        error = harness_start_dbus(h);
        if (error)
                return error;

        h->runtime_dir = xasprintf("%s/run", h->dir);
        if (mkdir(h->runtime_dir, 0755) < 0)
                return xasprintf("mkdir %s: %m", h->runtime_dir);
        h->socket_path = xasprintf("%s/nodemgr.sock", h->runtime_dir);
        return harness_start_nodemgr(h);
}

int harness_restart_nodemgr(Harness *h, int sig) {
        cr_assert_gt(h->nodemgr_pid, 0, "no node manager to restart");
        cr_assert_eq(kill(h->nodemgr_pid, sig), 0, "kill %d: %m", (int)h->nodemgr_pid);
        int status = reap_child(h->nodemgr_pid, STOP_TIMEOUT_MS);
        cr_assert_neq(status, -ETIMEDOUT, "kactor-nodemgr did not exit on signal %d", sig);
        if (sig == SIGTERM)
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "kactor-nodemgr exited with status 0x%x on SIGTERM; its log:\n%s", (unsigned)status,
                          log_tail(h, h->nodemgr_log));
        h->nodemgr_pid = 0;
        h->bus = sd_bus_flush_close_unref(h->bus);
        _cleanup_free_ char *error = harness_start_nodemgr(h);
        cr_assert_null(error, "%s", error);
        return status;
}

static void harness_register(Harness *h, bool add);

Harness *harness_start(const HarnessOptions *opts) {
        HarnessOptions o = opts ? *opts : (HarnessOptions){};
        const char *build = getenv("KACTOR_BUILD");
        char tmpl[] = "/tmp/kactor-test-XXXXXX";
        _cleanup_free_ char *error = NULL;
        Harness *h;

        if (!o.gpus && !o.gpu_devices)
                o.gpus = 2;
        if (!o.num_cpus)
                o.num_cpus = 16;

        /* Workers a node manager leaves behind come back to us, so stop can find them. */
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
        /* A daemon that dies while we write to it must fail the test, not kill it. */
        (void)signal(SIGPIPE, SIG_IGN);

        h = calloc(1, sizeof(Harness));
        cr_assert_not_null(h, "out of memory");
        h->nodemgr_pidfd = -1;
        h->gpus = o.gpus;
        h->build = realpath(build && *build ? build : "build", NULL);
        if (!h->build) {
                error = xasprintf("build dir %s: %m", build && *build ? build : "build");
        } else if (!mkdtemp(tmpl)) {
                error = xasprintf("mkdtemp: %m");
        } else {
                h->dir = xstrdup(tmpl);
                /* Kept for harness_restart_nodemgr(): copies, as the caller's may not outlive this. */
                size_t n = 0;
                while (o.extra_args && o.extra_args[n])
                        n++;
                h->owned_args = calloc(n + 1, sizeof(char *));
                cr_assert_not_null(h->owned_args, "out of memory");
                for (size_t i = 0; i < n; i++)
                        h->owned_args[i] = xstrdup(o.extra_args[i]);
                o.extra_args = (const char *const *) h->owned_args;
                if (o.extra_env)
                        o.extra_env = h->owned_env = xstrdup(o.extra_env);
                if (o.gpu_devices)
                        o.gpu_devices = h->owned_gpu_devices = xstrdup(o.gpu_devices);
                h->options = o;
                error = harness_start_children(h);
        }
        if (error) {
                if (h->nodemgr_pid > 0)
                        (void)stop_child(h->nodemgr_pid, SIGINT, STOP_TIMEOUT_MS);
                if (h->dbus_pid > 0)
                        (void)stop_child(h->dbus_pid, SIGTERM, STOP_TIMEOUT_MS);
                harness_free_all(h);
                cr_assert_fail("harness: %s", error);
        }
        harness_register(h, true);
        return h;
}

void harness_assert_running(Harness *h) {
        siginfo_t si = {};

        cr_assert_gt(h->nodemgr_pid, 0, "no node manager");
        cr_assert_eq(waitid(P_PID, (id_t)h->nodemgr_pid, &si, WEXITED | WNOHANG | WNOWAIT), 0, "waitid: %m");
        if (si.si_pid == 0)
                return;
        cr_assert_fail("kactor-nodemgr died (%s %d); its log:\n%s",
                       si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status,
                       harness_nodemgr_log(h));
}

void harness_dbus_kill(Harness *h) {
        cr_assert_gt(h->dbus_pid, 0, "no dbus-daemon running");
        /* Our own connection dies with it; harness_bus() makes a new one. */
        h->bus = sd_bus_close_unref(h->bus);
        (void)kill(h->dbus_pid, SIGKILL);
        cr_assert_geq(reap_child(h->dbus_pid, STOP_TIMEOUT_MS), 0, "dbus-daemon did not die on SIGKILL");
        h->dbus_pid = 0;
}

void harness_dbus_start(Harness *h) {
        _cleanup_free_ char *error = NULL;

        cr_assert_eq(h->dbus_pid, 0, "dbus-daemon is still running");
        error = harness_start_dbus(h);
        if (error) {
                if (h->dbus_pid > 0)
                        (void)stop_child(h->dbus_pid, SIGTERM, STOP_TIMEOUT_MS);
                h->dbus_pid = 0;
                cr_assert_fail("harness: %s", error);
        }
}

static void add_problem(char **problems, char *p) {
        char *n = xasprintf("%s  - %s\n", *problems ? *problems : "", p);
        free(*problems);
        free(p);
        *problems = n;
}

/* Harnesses running in this process (a cluster test starts several): their processes are not
 * another harness's orphans. */
static Harness *live_harnesses[16];

static void harness_register(Harness *h, bool add) {
        for (size_t i = 0; i < ELEMENTSOF(live_harnesses); i++)
                if (add ? !live_harnesses[i] : live_harnesses[i] == h) {
                        live_harnesses[i] = add ? h : NULL;
                        return;
                }
}

static bool harness_owns_other(const Harness *h, pid_t pid) {
        for (size_t i = 0; i < ELEMENTSOF(live_harnesses); i++)
                if (live_harnesses[i] && live_harnesses[i] != h &&
                    (live_harnesses[i]->dbus_pid == pid || live_harnesses[i]->nodemgr_pid == pid))
                        return true;
        return false;
}

Harness *harness_stop(Harness *h) {
        _cleanup_free_ char *problems = NULL;
        pid_t orphans[64];
        size_t n_orphans;
        uint64_t deadline;
        siginfo_t si = {};
        int status;

        if (!h)
                return NULL;
        harness_register(h, false);

        /* Clients first, so the daemon sees them go as a user's program would end. */
        for (size_t i = 0; i < h->n_clients; i++)
                kactor_client_free(h->clients[i]);
        h->n_clients = 0;
        h->bus = sd_bus_flush_close_unref(h->bus);

        if (h->nodemgr_pid > 0) {
                if (waitid(P_PID, (id_t)h->nodemgr_pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                    si.si_pid != 0)
                        add_problem(&problems,
                                    xasprintf("kactor-nodemgr was no longer running at the end of "
                                              "the test"));
                status = stop_child(h->nodemgr_pid, SIGINT, STOP_TIMEOUT_MS);
                if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        _cleanup_free_ char *why = describe_status(status);
                        add_problem(&problems,
                                    xasprintf("kactor-nodemgr %s on SIGINT (expected status 0)", why));
                }
                h->nodemgr_pid = 0;
        }

        /* Whatever of the node manager's is left came back to us: workers must have stopped. */
        deadline = now_ms() + 3000;
        n_orphans = list_children(orphans, ELEMENTSOF(orphans));
        for (size_t i = 0; i < n_orphans; i++) {
                _cleanup_free_ char *cmdline = NULL;
                char path[64];
                size_t len = 0;

                if (orphans[i] == h->dbus_pid || harness_owns_other(h, orphans[i]))
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)orphans[i]);
                cmdline = read_file(path, &len);
                for (size_t k = 0; cmdline && k + 1 < len; k++)
                        if (cmdline[k] == 0)
                                cmdline[k] = ' ';
                if (reap_child(orphans[i], (unsigned)ms_left(deadline)) == -ETIMEDOUT) {
                        add_problem(&problems, xasprintf("process %d (%s) was still running after "
                                                         "kactor-nodemgr exited; killed",
                                                         (int)orphans[i], cmdline ? cmdline : "?"));
                        (void)kill(orphans[i], SIGKILL);
                        (void)reap_child(orphans[i], STOP_TIMEOUT_MS);
                }
        }

        if (h->dbus_pid > 0)
                (void)stop_child(h->dbus_pid, SIGTERM, STOP_TIMEOUT_MS);
        h->dbus_pid = 0;

        if (h->nodemgr_log) {
                char *report = find_sanitizer_report(h->nodemgr_log);
                if (report)
                        add_problem(&problems, xasprintf("a sanitizer reported: %s", report));
                free(report);
        }

        if (problems) {
                cr_log_error("harness: the node manager misbehaved:\n%s--- its log (%s):\n%s\n", problems,
                             h->nodemgr_log, harness_nodemgr_log(h));
                fflush(NULL);
        }
        harness_free_all(h);
        if (problems)
                exit(EXIT_FAILURE);
        return NULL;
}

const char *harness_module(Harness *h, const char *name) {
        static const char *const dirs[] = {"tests/modules", "examples"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                char *p = xasprintf("%s/%s/%s.so", h->build, dirs[i], name);
                if (access(p, R_OK) == 0)
                        return harness_keep(h, p);
                free(p);
        }
        cr_assert_fail("module %s.so is not in %s/tests/modules or %s/examples (run make)", name, h->build,
                       h->build);
        return NULL;
}

/* --- busctl ---------------------------------------------------------------------------------- */

static int run_busctl(Harness *h, char **ret_out, char *const *args, size_t n_args) {
        _cleanup_free_ char *busctl = NULL, *addr = NULL, *out = NULL;
        _cleanup_free_ char **argv = NULL, **env = NULL;
        _cleanup_close_ int devnull = -1, out_r = -1, out_w = -1, pidfd = -1;
        size_t len = 0, cap = 0;
        uint64_t deadline;
        int pipefd[2], status;
        pid_t pid;

        busctl = find_program("busctl");
        addr = xasprintf("--address=%s", h->bus_address);
        argv = calloc(n_args + 5, sizeof(char *));
        cr_assert_not_null(argv, "out of memory");
        argv[0] = busctl;
        argv[1] = addr;
        argv[2] = (char *)"--timeout=20";
        argv[3] = (char *)"--no-pager";
        for (size_t i = 0; i < n_args; i++)
                argv[4 + i] = args[i];

        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        cr_assert_geq(devnull, 0, "/dev/null: %m");
        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0, "pipe: %m");
        out_r = pipefd[0];
        out_w = pipefd[1];
        {
                char *extra[] = {(char *)"SYSTEMD_COLORS=0", (char *)"SYSTEMD_PAGER=", NULL};
                int fds[] = {devnull, out_w, out_w};

                env = make_env(extra);
                pid = spawn(argv, env, fds, ELEMENTSOF(fds));
        }
        if (pid < 0)
                return pid;
        out_w = safe_close(out_w);
        pidfd = pidfd_open_(pid);

        deadline = now_ms() + BUSCTL_TIMEOUT_MS;
        for (;;) {
                struct pollfd p = {.fd = out_r, .events = POLLIN};
                ssize_t n;
                int r;

                r = poll(&p, 1, ms_left(deadline));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        (void)kill(pid, SIGKILL);
                        (void)reap_child(pid, STOP_TIMEOUT_MS);
                        cr_assert_fail("busctl %s did not finish within %u ms", args[0], BUSCTL_TIMEOUT_MS);
                }
                if (cap - len < 4096) {
                        char *nb = realloc(out, cap + 65536);
                        cr_assert_not_null(nb, "out of memory");
                        out = nb;
                        cap += 65536;
                }
                n = read(out_r, out + len, cap - len - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        status = reap_child(pid, STOP_TIMEOUT_MS);
        cr_assert_geq(status, 0, "busctl did not exit: %s", strerror(-status));

        if (!out)
                out = xstrdup("");
        out[len] = 0;
        while (len > 0 && out[len - 1] == '\n')
                out[--len] = 0;
        if (ret_out)
                *ret_out = TAKE_PTR(out);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
}

/* Collects a NULL-terminated va_list of strings after `first` ones. */
static size_t collect_args(char **args, size_t max, const char *const *first, size_t n_first, va_list ap) {
        size_t n = 0;
        const char *a;

        for (size_t i = 0; i < n_first; i++)
                args[n++] = (char *)first[i];
        while ((a = va_arg(ap, const char *))) {
                cr_assert_lt(n, max, "too many busctl arguments");
                args[n++] = (char *)a;
        }
        return n;
}

int harness_busctl(Harness *h, char **ret_out, ...) {
        char *args[256];
        va_list ap;
        size_t n;

        va_start(ap, ret_out);
        n = collect_args(args, ELEMENTSOF(args), NULL, 0, ap);
        va_end(ap);
        return run_busctl(h, ret_out, args, n);
}

int harness_busctl_call(Harness *h, char **ret_out, const char *path, const char *interface,
                        const char *method, ...) {
        /* "--": arguments such as "-5" are values, not options. */
        const char *first[] = {"--", "call", HARNESS_BUS_NAME, path, interface, method};
        char *args[256];
        va_list ap;
        size_t n;

        va_start(ap, method);
        n = collect_args(args, ELEMENTSOF(args), first, ELEMENTSOF(first), ap);
        va_end(ap);
        return run_busctl(h, ret_out, args, n);
}

const char *harness_busctl_call_ok(Harness *h, const char *path, const char *interface, const char *method,
                                   ...) {
        /* "--": arguments such as "-5" are values, not options. */
        const char *first[] = {"--", "call", HARNESS_BUS_NAME, path, interface, method};
        char *args[256], *out = NULL;
        va_list ap;
        size_t n;
        int r;

        va_start(ap, method);
        n = collect_args(args, ELEMENTSOF(args), first, ELEMENTSOF(first), ap);
        va_end(ap);
        r = run_busctl(h, &out, args, n);
        harness_keep(h, out);
        cr_assert_eq(r, 0, "busctl call %s %s.%s failed (status %d): %s", path, interface, method, r,
                     out ?: "");
        return out;
}

const char *harness_busctl_path(Harness *h, const char *out) {
        const char *b = strchr(out, '"'), *e;

        cr_assert_not_null(b, "no quoted path in busctl output: %s", out);
        e = strchr(b + 1, '"');
        cr_assert_not_null(e, "no quoted path in busctl output: %s", out);
        return harness_keep(h, strndup(b + 1, (size_t)(e - b - 1)));
}

/* --- sd-bus ---------------------------------------------------------------------------------- */

sd_bus *harness_bus_new(Harness *h) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        cr_assert_geq(r, 0, "sd_bus_new: %s", strerror(-r));
        r = sd_bus_set_address(bus, h->bus_address);
        cr_assert_geq(r, 0, "sd_bus_set_address: %s", strerror(-r));
        r = sd_bus_set_bus_client(bus, 1);
        cr_assert_geq(r, 0, "sd_bus_set_bus_client: %s", strerror(-r));
        (void)sd_bus_set_method_call_timeout(bus, HARNESS_TIMEOUT_USEC * 2);
        r = sd_bus_start(bus);
        cr_assert_geq(r, 0, "connecting to %s: %s", h->bus_address, strerror(-r));
        return bus;
}

sd_bus *harness_bus(Harness *h) {
        if (!h->bus)
                h->bus = harness_bus_new(h);
        return h->bus;
}

int harness_bus_call(Harness *h, sd_bus_error *error, sd_bus_message **ret_reply, const char *path,
                     const char *interface, const char *member, const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = sd_bus_call_methodv(harness_bus(h), HARNESS_BUS_NAME, path, interface, member, error, ret_reply,
                                types, ap);
        va_end(ap);
        return r;
}

const char *harness_property_string(Harness *h, const char *path, const char *interface, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;
        int r;

        r = sd_bus_get_property_string(harness_bus(h), HARNESS_BUS_NAME, path, interface, name, &error, &s);
        cr_assert_geq(r, 0, "reading %s %s.%s: %s: %s", path, interface, name, error.name, error.message);
        sd_bus_error_free(&error);
        return harness_keep(h, s);
}

uint64_t harness_property_uint(Harness *h, const char *path, const char *interface, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *contents = NULL;
        uint64_t v = 0;
        union {
                uint8_t y;
                uint16_t q;
                int16_t n;
                uint32_t u;
                int32_t i;
                uint64_t t;
                int64_t x;
        } u = {};
        char type;
        int r;

        r = sd_bus_call_method(harness_bus(h), HARNESS_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                               "Get", &error, &reply, "ss", interface, name);
        cr_assert_geq(r, 0, "reading %s %s.%s: %s: %s", path, interface, name, error.name, error.message);
        sd_bus_error_free(&error);
        r = sd_bus_message_peek_type(reply, &type, &contents);
        cr_assert(r > 0 && type == 'v' && contents && strlen(contents) == 1, "%s.%s is not a number variant",
                  interface, name);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'v', contents), 0);
        r = sd_bus_message_read_basic(reply, contents[0], &u);
        cr_assert_gt(r, 0, "%s.%s: cannot read '%s'", interface, name, contents);
        switch (contents[0]) {
        case 'y':
                v = u.y;
                break;
        case 'q':
                v = u.q;
                break;
        case 'n':
                v = (uint64_t)u.n;
                break;
        case 'u':
                v = u.u;
                break;
        case 'i':
                v = (uint64_t)u.i;
                break;
        case 't':
                v = u.t;
                break;
        case 'x':
                v = (uint64_t)u.x;
                break;
        default:
                cr_assert_fail("%s.%s has type '%s', not a number", interface, name, contents);
        }
        sd_bus_message_unref(reply);
        return v;
}

typedef struct StateWait {
        const char *state;
        bool found;
        bool recheck;
} StateWait;

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        StateWait *w = userdata;
        const char *iface = NULL, *prop, *value;
        int r;

        if (sd_bus_message_read(m, "s", &iface) < 0 || !streq(iface, HARNESS_IFACE_ACTOR))
                return 0;
        if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                if (sd_bus_message_read(m, "s", &prop) < 0)
                        return 0;
                if (streq(prop, "State")) {
                        if (sd_bus_message_read(m, "v", "s", &value) < 0)
                                return 0;
                        if (streq(value, w->state))
                                w->found = true;
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        if (sd_bus_message_exit_container(m) < 0)
                return 0;
        /* An invalidated State is re-read. */
        if (sd_bus_message_enter_container(m, 'a', "s") >= 0)
                while (sd_bus_message_read(m, "s", &prop) > 0)
                        if (streq(prop, "State"))
                                w->recheck = true;
        return 0;
}

bool harness_wait_actor_state(Harness *h, const char *path, const char *state, unsigned timeout_ms) {
        sd_bus *bus = harness_bus(h);
        sd_bus_slot *slot = NULL;
        StateWait w = {.state = state, .recheck = true};
        uint64_t deadline = now_ms() + timeout_ms;
        int r;

        /* Subscribe first, then read: no change can fall between the two. */
        r = sd_bus_match_signal(bus, &slot, NULL, path, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, &w);
        cr_assert_geq(r, 0, "AddMatch: %s", strerror(-r));
        while (!w.found) {
                if (w.recheck) {
                        sd_bus_error error = SD_BUS_ERROR_NULL;
                        char *s = NULL;

                        w.recheck = false;
                        r = sd_bus_get_property_string(bus, HARNESS_BUS_NAME, path, HARNESS_IFACE_ACTOR,
                                                       "State", &error, &s);
                        cr_assert_geq(r, 0, "reading State of %s: %s: %s", path, error.name, error.message);
                        sd_bus_error_free(&error);
                        w.found = streq(s, state);
                        free(s);
                        continue;
                }
                r = sd_bus_process(bus, NULL);
                cr_assert_geq(r, 0, "sd_bus_process: %s", strerror(-r));
                if (r > 0)
                        continue;
                if (ms_left(deadline) == 0)
                        break;
                r = sd_bus_wait(bus, (uint64_t)ms_left(deadline) * 1000u);
                cr_assert_geq(r, 0, "sd_bus_wait: %s", strerror(-r));
        }
        sd_bus_slot_unref(slot);
        return w.found;
}

static size_t free_gpus(Harness *h) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        size_t n = 0;
        uint32_t id;
        int r;

        r = sd_bus_get_property(harness_bus(h), HARNESS_BUS_NAME, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER,
                                "FreeGpus", &error, &reply, "au");
        cr_assert_geq(r, 0, "reading FreeGpus: %s: %s", error.name, error.message);
        sd_bus_error_free(&error);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "u"), 0);
        while ((r = sd_bus_message_read_basic(reply, 'u', &id)) > 0)
                n++;
        cr_assert_geq(r, 0);
        sd_bus_message_unref(reply);
        return n;
}

bool harness_wait_free_gpus(Harness *h, size_t n, unsigned timeout_ms) {
        uint64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                if (free_gpus(h) == n)
                        return true;
                if (ms_left(deadline) == 0)
                        return false;
                (void)poll(NULL, 0, 10);
        }
}

/* --- libkactor ------------------------------------------------------------------------------- */

kactor_client *harness_client(Harness *h) {
        return harness_client_direct(h, 0);
}

kactor_client *harness_client_direct(Harness *h, int direct_calls) {
        struct kactor_connect_opts opts = {
                .sz = sizeof(opts),
                .socket_path = h->socket_path,
                .direct_calls = direct_calls,
        };
        kactor_client *c = NULL, **n;
        int r;

        r = kactor_connect(&opts, &c);
        cr_assert_eq(r, 0, "kactor_connect(%s): %s", h->socket_path, strerror(-r));
        n = realloc(h->clients, (h->n_clients + 1) * sizeof(*n));
        cr_assert_not_null(n, "out of memory");
        h->clients = n;
        h->clients[h->n_clients++] = c;
        return c;
}

void harness_client_close(Harness *h, kactor_client *c) {
        for (size_t i = 0; i < h->n_clients; i++)
                if (h->clients[i] == c) {
                        h->clients[i] = h->clients[--h->n_clients];
                        kactor_client_free(c);
                        return;
                }
        cr_assert_fail("harness_client_close: not a harness client");
}

const char *harness_actor_path(Harness *h, kactor_actor a) {
        return harness_keep(h, bus_actor_path(a.id));
}

const char *harness_object_path(Harness *h, kactor_ref r) {
        return harness_keep(h, bus_object_path(r.id));
}

pid_t harness_actor_pid(Harness *h, kactor_actor a) {
        const char *path = harness_actor_path(h, a);
        uint64_t pid;

        cr_assert(harness_wait_actor_state(h, path, "alive", HARNESS_TIMEOUT_MS),
                  "actor %s did not become alive (State=%s)", path,
                  harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"));
        pid = harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "Pid");
        cr_assert_gt(pid, 0, "actor %s is alive with Pid 0", path);
        return (pid_t)pid;
}

kactor_actor harness_create(Harness *h, kactor_client *c, const char *module, const char *class_name,
                            const char *args_json, const struct kactor_actor_opts *opts) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL;
        kactor_actor a = {};
        int r;

        r = kactor_create_actor(c, module, class_name, args, opts, &a);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "creating %s in %s: %s: %s (%s)", class_name, module, strerror(-r),
                     kactor_client_error_message(c), kactor_error_name(kactor_client_error(c)) ?: "");
        return a;
}

kactor_value *harness_get(kactor_client *c, kactor_ref ref) {
        kactor_value *v = NULL;
        int r;

        r = kactor_get1(c, ref, HARNESS_TIMEOUT_USEC, &v);
        cr_assert_eq(r, 0, "kactor_get1: %s: %s", strerror(-r), kactor_client_error_message(c));
        cr_assert_not_null(v, "kactor_get1 returned no value");
        return v;
}

kactor_value *harness_call(kactor_client *c, kactor_actor a, const char *method, const char *args_json) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL, *v;
        kactor_ref ref = {};
        int r;

        r = kactor_call(c, a, method, args, &ref);
        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s: %s", method, strerror(-r), kactor_client_error_message(c));
        v = harness_get(c, ref);
        (void)kactor_ref_release(c, &ref, 1);
        return v;
}

/* --- values ---------------------------------------------------------------------------------- */

static void skip_ws(const char **p) {
        while (isspace((unsigned char)**p))
                (*p)++;
}

static kactor_value *parse_json(const char **p, unsigned depth);

static char *parse_json_string(const char **p) {
        const char *s = *p;
        char *out, *o;

        if (*s != '"')
                return NULL;
        out = o = malloc(strlen(s) + 1);
        if (!out)
                return NULL;
        for (s++; *s && *s != '"'; s++) {
                if (*s != '\\') {
                        *o++ = *s;
                        continue;
                }
                s++;
                switch (*s) {
                case 'n':
                        *o++ = '\n';
                        break;
                case 't':
                        *o++ = '\t';
                        break;
                case 'r':
                        *o++ = '\r';
                        break;
                case '"':
                case '\\':
                case '/':
                        *o++ = *s;
                        break;
                default:
                        free(out);
                        return NULL;
                }
        }
        if (*s != '"') {
                free(out);
                return NULL;
        }
        *o = 0;
        *p = s + 1;
        return out;
}

static kactor_value *parse_json(const char **p, unsigned depth) {
        kactor_value *v;

        skip_ws(p);
        if (depth > 32)
                return NULL;
        if (strncmp(*p, "null", 4) == 0) {
                *p += 4;
                return kactor_value_new_nil();
        }
        if (strncmp(*p, "true", 4) == 0) {
                *p += 4;
                return kactor_value_new_bool(true);
        }
        if (strncmp(*p, "false", 5) == 0) {
                *p += 5;
                return kactor_value_new_bool(false);
        }
        if (**p == '"') {
                char *s = parse_json_string(p);
                if (!s)
                        return NULL;
                v = kactor_value_new_string(s);
                free(s);
                return v;
        }
        if (**p == '-' || isdigit((unsigned char)**p)) {
                const char *e = *p + (**p == '-');
                while (isdigit((unsigned char)*e))
                        e++;
                if (*e == '.' || *e == 'e' || *e == 'E') {
                        char *end;
                        double d = strtod(*p, &end);
                        *p = end;
                        return kactor_value_new_double(d);
                }
                errno = 0;
                long long i = strtoll(*p, (char **)&e, 10);
                if (errno)
                        return NULL;
                *p = e;
                return kactor_value_new_int(i);
        }
        if (**p == '[' || **p == '{') {
                bool map = **p == '{';
                (*p)++;
                v = map ? kactor_value_new_map() : kactor_value_new_list();
                if (!v)
                        return NULL;
                skip_ws(p);
                if (**p == (map ? '}' : ']')) {
                        (*p)++;
                        return v;
                }
                for (;;) {
                        _cleanup_free_ char *key = NULL;
                        kactor_value *item;

                        skip_ws(p);
                        if (map) {
                                key = parse_json_string(p);
                                skip_ws(p);
                                if (!key || **p != ':')
                                        return kactor_value_free(v);
                                (*p)++;
                        }
                        item = parse_json(p, depth + 1);
                        if (!item)
                                return kactor_value_free(v);
                        if ((map ? kactor_value_map_set(v, key, item) : kactor_value_list_append(v, item)) <
                            0)
                                return kactor_value_free(v);
                        skip_ws(p);
                        if (**p == ',') {
                                (*p)++;
                                continue;
                        }
                        if (**p != (map ? '}' : ']'))
                                return kactor_value_free(v);
                        (*p)++;
                        return v;
                }
        }
        return NULL;
}

kactor_value *harness_value(const char *json) {
        const char *p = json;
        kactor_value *v = parse_json(&p, 0);

        if (v) {
                skip_ws(&p);
                if (*p)
                        v = kactor_value_free(v);
        }
        cr_assert_not_null(v, "harness_value: bad JSON near \"%s\" in: %s", p, json);
        return v;
}

const char *harness_value_str(Harness *h, const kactor_value *v) {
        return harness_keep(h, v ? kactor_value_to_json(v) : strdup("(no value)"));
}

void harness_assert_value_at(const char *file, int line, const kactor_value *v, const char *json) {
        kactor_value *want = harness_value(json);
        bool eq = v && kactor_value_equal(v, want);

        kactor_value_free(want);
        if (!eq) {
                char *got = v ? kactor_value_to_json(v) : NULL;
                cr_assert_fail("%s:%d: value %s, expected %s", file, line, got ?: "(none)", json);
        }
}

void harness_assert_error_at(const char *file, int line, const kactor_value *v, kactor_error code,
                             const char *needle) {
        const char *msg;

        if (!v || !kactor_value_is_error(v)) {
                char *got = v ? kactor_value_to_json(v) : NULL;
                cr_assert_fail("%s:%d: value %s, expected the error %s", file, line, got ?: "(none)",
                               kactor_error_name(code));
        }
        msg = kactor_value_error_message(v) ?: "";
        cr_assert_eq(kactor_value_error_code(v), code, "%s:%d: error %s (\"%s\"), expected %s", file, line,
                     kactor_error_name(kactor_value_error_code(v)) ?: "?", msg, kactor_error_name(code));
        if (needle)
                cr_assert(strstr(msg, needle), "%s:%d: error %s message \"%s\" does not mention \"%s\"",
                          file, line, kactor_error_name(code), msg, needle);
}

int harness_raw_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                (void) close(fd);
                return r;
        }
        return fd;
}

int harness_raw_send(int fd, const void *p, size_t n) {
        const char *b = p;

        while (n > 0) {
                ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return errno == ECONNRESET ? -EPIPE : -errno;
                b += k;
                n -= (size_t) k;
        }
        return 0;
}
