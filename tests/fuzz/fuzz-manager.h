/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A real node manager inside a fuzz target (fuzz-manager.c): a private directory, a private
 * dbus-daemon that dies with the fuzzer, the "none" cgroup manager, no tracing, and a worker
 * program that does not exist (creating a worker fails at once, so no process is started per
 * input). Used by fuzz-native.c and fuzz-peer-session.c.
 */

#include <stdio.h>
#include <stdlib.h>

#include "manager.h"

#define CHECK(cond)                                                                                          \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
                        abort();                                                                             \
                }                                                                                            \
        } while (0)

/* Sets up the directory (with a module directory holding "fake.so", an empty file) and the bus.
 * Exits the process on failure. Returns the directory. */
const char *fuzz_fixture_setup(void);
/* The config for a manager of the fixture; the caller may add to it (the cluster). */
void fuzz_fixture_config(ManagerConfig *ret);
/* manager_new() and manager_start(): aborts on failure. */
Manager *fuzz_manager_new(const ManagerConfig *config);

/* Runs the loop without blocking until nothing is left to dispatch (at most max iterations): returns
 * how many dispatched. Each iteration first calls drain(userdata) when given, the reading side of
 * the fuzzer's own sockets. */
unsigned fuzz_manager_pump(Manager *m, unsigned max, void (*drain)(void *userdata), void *userdata);

/* Reads what the manager sent on fd into in and hands each frame (at most max_len bytes; parsed into
 * frame) to check(frame, userdata); aborts on a frame that does not parse. */
void fuzz_read_frames(int fd, Buffer *in, Frame *frame, size_t max_len, void (*check)(Frame *f, void *userdata),
                      void *userdata);

/* Writes all of data to a non-blocking socket, pumping the loop while it is full. -EAGAIN when the
 * manager does not read it. */
int fuzz_write_all(Manager *m, int fd, const void *data, size_t len, void (*drain)(void *userdata),
                   void *userdata);
