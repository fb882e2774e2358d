/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "bus-polkit.h"
#include "log.h"
#include "macro.h"

struct BusPolkitQuery {
        BusPolkit *polkit;
        Manager *manager;
        sd_bus_message *msg;  /* the caller's request, answered when polkit has */
        sd_bus_slot *slot;    /* the CheckAuthorization call */
        char *action_id;
        char *what;
        BusPolkitAction act;
        LIST_ENTRY(BusPolkitQuery) link;
};

static BusPolkitQuery *bus_polkit_query_free(BusPolkitQuery *q) {
        if (!q)
                return NULL;
        LIST_REMOVE(q, link);
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->msg);
        free(q->action_id);
        free(q->what);
        free(q);
        return NULL;
}

static int bus_polkit_act(BusPolkitAction act, sd_bus_message *msg, Manager *m, sd_bus_error *error) {
        int r = sd_bus_message_rewind(msg, true);
        if (r < 0)
                return r;
        return act(msg, m, error);
}

static int bus_polkit_deny(sd_bus_message *msg, const char *what, const char *why) {
        uid_t uid = (uid_t) -1;
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        if (sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds) >= 0)
                (void) sd_bus_creds_get_euid(creds, &uid);
        return sd_bus_reply_method_errorf(msg, "io.kactor.Error.AccessDenied", "User %u may not %s: %s.",
                                          (unsigned) uid, what, why);
}

static int on_check_authorization(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusPolkitQuery *q = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int authorized = 0, challenge = 0, r;

        const sd_bus_error *e = sd_bus_message_get_error(reply);
        if (e) {
                bool absent = sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER);
                if (!absent)
                        log_warning("polkit could not decide %s: %s", q->action_id, e->message ?: e->name);
                (void) bus_polkit_deny(q->msg, q->what,
                                       absent ? "polkit is not running here, and only root may"
                                              : "polkit could not decide");
                bus_polkit_query_free(q);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                log_warning_errno(r, "polkit answered %s with a malformed reply: %m", q->action_id);
                (void) bus_polkit_deny(q->msg, q->what, "polkit's answer could not be read");
                bus_polkit_query_free(q);
                return 0;
        }
        if (!authorized) {
                (void) bus_polkit_deny(q->msg, q->what, "polkit does not authorize it");
                bus_polkit_query_free(q);
                return 0;
        }
        r = bus_polkit_act(q->act, q->msg, q->manager, &error);
        if (r < 0 || sd_bus_error_is_set(&error)) {
                if (!sd_bus_error_is_set(&error))
                        (void) sd_bus_error_set_errno(&error, r);
                (void) sd_bus_reply_method_error(q->msg, &error);
        }
        bus_polkit_query_free(q);
        return 0;
}

int bus_polkit_run(BusPolkit *p, Manager *m, sd_bus_message *msg, const char *action_id, const char *what,
                   BusPolkitAction act, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return sd_bus_error_setf(error, "io.kactor.Error.AccessDenied", "Cannot determine the caller's user: %s",
                                         strerror(-r));
        if (access_is_admin(uid))
                return bus_polkit_act(act, msg, m, error);

        const char *sender = sd_bus_message_get_sender(msg);
        if (!sender)
                return sd_bus_error_setf(error, "io.kactor.Error.AccessDenied",
                                         "User %u may not %s: only root may on a bus without sender names.",
                                         (unsigned) uid, what);
        BusPolkitQuery *q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        *q = (BusPolkitQuery) { .polkit = p, .manager = m, .msg = sd_bus_message_ref(msg), .act = act };
        LIST_INSERT_HEAD(&p->queries, q, link);
        q->action_id = strdup(action_id);
        if (asprintf(&q->what, "%s (polkit action %s)", what, action_id) < 0)
                q->what = NULL;
        if (!q->action_id || !q->what) {
                bus_polkit_query_free(q);
                return -ENOMEM;
        }
        /* Subject: the caller's bus name; no details; flags 0: never ask the user interactively. */
        r = sd_bus_call_method_async(sd_bus_message_get_bus(msg), &q->slot, "org.freedesktop.PolicyKit1",
                                     "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority",
                                     "CheckAuthorization", on_check_authorization, q, "(sa{sv})sa{ss}us",
                                     "system-bus-name", 1, "name", "s", sender, action_id, 0, 0, "");
        if (r < 0) {
                bus_polkit_query_free(q);
                return r;
        }
        return 1;
}

void bus_polkit_done(BusPolkit *p) {
        while (p->queries.lh_first)
                bus_polkit_query_free(p->queries.lh_first);
}
