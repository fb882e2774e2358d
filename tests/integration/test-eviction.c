/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Eviction and reconstruction, as a user sees it: under a tiny --object-store-memory the node
 * manager evicts results and puts, and a Get still gives the right values — an actor call's result
 * rebuilt by replaying the actor's lineage in a temporary worker (the live actor runs nothing
 * again and its state is untouched), a task's result by running the task again, a put read back
 * from where it was spilled (and the spill file removed once the object is released). A result
 * that cannot be had again fails with NoSuchObject saying why; a Get keeps what it reads.
 *
 * The actors and functions are tests/modules/evictmod.c: they leave a line in a file each time they
 * run (the Ledger actor with the PID of the process that ran it), and their results are larger than
 * 16 bytes (smaller values are never evicted).
 */

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"

#define MGR HARNESS_BUS_PATH
#define IFACE HARNESS_IFACE_MANAGER
#define ACTOR HARNESS_IFACE_ACTOR
#define STORE_MAX 64
#define STORE_MAX_STRING "64"

static Harness *h;

static void setup(void) {
        static const char *const extra[] = {"--object-store-memory", STORE_MAX_STRING, NULL};
        h = harness_start(&(HarnessOptions){.extra_args = extra});
}

static void setup_checkpoints(void) {
        static const char *const extra[] = {"--object-store-memory", STORE_MAX_STRING,
                                            "--checkpoint-interval", "10", NULL};
        h = harness_start(&(HarnessOptions){.extra_args = extra});
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(eviction, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(eviction_checkpoints, .init = setup_checkpoints, .fini = teardown, .timeout = 60);

/* --- helpers --------------------------------------------------------------------------------- */

static uint64_t manager_uint(const char *name) {
        return harness_property_uint(h, MGR, IFACE, name);
}

/* Polls a manager property that sends no PropertiesChanged until it is `want` (bounded). */
static bool wait_manager_uint(const char *name, uint64_t want) {
        for (unsigned waited = 0; waited < HARNESS_TIMEOUT_MS; waited += 10) {
                if (manager_uint(name) == want)
                        return true;
                (void)usleep(10000);
        }
        return manager_uint(name) == want;
}

/*
 * Everything sent on c before this has been handled, and the eviction pass that follows it has run,
 * when it returns: a native round trip (its reply may leave in the same loop iteration, before that
 * iteration's eviction pass), then a D-Bus round trip, which the node manager handles in a later
 * iteration.
 */
static void sync_client(kactor_client *c) {
        kactor_actor a;
        int r = kactor_get_actor(c, "eviction-test-no-such-actor", &a);

        cr_assert_eq(r, -EREMOTEIO, "kactor_get_actor as a round trip: %s", strerror(-r));
        cr_assert_eq(kactor_client_error(c), KACTOR_ERROR_NO_SUCH_ACTOR);
        (void)manager_uint("Objects");
}

static kactor_ref call_ref(kactor_client *c, kactor_actor a, const char *method, const char *args_json) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL;
        kactor_ref ref = {};
        int r = kactor_call(c, a, method, args, &ref);

        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_call(%s): %s: %s", method, strerror(-r), kactor_client_error_message(c));
        return ref;
}

static kactor_ref submit_ref(kactor_client *c, const char *module, const char *function,
                             const char *args_json) {
        kactor_value *args = args_json ? harness_value(args_json) : NULL;
        kactor_ref ref = {};
        int r = kactor_submit(c, module, function, args, NULL, &ref);

        kactor_value_free(args);
        cr_assert_eq(r, 0, "kactor_submit(%s): %s: %s", function, strerror(-r),
                     kactor_client_error_message(c));
        return ref;
}

/* Puts v, and frees it. */
static kactor_ref put_ref(kactor_client *c, kactor_value *v) {
        kactor_ref ref = {};
        int r = kactor_put(c, v, &ref);

        kactor_value_free(v);
        cr_assert_eq(r, 0, "kactor_put: %s: %s", strerror(-r), kactor_client_error_message(c));
        return ref;
}

static int64_t value_int(const kactor_value *v) {
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_INT, "expected an int, got %s",
                     harness_value_str(h, v));
        return kactor_value_get_int(v);
}

/* Asserts that ref's value is the JSON `json`. */
#define assert_get(c, ref, json)                                                                            \
        do {                                                                                                \
                kactor_value *v_ = harness_get((c), (ref));                                                 \
                harness_assert_value(v_, (json));                                                           \
                kactor_value_free(v_);                                                                      \
        } while (0)

/* What Ledger.add returns when the total is t. */
static const char *total_is(int64_t t) {
        return harness_printf(h, "\"the total is now %" PRId64 "\"", t);
}

static kactor_actor create_ledger(kactor_client *c, const char *file) {
        return harness_create(h, c, harness_module(h, "evictmod"), "Ledger",
                              harness_printf(h, "[\"%s\"]", file), NULL);
}

static int64_t get_int(kactor_client *c, kactor_ref ref) {
        kactor_value *v = harness_get(c, ref);
        int64_t i = value_int(v);

        kactor_value_free(v);
        return i;
}

/* Gets n refs in one Get; the caller frees the values with kactor_values_free(). */
static kactor_value **get_all(kactor_client *c, const kactor_ref *refs, size_t n) {
        kactor_value **values = NULL;
        int r = kactor_get(c, refs, n, HARNESS_TIMEOUT_USEC, &values);

        cr_assert_eq(r, 0, "kactor_get of %zu: %s: %s\n%s", n, strerror(-r), kactor_client_error_message(c),
                     harness_nodemgr_log(h));
        return values;
}

static char *read_text(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;

        if (!f)
                return strdup("");
        cr_assert_eq(getdelim(&buf, &len, '\0', f) >= 0 || feof(f), true, "reading %s", path);
        fclose(f);
        return buf ?: strdup("");
}

/* How many lines of a Ledger file are "pid x" with the given pid (or, with pid 0, with any pid
 * other than `not_pid`), and their x values in order, up to max. */
static size_t ledger_lines(const char *path, pid_t pid, pid_t not_pid, int64_t *xs, size_t max,
                           pid_t *ret_other) {
        _cleanup_free_ char *text = read_text(path);
        size_t n = 0;
        char *save = NULL;

        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                int p;
                long long x;

                cr_assert_eq(sscanf(line, "%d %lld", &p, &x), 2, "malformed ledger line \"%s\"", line);
                if (pid > 0 ? p != pid : p == not_pid)
                        continue;
                if (ret_other) {
                        cr_assert(*ret_other == 0 || *ret_other == p,
                                  "more than one other process ran the ledger");
                        *ret_other = p;
                }
                if (n < max)
                        xs[n] = x;
                n++;
        }
        return n;
}

/* How many lines of a tally file are exactly `x`. */
static size_t tally_count(const char *path, int64_t x) {
        _cleanup_free_ char *text = read_text(path);
        size_t n = 0;
        char *save = NULL;

        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                n += strtoll(line, NULL, 10) == x;
        return n;
}

static const char *spill_file(kactor_ref ref) {
        char id[KACTOR_ID_STRING_MAX];

        kactor_id_to_string(ref.id, id);
        return harness_printf(h, "%s/spill/%s", h->runtime_dir, id);
}

static bool file_exists(const char *path) {
        struct stat st;

        return stat(path, &st) == 0;
}

/* Files left in RUNTIME_DIR/spill (0 when there is no such directory). */
static size_t spill_files(void) {
        DIR *d = opendir(harness_printf(h, "%s/spill", h->runtime_dir));
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* A string of len bytes, 'a'..'z' over and over. */
static kactor_value *letters(size_t len) {
        _cleanup_free_ char *s = malloc(len + 1);
        kactor_value *v;

        cr_assert_not_null(s);
        for (size_t i = 0; i < len; i++)
                s[i] = (char)('a' + i % 26);
        s[len] = 0;
        v = kactor_value_new_stringn(s, len);
        cr_assert_not_null(v);
        return v;
}

/* Bytes 0, 1, …, 255, 0, 1, … (NULs included). */
static kactor_value *byte_ramp(size_t len) {
        _cleanup_free_ uint8_t *p = malloc(len ?: 1);
        kactor_value *v;

        cr_assert_not_null(p);
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)i;
        v = kactor_value_new_bytes(p, len);
        cr_assert_not_null(v);
        return v;
}

/* --- the store's limit ----------------------------------------------------------------------- */

Test(eviction, the_manager_shows_the_limit_and_keeps_under_it) {
        kactor_client *c = harness_client(h);
        kactor_ref refs[32];
        kactor_value **values;

        cr_assert_eq(manager_uint("ObjectStoreMemoryMax"), STORE_MAX);
        cr_assert_eq(manager_uint("ObjectsEvicted"), 0);
        cr_assert_eq(manager_uint("ObjectsRebuilt"), 0);

        for (size_t i = 0; i < ELEMENTSOF(refs); i++)
                refs[i] = put_ref(c,
                                  harness_value(harness_printf(h, "\"put number %zu, sixteen+ bytes\"", i)));
        sync_client(c);
        cr_assert_gt(manager_uint("ObjectsEvicted"), 0);
        cr_assert_leq(manager_uint("ObjectStoreBytes"), STORE_MAX, "the store keeps %" PRIu64 " bytes",
                      manager_uint("ObjectStoreBytes"));

        values = get_all(c, refs, ELEMENTSOF(refs));
        for (size_t i = 0; i < ELEMENTSOF(refs); i++) {
                kactor_value *want =
                        harness_value(harness_printf(h, "\"put number %zu, sixteen+ bytes\"", i));
                cr_assert(kactor_value_equal(values[i], want), "put %zu came back as %s", i,
                          harness_value_str(h, values[i]));
                kactor_value_free(want);
        }
        kactor_values_free(values, ELEMENTSOF(refs));
        sync_client(c);
        cr_assert_leq(manager_uint("ObjectStoreBytes"), STORE_MAX,
                      "after the Get the store keeps %" PRIu64 " bytes", manager_uint("ObjectStoreBytes"));
        harness_assert_running(h);
}

/* --- actor call results ---------------------------------------------------------------------- */

Test(eviction, actor_results_are_rebuilt_in_a_temporary_worker_not_by_the_live_actor) {
        enum { N = 100 };
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        pid_t live = harness_actor_pid(h, a), other = 0;
        kactor_ref refs[N];
        kactor_value **values;
        int64_t xs[N + 1];
        uint64_t rebuilt;

        for (int i = 0; i < N; i++)
                refs[i] = call_ref(c, a, "add", harness_printf(h, "[%d]", i + 1));
        values = get_all(c, refs, N);
        for (int i = 0; i < N; i++)
                harness_assert_value(values[i], total_is((i + 1) * (i + 2) / 2));
        kactor_values_free(values, N);
        sync_client(c);
        cr_assert_gt(manager_uint("ObjectsEvicted"), 0, "%d results of 20 bytes each, a limit of %d bytes",
                     N, STORE_MAX);
        rebuilt = manager_uint("ObjectsRebuilt");

        /* The third result was among the least recently used: evicted, and rebuilt on demand. */
        assert_get(c, refs[2], total_is(6));
        cr_assert_eq(manager_uint("ObjectsRebuilt"), rebuilt + 1);

        /* The live worker ran each call once, in order, and is the same process as before. */
        cr_assert_eq(harness_actor_pid(h, a), live, "the live actor's worker was replaced");
        cr_assert_eq(ledger_lines(file, live, 0, xs, N + 1, NULL), N, "the live worker ran %zu calls",
                     ledger_lines(file, live, 0, xs, N + 1, NULL));
        for (int i = 0; i < N; i++)
                cr_assert_eq(xs[i], i + 1, "the live worker's call %d was add(%" PRId64 ")", i + 1, xs[i]);

        /* Another process replayed the lineage up to call 3, and no further. */
        cr_assert_eq(ledger_lines(file, 0, live, xs, N + 1, &other), 3, "the temporary worker ran %zu calls",
                     ledger_lines(file, 0, live, xs, N + 1, NULL));
        cr_assert_neq(other, live);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(xs[i], i + 1, "the replay's call %d was add(%" PRId64 ")", i + 1, xs[i]);
        cr_assert(harness_wait_pid_exit(other, HARNESS_TIMEOUT_MS),
                  "the temporary worker %d is still running", (int)other);

        /* The live actor's state is untouched: it goes on from 5050. */
        kactor_value *v = harness_call(c, a, "total", NULL);
        harness_assert_value(v, "5050");
        kactor_value_free(v);
        v = harness_call(c, a, "add", "[101]");
        harness_assert_value(v, total_is(5151));
        kactor_value_free(v);
        cr_assert_eq(ledger_lines(file, live, 0, xs, N + 1, NULL), N + 1);
        harness_assert_running(h);
}

Test(eviction, a_result_rebuilt_twice_gives_the_same_value) {
        enum { N = 80 };
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        kactor_ref refs[N];
        kactor_value **values;

        for (int i = 0; i < N; i++)
                refs[i] = call_ref(c, a, "add", "[1000]");
        values = get_all(c, refs, N);
        kactor_values_free(values, N);

        /* Call 5 and call 40, each fetched, evicted again by many others, and fetched again. */
        for (int round = 0; round < 2; round++) {
                kactor_ref more[N];

                assert_get(c, refs[4], total_is(5000));
                assert_get(c, refs[39], total_is(40000));
                for (int i = 0; i < N; i++)
                        more[i] = put_ref(c, letters(20));
                sync_client(c);
                cr_assert_eq(kactor_ref_release(c, more, N), 0);
        }
        kactor_value *v = harness_call(c, a, "total", NULL);
        harness_assert_value(v, "80000");
        kactor_value_free(v);
        cr_assert_geq(manager_uint("ObjectsRebuilt"), 2);
        harness_assert_running(h);
}

/* --- task results ---------------------------------------------------------------------------- */

Test(eviction, task_results_are_rebuilt_by_running_the_task_again) {
        enum { N = 48 };
        kactor_client *c = harness_client(h);
        const char *module = harness_module(h, "evictmod"), *file = harness_printf(h, "%s/tally", h->dir);
        kactor_ref refs[N];
        kactor_value **values;
        uint64_t rebuilt;

        for (int i = 0; i < N; i++)
                refs[i] = submit_ref(c, module, "tally", harness_printf(h, "[\"%s\", %d]", file, i + 1));
        values = get_all(c, refs, N);
        for (int i = 0; i < N; i++)
                harness_assert_value(values[i], harness_printf(h, "\"tally result for %d\"", i + 1));
        kactor_values_free(values, N);
        sync_client(c);
        cr_assert_gt(manager_uint("ObjectsEvicted"), 0);
        for (int i = 0; i < N; i++)
                cr_assert_eq(tally_count(file, i + 1), 1, "task %d ran %zu times", i + 1,
                             tally_count(file, i + 1));
        rebuilt = manager_uint("ObjectsRebuilt");

        /* The first result was evicted: its task runs again, and only it. */
        assert_get(c, refs[0], "\"tally result for 1\"");
        cr_assert_eq(manager_uint("ObjectsRebuilt"), rebuilt + 1);
        cr_assert_eq(tally_count(file, 1), 2, "the evicted task ran %zu times in all", tally_count(file, 1));
        for (int i = 1; i < N; i++)
                cr_assert_eq(tally_count(file, i + 1), 1, "task %d ran %zu times", i + 1,
                             tally_count(file, i + 1));

        /* Now it is the most recently used: a second Get does not run it a third time. */
        assert_get(c, refs[0], "\"tally result for 1\"");
        cr_assert_eq(tally_count(file, 1), 2);
        harness_assert_running(h);
}

Test(eviction, a_large_task_result_is_rebuilt_byte_for_byte) {
        kactor_client *c = harness_client(h);
        const char *module = harness_module(h, "evictmod");
        kactor_ref big = submit_ref(c, module, "pattern", "[300000, 5]");
        kactor_value *v = harness_get(c, big);
        const uint8_t *p;
        size_t len;

        kactor_value_free(v);
        sync_client(c);
        cr_assert_gt(manager_uint("ObjectsEvicted"), 0, "a 300000-byte result over a %d-byte limit",
                     STORE_MAX);

        v = harness_get(c, big);
        cr_assert_eq(kactor_value_type(v), KACTOR_TYPE_BYTES, "got %s",
                     kactor_type_to_string(kactor_value_type(v)));
        p = kactor_value_get_bytes(v, &len);
        cr_assert_eq(len, 300000);
        for (size_t i = 0; i < len; i++)
                cr_assert_eq(p[i], (uint8_t)((i * 7 + 5) % 256), "byte %zu is %u", i, p[i]);
        cr_assert_geq(manager_uint("ObjectsRebuilt"), 1);
        kactor_value_free(v);
}

/* --- puts ------------------------------------------------------------------------------------ */

Test(eviction, puts_are_spilled_and_read_back_exactly) {
        enum { BIG = 1 << 20 };
        kactor_client *c = harness_client(h);
        kactor_value *ramp = byte_ramp(1000), *big = letters(BIG), *v;
        kactor_ref refs[2];

        refs[0] = put_ref(c, kactor_value_copy(ramp));
        refs[1] = put_ref(c, kactor_value_copy(big));
        sync_client(c);
        cr_assert_geq(manager_uint("ObjectsEvicted"), 2);
        cr_assert(file_exists(spill_file(refs[0])), "no spill file %s", spill_file(refs[0]));
        cr_assert(file_exists(spill_file(refs[1])), "no spill file %s", spill_file(refs[1]));

        v = harness_get(c, refs[0]);
        cr_assert(kactor_value_equal(v, ramp), "the bytes with NULs came back as %s",
                  harness_value_str(h, v));
        kactor_value_free(v);
        v = harness_get(c, refs[1]);
        cr_assert(kactor_value_equal(v, big), "the 1 MiB string did not come back the same");
        kactor_value_free(v);

        /* Read back once more, each in a Get of both. */
        kactor_value **values = get_all(c, refs, 2);
        cr_assert(kactor_value_equal(values[0], ramp));
        cr_assert(kactor_value_equal(values[1], big));
        kactor_values_free(values, 2);

        /* A task gets the spilled value as its argument. */
        kactor_value *args = kactor_value_new_list();
        kactor_ref len_ref;
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_ref(refs[1])), 0);
        cr_assert_eq(kactor_submit(c, harness_module(h, "evictmod"), "size", args, NULL, &len_ref), 0);
        kactor_value_free(args);
        cr_assert_eq(get_int(c, len_ref), BIG);

        /* Released, the objects take their spill files with them. */
        sync_client(c);
        cr_assert_eq(kactor_ref_release(c, refs, 2), 0);
        sync_client(c);
        cr_assert_not(file_exists(spill_file(refs[0])), "%s is left behind", spill_file(refs[0]));
        cr_assert_not(file_exists(spill_file(refs[1])), "%s is left behind", spill_file(refs[1]));
        cr_assert_eq(spill_files(), 0, "%zu spill files are left behind", spill_files());
        kactor_value_free(ramp);
        kactor_value_free(big);
        harness_assert_running(h);
}

Test(eviction, closing_the_client_removes_its_spill_files) {
        kactor_client *c = harness_client(h);

        for (int i = 0; i < 20; i++)
                (void)put_ref(c, letters(100));
        sync_client(c);
        cr_assert_geq(spill_files(), 19);
        harness_client_close(h, c);

        /* Nothing tells when the close was handled: poll (bounded). */
        cr_assert(wait_manager_uint("Objects", 0), "%" PRIu64 " objects are left", manager_uint("Objects"));
        cr_assert_eq(spill_files(), 0, "%zu spill files are left behind", spill_files());
}

Test(eviction, a_spilled_put_is_read_back_for_a_dbus_get) {
        kactor_client *c = harness_client(h);
        kactor_value *big = letters(5000);
        kactor_ref ref = put_ref(c, kactor_value_copy(big));
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *s;
        int r;

        sync_client(c);
        cr_assert(file_exists(spill_file(ref)), "the put was not spilled");
        r = harness_bus_call(h, &error, &reply, MGR, IFACE, "Get", "aot", 1, harness_object_path(h, ref),
                             HARNESS_TIMEOUT_USEC);
        cr_assert_geq(r, 0, "Get: %s: %s", error.name, error.message);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'a', "v"), 0);
        cr_assert_geq(sd_bus_message_enter_container(reply, 'v', "s"), 0, "the value is not a string");
        cr_assert_geq(sd_bus_message_read(reply, "s", &s), 0);
        cr_assert_str_eq(s, kactor_value_get_string(big, NULL));
        sd_bus_message_unref(reply);
        kactor_value_free(big);
        harness_assert_running(h);
}

/* --- what a Get holds ------------------------------------------------------------------------ */

Test(eviction, a_get_keeps_the_objects_it_reads) {
        enum { PUTS = 40, TASKS = 16, CALLS = 8, N = PUTS + TASKS + CALLS };
        kactor_client *c = harness_client(h);
        const char *module = harness_module(h, "evictmod"), *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        kactor_ref refs[N];
        kactor_value **values;
        size_t k = 0;

        for (int i = 0; i < PUTS; i++)
                refs[k++] = put_ref(
                        c, harness_value(harness_printf(h, "\"put %d: some thirty-two bytes..\"", i)));
        for (int i = 0; i < TASKS; i++)
                refs[k++] = submit_ref(c, module, "pattern", harness_printf(h, "[40, %d]", i));
        for (int i = 0; i < CALLS; i++)
                refs[k++] = call_ref(c, a, "add", harness_printf(h, "[%d]", i + 1));
        values = get_all(c, refs, N);
        kactor_values_free(values, N);
        sync_client(c);
        cr_assert_gt(manager_uint("ObjectsEvicted"), 0);

        /* All at once, each many times the limit over: every one of them comes back right. */
        for (int round = 0; round < 2; round++) {
                values = get_all(c, refs, N);
                k = 0;
                for (int i = 0; i < PUTS; i++, k++) {
                        kactor_value *want =
                                harness_value(harness_printf(h, "\"put %d: some thirty-two bytes..\"", i));
                        cr_assert(kactor_value_equal(values[k], want), "put %d came back as %s", i,
                                  harness_value_str(h, values[k]));
                        kactor_value_free(want);
                }
                for (int i = 0; i < TASKS; i++, k++) {
                        size_t len;
                        const uint8_t *p;

                        cr_assert_eq(kactor_value_type(values[k]), KACTOR_TYPE_BYTES, "task %d: %s", i,
                                     harness_value_str(h, values[k]));
                        p = kactor_value_get_bytes(values[k], &len);
                        cr_assert_eq(len, 40);
                        for (size_t j = 0; j < len; j++)
                                cr_assert_eq(p[j], (uint8_t)((j * 7 + (size_t)i) % 256));
                }
                for (int i = 0; i < CALLS; i++, k++)
                        harness_assert_value(values[k], total_is((i + 1) * (i + 2) / 2));
                kactor_values_free(values, N);
        }
        sync_client(c);
        cr_assert_leq(manager_uint("ObjectStoreBytes"), STORE_MAX);
        kactor_value *v = harness_call(c, a, "total", NULL);
        harness_assert_value(v, "36");
        kactor_value_free(v);
        harness_assert_running(h);
}

Test(eviction, evicted_results_are_rebuilt_to_be_passed_as_arguments) {
        kactor_client *c = harness_client(h);
        const char *module = harness_module(h, "evictmod"), *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        kactor_ref from_actor = call_ref(c, a, "add", "[7]"),
                   from_task = submit_ref(c, module, "pattern", "[500, 3]");
        kactor_ref sizes[2];
        kactor_value *args;

        assert_get(c, from_actor, total_is(7));
        kactor_value_free(harness_get(c, from_task));
        /* A direct call's caller has its answer a moment before the node manager has the result (to
         * evict): a Wait now asks the node manager. */
        bool ready = false;
        cr_assert_eq(kactor_wait(c, &from_actor, 1, 1, 0, &ready), 1);
        for (int i = 0; i < 10; i++)
                (void)put_ref(c, letters(100));
        sync_client(c);
        cr_assert_geq(manager_uint("ObjectsEvicted"), 12);

        /* size(<evicted actor result>), size(<evicted task result>): each is rebuilt, then passed. */
        args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_ref(from_actor)), 0);
        cr_assert_eq(kactor_submit(c, module, "size", args, NULL, &sizes[0]), 0);
        kactor_value_free(args);
        args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_ref(from_task)), 0);
        cr_assert_eq(kactor_submit(c, module, "size", args, NULL, &sizes[1]), 0);
        kactor_value_free(args);
        cr_assert_eq(get_int(c, sizes[0]), (int64_t)strlen("the total is now 7"));
        cr_assert_eq(get_int(c, sizes[1]), 500);
        harness_assert_running(h);
}

/* Constructor arguments are resolved when the actor is created: an evicted one must be had again. */
Test(eviction, an_evicted_put_as_a_constructor_argument) {
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_ref ref = put_ref(c, harness_value(harness_printf(h, "\"%s\"", file)));
        kactor_value *args;
        kactor_actor a = {};
        int r;

        for (int i = 0; i < 10; i++)
                (void)put_ref(c, letters(100));
        sync_client(c);
        cr_assert(file_exists(spill_file(ref)), "the put was not spilled");

        args = kactor_value_new_list();
        cr_assert_eq(kactor_value_list_append(args, kactor_value_new_ref(ref)), 0);
        r = kactor_create_actor(c, harness_module(h, "evictmod"), "Ledger", args, NULL, &a);
        kactor_value_free(args);
        harness_assert_running(h);
        cr_assert_eq(r, 0, "creating a Ledger with a spilled path: %s: %s", strerror(-r),
                     kactor_client_error_message(c));
        kactor_value *v = harness_call(c, a, "add", "[3]");
        harness_assert_value(v, total_is(3));
        kactor_value_free(v);
        cr_assert_eq(ledger_lines(file, harness_actor_pid(h, a), 0, (int64_t[1]){}, 1, NULL), 1,
                     "the actor did not get its path");
}

/* An evicted object is still ready: its value can be had. Wait says so at once, and does not
 * rebuild it (only a Get needs the value). */
Test(eviction, wait_counts_an_evicted_result_as_ready) {
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        kactor_ref ref = call_ref(c, a, "add", "[5]");
        uint64_t rebuilt;
        bool ready = false;
        int r;

        assert_get(c, ref, total_is(5));
        (void)put_ref(c, letters(200));
        sync_client(c);
        rebuilt = manager_uint("ObjectsRebuilt");

        r = kactor_wait(c, &ref, 1, 1, 1000 /* 1 ms: far less than starting a worker */, &ready);
        cr_assert_eq(r, 1, "kactor_wait: %d (%s), ready %d", r, r < 0 ? strerror(-r) : "", ready);
        cr_assert(ready);
        sync_client(c);
        cr_assert_eq(manager_uint("ObjectsRebuilt"), rebuilt, "a Wait rebuilt the evicted result");
        assert_get(c, ref, total_is(5));
        harness_assert_running(h);
}

/* The temporary worker dies during the replay: the Get fails saying so, the live actor goes on, and
 * the node manager is fine (the shadow and its worker go cleanly). */
Test(eviction, a_rebuild_whose_replay_crashes_fails_the_get_only) {
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir),
                   *crash = harness_printf(h, "%s/crash", h->dir);
        kactor_actor a = harness_create(h, c, harness_module(h, "evictmod"), "Ledger",
                                        harness_printf(h, "[\"%s\", \"%s\"]", file, crash), NULL);
        pid_t live = harness_actor_pid(h, a);
        kactor_ref refs[5];
        kactor_value **values, *v;
        FILE *f;

        for (int i = 0; i < 5; i++)
                refs[i] = call_ref(c, a, "add", harness_printf(h, "[%d]", i + 1));
        values = get_all(c, refs, 5);
        kactor_values_free(values, 5);
        (void)put_ref(c, letters(200));
        sync_client(c);

        /* add(2) crashes the next time it runs: in the replay that rebuilds the result of add(3). */
        f = fopen(crash, "we");
        cr_assert_not_null(f);
        fputs("2", f);
        fclose(f);
        v = harness_get(c, refs[2]);
        cr_log_info("a rebuild whose replay crashed: %s", harness_value_str(h, v));
        cr_assert(kactor_value_is_error(v), "the result came back as %s", harness_value_str(h, v));
        cr_assert(strstr(kactor_value_error_message(v), "rebuil"),
                  "the error does not say the rebuild failed: %s", kactor_value_error_message(v));
        kactor_value_free(v);
        cr_assert_not(file_exists(crash), "the replay did not run add(2)");
        harness_assert_running(h);

        /* The live actor did not notice. */
        cr_assert_eq(harness_actor_pid(h, a), live);
        v = harness_call(c, a, "add", "[6]");
        harness_assert_value(v, total_is(21));
        kactor_value_free(v);
        /* Another result is rebuilt fine. */
        assert_get(c, refs[3], total_is(10));
        harness_assert_running(h);
}

/* --- what cannot be had again ---------------------------------------------------------------- */

Test(eviction_checkpoints, a_result_from_before_the_checkpoint_fails_saying_why) {
        enum { N = 25 };
        /* Where the checkpoints fall is the relayed path's (a direct call may run before the checkpoint
         * its predecessor triggered). */
        cr_assert_eq(setenv("KACTOR_DIRECT_CALLS", "0", 1), 0);
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        const char *path = harness_actor_path(h, a);
        pid_t live = harness_actor_pid(h, a), other = 0;
        kactor_ref refs[N];
        int64_t xs[N + 1];
        kactor_value *v;
        uint64_t rebuilt;

        /* One at a time: a checkpoint after calls 10 and 20, each back before the next result. */
        for (int i = 0; i < N; i++) {
                refs[i] = call_ref(c, a, "add", harness_printf(h, "[%d]", i + 1));
                assert_get(c, refs[i], total_is((i + 1) * (i + 2) / 2));
        }
        cr_assert_eq(harness_property_uint(h, path, ACTOR, "CheckpointIndex"), 20);
        (void)put_ref(c, letters(200)); /* pushes every result out */
        sync_client(c);
        rebuilt = manager_uint("ObjectsRebuilt");

        v = harness_get(c, refs[2]);
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_OBJECT, "was evicted and cannot be rebuilt");
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_OBJECT, "checkpoint");
        cr_log_info("an evicted result from before the checkpoint: %s", kactor_value_error_message(v));
        kactor_value_free(v);
        /* It stays failed: asked again, the same answer, and no replay. */
        v = harness_get(c, refs[2]);
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_OBJECT, "checkpoint");
        kactor_value_free(v);
        cr_assert_eq(ledger_lines(file, 0, live, xs, N + 1, NULL), 0, "something replayed calls");

        /* After the checkpoint: the temporary worker restores it, then runs calls 21..23 only. */
        assert_get(c, refs[22], total_is(23 * 24 / 2));
        cr_assert_eq(ledger_lines(file, 0, live, xs, N + 1, &other), 3, "the temporary worker ran %zu calls",
                     ledger_lines(file, 0, live, xs, N + 1, NULL));
        for (int i = 0; i < 3; i++)
                cr_assert_eq(xs[i], 21 + i, "the replay's call %d was add(%" PRId64 ")", i + 1, xs[i]);
        cr_assert_geq(manager_uint("ObjectsRebuilt"), rebuilt + 1);

        /* The live actor is untouched. */
        cr_assert_eq(harness_actor_pid(h, a), live);
        cr_assert_eq(ledger_lines(file, live, 0, xs, N + 1, NULL), N);
        v = harness_call(c, a, "add", "[26]");
        harness_assert_value(v, total_is(26 * 27 / 2));
        kactor_value_free(v);
        harness_assert_running(h);
}

Test(eviction, a_result_of_a_killed_actor_fails_saying_why) {
        enum { N = 40 };
        kactor_client *c = harness_client(h);
        const char *file = harness_printf(h, "%s/ledger", h->dir);
        kactor_actor a = create_ledger(c, file);
        kactor_ref refs[N];
        kactor_value **values, *v;

        for (int i = 0; i < N; i++)
                refs[i] = call_ref(c, a, "add", "[1]");
        values = get_all(c, refs, N);
        kactor_values_free(values, N);
        cr_assert_eq(kactor_kill(c, a, true), 0);
        cr_assert(harness_wait_actor_state(h, harness_actor_path(h, a), "dead", HARNESS_TIMEOUT_MS));
        (void)put_ref(c, letters(200));
        sync_client(c);

        /* A dead actor is not rebuilt: its lineage went with it. */
        v = harness_get(c, refs[1]);
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_OBJECT, "was evicted and cannot be rebuilt");
        harness_assert_error(v, KACTOR_ERROR_NO_SUCH_OBJECT, "dead");
        kactor_value_free(v);
        harness_assert_running(h);
}
