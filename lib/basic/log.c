/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "log.h"

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

int log_internal(int level, int error, const char *actor_id, const char *method, const char *format, ...) {
        char *msg = NULL;
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

        if (use_journal < 0)
                use_journal = stderr_is_journal();

        if (use_journal) {
                char prio[2] = { (char) ('0' + (level & 7)), 0 };
                if (actor_id && method)
                        sd_journal_send("MESSAGE=%s", msg ?: format, "PRIORITY=%s", prio, "KACTOR_ACTOR_ID=%s", actor_id,
                                        "KACTOR_METHOD=%s", method, "ERRNO=%i", error, NULL);
                else if (actor_id)
                        sd_journal_send("MESSAGE=%s", msg ?: format, "PRIORITY=%s", prio, "KACTOR_ACTOR_ID=%s", actor_id,
                                        "ERRNO=%i", error, NULL);
                else
                        sd_journal_send("MESSAGE=%s", msg ?: format, "PRIORITY=%s", prio, "ERRNO=%i", error, NULL);
        } else {
                if (actor_id)
                        fprintf(stderr, "kactor-nodemgr: [%s%s%s] %s\n", actor_id, method ? " " : "", method ?: "",
                                msg ?: format);
                else
                        fprintf(stderr, "kactor-nodemgr: %s\n", msg ?: format);
        }
        free(msg);
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
