/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* access.c: who may use the node manager. */

#include <stdbool.h>
#include <sys/types.h>

#include "core-forward.h"

int access_setup(Manager *m, const char *group);
void access_done(Manager *m);
/* 0 when uid may use the node manager; -EREMOTEIO with AccessDenied in e otherwise. */
int access_check(Manager *m, uid_t uid, ReqError *e);

/* Rights on an actor: calling it (and looking it up by name), or managing it (killing it). */
typedef enum AccessRight {
        ACCESS_CALL,
        ACCESS_MANAGE,
} AccessRight;

/* Root and the node manager's own user: they may act on every actor and object. */
bool access_is_admin(uid_t uid);
/* 0 when uid may use the right on actor a: its owner, an admin, and for ACCESS_CALL the users and
 * group members the actor was shared with (AllowUsers=, AllowGroups=). -EREMOTEIO with
 * AccessDenied in e otherwise. */
int access_check_actor(Manager *m, const Actor *a, uid_t uid, AccessRight right, ReqError *e);
/* 0 when uid may read, wait on or release object o: its owner (who made it, or called for it) or
 * an admin. A copy fetched from a peer whose owner is not told (still pending, or failed there)
 * passes; its value comes with its owner, and requests check again then (get_request_denied(),
 * call_resolve_args()). */
int access_check_object(Manager *m, const Object *o, uid_t uid, ReqError *e);
bool access_object_allowed(const Object *o, uid_t uid);
/* Resolves an AllowUsers/AllowGroups entry (a name, or a number) for the create request. */
int access_parse_user(const char *s, uid_t *ret);
int access_parse_group(const char *s, gid_t *ret);
