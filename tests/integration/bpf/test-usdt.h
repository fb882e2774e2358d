/* SPDX-License-Identifier: (LGPL-2.1-or-later OR BSD-2-Clause) */
#pragma once

/* What tests/integration/bpf/test-usdt.bpf.c sends per probe hit (shared with the test). */

enum {
        USDT_DIRECT_CALL_SENT = 1,
        USDT_DIRECT_CALL_RECEIVED,
        USDT_DIRECT_RESULT_RECEIVED,
        USDT_CALL_STORED,
        _USDT_PROBE_MAX,
};

/* call_stored: set in args[2] above the method id when t_queued <= t_dispatched. */
#define USDT_TIMES_ORDERED (1ULL << 32)

struct usdt_event {
        __u32 probe;
        __u32 pid;
        __u64 args[3];
};
