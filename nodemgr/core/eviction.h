/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* eviction.c: keeps the object store within its memory by evicting values that can be had
 * again. */

#include <stdint.h>

#include "core-forward.h"
#include "kactor/value.h"

void eviction_setup(Manager *m, uint64_t max_bytes);
/* Records how an object can be had again once evicted. */
void eviction_note_put(Manager *m, Object *o);
void eviction_note_task(Manager *m, Object *o, const Call *c);
void eviction_note_actor_call(Manager *m, Object *o, kactor_id actor, uint64_t index);
