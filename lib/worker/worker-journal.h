/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An actor's stdout and stderr as journal entries with fields of its own (worker-journal.c), sent by
 * a thread of the worker itself, so that journald credits them to the actor's worker, user and scope.
 */

/* Points stdout and stderr at pipes that a thread of this process reads, and sends every line to the
 * journal's native socket with SYSLOG_IDENTIFIER=kactor-actor-ACTOR_ID and KACTOR_ACTOR_ID=ACTOR_ID.
 * The lines are sent as they come, the rest when the process exits (exit(), or a return from main)
 * or dies of a crash, abort() or SIGTERM that nothing else handles. Call it once, before any other
 * thread starts.
 * Returns 0, or a negative errno with stdout and stderr left as they were (the journal's socket is
 * not reachable, no thread could be started). */
int worker_journal_start(const char *actor_id);
