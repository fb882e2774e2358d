/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Baselines for the kactor benchmarks, measured on this machine in this run:
 *
 *   raw_unix_pingpong      a 64-byte request and reply between two processes over a unix stream
 *                          socket (the kernel's floor for one synchronous hop)
 *   raw_unix_pingpong_1cpu the same with both processes on one CPU (information only)
 *   raw_unix_relay         the same through a third process that forwards each message to an echo
 *                          process and the answer back: the floor for any client -> broker ->
 *                          worker design such as kactor's (information beside the sync benchmarks)
 *   raw_unix_pipelined     36-byte length-prefixed frames, 128 per write(), parsed by a reader
 *                          process that drains many per read()
 *   posix_spawn_true       posix_spawn() + waitpid() of /bin/true
 *
 * Usage: bench-baseline [ENV-FILE] — the figures are also written to ENV-FILE as shell
 * assignments (KACTOR_BENCH_RTT_NS=..., KACTOR_BENCH_PIPE_RATE=..., KACTOR_BENCH_SPAWN_RATE=...),
 * which run.sh hands to the other benchmarks.
 */

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

extern char **environ;

#define FRAME_PAYLOAD 32
#define FRAMES_PER_WRITE 128

static int measure_echo(bool relay, bool one_cpu, double *ret_rate) {
        BenchEcho e;
        int r, r2;

        r = bench_echo_start(relay, one_cpu, &e);
        if (r < 0)
                return r;
        r = bench_measure(bench_echo_step, &e, ret_rate);
        r2 = bench_echo_stop(&e);
        return r < 0 ? r : r2;
}

/* The reader: counts frames until EOF, then writes the count back. */
static _Noreturn void pipe_reader(int fd) {
        size_t cap = 256 * 1024, start = 0, end = 0;
        uint64_t frames = 0;
        char *buf = malloc(cap);

        if (!buf)
                _exit(1);
        (void) close_range(3, (unsigned) fd - 1, 0);
        (void) close_range((unsigned) fd + 1, ~0U, 0);
        for (;;) {
                ssize_t k;

                if (start > 0) {
                        memmove(buf, buf + start, end - start);
                        end -= start;
                        start = 0;
                }
                k = read(fd, buf + end, cap - end);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                if (k == 0)
                        break;
                end += (size_t) k;
                while (end - start >= 4) {
                        uint32_t len;

                        memcpy(&len, buf + start, 4);
                        if (len > cap - 4)
                                _exit(1);
                        if (end - start < 4 + (size_t) len)
                                break;
                        /* Touch the payload as a parser would. */
                        if (buf[start + 4] != 'k')
                                _exit(1);
                        start += 4 + len;
                        frames++;
                }
        }
        if (bench_write_full(fd, &frames, sizeof(frames)) < 0)
                _exit(1);
        _exit(0);
}

static int measure_pipelined(double seconds, double *ret_rate) {
        char batch[FRAMES_PER_WRITE * (4 + FRAME_PAYLOAD)];
        uint64_t start, end, sent = 0, received = 0;
        int sv[2], r;
        pid_t pid;

        for (size_t i = 0; i < FRAMES_PER_WRITE; i++) {
                uint32_t len = FRAME_PAYLOAD;
                char *f = batch + i * (4 + FRAME_PAYLOAD);

                memcpy(f, &len, 4);
                memset(f + 4, 'k', FRAME_PAYLOAD);
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                close(sv[0]);
                pipe_reader(sv[1]);
        }
        close(sv[1]);

        start = bench_now_ns();
        end = start + (uint64_t) (seconds * 1e9);
        do {
                r = bench_write_full(sv[0], batch, sizeof(batch));
                if (r < 0)
                        break;
                sent += FRAMES_PER_WRITE;
        } while (bench_now_ns() < end);
        if (r >= 0 && shutdown(sv[0], SHUT_WR) < 0)
                r = -errno;
        if (r >= 0) {
                r = bench_read_full(sv[0], &received, sizeof(received));
                r = r < 0 ? r : r == 0 ? -EPIPE : 0;
        }
        end = bench_now_ns();
        close(sv[0]);
        if (bench_reap(pid) < 0 && r >= 0)
                r = -ECHILD;
        if (r < 0)
                return r;
        if (received != sent)
                return -EPROTO;
        *ret_rate = (double) received / ((double) (end - start) / 1e9);
        return 0;
}

static int spawn_step(void *userdata, uint64_t *ops) {
        char *argv[] = { "/bin/true", NULL };
        pid_t pid;
        int r;

        r = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
        if (r != 0)
                return -r;
        r = bench_reap(pid);
        if (r < 0)
                return r;
        (*ops)++;
        return 0;
}

int main(int argc, char *argv[]) {
        double rtt_rate, rtt1_rate, relay_rate, pipe_rate, spawn_rate;
        char figure[64], count[32], ratio[96];
        FILE *env = NULL;
        int r;

        signal(SIGPIPE, SIG_IGN);

        r = measure_echo(false, false, &rtt_rate);
        if (r < 0)
                bench_fail("raw_unix_pingpong", NULL, r, "measuring");
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(rtt_rate, count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "%.1f µs round trip; the sync baseline", 1e6 / rtt_rate);
        bench_line("raw_unix_pingpong", figure, ratio, BENCH_INFO, NULL);

        r = measure_echo(false, true, &rtt1_rate);
        if (r < 0)
                bench_fail("raw_unix_pingpong_1cpu", NULL, r, "measuring");
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(rtt1_rate, count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "%.1f µs round trip, both on one CPU", 1e6 / rtt1_rate);
        bench_line("raw_unix_pingpong_1cpu", figure, ratio, BENCH_INFO, NULL);

        r = measure_echo(true, false, &relay_rate);
        if (r < 0)
                bench_fail("raw_unix_relay", NULL, r, "measuring");
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(relay_rate, count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "%.1f µs = %.2fx raw RTT, through a relay process", 1e6 / relay_rate,
                 rtt_rate / relay_rate);
        bench_line("raw_unix_relay", figure, ratio, BENCH_INFO, NULL);

        /* Warm up the pipe path once, then measure. */
        r = measure_pipelined(bench_warmup_s(), &pipe_rate);
        if (r >= 0)
                r = measure_pipelined(bench_duration_s(), &pipe_rate);
        if (r < 0)
                bench_fail("raw_unix_pipelined", NULL, r, "measuring");
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(pipe_rate, count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "%d-byte frames, %d per write; the async baseline", 4 + FRAME_PAYLOAD,
                 FRAMES_PER_WRITE);
        bench_line("raw_unix_pipelined", figure, ratio, BENCH_INFO, NULL);

        r = bench_measure(spawn_step, NULL, &spawn_rate);
        if (r < 0)
                bench_fail("posix_spawn_true", NULL, r, "spawning /bin/true");
        snprintf(figure, sizeof(figure), "%s/s", bench_format_count(spawn_rate, count, sizeof(count)));
        snprintf(ratio, sizeof(ratio), "%.0f µs per spawn+wait; the creation baseline", 1e6 / spawn_rate);
        bench_line("posix_spawn_true", figure, ratio, BENCH_INFO, NULL);

        if (argc > 1) {
                env = fopen(argv[1], "we");
                if (!env)
                        bench_fail("baseline", NULL, -errno, "opening %s", argv[1]);
                fprintf(env, "KACTOR_BENCH_RTT_NS=%.0f\nKACTOR_BENCH_RTT_1CPU_NS=%.0f\n"
                        "KACTOR_BENCH_RELAY_NS=%.0f\nKACTOR_BENCH_PIPE_RATE=%.0f\nKACTOR_BENCH_SPAWN_RATE=%.0f\n",
                        1e9 / rtt_rate, 1e9 / rtt1_rate, 1e9 / relay_rate, pipe_rate, spawn_rate);
                if (fclose(env) != 0)
                        bench_fail("baseline", NULL, -errno, "writing %s", argv[1]);
        }
        return 0;
}
