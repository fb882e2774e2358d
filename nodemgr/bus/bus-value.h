/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * kactor values <-> D-Bus.
 *
 *   D-Bus -> kactor: b -> bool; y n q i u x -> int; t -> int (above INT64_MAX: -ERANGE); d -> double;
 *   s -> string; ay -> bytes; o -> an object reference or an actor handle (resolve() decides);
 *   av and other arrays -> list; a{sv} / a{s*} -> map; v -> its content; (...) structs -> list;
 *   g "" -> nil. h (fds) and other signatures -> -EINVAL.
 *   kactor -> D-Bus (always inside a variant): nil -> g ""; bool b; int x; double d; string s;
 *   bytes ay; list av; map a{sv}; object -> o /io/kactor/NodeManager1/object/<id>;
 *   actor -> o /io/kactor/NodeManager1/actor/<id>. Error values are not data: -EINVAL.
 */

#include <systemd/sd-bus.h>

#include "kactor/value.h"

#define KACTOR_BUS_NAME "io.kactor.NodeManager1"
#define KACTOR_BUS_PATH "/io/kactor/NodeManager1"
#define KACTOR_BUS_INTERFACE "io.kactor.NodeManager1"
#define KACTOR_BUS_ACTOR_INTERFACE "io.kactor.Actor1"
#define KACTOR_BUS_ACTOR_PREFIX "/io/kactor/NodeManager1/actor"
#define KACTOR_BUS_OBJECT_PREFIX "/io/kactor/NodeManager1/object"

/* Decides what an object path argument names: returns 0 and sets *ret_type to KACTOR_TYPE_ACTOR or
 * KACTOR_TYPE_OBJECT and *ret_id, or a negative errno (-ENOENT: names nothing known). */
typedef int (*bus_path_resolve_fn)(const char *path, kactor_type *ret_type, kactor_id *ret_id, void *userdata);

/* Reads one complete value of the next type in m (any signature above). With resolve NULL, paths
 * are parsed by their prefix alone (…/actor/<id> or …/object/<id>). */
int bus_message_read_value(sd_bus_message *m, bus_path_resolve_fn resolve, void *userdata, kactor_value **ret);

/* Reads an "av" into a list value. */
int bus_message_read_value_list(sd_bus_message *m, bus_path_resolve_fn resolve, void *userdata,
                                kactor_value **ret);

/* Appends v as a variant ("v"). */
int bus_message_append_value(sd_bus_message *m, const kactor_value *v);

/* Object paths for ids; return malloc'd strings (NULL when out of memory). */
char *bus_actor_path(kactor_id id);
char *bus_object_path(kactor_id id);
/* Parses …/actor/<id> or …/object/<id>: returns 0 and the type and id, or -EINVAL. */
int bus_path_parse(const char *path, kactor_type *ret_type, kactor_id *ret_id);
