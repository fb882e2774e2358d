/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The node's and its actors' D-Bus properties read into structs (status, list, top and completion
 * use them), and written back out as kactor values for JSON. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include <kactor/value.h>

typedef struct UintArray {
        uint32_t *items;
        size_t n;
} UintArray;

/* The items joined by separator, "" when there are none. NULL when out of memory. */
char *uint_array_to_string(const UintArray *a, const char *separator);

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
int bus_read_properties(sd_bus_message *m, const PropertyMap *map, void *userdata);
/* Adds the mapped fields of the struct at userdata to the map value, under their JSON keys. */
int properties_to_value(const PropertyMap *map, const void *userdata, kactor_value *v);

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

extern const PropertyMap manager_properties[];
void manager_info_done(ManagerInfo *info);

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
        uint64_t calls_direct;
        char *death_cause;
        uint32_t owner;
        UintArray allow_users;
        UintArray allow_groups;
} ActorInfo;

extern const PropertyMap actor_properties[];

/* Whether the actor is dead (as list and top hide them without --all). */
bool actor_info_is_dead(const ActorInfo *a);

typedef struct ActorList {
        ActorInfo *items;
        size_t n;
        size_t allocated;
} ActorList;

void actor_list_done(ActorList *l);

/* Every actor on the bus, with its properties, from one GetManagedObjects call, in the order they
 * were created. Returns 0, or a negative errno after saying why. */
int bus_list_actors(sd_bus *bus, ActorList *ret);
