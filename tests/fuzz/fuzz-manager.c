/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The node manager fixture of the fuzz targets (fuzz-manager.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "fuzz-input.h"
#include "fuzz-manager.h"
#include "log.h"
#include "macro.h"
#include "native.h"
#include "remote.h"

static char *fixture_dir;
static bool fixture_ready;
static pid_t dbus_pid;
static char *bus_address, *runtime_dir, *module_dir, *worker_path;
static char *module_path[2];

/* manager_new() names the node with a random id; a fixed one lets seeds name its objects. Calls
 * from the node manager's objects, which are linked into the target, land here. */
int sd_id128_randomize(sd_id128_t *ret) {
        *ret = (sd_id128_t) { .qwords = { FUZZ_NODE_HI, FUZZ_NODE_HI } };
        return 0;
}

static void die(const char *what) {
        fprintf(stderr, "fuzz fixture: %s: %s\n", what, strerror(errno));
        exit(1);
}

static char *xasprintf(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *format, ...) {
        va_list ap;
        char *s;
        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                die("out of memory");
        va_end(ap);
        return s;
}

static void write_file(const char *path, const char *content) {
        FILE *f = fopen(path, "we");
        if (!f || fputs(content, f) < 0 || fclose(f) != 0)
                die(path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void fixture_teardown(void) {
        if (dbus_pid > 0) {
                (void) kill(dbus_pid, SIGTERM);
                (void) waitpid(dbus_pid, NULL, 0);
        }
        if (fixture_ready)
                (void) nftw(fixture_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char dbus_config[] =
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n"
        "  <listen>unix:path=%s/bus</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <allow own=\"*\"/>\n"
        "    <allow send_destination=\"*\"/>\n"
        "    <allow receive_sender=\"*\"/>\n"
        "  </policy>\n"
        "</busconfig>\n";

/* A dbus-daemon in the foreground that the kernel kills when the fuzzer goes, however it goes. */
static void bus_start(void) {
        _cleanup_free_ char *conf_path = xasprintf("%s/bus.conf", fixture_dir);
        _cleanup_free_ char *conf = xasprintf(dbus_config, fixture_dir);
        _cleanup_free_ char *conf_arg = xasprintf("--config-file=%s", conf_path);
        int pipefd[2];
        pid_t parent = getpid();

        write_file(conf_path, conf);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                die("pipe");
        dbus_pid = fork();
        if (dbus_pid < 0)
                die("fork");
        if (dbus_pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || null < 0 ||
                    dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(pipefd[1], 3) < 0)
                        _exit(127);
                execlp("dbus-daemon", "dbus-daemon", conf_arg, "--nofork", "--nopidfile", "--nosyslog",
                       "--print-address=3", (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        /* It prints its address once it listens. */
        char line[512];
        size_t n = 0;
        while (n < sizeof(line) - 1) {
                ssize_t k = read(pipefd[0], line + n, sizeof(line) - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t) k;
                if (memchr(line, '\n', n))
                        break;
        }
        close(pipefd[0]);
        if (!memchr(line, '\n', n)) {
                errno = EIO;
                die("dbus-daemon did not start");
        }
        bus_address = xasprintf("unix:path=%s/bus", fixture_dir);
}

const char *fuzz_fixture_setup(void) {
        if (fixture_ready)
                return fixture_dir;
        /* run.sh points TMPDIR into the build directory: what a crash leaves stays there. */
        const char *tmp = getenv("TMPDIR");
        fixture_dir = xasprintf("%s/kactor-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(fixture_dir))
                die("mkdtemp");
        fixture_ready = true;
        atexit(fixture_teardown);

        runtime_dir = xasprintf("%s/run", fixture_dir);
        module_dir = xasprintf("%s/modules", fixture_dir);
        worker_path = xasprintf("%s/no-such-worker", fixture_dir);
        if (mkdir(runtime_dir, 0755) < 0 || mkdir(module_dir, 0755) < 0)
                die("mkdir");
        /* A module that resolves and passes the ownership check: creating an actor from it goes as
         * far as starting the worker. */
        _cleanup_free_ char *fake = xasprintf("%s/fake.so", module_dir);
        write_file(fake, "");
        module_path[0] = module_dir;

        /* No BPF programs per manager; logs only for what is wrong (FUZZ_VERBOSE=1: everything). */
        (void) setenv("KACTOR_TRACE", "off", 1);
        const char *v = getenv("FUZZ_VERBOSE");
        log_set_max_level(v && *v == '1' ? LOG_DEBUG : LOG_CRIT);

        bus_start();
        return fixture_dir;
}

void fuzz_fixture_config(ManagerConfig *ret) {
        *ret = (ManagerConfig) {
                .bus_address = bus_address,
                .runtime_dir = runtime_dir,
                .module_path = module_path,
                .n_gpus = 2,
                .num_cpus = 4,
                .worker_path = worker_path,
                .cgroup_manager = "none",
                .cgroup_name = "kactor-fuzz",
                .checkpoint_interval = UINT32_MAX,
                .access_group = "kactor-fuzz-no-such-group",
                .replicas = UINT_MAX,
        };
}

Manager *fuzz_manager_new(const ManagerConfig *config) {
        Manager *m = NULL;
        sigset_t alarm;

        /* libFuzzer's -timeout is a SIGALRM each second: it would interrupt the start's bus calls
         * (-EINTR), which a real node manager never sees. */
        sigemptyset(&alarm);
        sigaddset(&alarm, SIGALRM);
        CHECK(sigprocmask(SIG_BLOCK, &alarm, NULL) >= 0);
        int r = manager_new(config, &m);
        if (r < 0) {
                errno = -r;
                die("manager_new");
        }
        r = remote_setup(m, config);
        if (r < 0) {
                errno = -r;
                die("remote_setup");
        }
        r = manager_start(m);
        if (r < 0) {
                errno = -r;
                die("manager_start");
        }
        r = native_setup(m);
        if (r < 0) {
                errno = -r;
                die("native_setup");
        }
        CHECK(sigprocmask(SIG_UNBLOCK, &alarm, NULL) >= 0);
        return m;
}

unsigned fuzz_manager_pump(Manager *m, unsigned max, void (*drain)(void *userdata), void *userdata) {
        unsigned n = 0;
        for (unsigned i = 0; i < max; i++) {
                if (drain)
                        drain(userdata);
                int r = sd_event_run(m->event, 0);
                CHECK(r >= 0);
                if (r == 0)
                        break;
                n++;
        }
        if (drain)
                drain(userdata);
        return n;
}

int fuzz_write_all(Manager *m, int fd, const void *data, size_t len, void (*drain)(void *userdata),
                   void *userdata) {
        const char *p = data;
        unsigned stuck = 0;

        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        /* Full: let the manager read. */
                        if (fuzz_manager_pump(m, 64, drain, userdata) == 0 && ++stuck > 4)
                                return -EAGAIN;
                        continue;
                }
                stuck = 0;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

void fuzz_read_frames(int fd, Buffer *in, Frame *frame, size_t max_len, void (*check)(Frame *f, void *userdata),
                      void *userdata) {
        for (;;) {
                if (buffer_reserve_read(in, 65536) < 0)
                        abort();
                ssize_t n = recv(fd, in->data + in->end, in->cap - in->end, MSG_DONTWAIT);
                if (n <= 0)
                        return;
                in->end += (size_t) n;
                for (;;) {
                        const char *payload;
                        size_t len;
                        int r = frame_peek(in, &payload, &len);
                        CHECK(r >= 0);
                        if (r == 0)
                                break;
                        CHECK(len <= max_len);
                        CHECK(frame_parse(frame, payload, len) >= 0);
                        check(frame, userdata);
                        buffer_consume(in, PROTO_HEADER_SIZE + len);
                }
        }
}
