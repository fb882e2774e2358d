/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The object store: ids, states, waiters, reference counting and what values hold. */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "objstore.h"

static kactor_id id(uint64_t lo) {
        return (kactor_id) { .hi = 7, .lo = lo };
}

static bool id_eq(kactor_id a, kactor_id b) {
        return a.hi == b.hi && a.lo == b.lo;
}

/* What the store told its user: actor holders and freed objects. */
#define MAX_EVENTS 64
typedef struct Record {
        kactor_id actor_refs[MAX_EVENTS], actor_unrefs[MAX_EVENTS], freed[MAX_EVENTS];
        size_t n_actor_refs, n_actor_unrefs, n_freed;
} Record;

static bool on_actor_ref(void *userdata, kactor_id actor) {
        Record *r = userdata;
        cr_assert_lt(r->n_actor_refs, MAX_EVENTS);
        r->actor_refs[r->n_actor_refs++] = actor;
        return true;
}

static void on_actor_unref(void *userdata, kactor_id actor) {
        Record *r = userdata;
        cr_assert_lt(r->n_actor_unrefs, MAX_EVENTS);
        r->actor_unrefs[r->n_actor_unrefs++] = actor;
}

static void on_object_freed(void *userdata, Object *o) {
        Record *r = userdata;
        cr_assert_lt(r->n_freed, MAX_EVENTS);
        r->freed[r->n_freed++] = o->id;
}

static size_t count_id(const kactor_id *ids, size_t n, kactor_id x) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                k += id_eq(ids[i], x);
        return k;
}

static const ObjectStoreOps record_ops = {
        .actor_ref = on_actor_ref,
        .actor_unref = on_actor_unref,
        .object_freed = on_object_freed,
};

static ObjectStore store;
static Record rec;

static void setup(void) {
        rec = (Record) {};
        objstore_init(&store, &record_ops, &rec);
}

static void teardown(void) {
        objstore_done(&store);
}

TestSuite(objstore, .init = setup, .fini = teardown);

static Object *add(uint64_t lo) {
        Object *o = NULL;
        cr_assert_eq(objstore_add(&store, id(lo), &o), 0);
        cr_assert_not_null(o);
        return o;
}

static void ready(Object *o, const char *value) {
        cr_assert_eq(objstore_set_ready(&store, o, value, strlen(value), NULL, NULL, 0), 0);
}

/* A waiter that records what it was told. */
typedef struct Seen {
        Waiter w;
        Object *told[MAX_EVENTS];
        ObjectState state_when_told[MAX_EVENTS];
        size_t n_told;
} Seen;

static void seen_done(Waiter *w, Object *o) {
        Seen *s = w->userdata;
        cr_assert_lt(s->n_told, MAX_EVENTS);
        s->state_when_told[s->n_told] = o->state;
        s->told[s->n_told++] = o;
}

static void seen_init(Seen *s) {
        *s = (Seen) {};
        s->w = (Waiter) { .object_done = seen_done, .userdata = s };
}

/* --- ids --- */

Test(objstore, added_object_is_found_by_id_pending_with_one_reference) {
        Object *o = add(1);

        cr_assert_eq(objstore_find(&store, id(1)), o);
        cr_assert_eq(o->state, OBJECT_PENDING);
        cr_assert_eq(o->refs, 1);
        cr_assert(id_eq(o->id, id(1)));
        cr_assert_eq(store.n_objects, 1);
}

Test(objstore, unknown_id_is_not_found) {
        add(1);
        cr_assert_null(objstore_find(&store, id(2)));
        cr_assert_null(objstore_find(&store, (kactor_id) { .hi = 8, .lo = 1 }));
}

Test(objstore, adding_a_taken_id_fails_with_eexist_and_keeps_the_first) {
        Object *o = add(1);
        ready(o, "first");

        Object *dup = (Object *) 0x1;
        cr_assert_eq(objstore_add(&store, id(1), &dup), -EEXIST);
        cr_assert_eq(store.n_objects, 1);
        cr_assert_eq(objstore_find(&store, id(1)), o);
        cr_assert_eq(o->state, OBJECT_READY);
        cr_assert_eq(o->refs, 1);
}

Test(objstore, ids_differing_only_in_the_node_half_are_distinct) {
        Object *a = NULL, *b = NULL;
        cr_assert_eq(objstore_add(&store, (kactor_id) { .hi = 1, .lo = 5 }, &a), 0);
        cr_assert_eq(objstore_add(&store, (kactor_id) { .hi = 2, .lo = 5 }, &b), 0);
        cr_assert_neq(a, b);
        cr_assert_eq(objstore_find(&store, (kactor_id) { .hi = 2, .lo = 5 }), b);
        cr_assert_eq(store.n_objects, 2);
}

Test(objstore, state_names) {
        cr_assert_str_eq(object_state_to_string(OBJECT_PENDING), "pending");
        cr_assert_str_eq(object_state_to_string(OBJECT_READY), "ready");
        cr_assert_str_eq(object_state_to_string(OBJECT_FAILED), "failed");
}

/* --- ready and failed --- */

Test(objstore, ready_object_keeps_a_copy_of_its_value) {
        Object *o = add(1);
        char value[] = "hello";

        cr_assert_eq(objstore_set_ready(&store, o, value, 5, NULL, NULL, 0), 0);
        value[0] = 'J';

        cr_assert_eq(o->state, OBJECT_READY);
        cr_assert_eq(o->len, 5);
        cr_assert_eq(memcmp(o->data, "hello", 5), 0);
        cr_assert_eq(o->n_contained, 0);
}

Test(objstore, ready_object_with_an_empty_value_has_length_zero) {
        Object *o = add(1);
        cr_assert_eq(objstore_set_ready(&store, o, "", 0, NULL, NULL, 0), 0);
        cr_assert_eq(o->state, OBJECT_READY);
        cr_assert_eq(o->len, 0);
        cr_assert_eq(store.bytes, 0);
}

Test(objstore, setting_a_ready_object_again_fails_with_ealready_and_keeps_the_value) {
        Object *o = add(1);
        ready(o, "first");

        cr_assert_eq(objstore_set_ready(&store, o, "second!", 7, NULL, NULL, 0), -EALREADY);
        cr_assert_eq(objstore_set_failed(&store, o, KACTOR_ERROR_TASK_FAILED, "boom"), -EALREADY);

        cr_assert_eq(o->state, OBJECT_READY);
        cr_assert_eq(o->len, 5);
        cr_assert_eq(memcmp(o->data, "first", 5), 0);
        cr_assert_null(o->message);
        cr_assert_eq(store.bytes, 5);
}

Test(objstore, failed_object_keeps_the_code_and_a_copy_of_the_message) {
        Object *o = add(1);
        char msg[] = "division by zero";

        cr_assert_eq(objstore_set_failed(&store, o, KACTOR_ERROR_TASK_FAILED, msg), 0);
        msg[0] = 'X';

        cr_assert_eq(o->state, OBJECT_FAILED);
        cr_assert_eq(o->error, KACTOR_ERROR_TASK_FAILED);
        cr_assert_str_eq(o->message, "division by zero");
        cr_assert_null(o->data);
        cr_assert_eq(store.bytes, 0);
}

Test(objstore, failed_object_without_a_message_has_an_empty_one) {
        Object *o = add(1);
        cr_assert_eq(objstore_set_failed(&store, o, KACTOR_ERROR_ACTOR_DIED, NULL), 0);
        cr_assert_str_eq(o->message, "");
}

Test(objstore, finishing_a_failed_object_again_fails_with_ealready_and_keeps_the_error) {
        Object *o = add(1);
        cr_assert_eq(objstore_set_failed(&store, o, KACTOR_ERROR_ACTOR_DIED, "died"), 0);

        cr_assert_eq(objstore_set_ready(&store, o, "late", 4, NULL, NULL, 0), -EALREADY);
        cr_assert_eq(objstore_set_failed(&store, o, KACTOR_ERROR_TIMEOUT, "again"), -EALREADY);

        cr_assert_eq(o->state, OBJECT_FAILED);
        cr_assert_eq(o->error, KACTOR_ERROR_ACTOR_DIED);
        cr_assert_str_eq(o->message, "died");
        cr_assert_null(o->data);
        cr_assert_eq(store.bytes, 0);
}

/* --- waiters --- */

Test(objstore, waiter_is_told_once_when_its_object_becomes_ready) {
        Object *o = add(1);
        Seen s;
        seen_init(&s);

        cr_assert_eq(objstore_wait_for(&store, o, &s.w), 1);
        cr_assert_eq(s.w.remaining, 1);
        cr_assert_eq(s.n_told, 0);

        ready(o, "v");
        cr_assert_eq(s.n_told, 1);
        cr_assert_eq(s.told[0], o);
        cr_assert_eq(s.state_when_told[0], OBJECT_READY, "the value is visible when the waiter is told");
        cr_assert_eq(s.w.remaining, 0);

        /* Nothing more to tell: a failed second attempt tells nobody. */
        cr_assert_eq(objstore_set_ready(&store, o, "w", 1, NULL, NULL, 0), -EALREADY);
        cr_assert_eq(s.n_told, 1);
}

Test(objstore, waiter_is_told_when_its_object_fails) {
        Object *o = add(1);
        Seen s;
        seen_init(&s);

        cr_assert_eq(objstore_wait_for(&store, o, &s.w), 1);
        cr_assert_eq(objstore_set_failed(&store, o, KACTOR_ERROR_TASK_FAILED, "boom"), 0);

        cr_assert_eq(s.n_told, 1);
        cr_assert_eq(s.state_when_told[0], OBJECT_FAILED);
        cr_assert_eq(s.w.remaining, 0);
}

Test(objstore, waiting_for_a_finished_object_registers_nothing) {
        Object *a = add(1), *b = add(2);
        ready(a, "v");
        cr_assert_eq(objstore_set_failed(&store, b, KACTOR_ERROR_TASK_FAILED, "x"), 0);
        Seen s;
        seen_init(&s);

        cr_assert_eq(objstore_wait_for(&store, a, &s.w), 0);
        cr_assert_eq(objstore_wait_for(&store, b, &s.w), 0);
        cr_assert_eq(s.w.remaining, 0);
        cr_assert_eq(a->n_waiters, 0);
        cr_assert_eq(s.n_told, 0);
}

Test(objstore, waiter_on_several_objects_is_told_once_per_object) {
        Object *a = add(1), *b = add(2), *c = add(3);
        Seen s;
        seen_init(&s);

        cr_assert_eq(objstore_wait_for(&store, a, &s.w), 1);
        cr_assert_eq(objstore_wait_for(&store, b, &s.w), 1);
        cr_assert_eq(objstore_wait_for(&store, c, &s.w), 1);
        cr_assert_eq(s.w.remaining, 3);

        ready(b, "b");
        cr_assert_eq(s.w.remaining, 2);
        cr_assert_eq(objstore_set_failed(&store, c, KACTOR_ERROR_TASK_FAILED, "c"), 0);
        cr_assert_eq(s.w.remaining, 1);
        ready(a, "a");
        cr_assert_eq(s.w.remaining, 0);

        cr_assert_eq(s.n_told, 3);
        cr_assert_eq(s.told[0], b);
        cr_assert_eq(s.told[1], c);
        cr_assert_eq(s.told[2], a);
}

Test(objstore, the_same_object_named_twice_by_one_waiter_is_counted_once) {
        Object *a = add(1), *b = add(2);
        Seen s;
        seen_init(&s);

        cr_assert_eq(objstore_wait_for(&store, a, &s.w), 1);
        cr_assert_eq(objstore_wait_for(&store, b, &s.w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &s.w), 1);
        cr_assert_eq(s.w.remaining, 2);

        ready(a, "a");
        cr_assert_eq(s.n_told, 1);
        cr_assert_eq(s.w.remaining, 1);
        ready(b, "b");
        cr_assert_eq(s.n_told, 2);
        cr_assert_eq(s.w.remaining, 0);
}

Test(objstore, every_waiter_on_an_object_is_told) {
        Object *o = add(1);
        Seen s[5];
        for (size_t i = 0; i < 5; i++) {
                seen_init(&s[i]);
                cr_assert_eq(objstore_wait_for(&store, o, &s[i].w), 1);
        }

        ready(o, "v");
        for (size_t i = 0; i < 5; i++) {
                cr_assert_eq(s[i].n_told, 1, "waiter %zu", i);
                cr_assert_eq(s[i].w.remaining, 0, "waiter %zu", i);
        }
}

Test(objstore, unwaited_waiter_is_not_told_and_its_count_drops) {
        Object *a = add(1), *b = add(2);
        Seen s, other;
        seen_init(&s);
        seen_init(&other);
        cr_assert_eq(objstore_wait_for(&store, a, &s.w), 1);
        cr_assert_eq(objstore_wait_for(&store, b, &s.w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &other.w), 1);

        objstore_unwait(a, &s.w);
        cr_assert_eq(s.w.remaining, 1);

        ready(a, "a");
        cr_assert_eq(s.n_told, 0);
        cr_assert_eq(other.n_told, 1, "the other waiter on the object is still told");

        ready(b, "b");
        cr_assert_eq(s.n_told, 1);
        cr_assert_eq(s.told[0], b);
        cr_assert_eq(s.w.remaining, 0);
}

Test(objstore, unwaiting_a_waiter_that_is_not_registered_changes_nothing) {
        Object *a = add(1), *b = add(2);
        Seen s;
        seen_init(&s);
        cr_assert_eq(objstore_wait_for(&store, b, &s.w), 1);

        objstore_unwait(a, &s.w);
        cr_assert_eq(s.w.remaining, 1);

        objstore_unwait(b, &s.w);
        objstore_unwait(b, &s.w);
        cr_assert_eq(s.w.remaining, 0);

        ready(b, "b");
        cr_assert_eq(s.n_told, 0);
}

/* Like a Get that completes on its first object: unregisters from all of them and frees itself. */
typedef struct SelfFreeing {
        Waiter w;
        Object *objects[4];
        size_t n_objects;
        unsigned *calls;
} SelfFreeing;

static void self_freeing_done(Waiter *w, Object *o) {
        SelfFreeing *g = w->userdata;
        (*g->calls)++;
        for (size_t i = 0; i < g->n_objects; i++)
                objstore_unwait(g->objects[i], &g->w);
        free(g);
}

static SelfFreeing *self_freeing_new(unsigned *calls) {
        SelfFreeing *g = calloc(1, sizeof(*g));
        cr_assert_not_null(g);
        g->w = (Waiter) { .object_done = self_freeing_done, .userdata = g };
        g->calls = calls;
        return g;
}

Test(objstore, waiter_can_unregister_and_free_itself_while_being_told) {
        Object *a = add(1), *b = add(2);
        unsigned calls = 0;
        SelfFreeing *g = self_freeing_new(&calls);
        g->objects[g->n_objects++] = a;
        g->objects[g->n_objects++] = b;
        cr_assert_eq(objstore_wait_for(&store, a, &g->w), 1);
        cr_assert_eq(objstore_wait_for(&store, b, &g->w), 1);
        Seen before, after;
        seen_init(&before);
        seen_init(&after);
        /* Other waiters on the same object, before and after it, are still told. */
        objstore_unwait(a, &g->w);
        cr_assert_eq(objstore_wait_for(&store, a, &before.w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &g->w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &after.w), 1);

        ready(a, "a");
        cr_assert_eq(calls, 1);
        cr_assert_eq(before.n_told, 1);
        cr_assert_eq(after.n_told, 1);

        /* g is gone and unregistered from b: b becoming ready must not reach it. */
        ready(b, "b");
        cr_assert_eq(calls, 1);
        cr_assert_eq(b->n_waiters, 0);
}

/* A waiter whose callback unregisters and frees another waiter of the same object (as when a call
 * whose argument failed fails its result, and that completes a Wait on both). */
typedef struct Killer {
        Waiter w;
        Object *victim_object;
        SelfFreeing *victim;
} Killer;

static void killer_done(Waiter *w, Object *o) {
        Killer *k = w->userdata;
        objstore_unwait(k->victim_object, &k->victim->w);
        free(k->victim);
        k->victim = NULL;
}

Test(objstore, waiter_unregistered_by_an_earlier_waiter_is_not_told) {
        Object *a = add(1);
        unsigned victim_calls = 0;
        SelfFreeing *victim = self_freeing_new(&victim_calls);
        Killer k = { .victim_object = a, .victim = victim };
        k.w = (Waiter) { .object_done = killer_done, .userdata = &k };
        Seen last;
        seen_init(&last);

        cr_assert_eq(objstore_wait_for(&store, a, &k.w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &victim->w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &last.w), 1);

        ready(a, "a");
        cr_assert_null(k.victim);
        cr_assert_eq(victim_calls, 0, "an unregistered (and freed) waiter was told");
        cr_assert_eq(last.n_told, 1);
}

/* A waiter that drops the last reference to the object it is told about. */
typedef struct Dropper {
        Waiter w;
        unsigned calls;
} Dropper;

static void dropper_done(Waiter *w, Object *o) {
        Dropper *d = w->userdata;
        d->calls++;
        objstore_unref(&store, o);
}

Test(objstore, object_released_by_a_waiter_stays_valid_for_the_other_waiters) {
        Object *a = add(1);
        Dropper d = {};
        d.w = (Waiter) { .object_done = dropper_done, .userdata = &d };
        Seen after;
        seen_init(&after);
        cr_assert_eq(objstore_wait_for(&store, a, &d.w), 1);
        cr_assert_eq(objstore_wait_for(&store, a, &after.w), 1);

        ready(a, "a");
        cr_assert_eq(d.calls, 1);
        cr_assert_eq(after.n_told, 1);
        cr_assert_eq(after.state_when_told[0], OBJECT_READY);

        /* Then it goes. */
        cr_assert_null(objstore_find(&store, id(1)));
        cr_assert_eq(rec.n_freed, 1);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(store.bytes, 0);
}

/* --- references --- */

Test(objstore, last_unref_frees_the_object) {
        Object *o = add(1);
        ready(o, "v");

        cr_assert_null(objstore_unref(&store, o));
        cr_assert_null(objstore_find(&store, id(1)));
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(rec.n_freed, 1);
        cr_assert(id_eq(rec.freed[0], id(1)));
}

Test(objstore, object_lives_while_any_holder_remains) {
        Object *o = add(1);
        objstore_ref(o);
        objstore_ref(o);
        cr_assert_eq(o->refs, 3);

        objstore_unref(&store, o);
        objstore_unref(&store, o);
        cr_assert_eq(objstore_find(&store, id(1)), o);
        cr_assert_eq(o->refs, 1);
        cr_assert_eq(rec.n_freed, 0);

        objstore_unref(&store, o);
        cr_assert_null(objstore_find(&store, id(1)));
        cr_assert_eq(rec.n_freed, 1);
}

Test(objstore, unref_of_null_does_nothing) {
        add(1);
        cr_assert_null(objstore_unref(&store, NULL));
        cr_assert_eq(store.n_objects, 1);
        cr_assert_eq(rec.n_freed, 0);
}

Test(objstore, pending_and_failed_objects_can_be_freed) {
        Object *p = add(1), *f = add(2);
        cr_assert_eq(objstore_set_failed(&store, f, KACTOR_ERROR_TASK_FAILED, "x"), 0);

        objstore_unref(&store, p);
        objstore_unref(&store, f);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(rec.n_freed, 2);
        cr_assert_eq(rec.n_actor_unrefs, 0);
}

Test(objstore, value_holds_the_objects_it_contains) {
        Object *inner = add(1), *outer = add(2);
        ready(inner, "inner");
        kactor_id ids[] = { id(1) };
        uint8_t kinds[] = { 0 };

        cr_assert_eq(objstore_set_ready(&store, outer, "outer", 5, ids, kinds, 1), 0);
        cr_assert_eq(inner->refs, 2);
        cr_assert_eq(outer->n_contained, 1);
        cr_assert(id_eq(outer->contained[0], id(1)));

        /* Its creator lets go: the containing value still holds it. */
        objstore_unref(&store, inner);
        cr_assert_eq(objstore_find(&store, id(1)), inner);
        cr_assert_eq(rec.n_freed, 0);

        /* The containing value goes: so does the inner object. */
        objstore_unref(&store, outer);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(rec.n_freed, 2);
        cr_assert(id_eq(rec.freed[0], id(2)));
        cr_assert(id_eq(rec.freed[1], id(1)));
}

Test(objstore, value_naming_its_own_object_does_not_keep_it_alive) {
        Object *o = add(1);
        kactor_id ids[] = { id(1) };
        uint8_t kinds[] = { 0 };

        cr_assert_eq(objstore_set_ready(&store, o, "self", 4, ids, kinds, 1), 0);
        cr_assert_eq(o->refs, 1);
        cr_assert_eq(o->n_contained, 0);

        /* Its one holder lets go: it is gone, not kept by itself. */
        objstore_unref(&store, o);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(rec.n_freed, 1);
}

Test(objstore, contained_object_still_held_elsewhere_outlives_the_value) {
        Object *inner = add(1), *outer = add(2);
        ready(inner, "inner");
        kactor_id ids[] = { id(1) };
        uint8_t kinds[] = { 0 };
        cr_assert_eq(objstore_set_ready(&store, outer, "outer", 5, ids, kinds, 1), 0);

        objstore_unref(&store, outer);
        cr_assert_eq(objstore_find(&store, id(1)), inner);
        cr_assert_eq(inner->refs, 1);
        cr_assert_eq(rec.n_freed, 1);
}

Test(objstore, nested_objects_are_freed_in_turn) {
        /* a contains b, b contains c and d; only a is held from outside. */
        Object *a = add(1), *b = add(2), *c = add(3), *d = add(4);
        ready(c, "c");
        ready(d, "d");
        kactor_id b_ids[] = { id(3), id(4) };
        uint8_t b_kinds[] = { 0, 0 };
        cr_assert_eq(objstore_set_ready(&store, b, "b", 1, b_ids, b_kinds, 2), 0);
        kactor_id a_ids[] = { id(2) };
        uint8_t a_kinds[] = { 0 };
        cr_assert_eq(objstore_set_ready(&store, a, "a", 1, a_ids, a_kinds, 1), 0);
        objstore_unref(&store, b);
        objstore_unref(&store, c);
        objstore_unref(&store, d);
        cr_assert_eq(store.n_objects, 4);
        cr_assert_eq(store.bytes, 4);

        objstore_unref(&store, a);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(store.bytes, 0);
        cr_assert_eq(rec.n_freed, 4);
        cr_assert(id_eq(rec.freed[0], id(1)));
        cr_assert(id_eq(rec.freed[1], id(2)));
        cr_assert_eq(count_id(rec.freed, rec.n_freed, id(3)), 1);
        cr_assert_eq(count_id(rec.freed, rec.n_freed, id(4)), 1);
}

Test(objstore, object_named_twice_in_a_value_is_held_twice_and_released_twice) {
        Object *inner = add(1), *outer = add(2);
        ready(inner, "i");
        kactor_id ids[] = { id(1), id(1) };
        uint8_t kinds[] = { 0, 0 };
        cr_assert_eq(objstore_set_ready(&store, outer, "o", 1, ids, kinds, 2), 0);
        cr_assert_eq(inner->refs, 3);

        objstore_unref(&store, outer);
        cr_assert_eq(inner->refs, 1);
        objstore_unref(&store, inner);
        cr_assert_eq(store.n_objects, 0);
}

Test(objstore, contained_actor_handles_are_held_and_released_with_the_value) {
        Object *o = add(1);
        Object *inner = add(2);
        kactor_id x = { .hi = 9, .lo = 100 }, y = { .hi = 9, .lo = 200 };
        kactor_id ids[] = { x, id(2), y, x };
        uint8_t kinds[] = { 1, 0, 1, 1 };

        cr_assert_eq(objstore_set_ready(&store, o, "v", 1, ids, kinds, 4), 0);
        cr_assert_eq(rec.n_actor_refs, 3);
        cr_assert_eq(count_id(rec.actor_refs, rec.n_actor_refs, x), 2);
        cr_assert_eq(count_id(rec.actor_refs, rec.n_actor_refs, y), 1);
        cr_assert_eq(rec.n_actor_unrefs, 0);
        cr_assert_eq(inner->refs, 2, "the object id is held as an object, not an actor");

        objstore_unref(&store, inner);
        objstore_unref(&store, o);
        cr_assert_eq(rec.n_actor_unrefs, 3);
        cr_assert_eq(count_id(rec.actor_unrefs, rec.n_actor_unrefs, x), 2);
        cr_assert_eq(count_id(rec.actor_unrefs, rec.n_actor_unrefs, y), 1);
        cr_assert_eq(store.n_objects, 0);
}

Test(objstore, actor_handles_inside_nested_objects_are_released_too) {
        Object *outer = add(1), *inner = add(2);
        kactor_id x = { .hi = 9, .lo = 100 };
        kactor_id inner_ids[] = { x };
        uint8_t inner_kinds[] = { 1 };
        cr_assert_eq(objstore_set_ready(&store, inner, "i", 1, inner_ids, inner_kinds, 1), 0);
        kactor_id outer_ids[] = { id(2) };
        uint8_t outer_kinds[] = { 0 };
        cr_assert_eq(objstore_set_ready(&store, outer, "o", 1, outer_ids, outer_kinds, 1), 0);
        objstore_unref(&store, inner);
        cr_assert_eq(rec.n_actor_unrefs, 0);

        objstore_unref(&store, outer);
        cr_assert_eq(rec.n_actor_refs, 1);
        cr_assert_eq(rec.n_actor_unrefs, 1);
        cr_assert(id_eq(rec.actor_unrefs[0], x));
        cr_assert_eq(store.n_objects, 0);
}

Test(objstore, value_naming_an_unknown_object_still_becomes_ready) {
        Object *o = add(1);
        kactor_id ids[] = { id(42) };
        uint8_t kinds[] = { 0 };

        cr_assert_eq(objstore_set_ready(&store, o, "v", 1, ids, kinds, 1), 0);
        cr_assert_eq(o->state, OBJECT_READY);
        objstore_unref(&store, o);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(rec.n_freed, 1);
}

Test(objstore, store_without_callbacks_still_holds_and_releases) {
        ObjectStore bare;
        objstore_init(&bare, NULL, NULL);
        Object *inner = NULL, *outer = NULL;
        cr_assert_eq(objstore_add(&bare, id(1), &inner), 0);
        cr_assert_eq(objstore_add(&bare, id(2), &outer), 0);
        kactor_id ids[] = { id(1), { .hi = 9, .lo = 1 } };
        uint8_t kinds[] = { 0, 1 };
        cr_assert_eq(objstore_set_ready(&bare, outer, "o", 1, ids, kinds, 2), 0);
        objstore_unref(&bare, inner);
        objstore_unref(&bare, outer);
        cr_assert_eq(bare.n_objects, 0);
        objstore_done(&bare);
}

/* --- bytes --- */

Test(objstore, bytes_count_ready_values_only) {
        Object *a = add(1), *b = add(2), *c = add(3);
        cr_assert_eq(store.bytes, 0);

        ready(a, "12345");
        cr_assert_eq(store.bytes, 5);
        ready(b, "123");
        cr_assert_eq(store.bytes, 8);
        cr_assert_eq(objstore_set_failed(&store, c, KACTOR_ERROR_TASK_FAILED, "a long error message"), 0);
        cr_assert_eq(store.bytes, 8);

        objstore_unref(&store, a);
        cr_assert_eq(store.bytes, 3);
        objstore_unref(&store, c);
        cr_assert_eq(store.bytes, 3);
        objstore_unref(&store, b);
        cr_assert_eq(store.bytes, 0);
}

Test(objstore, done_frees_everything_without_telling_about_actors) {
        Object *a = add(1), *b = add(2);
        add(3);
        kactor_id ids[] = { { .hi = 9, .lo = 1 } };
        uint8_t kinds[] = { 1 };
        cr_assert_eq(objstore_set_ready(&store, a, "a", 1, ids, kinds, 1), 0);
        Seen s;
        seen_init(&s);
        cr_assert_eq(objstore_wait_for(&store, b, &s.w), 1);

        objstore_done(&store);
        cr_assert_eq(store.n_objects, 0);
        cr_assert_eq(store.bytes, 0);
        cr_assert_null(objstore_find(&store, id(1)));
        cr_assert_eq(rec.n_actor_unrefs, 0);
        cr_assert_eq(s.n_told, 0);
}
