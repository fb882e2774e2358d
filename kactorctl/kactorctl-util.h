/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How kactorctl's commands (kactorctl.c, kactorctl-trace.c) tell the person at the terminal what
 * went wrong: one format for failures, one for bad usage. */

#include <systemd/sd-bus.h>

/* The exit status of bad usage. */
#define EXIT_USAGE 2
/* The exit status when SIGINT or SIGTERM ended a wait (as a shell's for SIGINT). */
#define EXIT_INTERRUPTED 130

/* A command's failure: "kactorctl: MESSAGE[: strerror(r)]" on stderr, without log.h's levels and
 * targets (kactorctl is no daemon). Returns -|r|. */
int ctl_error_errno(int r, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* ctl_error_errno() for -ENOMEM. */
int ctl_oom(void);
/* A failed bus operation: the D-Bus error as "message (name)" when there is one, else what was being
 * done and errno's text. Returns r (-EIO when r says nothing). */
int ctl_bus_error(const sd_bus_error *error, int r, const char *what);

/* Bad usage of verb (NULL: of kactorctl itself): the message and where to find help. Returns
 * EXIT_USAGE. */
int ctl_usage_error(const char *verb, const char *format, ...) __attribute__((format(printf, 2, 3)));
