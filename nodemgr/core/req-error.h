/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* req-error.c: the error a request gets back, a kactor_error and a message, filled on the way up by
 * whichever core function refuses the request. */

#include "core-forward.h"
#include "kactor/value.h"

/* An error for the requester: a kactor_error and a message. Functions that fill one return
 * -EREMOTEIO. */
struct ReqError {
        kactor_error code;
        char *message;
};

int req_error(ReqError *e, kactor_error code, const char *format, ...) __attribute__((format(printf, 3, 4)));
/* Wraps the error e holds, as crun_error_wrap() does: the message becomes "FORMAT: <old message>"
 * (FORMAT alone when e held none) and the code `code`. The new message is made before the old one
 * is freed, as req_error() does too. Returns -EREMOTEIO. */
int req_error_wrap(ReqError *e, kactor_error code, const char *format, ...) __attribute__((format(printf, 3, 4)));
void req_error_done(ReqError *e);
