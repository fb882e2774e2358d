/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "bus-value.h"
#include "codec.h"
#include "kactorctl-properties.h"
#include "kactorctl-util.h"
#include "macro.h"

#define BUS_OBJECT_MANAGER_INTERFACE "org.freedesktop.DBus.ObjectManager"

int bus_read_properties(sd_bus_message *m, const PropertyMap *map, void *userdata) {
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

int properties_to_value(const PropertyMap *map, const void *userdata, kactor_value *v) {
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

const PropertyMap manager_properties[] = {
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

void manager_info_done(ManagerInfo *info) {
        free(info->node_id);
        free(info->version);
        uint_array_done(&info->gpus);
        uint_array_done(&info->free_gpus);
}

const PropertyMap actor_properties[] = {
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
        { "CallsDirect", "calls_direct", "t", offsetof(ActorInfo, calls_direct) },
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

bool actor_info_is_dead(const ActorInfo *a) {
        return streq_ptr(a->state, "dead");
}

void actor_list_done(ActorList *l) {
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
        l->items[l->n] = (ActorInfo){};
        return &l->items[l->n++];
}

static int actor_info_compare(const void *a, const void *b) {
        const ActorInfo *x = a, *y = b;
        /* Ids start with the node and grow with each actor it makes: this is creation order. */
        return strcmp(x->id ?: "", y->id ?: "");
}

int bus_list_actors(sd_bus *bus, ActorList *ret) {
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

char *uint_array_to_string(const UintArray *a, const char *separator) {
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
