/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging for the node manager: to the journal with structured fields when stderr is connected to
 * it (systemd sets $JOURNAL_STREAM), else to stderr. The top of a call chain logs, once.
 *
 * Journal fields: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER (the program), ERRNO only when there is an
 * error, KACTOR_ACTOR_ID when the message is about an actor and KACTOR_METHOD when it is about one of
 * its methods (a call). docs/logging.md lists them.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

typedef struct Actor Actor;

void log_set_max_level(int level);
int log_internal(int level, int error, const char *actor_id, const char *method, const char *format, ...)
        __attribute__((format(printf, 5, 6)));

#define log_full_errno(level, error, ...) log_internal((level), (error), NULL, NULL, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
/* With the actor's id (KACTOR_ACTOR_ID=) and, when not NULL, a method (KACTOR_METHOD=) as journal fields. */
#define log_actor(level, actor_id, method, ...) log_internal((level), 0, (actor_id), (method), __VA_ARGS__)
/* The same with an error (ERRNO=, and %m). */
#define log_actor_errno(level, error, actor_id, method, ...)                                                \
        log_internal((level), (error), (actor_id), (method), __VA_ARGS__)

/* Whether stderr is a journal stream ($JOURNAL_STREAM names it): the program runs under systemd, and
 * log_internal() writes to the journal with fields. */
bool log_stderr_is_journal(void);

/* A message logged at most once per interval, so that a flood (of connections, of bad input) cannot
 * flood the log; what came meanwhile is counted and said with the next one. */
typedef struct LogRateLimit {
        uint64_t last_usec;
        unsigned suppressed;
} LogRateLimit;

/* True when the message may be logged at now_usec; *ret_suppressed: how many were not since the last. */
bool log_ratelimit_test(LogRateLimit *rl, uint64_t now_usec, uint64_t interval_usec, unsigned *ret_suppressed);
