/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The worker launcher: starts kactor-worker processes with posix_spawn(), hands them their end of a
 * socketpair as fd 3, and watches them with child event sources. The cgroup backends (per-actor
 * cgroups and scopes) wrap this: the worker does nothing before INIT arrives, so a backend can place
 * the new process before worker_send_init(). Workers inherit the node manager's stdout and stderr,
 * except that under systemd an actor's worker sends its lines to the journal itself.
 */

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actor-isolation.h"
#include "actor.h"
#include "codec.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "transport.h"
#include "tasks.h"
#include "worker-spawn.h"
#include "zygote.h"

extern char **environ;

#define JOURNAL_NATIVE_SOCKET "/run/systemd/journal/socket"

/* The actor whose worker sends its stdout and stderr to the journal (lib/worker/worker-journal.c), or
 * NULL: when the node manager logs to the journal (it runs under systemd), each line an actor writes is
 * an entry with SYSLOG_IDENTIFIER=kactor-actor-ID, as the actor's scope is named, and
 * KACTOR_ACTOR_ID=ID (docs/logging.md). Entries, not a stream per actor: journald's limit on streams
 * does not limit how many actors have their own. */
static const char *worker_journal_actor(const Actor *a) {
        return a && !a->shadow && log_stderr_is_journal() && access(JOURNAL_NATIVE_SOCKET, F_OK) >= 0
                ? a->id_string
                : NULL;
}

/* The worker's environment: ours, minus what is the manager's own, plus its fd, its GPUs (an actor's;
 * a task worker has none), the user it becomes and, for the journal, its actor's id. */
static char **worker_environment(Actor *a, uid_t uid, gid_t gid) {
        size_t n = 0;
        while (environ[n])
                n++;
        char **env = calloc(n + 7, sizeof(char *));
        if (!env)
                return NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const char *e = environ[i];
                if (strncmp(e, "NOTIFY_SOCKET=", 14) == 0 || strncmp(e, "CUDA_VISIBLE_DEVICES=", 21) == 0 ||
                    strncmp(e, "KACTOR_WORKER_FD=", 17) == 0 || strncmp(e, "LISTEN_", 7) == 0 ||
                    strncmp(e, "KACTOR_WORKER_UID=", 18) == 0 || strncmp(e, "KACTOR_WORKER_GID=", 18) == 0 ||
                    strncmp(e, "KACTOR_WORKER_SOCKET=", 21) == 0 || strncmp(e, "KACTOR_WORKER_JOURNAL=", 22) == 0)
                        continue;
                env[k] = strdup(e);
                if (!env[k])
                        goto fail;
                k++;
        }
        env[k] = strdup("KACTOR_WORKER_FD=3");
        if (!env[k++])
                goto fail;
        /* A worker without GPUs sees none. */
        char *list = a ? resources_gpu_list_string(a->gpus, a->n_gpus) : strdup("");
        int q = list ? asprintf(&env[k], "CUDA_VISIBLE_DEVICES=%s", list) : -1;
        free(list);
        if (q < 0)
                goto fail;
        k++;
        /* The worker becomes this user before it reads INIT (cgroups/privileges.c). */
        if (asprintf(&env[k], "KACTOR_WORKER_UID=%u", (unsigned) uid) < 0)
                goto fail;
        k++;
        if (asprintf(&env[k], "KACTOR_WORKER_GID=%u", (unsigned) gid) < 0)
                goto fail;
        k++;
        /* An actor's worker outlives this process and re-attaches on the socket (persist.c); a
         * shadow, which rebuilds one object, does not. */
        if (a && !a->shadow && a->manager->socket_path) {
                if (asprintf(&env[k], "KACTOR_WORKER_SOCKET=%s", a->manager->socket_path) < 0)
                        goto fail;
                k++;
        }
        const char *journal_actor = worker_journal_actor(a);
        if (journal_actor) {
                if (asprintf(&env[k], "KACTOR_WORKER_JOURNAL=%s", journal_actor) < 0)
                        goto fail;
                k++;
        }
        return env;
fail:
        for (size_t i = 0; i < k; i++)
                free(env[i]);
        free(env);
        return NULL;
}

char *worker_exit_description(const Worker *w) {
        char *s = NULL;
        int k;
        if (w->adopted)
                return strdup(w->start_error ?: w->conn || w->ready
                                      ? "worker exited (it was started by a previous node manager: its exit status is unknown)"
                                      : "the worker exited before it re-attached after the node manager's restart (its exit status is unknown)");
        switch (w->exit_code) {
        case CLD_EXITED:
                k = asprintf(&s, "worker exited with status %d", w->exit_status);
                break;
        case CLD_KILLED:
        case CLD_DUMPED:
                k = asprintf(&s, "worker exited on signal %d (SIG%s)%s", w->exit_status,
                             sigabbrev_np(w->exit_status) ?: "?",
                             w->exit_code == CLD_DUMPED ? ", core dumped" : "");
                break;
        default:
                k = asprintf(&s, "worker exited (code %d, status %d)", w->exit_code, w->exit_status);
        }
        return k < 0 ? NULL : s;
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        Manager *m = w->manager;
        manager_worker_attach_settled(m, w);
        LIST_REMOVE(w, link);
        m->n_workers--;
        if (w->kind == WORKER_TASK) {
                LIST_REMOVE(w, task_link);
                m->n_task_workers--;
        }
        if (w->conn) {
                w->conn->worker = NULL;
                transport_close(w->manager, w->conn);
        }
        if (w->actor && w->actor->worker == w)
                w->actor->worker = NULL;
        sd_event_source_disable_unref(w->child);
        sd_event_source_disable_unref(w->idle_timer);
        sd_event_source_disable_unref(w->pidfd_source);
        sd_event_source_disable_unref(w->attach_timer);
        if (w->ack_queued)
                LIST_REMOVE(w, ack_link);
        if (!w->exited) {
                if (w->pidfd >= 0)
                        (void) pidfd_send_signal(w->pidfd, SIGKILL, NULL, 0);
                else
                        (void) kill(w->pid, SIGKILL);
        }
        safe_close(w->pidfd);
        /* What a task left behind goes with its worker. */
        if (w->cgroup)
                task_isolation_worker_gone(w);
        free(w->start_error);
        free(w->direct_callers);
        free(w);
        return NULL;
}

static int worker_gone(Worker *w);

static int on_worker_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Worker *w = userdata;

        w->exited = true;
        w->exit_code = si->si_code;
        w->exit_status = si->si_status;
        return worker_gone(w);
}

static int worker_gone(Worker *w) {
        Manager *m = w->manager;

        /* Whatever it sent before it went is still in the socket: handle it first. */
        if (w->conn)
                transport_drain(w->manager, w->conn);

        _cleanup_free_ char *cause = worker_exit_description(w);
        if (w->actor) {
                /* The actor may be freed by this (a shadow): forget it first. */
                Actor *a = TAKE_PTR(w->actor);
                actor_worker_gone(a, cause ?: "worker exited");
        } else if (w->kind == WORKER_TASK) {
                if (w->tasks.n_inflight > 0 || (w->exit_code != CLD_EXITED || w->exit_status != 0))
                        log_warning("Task worker %d: %s.", (int) w->pid, cause ?: "exited");
                tasks_worker_gone(w, cause ?: "worker exited");
        }
        worker_free(w);

        manager_maybe_exit(m);
        return 0;
}

/* An adopted worker's pidfd became readable: it exited (not our child: its status is unknown). */
static int on_adopted_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        w->exited = true;
        return worker_gone(w);
}

/* A worker re-attaches once the call it runs returns: one in a long call is waited for (its calls
 * queue meanwhile); it is only said. */
static int on_attach_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;
        log_notice("The worker %d of actor %s has not re-attached %" PRIu64 " s after the node manager's restart "
                   "(it may be in a long call); its calls wait.",
                   (int) w->pid, w->actor ? w->actor->id_string : "?",
                   (uint64_t) (WORKER_ATTACH_TIMEOUT_USEC / USEC_PER_SEC));
        return 0;
}

uint64_t pid_starttime(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        /* After "(comm)", which may hold spaces and parentheses: field 22 is the start time. */
        char *p = strrchr(buf, ')');
        if (!p)
                return 0;
        unsigned long long v = 0;
        char state = 0;
        if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &state, &v) != 2)
                return 0;
        /* A zombie has exited: it is no one's worker any more. */
        return state == 'Z' || state == 'X' ? 0 : v;
}

int worker_adopt(Manager *m, Actor *actor, pid_t pid, uint64_t starttime, uint64_t prefix, Worker **ret) {
        int fd = pidfd_open(pid, 0);
        if (fd < 0)
                return negative_errno();
        /* The PID may be another process's by now: the journal's start time says whether it is ours
         * (read after the pidfd is open, so that it cannot change under us). */
        if (starttime == 0 || pid_starttime(pid) != starttime) {
                close(fd);
                return -ESRCH;
        }
        Worker *w = calloc(1, sizeof(*w));
        if (!w) {
                close(fd);
                return -ENOMEM;
        }
        w->manager = m;
        w->pid = pid;
        w->pidfd = fd;
        w->kind = WORKER_ACTOR;
        w->uid = actor->run_uid;
        w->gid = actor->run_gid;
        w->actor = actor;
        w->adopted = true;
        w->attach_prefix = prefix;
        w->starttime = starttime;
        callqueue_init(&w->tasks);
        LIST_INSERT_HEAD(&m->workers, w, link);
        m->n_workers++;
        actor->worker = w;

        int r = sd_event_add_io(m->event, &w->pidfd_source, fd, EPOLLIN, on_adopted_exit, w);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &w->attach_timer, CLOCK_MONOTONIC,
                                               WORKER_ATTACH_TIMEOUT_USEC, 0, on_attach_timeout, w);
        if (r < 0) {
                w->exited = true; /* not killed: it may still re-attach to a later node manager */
                worker_free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->pidfd_source, "adopted-worker");
        w->to_attach = true;
        m->n_workers_to_attach++;
        *ret = w;
        return 0;
}

void worker_attach(Worker *w, Conn *c, uint64_t last_seq, bool ready) {
        w->attach_timer = sd_event_source_disable_unref(w->attach_timer);
        w->conn = c;
        c->worker = w;
        c->id_prefix = w->attach_prefix;
        w->next_seq = last_seq;
        /* The worker counts its results from where it was: acks go on from there. */
        w->results = last_seq;
        w->handled_seq = w->durable_seq = w->ack_sent = last_seq;
        w->ready = ready;
}

int worker_spawn_process(const char *path, char *const *env, int fd, pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        char *argv[] = { (char *) "kactor-worker", NULL };

        /* fd becomes its fd 3; signals as a fresh process has them, whatever we block or catch. */
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_adddup2(&fa, fd, 3);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        int r = -posix_spawn(ret_pid, path, &fa, &attr, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        return r;
}

static int worker_spawn_as(Manager *m, WorkerKind kind, Actor *actor, uid_t uid, gid_t gid, Worker **ret) {
        _cleanup_close_ int fd_parent = -1, fd_child = -1;
        pid_t pid;
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        fd_parent = sv[0];
        fd_child = sv[1];
        if (fd_child == 3) {
                /* dup2() onto itself would keep O_CLOEXEC. */
                int fd = fcntl(fd_child, F_DUPFD_CLOEXEC, 4);
                if (fd < 0)
                        return negative_errno();
                safe_close(fd_child);
                fd_child = fd;
        }
        int flags = fcntl(fd_parent, F_GETFL);
        if (flags < 0 || fcntl(fd_parent, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();

        char **env = worker_environment(actor, uid, gid);
        if (!env)
                return -ENOMEM;

        r = zygote_spawn(m, env, fd_child, &pid);
        if (r == -ENOTCONN)
                r = worker_spawn_process(m->worker_path, env, fd_child, &pid);
        for (char **e = env; *e; e++)
                free(*e);
        free(env);
        if (r < 0)
                return r;

        Worker *w = calloc(1, sizeof(*w));
        if (!w) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return -ENOMEM;
        }
        w->manager = m;
        w->pid = pid;
        w->pidfd = -1;
        w->kind = kind;
        w->uid = uid;
        w->gid = gid;
        callqueue_init(&w->tasks);
        w->actor = actor;
        LIST_INSERT_HEAD(&m->workers, w, link);
        m->n_workers++;
        if (kind == WORKER_TASK) {
                LIST_INSERT_HEAD(&m->task_workers, w, task_link);
                m->n_task_workers++;
        }

        r = sd_event_add_child(m->event, &w->child, pid, WEXITED, on_worker_exit, w);
        if (r < 0) {
                worker_free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->child, "worker");
        r = transport_conn_new(m, fd_parent, w, &w->conn);
        if (r < 0) {
                worker_free(w);
                return r;
        }
        fd_parent = -1;
        /* What the worker asks for (actors it creates, tasks it submits) runs as the worker does. */
        w->conn->uid = uid;
        w->conn->pid = pid;
        if (actor)
                actor->worker = w;
        *ret = w;
        return 0;
}

int worker_spawn(Manager *m, WorkerKind kind, Actor *actor, Worker **ret) {
        if (!actor)
                return -EINVAL;
        return worker_spawn_as(m, kind, actor, actor->run_uid, actor->run_gid, ret);
}

int worker_spawn_task(Manager *m, uid_t uid, gid_t gid, Worker **ret) {
        return worker_spawn_as(m, WORKER_TASK, NULL, uid, gid, ret);
}

int worker_send_init(Worker *w) {
        Manager *m = w->manager;
        Conn *c = w->conn;
        Actor *a = w->actor;
        int r;

        if (!c)
                return -ENOTCONN;
        size_t off = frame_begin(&c->out);
        r = msgpack_pack_array(&c->pk, 11) < 0 || msgpack_pack_uint32(&c->pk, MSG_INIT) < 0 ||
                        msgpack_pack_uint64(&c->pk, 0) < 0 || msgpack_pack_uint32(&c->pk, w->kind) < 0
                ? -ENOMEM
                : 0;
        if (r >= 0)
                r = codec_pack_id(&c->pk, CODEC_EXT_ACTOR, a ? a->id : (kactor_id){});
        if (r >= 0)
                r = pack_cstr(&c->pk, a ? a->module : NULL);
        if (r >= 0)
                r = pack_cstr(&c->pk, a ? a->class_name : NULL);
        if (r >= 0)
                r = msgpack_pack_array(&c->pk, a ? a->n_gpus : 0) < 0 ? -ENOMEM : 0;
        for (size_t i = 0; r >= 0 && a && i < a->n_gpus; i++)
                r = msgpack_pack_uint32(&c->pk, a->gpus[i]) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = pack_cstr(&c->pk, m->node_id) < 0 || msgpack_pack_uint64(&c->pk, m->node_hi) < 0 ||
                                msgpack_pack_uint64(&c->pk, c->id_prefix) < 0
                        ? -ENOMEM
                        : 0;
        /* A checkpoint, when there is one: the worker restores it instead of running the constructor. */
        if (r >= 0) {
                if (a && a->lineage.checkpoint)
                        r = buffer_append(&c->out, a->lineage.checkpoint, a->lineage.checkpoint_len);
                else
                        r = msgpack_pack_nil(&c->pk) < 0 ? -ENOMEM : 0;
        }
        if (r >= 0 && a)
                r = buffer_append(&c->out, a->args, a->args_len);
        r = transport_end_frame(w->manager, c, off, r);
        /* From now on it outlives us: the journal says which process it is, and where. */
        if (r >= 0 && a) {
                if (!w->starttime)
                        w->starttime = pid_starttime(w->pid);
                persist_actor_worker(a);
        }
        return r;
}

int worker_send_call(Worker *w, Call *call) {
        Conn *c = w->conn;
        int r;

        if (!c)
                return -ENOTCONN;
        size_t off = frame_begin(&c->out);
        if (w->kind == WORKER_ACTOR) {
                /* The result id lets the worker name the call if it has to send its result again
                 * to the next node manager; ack lets it forget the results that are durable. */
                kactor_id result = call_result_id(call);
                if (call->kind == CALL_REPLAY && w->actor) {
                        const LineageRecord *rec = lineage_get(&w->actor->lineage, call->lineage_index);
                        if (rec)
                                result = rec->result;
                }
                r = msgpack_pack_array(&c->pk, 5) < 0 || msgpack_pack_uint32(&c->pk, MSG_EXEC) < 0 ||
                                msgpack_pack_uint64(&c->pk, call->seq) < 0 ||
                                pack_cstr(&c->pk, call->method) < 0
                        ? -ENOMEM
                        : 0;
                if (r >= 0)
                        r = codec_pack_id(&c->pk, CODEC_EXT_OBJECT, result);
                if (r >= 0)
                        r = msgpack_pack_uint64(&c->pk, w->durable_seq) < 0 ? -ENOMEM : 0;
                if (r >= 0)
                        w->ack_sent = w->durable_seq;
        } else
                r = msgpack_pack_array(&c->pk, 4) < 0 || msgpack_pack_uint32(&c->pk, MSG_TASK) < 0 ||
                                msgpack_pack_uint64(&c->pk, call->seq) < 0 ||
                                pack_cstr(&c->pk, call->module) < 0 || pack_cstr(&c->pk, call->method) < 0
                        ? -ENOMEM
                        : 0;
        if (r >= 0)
                r = buffer_append(&c->out, call->args, call->args_len);
        return transport_end_frame(w->manager, c, off, r);
}

int worker_send_recall(Worker *w) {
        Conn *c = w->conn;
        if (!c)
                return -ENOTCONN;
        size_t off = frame_begin(&c->out);
        int r = msgpack_pack_array(&c->pk, 2) < 0 || msgpack_pack_uint32(&c->pk, MSG_RECALL) < 0 ||
                        msgpack_pack_uint64(&c->pk, 0) < 0
                ? -ENOMEM
                : 0;
        return transport_end_frame(w->manager, c, off, r);
}

int worker_send_save(Worker *w, Call *call) {
        Conn *c = w->conn;
        if (!c)
                return -ENOTCONN;
        size_t off = frame_begin(&c->out);
        int r = msgpack_pack_array(&c->pk, 2) < 0 || msgpack_pack_uint32(&c->pk, MSG_SAVE) < 0 ||
                        msgpack_pack_uint64(&c->pk, call->seq) < 0
                ? -ENOMEM
                : 0;
        return transport_end_frame(w->manager, c, off, r);
}

int worker_send_ack(Worker *w) {
        Conn *c = w->conn;
        if (!c)
                return -ENOTCONN;
        size_t off = frame_begin(&c->out);
        int r = msgpack_pack_array(&c->pk, 2) < 0 || msgpack_pack_uint32(&c->pk, MSG_ACK) < 0 ||
                        msgpack_pack_uint64(&c->pk, w->durable_seq) < 0
                ? -ENOMEM
                : 0;
        if (r >= 0)
                w->ack_sent = w->durable_seq;
        return transport_end_frame(w->manager, c, off, r);
}

int worker_send_direct_close(Worker *w) {
        Conn *c = w->conn;
        if (!c)
                return -ENOTCONN;
        if (w->direct_close_sent)
                return 0;
        size_t off = frame_begin(&c->out);
        int r = msgpack_pack_array(&c->pk, 2) < 0 || msgpack_pack_uint32(&c->pk, MSG_DIRECT_CLOSE) < 0 ||
                        msgpack_pack_uint64(&c->pk, 0) < 0
                ? -ENOMEM
                : 0;
        r = transport_end_frame(w->manager, c, off, r);
        if (r >= 0)
                w->direct_close_sent = true;
        return r;
}

void worker_stop(Worker *w) {
        /* STOP ends the worker's loop: its destructor runs and it exits. (A connection that just
         * closes means a node manager that went away: an actor's worker waits for the next one.)
         * A worker busy in a long call is killed by the manager's stop timeout. */
        if (w->conn) {
                size_t off = frame_begin(&w->conn->out);
                int r = msgpack_pack_array(&w->conn->pk, 2) < 0 ||
                                msgpack_pack_uint32(&w->conn->pk, MSG_STOP) < 0 ||
                                msgpack_pack_uint64(&w->conn->pk, 0) < 0
                        ? -ENOMEM
                        : 0;
                (void) transport_end_frame(w->manager, w->conn, off, r);
                transport_flush(w->manager, w->conn);
                w->conn->worker = NULL;
                transport_close(w->manager, w->conn);
                w->conn = NULL;
        } else if (w->adopted && !w->exited)
                /* Not re-attached yet: nothing to tell it on; it ends now. */
                (void) pidfd_send_signal(w->pidfd, SIGTERM, NULL, 0);
}

/* The ACK a worker is owed when no EXEC carries it soon: after this long. */
#define WORKER_ACK_DELAY_USEC (20 * 1000ULL)

static int on_ack_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        Worker *w;
        while ((w = m->ack_workers.lh_first)) {
                LIST_REMOVE(w, ack_link);
                w->ack_queued = false;
                if (w->durable_seq > w->ack_sent)
                        (void) worker_send_ack(w);
        }
        return 0;
}

void worker_note_result(Worker *w, uint64_t seq) {
        Manager *m = w->manager;
        if (seq > w->handled_seq)
                w->handled_seq = seq;
        if (w->ack_queued)
                return;
        LIST_INSERT_HEAD(&m->ack_workers, w, ack_link);
        w->ack_queued = true;
        if (!m->ack_timer)
                (void) sd_event_add_time_relative(m->event, &m->ack_timer, CLOCK_MONOTONIC, WORKER_ACK_DELAY_USEC,
                                                  10 * 1000ULL, on_ack_timer, m);
        else {
                int enabled = 0;
                (void) sd_event_source_get_enabled(m->ack_timer, &enabled);
                if (enabled == SD_EVENT_OFF) {
                        (void) sd_event_source_set_time_relative(m->ack_timer, WORKER_ACK_DELAY_USEC);
                        (void) sd_event_source_set_enabled(m->ack_timer, SD_EVENT_ONESHOT);
                }
        }
}

bool worker_awaiting_attach(Manager *m, pid_t pid) {
        Worker *w;
        LIST_FOREACH(w, &m->workers, link)
                if (w->adopted && !w->conn && !w->exited && w->pid == pid)
                        return true;
        return false;
}

void worker_results_durable(Manager *m) {
        Worker *w;
        LIST_FOREACH(w, &m->ack_workers, ack_link)
                w->durable_seq = w->handled_seq;
}
