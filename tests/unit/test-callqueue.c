/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The call queue: calls leave in submission order, a head waiting for its arguments holds back
 * everything behind it, and dispatched calls finish in the order they started. */

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdlib.h>

#include "callqueue.h"

static CallQueue q;

static void setup(void) {
        callqueue_init(&q);
}

TestSuite(callqueue, .init = setup);

/* Calls are plain structs here: the queue only links them. */
static Call calls[8];

static Call *call(size_t i, unsigned pending_args) {
        cr_assert_lt(i, sizeof(calls) / sizeof(calls[0]));
        calls[i] = (Call) { .deps = { .remaining = pending_args } };
        return &calls[i];
}

/* Starts the ready head with seq and checks it is the call expected. */
static void start(Call *expected, uint64_t seq) {
        Call *c = callqueue_peek_ready(&q);
        cr_assert_eq(c, expected);
        callqueue_start(&q, c, seq);
        cr_assert_eq(c->seq, seq);
}

Test(callqueue, new_queue_is_empty) {
        cr_assert(callqueue_is_empty(&q));
        cr_assert_eq(q.n_queued, 0);
        cr_assert_eq(q.n_inflight, 0);
        cr_assert_null(callqueue_peek_ready(&q));
        cr_assert_null(callqueue_finish(&q, 1));
        cr_assert_null(callqueue_pop_any(&q));
}

Test(callqueue, calls_start_in_submission_order) {
        Call *a = call(0, 0), *b = call(1, 0), *c = call(2, 0);
        callqueue_push(&q, a);
        callqueue_push(&q, b);
        callqueue_push(&q, c);
        cr_assert_eq(q.n_queued, 3);
        cr_assert_not(callqueue_is_empty(&q));

        start(a, 1);
        start(b, 2);
        start(c, 3);
        cr_assert_null(callqueue_peek_ready(&q));
        cr_assert_eq(q.n_queued, 0);
        cr_assert_eq(q.n_inflight, 3);
        cr_assert_not(callqueue_is_empty(&q));
}

Test(callqueue, peeking_does_not_take_the_call) {
        Call *a = call(0, 0);
        callqueue_push(&q, a);

        cr_assert_eq(callqueue_peek_ready(&q), a);
        cr_assert_eq(callqueue_peek_ready(&q), a);
        cr_assert_eq(q.n_queued, 1);
}

Test(callqueue, head_waiting_for_its_arguments_holds_back_the_calls_behind_it) {
        Call *a = call(0, 2), *b = call(1, 0), *c = call(2, 0);
        callqueue_push(&q, a);
        callqueue_push(&q, b);
        callqueue_push(&q, c);

        cr_assert_null(callqueue_peek_ready(&q), "b and c are ready, but a comes first");

        a->deps.remaining = 1;
        cr_assert_null(callqueue_peek_ready(&q));

        a->deps.remaining = 0;
        start(a, 1);
        start(b, 2);
        start(c, 3);
}

Test(callqueue, call_waiting_behind_a_ready_head_waits_its_turn) {
        Call *a = call(0, 0), *b = call(1, 1), *c = call(2, 0);
        callqueue_push(&q, a);
        callqueue_push(&q, b);
        callqueue_push(&q, c);

        start(a, 1);
        cr_assert_null(callqueue_peek_ready(&q), "c must not overtake b");
        cr_assert_eq(q.n_queued, 2);

        b->deps.remaining = 0;
        start(b, 2);
        start(c, 3);
}

Test(callqueue, calls_finish_in_the_order_they_started) {
        Call *a = call(0, 0), *b = call(1, 0), *c = call(2, 0);
        callqueue_push(&q, a);
        callqueue_push(&q, b);
        callqueue_push(&q, c);
        start(a, 10);
        start(b, 11);
        start(c, 12);

        cr_assert_eq(callqueue_finish(&q, 10), a);
        cr_assert_eq(q.n_inflight, 2);
        cr_assert_eq(callqueue_finish(&q, 11), b);
        cr_assert_eq(callqueue_finish(&q, 12), c);
        cr_assert(callqueue_is_empty(&q));
        cr_assert_null(callqueue_finish(&q, 13));
}

Test(callqueue, answer_out_of_order_is_refused_and_changes_nothing) {
        Call *a = call(0, 0), *b = call(1, 0);
        callqueue_push(&q, a);
        callqueue_push(&q, b);
        start(a, 1);
        start(b, 2);

        cr_assert_null(callqueue_finish(&q, 2), "b cannot finish before a");
        cr_assert_null(callqueue_finish(&q, 99));
        cr_assert_null(callqueue_finish(&q, 0));
        cr_assert_eq(q.n_inflight, 2);

        cr_assert_eq(callqueue_finish(&q, 1), a);
        cr_assert_eq(callqueue_finish(&q, 2), b);
}

Test(callqueue, finish_on_a_queue_with_nothing_in_flight_returns_null) {
        Call *a = call(0, 0);
        callqueue_push(&q, a);

        cr_assert_null(callqueue_finish(&q, 0));
        cr_assert_eq(q.n_queued, 1);
        cr_assert_eq(callqueue_peek_ready(&q), a);
}

Test(callqueue, new_calls_can_be_queued_while_others_are_in_flight) {
        Call *a = call(0, 0), *b = call(1, 0);
        callqueue_push(&q, a);
        start(a, 1);
        callqueue_push(&q, b);

        cr_assert_eq(callqueue_peek_ready(&q), b);
        cr_assert_eq(q.n_queued, 1);
        cr_assert_eq(q.n_inflight, 1);
        cr_assert_eq(callqueue_finish(&q, 1), a);
        start(b, 2);
        cr_assert_eq(callqueue_finish(&q, 2), b);
        cr_assert(callqueue_is_empty(&q));
}

Test(callqueue, pop_any_takes_calls_in_flight_first_then_queued_ones) {
        Call *a = call(0, 0), *b = call(1, 0), *c = call(2, 3), *d = call(3, 0);
        callqueue_push(&q, a);
        callqueue_push(&q, b);
        callqueue_push(&q, c);
        callqueue_push(&q, d);
        start(a, 1);
        start(b, 2);

        cr_assert_eq(callqueue_pop_any(&q), a);
        cr_assert_eq(q.n_inflight, 1);
        cr_assert_eq(callqueue_pop_any(&q), b);
        cr_assert_eq(q.n_inflight, 0);
        cr_assert_eq(callqueue_pop_any(&q), c, "queued calls go too, ready or not");
        cr_assert_eq(q.n_queued, 1);
        cr_assert_eq(callqueue_pop_any(&q), d);
        cr_assert_null(callqueue_pop_any(&q));
        cr_assert(callqueue_is_empty(&q));
}

Test(callqueue, thousand_calls_come_out_in_submission_order) {
        enum { N = 1000 };
        Call *many = calloc(N, sizeof(Call));
        cr_assert_not_null(many);

        for (size_t i = 0; i < N; i++) {
                many[i].sent_usec = i;
                callqueue_push(&q, &many[i]);
        }
        cr_assert_eq(q.n_queued, N);

        /* Start them in windows of 7 and finish each window, like an actor with a small window. */
        uint64_t next_start = 0, next_finish = 0;
        while (next_finish < N) {
                for (int k = 0; k < 7; k++) {
                        Call *c = callqueue_peek_ready(&q);
                        if (!c)
                                break;
                        cr_assert_eq(c->sent_usec, next_start, "started %" PRIu64 " out of order",
                                     c->sent_usec);
                        callqueue_start(&q, c, next_start + 1);
                        next_start++;
                }
                Call *c;
                while ((c = callqueue_finish(&q, next_finish + 1))) {
                        cr_assert_eq(c->sent_usec, next_finish);
                        next_finish++;
                }
        }
        cr_assert_eq(next_start, N);
        cr_assert(callqueue_is_empty(&q));
        free(many);
}

/* Direct calls: the worker recorded them while relayed calls it had not read yet were in flight; it
 * runs them first, a batch's records in their order, and their results come back in that order. */
Test(callqueue, direct_calls_go_before_the_relayed_calls_the_worker_has_not_run) {
        Call *r1 = call(0, 0), *r2 = call(1, 0), *d1 = call(2, 0), *d2 = call(3, 0);
        d1->direct = d2->direct = true;
        callqueue_push(&q, r1);
        callqueue_push(&q, r2);
        start(r1, 1);
        start(r2, 2);

        callqueue_start_first(&q, d1);
        callqueue_start_first(&q, d2);
        cr_assert_eq(q.n_inflight, 4);

        /* A relayed result cannot come before the direct ones. */
        cr_assert_null(callqueue_finish(&q, 1));
        cr_assert_eq(callqueue_finish_direct(&q), d1);
        /* The next record goes after d2, the last of the direct calls at the head. */
        Call *d3 = call(4, 0);
        d3->direct = true;
        callqueue_start_first(&q, d3);
        cr_assert_eq(callqueue_finish_direct(&q), d2);
        cr_assert_eq(callqueue_finish_direct(&q), d3);
        cr_assert_null(callqueue_finish_direct(&q), "r1 is not a direct call");
        cr_assert_eq(callqueue_finish(&q, 1), r1);

        /* With no direct call left at the head, a new one goes first again. */
        Call *d4 = call(5, 0);
        d4->direct = true;
        callqueue_start_first(&q, d4);
        cr_assert_eq(callqueue_finish_direct(&q), d4);
        cr_assert_eq(callqueue_finish(&q, 2), r2);
        cr_assert(callqueue_is_empty(&q));
}

Test(callqueue, requeued_direct_calls_are_sent_again_as_relayed_ones) {
        Call *r1 = call(0, 0), *d1 = call(1, 0);
        d1->direct = true;
        callqueue_push(&q, r1);
        start(r1, 1);
        callqueue_start_first(&q, d1);

        /* The worker died: both run again, in the order they ran, sent by the node manager. */
        cr_assert_eq(callqueue_requeue_inflight(&q), 2);
        cr_assert_not(d1->direct);
        start(d1, 7);
        start(r1, 8);
        cr_assert_null(callqueue_finish_direct(&q));
        cr_assert_eq(callqueue_finish(&q, 7), d1);
        cr_assert_eq(callqueue_finish(&q, 8), r1);
        /* And a record after that is the head again. */
        Call *d2 = call(2, 0);
        d2->direct = true;
        callqueue_start_first(&q, d2);
        cr_assert_eq(callqueue_finish_direct(&q), d2);
}
