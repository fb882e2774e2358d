/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What fuzz-direct.c and the seed writer (seeds.c) agree on: the ids of the callers the worker is
 * handed, the methods of the target's actor class, and the layout of an input.
 *
 * An input is a setup byte (FUZZ_DIRECT_*), then, when the setup asks for two direct sockets, a
 * 16-bit little-endian count of the bytes that go to the first (the rest go to the second), then
 * the bytes the callers send: a stream of frames as a client writes them (a 32-bit little-endian
 * length, the payload), sent whole before the worker reads, then the end of the stream.
 */

#include <stdint.h>

/* The node's high half and the callers' id prefixes: caller k makes ids {HI, PREFIX(k) | n}. */
#define FUZZ_DIRECT_HI UINT64_C(0x00000000000000a1)
#define FUZZ_DIRECT_PREFIX(k) ((uint64_t) (k) << 40)
#define FUZZ_DIRECT_UID 1000
/* With FUZZ_DIRECT_MIN_LO, DIRECT_OPEN says the caller made ids up to this one already. */
#define FUZZ_DIRECT_MIN_SEQ 4
/* With FUZZ_DIRECT_EXEC, a relayed call of caller 1 with this id runs once the sockets are open. */
#define FUZZ_DIRECT_EXEC_SEQ 8

enum {
        FUZZ_DIRECT_TWO = 1 << 0,         /* two direct sockets */
        FUZZ_DIRECT_SAME_CALLER = 1 << 1, /* the second is the first caller's too (same ids) */
        FUZZ_DIRECT_CALLER_GONE = 1 << 2, /* the first caller closes its end once it has written */
        FUZZ_DIRECT_MIN_LO = 1 << 3,      /* DIRECT_OPEN's highest id made: FUZZ_DIRECT_MIN_SEQ */
        FUZZ_DIRECT_EXEC = 1 << 4,        /* a relayed call of FUZZ_DIRECT_EXEC_SEQ ran */
        FUZZ_DIRECT_CLOSE = 1 << 5,       /* DIRECT_CLOSE after the worker's first wait */
        FUZZ_DIRECT_SLOW_READER = 1 << 6, /* the callers read their answers only after a while */
        FUZZ_DIRECT_REATTACH = 1 << 7,    /* the worker re-attached to a new node manager after its
                                           * first wait: it closes every direct socket at once */
};

/* The methods of the target's class: "echo" (its arguments), "first" (its first argument),
 * "fail" (kactor_fail()), "neg" (a bare -EINVAL), "big" (a string of FUZZ_DIRECT_BIG bytes, at
 * most FUZZ_DIRECT_BIG_MAX times an input), "ids" (a value naming an actor: DRESULT_FETCH), "nil"
 * and the read-only "get" (the number of calls run). */
#define FUZZ_DIRECT_BIG 70000
#define FUZZ_DIRECT_BIG_MAX 16
