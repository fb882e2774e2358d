/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "log.h"
#include "macro.h"

static int max_level = LOG_INFO;
static int use_journal = -1;

void log_set_max_level(int level) {
        max_level = level;
}

/* stderr goes to the journal when $JOURNAL_STREAM names stderr's device and inode. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

bool log_stderr_is_journal(void) {
        if (use_journal < 0)
                use_journal = stderr_is_journal();
        return use_journal;
}

/* One journal entry: only the fields that have a value (no ERRNO=0 on every entry). */
static void log_journal(int level, int error, const char *actor_id, const char *method, const char *msg) {
        char prio[sizeof("PRIORITY=") + 1], errno_field[sizeof("ERRNO=") + 12];
        _cleanup_free_ char *message = NULL, *ident = NULL, *actor = NULL, *meth = NULL;
        struct iovec iov[6];
        size_t n = 0;

        snprintf(prio, sizeof(prio), "PRIORITY=%d", level & LOG_PRIMASK);
        iov[n++] = (struct iovec) { prio, strlen(prio) };
        if (asprintf(&message, "MESSAGE=%s", msg) < 0 ||
            asprintf(&ident, "SYSLOG_IDENTIFIER=%s", program_invocation_short_name) < 0)
                return;
        iov[n++] = (struct iovec) { message, strlen(message) };
        iov[n++] = (struct iovec) { ident, strlen(ident) };
        if (error > 0) {
                snprintf(errno_field, sizeof(errno_field), "ERRNO=%d", error);
                iov[n++] = (struct iovec) { errno_field, strlen(errno_field) };
        }
        if (actor_id) {
                if (asprintf(&actor, "KACTOR_ACTOR_ID=%s", actor_id) < 0)
                        return;
                iov[n++] = (struct iovec) { actor, strlen(actor) };
        }
        if (actor_id && method) {
                if (asprintf(&meth, "KACTOR_METHOD=%s", method) < 0)
                        return;
                iov[n++] = (struct iovec) { meth, strlen(meth) };
        }
        (void) sd_journal_sendv(iov, (int) n);
}

int log_internal(int level, int error, const char *actor_id, const char *method, const char *format, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > max_level)
                return error > 0 ? -error : 0;

        /* %m means the error passed in, not whatever errno is now. */
        int saved = errno;
        errno = error;
        va_start(ap, format);
        if (vasprintf(&msg, format, ap) < 0)
                msg = NULL;
        va_end(ap);
        errno = saved;

        if (log_stderr_is_journal())
                log_journal(level, error, actor_id, method, msg ?: format);
        else if (actor_id)
                fprintf(stderr, "%s: [%s%s%s] %s\n", program_invocation_short_name, actor_id, method ? " " : "",
                        method ?: "", msg ?: format);
        else
                fprintf(stderr, "%s: %s\n", program_invocation_short_name, msg ?: format);
        return error > 0 ? -error : 0;
}

bool log_ratelimit_test(LogRateLimit *rl, uint64_t now_usec, uint64_t interval_usec, unsigned *ret_suppressed) {
        if (rl->last_usec != 0 && now_usec - rl->last_usec < interval_usec) {
                rl->suppressed++;
                return false;
        }
        *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        rl->last_usec = now_usec;
        return true;
}
