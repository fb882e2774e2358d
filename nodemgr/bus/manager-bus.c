/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The D-Bus service: vtables and thin handlers over the manager's core operations. */

#include <stdio.h>

#include "access.h"
#include "actor.h"
#include "bus-polkit.h"
#include "bus-value.h"
#include "cluster-hooks.h"
#include "codec.h"
#include "get-request.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "manager-bus.h"
#include "req-error.h"
#include "spec-check.h"
#include "strv.h"
#include "tasks.h"
#include "time-util.h"

#define KACTOR_BUS_OBJECT_INTERFACE "io.kactor.Object1"

/* Retries after a lost connection: 100 ms, doubling up to 5 s between attempts. */
#define BUS_RECONNECT_FIRST_USEC (100 * UINT64_C(1000))
#define BUS_RECONNECT_MAX_USEC (5 * USEC_PER_SEC)
#define BUS_EXTRA_VTABLES_MAX 4

/* An interface another file of the service serves on the manager's object (Trace1): put back on
 * every new connection. */
typedef struct BusExtraVtable {
        const char *interface;
        const sd_bus_vtable *vtable;
} BusExtraVtable;

/* The service's state, on the manager as m->bus_userdata from the setup on. It outlives its
 * connection: when the bus goes (a D-Bus restart), the manager keeps serving native clients and
 * connects again (on_reconnect()). */
struct ManagerBus {
        Manager *manager;
        sd_bus *bus;              /* NULL while the bus is away */
        char *address;            /* NULL: the system bus */
        struct BusOwner *owners;  /* uthash by actor id */
        LIST_HEAD(, BusGet) gets; /* Get and Wait requests waiting for their answer */
        BusPolkit polkit;         /* administrative requests waiting for polkit's answer */
        BusExtraVtable extra[BUS_EXTRA_VTABLES_MAX];
        size_t n_extra;
        sd_event_source *reconnect_timer;
        uint64_t reconnect_delay;
        unsigned reconnect_attempts;
};

static int bus_reply_req_error(sd_bus_error *error, int r, ReqError *e) {
        if (r == -EREMOTEIO) {
                const char *name = kactor_error_name(e->code) ?: "io.kactor.Error.Failed";
                r = sd_bus_error_setf(error, name, "%s", e->message ?: "failed");
        }
        req_error_done(e);
        return r;
}

static int bus_resolve_path(const char *path, kactor_type *ret_type, kactor_id *ret_id, void *userdata) {
        Manager *m = userdata;
        kactor_type t;
        kactor_id id;

        if (bus_path_parse(path, &t, &id) < 0)
                return -ENOENT;
        if (t == KACTOR_TYPE_ACTOR && !manager_find_actor(m, id) && !cluster_hooks_actor_routable(m, id))
                return -ENOENT;
        if (t == KACTOR_TYPE_OBJECT && !manager_find_object(m, id) && !(cluster_hooks_enabled(m) && id.hi != m->node_hi))
                return -ENOENT;
        *ret_type = t;
        *ret_id = id;
        return 0;
}

/* Reads an "av" of arguments and packs it. */
static int bus_read_args(Manager *m, sd_bus_message *msg, char **ret, size_t *ret_len, sd_bus_error *error) {
        _cleanup_(kactor_value_freep) kactor_value *args = NULL;
        int r;

        r = bus_message_read_value_list(msg, bus_resolve_path, m, &args);
        if (r == -ENOENT)
                return sd_bus_error_set(error, "io.kactor.Error.NoSuchObject",
                                        "An argument of type 'o' names no actor or object of this node.");
        if (r == -EINVAL || r == -ERANGE || r == -EBADMSG || r == -ENXIO)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Arguments must be variants of basic types, arrays, dicts with string keys, "
                                         "or object paths: %s", strerror(-r));
        if (r < 0)
                return r;
        return codec_encode(args, ret, ret_len);
}

static int bus_sender_uid(sd_bus_message *msg, uid_t *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        int r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        return sd_bus_creds_get_euid(creds, ret);
}

/* Only root, the node manager's own user and members of its access group may use it (the D-Bus
 * policy says so for the system bus; this holds on any bus). *ret_uid (optional): the caller's. */
int manager_bus_check_access(sd_bus_message *msg, Manager *m, uid_t *ret_uid, sd_bus_error *error) {
        ReqError e = {};
        uid_t uid;
        int r = bus_sender_uid(msg, &uid);
        if (r < 0)
                return sd_bus_error_setf(error, "io.kactor.Error.AccessDenied", "Cannot determine the caller's user: %s",
                                         strerror(-r));
        r = access_check(m, uid, &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        if (ret_uid)
                *ret_uid = uid;
        return 0;
}

/* Reads an option's variant as a kactor value. A 't' past 2^63-1 comes as a double, so that the
 * limit it breaks can be named (spec-check.c takes integral doubles for integers). */
static int bus_read_option_value(sd_bus_message *msg, kactor_value **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(msg, &type, &contents);
        if (r < 0)
                return r;
        if (type == SD_BUS_TYPE_VARIANT && streq(contents, "t")) {
                uint64_t u;
                r = sd_bus_message_read(msg, "v", "t", &u);
                if (r < 0)
                        return r;
                *ret = u > INT64_MAX ? kactor_value_new_double((double) u) : kactor_value_new_int((int64_t) u);
                return *ret ? 0 : -ENOMEM;
        }
        return bus_message_read_value(msg, NULL, NULL, ret);
}

typedef int (*bus_option_fn)(const char *key, const kactor_value *v, void *userdata, ReqError *e);

/* The D-Bus type each option wants, as docs/dbus-api.md lists them; numbers may come as any integer
 * type or a whole 'd'. An option given with another type is refused naming the one wanted. */
static const struct {
        const char *name;
        const char *type;
} bus_option_types[] = {
        { "NumCpus", "d" },    { "NumGpus", "u" },     { "MemoryMax", "t" },          { "TasksMax", "t" },
        { "MaxRestarts", "i" }, { "CheckpointInterval", "u" }, { "Detached", "b" },   { "Name", "s" },
        { "User", "s" },       { "Node", "s" },        { "AllowUsers", "as" },        { "AllowGroups", "as" },
};

static bool bus_type_is_number(const char *t) {
        return strlen(t) == 1 && strchr("ynqiuxtd", t[0]);
}

/* 0 when the variant's signature suits option key (or key is unknown: the core refuses it by name). A
 * variant in the variant is unwrapped by the reader: the core checks what is inside. */
static int bus_check_option_type(const char *key, const char *got, sd_bus_error *error) {
        if (streq(got, "v"))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(bus_option_types); i++) {
                const char *want = bus_option_types[i].type;
                if (!streq(key, bus_option_types[i].name))
                        continue;
                bool ok = streq(got, want) || (bus_type_is_number(want) && bus_type_is_number(got)) ||
                        (streq(want, "as") && strlen(got) == 2 && got[0] == 'a' && strchr("sv", got[1])) ||
                        (streq(want, "as") && strlen(got) == 2 && got[0] == 'a' && bus_type_is_number(got + 1));
                if (ok)
                        return 0;
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option %s must be of D-Bus type '%s'%s, got '%s'.",
                                         key, want,
                                         streq(want, "d")           ? " (or any integer type)"
                                         : bus_type_is_number(want) ? " (any integer type, or a 'd' holding a whole number, is taken)"
                                         : streq(want, "as")        ? " (or 'au', 'av': names or numbers)"
                                                                    : "",
                                         got);
        }
        return 0;
}

/* Reads an "a{sv}" of options, each set by set_option (spec-check.c: the rules both transports share). */
static int bus_read_options(sd_bus_message *msg, bus_option_fn set_option, void *userdata, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                _cleanup_(kactor_value_freep) kactor_value *v = NULL;
                ReqError e = {};
                const char *key;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                const char *contents;
                r = sd_bus_message_peek_type(msg, NULL, &contents);
                if (r < 0)
                        return r;
                r = bus_check_option_type(key, contents, error);
                if (r < 0)
                        return r;
                r = bus_read_option_value(msg, &v);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option %.64s has the wrong type: %s",
                                                 key, strerror(-r));
                r = set_option(key, v, userdata, &e);
                if (r < 0)
                        return bus_reply_req_error(error, r, &e);
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

typedef struct BusActorOptions {
        ActorSpec *spec;
        ActorOptionStrings strings;
} BusActorOptions;

static int bus_set_actor_option(const char *key, const kactor_value *v, void *userdata, ReqError *e) {
        BusActorOptions *o = userdata;
        return actor_option_set(o->spec, &o->strings, key, strlen(key), v, e);
}

static void bus_actor_options_done(BusActorOptions *o) {
        actor_option_strings_done(&o->strings);
}

static int bus_set_task_option(const char *key, const kactor_value *v, void *userdata, ReqError *e) {
        return task_option_set(userdata, key, strlen(key), v, e);
}

/* The owner over D-Bus of an actor made with Detached=false: while its connection lasts, the actor
 * holds one reference for it. */
typedef struct BusOwner {
        kactor_id actor;
        sd_bus_track *track;
        ManagerBus *bus;
        UT_hash_handle hh;
} BusOwner;

/* Forgets the owner; with drop_ref, lets go of the reference it held too. */
static void bus_owner_free(BusOwner *o, bool drop_ref) {
        ManagerBus *b = o->bus;
        kactor_id id = o->actor;

        HASH_DELETE(hh, b->owners, o);
        sd_bus_track_unref(o->track);
        free(o);
        if (drop_ref) {
                Actor *a = manager_find_actor(b->manager, id);
                if (a) {
                        a->bus_owner = mfree(a->bus_owner);
                        persist_bus_owner(a);
                        actor_unref(a);
                }
        }
}

static int bus_owner_gone(sd_bus_track *t, void *userdata) {
        /* The owning bus connection went away: that was a handle. */
        bus_owner_free(userdata, true);
        return 0;
}

/* The sender of msg owns a: a keeps a reference for it until its connection goes. */
static int bus_owner_add(ManagerBus *b, Actor *a, sd_bus_message *msg) {
        BusOwner *o = calloc(1, sizeof(BusOwner));
        int r;

        if (!o)
                return -ENOMEM;
        *o = (BusOwner) { .actor = a->id, .bus = b };
        r = sd_bus_track_new(b->bus, &o->track, bus_owner_gone, o);
        if (r >= 0)
                r = sd_bus_track_add_sender(o->track, msg);
        if (r < 0) {
                sd_bus_track_unref(o->track);
                free(o);
                return r;
        }
        HASH_ADD(hh, b->owners, actor, sizeof(o->actor), o);
        actor_ref(a);
        /* The journal keeps the owner: a restarted node manager tracks it again (persist.c). */
        free(a->bus_owner);
        a->bus_owner = strdup(sd_bus_message_get_sender(msg) ?: "");
        persist_bus_owner(a);
        return 0;
}

/* Actors a previous node manager restored with their D-Bus owners: tracked again by name, while the
 * bus they were on lasts (their reference was taken at the restore). An owner gone meanwhile lets
 * go at once (the track finds the name missing). */
static void bus_restore_owners(ManagerBus *b) {
        Actor *a, *tmp;
        HASH_ITER(hh, b->manager->actors, a, tmp) {
                if (!a->bus_owner_restored)
                        continue;
                a->bus_owner_restored = false;
                BusOwner *o = calloc(1, sizeof(BusOwner));
                int r = o ? sd_bus_track_new(b->bus, &o->track, bus_owner_gone, o) : -ENOMEM;
                if (r >= 0) {
                        o->actor = a->id;
                        o->bus = b;
                        r = sd_bus_track_add_name(o->track, a->bus_owner);
                }
                if (r < 0) {
                        log_debug("The D-Bus owner %s of actor %s is gone: %s", a->bus_owner, a->id_string,
                                  strerror(-r));
                        if (o)
                                sd_bus_track_unref(o->track);
                        free(o);
                        a->bus_owner = mfree(a->bus_owner);
                        persist_bus_owner(a);
                        actor_unref(a);
                        continue;
                }
                HASH_ADD(hh, b->owners, actor, sizeof(o->actor), o);
        }
}

static int method_create_actor(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        int access_r = manager_bus_check_access(msg, userdata, NULL, error);
        if (access_r < 0)
                return access_r;
        Manager *m = userdata;
        const char *module, *class_name;
        _cleanup_free_ char *args = NULL, *path = NULL;
        size_t args_len;
        ActorSpec spec = { .detached = true, .detach_if_placed = true };
        _cleanup_(bus_actor_options_done) BusActorOptions options = { .spec = &spec };
        ReqError e = {};
        Actor *a;
        int r;

        r = sd_bus_message_read(msg, "ss", &module, &class_name);
        if (r < 0)
                return r;
        r = bus_read_args(m, msg, &args, &args_len, error);
        if (r < 0)
                return r;
        r = bus_read_options(msg, bus_set_actor_option, &options, error);
        if (r < 0)
                return r;
        r = bus_sender_uid(msg, &spec.uid);
        if (r < 0)
                /* Without the caller's identity nothing runs: never fall back to root. */
                return sd_bus_error_setf(error, "io.kactor.Error.AccessDenied",
                                         "Cannot determine the caller's user: %s", strerror(-r));
        spec.module = module;
        spec.class_name = class_name;
        spec.args = args;
        spec.args_len = args_len;

        kactor_id id;
        r = actor_create_anywhere(m, &spec, &a, &id, &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        if (!a) {
                /* Placed on a peer: its path is the same on every node. */
                char ids[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(id, ids);
                if (asprintf(&path, "/io/kactor/NodeManager1/actor/%s", ids) < 0)
                        return -ENOMEM;
                return sd_bus_reply_method_return(msg, "o", path);
        }
        if (!spec.detached) {
                /* Owned by the caller's connection: the actor stops when it goes. */
                r = bus_owner_add(m->bus_userdata, a, msg);
                if (r < 0) {
                        (void) actor_kill(a, true, "could not track its owner");
                        return r;
                }
        }
        return sd_bus_reply_method_return(msg, "o", a->path);
}

static int method_get_actor(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, userdata, &uid, error);
        if (access_r < 0)
                return access_r;
        Manager *m = userdata;
        const char *name;
        int r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        ReqError e = {};
        r = actor_name_check(name, strlen(name), &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        Actor *a = manager_find_actor_by_name(m, name);
        if (!a)
                return sd_bus_error_setf(error, "io.kactor.Error.NoSuchActor", "No actor named '%s'.", name);
        r = access_check_actor(m, a, uid, ACCESS_CALL, &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        return sd_bus_reply_method_return(msg, "o", a->path);
}

static int bus_reply_object(Manager *m, sd_bus_message *msg, Object *o) {
        o->pinned = true; /* made over D-Bus: lives until Release */
        persist_hold(m, 0, o->id, PERSIST_HOLD_PIN, true);
        _cleanup_free_ char *path = bus_object_path(o->id);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_submit_task(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, userdata, &uid, error);
        if (access_r < 0)
                return access_r;
        Manager *m = userdata;
        const char *module, *function;
        _cleanup_free_ char *args = NULL;
        size_t args_len;
        double num_cpus = 1;
        ReqError e = {};
        Object *o;
        int r;

        r = sd_bus_message_read(msg, "ss", &module, &function);
        if (r < 0)
                return r;
        r = bus_read_args(m, msg, &args, &args_len, error);
        if (r < 0)
                return r;
        r = bus_read_options(msg, bus_set_task_option, &num_cpus, error);
        if (r < 0)
                return r;

        r = tasks_submit(m, manager_new_local_id(m), module, function, num_cpus, args, args_len, uid, NULL, &o,
                         &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        persist_bus_request(m, o, module, (kactor_id) {}, function, num_cpus, args, args_len);
        return bus_reply_object(m, msg, o);
}

static int method_put(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, userdata, &uid, error);
        if (access_r < 0)
                return access_r;
        Manager *m = userdata;
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        _cleanup_free_ char *data = NULL;
        size_t len;
        ReqError e = {};
        Object *o;
        int r;

        r = bus_message_read_value(msg, bus_resolve_path, m, &v);
        if (r == -ENOENT)
                return sd_bus_error_set(error, "io.kactor.Error.NoSuchObject",
                                        "A value of type 'o' names no actor or object of this node.");
        if (r == -EINVAL || r == -ERANGE || r == -EBADMSG || r == -ENXIO)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unsupported value: %s", strerror(-r));
        if (r < 0)
                return r;
        r = codec_encode(v, &data, &len);
        if (r < 0)
                return r;
        r = manager_put(m, manager_new_local_id(m), data, len, uid, NULL, &o, &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        return bus_reply_object(m, msg, o);
}

static int bus_read_object_ids(sd_bus_message *msg, kactor_id **ret, size_t *ret_n, sd_bus_error *error) {
        _cleanup_free_ kactor_id *ids = NULL;
        size_t n = 0, allocated = 0;
        const char *path;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "o");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(msg, "o", &path)) > 0) {
                kactor_type t;
                kactor_id id;
                if (bus_path_parse(path, &t, &id) < 0 || t != KACTOR_TYPE_OBJECT)
                        return sd_bus_error_setf(error, "io.kactor.Error.NoSuchObject", "%s is not an object path.", path);
                if (n == allocated) {
                        allocated = MAX(allocated * 2, (size_t) 8);
                        kactor_id *p = realloc(ids, allocated * sizeof(kactor_id));
                        if (!p)
                                return -ENOMEM;
                        ids = p;
                }
                ids[n++] = id;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

/* A Get or Wait over D-Bus: what the service keeps about it, beside the core's request. */
typedef struct BusGet {
        GetRequest *get;
        sd_bus_message *message;
        sd_bus_track *track; /* the caller: its request goes when it does */
        ManagerBus *bus;
        LIST_ENTRY(BusGet) link;
} BusGet;

static int on_get_caller_gone(sd_bus_track *t, void *userdata) {
        BusGet *bg = userdata;
        get_request_free(bg->get);
        return 0;
}

static int bus_get_send_reply(BusGet *bg, bool timed_out);

/* GetRequest.reply */
static void bus_get_reply(GetRequest *g, bool timed_out) {
        (void) bus_get_send_reply(g->userdata, timed_out);
        get_request_free(g);
}

/* GetRequest.done */
static void bus_get_done(GetRequest *g) {
        BusGet *bg = g->userdata;
        LIST_REMOVE(bg, link);
        sd_bus_message_unref(bg->message);
        sd_bus_track_unref(bg->track);
        free(bg);
}

static int bus_start_get(sd_bus_message *msg, Manager *m, uid_t uid, bool wait, sd_bus_error *error) {
        _cleanup_free_ kactor_id *ids = NULL;
        size_t n;
        uint32_t num_returns = 0;
        uint64_t timeout;
        ReqError e = {};
        GetRequest *g;
        int r;

        r = bus_read_object_ids(msg, &ids, &n, error);
        if (r < 0)
                return r;
        if (wait) {
                r = sd_bus_message_read(msg, "u", &num_returns);
                if (r < 0)
                        return r;
                if (num_returns > n)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "num_returns %u is more than the %zu objects given.", num_returns, n);
        }
        r = sd_bus_message_read(msg, "t", &timeout);
        if (r < 0)
                return r;

        /* Ray's semantics over D-Bus: 0 answers at once with what is ready (Get: the Timeout error
         * unless everything is), UINT64_MAX waits for as long as it takes; the core's 0 is "forever". */
        timeout = timeout == 0 ? 1 : timeout == UINT64_MAX ? 0 : timeout;
        /* Results of direct calls whose records are not read yet are read first. */
        for (size_t i = 0; i < n; i++)
                (void) manager_find_object(m, ids[i]);
        r = get_request_new(m, ids, n, uid, wait, num_returns, timeout, &g, &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        BusGet *bg = calloc(1, sizeof(BusGet));
        if (!bg) {
                get_request_free(g);
                return -ENOMEM;
        }
        ManagerBus *b = m->bus_userdata;
        *bg = (BusGet) { .get = g, .message = sd_bus_message_ref(msg), .bus = b };
        LIST_INSERT_HEAD(&b->gets, bg, link);
        g->userdata = bg;
        g->reply = bus_get_reply;
        g->done = bus_get_done;
        /* A caller that goes away takes its waiting request with it (a Get may wait forever). */
        r = sd_bus_track_new(sd_bus_message_get_bus(msg), &bg->track, on_get_caller_gone, bg);
        if (r >= 0)
                r = sd_bus_track_add_sender(bg->track, msg);
        if (r < 0) {
                get_request_free(g);
                return r;
        }
        r = get_request_start(g);
        return r < 0 ? r : 1; /* answered later, by bus_get_reply() */
}

static int method_get(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, userdata, &uid, error);
        if (access_r < 0)
                return access_r;
        return bus_start_get(msg, userdata, uid, false, error);
}

static int method_wait(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, userdata, &uid, error);
        if (access_r < 0)
                return access_r;
        return bus_start_get(msg, userdata, uid, true, error);
}

static int bus_get_send_reply(BusGet *bg, bool timed_out) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        GetRequest *g = bg->get;
        int r;

        if (g->wait) {
                r = sd_bus_message_new_method_return(bg->message, &reply);
                if (r < 0)
                        return r;
                for (int pass = 0; pass < 2; pass++) {
                        r = sd_bus_message_open_container(reply, 'a', "o");
                        if (r < 0)
                                return r;
                        for (size_t i = 0; i < g->n_objects; i++) {
                                bool ready = g->objects[i]->state != OBJECT_PENDING;
                                if (ready != (pass == 0))
                                        continue;
                                _cleanup_free_ char *p = bus_object_path(g->objects[i]->id);
                                if (!p)
                                        return -ENOMEM;
                                r = sd_bus_message_append(reply, "o", p);
                                if (r < 0)
                                        return r;
                        }
                        r = sd_bus_message_close_container(reply);
                        if (r < 0)
                                return r;
                }
                return sd_bus_send(NULL, reply, NULL);
        }

        const Object *denied = get_request_denied(g);
        if (denied) {
                ReqError e = {};
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                int k = access_check_object(g->manager, denied, g->uid, &e);
                (void) bus_reply_req_error(&error, k, &e);
                return sd_bus_reply_method_error(bg->message, &error);
        }
        if (timed_out) {
                size_t ready = 0;
                for (size_t i = 0; i < g->n_objects; i++)
                        ready += g->objects[i]->state != OBJECT_PENDING;
                return sd_bus_reply_method_errorf(bg->message, "io.kactor.Error.Timeout",
                                                  "Timed out: %zu of %zu objects ready.", ready, g->n_objects);
        }
        for (size_t i = 0; i < g->n_objects; i++) {
                Object *o = g->objects[i];
                if (o->state == OBJECT_FAILED)
                        return sd_bus_reply_method_errorf(bg->message, kactor_error_name(o->error) ?: "io.kactor.Error.Failed",
                                                          "%s", o->message ?: "failed");
        }

        r = sd_bus_message_new_method_return(bg->message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "v");
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_objects; i++) {
                _cleanup_(kactor_value_freep) kactor_value *v = NULL;
                r = codec_decode(g->objects[i]->data, g->objects[i]->len, &v);
                if (r < 0)
                        return sd_bus_reply_method_errorf(bg->message, "io.kactor.Error.TaskFailed",
                                                          "The stored value cannot be decoded.");
                r = bus_message_append_value(reply, v);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Stops every actor and then the node manager, leaving nothing for a next one (what SIGTERM, which
 * leaves the actors running, does not). Root only: no SD_BUS_VTABLE_UNPRIVILEGED. */
static int method_shutdown(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uid_t uid = (uid_t) -1;
        (void) bus_sender_uid(msg, &uid);
        log_info("Shutdown requested by UID %u: stopping %u actor%s.", (unsigned) uid, m->n_actors_live,
                 m->n_actors_live == 1 ? "" : "s");
        int r = sd_bus_reply_method_return(msg, NULL);
        manager_stop(m);
        return r;
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, userdata, &uid, error);
        if (access_r < 0)
                return access_r;
        Manager *m = userdata;
        _cleanup_free_ kactor_id *ids = NULL;
        size_t n;
        int r;

        r = bus_read_object_ids(msg, &ids, &n, error);
        if (r < 0)
                return r;
        /* All or nothing: check first. */
        for (size_t i = 0; i < n; i++) {
                Object *o = objstore_find(&m->store, ids[i]);
                if (!o || !o->pinned) {
                        char s[KACTOR_ID_STRING_MAX];
                        kactor_id_to_string(ids[i], s);
                        return sd_bus_error_setf(error, "io.kactor.Error.NoSuchObject",
                                                 "No object %s held over D-Bus (never made, or released).", s);
                }
                ReqError e = {};
                r = access_check_object(m, o, uid, &e);
                if (r < 0)
                        return bus_reply_req_error(error, r, &e);
        }
        for (size_t i = 0; i < n; i++) {
                Object *o = objstore_find(&m->store, ids[i]);
                if (o && o->pinned) {
                        o->pinned = false;
                        persist_hold(m, 0, o->id, PERSIST_HOLD_PIN, false);
                        objstore_unref(&m->store, o);
                }
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static int property_get_node_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", m->node_id);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", KACTOR_VERSION);
}

static int property_get_gpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        bool only_free = streq(property, "FreeGpus");
        int r = sd_bus_message_open_container(reply, 'a', "u");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->resources.n_gpus; i++) {
                if (only_free && m->resources.gpus[i].in_use)
                        continue;
                r = sd_bus_message_append(reply, "u", m->resources.gpus[i].id);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_actors(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "u", m->n_actors_live);
}

static int property_get_cpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        double v = streq(property, "NumCpus") ? m->resources.cpus_total
                                              : m->resources.cpus_total - m->resources.cpus_used;
        return sd_bus_message_append(reply, "d", v);
}

static int property_get_objects(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        /* Direct calls' results kept for their callers are objects to whoever names them. */
        return sd_bus_message_append(reply, "t", (uint64_t) (m->store.n_objects + m->store.n_elsewhere));
}

static int property_get_cgroup_manager(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", cgroup_manager_name(m->cgroups));
}

/* Peers: a(sssudduutt) — node id, address, state (alive, suspect, dead), incarnation, CPUs total and
 * free, GPUs total and free, memory total and available (bytes); this node first. Empty on a single
 * node. */
static int property_get_peers(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        ClusterPeer p;
        int r = sd_bus_message_open_container(reply, 'a', "(sssudduutt)");
        if (r < 0)
                return r;
        for (size_t i = 0; cluster_hooks_peer_at(m, i, &p); i++) {
                r = sd_bus_message_append(reply, "(sssudduutt)", p.id, p.address, p.state, p.incarnation,
                                          p.cpus_total, p.cpus_free, p.gpus_total, p.gpus_free, p.memory_total,
                                          p.memory_free);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("NodeId", "s", property_get_node_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Gpus", "au", property_get_gpus, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("FreeGpus", "au", property_get_gpus, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Actors", "u", property_get_actors, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NumCpus", "d", property_get_cpus, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("FreeCpus", "d", property_get_cpus, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Objects", "t", property_get_objects, 0, 0),
        SD_BUS_PROPERTY("ObjectStoreBytes", "t", NULL, offsetof(Manager, store.bytes), 0),
        SD_BUS_PROPERTY("ObjectStoreMemoryMax", "t", NULL, offsetof(Manager, store.max_bytes), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ObjectsEvicted", "t", NULL, offsetof(Manager, store.n_evicted), 0),
        SD_BUS_PROPERTY("ObjectsRebuilt", "t", NULL, offsetof(Manager, store.n_rebuilt), 0),
        SD_BUS_PROPERTY("LineageBytes", "t", NULL, offsetof(Manager, lineage_bytes), 0),
        SD_BUS_PROPERTY("LineageMemoryMax", "t", NULL, offsetof(Manager, lineage_max), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CgroupManager", "s", property_get_cgroup_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Peers", "a(sssudduutt)", property_get_peers, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("CreateActor",
                                SD_BUS_ARGS("s", module, "s", class, "av", args, "a{sv}", options),
                                SD_BUS_RESULT("o", actor), method_create_actor, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetActor", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", actor), method_get_actor,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubmitTask",
                                SD_BUS_ARGS("s", module, "s", function, "av", args, "a{sv}", options),
                                SD_BUS_RESULT("o", object), method_submit_task, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Put", SD_BUS_ARGS("v", value), SD_BUS_RESULT("o", object), method_put,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Get", SD_BUS_ARGS("ao", objects, "t", timeout_usec), SD_BUS_RESULT("av", values),
                                method_get, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Wait", SD_BUS_ARGS("ao", objects, "u", num_returns, "t", timeout_usec),
                                SD_BUS_RESULT("ao", ready, "ao", not_ready), method_wait, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("ao", objects), SD_BUS_NO_RESULT, method_release,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Shutdown", NULL, NULL, method_shutdown, 0),
        SD_BUS_VTABLE_END
};

/* --- actors ------------------------------------------------------------------------------------ */

/* An actor that lives on a peer, as this node shows it: the actor interface over what the cluster
 * knows of it (Id, Node, State, DeathCause; Call and Kill go to its node), the rest that of an empty
 * actor. sd-bus uses what actor_find() returns only within the message it dispatches, so one view,
 * refilled by each lookup, serves them all. */
static struct {
        Actor actor;
        char node[KACTOR_ID_STRING_MAX];
        char path[sizeof(KACTOR_BUS_ACTOR_PREFIX "/") + KACTOR_ID_STRING_MAX];
} bus_remote_actor;

static bool bus_actor_is_remote(const Actor *a) {
        return a == &bus_remote_actor.actor;
}

static Actor *bus_remote_actor_find(Manager *m, kactor_id id) {
        RemoteActorView view;
        if (cluster_hooks_actor_view(m, id, &view) < 0)
                return NULL;

        Actor *a = &bus_remote_actor.actor;
        free(a->death_cause);
        *a = (Actor) {
                .manager = m,
                .id = id,
                .path = bus_remote_actor.path,
                .state = view.state,
                .death_cause = view.death_cause ? strdup(view.death_cause) : NULL,
                .max_restarts = -1,
        };
        kactor_id_to_string(id, a->id_string);
        (void) snprintf(bus_remote_actor.path, sizeof(bus_remote_actor.path), "%s/%s", KACTOR_BUS_ACTOR_PREFIX,
                        a->id_string);
        memcpy(bus_remote_actor.node, view.node, sizeof(view.node));
        return a;
}

static int actor_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error) {
        Manager *m = userdata;
        kactor_type t;
        kactor_id id;

        if (bus_path_parse(path, &t, &id) < 0 || t != KACTOR_TYPE_ACTOR)
                return 0;
        Actor *a = manager_find_actor(m, id) ?: bus_remote_actor_find(m, id);
        if (!a)
                return 0;
        *found = a;
        return 1;
}

static int actor_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        size_t n = HASH_CNT(hh, m->actors), k = 0;
        char **v = calloc(n + 1, sizeof(char *));
        Actor *a, *tmp;

        if (!v)
                return -ENOMEM;
        HASH_ITER(hh, m->actors, a, tmp) {
                v[k] = strdup(a->path);
                if (!v[k]) {
                        for (size_t i = 0; i < k; i++)
                                free(v[i]);
                        free(v);
                        return -ENOMEM;
                }
                k++;
        }
        *nodes = v;
        return 0;
}

static int method_actor_call(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uid_t uid;
        int access_r = manager_bus_check_access(msg, ((Actor *) userdata)->manager, &uid, error);
        if (access_r < 0)
                return access_r;
        Actor *a = userdata;
        Manager *m = a->manager;
        const char *method;
        _cleanup_free_ char *args = NULL;
        size_t args_len;
        ReqError e = {};
        Object *o;
        int r;

        r = sd_bus_message_read(msg, "s", &method);
        if (r < 0)
                return r;
        r = bus_read_args(m, msg, &args, &args_len, error);
        if (r < 0)
                return r;
        /* A peer's actor: its node decides, the refusal lands in the result. */
        if (!bus_actor_is_remote(a)) {
                r = access_check_actor(m, a, uid, ACCESS_CALL, &e);
                if (r < 0)
                        return bus_reply_req_error(error, r, &e);
        }
        if (a->state == ACTOR_DEAD)
                return sd_bus_error_setf(error, "io.kactor.Error.ActorDied", "Actor %s died: %s", a->id_string,
                                         a->death_cause ?: "unknown cause");
        r = actor_submit_call(m, a->id, manager_new_local_id(m), method, strlen(method), args, args_len, uid, &o, &e);
        if (r < 0)
                return bus_reply_req_error(error, r, &e);
        persist_bus_request(m, o, NULL, a->id, method, 0, args, args_len);
        return bus_reply_object(m, msg, o);
}

/* BusPolkitAction: kills the actor at msg's path, found again (it may have gone meanwhile). */
static int bus_actor_kill(sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        kactor_type t;
        kactor_id id;
        uid_t uid;
        int no_restart;
        int r = sd_bus_message_read(msg, "b", &no_restart);
        if (r < 0)
                return r;
        Actor *a = NULL;
        if (bus_path_parse(sd_bus_message_get_path(msg), &t, &id) >= 0 && t == KACTOR_TYPE_ACTOR)
                a = manager_find_actor(m, id) ?: bus_remote_actor_find(m, id);
        if (!a)
                return sd_bus_error_setf(error, "io.kactor.Error.NoSuchActor", "No actor at %s.",
                                         sd_bus_message_get_path(msg));
        if (bus_actor_is_remote(a))
                r = bus_sender_uid(msg, &uid) < 0 ? -EACCES : cluster_hooks_kill_actor(a->manager, a->id, uid, no_restart);
        else
                r = bus_sender_uid(msg, &uid) < 0 ? -EACCES : actor_kill_by_request(a, no_restart, uid);
        if (r < 0)
                return sd_bus_error_setf(error, "io.kactor.Error.NoSuchActor", "Cannot reach actor %s: %s", a->id_string,
                                         strerror(-r));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_actor_kill(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        Manager *m = a->manager;
        uid_t uid;
        int r = manager_bus_check_access(msg, m, &uid, error);
        if (r < 0)
                return r;
        /* Its owner may; another user only as an administrator, which polkit decides. A peer's actor
         * is its node's to judge: the owner is known there. */
        ReqError e = {};
        if (bus_actor_is_remote(a) || access_check_actor(m, a, uid, ACCESS_MANAGE, &e) >= 0)
                return bus_actor_kill(msg, m, error);
        req_error_done(&e);
        return bus_polkit_run(manager_bus_polkit(m), m, msg, BUS_POLKIT_MANAGE_ACTORS, "kill another user's actor",
                              bus_actor_kill, error);
}

static int property_get_actor_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        const char *v = "";
        if (streq(property, "Id"))
                v = a->id_string;
        else if (streq(property, "Name"))
                v = a->name ?: "";
        else if (streq(property, "Module"))
                v = a->module ?: "";
        else if (streq(property, "Class"))
                v = a->class_name ?: "";
        else if (streq(property, "State"))
                v = actor_state_to_string(a->state);
        else if (streq(property, "Node"))
                v = bus_actor_is_remote(a) ? bus_remote_actor.node : a->manager->node_id;
        else if (streq(property, "DeathCause"))
                v = a->death_cause ?: "";
        return sd_bus_message_append(reply, "s", v);
}

static int property_get_actor_pid(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) (a->worker && !a->worker->exited ? a->worker->pid : 0));
}

static int property_get_actor_gpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        /* A dead actor's GPUs have gone back to the pool. */
        return sd_bus_message_append_array(reply, 'u', a->gpus, a->n_gpus * sizeof(uint32_t));
}

static int property_get_actor_cgroup(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        /* Set once the backend has placed the worker; the scope is empty without systemd. */
        return sd_bus_message_append(reply, "s", (streq(property, "Unit") ? a->unit : a->control_group) ?: "");
}

static int property_get_actor_user(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) a->run_uid);
}

static int property_get_actor_owner(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        if (streq(property, "Owner"))
                return sd_bus_message_append(reply, "u", (uint32_t) a->uid);
        if (streq(property, "AllowUsers"))
                return sd_bus_message_append_array(reply, 'u', a->allow_users, a->n_allow_users * sizeof(uid_t));
        return sd_bus_message_append_array(reply, 'u', a->allow_groups, a->n_allow_groups * sizeof(gid_t));
}

static int property_get_actor_detached(sd_bus *bus, const char *path, const char *interface,
                                       const char *property, sd_bus_message *reply, void *userdata,
                                       sd_bus_error *error) {
        Actor *a = userdata;
        return sd_bus_message_append(reply, "b", a->detached);
}

static int property_get_actor_lineage(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        if (streq(property, "LineageLength"))
                return sd_bus_message_append(reply, "t", (uint64_t) lineage_size(&a->lineage));
        return sd_bus_message_append(reply, "t", (uint64_t) (a->lineage.bytes + a->lineage.checkpoint_len));
}

static int property_get_actor_replicas(sd_bus *bus, const char *path, const char *interface, const char *property,
                                       sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Actor *a = userdata;
        _cleanup_strv_free_ char **v = NULL;
        int r = cluster_hooks_actor_replicas(a, &v);
        if (r < 0)
                return r;
        return sd_bus_message_append_strv(reply, v);
}

static const sd_bus_vtable actor_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", property_get_actor_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", property_get_actor_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Module", "s", property_get_actor_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Class", "s", property_get_actor_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_actor_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Node", "s", property_get_actor_string, 0, 0),
        SD_BUS_PROPERTY("Pid", "u", property_get_actor_pid, 0, 0),
        SD_BUS_PROPERTY("GpuIds", "au", property_get_actor_gpus, 0, 0),
        SD_BUS_PROPERTY("Unit", "s", property_get_actor_cgroup, 0, 0),
        SD_BUS_PROPERTY("ControlGroup", "s", property_get_actor_cgroup, 0, 0),
        SD_BUS_PROPERTY("User", "u", property_get_actor_user, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Owner", "u", property_get_actor_owner, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AllowUsers", "au", property_get_actor_owner, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AllowGroups", "au", property_get_actor_owner, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TasksMax", "t", NULL, offsetof(Actor, tasks_max), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Restarts", "u", NULL, offsetof(Actor, restarts), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxRestarts", "i", NULL, offsetof(Actor, max_restarts), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Detached", "b", property_get_actor_detached, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("NumCpus", "d", NULL, offsetof(Actor, num_cpus), 0),
        SD_BUS_PROPERTY("MemoryMax", "t", NULL, offsetof(Actor, memory_max), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CallsSubmitted", "t", NULL, offsetof(Actor, calls_submitted), 0),
        SD_BUS_PROPERTY("CallsCompleted", "t", NULL, offsetof(Actor, calls_completed), 0),
        SD_BUS_PROPERTY("CallsDirect", "t", NULL, offsetof(Actor, calls_direct), 0),
        SD_BUS_PROPERTY("DeathCause", "s", property_get_actor_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LineageLength", "t", property_get_actor_lineage, 0, 0),
        SD_BUS_PROPERTY("LineageBytes", "t", property_get_actor_lineage, 0, 0),
        SD_BUS_PROPERTY("CheckpointIndex", "t", NULL, offsetof(Actor, lineage.checkpoint_index), 0),
        SD_BUS_PROPERTY("CheckpointInterval", "u", NULL, offsetof(Actor, checkpoint_interval), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Replicas", "as", property_get_actor_replicas, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Call", SD_BUS_ARGS("s", method, "av", args), SD_BUS_RESULT("o", object),
                                method_actor_call, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Kill", SD_BUS_ARGS("b", no_restart), SD_BUS_NO_RESULT, method_actor_kill,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

/* --- objects ----------------------------------------------------------------------------------- */

static int object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        Manager *m = userdata;
        kactor_type t;
        kactor_id id;

        if (bus_path_parse(path, &t, &id) < 0 || t != KACTOR_TYPE_OBJECT)
                return 0;
        /* Another user's object was answered AccessDenied before: bus_unknown_path(). */
        Object *o = manager_find_object(m, id);
        if (!o)
                return 0;
        *found = o;
        return 1;
}

/* Runs before the vtables on every call under the actor and object prefixes: a path that names no
 * actor (no object, or another user's object) is answered with io.kactor.Error.NoSuchActor
 * (NoSuchObject, AccessDenied) rather than sd-bus's UnknownObject, for methods and properties alike.
 * Introspection and Peer keep sd-bus's answers. */
static int bus_unknown_path(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *path = sd_bus_message_get_path(msg), *iface = sd_bus_message_get_interface(msg);
        kactor_type t;
        kactor_id id;
        uid_t uid = (uid_t) -1;

        if (!sd_bus_message_is_method_call(msg, NULL, NULL) || !path ||
            streq_ptr(iface, "org.freedesktop.DBus.Introspectable") || streq_ptr(iface, "org.freedesktop.DBus.Peer"))
                return 0;
        if (bus_path_parse(path, &t, &id) < 0)
                return sd_bus_reply_method_errorf(msg, "io.kactor.Error.NoSuchActor", "%s names no actor or object.", path);
        if (t == KACTOR_TYPE_ACTOR) {
                Actor *a = manager_find_actor(m, id);
                if (a) {
                        /* Its direct calls' records first: what is shown counts the calls made. */
                        manager_read_direct_records(m, a);
                        return 0;
                }
                if (bus_remote_actor_find(m, id))
                        return 0;
                return sd_bus_reply_method_errorf(msg, "io.kactor.Error.NoSuchActor",
                                                  "No actor %s on this node (never made, or forgotten since it died).",
                                                  path + strlen(KACTOR_BUS_ACTOR_PREFIX "/"));
        }
        Object *o = manager_find_object(m, id);
        if (!o)
                return sd_bus_reply_method_errorf(msg, "io.kactor.Error.NoSuchObject",
                                                  "No object %s (never made, or released).",
                                                  path + strlen(KACTOR_BUS_OBJECT_PREFIX "/"));
        if (bus_sender_uid(msg, &uid) < 0 || !access_object_allowed(o, uid)) {
                ReqError e = {};
                (void) access_check_object(m, o, uid, &e);
                int r = sd_bus_reply_method_errorf(msg, "io.kactor.Error.AccessDenied", "%s",
                                                   e.message ?: "another user's object");
                req_error_done(&e);
                return r;
        }
        return 0;
}

static int property_get_object(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Object *o = userdata;
        if (streq(property, "Id")) {
                char s[KACTOR_ID_STRING_MAX];
                kactor_id_to_string(o->id, s);
                return sd_bus_message_append(reply, "s", s);
        }
        if (streq(property, "State"))
                return sd_bus_message_append(reply, "s", object_state_to_string(o->state));
        if (streq(property, "Error"))
                return sd_bus_message_append(reply, "s", o->state == OBJECT_FAILED ? kactor_error_name(o->error) ?: "" : "");
        if (streq(property, "ErrorMessage"))
                return sd_bus_message_append(reply, "s", o->state == OBJECT_FAILED ? o->message ?: "" : "");
        if (streq(property, "Owner"))
                return sd_bus_message_append(reply, "u", (uint32_t) o->uid);
        return sd_bus_message_append(reply, "t", (uint64_t) (o->state == OBJECT_READY ? o->len : 0));
}

static const sd_bus_vtable object_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", property_get_object, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_object, 0, 0),
        SD_BUS_PROPERTY("Error", "s", property_get_object, 0, 0),
        SD_BUS_PROPERTY("ErrorMessage", "s", property_get_object, 0, 0),
        SD_BUS_PROPERTY("Size", "t", property_get_object, 0, 0),
        SD_BUS_PROPERTY("Owner", "u", property_get_object, 0, 0),
        SD_BUS_VTABLE_END
};

/* --- set-up and signals -------------------------------------------------------------------------- */

static void bus_send_actor_changes(ManagerBus *b, Actor *a, unsigned changes) {
        if (changes & ACTOR_CHANGE_ADDED) {
                /* InterfacesAdded carries every property as it is now: nothing else to say. */
                a->bus_announced = true;
                (void) sd_bus_emit_interfaces_added(b->bus, a->path, KACTOR_BUS_ACTOR_INTERFACE, NULL);
                return;
        }
        if (!a->bus_announced)
                return;

        /* One signal for what changed in this iteration, in a fixed order. */
        const char *names[4];
        size_t n = 0;
        if (changes & ACTOR_CHANGE_STATE)
                names[n++] = "State";
        if (changes & ACTOR_CHANGE_DEATH_CAUSE)
                names[n++] = "DeathCause";
        if (changes & ACTOR_CHANGE_RESTARTS)
                names[n++] = "Restarts";
        names[n] = NULL;
        if (n > 0)
                (void) sd_bus_emit_properties_changed_strv(b->bus, a->path, KACTOR_BUS_ACTOR_INTERFACE,
                                                           (char **) names);
        /* Apart: GpuIds does not announce its changes in the interface, so sd-bus refuses the signal, and
         * must not take the others with it. */
        if (changes & ACTOR_CHANGE_GPU_IDS)
                (void) sd_bus_emit_properties_changed(b->bus, a->path, KACTOR_BUS_ACTOR_INTERFACE, "GpuIds",
                                                      NULL);
}

/* Sends what the core queued since the last iteration. Actors that went come first: a path that went
 * and came back in one iteration (an actor rebuilt here) ends up present. While the bus is away the
 * queue is drained all the same: the new connection announces everything as it is then. */
static void bus_flush(Manager *m) {
        ManagerBus *b = m->bus_userdata;
        Actor *a;

        for (char **p = m->bus_removed; b->bus && p && *p; p++)
                (void) sd_bus_emit_interfaces_removed(b->bus, *p, KACTOR_BUS_ACTOR_INTERFACE, NULL);
        m->bus_removed = strv_free(m->bus_removed);

        while ((a = TAILQ_FIRST(&m->bus_queue))) {
                unsigned changes = a->bus_changes;

                TAILQ_REMOVE(&m->bus_queue, a, bus_link);
                a->bus_changes = 0;
                if (b->bus)
                        bus_send_actor_changes(b, a, changes);
                if (a->state == ACTOR_DEAD) {
                        /* A dead actor has no owner to wait for (and its id may come back, rebuilt). */
                        BusOwner *o;
                        HASH_FIND(hh, b->owners, &a->id, sizeof(a->id), o);
                        if (o)
                                bus_owner_free(o, true);
                }
        }

        if (m->resources_changed) {
                m->resources_changed = false;
                if (b->bus)
                        (void) sd_bus_emit_properties_changed(b->bus, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE,
                                                              "FreeGpus", "FreeCpus", "Actors", NULL);
        }
        if (m->peers_changed) {
                m->peers_changed = false;
                if (b->bus)
                        (void) sd_bus_emit_properties_changed(b->bus, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE,
                                                              "Peers", NULL);
        }
}

/* A new connection tells its clients what is there: every actor (InterfacesAdded, at the path it had)
 * and the manager's changing properties. */
static void bus_announce_all(ManagerBus *b) {
        Manager *m = b->manager;
        Actor *a, *tmp;

        HASH_ITER(hh, m->actors, a, tmp) {
                a->bus_announced = true;
                (void) sd_bus_emit_interfaces_added(b->bus, a->path, KACTOR_BUS_ACTOR_INTERFACE, NULL);
        }
        (void) sd_bus_emit_properties_changed(b->bus, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE, "FreeGpus", "FreeCpus",
                                              "Actors", "Peers", NULL);
}

/* Lets go of the connection and of what lived on it. Its clients are gone with it: the owners of
 * Detached=false actors let go of their references, as when an owner disconnects, and Get and Wait
 * requests are dropped unanswered (there is no one to answer). */
static void bus_drop_connection(ManagerBus *b) {
        BusOwner *o, *tmp;
        BusGet *bg;

        HASH_ITER(hh, b->owners, o, tmp)
                bus_owner_free(o, true);
        while ((bg = LIST_FIRST(&b->gets)))
                get_request_free(bg->get); /* frees bg through bus_get_done() */
        bus_polkit_done(&b->polkit);
        /* Inside a dispatch of this connection sd-bus holds its own reference until it returns. */
        b->bus = sd_bus_close_unref(b->bus);
}

static int bus_connect(ManagerBus *b, bool first, const char **ret_failed);

static int bus_reconnect_later(ManagerBus *b) {
        int r = sd_event_source_set_time_relative(b->reconnect_timer, b->reconnect_delay);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(b->reconnect_timer, SD_EVENT_ONESHOT);
}

static int on_reconnect(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerBus *b = userdata;
        const char *failed = NULL;
        int r;

        b->reconnect_attempts++;
        r = bus_connect(b, false, &failed);
        if (r < 0) {
                /* Expected while the bus restarts: the series was announced when the bus went. */
                log_full_errno(LOG_DEBUG, r, "Reconnecting to the bus, attempt %u: failed to %s: %m",
                               b->reconnect_attempts, failed);
                b->reconnect_delay = MIN(b->reconnect_delay * 2, BUS_RECONNECT_MAX_USEC);
                r = bus_reconnect_later(b);
                if (r < 0)
                        log_error_errno(r, "Failed to schedule reconnecting to the bus, D-Bus is off: %m");
                return 0;
        }
        log_info("Connected to the bus %s again (attempt %u), requesting %s.", b->address ?: "(system)",
                 b->reconnect_attempts, KACTOR_BUS_NAME);
        bus_announce_all(b);
        return 0;
}

static int on_bus_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        ManagerBus *b = userdata;
        int r;

        if (sd_bus_message_get_bus(msg) != b->bus)
                return 0;
        log_warning("Lost the connection to the bus %s; native clients and actors go on, reconnecting.",
                    b->address ?: "(system)");
        bus_drop_connection(b);
        b->reconnect_attempts = 0;
        b->reconnect_delay = BUS_RECONNECT_FIRST_USEC;
        r = bus_reconnect_later(b);
        if (r < 0)
                log_error_errno(r, "Failed to schedule reconnecting to the bus, D-Bus is off: %m");
        return 0;
}

static int on_name_requested(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t ret = 0;

        if (sd_bus_is_open(sd_bus_message_get_bus(reply)) <= 0)
                return 0; /* gone again: the next connection asks again */
        if (e) {
                log_error("Failed to acquire the name %s again: %s", KACTOR_BUS_NAME, e->message ?: e->name);
                return 0;
        }
        if (sd_bus_message_read(reply, "u", &ret) < 0 || (ret != 1 && ret != 4))
                /* 1: primary owner, 4: already owner; anything else: someone took it meanwhile. */
                log_error("Another node manager serves %s on this bus now: actors stay reachable only at "
                          "this connection's unique name.", KACTOR_BUS_NAME);
        else
                log_info("Serving %s again.", KACTOR_BUS_NAME);
        return 0;
}

/* Opens a connection and serves everything on it: the manager, its actors and objects (a fallback
 * vtable and node enumerator each), the ObjectManager, the other files' interfaces, and the name.
 * The first connection takes the name synchronously, so that a name already taken stops the start;
 * a later one asks asynchronously. On failure the connection is dropped and *ret_failed names the
 * step; returns a negative errno. */
static int bus_connect(ManagerBus *b, bool first, const char **ret_failed) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        Manager *m = b->manager;
        int r;

        *ret_failed = "connect";
        if (b->address) {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, b->address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_negotiate_creds(bus, true, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UNIQUE_NAME);
                if (r >= 0)
                        r = sd_bus_start(bus);
        } else
                r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;

        *ret_failed = "add the manager object";
        r = sd_bus_add_object_vtable(bus, NULL, KACTOR_BUS_PATH, KACTOR_BUS_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        *ret_failed = "add the actor objects";
        r = sd_bus_add_fallback_vtable(bus, NULL, KACTOR_BUS_ACTOR_PREFIX, KACTOR_BUS_ACTOR_INTERFACE, actor_vtable,
                                       actor_find, m);
        if (r < 0)
                return r;
        *ret_failed = "add the actor enumerator";
        r = sd_bus_add_node_enumerator(bus, NULL, KACTOR_BUS_ACTOR_PREFIX, actor_enumerate, m);
        if (r < 0)
                return r;
        *ret_failed = "add the object objects";
        r = sd_bus_add_fallback_vtable(bus, NULL, KACTOR_BUS_OBJECT_PREFIX, KACTOR_BUS_OBJECT_INTERFACE,
                                       object_vtable, object_find, m);
        if (r < 0)
                return r;
        *ret_failed = "add the answer for unknown actors and objects";
        r = sd_bus_add_fallback(bus, NULL, KACTOR_BUS_ACTOR_PREFIX, bus_unknown_path, m);
        if (r >= 0)
                r = sd_bus_add_fallback(bus, NULL, KACTOR_BUS_OBJECT_PREFIX, bus_unknown_path, m);
        if (r < 0)
                return r;
        *ret_failed = "add the object manager";
        r = sd_bus_add_object_manager(bus, NULL, KACTOR_BUS_PATH);
        if (r < 0)
                return r;
        *ret_failed = "add an interface of the manager object";
        for (size_t i = 0; i < b->n_extra; i++) {
                r = sd_bus_add_object_vtable(bus, NULL, KACTOR_BUS_PATH, b->extra[i].interface, b->extra[i].vtable,
                                             m);
                if (r < 0)
                        return r;
        }
        /* A local match: the bus going away (sd-bus never ends the event loop for it, as
         * sd_bus_set_exit_on_disconnect() is off). */
        *ret_failed = "watch for the bus going away";
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_bus_disconnected, b);
        if (r < 0)
                return r;

        *ret_failed = "acquire the name " KACTOR_BUS_NAME;
        if (first)
                r = sd_bus_request_name(bus, KACTOR_BUS_NAME, 0);
        else
                r = sd_bus_request_name_async(bus, NULL, KACTOR_BUS_NAME, 0, on_name_requested, b);
        if (r < 0)
                return r;
        *ret_failed = "attach the bus to the event loop";
        r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        b->bus = TAKE_PTR(bus);
        return 0;
}

static void manager_bus_free(Manager *m) {
        ManagerBus *b = m->bus_userdata;
        BusOwner *o, *tmp;

        if (!b)
                return;
        /* The actors are gone already: their owners' references went with them. */
        HASH_ITER(hh, b->owners, o, tmp)
                bus_owner_free(o, false);
        bus_polkit_done(&b->polkit);
        sd_event_source_disable_unref(b->reconnect_timer);
        sd_bus_flush_close_unref(b->bus);
        free(b->address);
        free(b);
        m->bus_userdata = NULL;
        m->bus_flush = NULL;
        m->bus_free = NULL;
}

BusPolkit *manager_bus_polkit(Manager *m) {
        ManagerBus *b = m->bus_userdata;
        return b ? &b->polkit : NULL;
}

sd_bus *manager_bus_get(Manager *m) {
        ManagerBus *b = m->bus_userdata;
        return b ? b->bus : NULL;
}

int manager_bus_add_vtable(Manager *m, const char *interface, const sd_bus_vtable *vtable) {
        ManagerBus *b = m->bus_userdata;
        int r;

        if (!b || !b->bus)
                return -ENOTCONN;
        if (b->n_extra >= BUS_EXTRA_VTABLES_MAX)
                return -E2BIG;
        r = sd_bus_add_object_vtable(b->bus, NULL, KACTOR_BUS_PATH, interface, vtable, m);
        if (r < 0)
                return r;
        b->extra[b->n_extra++] = (BusExtraVtable) { .interface = interface, .vtable = vtable };
        return 0;
}

int manager_bus_setup(Manager *m, const char *address) {
        const char *failed = NULL;
        ManagerBus *b;
        int r;

        b = calloc(1, sizeof(ManagerBus));
        if (!b)
                return log_error_errno(-ENOMEM, "Failed to set up the bus: %m");
        /* The manager frees it from now on, whatever happens below. */
        *b = (ManagerBus) { .manager = m };
        LIST_INIT(&b->gets);
        m->bus_userdata = b;
        m->bus_free = manager_bus_free;
        if (address) {
                b->address = strdup(address);
                if (!b->address)
                        return log_error_errno(-ENOMEM, "Failed to set up the bus: %m");
        }
        /* Off until the bus goes away. */
        r = sd_event_add_time_relative(m->event, &b->reconnect_timer, CLOCK_MONOTONIC, 0, 0, on_reconnect, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->reconnect_timer, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to add the bus reconnect timer: %m");
        r = bus_connect(b, true, &failed);
        if (r == -EEXIST)
                return log_error_errno(r, "Another node manager serves %s on this bus.", KACTOR_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to %s on the bus %s: %m", failed, b->address ?: "(system)");
        m->bus_flush = bus_flush;
        bus_restore_owners(b);
        return 0;
}
