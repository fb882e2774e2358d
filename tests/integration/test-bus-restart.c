/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A D-Bus restart alone: the bus daemon dies and a new one starts at the same address, while the node
 * manager keeps running. Native clients go on through the outage; once the bus is back the manager
 * owns its name again and D-Bus clients find every actor at the same path, with its state.
 */

#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "macro.h"
#include "time-util.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define ACTOR HARNESS_IFACE_ACTOR

static Harness *h;

static void setup(void) {
        h = harness_start(NULL);
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(bus_restart, .init = setup, .fini = teardown, .timeout = 90);

/* Call(method) with no arguments: the result's object path. */
static const char *call(const char *actor, const char *method) {
        return harness_busctl_path(h, harness_busctl_call_ok(h, actor, ACTOR, "Call", "sav", method, "0", NULL));
}

static const char *get1(const char *object) {
        return harness_busctl_call_ok(h, MGR, IFACE, "Get", "aot", "1", object, "10000000", NULL);
}

/* Whether the name has an owner on the bus. */
static bool name_has_owner(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int has = 0, r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", &e, &reply, "s", HARNESS_BUS_NAME);
        sd_bus_error_free(&e);
        if (r >= 0)
                r = sd_bus_message_read(reply, "b", &has);
        sd_bus_message_unref(reply);
        return r > 0 && has;
}

/* Waits, every 10 ms and at most timeout_ms, until the node manager owns its name on the bus. */
static bool wait_name_owned(unsigned timeout_ms) {
        sd_bus *bus = harness_bus_new(h);
        bool owned = false;

        for (unsigned waited = 0; waited <= timeout_ms && !owned; waited += 10) {
                owned = name_has_owner(bus);
                if (!owned)
                        (void)nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
        }
        sd_bus_flush_close_unref(bus);
        return owned;
}

/* The actor paths GetManagedObjects lists, as one string ("path path ..."). */
static const char *managed_actors(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *list = strdup("");
        const char *path;
        int r;

        r = harness_bus_call(h, &e, &reply, MGR, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "");
        cr_assert_geq(r, 0, "GetManagedObjects: %s: %s", e.name, e.message);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}"), 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                cr_assert_geq(sd_bus_message_read(reply, "o", &path), 0);
                char *n = NULL;
                cr_assert_geq(asprintf(&n, "%s%s ", list, path), 0);
                free(list);
                list = n;
                cr_assert_geq(sd_bus_message_skip(reply, "a{sa{sv}}"), 0);
                cr_assert_geq(sd_bus_message_exit_container(reply), 0);
        }
        cr_assert_geq(r, 0);
        sd_bus_message_unref(reply);
        return harness_keep(h, list);
}

typedef struct Announced {
        const char *actor;
        bool actor_added;
        bool manager_changed;
} Announced;

static int on_interfaces_added(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Announced *a = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) >= 0 && streq(path, a->actor))
                a->actor_added = true;
        return 0;
}

static int on_manager_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Announced *a = userdata;
        const char *interface;

        if (sd_bus_message_read(m, "s", &interface) >= 0 && streq(interface, IFACE))
                a->manager_changed = true;
        return 0;
}

static bool contains_path(const char *list, const char *path) {
        size_t n = strlen(path);
        for (const char *p = strstr(list, path); p; p = strstr(p + 1, path))
                if ((p == list || p[-1] == ' ') && p[n] == ' ')
                        return true;
        return false;
}

Test(bus_restart, manager_takes_its_name_again_and_actors_keep_paths_and_state) {
        kactor_client *c = harness_client(h);
        kactor_actor native = harness_create(h, c, "counter", "Counter", NULL, NULL);
        const char *native_path = harness_actor_path(h, native);
        kactor_value *v;

        for (int i = 0; i < 2; i++)
                kactor_value_free(harness_call(c, native, "increment", NULL));

        /* Over D-Bus: a detached, named counter; an object kept by Put; an actor owned by a connection. */
        const char *named = harness_busctl_path(
                h, harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", "0",
                                          "1", "Name", "s", "keeper", NULL));
        const char *first = call(named, "increment");
        call(named, "increment");
        cr_assert_str_eq(get1(call(named, "increment")), "av 1 x 3");
        const char *put = harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "Put", "v", "s", "kept", NULL));

        sd_bus *owner = harness_bus_new(h);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *owned;
        int r = sd_bus_call_method(owner, HARNESS_BUS_NAME, MGR, IFACE, "CreateActor", &e, &reply, "ssava{sv}",
                                   "testmod", "Sleeper", 0, 1, "Detached", "b", 0);
        cr_assert_geq(r, 0, "CreateActor: %s", e.message);
        cr_assert_geq(sd_bus_message_read(reply, "o", &owned), 0);
        owned = harness_keep(h, strdup(owned));
        sd_bus_message_unref(reply);
        cr_assert(harness_wait_actor_state(h, owned, "alive", HARNESS_TIMEOUT_MS));
        pid_t owned_pid = (pid_t)harness_property_uint(h, owned, ACTOR, "Pid");

        /* A Get that is still waiting when the bus goes: the manager must let go of it cleanly, and the
         * call it waits for still finishes afterwards. */
        const char *sleeper = harness_busctl_path(
                h, harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", "testmod", "Sleeper", "0",
                                          "0", NULL));
        const char *slow = harness_busctl_path(h, harness_busctl_call_ok(h, sleeper, ACTOR, "Call", "sav", "sleep_then",
                                                                         "2", "x", "1500", "x", "7", NULL));
        r = sd_bus_call_method_async(owner, NULL, HARNESS_BUS_NAME, MGR, IFACE, "Get", NULL, NULL, "aot", 1, slow,
                                     (uint64_t)60000000);
        cr_assert_geq(r, 0);
        /* Answered in order after the Get: once Ping returns, the manager holds the Get. */
        r = sd_bus_call_method(owner, HARNESS_BUS_NAME, MGR, "org.freedesktop.DBus.Peer", "Ping", &e, NULL, "");
        cr_assert_geq(r, 0, "Ping: %s", e.message);

        harness_dbus_kill(h);
        owner = sd_bus_close_unref(owner);

        /* The outage: the manager is still there for native clients, named actors included. */
        harness_assert_running(h);
        v = harness_call(c, native, "increment", NULL);
        harness_assert_value(v, "3");
        kactor_value_free(v);
        kactor_actor found;
        cr_assert_eq(kactor_get_actor(c, "keeper", &found), 0, "the named actor is not found during the outage");
        v = harness_call(c, found, "increment", NULL);
        harness_assert_value(v, "4");
        kactor_value_free(v);

        /* Held still while the new bus starts, so that a client is listening before it reconnects. */
        cr_assert_eq(kill(h->nodemgr_pid, SIGSTOP), 0);
        harness_dbus_start(h);
        sd_bus *listener = harness_bus_new(h);
        Announced seen = {.actor = named};
        cr_assert_geq(sd_bus_match_signal(listener, NULL, HARNESS_BUS_NAME, MGR, "org.freedesktop.DBus.ObjectManager",
                                          "InterfacesAdded", on_interfaces_added, &seen), 0);
        cr_assert_geq(sd_bus_match_signal(listener, NULL, HARNESS_BUS_NAME, MGR, "org.freedesktop.DBus.Properties",
                                          "PropertiesChanged", on_manager_properties_changed, &seen), 0);
        cr_assert_eq(kill(h->nodemgr_pid, SIGCONT), 0);

        cr_assert(wait_name_owned(HARNESS_TIMEOUT_MS), "the node manager did not take %s again; its log:\n%s",
                  HARNESS_BUS_NAME, harness_nodemgr_log(h));
        for (uint64_t deadline = now_usec(CLOCK_MONOTONIC) + HARNESS_TIMEOUT_USEC;
             (!seen.actor_added || !seen.manager_changed) && now_usec(CLOCK_MONOTONIC) < deadline;) {
                int k = sd_bus_process(listener, NULL);
                cr_assert_geq(k, 0);
                if (k == 0)
                        (void)sd_bus_wait(listener, deadline - now_usec(CLOCK_MONOTONIC));
        }
        cr_assert(seen.actor_added, "no InterfacesAdded for %s after the bus came back", named);
        cr_assert(seen.manager_changed, "no PropertiesChanged for the manager after the bus came back");
        sd_bus_flush_close_unref(listener);

        /* The same paths answer, with their state; the name finds the same actor. */
        cr_assert_str_eq(get1(call(named, "increment")), "av 1 x 5");
        cr_assert_str_eq(get1(first), "av 1 x 1");
        cr_assert_str_eq(get1(put), "av 1 s \"kept\"");
        cr_assert_str_eq(get1(call(native_path, "increment")), "av 1 x 4");
        cr_assert_str_eq(harness_busctl_path(h, harness_busctl_call_ok(h, MGR, IFACE, "GetActor", "s", "keeper",
                                                                       NULL)),
                         named);
        cr_assert_str_eq(harness_property_string(h, named, ACTOR, "Name"), "keeper");
        cr_assert_str_eq(get1(slow), "av 1 x 7");

        const char *listed = managed_actors();
        cr_assert(contains_path(listed, named), "GetManagedObjects lacks %s: %s", named, listed);
        cr_assert(contains_path(listed, native_path), "GetManagedObjects lacks %s: %s", native_path, listed);
        cr_assert(contains_path(listed, sleeper), "GetManagedObjects lacks %s: %s", sleeper, listed);

        /* The owner of the Detached=false actor was a connection to the old bus: it is gone, and the
         * actor stops, as when its owner disconnects. */
        cr_assert(harness_wait_pid_exit(owned_pid, HARNESS_TIMEOUT_MS),
                  "the worker of an actor owned by a connection to the old bus is still running");

        /* And native clients never noticed. */
        v = harness_call(c, native, "increment", NULL);
        harness_assert_value(v, "5");
        kactor_value_free(v);
}

Test(bus_restart, manager_survives_two_restarts_and_stops_cleanly) {
        const char *named = harness_busctl_path(
                h, harness_busctl_call_ok(h, MGR, IFACE, "CreateActor", "ssava{sv}", "counter", "Counter", "0",
                                          "1", "Name", "s", "twice", NULL));

        for (int round = 1; round <= 2; round++) {
                char expect[32];

                harness_dbus_kill(h);
                harness_assert_running(h);
                harness_dbus_start(h);
                cr_assert(wait_name_owned(HARNESS_TIMEOUT_MS), "round %d: the name was not taken again; log:\n%s",
                          round, harness_nodemgr_log(h));
                snprintf(expect, sizeof(expect), "av 1 x %d", round);
                cr_assert_str_eq(get1(call(named, "increment")), expect);
        }
        /* harness_stop() checks that SIGINT still stops it with status 0. */
}
