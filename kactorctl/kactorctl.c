/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactorctl: the node manager's D-Bus API for people. Every command is one or two method calls on
 * io.kactor.NodeManager1; nothing here talks to the native socket.
 *
 * Commands return 0 on success, a negative errno after printing why they failed (exit status 1), or
 * a positive exit status of their own: EXIT_FAILURE after saying why (an actor that died while
 * create waited), EXIT_USAGE for bad usage, EXIT_INTERRUPTED when SIGINT or SIGTERM ended a wait.
 */

#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-value.h"
#include "codec.h"
#include "kactorctl.h"
#include "kactorctl-output.h"
#include "kactorctl-properties.h"
#include "kactorctl-trace.h"
#include "kactorctl-util.h"
#include "kactorctl-value.h"
#include "macro.h"
#include "parse-util.h"
#include "strv.h"

#define BUS_PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* How much longer than the node manager's own timeout a Get waits for its reply on the bus. */
#define GET_REPLY_SLACK_USEC (5 * UINT64_C(1000000))
/* How long create waits for the constructor without --timeout: systemd's DefaultTimeoutStartSec. */
#define CREATE_TIMEOUT_DEFAULT_USEC (90 * UINT64_C(1000000))

static const char *arg_bus_address = NULL;
static bool arg_system = false;
static bool arg_help = false;
static bool arg_version = false;
JsonFormat arg_json = JSON_OFF;
bool arg_legend = true;
bool arg_quiet = false;
bool arg_pager = true;
uint64_t arg_timeout_usec = 0;
bool arg_timeout_set = false;

/* The rest of s after prefix, or NULL when s doesn't start with it. */
static const char *startswith_prefix(const char *s, const char *prefix) {
        size_t n = strlen(prefix);
        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* --- parsing values ------------------------------------------------------------------------------------ */

/*
 * Command-line arguments become kactor values:
 *
 *   123, -7                  -> int64 (out of range is an error, not a double)
 *   1.5, -2e3, 1E-9          -> double
 *   true, false, null        -> bool, bool, nil
 *   [ ... ], { ... }, "..."  -> JSON: lists, maps (string keys) and strings, nested as deep as the codec
 *                               allows; inside, the scalars above in JSON spelling
 *   @/io/kactor/NodeManager1/actor/<id>, actor:<id>  -> an actor handle
 *   @/io/kactor/NodeManager1/object/<id>, object:<id> -> an object reference
 *   actor:<name>             -> an actor handle, the name looked up with GetActor
 *   s:TEXT                   -> the string TEXT, whatever it looks like
 *   anything else            -> a string
 */

/* Finds a named actor: 0 and its path, or a negative errno after saying why. */
static int bus_get_actor(sd_bus *bus, const char *name, char **ret_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        char *p;
        int r;

        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE, "GetActor",
                               &error, &reply, "s", name);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to look up the actor");
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the reply of GetActor");
        p = strdup(path);
        if (!p)
                return ctl_oom();
        *ret_path = p;
        return 0;
}

/* One command-line argument as a value (the syntax above). Returns 0, EXIT_USAGE when it doesn't
 * parse, or a negative errno when looking a name up failed; says why in both cases. */
static int parse_value_argument(sd_bus *bus, const char *verb, const char *arg, kactor_value **ret) {
        ValueParseError e = {};
        kactor_value *v = NULL;
        const char *rest;
        kactor_type type;
        kactor_id id;
        int r;

        if ((rest = startswith_prefix(arg, "s:")))
                v = kactor_value_new_string(rest);
        else if ((rest = startswith_prefix(arg, "@"))) {
                if (bus_path_parse(rest, &type, &id) < 0)
                        return ctl_usage_error(verb, "'%s' is not an actor or object path (%s/ID or %s/ID).",
                                           rest, KACTOR_BUS_ACTOR_PREFIX, KACTOR_BUS_OBJECT_PREFIX);
                v = type == KACTOR_TYPE_ACTOR ? kactor_value_new_actor(id) : kactor_value_new_object(id);
        } else if ((rest = startswith_prefix(arg, "object:"))) {
                if (kactor_id_from_string(rest, &id) < 0)
                        return ctl_usage_error(verb, "'%s' is not an object id (32 hex digits).", rest);
                v = kactor_value_new_object(id);
        } else if ((rest = startswith_prefix(arg, "actor:"))) {
                if (kactor_id_from_string(rest, &id) < 0) {
                        _cleanup_free_ char *path = NULL;

                        r = bus_get_actor(bus, rest, &path);
                        if (r < 0)
                                return r;
                        if (bus_path_parse(path, &type, &id) < 0 || type != KACTOR_TYPE_ACTOR)
                                return ctl_error_errno(-EBADMSG, "GetActor returned %s, not an actor path",
                                                       path);
                }
                v = kactor_value_new_actor(id);
        } else if (arg[0] != 0 && strchr("[{\"", arg[0])) {
                r = value_parse_json(arg, &v, &e);
                if (r == -EINVAL || r == -ERANGE)
                        return ctl_usage_error(verb, "Cannot parse argument '%s': %s at offset %zu.", arg,
                                           e.message, e.offset);
                if (r < 0)
                        return ctl_oom();
        } else if (streq(arg, "true") || streq(arg, "false"))
                v = kactor_value_new_bool(arg[0] == 't');
        else if (streq(arg, "null"))
                v = kactor_value_new_nil();
        else {
                r = value_parse_number(arg, &v, &e);
                if (r == -ERANGE)
                        return ctl_usage_error(verb, "Cannot parse argument '%s': %s.", arg, e.message);
                if (r == -EINVAL) /* not a number */
                        v = kactor_value_new_string(arg);
                else if (r < 0)
                        return ctl_oom();
        }

        if (!v)
                return ctl_oom();
        *ret = v;
        return 0;
}

/* Appends the arguments as "av". Returns as parse_value_argument() does. */
static int bus_append_arguments(sd_bus *bus, sd_bus_message *m, const char *verb, char **args, size_t n) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "v");
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        for (size_t i = 0; i < n; i++) {
                _cleanup_(kactor_value_freep) kactor_value *v = NULL;

                r = parse_value_argument(bus, verb, args[i], &v);
                if (r != 0)
                        return r;
                r = bus_message_append_value(m, v);
                if (r < 0)
                        return ctl_error_errno(r, "Cannot send argument '%s'", args[i]);
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        return 0;
}

/* --- the bus ------------------------------------------------------------------------------------------- */

static int bus_connect(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *address = arg_bus_address;
        int r;

        if (!address && !arg_system) {
                address = getenv("KACTOR_BUS_ADDRESS");
                if (address && !*address)
                        address = NULL;
        }

        if (address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return ctl_error_errno(r, "Failed to connect to the bus %s", address ?: "(system bus)");

        *ret = TAKE_PTR(bus);
        return 0;
}

int kactorctl_bus_connect(sd_bus **ret) { /* for kactorctl-trace.c */
        return bus_connect(ret);
}

typedef struct CallWait {
        sd_bus_message *reply;
        bool interrupted;
} CallWait;

static int on_call_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        CallWait *w = userdata;

        w->reply = sd_bus_message_ref(m);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        CallWait *w = userdata;

        w->interrupted = true;
        return 0;
}

/* sd_bus_call(), but SIGINT and SIGTERM end the wait: then -EINTR, and no reply. usec is the bus
 * timeout; UINT64_MAX waits as long as it takes. */
static int bus_call_interruptible(sd_bus *bus, sd_bus_message *m, uint64_t usec, sd_bus_error *ret_error,
                                  sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CallWait w = {};
        sd_bus_slot *slot = NULL;
        sd_event *event = NULL;
        sigset_t mask, saved;
        int r;

        /* sd-event takes signals through a signalfd: they must be blocked while it watches. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, &saved) < 0)
                return -errno;

        r = sd_event_new(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_signal, &w);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, &w);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0) {
                r = sd_bus_call_async(bus, &slot, m, on_call_reply, &w, usec);
                /* Run the loop by hand: ending it with sd_event_exit() would close the bus, which
                 * the Release after a Get still needs. */
                while (r >= 0 && !w.reply && !w.interrupted)
                        r = sd_event_run(event, UINT64_MAX);
                (void) sd_bus_detach_event(bus);
        }
        /* Drop the pending call and the signalfd before the signals are unblocked. */
        slot = sd_bus_slot_unref(slot);
        event = sd_event_unref(event);
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);

        reply = TAKE_PTR(w.reply);
        if (r < 0)
                return r;
        if (!reply)
                return -EINTR;
        if (sd_bus_message_is_method_error(reply, NULL)) {
                r = sd_bus_error_copy(ret_error, sd_bus_message_get_error(reply));
                return r < 0 ? r : -EIO;
        }
        *ret_reply = TAKE_PTR(reply);
        return 0;
}


/* --- output -------------------------------------------------------------------------------------------- */

static int print_json(const kactor_value *v) {
        _cleanup_free_ char *s = kactor_value_to_json(v);

        if (!s)
                return ctl_oom();
        json_format_write(stdout, s, arg_json);
        return 0;
}

/* A result: a plain int or string bare unless --json, everything else as JSON. */
static int print_value(const kactor_value *v) {
        if (arg_json == JSON_OFF)
                switch (kactor_value_type(v)) {
                case KACTOR_TYPE_INT:
                        printf("%" PRIi64 "\n", kactor_value_get_int(v));
                        return 0;
                case KACTOR_TYPE_STRING: {
                        size_t len;
                        const char *s = kactor_value_get_string(v, &len);
                        fwrite(s, 1, len, stdout);
                        putchar('\n');
                        return 0;
                }
                default:
                        break;
                }
        return print_json(v);
}

/* The id at the end of an actor's or object's path ("?" when it has none). */
static const char *path_id(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash && slash[1] ? slash + 1 : "?";
}

/* Prints a path, or with --json {"<kind>": path, "id": id}. */
static int print_path(const char *kind, const char *path) {
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        char id[KACTOR_ID_STRING_MAX] = "";
        kactor_type type;
        kactor_id parsed;

        if (arg_json == JSON_OFF) {
                puts(path);
                return 0;
        }
        if (bus_path_parse(path, &type, &parsed) >= 0)
                kactor_id_to_string(parsed, id);
        v = kactor_value_new_map();
        if (!v || kactor_value_map_set(v, kind, kactor_value_new_string(path)) < 0 ||
            kactor_value_map_set(v, "id", kactor_value_new_string(id)) < 0)
                return ctl_oom();
        return print_json(v);
}

/* A table whose first row is its header (left out with --no-legend); cells are copied, control
 * characters in them shown as '?'. */
typedef struct Table {
        char **cells;
        size_t n_columns;
        size_t n_cells;
        size_t allocated;
} Table;

static void table_done(Table *t) {
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        t->cells = mfree(t->cells);
        t->n_cells = t->allocated = 0;
}

static int table_add_cell(Table *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int table_add_cell(Table *t, const char *format, ...) {
        char *s;
        va_list ap;
        int r;

        if (t->n_cells == t->allocated) {
                size_t allocated = MAX(t->allocated * 2, (size_t) 64);
                char **p = reallocarray(t->cells, allocated, sizeof(char *));
                if (!p)
                        return -ENOMEM;
                t->cells = p;
                t->allocated = allocated;
        }
        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        for (char *p = s; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        t->cells[t->n_cells++] = s;
        return 0;
}

static int table_add_header(Table *t, const char *const *header) {
        for (size_t i = 0; i < t->n_columns; i++)
                if (table_add_cell(t, "%s", header[i]) < 0)
                        return -ENOMEM;
        return 0;
}

static void table_print(const Table *t) {
        _cleanup_free_ size_t *width = calloc(t->n_columns, sizeof(size_t));
        size_t first = arg_legend ? 0 : t->n_columns;

        if (!width)
                return;
        for (size_t i = first; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i]));
        for (size_t row = first; row < t->n_cells; row += t->n_columns) {
                size_t end = t->n_columns;

                /* No padding after the last cell that has something in it. */
                while (end > 1 && !*t->cells[row + end - 1])
                        end--;
                for (size_t col = 0; col < end; col++)
                        if (col + 1 < end)
                                printf("%-*s  ", (int) width[col], t->cells[row + col]);
                        else
                                puts(t->cells[row + col]);
        }
}

/* Informational output: what -q leaves out. */
static void print_info(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void print_info(const char *format, ...) {
        va_list ap;

        if (arg_quiet)
                return;
        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
}

/* --- commands ------------------------------------------------------------------------------------------ */

static void status_help(void) {
        printf("kactorctl status [OPTIONS...]\n\n"
               "Show the node: its id, version, GPUs and CPUs (all and free), and how many\n"
               "actors and objects it holds. --json prints the same as one document.\n");
}

static int status_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(manager_info_done) ManagerInfo info = {};
        _cleanup_free_ char **args = NULL;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, NULL, NULL, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 0)
                return ctl_usage_error(verb->name, "Unexpected argument '%s'.", args[0]);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, BUS_PROPERTIES_INTERFACE, "GetAll",
                               &error, &reply, "s", KACTOR_BUS_INTERFACE);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to read the node's properties");
        r = bus_read_properties(reply, manager_properties, &info);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the node's properties");

        (void) pager_open(arg_pager);
        if (arg_json != JSON_OFF) {
                _cleanup_(kactor_value_freep) kactor_value *v = kactor_value_new_map();
                if (!v || properties_to_value(manager_properties, &info, v) < 0)
                        return ctl_oom();
                return print_json(v);
        }

        _cleanup_free_ char *all = uint_array_to_string(&info.gpus, ", ");
        _cleanup_free_ char *free_ids = uint_array_to_string(&info.free_gpus, ", ");
        if (!all || !free_ids)
                return ctl_oom();
        printf("   Node: %s\n", info.node_id ?: "?");
        printf("Version: %s\n", info.version ?: "?");
        if (info.gpus.n == 0)
                printf("   GPUs: none\n");
        else
                printf("   GPUs: %zu of %zu free (all: %s; free: %s)\n", info.free_gpus.n, info.gpus.n, all,
                       info.free_gpus.n > 0 ? free_ids : "none");
        printf("   CPUs: %g of %g free\n", info.free_cpus, info.num_cpus);
        printf(" Actors: %" PRIu32 "\n", info.actors);
        printf("Objects: %" PRIu64 "\n", info.objects);
        trace_print_status(bus);
        return 0;
}

static const Verb verb_status = {
        .name = "status",
        .help = status_help,
        .run = status_run,
};

/* `-a --all`, for list and __complete. */
enum {
        ARG_ALL = 'a',
};

static const struct option list_options[] = {
        { "all", no_argument, NULL, ARG_ALL },
        {}
};

static void list_help(void) {
        printf("kactorctl list [OPTIONS...]\n\n"
               "List the node's live actors (--all: dead ones too, with why they died): id,\n"
               "name, owner, class, state, worker PID, GPUs and calls (submitted/completed).\n\n"
               "  -a --all           Show dead actors too (until the node manager forgets them)\n");
}

static int list_parse_option(int c, const char *arg, void *userdata) {
        bool *all = userdata;

        if (c != ARG_ALL)
                return -EINVAL;
        *all = true;
        return 0;
}

static int list_run(const Verb *verb, int argc, char *argv[]) {
        static const char *const header[] = {
                "ID", "NAME", "OWNER", "CLASS", "STATE", "PID", "GPUS", "CALLS", "DEATH CAUSE",
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(actor_list_done) ActorList actors = {};
        _cleanup_free_ char **args = NULL;
        size_t n_args, n_shown = 0, n_dead = 0;
        bool all = false;
        int r;

        r = verb_parse_argv(verb, argc, argv, list_parse_option, &all, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 0)
                return ctl_usage_error(verb->name, "Unexpected argument '%s'.", args[0]);

        /* The death cause only where dead actors can be. */
        _cleanup_(table_done) Table t = { .n_columns = ELEMENTSOF(header) - (all ? 0 : 1) };

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_list_actors(bus, &actors);
        if (r < 0)
                return r;
        for (size_t i = 0; i < actors.n; i++)
                if (actor_info_is_dead(&actors.items[i]))
                        n_dead++;

        (void) pager_open(arg_pager);
        if (arg_json != JSON_OFF) {
                _cleanup_(kactor_value_freep) kactor_value *list = kactor_value_new_list();
                if (!list)
                        return ctl_oom();
                for (size_t i = 0; i < actors.n; i++) {
                        const ActorInfo *a = &actors.items[i];
                        kactor_value *v;

                        if (!all && actor_info_is_dead(a))
                                continue;
                        v = kactor_value_new_map();
                        if (kactor_value_list_append(list, v) < 0 ||
                            kactor_value_map_set(v, "path", kactor_value_new_string(a->path)) < 0 ||
                            properties_to_value(actor_properties, a, v) < 0)
                                return ctl_oom();
                }
                return print_json(list);
        }

        if (table_add_header(&t, header) < 0)
                return ctl_oom();
        for (size_t i = 0; i < actors.n; i++) {
                const ActorInfo *a = &actors.items[i];
                _cleanup_free_ char *gpus = uint_array_to_string(&a->gpu_ids, ",");
                bool dead = actor_info_is_dead(a);

                if (dead && !all)
                        continue;
                if (!gpus)
                        return ctl_oom();
                r = table_add_cell(&t, "%s", a->id ?: "?");
                if (r >= 0)
                        r = table_add_cell(&t, "%s", a->name && *a->name ? a->name : "-");
                if (r >= 0) {
                        struct passwd *pw = getpwuid((uid_t) a->owner);
                        r = pw ? table_add_cell(&t, "%s", pw->pw_name) : table_add_cell(&t, "%" PRIu32, a->owner);
                }
                if (r >= 0)
                        r = table_add_cell(&t, "%s", a->class_name ?: "?");
                if (r >= 0)
                        r = table_add_cell(&t, "%s", a->state ?: "?");
                if (r >= 0)
                        r = a->pid > 0 ? table_add_cell(&t, "%" PRIu32, a->pid) : table_add_cell(&t, "-");
                if (r >= 0)
                        r = table_add_cell(&t, "%s", *gpus ? gpus : "-");
                if (r >= 0)
                        r = table_add_cell(&t, "%" PRIu64 "/%" PRIu64, a->calls_submitted,
                                           a->calls_completed);
                if (r >= 0 && all)
                        r = table_add_cell(&t, "%s", dead && a->death_cause ? a->death_cause : "");
                if (r < 0)
                        return ctl_oom();
                n_shown++;
        }

        if (n_shown > 0)
                table_print(&t);
        if (!arg_legend || arg_quiet)
                return 0;
        if (n_shown == 0)
                printf("No actors.");
        else
                printf("\n%zu actor%s listed.", n_shown, n_shown == 1 ? "" : "s");
        if (!all && n_dead > 0)
                printf(" %zu dead one%s not shown (--all shows them).", n_dead, n_dead == 1 ? "" : "s");
        putchar('\n');
        return 0;
}

static const Verb verb_list = {
        .name = "list",
        .options = list_options,
        .short_options = "a",
        .help = list_help,
        .run = list_run,
};

/* A module given as a relative path is relative to where kactorctl runs, not to the node manager:
 * make it absolute. A bare name (no '/') is for the node manager's module path. */
static int module_make_absolute(const char *module, char **ret) {
        _cleanup_free_ char *cwd = NULL;
        char *p;

        if (!strchr(module, '/') || module[0] == '/') {
                p = strdup(module);
                if (!p)
                        return -ENOMEM;
        } else {
                p = realpath(module, NULL);
                if (!p) {
                        cwd = getcwd(NULL, 0);
                        if (!cwd)
                                return -errno;
                        if (asprintf(&p, "%s/%s", cwd, module) < 0)
                                return -ENOMEM;
                }
        }
        *ret = p;
        return 0;
}

/* What `create` was asked for, besides MODULE, CLASS and the ARGs. */
/* As the node manager's limit (AllowUsers, AllowGroups). */
#define CREATE_ALLOW_MAX 64

typedef struct CreateOptions {
        const char *name;
        const char *node;
        uint32_t gpus;
        double cpus;
        uint64_t memory_max;
        int32_t max_restarts;
        bool set_gpus, set_cpus, set_memory_max, set_max_restarts;
        bool owned;
        bool no_block;
        /* --allow-user, --allow-group: names or numbers, as given (the node manager resolves them) */
        const char *allow_users[CREATE_ALLOW_MAX], *allow_groups[CREATE_ALLOW_MAX];
        size_t n_allow_users, n_allow_groups;
} CreateOptions;

enum {
        ARG_NAME = VERB_OPTION_FIRST,
        ARG_GPUS,
        ARG_CPUS,
        ARG_MEMORY_MAX,
        ARG_MAX_RESTARTS,
        ARG_OWNED,
        ARG_NODE,
        ARG_ALLOW_USER,
        ARG_ALLOW_GROUP,
        ARG_NO_BLOCK,
};

static const struct option create_options[] = {
        { "name", required_argument, NULL, ARG_NAME },
        { "gpus", required_argument, NULL, ARG_GPUS },
        { "cpus", required_argument, NULL, ARG_CPUS },
        { "memory-max", required_argument, NULL, ARG_MEMORY_MAX },
        { "max-restarts", required_argument, NULL, ARG_MAX_RESTARTS },
        { "owned", no_argument, NULL, ARG_OWNED },
        { "node", required_argument, NULL, ARG_NODE },
        { "allow-user", required_argument, NULL, ARG_ALLOW_USER },
        { "allow-group", required_argument, NULL, ARG_ALLOW_GROUP },
        { "no-block", no_argument, NULL, ARG_NO_BLOCK },
        {}
};

static void create_help(void) {
        printf("kactorctl create [OPTIONS...] MODULE CLASS [ARG...]\n\n"
               "Create an actor of CLASS from MODULE (a module name looked up in the\n"
               "node manager's module path, or a path to a .so; a relative path is made\n"
               "absolute here), wait until its constructor has run and print its object\n"
               "path. An actor that dies instead (no such class, a failed constructor)\n"
               "has its death cause printed, and the exit status is 1. ARGs are the\n"
               "constructor's arguments ('kactorctl help call' has their syntax).\n\n"
               "  -h --help              Show this help\n"
               "     --json=FORMAT       Print {\"actor\": PATH, \"id\": ID}\n"
               "     --no-block          Print the path as soon as the node manager has\n"
               "                         accepted the actor, without waiting for it\n"
               "     --timeout SEC       Wait at most SEC seconds for the actor to start\n"
               "                         (default: 90; 0: as long as it takes)\n"
               "     --name NAME         Name the actor (for 'call NAME ...', GetActor)\n"
               "     --gpus N            Reserve N GPUs\n"
               "     --cpus X            Reserve X CPUs (decimals allowed)\n"
               "     --memory-max BYTES  Memory limit; K, M, G, T are 1024-based\n"
               "     --max-restarts N    Restart a crashed actor up to N times\n"
               "                         (-1: without limit)\n"
               "     --node ID           In a cluster: the node to place it on ('kactorctl\n"
               "                         peers' lists them; without it: here if it fits,\n"
               "                         else on a peer with the resources)\n"
               "     --allow-user USER   Let USER (a name or a UID) call the actor and look\n"
               "                         it up by name (repeatable); killing it stays\n"
               "                         its owner's (the creating user) and root's\n"
               "     --allow-group GROUP Let the members of GROUP call it (repeatable)\n"
               "     --owned             Owned by this kactorctl's bus connection\n"
               "                         (Detached=false): the actor is stopped as\n"
               "                         soon as kactorctl exits, that is right after\n"
               "                         it prints the path. Without --owned the\n"
               "                         actor lives until it is killed.\n\n"
               "Options may stand anywhere; after '--' everything is an ARG. An ARG that\n"
               "starts with '-' and a digit (-1, -2.5) is a value, not an option.\n");
}

static int create_parse_option(int c, const char *arg, void *userdata) {
        CreateOptions *o = userdata;
        int r;

        switch (c) {
        case ARG_NAME:
                if (!*arg)
                        return ctl_usage_error("create", "The name must not be empty.");
                o->name = arg;
                break;
        case ARG_GPUS:
                if (parse_uint32(arg, &o->gpus) < 0)
                        return ctl_usage_error("create", "--gpus needs a count, not '%s'.", arg);
                o->set_gpus = true;
                break;
        case ARG_CPUS:
                if (parse_nonnegative_double(arg, &o->cpus) < 0)
                        return ctl_usage_error("create", "--cpus needs a non-negative number, not '%s'.", arg);
                o->set_cpus = true;
                break;
        case ARG_MEMORY_MAX:
                r = parse_bytes(arg, &o->memory_max);
                if (r == -ENOMEM)
                        return ctl_oom();
                if (r < 0)
                        return ctl_usage_error("create", "--memory-max needs bytes like 512M, not '%s'.", arg);
                o->set_memory_max = true;
                break;
        case ARG_MAX_RESTARTS:
                if (parse_int32(arg, &o->max_restarts) < 0 || o->max_restarts < -1)
                        return ctl_usage_error("create", "--max-restarts needs a count or -1, not '%s'.", arg);
                o->set_max_restarts = true;
                break;
        case ARG_OWNED:
                o->owned = true;
                break;
        case ARG_NO_BLOCK:
                o->no_block = true;
                break;
        case ARG_NODE:
                if (!*arg)
                        return ctl_usage_error("create", "The node id must not be empty.");
                o->node = arg;
                break;
        case ARG_ALLOW_USER:
        case ARG_ALLOW_GROUP: {
                bool user = c == ARG_ALLOW_USER;
                size_t *n = user ? &o->n_allow_users : &o->n_allow_groups;
                if (!*arg)
                        return ctl_usage_error("create", "--allow-%s needs a name or a number.",
                                               user ? "user" : "group");
                if (*n >= CREATE_ALLOW_MAX)
                        return ctl_usage_error("create", "At most %d --allow-%s options.", CREATE_ALLOW_MAX,
                                               user ? "user" : "group");
                (user ? o->allow_users : o->allow_groups)[(*n)++] = arg;
                break;
        }
        default:
                return -EINVAL;
        }
        return 0;
}

/* The options as CreateActor's "a{sv}". */
static int bus_append_create_options(sd_bus_message *m, const CreateOptions *o) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && o->name)
                r = sd_bus_message_append(m, "{sv}", "Name", "s", o->name);
        if (r >= 0 && o->set_gpus)
                r = sd_bus_message_append(m, "{sv}", "NumGpus", "u", o->gpus);
        if (r >= 0 && o->set_cpus)
                r = sd_bus_message_append(m, "{sv}", "NumCpus", "d", o->cpus);
        if (r >= 0 && o->set_memory_max)
                r = sd_bus_message_append(m, "{sv}", "MemoryMax", "t", o->memory_max);
        if (r >= 0 && o->set_max_restarts)
                r = sd_bus_message_append(m, "{sv}", "MaxRestarts", "i", o->max_restarts);
        if (r >= 0 && o->owned)
                r = sd_bus_message_append(m, "{sv}", "Detached", "b", 0);
        if (r >= 0 && o->node)
                r = sd_bus_message_append(m, "{sv}", "Node", "s", o->node);
        for (int which = 0; which < 2 && r >= 0; which++) {
                size_t n = which == 0 ? o->n_allow_users : o->n_allow_groups;
                const char *const *v = which == 0 ? o->allow_users : o->allow_groups;
                if (n == 0)
                        continue;
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", which == 0 ? "AllowUsers" : "AllowGroups");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "s");
                for (size_t i = 0; i < n && r >= 0; i++)
                        r = sd_bus_message_append(m, "s", v[i]);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* CreateActor(MODULE, CLASS, ARGs, options). Returns 0 and the message, EXIT_USAGE or a negative
 * errno; says why when it fails. */
static int create_build_request(sd_bus *bus, const char *module, const char *class, char **args, size_t n,
                                const CreateOptions *o, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, KACTOR_BUS_NAME, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE,
                                           "CreateActor");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", module, class);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        r = bus_append_arguments(bus, m, "create", args, n);
        if (r != 0)
                return r;
        r = bus_append_create_options(m, o);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        *ret = TAKE_PTR(m);
        return 0;
}

/* Waiting for a new actor to leave "pending" (and "restarting", a constructor tried again): the
 * State property announces its changes, so each PropertiesChanged on the actor's path is a reason to
 * read it again. */
typedef struct StartWait {
        sd_bus *bus;
        const char *path;
        char *state;
        char *death_cause;
        sd_bus_error error;
        int r; /* < 0: reading the state failed */
        bool timed_out;
        bool interrupted;
} StartWait;

static void start_wait_done(StartWait *w) {
        w->state = mfree(w->state);
        w->death_cause = mfree(w->death_cause);
        sd_bus_error_free(&w->error);
}

static bool start_wait_finished(const StartWait *w) {
        return w->r < 0 || w->timed_out || w->interrupted || streq_ptr(w->state, "alive") ||
               streq_ptr(w->state, "dead");
}

static void start_wait_read(StartWait *w) {
        char *state = NULL;
        int r;

        r = sd_bus_get_property_string(w->bus, KACTOR_BUS_NAME, w->path, KACTOR_BUS_ACTOR_INTERFACE, "State",
                                       &w->error, &state);
        if (r < 0) {
                w->r = r;
                return;
        }
        free(w->state);
        w->state = state;
        if (streq(state, "dead")) {
                /* Without a cause (a node manager that forgot it) the death is still reported. */
                w->death_cause = mfree(w->death_cause);
                (void) sd_bus_get_property_string(w->bus, KACTOR_BUS_NAME, w->path, KACTOR_BUS_ACTOR_INTERFACE,
                                                  "DeathCause", NULL, &w->death_cause);
        }
}

static int on_actor_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        StartWait *w = userdata;

        if (!start_wait_finished(w))
                start_wait_read(w);
        return 0;
}

static int on_start_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        StartWait *w = userdata;

        w->timed_out = true;
        return 0;
}

static int on_start_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        StartWait *w = userdata;

        w->interrupted = true;
        return 0;
}

/* Waits until the actor at path is alive or dead, for at most usec (0: no limit) or until SIGINT or
 * SIGTERM; w says how it ended. Returns 0, or a negative errno when the wait itself failed. */
static int start_wait(StartWait *w, uint64_t usec) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *match = NULL;
        sd_event *event = NULL;
        sigset_t mask, saved;
        int r;

        /* First the match, then the state: a change between the two is not lost. The sender is not
         * matched: the signal only says "read it again", and the reading asks the node manager. */
        r = sd_bus_match_signal(w->bus, &match, NULL, w->path, BUS_PROPERTIES_INTERFACE, "PropertiesChanged",
                                on_actor_properties_changed, w);
        if (r < 0)
                return r;
        start_wait_read(w);
        if (start_wait_finished(w))
                return 0;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, &saved) < 0)
                return -errno;
        r = sd_event_new(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_start_signal, w);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_start_signal, w);
        if (r >= 0 && usec > 0)
                r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, usec, 0, on_start_timeout, w);
        if (r >= 0)
                r = sd_bus_attach_event(w->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0) {
                /* By hand, as bus_call_interruptible(): sd_event_exit() would close the bus, and an
                 * --owned actor lives only as long as the connection. */
                while (r >= 0 && !start_wait_finished(w))
                        r = sd_event_run(event, UINT64_MAX);
                (void) sd_bus_detach_event(w->bus);
        }
        event = sd_event_unref(event);
        (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        return r < 0 ? r : 0;
}

static int create_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(start_wait_done) StartWait w = {}; /* SD_BUS_ERROR_NULL is all zeros */
        _cleanup_free_ char *module = NULL, *path = NULL;
        _cleanup_free_ char **args = NULL;
        CreateOptions o = {};
        uint64_t usec = arg_timeout_set ? arg_timeout_usec : CREATE_TIMEOUT_DEFAULT_USEC;
        const char *p;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, create_parse_option, &o, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args < 2)
                return ctl_usage_error(verb->name, "Expected a module and a class.");

        r = module_make_absolute(args[0], &module);
        if (r < 0)
                return ctl_error_errno(r, "Cannot make the module path '%s' absolute", args[0]);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = create_build_request(bus, module, args[1], args + 2, n_args - 2, &o, &m);
        if (r != 0)
                return r;

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to create the actor");
        r = sd_bus_message_read(reply, "o", &p);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the reply of CreateActor");
        path = strdup(p);
        if (!path)
                return ctl_oom();

        if (!o.no_block) {
                w.bus = bus;
                w.path = path;
                r = start_wait(&w, usec);
                if (r < 0)
                        return ctl_error_errno(r, "Failed to wait for actor %s to start", path_id(path));
                if (w.r < 0)
                        return ctl_bus_error(&w.error, w.r, "Failed to read the actor's state");
                if (w.interrupted) {
                        fprintf(stderr, "kactorctl: Stopped waiting; actor %s is %s.\n", path_id(path),
                                w.state ?: "starting");
                        return EXIT_INTERRUPTED;
                }
                if (w.timed_out) {
                        ctl_error_errno(0, "Actor %s is still %s after %g s; it may yet start ('kactorctl list' "
                                        "shows it).", path_id(path), w.state ?: "starting", (double) usec / 1e6);
                        return EXIT_FAILURE;
                }
                if (streq(w.state, "dead")) {
                        ctl_error_errno(0, "Actor %s died: %s", path_id(path),
                                        w.death_cause && *w.death_cause ? w.death_cause : "(no cause given)");
                        return EXIT_FAILURE;
                }
        }

        if (arg_quiet)
                return 0;
        return print_path("actor", path);
}

static const Verb verb_create = {
        .name = "create",
        .options = create_options,
        .help = create_help,
        .run = create_run,
};
/* ACTOR on the command line: an object path, "actor:" and an id or name, an id, or a name. Returns
 * 0 and the actor's path, EXIT_USAGE, or a negative errno; says why when it fails. */
static int resolve_actor(sd_bus *bus, const char *verb, const char *arg, char **ret_path) {
        const char *s = startswith_prefix(arg, "actor:") ?: arg;
        kactor_type type;
        kactor_id id;
        char *p;

        if (s[0] == '/') {
                if (bus_path_parse(s, &type, &id) < 0 || type != KACTOR_TYPE_ACTOR)
                        return ctl_usage_error(verb, "'%s' is not an actor path (%s/ID).", s,
                                           KACTOR_BUS_ACTOR_PREFIX);
                p = bus_actor_path(id);
        } else if (kactor_id_from_string(s, &id) >= 0)
                p = bus_actor_path(id);
        else if (*s)
                return bus_get_actor(bus, s, ret_path);
        else
                return ctl_usage_error(verb, "The actor must not be empty.");
        if (!p)
                return ctl_oom();
        *ret_path = p;
        return 0;
}

/* OBJECT on the command line: an object path, or "object:" and an id, or an id. */
static int resolve_object(const char *verb, const char *arg, char **ret_path) {
        const char *s = startswith_prefix(arg, "object:") ?: arg;
        kactor_type type;
        kactor_id id;
        char *p;

        if (s[0] == '/') {
                if (bus_path_parse(s, &type, &id) < 0 || type != KACTOR_TYPE_OBJECT)
                        return ctl_usage_error(verb, "'%s' is not an object path (%s/ID).", s,
                                           KACTOR_BUS_OBJECT_PREFIX);
        } else if (kactor_id_from_string(s, &id) < 0)
                return ctl_usage_error(verb, "'%s' is not an object id (32 hex digits) or path.", s);
        p = bus_object_path(id);
        if (!p)
                return ctl_oom();
        *ret_path = p;
        return 0;
}

static int bus_append_paths(sd_bus_message *m, char **paths, size_t n) {
        int r = sd_bus_message_open_container(m, 'a', "o");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(m, "o", paths[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* Release(paths): drops the pins that Call, Put and SubmitTask over D-Bus left on the objects. */
static int bus_release(sd_bus *bus, char **paths, size_t n) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, KACTOR_BUS_NAME, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE,
                                           "Release");
        if (r >= 0)
                r = bus_append_paths(m, paths, n);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to release the objects");
        return 0;
}

/* Get(paths) with --timeout, waiting as long as that says (forever by default) or until SIGINT or
 * SIGTERM; then releases the objects if asked to, and prints the values one a line. */
static int get_and_print(sd_bus *bus, char **paths, size_t n, bool release) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(kactor_value_freep) kactor_value *values = NULL;
        uint64_t usec = arg_timeout_usec > 0 ? arg_timeout_usec + GET_REPLY_SLACK_USEC : UINT64_MAX;
        int r, q = 0;

        r = sd_bus_message_new_method_call(bus, &m, KACTOR_BUS_NAME, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE,
                                           "Get");
        if (r >= 0)
                r = bus_append_paths(m, paths, n);
        if (r >= 0)
                r = sd_bus_message_append(m, "t", arg_timeout_usec > 0 ? arg_timeout_usec : UINT64_MAX); /* D-Bus: 0 would not wait */
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");

        r = bus_call_interruptible(bus, m, usec, &error, &reply);
        if (r >= 0) {
                values = kactor_value_new_list();
                if (!values)
                        return ctl_oom();
                r = sd_bus_message_enter_container(reply, 'a', "v");
                while (r >= 0 && (r = sd_bus_message_at_end(reply, false)) == 0) {
                        kactor_value *v = NULL;
                        r = bus_message_read_value(reply, NULL, NULL, &v);
                        if (r >= 0)
                                r = kactor_value_list_append(values, v);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        r = ctl_error_errno(r, "Failed to read the reply of Get");
        } else if (r != -EINTR)
                r = ctl_bus_error(&error, r, "Failed to get the values");

        /* Whatever happened to the Get, the pins go; the call itself runs on regardless. */
        if (release)
                q = bus_release(bus, paths, n);
        if (r == -EINTR)
                return EXIT_INTERRUPTED;
        if (r < 0)
                return r;

        for (size_t i = 0; i < kactor_value_list_size(values); i++) {
                r = print_value(kactor_value_list_get(values, i));
                if (r < 0)
                        return r;
        }
        return q;
}

static const char value_syntax_help[] =
        "Each ARG becomes a typed value:\n"
        "  123, -7                     int64\n"
        "  1.5, -2e3                   double\n"
        "  true, false, null           bool, nil\n"
        "  [1, \"a\"], {\"k\": 2}, \"str\"   JSON: list, map (string keys), string\n"
        "  actor:ID, actor:NAME        an actor handle (NAME is looked up)\n"
        "  object:ID                   an object reference\n"
        "  @/io/kactor/NodeManager1/actor/ID, @/io/kactor/NodeManager1/object/ID\n"
        "                              the same, as object paths\n"
        "  s:TEXT                      the string TEXT, whatever it looks like\n"
        "  anything else               a string\n\n"
        "Options may stand anywhere; after '--' everything is an ARG (-- --json is the\n"
        "string \"--json\"). An ARG that starts with '-' and a digit (-1, -2.5) is a\n"
        "value, not an option; write other strings that start with '-' as s:-TEXT or\n"
        "after '--'.\n";

enum {
        ARG_NO_WAIT = VERB_OPTION_FIRST,
        ARG_RELEASE,
        ARG_NO_RESTART,
};

static const struct option call_options[] = {
        { "no-wait", no_argument, NULL, ARG_NO_WAIT },
        {}
};

static void call_help(void) {
        printf("kactorctl call [OPTIONS...] ACTOR METHOD [ARG...]\n\n"
               "Call METHOD on ACTOR (an id, a path, or a name), wait for the result,\n"
               "print it and release the result object. A plain int or string prints\n"
               "bare, anything else (and everything with --json) as JSON.\n\n"
               "  -h --help          Show this help\n"
               "     --json=FORMAT  Print the result as JSON (short, pretty)\n"
               "     --no-wait      Print the result's object path instead of waiting;\n"
               "                    the object is kept until 'kactorctl get --release'\n"
               "     --timeout SEC  Stop waiting for the result after SEC seconds\n\n%s",
               value_syntax_help);
}

static int parse_flag_option(int c, const char *arg, void *userdata) {
        /* Verbs with one flag of their own. */
        *(bool *) userdata = true;
        return 0;
}

static int call_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *actor = NULL, *object = NULL;
        _cleanup_free_ char **args = NULL;
        const char *path;
        bool no_wait = false;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, parse_flag_option, &no_wait, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args < 2)
                return ctl_usage_error(verb->name, "Expected an actor and a method.");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = resolve_actor(bus, verb->name, args[0], &actor);
        if (r != 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, KACTOR_BUS_NAME, actor, KACTOR_BUS_ACTOR_INTERFACE,
                                           "Call");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", args[1]);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        r = bus_append_arguments(bus, m, verb->name, args + 2, n_args - 2);
        if (r != 0)
                return r;
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to call the actor");
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the reply of Call");

        if (no_wait)
                return print_path("object", path);
        object = strdup(path);
        if (!object)
                return ctl_oom();
        return get_and_print(bus, &object, 1, true);
}

static const Verb verb_call = {
        .name = "call",
        .options = call_options,
        .help = call_help,
        .run = call_run,
};

static const struct option get_options[] = {
        { "release", no_argument, NULL, ARG_RELEASE },
        {}
};

static void get_help(void) {
        printf("kactorctl get [OPTIONS...] OBJECT...\n\n"
               "Wait for the objects (ids or paths, as 'call --no-wait' prints them)\n"
               "and print their values, one a line, in the order given.\n\n"
               "  -h --help          Show this help\n"
               "     --json=FORMAT  Print every value as JSON (short: one a line)\n"
               "     --timeout SEC  Stop waiting after SEC seconds (default: wait forever)\n"
               "     --release      Release the objects afterwards (also when the get\n"
               "                    fails)\n");
}

static int get_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(strv_freep) char **paths = NULL;
        _cleanup_free_ char **args = NULL;
        bool release = false;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, parse_flag_option, &release, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args == 0)
                return ctl_usage_error(verb->name, "Expected at least one object.");

        paths = calloc(n_args + 1, sizeof(char *));
        if (!paths)
                return ctl_oom();
        for (size_t i = 0; i < n_args; i++) {
                r = resolve_object(verb->name, args[i], &paths[i]);
                if (r != 0)
                        return r;
        }

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        return get_and_print(bus, paths, n_args, release);
}

static const Verb verb_get = {
        .name = "get",
        .options = get_options,
        .help = get_help,
        .run = get_run,
};

static const struct option kill_options[] = {
        { "no-restart", no_argument, NULL, ARG_NO_RESTART },
        {}
};

static void kill_help(void) {
        printf("kactorctl kill [--no-restart] ACTOR\n\n"
               "Kill ACTOR's worker (ACTOR: an id, a path, or a name). An actor created\n"
               "with --max-restarts is restarted and replays its calls, unless\n"
               "--no-restart.\n");
}

static int kill_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *actor = NULL;
        _cleanup_free_ char **args = NULL;
        bool no_restart = false;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, parse_flag_option, &no_restart, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args != 1)
                return ctl_usage_error(verb->name, "Expected one actor.");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = resolve_actor(bus, verb->name, args[0], &actor);
        if (r != 0)
                return r;
        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, actor, KACTOR_BUS_ACTOR_INTERFACE, "Kill", &error, NULL,
                               "b", (int) no_restart);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to kill the actor");
        return 0;
}

static const Verb verb_kill = {
        .name = "kill",
        .options = kill_options,
        .help = kill_help,
        .run = kill_run,
};

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;
        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) >= 0 && streq(name, KACTOR_BUS_NAME) &&
            (!new_owner || !*new_owner))
                *(bool *) userdata = true;
        return 0;
}

static const struct option shutdown_options[] = {
        { "no-block", no_argument, NULL, ARG_NO_BLOCK },
        {}
};

static void shutdown_help(void) {
        printf("kactorctl shutdown [--no-block]\n\n"
               "Stop every actor and then the node manager, leaving nothing for a next one.\n"
               "(Stopping the service, SIGTERM, leaves the actors running for the next node\n"
               "manager to take over.) Waits until the node manager has left the bus, unless\n"
               "--no-block. Root only.\n");
}

static int shutdown_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char **args = NULL;
        bool no_block = false, gone = false;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, parse_flag_option, &no_block, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args != 0)
                return ctl_usage_error(verb->name, "Expected no arguments.");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        if (!no_block) {
                r = sd_bus_match_signal(bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, &gone);
                if (r < 0)
                        return ctl_error_errno(r, "Failed to watch the bus");
        }
        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE, "Shutdown", &error, NULL,
                               NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to shut the node manager down");
        while (!no_block && !gone) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return ctl_error_errno(r, "Failed to wait for the node manager to stop");
                if (r == 0 && (r = sd_bus_wait(bus, UINT64_MAX)) < 0)
                        return ctl_error_errno(r, "Failed to wait for the node manager to stop");
        }
        return 0;
}

static const Verb verb_shutdown = {
        .name = "shutdown",
        .options = shutdown_options,
        .help = shutdown_help,
        .run = shutdown_run,
};

static void peers_help(void) {
        printf("kactorctl peers [OPTIONS...]\n\n"
               "Show the cluster's members as this node sees them (this node first): node id,\n"
               "address, state (alive, suspect, dead), incarnation, CPUs, GPUs and memory.\n");
}

static int peers_run(const Verb *verb, int argc, char *argv[]) {
        static const char *const header[] = { "NODE", "ADDRESS", "STATE", "INCARNATION", "CPUS (FREE/ALL)",
                                              "GPUS (FREE/ALL)", "MEMORY (AVAILABLE/ALL)" };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(kactor_value_freep) kactor_value *list = kactor_value_new_list();
        _cleanup_(table_done) Table t = { .n_columns = ELEMENTSOF(header) };
        _cleanup_free_ char **args = NULL;
        size_t n = 0, n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, NULL, NULL, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 0)
                return ctl_usage_error(verb->name, "Unexpected argument '%s'.", args[0]);
        if (!list)
                return ctl_oom();

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = sd_bus_get_property(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE, "Peers", &error, &reply,
                                "a(sssudduutt)");
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to read the node's peers");
        r = sd_bus_message_enter_container(reply, 'a', "(sssudduutt)");
        if (r < 0)
                return ctl_error_errno(r, "Failed to parse the peers");
        if (table_add_header(&t, header) < 0)
                return ctl_oom();
        for (;; n++) {
                const char *id, *address, *state;
                uint32_t incarnation, gpus, gpus_free;
                double cpus, cpus_free;
                uint64_t memory, memory_free;

                r = sd_bus_message_read(reply, "(sssudduutt)", &id, &address, &state, &incarnation, &cpus, &cpus_free,
                                        &gpus, &gpus_free, &memory, &memory_free);
                if (r < 0)
                        return ctl_error_errno(r, "Failed to parse the peers");
                if (r == 0)
                        break;
                if (arg_json != JSON_OFF) {
                        kactor_value *v = kactor_value_new_map();
                        if (kactor_value_list_append(list, v) < 0 ||
                            kactor_value_map_set(v, "node", kactor_value_new_string(id)) < 0 ||
                            kactor_value_map_set(v, "address", kactor_value_new_string(address)) < 0 ||
                            kactor_value_map_set(v, "state", kactor_value_new_string(state)) < 0 ||
                            kactor_value_map_set(v, "incarnation", kactor_value_new_int(incarnation)) < 0 ||
                            kactor_value_map_set(v, "cpus", kactor_value_new_double(cpus)) < 0 ||
                            kactor_value_map_set(v, "free_cpus", kactor_value_new_double(cpus_free)) < 0 ||
                            kactor_value_map_set(v, "gpus", kactor_value_new_int(gpus)) < 0 ||
                            kactor_value_map_set(v, "free_gpus", kactor_value_new_int(gpus_free)) < 0 ||
                            kactor_value_map_set(v, "memory", kactor_value_new_int((int64_t) memory)) < 0 ||
                            kactor_value_map_set(v, "free_memory", kactor_value_new_int((int64_t) memory_free)) < 0)
                                return ctl_oom();
                        continue;
                }
                r = table_add_cell(&t, "%s%s", id, n == 0 ? " (this node)" : "");
                if (r >= 0)
                        r = table_add_cell(&t, "%s", *address ? address : "-");
                if (r >= 0)
                        r = table_add_cell(&t, "%s", state);
                if (r >= 0)
                        r = table_add_cell(&t, "%" PRIu32, incarnation);
                if (r >= 0)
                        r = table_add_cell(&t, "%g/%g", cpus_free, cpus);
                if (r >= 0)
                        r = table_add_cell(&t, "%" PRIu32 "/%" PRIu32, gpus_free, gpus);
                if (r >= 0)
                        r = table_add_cell(&t, "%.1f/%.1f GiB", memory_free / 1073741824.0, memory / 1073741824.0);
                if (r < 0)
                        return ctl_oom();
        }
        (void) pager_open(arg_pager);
        if (arg_json != JSON_OFF)
                return print_json(list);
        if (n == 0) {
                print_info("Not in a cluster (no --listen or --join).\n");
                return 0;
        }
        table_print(&t);
        return 0;
}

static const Verb verb_peers = {
        .name = "peers",
        .help = peers_help,
        .run = peers_run,
};

/* --- help, completion and the command line ------------------------------------------------------------- */

static void main_help(void) {
        printf("kactorctl [OPTIONS...] COMMAND ...\n\n"
               "Control a kactor node manager over D-Bus.\n\n"
               "Commands:\n"
               "  status                          Show the node: GPUs, CPUs, actors, objects\n"
               "  list [--all]                    List the live actors (--all: dead ones too)\n"
               "  create [OPTIONS] MODULE CLASS [ARG...]\n"
               "                                  Create an actor, wait until it runs, print its path\n"
               "  call [OPTIONS] ACTOR METHOD [ARG...]\n"
               "                                  Call a method and print its result\n"
               "  get [OPTIONS] OBJECT...         Wait for objects and print their values\n"
               "  kill [--no-restart] ACTOR       Kill an actor's worker\n"
               "  trace [--actor A] [--method M] [--interval S] [--prometheus]\n"
               "                                  Call phase and scheduler histograms, p50/p99\n"
               "  top [--interval S] [--all]      A live table of the actors, fit to the terminal\n"
               "  timeline -o FILE [--duration S] Record a Chrome trace / Perfetto timeline\n"
               "  peers                           Show the cluster's members, their state and resources\n"
               "  shutdown [--no-block]           Stop every actor, then the node manager\n"
               "  help [COMMAND]                  Show this help, or a command's\n\n"
               "Options (anywhere on the command line; '--' ends them):\n"
               "  -h --help          Show this help ('kactorctl help COMMAND' for a command's)\n"
               "     --version      Show the version\n"
               "     --bus ADDRESS  Talk to the node manager on this D-Bus address\n"
               "                    (default: $KACTOR_BUS_ADDRESS if set, else the system bus)\n"
               "     --system       Use the system bus, whatever $KACTOR_BUS_ADDRESS says\n"
               "     --json=FORMAT  Print data as JSON: pretty, short (one line) or off;\n"
               "                    plain --json is short\n"
               "     --no-pager     Do not pipe the output into a pager\n"
               "     --no-legend    Leave out tables' headers and footers\n"
               "  -q --quiet        Leave out informational output\n"
               "     --timeout SEC  Stop waiting for results after SEC seconds (default: forever;\n"
               "                    create: 90; Ctrl-C stops waiting too)\n\n"
               "Exit status: 0 on success, 1 when the node manager or the bus reported an error\n"
               "or the actor create waited for died, 2 for bad usage, 130 when interrupted while\n"
               "waiting.\n");
}

static const Verb verb_help;
static const Verb verb_complete;

static const Verb *const verbs[] = {
        &verb_status, &verb_list, &verb_create,   &verb_call,     &verb_get,      &verb_kill, &verb_trace,
        &verb_top,    &verb_timeline, &verb_peers, &verb_shutdown, &verb_help, &verb_complete,
};

static const Verb *verb_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i]->name, name))
                        return verbs[i];
        return NULL;
}

static void help_help(void) {
        printf("kactorctl help [COMMAND]\n\n"
               "Show kactorctl's help, or COMMAND's (as 'kactorctl COMMAND --help').\n");
}

static int help_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_free_ char **args = NULL;
        const Verb *v = NULL;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, NULL, NULL, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args > 1)
                return ctl_usage_error(verb->name, "Expected at most one command.");
        if (n_args == 1) {
                v = verb_find(args[0]);
                if (!v || v->hidden)
                        return ctl_usage_error(verb->name, "Unknown command '%s'.", args[0]);
        }
        (void) pager_open(arg_pager);
        if (v)
                v->help();
        else
                main_help();
        return 0;
}

static const Verb verb_help = {
        .name = "help",
        .help = help_help,
        .run = help_run,
};

enum {
        ARG_VERSION = VERB_OPTION_MAX + 1,
        ARG_BUS,
        ARG_SYSTEM,
        ARG_JSON,
        ARG_TIMEOUT,
        ARG_NO_PAGER,
        ARG_NO_LEGEND,
};

static const struct option global_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "bus", required_argument, NULL, ARG_BUS },
        { "system", no_argument, NULL, ARG_SYSTEM },
        { "json", optional_argument, NULL, ARG_JSON },
        { "timeout", required_argument, NULL, ARG_TIMEOUT },
        { "no-pager", no_argument, NULL, ARG_NO_PAGER },
        { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
        { "quiet", no_argument, NULL, 'q' },
        {}
};
#define GLOBAL_SHORT_OPTIONS "hq"

static void complete_help(void) {
        printf("kactorctl __complete verbs|options VERB|actors [--all]\n\n"
               "For shell completion: the commands, a command's options (those that take a\n"
               "value end in '='), or the live actors' names and ids (--all: dead ones too),\n"
               "one a line.\n");
}

static void complete_print_options(const struct option *options, const char *short_options) {
        for (const struct option *o = options; o && o->name; o++)
                printf("--%s%s\n", o->name, o->has_arg == required_argument ? "=" : "");
        for (const char *s = short_options; s && *s; s++)
                if (*s != ':')
                        printf("-%c%s\n", *s, s[1] == ':' ? "=" : "");
}

static int complete_run(const Verb *verb, int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(actor_list_done) ActorList actors = {};
        _cleanup_free_ char **args = NULL;
        const Verb *v;
        bool all = false;
        size_t n_args;
        int r;

        r = verb_parse_argv(verb, argc, argv, list_parse_option, &all, &args, &n_args);
        if (r != 1)
                return r;
        if (n_args == 1 && streq(args[0], "verbs")) {
                for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                        if (!verbs[i]->hidden)
                                puts(verbs[i]->name);
                return 0;
        }
        if (n_args == 2 && streq(args[0], "options")) {
                v = verb_find(args[1]);
                if (v && !v->hidden)
                        complete_print_options(v->options, v->short_options);
                complete_print_options(global_options, GLOBAL_SHORT_OPTIONS);
                return 0;
        }
        if (n_args == 1 && streq(args[0], "actors")) {
                r = bus_connect(&bus);
                if (r < 0)
                        return r;
                r = bus_list_actors(bus, &actors);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < actors.n; i++) {
                        const ActorInfo *a = &actors.items[i];
                        if (!all && actor_info_is_dead(a))
                                continue;
                        if (a->name && *a->name)
                                puts(a->name);
                        if (a->id)
                                puts(a->id);
                }
                return 0;
        }
        return ctl_usage_error(verb->name, "Expected verbs, options VERB or actors.");
}

static const Verb verb_complete = {
        .name = "__complete",
        .options = list_options,
        .short_options = "a",
        .help = complete_help,
        .run = complete_run,
        .hidden = true,
};

/* A global option. Returns 0, or EXIT_USAGE after saying why. */
static int parse_global_option(const char *verb, int c, const char *arg) {
        switch (c) {
        case 'h':
                arg_help = true;
                break;
        case ARG_VERSION:
                arg_version = true;
                break;
        case ARG_BUS:
                if (!*arg)
                        return ctl_usage_error(verb, "--bus needs an address.");
                arg_bus_address = arg;
                arg_system = false;
                break;
        case ARG_SYSTEM:
                arg_system = true;
                arg_bus_address = NULL;
                break;
        case ARG_JSON:
                /* Plain --json, from before it took a format, stays what it printed then: one line. */
                if (!arg)
                        arg_json = JSON_SHORT;
                else if (json_format_from_string(arg, &arg_json) < 0)
                        return ctl_usage_error(verb, "--json takes pretty, short or off, not '%s'.", arg);
                break;
        case ARG_TIMEOUT:
                if (parse_timeout(arg, &arg_timeout_usec) < 0)
                        return ctl_usage_error(verb, "--timeout needs seconds, not '%s'.", arg);
                arg_timeout_set = true;
                break;
        case ARG_NO_PAGER:
                arg_pager = false;
                break;
        case ARG_NO_LEGEND:
                arg_legend = false;
                break;
        case 'q':
                arg_quiet = true;
                break;
        }
        return 0;
}

static bool option_is_global(int c) {
        return c == 'h' || c == 'q' || c > VERB_OPTION_MAX;
}

/* Whether a command-line argument is a value that looks like an option: a negative number. */
static bool arg_is_negative_number(const char *a) {
        return a[0] == '-' && isdigit((unsigned char) a[1]);
}

/* What getopt_long() said was wrong with the option in arg ('?' or ':'). Returns EXIT_USAGE. */
static int usage_bad_option(const char *verb, int c, const char *arg) {
        bool is_long = arg[0] == '-' && arg[1] == '-';
        int len = (int) strcspn(arg, "=");

        if (c == ':')
                return is_long ? ctl_usage_error(verb, "Option '%.*s' needs an argument.", len, arg)
                               : ctl_usage_error(verb, "Option '-%c' needs an argument.", optopt);
        if (is_long && arg[len] == '=' && optopt != 0)
                return ctl_usage_error(verb, "Option '%.*s' takes no argument.", len, arg);
        if (!is_long && optopt != 0)
                return ctl_usage_error(verb, "Unknown option '-%c'.", optopt);
        return ctl_usage_error(verb, "Unknown option '%.*s'.", len, arg);
}

/* getopt_long() on the one option (or cluster of short ones) at argv[i], with its argument: on the
 * command line from there, so that the arguments around it are not reordered and the caller decides
 * what is an option. Calls handle for each option. Returns 0 and in *ret_used how many arguments it
 * took (1 or 2), or what handle returned to stop (EXIT_USAGE, a negative errno), or EXIT_USAGE
 * after saying what was wrong with the option. */
static int parse_one_option(const char *verb, int argc, char *argv[], int i, const char *short_options,
                            const struct option *options, VerbOptionFunc handle, void *userdata, int *ret_used) {
        int c, r;

        optind = 0; /* GNU getopt: start over, at argv[i] (argv[i - 1] stands for the program) */
        do {
                c = getopt_long(argc - i + 1, argv + i - 1, short_options, options, NULL);
                if (c < 0) /* cannot be: argv[i] starts with '-' and is not "--" */
                        return ctl_usage_error(verb, "Cannot parse '%s'.", argv[i]);
                if (c == '?' || c == ':')
                        return usage_bad_option(verb, c, argv[i]);
                r = handle(c, optarg, userdata);
                if (r != 0)
                        return r;
        } while (optind == 1); /* still within argv[i]: the next short option of the cluster */
        *ret_used = optind - 1;
        return 0;
}

typedef struct VerbParse {
        const Verb *verb;
        VerbOptionFunc f;
        void *userdata;
} VerbParse;

static int verb_handle_option(int c, const char *arg, void *userdata) {
        VerbParse *p = userdata;

        if (option_is_global(c))
                return parse_global_option(p->verb->name, c, arg);
        return p->f ? p->f(c, arg, p->userdata) : -EINVAL;
}

int verb_parse_argv(const Verb *verb, int argc, char *argv[], VerbOptionFunc f, void *userdata, char ***ret_args,
                    size_t *ret_n_args) {
        _cleanup_free_ struct option *options = NULL;
        _cleanup_free_ char *short_options = NULL;
        _cleanup_free_ char **args = NULL;
        VerbParse p = { .verb = verb, .f = f, .userdata = userdata };
        size_t n_global = ELEMENTSOF(global_options) - 1, n_own = 0, n_args = 0;

        for (const struct option *o = verb->options; o && o->name; o++)
                n_own++;
        options = calloc(n_global + n_own + 1, sizeof(struct option));
        args = calloc((size_t) argc + 1, sizeof(char *));
        if (!options || !args)
                return ctl_oom();
        /* '+': getopt_long() itself never reorders; ':': a missing argument is ':', not '?'. */
        if (asprintf(&short_options, "+:%s%s", GLOBAL_SHORT_OPTIONS, verb->short_options ?: "") < 0) {
                short_options = NULL;
                return ctl_oom();
        }
        memcpy(options, global_options, n_global * sizeof(struct option));
        if (n_own > 0)
                memcpy(options + n_global, verb->options, n_own * sizeof(struct option));

        for (int i = 1; i < argc;) {
                const char *a = argv[i];
                int r, used;

                if (streq(a, "--")) {
                        while (++i < argc)
                                args[n_args++] = argv[i];
                        break;
                }
                if (a[0] != '-' || a[1] == 0 || arg_is_negative_number(a)) {
                        args[n_args++] = argv[i++];
                        continue;
                }
                r = parse_one_option(verb->name, argc, argv, i, short_options, options, verb_handle_option, &p,
                                     &used);
                if (r != 0)
                        return r;
                i += used;
        }

        if (arg_version) {
                printf("kactorctl %s\n", KACTOR_VERSION);
                return 0;
        }
        if (arg_help) {
                (void) pager_open(arg_pager);
                verb->help();
                return 0;
        }
        *ret_args = TAKE_PTR(args);
        *ret_n_args = n_args;
        return 1;
}

static int main_handle_option(int c, const char *arg, void *userdata) {
        return parse_global_option(NULL, c, arg);
}

static int run(int argc, char *argv[]) {
        const Verb *verb;
        int i = 1, r, used;

        opterr = 0;
        /* The global options before the command; the command's own come after it. */
        while (i < argc && argv[i][0] == '-' && argv[i][1] != 0) {
                if (streq(argv[i], "--")) {
                        i++;
                        break;
                }
                r = parse_one_option(NULL, argc, argv, i, "+:" GLOBAL_SHORT_OPTIONS, global_options,
                                     main_handle_option, NULL, &used);
                if (r != 0)
                        return r;
                i += used;
        }
        if (arg_version) {
                printf("kactorctl %s\n", KACTOR_VERSION);
                return 0;
        }
        if (i >= argc) {
                if (!arg_help)
                        return ctl_usage_error(NULL, "Missing command.");
                (void) pager_open(arg_pager);
                main_help();
                return 0;
        }
        verb = verb_find(argv[i]);
        if (!verb)
                return ctl_usage_error(NULL, "Unknown command '%s'.", argv[i]);
        return verb->run(verb, argc - i, argv + i);
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        /* A pager that was quit before the end is no failure to write. */
        if ((fflush(stdout) != 0 || ferror(stdout)) && !pager_is_open()) {
                ctl_error_errno(-EIO, "Failed to write the output");
                if (r == 0)
                        r = -EIO;
        }
        pager_close();
        return r < 0 ? EXIT_FAILURE : r;
}
