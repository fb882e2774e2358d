/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The D-Bus contract, as a user of busctl or of any D-Bus client sees it: every method of
 * io.kactor.NodeManager1 and io.kactor.Actor1, their errors (names checked through sd-bus, since
 * busctl prints only the message), the properties, the object tree and PropertiesChanged.
 */

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define ACTOR HARNESS_IFACE_ACTOR
#define OBJECT_PREFIX HARNESS_BUS_PATH "/object/"
#define ACTOR_PREFIX HARNESS_BUS_PATH "/actor/"

static Harness *h;

static void setup(void) {
        h = harness_start(NULL);
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(dbus, .init = setup, .fini = teardown, .timeout = 60);

/* --- helpers --------------------------------------------------------------------------------- */

static uint64_t now_usec_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* CreateActor with no arguments and no options: returns the actor path. */
static const char *create(const char *module, const char *class_name) {
        const char *out = harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", module,
                                                 class_name, "0", "0", NULL);
        const char *path = harness_busctl_path(h, out);

        cr_assert(strncmp(path, ACTOR_PREFIX, strlen(ACTOR_PREFIX)) == 0, "CreateActor returned %s", out);
        return path;
}

/* Call(method) with the given av (count and items as busctl arguments): returns the object path. */
#define call(actor, method, ...)                                                                            \
        harness_busctl_path(                                                                                \
                h, harness_busctl_call_ok(h, (actor), ACTOR, "Call", "sav", (method), __VA_ARGS__, NULL))

static const char *get1(const char *object) {
        return harness_busctl_call_ok(h, MGR, IFACE, "Get", "aot", "1", object, "10000000", NULL);
}

/* `busctl get-property` output, e.g. "au 2 0 1". */
static const char *get_property(const char *path, const char *iface, const char *name) {
        char *out = NULL;
        int r = harness_busctl(h, &out, "get-property", HARNESS_BUS_NAME, path, iface, name, NULL);

        harness_keep(h, out);
        cr_assert_eq(r, 0, "get-property %s %s: %s", path, name, out);
        return out;
}

/* Asserts that a D-Bus call failed with error `name` whose message mentions `needle` (NULL: any). */
static void assert_bus_error(int r, sd_bus_error *e, const char *name, const char *needle) {
        cr_assert_lt(r, 0, "the call succeeded, expected %s", name);
        cr_assert(sd_bus_error_has_name(e, name), "error %s (\"%s\"), expected %s", e->name, e->message,
                  name);
        if (needle)
                cr_assert(e->message && strstr(e->message, needle),
                          "error %s message \"%s\" does not mention \"%s\"", e->name, e->message, needle);
        sd_bus_error_free(e);
}

/* The last component of a path. */
static const char *basename_of(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

/* Calls method on an actor and gets the result, expecting a D-Bus error `name`. Depending on when
 * the node manager can tell, the error comes from Call itself or from Get: both are accepted. */
static void assert_call_fails(const char *actor, const char *method, const char *name, const char *needle) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *object;
        int r;

        r = harness_bus_call(h, &e, &reply, actor, ACTOR, "Call", "sav", method, 0);
        if (r < 0) {
                assert_bus_error(r, &e, name, needle);
                return;
        }
        cr_assert_geq(sd_bus_message_read(reply, "o", &object), 0);
        object = harness_keep(h, strdup(object));
        sd_bus_message_unref(reply);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, object, (uint64_t)10000000);
        assert_bus_error(r, &e, name, needle);
}

/* --- CreateActor, Call, Get ------------------------------------------------------------------ */

Test(dbus, counter_calls_run_in_order_and_get_returns_int64) {
        const char *c = create("counter", "Counter");
        const char *o1 = call(c, "increment", "0");
        const char *o2 = call(c, "increment", "0");
        const char *o3 = call(c, "increment", "0");

        cr_assert(strncmp(o1, OBJECT_PREFIX, strlen(OBJECT_PREFIX)) == 0, "Call returned %s", o1);
        cr_assert_str_eq(
                harness_busctl_call_ok(h, MGR, IFACE, "Get", "aot", "3", o1, o2, o3, "10000000", NULL),
                "av 3 x 1 x 2 x 3");
        /* Each busctl is a new connection: the actor (detached by default over D-Bus) outlives them. */
        cr_assert_str_eq(get1(call(c, "get", "0")), "av 1 x 3");
}

Test(dbus, ten_counters_incremented_once_each_give_ones) {
        const char *objects[10];

        for (size_t i = 0; i < 10; i++)
                objects[i] = call(create("counter", "Counter"), "increment", "0");
        cr_assert_str_eq(harness_busctl_call_ok(h, MGR, IFACE, "Get", "aot", "10", objects[0], objects[1],
                                                objects[2], objects[3], objects[4], objects[5], objects[6],
                                                objects[7], objects[8], objects[9], "10000000", NULL),
                         "av 10 x 1 x 1 x 1 x 1 x 1 x 1 x 1 x 1 x 1 x 1");
}

Test(dbus, module_may_be_given_as_a_path_and_constructor_gets_args) {
        const char *out =
                harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}",
                                       harness_module(h, "counter"), "Counter", "1", "x", "41", "0", NULL);
        const char *c = harness_busctl_path(h, out);

        cr_assert_str_eq(get1(call(c, "increment", "0")), "av 1 x 42");
}

Test(dbus, unknown_module_is_module_not_found) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *out = NULL;
        int r;

        r = harness_busctl_call(h, &out, MGR, IFACE, "CreateActor", "ssava{sv}", "no-such-module", "Counter",
                                "0", "0", NULL);
        harness_keep(h, out);
        cr_assert_neq(r, 0, "CreateActor of a missing module succeeded: %s", out);
        cr_assert(strstr(out, "no-such-module"), "busctl says \"%s\", which does not name the module", out);

        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "no-such-module",
                             "Counter", 0, 0);
        assert_bus_error(r, &e, "io.kactor.Error.ModuleNotFound", "no-such-module");
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "/nonexistent/dir/x.so",
                             "Counter", 0, 0);
        assert_bus_error(r, &e, "io.kactor.Error.ModuleNotFound", "/nonexistent/dir/x.so");
        cr_assert_str_eq(get_property(MGR, IFACE, "Actors"), "u 0");
}

Test(dbus, wrong_argument_types_are_invalid_args) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *out = NULL;
        int r;

        /* Strings where the args array belongs. */
        r = harness_busctl_call(h, &out, MGR, IFACE, "CreateActor", "sssa{sv}", "counter", "Counter", "x",
                                "0", NULL);
        harness_keep(h, out);
        cr_assert_neq(r, 0, "CreateActor with signature sssa{sv} succeeded: %s", out);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "sssa{sv}", "counter", "Counter", "x",
                             0);
        assert_bus_error(r, &e, "org.freedesktop.DBus.Error.InvalidArgs", NULL);
        /* Arguments missing. */
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ss", "counter", "Counter");
        assert_bus_error(r, &e, "org.freedesktop.DBus.Error.InvalidArgs", NULL);
        /* An option of the wrong type. */
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", 0, 1,
                             "NumGpus", "s", "two");
        assert_bus_error(r, &e, "org.freedesktop.DBus.Error.InvalidArgs", "NumGpus must be of D-Bus type 'u'");
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", 0, 1,
                             "Detached", "i", 1);
        assert_bus_error(r, &e, "org.freedesktop.DBus.Error.InvalidArgs", "Detached must be of D-Bus type 'b', got 'i'");
        /* Get with a string for the object list. */
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "st", "x", (uint64_t)0);
        assert_bus_error(r, &e, "org.freedesktop.DBus.Error.InvalidArgs", NULL);
        /* Nothing was created by any of these. */
        cr_assert_str_eq(get_property(MGR, IFACE, "Actors"), "u 0");
}

/* --- GetActor, names ------------------------------------------------------------------------- */

Test(dbus, named_actors_are_found_and_names_are_unique) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *out, *c;
        char *fail = NULL;
        int r;

        out = harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", "0",
                                     "1", "Name", "s", "keeper", NULL);
        c = harness_busctl_path(h, out);
        cr_assert_str_eq(harness_busctl_path(
                                 h, harness_busctl_call_ok(h, MGR, IFACE, "GetActor", "s", "keeper", NULL)),
                         c);
        cr_assert_str_eq(get_property(c, ACTOR, "Name"), "s \"keeper\"");

        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", 0, 1,
                             "Name", "s", "keeper");
        assert_bus_error(r, &e, "io.kactor.Error.NameTaken", "keeper");

        r = harness_busctl_call(h, &fail, MGR, IFACE, "GetActor", "s", "nobody", NULL);
        harness_keep(h, fail);
        cr_assert_neq(r, 0, "GetActor of an unknown name succeeded: %s", fail);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "GetActor", "s", "nobody");
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchActor", "nobody");

        /* The first actor is untouched by the refused duplicate. */
        cr_assert_str_eq(get1(call(c, "increment", "0")), "av 1 x 1");
        cr_assert_str_eq(get_property(MGR, IFACE, "Actors"), "u 1");
}

/* --- SubmitTask, Put, Get, Wait, Release ------------------------------------------------------ */

Test(dbus, submit_task_returns_its_result) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *o;
        int r;

        o = harness_busctl_path(h,
                                harness_busctl_call_ok(h, MGR, IFACE, "SubmitTask", "ssava{sv}", "testmod",
                                                       "add", "2", "x", "2", "x", "40", "0", NULL));
        cr_assert(strncmp(o, OBJECT_PREFIX, strlen(OBJECT_PREFIX)) == 0, "SubmitTask returned %s", o);
        cr_assert_str_eq(get1(o), "av 1 x 42");

        o = harness_busctl_path(h,
                                harness_busctl_call_ok(h, MGR, IFACE, "SubmitTask", "ssava{sv}", "testmod",
                                                       "fail", "1", "s", "task broke: code 7", "0", NULL));
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, o, (uint64_t)10000000);
        assert_bus_error(r, &e, "io.kactor.Error.TaskFailed", "task broke: code 7");

        /* A missing module: refused at once, or the task's Get says so. */
        r = harness_bus_call(h, &e, &reply, MGR, IFACE, "SubmitTask", "ssava{sv}", "no-such-module", "add",
                             0, 0);
        if (r >= 0) {
                cr_assert_geq(sd_bus_message_read(reply, "o", &o), 0);
                o = harness_keep(h, strdup(o));
                reply = sd_bus_message_unref(reply);
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, o, (uint64_t)10000000);
        }
        assert_bus_error(r, &e, "io.kactor.Error.ModuleNotFound", "no-such-module");
}

Test(dbus, put_and_get_round_trip_every_type) {
        static const struct {
                const char *args[9];
                const char *want;
        } cases[] = {
                {{"b", "true"}, "av 1 b true"},
                {{"x", "-5"}, "av 1 x -5"},
                {{"x", "9223372036854775807"}, "av 1 x 9223372036854775807"},
                {{"i", "7"}, "av 1 x 7"}, /* every integer comes back as x */
                {{"u", "4000000000"}, "av 1 x 4000000000"},
                {{"d", "2.5"}, "av 1 d 2.5"},
                {{"s", "hello, wide world"}, "av 1 s \"hello, wide world\""},
                {{"ay", "3", "1", "2", "255"}, "av 1 ay 3 1 2 255"},
                {{"av", "2", "x", "1", "s", "a"}, "av 1 av 2 x 1 s \"a\""},
                {{"a{sv}", "2", "k", "x", "1", "m", "s", "v"}, "av 1 a{sv} 2 \"k\" x 1 \"m\" s \"v\""},
                {{"g", ""}, "av 1 g \"\""}, /* nil */
        };
        const char *objects[ELEMENTSOF(cases)];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *const *a = cases[i].args;
                const char *out = harness_busctl_call_ok(h, MGR, IFACE, "Put", "v", a[0], a[1], a[2], a[3],
                                                         a[4], a[5], a[6], a[7], a[8], NULL);

                objects[i] = harness_busctl_path(h, out);
                cr_assert(strncmp(objects[i], OBJECT_PREFIX, strlen(OBJECT_PREFIX)) == 0, "Put returned %s",
                          out);
                cr_assert_str_eq(get1(objects[i]), cases[i].want, "Put v %s: Get gave %s, expected %s", a[0],
                                 get1(objects[i]), cases[i].want);
        }
        /* Several at once come back in the order asked. */
        cr_assert_str_eq(harness_busctl_call_ok(h, MGR, IFACE, "Get", "aot", "3", objects[5], objects[0],
                                                objects[6], "10000000", NULL),
                         "av 3 d 2.5 b true s \"hello, wide world\"");
}

Test(dbus, put_of_an_unrepresentable_value_is_invalid_args) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        /* Above INT64_MAX: no kactor int holds it. */
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Put", "v", "t", UINT64_MAX);
        assert_bus_error(r, &e, "org.freedesktop.DBus.Error.InvalidArgs", NULL);
        harness_assert_running(h);
}

Test(dbus, wait_splits_ready_from_not_ready) {
        const char *s = create("testmod", "Sleeper");
        const char *slow = call(s, "sleep", "1", "x", "1500");
        const char *put =
                harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "Put", "v", "x", "1", NULL));
        /* busctl prints both signatures, then both values. */
        const char *want = harness_printf(h, "aoao 1 \"%s\" 1 \"%s\"", put, slow);

        /* One wanted: returns as soon as the put object is there. */
        cr_assert_str_eq(
                harness_busctl_call_ok(h, MGR, IFACE, "Wait", "aout", "2", slow, put, "1", "5000000", NULL),
                want);
        /* Both wanted, but only 100 ms: returns after the timeout, not an error. */
        cr_assert_str_eq(
                harness_busctl_call_ok(h, MGR, IFACE, "Wait", "aout", "2", slow, put, "2", "100000", NULL),
                want);
        /* Timeout 0: at once, as they are now (Ray's wait(timeout=0)). */
        cr_assert_str_eq(
                harness_busctl_call_ok(h, MGR, IFACE, "Wait", "aout", "2", slow, put, "2", "0", NULL),
                want);
        /* Both wanted, no timeout (2^64-1): returns once the sleep is done. */
        cr_assert_str_eq(harness_busctl_call_ok(h, MGR, IFACE, "Wait", "aout", "2", slow, put, "2",
                                                "18446744073709551615", NULL),
                         harness_printf(h, "aoao 2 \"%s\" \"%s\" 0", slow, put));
}

Test(dbus, get_of_a_pending_object_times_out) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *s = create("testmod", "Sleeper");
        const char *slow = call(s, "sleep", "1", "x", "1000");
        char *out = NULL;
        int r;

        r = harness_busctl_call(h, &out, MGR, IFACE, "Get", "aot", "1", slow, "100000", NULL);
        harness_keep(h, out);
        cr_assert_neq(r, 0, "Get of a pending object returned before it was ready: %s", out);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, slow, (uint64_t)100000);
        assert_bus_error(r, &e, "io.kactor.Error.Timeout", NULL);
        /* Timeout 0: the Timeout error at once, well before the sleep ends. */
        uint64_t t0 = now_usec_mono();
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, slow, (uint64_t) 0);
        assert_bus_error(r, &e, "io.kactor.Error.Timeout", "0 of 1");
        cr_assert_lt(now_usec_mono() - t0, 900000, "Get with timeout 0 waited");
        /* The object is not lost by a timed-out Get. */
        cr_assert_eq(strncmp(get1(slow), "av 1 av 2 x ", 12), 0, "Get after the timeout: %s", get1(slow));
}

Test(dbus, released_objects_are_gone) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *p =
                harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "Put", "v", "x", "5", NULL));
        const char *keep =
                harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "Put", "v", "x", "6", NULL));
        int r;

        cr_assert_str_eq(get1(p), "av 1 x 5");
        harness_busctl_call_ok(h, MGR, IFACE, "Release", "ao", "1", p, NULL);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, p, (uint64_t)1000000);
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchObject", NULL);
        /* Only what was released is gone. */
        cr_assert_str_eq(get1(keep), "av 1 x 6");
        /* An object that never was. */
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1,
                             OBJECT_PREFIX "0123456789abcdef0123456789abcdef", (uint64_t)1000000);
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchObject", NULL);
}

/* --- Kill, errors of calls -------------------------------------------------------------------- */

Test(dbus, killed_actor_is_dead_and_calls_fail_with_actor_died) {
        const char *c = create("counter", "Counter");
        const char *cause;

        cr_assert_str_eq(get1(call(c, "increment", "0")), "av 1 x 1");
        harness_busctl_call_ok(h, c, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, c, "dead", HARNESS_TIMEOUT_MS), "State is %s after Kill",
                  harness_property_string(h, c, ACTOR, "State"));
        assert_call_fails(c, "increment", "io.kactor.Error.ActorDied", NULL);
        cause = harness_property_string(h, c, ACTOR, "DeathCause");
        cr_assert_neq(cause[0], 0, "a killed actor has an empty DeathCause");
}

Test(dbus, unknown_method_is_no_such_method) {
        const char *c = create("counter", "Counter");

        assert_call_fails(c, "no_such_method", "io.kactor.Error.NoSuchMethod", "no_such_method");
        /* The actor is fine. */
        cr_assert_str_eq(get1(call(c, "increment", "0")), "av 1 x 1");
}

Test(dbus, failing_method_is_task_failed_with_its_message) {
        const char *f = create("testmod", "Failer");
        sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *o = call(f, "fail", "1", "s", "disk on fire (sector 9)");
        char *out = NULL;
        int r;

        r = harness_busctl_call(h, &out, MGR, IFACE, "Get", "aot", "1", o, "10000000", NULL);
        harness_keep(h, out);
        cr_assert_neq(r, 0, "Get of a failed call succeeded: %s", out);
        cr_assert(strstr(out, "disk on fire (sector 9)"), "busctl says \"%s\", not the module's message",
                  out);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, o, (uint64_t)10000000);
        assert_bus_error(r, &e, "io.kactor.Error.TaskFailed", "disk on fire (sector 9)");
        /* A failed method does not kill the actor. */
        cr_assert_str_eq(get1(call(f, "ok", "0")), "av 1 s \"ok\"");
        cr_assert_str_eq(get_property(f, ACTOR, "State"), "s \"alive\"");
}

Test(dbus, crashed_worker_gives_actor_died_with_the_signal) {
        const char *c = create("testmod", "Crasher");
        const char *o = call(c, "crash", "0");
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, o, (uint64_t)10000000);
        assert_bus_error(r, &e, "io.kactor.Error.ActorDied", "signal 11");
        cr_assert(harness_wait_actor_state(h, c, "dead", HARNESS_TIMEOUT_MS), "State is %s after a crash",
                  harness_property_string(h, c, ACTOR, "State"));
        cr_assert(strstr(harness_property_string(h, c, ACTOR, "DeathCause"), "signal 11"),
                  "DeathCause \"%s\" does not say signal 11",
                  harness_property_string(h, c, ACTOR, "DeathCause"));
        harness_assert_running(h);
}

Test(dbus, calls_to_unknown_actors_fail) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = harness_bus_call(h, &e, NULL, ACTOR_PREFIX "0123456789abcdef0123456789abcdef", ACTOR, "Call",
                             "sav", "increment", 0);
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchActor", "0123456789abcdef0123456789abcdef");
        r = harness_bus_call(h, &e, NULL, ACTOR_PREFIX "0123456789abcdef0123456789abcdef",
                             "org.freedesktop.DBus.Properties", "Get", "ss", ACTOR, "State");
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchActor", NULL);
        r = harness_bus_call(h, &e, NULL, ACTOR_PREFIX "0123456789abcdef0123456789abcdef", ACTOR, "Kill", "b", 1);
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchActor", NULL);
        /* Not an id at all. */
        r = harness_bus_call(h, &e, NULL, ACTOR_PREFIX "nonsense", ACTOR, "Call", "sav", "increment", 0);
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchActor", NULL);
        /* Objects likewise. */
        r = harness_bus_call(h, &e, NULL, OBJECT_PREFIX "0123456789abcdef0123456789abcdef",
                             "org.freedesktop.DBus.Properties", "Get", "ss", "io.kactor.Object1", "State");
        assert_bus_error(r, &e, "io.kactor.Error.NoSuchObject", NULL);
}

/* A dead actor stays listed for --forget-dead-after, then leaves the tree with InterfacesRemoved. */
Test(dbus, dead_actors_leave_the_tree_after_the_grace_period) {
        const char *const args[] = { "--forget-dead-after", "1", NULL };
        h = harness_stop(h);
        h = harness_start(&(HarnessOptions) { .extra_args = args });
        const char *c = create("counter", "Counter");
        harness_busctl_call_ok(h, c, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, c, "dead", HARNESS_TIMEOUT_MS));
        /* Still there for status, with its cause. */
        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "DeathCause"), "killed by request");
        char *out = NULL;
        uint64_t t0 = now_usec_mono();
        for (;;) {
                int r = harness_busctl(h, &out, "get-property", HARNESS_BUS_NAME, c, ACTOR, "State", NULL);
                harness_keep(h, out);
                if (r != 0)
                        break;
                cr_assert_lt(now_usec_mono() - t0, 10000000, "the dead actor is still listed after 10 s");
                usleep(100000);
        }
        cr_assert(strstr(out, "No actor"), "reading a forgotten actor: %s", out);
        cr_assert_geq(now_usec_mono() - t0, 500000, "forgotten before its grace period");
        /* Gone from the tree and the ObjectManager too. */
        cr_assert_eq(harness_busctl(h, &out, "tree", "--list", HARNESS_BUS_NAME, NULL), 0);
        harness_keep(h, out);
        cr_assert_null(strstr(out, c), "still in the tree: %s", out);
}

/* --- resources ------------------------------------------------------------------------------- */

Test(dbus, too_many_gpus_is_insufficient_resources_saying_what_is_free) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *out = NULL;
        int r;

        r = harness_busctl_call(h, &out, MGR, IFACE, "CreateActor", "ssava{sv}", "testmod", "GpuProbe", "0",
                                "1", "NumGpus", "u", "3", NULL);
        harness_keep(h, out);
        cr_assert_neq(r, 0, "3 GPUs of 2 were granted: %s", out);
        cr_assert(strstr(out, "requested 3 GPUs") && strstr(out, "2 of 2 free"), "busctl says \"%s\"", out);
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "testmod", "GpuProbe", 0,
                             1, "NumGpus", "u", 3);
        assert_bus_error(r, &e, "io.kactor.Error.InsufficientResources", "2 of 2 free");

        harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", "testmod", "GpuProbe", "0", "1",
                               "NumGpus", "u", "2", NULL);
        cr_assert_str_eq(get_property(MGR, IFACE, "FreeGpus"), "au 0");
        r = harness_bus_call(h, &e, NULL, MGR, IFACE, "CreateActor", "ssava{sv}", "testmod", "GpuProbe", 0,
                             1, "NumGpus", "u", 1);
        cr_assert_lt(r, 0, "a GPU was granted when none was free");
        cr_assert(strstr(e.message, "requested 1 GPU") && strstr(e.message, "0 of 2 free"), "message \"%s\"",
                  e.message);
        assert_bus_error(r, &e, "io.kactor.Error.InsufficientResources", NULL);
        cr_assert_str_eq(get_property(MGR, IFACE, "Actors"), "u 1");
}

/* --- properties ------------------------------------------------------------------------------ */

Test(dbus, manager_properties_describe_the_node) {
        const char *node, *c;

        node = harness_property_string(h, MGR, IFACE, "NodeId");
        cr_assert_neq(node[0], 0, "empty NodeId");
        cr_assert_str_eq(harness_property_string(h, MGR, IFACE, "Version"), "0.1.0");
        cr_assert_str_eq(get_property(MGR, IFACE, "Gpus"), "au 2 0 1");
        cr_assert_str_eq(get_property(MGR, IFACE, "FreeGpus"), "au 2 0 1");
        cr_assert_str_eq(get_property(MGR, IFACE, "Actors"), "u 0");

        c = harness_busctl_path(h,
                                harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", "testmod",
                                                       "GpuProbe", "0", "1", "NumGpus", "u", "1", NULL));
        create("counter", "Counter");
        cr_assert_str_eq(get_property(MGR, IFACE, "Actors"), "u 2");
        cr_assert_str_eq(get_property(MGR, IFACE, "Gpus"), "au 2 0 1");
        {
                const char *free_gpus = get_property(MGR, IFACE, "FreeGpus");
                cr_assert(streq(free_gpus, "au 1 0") || streq(free_gpus, "au 1 1"), "FreeGpus %s",
                          free_gpus);
        }
        /* A dead actor gives its GPU back (once its worker is gone). */
        harness_busctl_call_ok(h, c, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, c, "dead", HARNESS_TIMEOUT_MS));
        cr_assert(harness_wait_free_gpus(h, 2, HARNESS_TIMEOUT_MS),
                  "the GPU of a killed actor did not come back");
        cr_assert_str_eq(get_property(MGR, IFACE, "FreeGpus"), "au 2 0 1");
        /* NodeId does not change. */
        cr_assert_str_eq(harness_property_string(h, MGR, IFACE, "NodeId"), node);
}

Test(dbus, actor_properties_describe_the_actor) {
        const char *c, *o1, *o2, *gpu_ids, *want_gpu;
        char exe[PATH_MAX] = "", link[64];
        pid_t pid;
        ssize_t n;

        c = harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}",
                                                          "testmod", "GpuProbe", "0", "2", "Name", "s",
                                                          "probe", "NumGpus", "u", "1", NULL));
        cr_assert(harness_wait_actor_state(h, c, "alive", HARNESS_TIMEOUT_MS), "State %s",
                  harness_property_string(h, c, ACTOR, "State"));

        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "Id"), basename_of(c));
        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "Name"), "probe");
        cr_assert(strstr(harness_property_string(h, c, ACTOR, "Module"), "testmod"), "Module %s",
                  harness_property_string(h, c, ACTOR, "Module"));
        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "Class"), "GpuProbe");
        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "Node"),
                         harness_property_string(h, MGR, IFACE, "NodeId"));
        cr_assert_eq(harness_property_uint(h, c, ACTOR, "Restarts"), 0);
        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "DeathCause"), "");

        /* The Pid is a running kactor-worker. */
        pid = (pid_t)harness_property_uint(h, c, ACTOR, "Pid");
        cr_assert_gt(pid, 0);
        snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
        n = readlink(link, exe, sizeof(exe) - 1);
        cr_assert_gt(n, 0, "Pid %d is not a running process", (int)pid);
        exe[n] = 0;
        cr_assert(strstr(exe, "kactor-worker"), "Pid %d runs %s, not kactor-worker", (int)pid, exe);

        /* GpuIds is the GPU the actor sees. */
        gpu_ids = get_property(c, ACTOR, "GpuIds");
        cr_assert(streq(gpu_ids, "au 1 0") || streq(gpu_ids, "au 1 1"), "GpuIds %s", gpu_ids);
        o1 = call(c, "gpus", "0");
        o2 = call(c, "gpus", "0");
        want_gpu = harness_printf(h, "av 1 a{sv} 2 \"ids\" av 1 x %s \"cuda\" s \"%s\"", gpu_ids + 5,
                                  gpu_ids + 5);
        cr_assert_str_eq(get1(o1), want_gpu);
        cr_assert_str_eq(get1(o2), want_gpu);

        cr_assert_eq(harness_property_uint(h, c, ACTOR, "CallsSubmitted"), 2);
        cr_assert_eq(harness_property_uint(h, c, ACTOR, "CallsCompleted"), 2);
        cr_assert_str_eq(harness_property_string(h, c, ACTOR, "State"), "alive");
}

Test(dbus, actor_runs_in_its_own_cgroup) {
        const char *c = create("counter", "Counter");
        const char *cg;
        char path[64];
        char *procs;
        pid_t pid;

        cr_assert(harness_wait_actor_state(h, c, "alive", HARNESS_TIMEOUT_MS));
        cg = harness_property_string(h, c, ACTOR, "ControlGroup");
        cr_assert_neq(cg[0], 0, "empty ControlGroup");
        pid = (pid_t)harness_property_uint(h, c, ACTOR, "Pid");
        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
        {
                FILE *f = fopen(path, "re");
                size_t len = 0;

                cr_assert_not_null(f, "%s: %m", path);
                procs = NULL;
                cr_assert_geq(getdelim(&procs, &len, 0, f), 0);
                fclose(f);
                harness_keep(h, procs);
        }
        cr_assert(strstr(procs, cg), "the worker's /proc/PID/cgroup does not list %s:\n%s", cg, procs);
}

/* --- the object tree and signals ------------------------------------------------------------- */

Test(dbus, tree_and_managed_objects_list_every_actor) {
        const char *a = create("counter", "Counter");
        const char *b = create("testmod", "Echo");
        const char *tree, *objects;
        char *out = NULL;
        int r;

        r = harness_busctl(h, &out, "tree", "--list", HARNESS_BUS_NAME, NULL);
        tree = harness_keep(h, out);
        cr_assert_eq(r, 0, "busctl tree: %s", tree);
        cr_assert(strstr(tree, a) && strstr(tree, b), "busctl tree does not list both actors:\n%s", tree);

        objects = harness_busctl_call_ok(h, MGR, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                                         NULL);
        cr_assert(strstr(objects, a) && strstr(objects, b) && strstr(objects, "\"io.kactor.Actor1\""),
                  "GetManagedObjects does not list both actors:\n%s", objects);
}

typedef struct Seen {
        const char *path; /* the actor to watch; NULL: record the first actor seen */
        char states[16][16];
        size_t n;
} Seen;

static int on_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Seen *seen = userdata;
        const char *iface, *name, *value;

        if (seen->path && !streq(sd_bus_message_get_path(m), seen->path))
                return 0;
        if (sd_bus_message_read(m, "s", &iface) < 0 || !streq(iface, ACTOR))
                return 0;
        if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (streq(name, "State") && sd_bus_message_read(m, "v", "s", &value) >= 0) {
                        if (seen->n < ELEMENTSOF(seen->states))
                                snprintf(seen->states[seen->n++], sizeof(seen->states[0]), "%s", value);
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        return 0;
}

/* Processes the bus until `state` was seen or the time is up. */
static bool wait_seen(sd_bus *bus, Seen *seen, const char *state) {
        for (unsigned i = 0; i < HARNESS_TIMEOUT_MS / 100; i++) {
                for (size_t k = 0; k < seen->n; k++)
                        if (streq(seen->states[k], state))
                                return true;
                while (sd_bus_process(bus, NULL) > 0)
                        ;
                for (size_t k = 0; k < seen->n; k++)
                        if (streq(seen->states[k], state))
                                return true;
                cr_assert_geq(sd_bus_wait(bus, 100000), 0);
        }
        return false;
}

Test(dbus, state_changes_emit_properties_changed) {
        sd_bus *bus = harness_bus_new(h);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus_slot *slot = NULL;
        Seen seen = {};
        const char *path;
        int r;

        r = sd_bus_add_match(
                bus, &slot,
                "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                "path_namespace='" HARNESS_BUS_PATH "/actor',arg0='io.kactor.Actor1'",
                on_changed, &seen);
        cr_assert_geq(r, 0, "AddMatch: %s", strerror(-r));
        r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor", &e, &reply, "ssava{sv}",
                               "testmod", "Sleeper", 0, 0);
        cr_assert_geq(r, 0, "CreateActor: %s", e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        seen.path = harness_keep(h, strdup(path));
        sd_bus_message_unref(reply);

        cr_assert(wait_seen(bus, &seen, "alive"), "no PropertiesChanged with State=alive (%zu seen)",
                  seen.n);
        r = sd_bus_call_method(bus, HARNESS_BUS_NAME, seen.path, ACTOR, "Kill", &e, NULL, "b", 1);
        cr_assert_geq(r, 0, "Kill: %s", e.message);
        cr_assert(wait_seen(bus, &seen, "dead"), "no PropertiesChanged with State=dead after Kill");
        /* alive came before dead, and nothing after dead. */
        cr_assert_str_eq(seen.states[seen.n - 1], "dead");
        for (size_t i = 0; i + 1 < seen.n; i++)
                cr_assert_str_neq(seen.states[i], "dead", "State went on after dead");

        sd_bus_slot_unref(slot);
        sd_bus_flush_close_unref(bus);
}

/* --- handles and references over D-Bus -------------------------------------------------------- */

Test(dbus, object_path_arguments_are_handles_and_resolved_references) {
        const char *counter = create("counter", "Counter");
        const char *echo = create("testmod", "Echo");
        const char *sleeper = create("testmod", "Sleeper");
        const char *holder, *put, *late;

        /* An actor path is a handle: the holder calls the counter through it. */
        holder = harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}",
                                                               "testmod", "Holder", "1", "o", counter, "0",
                                                               NULL));
        cr_assert_str_eq(get1(call(holder, "call", "1", "s", "increment")), "av 1 x 1");
        cr_assert_str_eq(get1(call(counter, "increment", "0")), "av 1 x 2");

        /* An object path is a reference, replaced by its value before the method runs, also when the
         * value is still being computed. */
        put = harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "Put", "v", "x", "41", NULL));
        late = call(sleeper, "sleep_then", "2", "x", "300", "s", "late");
        cr_assert_str_eq(get1(call(echo, "echo", "2", "o", put, "o", late)), "av 1 av 2 x 41 s \"late\"");
}

Test(dbus, undetached_actor_dies_with_its_bus_connection) {
        sd_bus *bus = harness_bus_new(h);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path, *kept;
        pid_t pid;
        int r;

        r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor", &e, &reply, "ssava{sv}",
                               "testmod", "Sleeper", 0, 1, "Detached", "b", 0);
        cr_assert_geq(r, 0, "CreateActor: %s", e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        path = harness_keep(h, strdup(path));
        sd_bus_message_unref(reply);
        kept = create("testmod", "Sleeper"); /* detached: stays */

        cr_assert(harness_wait_actor_state(h, path, "alive", HARNESS_TIMEOUT_MS));
        pid = (pid_t)harness_property_uint(h, path, ACTOR, "Pid");
        sd_bus_flush_close_unref(bus);
        cr_assert(harness_wait_pid_exit(pid, HARNESS_TIMEOUT_MS),
                  "the worker of an actor owned by a closed connection is still running");
        cr_assert_str_eq(get1(call(kept, "ping", "0")), "av 1 s \"pong\"");
}

Test(dbus, undetached_actor_killed_before_its_owner_goes) {
        sd_bus *bus = harness_bus_new(h);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path, *other;
        int r;

        r = sd_bus_call_method(bus, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor", &e, &reply, "ssava{sv}",
                               "testmod", "Sleeper", 0, 1, "Detached", "b", 0);
        cr_assert_geq(r, 0, "CreateActor: %s", e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
        path = harness_keep(h, strdup(path));
        sd_bus_message_unref(reply);
        cr_assert(harness_wait_actor_state(h, path, "alive", HARNESS_TIMEOUT_MS));
        harness_busctl_call_ok(h, path, ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));

        /* The owner goes after its actor: nothing of it is left to let go of, and the node goes on. */
        sd_bus_flush_close_unref(bus);
        other = create("testmod", "Sleeper");
        cr_assert_str_eq(get1(call(other, "ping", "0")), "av 1 s \"pong\"");
        cr_assert_str_eq(harness_property_string(h, path, ACTOR, "State"), "dead");
}

Test(dbus, dangling_object_argument_is_an_error) {
        const char *echo = create("testmod", "Echo");
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *object;
        int r;

        r = harness_bus_call(h, &e, &reply, echo, ACTOR, "Call", "sav", "echo", 1, "o",
                             OBJECT_PREFIX "0123456789abcdef0123456789abcdef");
        if (r >= 0) {
                cr_assert_geq(sd_bus_message_read(reply, "o", &object), 0);
                object = harness_keep(h, strdup(object));
                sd_bus_message_unref(reply);
                r = harness_bus_call(h, &e, NULL, MGR, IFACE, "Get", "aot", 1, object, (uint64_t)10000000);
        }
        cr_assert_lt(r, 0, "a call with a reference to nothing succeeded");
        cr_assert(sd_bus_error_has_name(&e, "io.kactor.Error.NoSuchObject") ||
                          sd_bus_error_has_name(&e, "org.freedesktop.DBus.Error.InvalidArgs"),
                  "error %s (\"%s\")", e.name, e.message);
        sd_bus_error_free(&e);
        cr_assert_str_eq(get1(call(echo, "echo", "1", "x", "3")), "av 1 av 1 x 3");
}
