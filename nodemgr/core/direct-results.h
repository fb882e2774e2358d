/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The results of direct calls, kept for their callers without an object each. A direct call's
 * caller has its answer from the worker; the node manager keeps the value only for whoever else may
 * name it later (a Get, an argument, a D-Bus Get) and for the next node manager. A small value that
 * names nothing is kept in a table of the caller's connection, by its id's sequence number (a slot
 * of a power-of-two array: no hashing, and a batch's results side by side), until the caller
 * releases it; anything that looks the id up in the object store (objstore_find()) turns it into an
 * object then, owned by the caller as if it had been one from the start. The journal has the same
 * record for it as for an object, and ObjectStoreBytes counts it. "Small" is what an object keeps in
 * its own record and never evicts (Object.inline_data): the store's memory limit is enforced as
 * before. Results that do not fit (larger, naming objects or actors, a slot taken by an older result
 * still held) are objects at once.
 */

#include <stdbool.h>
#include <stdint.h>

#include "core-forward.h"
#include "kactor/value.h"

/* At most this many bytes of value are kept in a slot (as an object keeps them in its own record,
 * not evictable); larger results are objects. */
#define DIRECT_RESULT_MAX 16
/* The table of one caller grows to at most this many slots. */
#define DIRECT_RESULTS_SLOTS_MAX 65536

struct DirectResult {
        uint64_t lo; /* the id's low half (prefix | seq); 0: a free slot */
        uint16_t error; /* kactor_error: KACTOR_OK for a value */
        uint8_t len;
        bool persisted; /* its J_OBJECT record is in the journal */
        char *message;  /* failed: the error's text */
        char data[DIRECT_RESULT_MAX];
};

struct DirectResults {
        DirectResult *slots; /* slot of an id: its seq modulo n_slots */
        size_t n_slots;      /* a power of two */
        size_t n;
};

/* Keeps the result of direct call lo for its caller c (data: a value its frame's parse checked): 1
 * when kept, 0 when it is not one to keep here (the caller makes an object of it), or -ENOMEM. */
int direct_results_put(Manager *m, Conn *c, uint64_t lo, kactor_error code, const char *message, const char *data,
                       size_t len);
/* The caller c released id lo: true when it was kept here (and is gone now). */
bool direct_results_release(Manager *m, Conn *c, uint64_t lo);
/* The object of a result kept here, made now and owned by its caller (ObjectStoreOps.find_elsewhere),
 * or NULL. */
Object *direct_results_take(Manager *m, kactor_id id);
/* The caller c closed: what it kept goes. */
void direct_results_free_all(Manager *m, Conn *c);
