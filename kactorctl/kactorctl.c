/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactorctl: the node manager's D-Bus API for people. Every command is one or two method calls on
 * io.kactor.NodeManager1; nothing here talks to the native socket.
 *
 * Commands return 0 on success, a negative errno after printing why they failed (exit status 1), or
 * a positive exit status of their own: EXIT_USAGE for bad usage, EXIT_INTERRUPTED when SIGINT or
 * SIGTERM ended a wait.
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
#include "kactorctl-trace.h"
#include "kactorctl-util.h"
#include "kactorctl-value.h"
#include "macro.h"
#include "parse-util.h"
#include "strv.h"

#define EXIT_INTERRUPTED 130

#define BUS_PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"
#define BUS_OBJECT_MANAGER_INTERFACE "org.freedesktop.DBus.ObjectManager"

/* How much longer than the node manager's own timeout a Get waits for its reply on the bus. */
#define GET_REPLY_SLACK_USEC (5 * UINT64_C(1000000))

static const char *arg_bus_address = NULL;
static bool arg_system = false;
static bool arg_json = false;
static uint64_t arg_timeout_usec = 0; /* 0: wait forever */

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

/* --- properties ---------------------------------------------------------------------------------------- */

typedef struct UintArray {
        uint32_t *items;
        size_t n;
} UintArray;

/* One property read into a struct: name on the bus, key in JSON output, D-Bus signature ("s" is a
 * malloc'd char *, "b" a bool, "au" a UintArray), and where it goes. */
typedef struct PropertyMap {
        const char *name;
        const char *json;
        const char *signature;
        size_t offset;
} PropertyMap;

/* Reads an "a{sv}" of properties into the struct at userdata. Properties not in map, or of another
 * type than it expects, are skipped: a newer node manager may have more. */
static int bus_read_properties(sd_bus_message *m, const PropertyMap *map, void *userdata) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const PropertyMap *p = NULL;
                const char *name;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                for (const PropertyMap *i = map; i->name; i++)
                        if (streq(i->name, name)) {
                                p = i;
                                break;
                        }
                r = p ? sd_bus_message_enter_container(m, 'v', p->signature) : -ENXIO;
                if (r == -ENXIO) {
                        r = sd_bus_message_skip(m, "v");
                        if (r < 0)
                                return r;
                } else if (r < 0)
                        return r;
                else {
                        void *field = (uint8_t *) userdata + p->offset;

                        if (streq(p->signature, "s")) {
                                const char *s;
                                r = sd_bus_message_read(m, "s", &s);
                                if (r < 0)
                                        return r;
                                free(*(char **) field);
                                *(char **) field = strdup(s);
                                if (!*(char **) field)
                                        return -ENOMEM;
                        } else if (streq(p->signature, "b")) {
                                int b;
                                r = sd_bus_message_read(m, "b", &b);
                                if (r < 0)
                                        return r;
                                *(bool *) field = b;
                        } else if (streq(p->signature, "au")) {
                                UintArray *a = field;
                                const void *items;
                                size_t size;

                                r = sd_bus_message_read_array(m, 'u', &items, &size);
                                if (r < 0)
                                        return r;
                                free(a->items);
                                a->items = NULL;
                                a->n = size / sizeof(uint32_t);
                                if (a->n > 0) {
                                        a->items = malloc(a->n * sizeof(uint32_t));
                                        if (!a->items)
                                                return -ENOMEM;
                                        memcpy(a->items, items, a->n * sizeof(uint32_t));
                                }
                        } else {
                                /* u, i, d, t: sd-bus stores them as the C types the fields have. */
                                r = sd_bus_message_read_basic(m, p->signature[0], field);
                                if (r < 0)
                                        return r;
                        }
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static kactor_value *uint_array_to_value(const UintArray *a) {
        _cleanup_(kactor_value_freep) kactor_value *list = kactor_value_new_list();

        if (!list)
                return NULL;
        for (size_t i = 0; i < a->n; i++)
                if (kactor_value_list_append(list, kactor_value_new_int(a->items[i])) < 0)
                        return NULL;
        return TAKE_PTR(list);
}

/* Adds the mapped fields of the struct at userdata to the map value, under their JSON keys. */
static int properties_to_value(const PropertyMap *map, const void *userdata, kactor_value *v) {
        int r;

        for (const PropertyMap *p = map; p->name; p++) {
                const void *field = (const uint8_t *) userdata + p->offset;
                kactor_value *item;

                switch (p->signature[0]) {
                case 's':
                        item = kactor_value_new_string(*(char *const *) field ?: "");
                        break;
                case 'b':
                        item = kactor_value_new_bool(*(const bool *) field);
                        break;
                case 'u':
                        item = kactor_value_new_int(*(const uint32_t *) field);
                        break;
                case 'i':
                        item = kactor_value_new_int(*(const int32_t *) field);
                        break;
                case 'd':
                        item = kactor_value_new_double(*(const double *) field);
                        break;
                case 't': {
                        uint64_t t = *(const uint64_t *) field;
                        /* Past int64 means "no limit" (UINT64_MAX) in practice. */
                        item = t <= INT64_MAX ? kactor_value_new_int((int64_t) t) : kactor_value_new_nil();
                        break;
                }
                case 'a':
                        item = uint_array_to_value(field);
                        break;
                default:
                        return -EINVAL;
                }
                r = kactor_value_map_set(v, p->json, item);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void uint_array_done(UintArray *a) {
        a->items = mfree(a->items);
        a->n = 0;
}

typedef struct ManagerInfo {
        char *node_id;
        char *version;
        UintArray gpus;
        UintArray free_gpus;
        double num_cpus;
        double free_cpus;
        uint32_t actors;
        uint64_t objects;
} ManagerInfo;

static const PropertyMap manager_properties[] = {
        { "NodeId", "node_id", "s", offsetof(ManagerInfo, node_id) },
        { "Version", "version", "s", offsetof(ManagerInfo, version) },
        { "Gpus", "gpus", "au", offsetof(ManagerInfo, gpus) },
        { "FreeGpus", "free_gpus", "au", offsetof(ManagerInfo, free_gpus) },
        { "NumCpus", "cpus", "d", offsetof(ManagerInfo, num_cpus) },
        { "FreeCpus", "free_cpus", "d", offsetof(ManagerInfo, free_cpus) },
        { "Actors", "actors", "u", offsetof(ManagerInfo, actors) },
        { "Objects", "objects", "t", offsetof(ManagerInfo, objects) },
        {}
};

static void manager_info_done(ManagerInfo *info) {
        free(info->node_id);
        free(info->version);
        uint_array_done(&info->gpus);
        uint_array_done(&info->free_gpus);
}

typedef struct ActorInfo {
        char *path;
        char *id;
        char *name;
        char *module;
        char *class_name;
        char *state;
        char *node;
        uint32_t pid;
        UintArray gpu_ids;
        char *unit;
        char *control_group;
        uint32_t restarts;
        int32_t max_restarts;
        bool detached;
        double num_cpus;
        uint64_t memory_max;
        uint64_t calls_submitted;
        uint64_t calls_completed;
        char *death_cause;
        uint32_t owner;
        UintArray allow_users;
        UintArray allow_groups;
} ActorInfo;

static const PropertyMap actor_properties[] = {
        { "Id", "id", "s", offsetof(ActorInfo, id) },
        { "Name", "name", "s", offsetof(ActorInfo, name) },
        { "Module", "module", "s", offsetof(ActorInfo, module) },
        { "Class", "class", "s", offsetof(ActorInfo, class_name) },
        { "State", "state", "s", offsetof(ActorInfo, state) },
        { "Node", "node", "s", offsetof(ActorInfo, node) },
        { "Pid", "pid", "u", offsetof(ActorInfo, pid) },
        { "GpuIds", "gpus", "au", offsetof(ActorInfo, gpu_ids) },
        { "Unit", "unit", "s", offsetof(ActorInfo, unit) },
        { "ControlGroup", "control_group", "s", offsetof(ActorInfo, control_group) },
        { "Restarts", "restarts", "u", offsetof(ActorInfo, restarts) },
        { "MaxRestarts", "max_restarts", "i", offsetof(ActorInfo, max_restarts) },
        { "Detached", "detached", "b", offsetof(ActorInfo, detached) },
        { "NumCpus", "num_cpus", "d", offsetof(ActorInfo, num_cpus) },
        { "MemoryMax", "memory_max", "t", offsetof(ActorInfo, memory_max) },
        { "CallsSubmitted", "calls_submitted", "t", offsetof(ActorInfo, calls_submitted) },
        { "CallsCompleted", "calls_completed", "t", offsetof(ActorInfo, calls_completed) },
        { "DeathCause", "death_cause", "s", offsetof(ActorInfo, death_cause) },
        { "Owner", "owner", "u", offsetof(ActorInfo, owner) },
        { "AllowUsers", "allow_users", "au", offsetof(ActorInfo, allow_users) },
        { "AllowGroups", "allow_groups", "au", offsetof(ActorInfo, allow_groups) },
        {}
};

static void actor_info_done(ActorInfo *a) {
        free(a->path);
        for (const PropertyMap *p = actor_properties; p->name; p++)
                if (streq(p->signature, "s"))
                        free(*(char **) ((uint8_t *) a + p->offset));
        uint_array_done(&a->gpu_ids);
        uint_array_done(&a->allow_users);
        uint_array_done(&a->allow_groups);
}

typedef struct ActorList {
        ActorInfo *items;
        size_t n;
        size_t allocated;
} ActorList;

static void actor_list_done(ActorList *l) {
        for (size_t i = 0; i < l->n; i++)
                actor_info_done(&l->items[i]);
        l->items = mfree(l->items);
        l->n = l->allocated = 0;
}

static ActorInfo *actor_list_add(ActorList *l) {
        if (l->n == l->allocated) {
                size_t allocated = MAX(l->allocated * 2, (size_t) 16);
                ActorInfo *p = reallocarray(l->items, allocated, sizeof(ActorInfo));
                if (!p)
                        return NULL;
                l->items = p;
                l->allocated = allocated;
        }
        l->items[l->n] = (ActorInfo) {};
        return &l->items[l->n++];
}

static int actor_info_compare(const void *a, const void *b) {
        const ActorInfo *x = a, *y = b;
        /* Ids start with the node and grow with each actor it makes: this is creation order. */
        return strcmp(x->id ?: "", y->id ?: "");
}

/* Every actor, with its properties, from one GetManagedObjects call. */
static int bus_list_actors(sd_bus *bus, ActorList *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ActorList l = {};
        int r;

        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, KACTOR_BUS_PATH, BUS_OBJECT_MANAGER_INTERFACE,
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to list the actors");

        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;

                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                        const char *interface;

                        r = sd_bus_message_read(reply, "s", &interface);
                        if (r < 0)
                                break;
                        if (streq(interface, KACTOR_BUS_ACTOR_INTERFACE)) {
                                ActorInfo *a = actor_list_add(&l);
                                if (!a || !(a->path = strdup(path)))
                                        r = -ENOMEM;
                                else
                                        r = bus_read_properties(reply, actor_properties, a);
                        } else
                                r = sd_bus_message_skip(reply, "a{sv}");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                actor_list_done(&l);
                return ctl_error_errno(r, "Failed to read the reply of GetManagedObjects");
        }

        if (l.n > 0)
                qsort(l.items, l.n, sizeof(ActorInfo), actor_info_compare);
        *ret = l;
        return 0;
}

/* --- output -------------------------------------------------------------------------------------------- */

static int print_json(const kactor_value *v) {
        _cleanup_free_ char *s = kactor_value_to_json(v);

        if (!s)
                return ctl_oom();
        puts(s);
        return 0;
}

/* A result: a plain int or string bare unless --json, everything else as JSON. */
static int print_value(const kactor_value *v) {
        if (!arg_json)
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

/* Prints a path, or with --json {"<kind>": path, "id": id}. */
static int print_path(const char *kind, const char *path) {
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        char id[KACTOR_ID_STRING_MAX] = "";
        kactor_type type;
        kactor_id parsed;

        if (!arg_json) {
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

/* A table with a header row; cells are copied, control characters in them shown as '?'. */
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

static void table_print(const Table *t) {
        _cleanup_free_ size_t *width = calloc(t->n_columns, sizeof(size_t));

        if (!width)
                return;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_columns] = MAX(width[i % t->n_columns], strlen(t->cells[i]));
        for (size_t row = 0; row < t->n_cells; row += t->n_columns) {
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

static char *uint_array_to_string(const UintArray *a, const char *separator) {
        char *s = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&s, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < a->n; i++)
                fprintf(f, "%s%" PRIu32, i > 0 ? separator : "", a->items[i]);
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

/* --- commands ------------------------------------------------------------------------------------------ */

static int verb_status(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(manager_info_done) ManagerInfo info = {};
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl status [--json]\n\n"
                               "Show the node: its id, version, GPUs and CPUs (all and free), and how many\n"
                               "actors and objects it holds.\n");
                        return 0;
                case 'j':
                        arg_json = true;
                        break;
                default:
                        return ctl_usage_bad_option("status", c, argv);
                }
        if (optind < argc)
                return ctl_usage_error("status", "Unexpected argument '%s'.", argv[optind]);

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

        if (arg_json) {
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

static int verb_list(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                {}
        };
        static const char *const header[] = {
                "ID", "NAME", "OWNER", "CLASS", "STATE", "PID", "GPUS", "CALLS", "DEATH CAUSE",
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(actor_list_done) ActorList actors = {};
        _cleanup_(table_done) Table t = { .n_columns = ELEMENTSOF(header) };
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl list [--json]\n\n"
                               "List the node's actors: id, name, owner, class, state, worker PID, GPUs,\n"
                               "calls (submitted/completed) and, for a dead actor, why it died.\n");
                        return 0;
                case 'j':
                        arg_json = true;
                        break;
                default:
                        return ctl_usage_bad_option("list", c, argv);
                }
        if (optind < argc)
                return ctl_usage_error("list", "Unexpected argument '%s'.", argv[optind]);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = bus_list_actors(bus, &actors);
        if (r < 0)
                return r;

        if (arg_json) {
                _cleanup_(kactor_value_freep) kactor_value *list = kactor_value_new_list();
                if (!list)
                        return ctl_oom();
                for (size_t i = 0; i < actors.n; i++) {
                        const ActorInfo *a = &actors.items[i];
                        kactor_value *v = kactor_value_new_map();

                        if (kactor_value_list_append(list, v) < 0 ||
                            kactor_value_map_set(v, "path", kactor_value_new_string(a->path)) < 0 ||
                            properties_to_value(actor_properties, a, v) < 0)
                                return ctl_oom();
                }
                return print_json(list);
        }

        if (actors.n == 0) {
                puts("No actors.");
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(header); i++)
                if (table_add_cell(&t, "%s", header[i]) < 0)
                        return ctl_oom();
        for (size_t i = 0; i < actors.n; i++) {
                const ActorInfo *a = &actors.items[i];
                _cleanup_free_ char *gpus = uint_array_to_string(&a->gpu_ids, ",");
                bool dead = streq_ptr(a->state, "dead");

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
                if (r >= 0)
                        r = table_add_cell(&t, "%s", dead && a->death_cause ? a->death_cause : "");
                if (r < 0)
                        return ctl_oom();
        }
        table_print(&t);
        printf("\n%zu actor%s listed.\n", actors.n, actors.n == 1 ? "" : "s");
        return 0;
}

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
        bool help;
        const char *name;
        const char *node;
        uint32_t gpus;
        double cpus;
        uint64_t memory_max;
        int32_t max_restarts;
        bool set_gpus, set_cpus, set_memory_max, set_max_restarts;
        bool owned;
        /* --allow-user, --allow-group: names or numbers, as given (the node manager resolves them) */
        const char *allow_users[CREATE_ALLOW_MAX], *allow_groups[CREATE_ALLOW_MAX];
        size_t n_allow_users, n_allow_groups;
} CreateOptions;

static int create_help(void) {
        printf("kactorctl create [OPTIONS...] MODULE CLASS [ARG...]\n\n"
               "Create an actor of CLASS from MODULE (a module name looked up in the\n"
               "node manager's module path, or a path to a .so; a relative path is made\n"
               "absolute here) and print its object path. The constructor runs in the\n"
               "actor's worker; ARGs are its arguments ('kactorctl call --help' has\n"
               "their syntax).\n\n"
               "  -h --help              Show this help\n"
               "     --json              Print {\"actor\": PATH, \"id\": ID}\n"
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
               "                         actor lives until it is killed.\n");
        return 0;
}

/* Fills *o from the options; optind is left at MODULE. Returns 0, EXIT_USAGE after saying why, or a
 * negative errno. */
static int create_parse_argv(int argc, char *argv[], CreateOptions *o) {
        enum {
                ARG_NAME = 0x100,
                ARG_GPUS,
                ARG_CPUS,
                ARG_MEMORY_MAX,
                ARG_MAX_RESTARTS,
                ARG_OWNED,
                ARG_NODE,
                ARG_ALLOW_USER,
                ARG_ALLOW_GROUP,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                { "name", required_argument, NULL, ARG_NAME },
                { "gpus", required_argument, NULL, ARG_GPUS },
                { "cpus", required_argument, NULL, ARG_CPUS },
                { "memory-max", required_argument, NULL, ARG_MEMORY_MAX },
                { "max-restarts", required_argument, NULL, ARG_MAX_RESTARTS },
                { "owned", no_argument, NULL, ARG_OWNED },
                { "node", required_argument, NULL, ARG_NODE },
                { "allow-user", required_argument, NULL, ARG_ALLOW_USER },
                { "allow-group", required_argument, NULL, ARG_ALLOW_GROUP },
                {}
        };
        int c, r;

        /* '+': stop at MODULE, so that arguments like -1 after it are values, not options. */
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        o->help = true;
                        return 0;
                case 'j':
                        arg_json = true;
                        break;
                case ARG_NAME:
                        if (!*optarg)
                                return ctl_usage_error("create", "The name must not be empty.");
                        o->name = optarg;
                        break;
                case ARG_GPUS:
                        if (parse_uint32(optarg, &o->gpus) < 0)
                                return ctl_usage_error("create", "--gpus needs a count, not '%s'.", optarg);
                        o->set_gpus = true;
                        break;
                case ARG_CPUS:
                        if (parse_nonnegative_double(optarg, &o->cpus) < 0)
                                return ctl_usage_error("create",
                                                       "--cpus needs a non-negative number, not '%s'.",
                                                       optarg);
                        o->set_cpus = true;
                        break;
                case ARG_MEMORY_MAX:
                        r = parse_bytes(optarg, &o->memory_max);
                        if (r == -ENOMEM)
                                return ctl_oom();
                        if (r < 0)
                                return ctl_usage_error("create",
                                                       "--memory-max needs bytes like 512M, not '%s'.",
                                                       optarg);
                        o->set_memory_max = true;
                        break;
                case ARG_MAX_RESTARTS:
                        if (parse_int32(optarg, &o->max_restarts) < 0 || o->max_restarts < -1)
                                return ctl_usage_error("create",
                                                       "--max-restarts needs a count or -1, not '%s'.",
                                                       optarg);
                        o->set_max_restarts = true;
                        break;
                case ARG_OWNED:
                        o->owned = true;
                        break;
                case ARG_NODE:
                        if (!*optarg)
                                return ctl_usage_error("create", "The node id must not be empty.");
                        o->node = optarg;
                        break;
                case ARG_ALLOW_USER:
                case ARG_ALLOW_GROUP: {
                        bool user = c == ARG_ALLOW_USER;
                        size_t *n = user ? &o->n_allow_users : &o->n_allow_groups;
                        if (!*optarg)
                                return ctl_usage_error("create", "--allow-%s needs a name or a number.",
                                                       user ? "user" : "group");
                        if (*n >= CREATE_ALLOW_MAX)
                                return ctl_usage_error("create", "At most %d --allow-%s options.", CREATE_ALLOW_MAX,
                                                       user ? "user" : "group");
                        (user ? o->allow_users : o->allow_groups)[(*n)++] = optarg;
                        break;
                }
                default:
                        return ctl_usage_bad_option("create", c, argv);
                }
        if (argc - optind < 2)
                return ctl_usage_error("create", "Expected a module and a class.");
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

static int verb_create(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *module = NULL;
        CreateOptions o = {};
        const char *path;
        int r;

        r = create_parse_argv(argc, argv, &o);
        if (r != 0)
                return r;
        if (o.help)
                return create_help();

        r = module_make_absolute(argv[optind], &module);
        if (r < 0)
                return ctl_error_errno(r, "Cannot make the module path '%s' absolute", argv[optind]);

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = create_build_request(bus, module, argv[optind + 1], argv + optind + 2, (size_t) (argc - optind - 2),
                                 &o, &m);
        if (r != 0)
                return r;

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to create the actor");
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_error_errno(r, "Failed to read the reply of CreateActor");
        return print_path("actor", path);
}

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
        "  anything else               a string\n";

static int verb_call(int argc, char *argv[]) {
        enum {
                ARG_NO_WAIT = 0x100,
                ARG_TIMEOUT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                { "no-wait", no_argument, NULL, ARG_NO_WAIT },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *actor = NULL, *object = NULL;
        const char *path;
        bool no_wait = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl call [OPTIONS...] ACTOR METHOD [ARG...]\n\n"
                               "Call METHOD on ACTOR (an id, a path, or a name), wait for the result,\n"
                               "print it and release the result object. A plain int or string prints\n"
                               "bare, anything else (and everything with --json) as JSON.\n\n"
                               "  -h --help          Show this help\n"
                               "     --json         Print the result as JSON\n"
                               "     --no-wait      Print the result's object path instead of waiting;\n"
                               "                    the object is kept until 'kactorctl get --release'\n"
                               "     --timeout SEC  Stop waiting for the result after SEC seconds\n\n%s",
                               value_syntax_help);
                        return 0;
                case 'j':
                        arg_json = true;
                        break;
                case ARG_NO_WAIT:
                        no_wait = true;
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &arg_timeout_usec) < 0)
                                return ctl_usage_error("call", "--timeout needs seconds, not '%s'.", optarg);
                        break;
                default:
                        return ctl_usage_bad_option("call", c, argv);
                }
        if (argc - optind < 2)
                return ctl_usage_error("call", "Expected an actor and a method.");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = resolve_actor(bus, "call", argv[optind], &actor);
        if (r != 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, KACTOR_BUS_NAME, actor, KACTOR_BUS_ACTOR_INTERFACE,
                                           "Call");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", argv[optind + 1]);
        if (r < 0)
                return ctl_error_errno(r, "Failed to build the call");
        r = bus_append_arguments(bus, m, "call", argv + optind + 2, (size_t) (argc - optind - 2));
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

static int verb_get(int argc, char *argv[]) {
        enum {
                ARG_TIMEOUT = 0x100,
                ARG_RELEASE,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "release", no_argument, NULL, ARG_RELEASE },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(strv_freep) char **paths = NULL;
        size_t n = 0;
        bool release = false;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl get [OPTIONS...] OBJECT...\n\n"
                               "Wait for the objects (ids or paths, as 'call --no-wait' prints them)\n"
                               "and print their values, one a line, in the order given.\n\n"
                               "  -h --help          Show this help\n"
                               "     --json         Print every value as JSON\n"
                               "     --timeout SEC  Stop waiting after SEC seconds (default: wait forever)\n"
                               "     --release      Release the objects afterwards (also when the get\n"
                               "                    fails)\n");
                        return 0;
                case 'j':
                        arg_json = true;
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &arg_timeout_usec) < 0)
                                return ctl_usage_error("get", "--timeout needs seconds, not '%s'.", optarg);
                        break;
                case ARG_RELEASE:
                        release = true;
                        break;
                default:
                        return ctl_usage_bad_option("get", c, argv);
                }
        if (optind >= argc)
                return ctl_usage_error("get", "Expected at least one object.");

        n = (size_t) (argc - optind);
        paths = calloc(n + 1, sizeof(char *));
        if (!paths)
                return ctl_oom();
        for (size_t i = 0; i < n; i++) {
                r = resolve_object("get", argv[optind + i], &paths[i]);
                if (r != 0)
                        return r;
        }

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        return get_and_print(bus, paths, n, release);
}

static int verb_kill(int argc, char *argv[]) {
        enum {
                ARG_NO_RESTART = 0x100,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "no-restart", no_argument, NULL, ARG_NO_RESTART },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *actor = NULL;
        bool no_restart = false;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl kill [--no-restart] ACTOR\n\n"
                               "Kill ACTOR's worker (ACTOR: an id, a path, or a name). An actor created\n"
                               "with --max-restarts is restarted and replays its calls, unless\n"
                               "--no-restart.\n");
                        return 0;
                case ARG_NO_RESTART:
                        no_restart = true;
                        break;
                default:
                        return ctl_usage_bad_option("kill", c, argv);
                }
        if (argc - optind != 1)
                return ctl_usage_error("kill", "Expected one actor.");

        r = bus_connect(&bus);
        if (r < 0)
                return r;
        r = resolve_actor(bus, "kill", argv[optind], &actor);
        if (r != 0)
                return r;
        r = sd_bus_call_method(bus, KACTOR_BUS_NAME, actor, KACTOR_BUS_ACTOR_INTERFACE, "Kill", &error, NULL,
                               "b", (int) no_restart);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to kill the actor");
        return 0;
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;
        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) >= 0 && streq(name, KACTOR_BUS_NAME) &&
            (!new_owner || !*new_owner))
                *(bool *) userdata = true;
        return 0;
}

static int verb_shutdown(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "no-block", no_argument, NULL, 'n' },
                {}
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        bool no_block = false, gone = false;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl shutdown [--no-block]\n\n"
                               "Stop every actor and then the node manager, leaving nothing for a next one.\n"
                               "(Stopping the service, SIGTERM, leaves the actors running for the next node\n"
                               "manager to take over.) Waits until the node manager has left the bus, unless\n"
                               "--no-block. Root only.\n");
                        return 0;
                case 'n':
                        no_block = true;
                        break;
                default:
                        return ctl_usage_bad_option("shutdown", c, argv);
                }
        if (argc - optind != 0)
                return ctl_usage_error("shutdown", "Expected no arguments.");

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

static int verb_peers(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "json", no_argument, NULL, 'j' },
                {}
        };
        static const char *const header[] = { "NODE", "ADDRESS", "STATE", "INCARNATION", "CPUS (FREE/ALL)",
                                              "GPUS (FREE/ALL)", "MEMORY (AVAILABLE/ALL)" };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(kactor_value_freep) kactor_value *list = kactor_value_new_list();
        _cleanup_(table_done) Table t = { .n_columns = ELEMENTSOF(header) };
        size_t n = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        printf("kactorctl peers [--json]\n\n"
                               "Show the cluster's members as this node sees them (this node first): node id,\n"
                               "address, state (alive, suspect, dead), incarnation, CPUs, GPUs and memory.\n");
                        return 0;
                case 'j':
                        arg_json = true;
                        break;
                default:
                        return ctl_usage_bad_option("peers", c, argv);
                }
        if (optind < argc)
                return ctl_usage_error("peers", "Unexpected argument '%s'.", argv[optind]);
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
                return ctl_error_errno(r, "Failed to parse the peers: %m");
        for (size_t i = 0; i < ELEMENTSOF(header) && !arg_json; i++)
                if (table_add_cell(&t, "%s", header[i]) < 0)
                        return ctl_oom();
        for (;; n++) {
                const char *id, *address, *state;
                uint32_t incarnation, gpus, gpus_free;
                double cpus, cpus_free;
                uint64_t memory, memory_free;

                r = sd_bus_message_read(reply, "(sssudduutt)", &id, &address, &state, &incarnation, &cpus, &cpus_free,
                                        &gpus, &gpus_free, &memory, &memory_free);
                if (r < 0)
                        return ctl_error_errno(r, "Failed to parse the peers: %m");
                if (r == 0)
                        break;
                if (arg_json) {
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
        if (arg_json)
                return print_json(list);
        if (n == 0) {
                puts("Not in a cluster (no --listen or --join).");
                return 0;
        }
        table_print(&t);
        return 0;
}

static const struct {
        const char *name;
        int (*run)(int argc, char *argv[]);
} verbs[] = {
        { "status", verb_status }, { "list", verb_list }, { "create", verb_create },
        { "call", verb_call },     { "get", verb_get },   { "kill", verb_kill },
        { "trace", verb_trace },   { "top", verb_top },   { "timeline", verb_timeline },
        { "peers", verb_peers },   { "shutdown", verb_shutdown },
};

static void help(void) {
        printf("kactorctl [OPTIONS...] COMMAND ...\n\n"
               "Control a kactor node manager over D-Bus.\n\n"
               "Commands:\n"
               "  status                          Show the node: GPUs, CPUs, actors, objects\n"
               "  list                            List the actors\n"
               "  create [OPTIONS] MODULE CLASS [ARG...]\n"
               "                                  Create an actor and print its path\n"
               "  call [OPTIONS] ACTOR METHOD [ARG...]\n"
               "                                  Call a method and print its result\n"
               "  get [OPTIONS] OBJECT...         Wait for objects and print their values\n"
               "  kill [--no-restart] ACTOR       Kill an actor's worker\n"
               "  trace [--actor A] [--method M] [--interval S] [--json|--prometheus]\n"
               "                                  Call phase and scheduler histograms, p50/p99\n"
               "  top [--interval S]              A live table of the actors\n"
               "  timeline -o FILE [--duration S] Record a Chrome trace / Perfetto timeline\n"
               "  peers [--json]                  Show the cluster's members, their state and resources\n"
               "  shutdown [--no-block]           Stop every actor, then the node manager\n\n"
               "Options:\n"
               "  -h --help          Show this help ('kactorctl COMMAND --help' for a command's)\n"
               "     --version      Show the version\n"
               "     --bus ADDRESS  Talk to the node manager on this D-Bus address\n"
               "                    (default: $KACTOR_BUS_ADDRESS if set, else the system bus)\n"
               "     --system       Use the system bus, whatever $KACTOR_BUS_ADDRESS says\n"
               "     --json         Print data as JSON\n"
               "     --timeout SEC  Stop waiting for results after SEC seconds (default: forever;\n"
               "                    Ctrl-C stops waiting too)\n\n"
               "Exit status: 0 on success, 1 when the node manager or the bus reported an error,\n"
               "2 for bad usage, 130 when interrupted while waiting.\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_BUS,
                ARG_SYSTEM,
                ARG_TIMEOUT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "bus", required_argument, NULL, ARG_BUS },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "json", no_argument, NULL, 'j' },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                {}
        };
        int c;

        /* '+': stop at the command; what follows is the command's to parse. */
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("kactorctl %s\n", KACTOR_VERSION);
                        return 0;
                case ARG_BUS:
                        if (!*optarg)
                                return ctl_usage_error(NULL, "--bus needs an address.");
                        arg_bus_address = optarg;
                        arg_system = false;
                        break;
                case ARG_SYSTEM:
                        arg_system = true;
                        arg_bus_address = NULL;
                        break;
                case 'j':
                        arg_json = true;
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &arg_timeout_usec) < 0)
                                return ctl_usage_error(NULL, "--timeout needs seconds, not '%s'.", optarg);
                        break;
                default:
                        return ctl_usage_bad_option(NULL, c, argv);
                }
        return 1; /* go on with the command */
}

static int run(int argc, char *argv[]) {
        int r;

        opterr = 0;
        r = parse_argv(argc, argv);
        if (r != 1) /* 0: --help or --version done; EXIT_USAGE */
                return r;
        if (optind >= argc)
                return ctl_usage_error(NULL, "Missing command.");

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[optind], verbs[i].name)) {
                        int verb_argc = argc - optind;
                        char **verb_argv = argv + optind;

                        optind = 0; /* GNU getopt: start over, on the command's own arguments */
                        return verbs[i].run(verb_argc, verb_argv);
                }
        return ctl_usage_error(NULL, "Unknown command '%s'.", argv[optind]);
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        if (fflush(stdout) != 0 || ferror(stdout)) {
                ctl_error_errno(-EIO, "Failed to write the output");
                if (r == 0)
                        r = -EIO;
        }
        return r < 0 ? EXIT_FAILURE : r;
}
