/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "callqueue.h"

void callqueue_init(CallQueue *q) {
        TAILQ_INIT(&q->queued);
        TAILQ_INIT(&q->inflight);
        q->n_queued = q->n_inflight = 0;
        q->direct_tail = NULL;
}

void callqueue_push(CallQueue *q, Call *c) {
        TAILQ_INSERT_TAIL(&q->queued, c, link);
        q->n_queued++;
}

Call *callqueue_peek_ready(CallQueue *q) {
        Call *c = TAILQ_FIRST(&q->queued);
        if (!c || c->deps.remaining > 0)
                return NULL;
        return c;
}

void callqueue_start(CallQueue *q, Call *c, uint64_t seq) {
        TAILQ_REMOVE(&q->queued, c, link);
        q->n_queued--;
        c->seq = seq;
        TAILQ_INSERT_TAIL(&q->inflight, c, link);
        q->n_inflight++;
}

Call *callqueue_finish(CallQueue *q, uint64_t seq) {
        Call *c = TAILQ_FIRST(&q->inflight);
        if (!c || c->seq != seq)
                return NULL;
        TAILQ_REMOVE(&q->inflight, c, link);
        q->n_inflight--;
        return c;
}

Call *callqueue_pop_any(CallQueue *q) {
        Call *c = TAILQ_FIRST(&q->inflight);
        if (c && q->direct_tail == c)
                q->direct_tail = NULL;
        if (c) {
                TAILQ_REMOVE(&q->inflight, c, link);
                q->n_inflight--;
                return c;
        }
        c = TAILQ_FIRST(&q->queued);
        if (c) {
                TAILQ_REMOVE(&q->queued, c, link);
                q->n_queued--;
        }
        return c;
}

void callqueue_start_direct(CallQueue *q, Call *c, uint64_t seq) {
        c->seq = seq;
        TAILQ_INSERT_TAIL(&q->inflight, c, link);
        q->n_inflight++;
}

size_t callqueue_requeue_inflight(CallQueue *q) {
        size_t n = 0;
        Call *c;
        q->direct_tail = NULL;
        /* Last first, each to the head: the order is kept. */
        while ((c = TAILQ_LAST(&q->inflight, CallList))) {
                TAILQ_REMOVE(&q->inflight, c, link);
                c->direct = false; /* it is sent to the next worker like any other */
                q->n_inflight--;
                TAILQ_INSERT_HEAD(&q->queued, c, link);
                q->n_queued++;
                n++;
        }
        return n;
}

void callqueue_start_first(CallQueue *q, Call *c) {
        c->seq = 0;
        if (q->direct_tail)
                TAILQ_INSERT_AFTER(&q->inflight, q->direct_tail, c, link);
        else
                TAILQ_INSERT_HEAD(&q->inflight, c, link);
        q->direct_tail = c;
        q->n_inflight++;
}

Call *callqueue_finish_direct(CallQueue *q) {
        Call *c = TAILQ_FIRST(&q->inflight);
        if (!c || !c->direct)
                return NULL;
        TAILQ_REMOVE(&q->inflight, c, link);
        q->n_inflight--;
        if (q->direct_tail == c)
                q->direct_tail = NULL;
        return c;
}

Call *callqueue_find_direct(CallQueue *q, kactor_id result) {
        Call *c;
        TAILQ_FOREACH(c, &q->inflight, link)
                if (call_result_unmade(c) && kactor_id_equal(c->direct_id, result))
                        return c;
        TAILQ_FOREACH(c, &q->queued, link)
                if (call_result_unmade(c) && kactor_id_equal(c->direct_id, result))
                        return c;
        return NULL;
}

void callqueue_remove(CallQueue *q, Call *c, bool inflight) {
        if (inflight) {
                TAILQ_REMOVE(&q->inflight, c, link);
                q->n_inflight--;
        } else {
                TAILQ_REMOVE(&q->queued, c, link);
                q->n_queued--;
        }
}
