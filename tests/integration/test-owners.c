/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Owners and sharing (nodemgr/core/access.c), attacked as other users would: every actor belongs to
 * the user who created it and every object to the user who made it (a put's maker, a call's or a
 * task's caller). Others may call an actor and look it up by name only when it is shared with them
 * (AllowUsers=, AllowGroups=); killing stays its owner's (and root's; over D-Bus polkit may let an
 * administrator); getting, waiting on and releasing an object stay its owner's; a reference or a
 * handle passed along gives no right by itself. Root and the node manager's own user may do all.
 *
 * Users, per test: A, B and C are members of the access group (B also of a group of its own, the
 * "share group"), O is an outsider. Each runs in an agent: a forked child of that user (setresuid)
 * with its own libkactor client and D-Bus connection, which runs the test's commands and answers
 * on a pipe, so that what A holds stays held while B attacks, and a test can assert the D-Bus error
 * names (busctl prints only the message). busctl run as the user (setpriv) is what an operator
 * does: a few steps use it too. Root is the test process itself.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../skip.h"
#include "bus-value.h"
#include "codec.h"
#include "harness.h"
#include "macro.h"
#include "users.h"

#define OBJECT_IFACE "io.kactor.Object1"
#define TRACE_IFACE "io.kactor.Trace1"

#define ACCESS_DENIED "io.kactor.Error.AccessDenied"
#define NO_SUCH_OBJECT "io.kactor.Error.NoSuchObject"
#define NOT_SUPPORTED "io.kactor.Error.NotSupported"
#define TASK_FAILED "io.kactor.Error.TaskFailed"
#define ACTOR_DIED "io.kactor.Error.ActorDied"
/* Reading the properties of another user's object over D-Bus. */
#define OTHERS_OBJECT "io.kactor.Error.AccessDenied"

/* Workers wait this long for a node manager that went away (the default is minutes). */
#define REATTACH_ENV "KACTOR_WORKER_REATTACH_SEC=30"

static Harness *h;

/* --- users -------------------------------------------------------------------------------------------- */

static TestGroup group, share;  /* the access group; the share group (B only) */
static TestUser ua, ub, uc, uo; /* A, B, C: members; O: an outsider */

static void make_users(void) {
        users_group_make(&group, "kown", "", USERS_GID_ABOVE_UIDS);
        users_group_make(&share, "kown", "s", USERS_GID_ABOVE_UIDS);
        users_make(&ua, "kown", "a", &group, NULL);
        users_make(&ub, "kown", "b", &group, &share);
        users_make(&uc, "kown", "c", &group, NULL);
        users_make(&uo, "kown", "o", NULL, NULL);
}

/* --- agents: the test's commands, run as another user ------------------------------------------------- */

typedef struct Agent {
        const TestUser *user;
        pid_t pid;
        int in;  /* commands, a line each */
        int out; /* answers, a line each */
        char buf[16384];
        size_t len;
} Agent;

static Agent *agents[8];
static size_t n_agents;

/* Agent side: never asserts; every command gets exactly one line back:
 *   OK [text]          the request was accepted (text: an id, a path, a count)
 *   FAIL NAME MESSAGE  it was refused (NAME: the kactor or D-Bus error name, or errno:N)
 *   ERROR NAME MESSAGE the object asked for holds an error (its call failed)
 *   VALUE JSON         the object's value */
typedef struct AgentState {
        kactor_client *client;
        sd_bus *bus;
        FILE *out;
} AgentState;

/* One line: messages never break the protocol. */
static void agent_print(AgentState *s, const char *kind, const char *name, const char *text) {
        _cleanup_free_ char *t = strdup(text ?: "");
        for (char *p = t; p && *p; p++)
                if (*p == '\n')
                        *p = ' ';
        if (name)
                fprintf(s->out, "%s %s %s\n", kind, name, t ?: "");
        else if (t && *t)
                fprintf(s->out, "%s %s\n", kind, t);
        else
                fprintf(s->out, "%s\n", kind);
        fflush(s->out);
}

static void agent_print_id(AgentState *s, kactor_id id) {
        char ids[KACTOR_ID_STRING_MAX];
        kactor_id_to_string(id, ids);
        agent_print(s, "OK", NULL, ids);
}

static void agent_fail_client(AgentState *s, int r) {
        if (r == -EREMOTEIO && s->client)
                agent_print(s, "FAIL", kactor_error_name(kactor_client_error(s->client)) ?: "?",
                            kactor_client_error_message(s->client));
        else {
                char name[32];
                snprintf(name, sizeof(name), "errno:%d", -r);
                agent_print(s, "FAIL", name, strerror(-r));
        }
}

static void agent_fail_bus(AgentState *s, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                agent_print(s, "FAIL", error->name, error->message);
        else {
                char name[32];
                snprintf(name, sizeof(name), "errno:%d", -r);
                agent_print(s, "FAIL", name, strerror(-r));
        }
}

static void agent_print_value(AgentState *s, const kactor_value *v) {
        if (kactor_value_is_error(v)) {
                agent_print(s, "ERROR", kactor_error_name(kactor_value_error_code(v)) ?: "?",
                            kactor_value_error_message(v));
                return;
        }
        _cleanup_free_ char *json = kactor_value_to_json(v);
        agent_print(s, "VALUE", NULL, json ?: "(out of memory)");
}

/* A copy of v where the strings "$o:ID" and "$a:ID" are a reference to object ID and a handle on
 * actor ID: how the test names them in the JSON it sends. */
static kactor_value *agent_resolve(const kactor_value *v) {
        kactor_value *n;
        switch (kactor_value_type(v)) {
        case KACTOR_TYPE_STRING: {
                const char *str = kactor_value_get_string(v, NULL);
                kactor_id id;
                if ((strncmp(str, "$o:", 3) == 0 || strncmp(str, "$a:", 3) == 0) &&
                    kactor_id_from_string(str + 3, &id) >= 0)
                        return str[1] == 'o' ? kactor_value_new_object(id) : kactor_value_new_actor(id);
                return kactor_value_copy(v);
        }
        case KACTOR_TYPE_LIST:
                n = kactor_value_new_list();
                for (size_t i = 0; n && i < kactor_value_list_size(v); i++)
                        if (kactor_value_list_append(n, agent_resolve(kactor_value_list_get(v, i))) < 0)
                                n = kactor_value_free(n);
                return n;
        case KACTOR_TYPE_MAP:
                n = kactor_value_new_map();
                for (size_t i = 0; n && i < kactor_value_map_size(v); i++)
                        if (kactor_value_map_set(n, kactor_value_map_key(v, i),
                                                 agent_resolve(kactor_value_map_value(v, i))) < 0)
                                n = kactor_value_free(n);
                return n;
        default:
                return kactor_value_copy(v);
        }
}

/* The value of the JSON the test wrote (NULL or "" for none). */
static kactor_value *agent_value(const char *json) {
        if (!json || !*json)
                return NULL;
        kactor_value *v = harness_value(json);
        kactor_value *r = agent_resolve(v);
        kactor_value_free(v);
        return r;
}

static char *next_word(char **p) {
        char *w = *p + strspn(*p, " ");
        if (!*w)
                return NULL;
        char *e = w + strcspn(w, " ");
        *p = *e ? e + 1 : e;
        *e = 0;
        return w;
}

/* "-", or numbers separated by commas (uid_t and gid_t are both 32-bit unsigned). */
static size_t parse_ids(const char *list, uint32_t *ret, size_t max) {
        size_t n = 0;
        if (strcmp(list, "-") != 0)
                for (const char *p = list; *p && n < max; p = *p == ',' ? p + 1 : p)
                        ret[n++] = (uint32_t) strtoul(p, (char **) &p, 10);
        return n;
}

static int agent_connect(AgentState *s) {
        if (s->client)
                return 0;
        struct kactor_connect_opts o = { .sz = sizeof(o), .socket_path = h->socket_path };
        return kactor_connect(&o, &s->client);
}

static int agent_bus(AgentState *s) {
        if (s->bus)
                return 0;
        int r = sd_bus_new(&s->bus);
        if (r >= 0)
                r = sd_bus_set_address(s->bus, h->bus_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(s->bus, 1);
        if (r >= 0)
                r = sd_bus_start(s->bus);
        if (r >= 0)
                (void) sd_bus_set_method_call_timeout(s->bus, HARNESS_TIMEOUT_USEC);
        if (r < 0)
                s->bus = sd_bus_flush_close_unref(s->bus);
        return r;
}

/* Native commands (libkactor). */
static void agent_native(AgentState *s, const char *verb, char *rest) {
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        kactor_ref ref;
        kactor_id id;
        int r = agent_connect(s);
        if (r < 0) {
                agent_fail_client(s, r);
                return;
        }

        if (strcmp(verb, "connect") == 0)
                agent_print(s, "OK", NULL, NULL);
        else if (strcmp(verb, "create") == 0) {
                /* create MODULE CLASS NAME|- UIDS|- GIDS|- [ARGS] */
                char *module = next_word(&rest), *class_name = next_word(&rest), *name = next_word(&rest),
                     *users = next_word(&rest), *groups = next_word(&rest);
                uid_t u[8];
                gid_t g[8];
                if (!module || !class_name || !name || !users || !groups) {
                        agent_print(s, "FAIL", "usage", "create MODULE CLASS NAME UIDS GIDS [ARGS]");
                        return;
                }
                size_t nu = parse_ids(users, u, ELEMENTSOF(u)), ng = parse_ids(groups, g, ELEMENTSOF(g));
                struct kactor_actor_opts o = {
                        .sz = sizeof(o),
                        .name = strcmp(name, "-") == 0 ? NULL : name,
                        .allow_users = nu > 0 ? u : NULL,
                        .n_allow_users = nu,
                        .allow_groups = ng > 0 ? g : NULL,
                        .n_allow_groups = ng,
                };
                kactor_actor a;
                v = agent_value(rest);
                r = kactor_create_actor(s->client, module, class_name, v, &o, &a);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print_id(s, a.id);
        } else if (strcmp(verb, "call") == 0) {
                /* call ACTOR METHOD [ARGS] */
                char *actor = next_word(&rest), *method = next_word(&rest);
                if (!actor || !method || kactor_id_from_string(actor, &id) < 0) {
                        agent_print(s, "FAIL", "usage", "call ACTOR METHOD [ARGS]");
                        return;
                }
                v = agent_value(rest);
                r = kactor_call(s->client, (kactor_actor){ id }, method, v, &ref);
                if (r >= 0)
                        r = kactor_flush(s->client);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print_id(s, ref.id);
        } else if (strcmp(verb, "submit") == 0) {
                /* submit MODULE FUNCTION [ARGS] */
                char *module = next_word(&rest), *function = next_word(&rest);
                if (!module || !function) {
                        agent_print(s, "FAIL", "usage", "submit MODULE FUNCTION [ARGS]");
                        return;
                }
                v = agent_value(rest);
                r = kactor_submit(s->client, module, function, v, NULL, &ref);
                if (r >= 0)
                        r = kactor_flush(s->client);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print_id(s, ref.id);
        } else if (strcmp(verb, "put") == 0) {
                /* put VALUE */
                v = agent_value(rest);
                r = kactor_put(s->client, v, &ref);
                if (r >= 0)
                        r = kactor_flush(s->client);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print_id(s, ref.id);
        } else if (strcmp(verb, "get") == 0 || strcmp(verb, "wait") == 0 || strcmp(verb, "release") == 0) {
                /* get|wait|release ID... */
                kactor_ref refs[8];
                size_t n = 0;
                char *w;
                while ((w = next_word(&rest)) && n < ELEMENTSOF(refs))
                        if (kactor_id_from_string(w, &refs[n++].id) < 0) {
                                agent_print(s, "FAIL", "usage", "bad id");
                                return;
                        }
                if (verb[0] == 'g') {
                        kactor_value **values = NULL;
                        r = kactor_get(s->client, refs, n, HARNESS_TIMEOUT_USEC, &values);
                        if (r < 0) {
                                agent_fail_client(s, r);
                                return;
                        }
                        if (n == 1)
                                agent_print_value(s, values[0]);
                        else {
                                kactor_value *l = kactor_value_new_list();
                                for (size_t i = 0; l && i < n; i++)
                                        if (kactor_value_list_append(l, kactor_value_copy(values[i])) < 0)
                                                l = kactor_value_free(l);
                                agent_print_value(s, l);
                                kactor_value_free(l);
                        }
                        kactor_values_free(values, n);
                } else if (verb[0] == 'w') {
                        bool ready[8];
                        r = kactor_wait(s->client, refs, n, n, HARNESS_TIMEOUT_USEC, ready);
                        if (r < 0)
                                agent_fail_client(s, r);
                        else {
                                char t[16];
                                snprintf(t, sizeof(t), "%d", r);
                                agent_print(s, "OK", NULL, t);
                        }
                } else {
                        r = kactor_ref_release(s->client, refs, n);
                        if (r >= 0)
                                r = kactor_flush(s->client);
                        if (r < 0)
                                agent_fail_client(s, r);
                        else
                                agent_print(s, "OK", NULL, NULL);
                }
        } else if (strcmp(verb, "arelease") == 0) {
                /* arelease ACTOR: lets go of a handle */
                char *actor = next_word(&rest);
                if (!actor || kactor_id_from_string(actor, &id) < 0) {
                        agent_print(s, "FAIL", "usage", "arelease ACTOR");
                        return;
                }
                r = kactor_actor_release(s->client, (kactor_actor){ id });
                if (r >= 0)
                        r = kactor_flush(s->client);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print(s, "OK", NULL, NULL);
        } else if (strcmp(verb, "kill") == 0) {
                /* kill ACTOR */
                char *actor = next_word(&rest);
                if (!actor || kactor_id_from_string(actor, &id) < 0) {
                        agent_print(s, "FAIL", "usage", "kill ACTOR");
                        return;
                }
                r = kactor_kill(s->client, (kactor_actor){ id }, true);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print(s, "OK", NULL, NULL);
        } else if (strcmp(verb, "getactor") == 0) {
                /* getactor NAME */
                kactor_actor a;
                char *name = next_word(&rest);
                r = kactor_get_actor(s->client, name ?: "", &a);
                if (r < 0)
                        agent_fail_client(s, r);
                else
                        agent_print_id(s, a.id);
        } else
                agent_print(s, "FAIL", "usage", verb);
}

/* Appends the items of a list value as "av" (NULL: an empty one). */
static int agent_append_args(sd_bus_message *m, const kactor_value *args) {
        int r = sd_bus_message_open_container(m, 'a', "v");
        for (size_t i = 0; r >= 0 && args && i < kactor_value_list_size(args); i++)
                r = bus_message_append_value(m, kactor_value_list_get(args, i));
        return r < 0 ? r : sd_bus_message_close_container(m);
}

/* D-Bus commands: io.kactor.NodeManager1 and its objects, as the agent's user. */
static void agent_dbus(AgentState *s, const char *verb, char *rest) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        _cleanup_close_ int fd = -1;
        const char *path = HARNESS_BUS_PATH, *iface = HARNESS_IFACE_MANAGER, *method = NULL;
        char kind = 'o'; /* what the reply holds: 'o' a path, '-' nothing, 'v' values, 'p' a property */
        int r = agent_bus(s);
        if (r < 0) {
                agent_fail_bus(s, &error, r);
                return;
        }

        /* Put's value is all the rest. */
        char *a1 = strcmp(verb, "dput") == 0 ? NULL : next_word(&rest), *a2 = NULL;
        if (strcmp(verb, "dcreate") == 0) {
                /* dcreate MODULE CLASS [OPTIONS] (a JSON map) */
                a2 = next_word(&rest);
                method = "CreateActor";
        } else if (strcmp(verb, "dcall") == 0) {
                /* dcall ACTOR-PATH METHOD [ARGS] */
                path = a1;
                a2 = next_word(&rest);
                iface = HARNESS_IFACE_ACTOR;
                method = "Call";
        } else if (strcmp(verb, "dkill") == 0) {
                path = a1;
                iface = HARNESS_IFACE_ACTOR;
                method = "Kill";
                kind = '-';
        } else if (strcmp(verb, "dgetactor") == 0)
                method = "GetActor";
        else if (strcmp(verb, "dput") == 0)
                method = "Put";
        else if (strcmp(verb, "dsubmit") == 0) {
                /* dsubmit MODULE FUNCTION [ARGS] */
                a2 = next_word(&rest);
                method = "SubmitTask";
        } else if (strcmp(verb, "dget") == 0) {
                method = "Get";
                kind = 'v';
        } else if (strcmp(verb, "dwait") == 0) {
                method = "Wait";
                kind = '-';
        } else if (strcmp(verb, "drelease") == 0) {
                method = "Release";
                kind = '-';
        } else if (strcmp(verb, "dprop") == 0) {
                /* dprop PATH INTERFACE NAME */
                a2 = next_word(&rest);
                char *name = next_word(&rest);
                r = sd_bus_call_method(s->bus, HARNESS_BUS_NAME, a1 ?: "/",
                                       "org.freedesktop.DBus.Properties", "Get", &error, &reply, "ss",
                                       a2 ?: "", name ?: "");
                kind = 'p';
                goto answer;
        } else if (strcmp(verb, "dtrace") == 0) {
                /* dtrace Reset | SetEnabled 0|1 | Timeline */
                iface = TRACE_IFACE;
                method = a1;
                kind = '-';
        }
        if (!method) {
                agent_print(s, "FAIL", "usage", verb);
                return;
        }

        r = sd_bus_message_new_method_call(s->bus, &m, HARNESS_BUS_NAME, path, iface, method);
        if (r < 0)
                goto answer;
        if (strcmp(verb, "dcreate") == 0) {
                r = sd_bus_message_append(m, "ss", a1 ?: "", a2 ?: "");
                if (r >= 0)
                        r = agent_append_args(m, NULL);
                v = agent_value(rest);
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "{sv}");
                for (size_t i = 0; r >= 0 && v && i < kactor_value_map_size(v); i++) {
                        r = sd_bus_message_open_container(m, 'e', "sv");
                        if (r >= 0)
                                r = sd_bus_message_append(m, "s", kactor_value_map_key(v, i));
                        if (r >= 0)
                                r = bus_message_append_value(m, kactor_value_map_value(v, i));
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        } else if (strcmp(verb, "dcall") == 0) {
                r = sd_bus_message_append(m, "s", a2 ?: "");
                v = agent_value(rest);
                if (r >= 0)
                        r = agent_append_args(m, v);
        } else if (strcmp(verb, "dkill") == 0)
                r = sd_bus_message_append(m, "b", 1);
        else if (strcmp(verb, "dgetactor") == 0)
                r = sd_bus_message_append(m, "s", a1 ?: "");
        else if (strcmp(verb, "dput") == 0) {
                v = agent_value(rest);
                r = v ? bus_message_append_value(m, v) : -EINVAL;
        } else if (strcmp(verb, "dsubmit") == 0) {
                r = sd_bus_message_append(m, "ss", a1 ?: "", a2 ?: "");
                v = agent_value(rest);
                if (r >= 0)
                        r = agent_append_args(m, v);
                if (r >= 0)
                        r = sd_bus_message_append(m, "a{sv}", 0);
        } else if (strcmp(verb, "dget") == 0)
                r = sd_bus_message_append(m, "aot", 1, a1 ?: "/", HARNESS_TIMEOUT_USEC);
        else if (strcmp(verb, "dwait") == 0)
                r = sd_bus_message_append(m, "aout", 1, a1 ?: "/", 1, HARNESS_TIMEOUT_USEC);
        else if (strcmp(verb, "drelease") == 0)
                r = sd_bus_message_append(m, "ao", 1, a1 ?: "/");
        else if (strcmp(method, "SetEnabled") == 0) {
                char *b = next_word(&rest);
                r = sd_bus_message_append(m, "b", b && strcmp(b, "1") == 0);
        } else if (strcmp(method, "Timeline") == 0) {
                fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                r = fd < 0 ? -errno : sd_bus_message_append(m, "ht", fd, UINT64_C(100000));
        }
        if (r >= 0)
                r = sd_bus_call(s->bus, m, 0, &error, &reply);

answer:
        if (r < 0) {
                agent_fail_bus(s, &error, r);
                return;
        }
        if (kind == '-') {
                agent_print(s, "OK", NULL, NULL);
                return;
        }
        if (kind == 'o') {
                const char *p = NULL;
                r = sd_bus_message_read(reply, "o", &p);
                if (r < 0)
                        agent_fail_bus(s, &error, r);
                else
                        agent_print(s, "OK", NULL, p);
                return;
        }
        _cleanup_(kactor_value_freep) kactor_value *got = NULL;
        r = kind == 'v' ? bus_message_read_value_list(reply, NULL, NULL, &got)
                        : bus_message_read_value(reply, NULL, NULL, &got);
        if (r < 0)
                agent_fail_bus(s, &error, r);
        else
                agent_print_value(s, got);
}

static _Noreturn void agent_main(int in, int out) {
        AgentState s = { .out = fdopen(out, "w") };
        FILE *f = fdopen(in, "r");
        char *line = NULL;
        size_t size = 0;
        if (!s.out || !f)
                _exit(3);
        while (getline(&line, &size, f) > 0) {
                line[strcspn(line, "\n")] = 0;
                char *rest = line, *verb = next_word(&rest);
                if (!verb)
                        agent_print(&s, "FAIL", "usage", "empty command");
                else if (verb[0] == 'd')
                        agent_dbus(&s, verb, rest);
                else
                        agent_native(&s, verb, rest);
        }
        _exit(0);
}

/* Test side. */

/* An agent of user u, ready for commands. */
static Agent *agent_start(const TestUser *u) {
        int cmd[2], ans[2];
        gid_t groups[32];
        int n_groups = ELEMENTSOF(groups);
        cr_assert_geq(getgrouplist(u->name, u->gid, groups, &n_groups), 0);
        cr_assert_eq(pipe2(cmd, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(ans, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                close(cmd[1]);
                close(ans[0]);
                for (size_t i = 0; i < n_agents; i++) {
                        close(agents[i]->in);
                        close(agents[i]->out);
                }
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (setgroups((size_t) n_groups, groups) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
                    setresuid(u->uid, u->uid, u->uid) < 0)
                        _exit(2);
                agent_main(cmd[0], ans[1]);
        }
        close(cmd[0]);
        close(ans[1]);
        cr_assert_lt(n_agents, ELEMENTSOF(agents));
        Agent *a = calloc(1, sizeof(Agent));
        cr_assert_not_null(a);
        *a = (Agent){ .user = u, .pid = pid, .in = cmd[1], .out = ans[0] };
        agents[n_agents++] = a;
        return a;
}

static void agents_stop(void) {
        for (size_t i = 0; i < n_agents; i++) {
                (void) kill(agents[i]->pid, SIGKILL);
                (void) waitpid(agents[i]->pid, NULL, 0);
                close(agents[i]->in);
                close(agents[i]->out);
                free(agents[i]);
        }
        n_agents = 0;
}

/* Runs a command in the agent: its answer (harness-owned). */
static const char *agent_vrun(Agent *a, const char *fmt, va_list ap) {
        _cleanup_free_ char *cmd = NULL;
        cr_assert_geq(vasprintf(&cmd, fmt, ap), 0);
        size_t n = strlen(cmd);
        cr_assert_eq(write(a->in, cmd, n), (ssize_t) n, "agent %s: %m", a->user->name);
        cr_assert_eq(write(a->in, "\n", 1), 1);
        int64_t deadline = harness_now_ms() + 2 * HARNESS_TIMEOUT_MS;
        for (;;) {
                char *nl = memchr(a->buf, '\n', a->len);
                if (nl) {
                        const char *line = harness_printf(h, "%.*s", (int) (nl - a->buf), a->buf);
                        a->len -= (size_t) (nl + 1 - a->buf);
                        memmove(a->buf, nl + 1, a->len);
                        return line;
                }
                cr_assert_lt(a->len, sizeof(a->buf), "an answer too long from %s", a->user->name);
                struct pollfd p = { .fd = a->out, .events = POLLIN };
                int64_t left = deadline - harness_now_ms();
                cr_assert(left > 0 && poll(&p, 1, (int) left) > 0, "%s did not answer `%s`\n%s",
                          a->user->name, cmd, harness_nodemgr_log(h));
                ssize_t k = read(a->out, a->buf + a->len, sizeof(a->buf) - a->len);
                if (k < 0 && errno == EINTR)
                        continue;
                cr_assert_gt(k, 0, "the agent of %s ended at `%s`", a->user->name, cmd);
                a->len += (size_t) k;
        }
}

static const char *agent_run(Agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *agent_run(Agent *a, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        const char *r = agent_vrun(a, fmt, ap);
        va_end(ap);
        return r;
}

/* Runs a command that must be accepted: what follows "OK" ("" when nothing). */
static const char *agent_ok(Agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *agent_ok(Agent *a, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        const char *r = agent_vrun(a, fmt, ap);
        va_end(ap);
        cr_assert(strncmp(r, "OK", 2) == 0 && (r[2] == 0 || r[2] == ' '), "%s: `%s` answered: %s\n%s",
                  a->user->name, fmt, r, harness_nodemgr_log(h));
        return r[2] ? r + 3 : r + 2;
}

static kactor_id agent_id(Agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kactor_id agent_id(Agent *a, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        const char *r = agent_vrun(a, fmt, ap);
        va_end(ap);
        kactor_id id;
        cr_assert(strncmp(r, "OK ", 3) == 0 && kactor_id_from_string(r + 3, &id) >= 0,
                  "%s: `%s` answered: %s\n%s", a->user->name, fmt, r, harness_nodemgr_log(h));
        return id;
}

static const char *idstr(kactor_id id) {
        char s[KACTOR_ID_STRING_MAX];
        kactor_id_to_string(id, s);
        return harness_printf(h, "%s", s);
}

static const char *actor_path(kactor_id id) {
        return harness_actor_path(h, (kactor_actor){ id });
}

static const char *object_path(kactor_id id) {
        return harness_object_path(h, (kactor_ref){ id });
}

/* Asserts that an answer is `kind` (FAIL: the request was refused; ERROR: the object holds an error)
 * with the error `name` and, unless NULL, a message that contains `needle`. */
#define assert_refused(reply, kind, name, needle)                                                           \
        assert_refused_at(__LINE__, (reply), (kind), (name), (needle))
static void assert_refused_at(int line, const char *reply, const char *kind, const char *name,
                              const char *needle) {
        size_t k = strlen(kind), n = strlen(name);
        cr_assert(strncmp(reply, kind, k) == 0 && reply[k] == ' ' && strncmp(reply + k + 1, name, n) == 0 &&
                          reply[k + 1 + n] == ' ',
                  "line %d: expected %s %s, got: %s\n%s", line, kind, name, reply, harness_nodemgr_log(h));
        if (needle)
                cr_assert(strstr(reply + k + n + 2, needle), "line %d: the message does not say \"%s\": %s",
                          line, needle, reply);
}

/* Asserts that an answer is the value `json`. */
#define assert_value(reply, json) assert_value_at(__LINE__, (reply), (json))
static void assert_value_at(int line, const char *reply, const char *json) {
        cr_assert(strncmp(reply, "VALUE ", 6) == 0 && strcmp(reply + 6, json) == 0,
                  "line %d: expected VALUE %s, got: %s\n%s", line, json, reply, harness_nodemgr_log(h));
}

/* The agent calls and gets the result: its answer to the get. */
static const char *agent_call_get(Agent *a, kactor_id actor, const char *method, const char *args) {
        kactor_id r = agent_id(a, "call %s %s %s", idstr(actor), method, args ?: "");
        return agent_run(a, "get %s", idstr(r));
}

/* The same over D-Bus: Call, then Get of the object it returned. */
static const char *agent_dcall_get(Agent *a, const char *path, const char *method) {
        const char *obj = agent_ok(a, "dcall %s %s", path, method);
        return agent_run(a, "dget %s", obj);
}

/* --- root's view -------------------------------------------------------------------------------------- */

/* A property as JSON, read by root over D-Bus. */
static const char *property_json(const char *path, const char *iface, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(kactor_value_freep) kactor_value *v = NULL;
        int r = sd_bus_call_method(harness_bus(h), HARNESS_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                                   "Get", &error, &reply, "ss", iface, name);
        cr_assert_geq(r, 0, "reading %s %s.%s: %s", path, iface, name, error.message ?: strerror(-r));
        cr_assert_geq(bus_message_read_value(reply, NULL, NULL, &v), 0);
        return harness_keep(h, kactor_value_to_json(v));
}

static const char *uid_json(uid_t uid) {
        return harness_printf(h, "%u", (unsigned) uid);
}

static const char *ids_json(uint32_t id) {
        return harness_printf(h, "[%u]", (unsigned) id);
}

/* The owner and the sharing of an actor, as root reads them. */
static void assert_sharing(kactor_id actor, uid_t owner, const char *allow_users, const char *allow_groups) {
        const char *path = actor_path(actor);
        cr_assert_str_eq(property_json(path, HARNESS_IFACE_ACTOR, "Owner"), uid_json(owner));
        cr_assert_str_eq(property_json(path, HARNESS_IFACE_ACTOR, "AllowUsers"), allow_users);
        cr_assert_str_eq(property_json(path, HARNESS_IFACE_ACTOR, "AllowGroups"), allow_groups);
}

/* --- fixture ------------------------------------------------------------------------------------------ */

static char moddir[] = "/tmp/kactor-ownmod-XXXXXX";
static bool moddir_made;

static void setup(void) {
        if (geteuid() != 0)
                kactor_skip_test("needs root (users, processes of other users)");
}

static void teardown(void) {
        char cmd[256];

        agents_stop();
        if (moddir_made) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", moddir);
                (void) system(cmd);
                moddir_made = false;
        }
        /* Before harness_stop(), which exits the test process when the node manager misbehaved; -f:
         * workers may still run as them. */
        TestUser *users[] = { &ua, &ub, &uc, &uo };
        for (size_t i = 0; i < ELEMENTSOF(users); i++)
                users_remove(users[i]);
        users_group_remove(&share);
        users_group_remove(&group);
        h = harness_stop(h);
}

TestSuite(owners, .init = setup, .fini = teardown, .timeout = 60);

/* The users, and a node manager whose access group is theirs, reachable by them. */
static void start(void) {
        /* An agent that ended is an error its pipe reports, not a signal that ends the test. */
        (void) signal(SIGPIPE, SIG_IGN);
        make_users();
        /* The harness keeps the pointer for restarts. */
        static const char *args[] = { "--access-group", group.name, NULL };
        h = harness_start(&(HarnessOptions){ .extra_env = REATTACH_ENV, .extra_args = args });
        /* The bus and the socket lie in the harness's private directory. */
        cr_assert_eq(chmod(h->dir, 0755), 0);
}

/* --- another user's actor ----------------------------------------------------------------------------- */

Test(owners, a_member_cannot_call_kill_or_look_up_anothers_actor_natively) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id counter = agent_id(a, "create counter Counter a-counter - -");
        assert_value(agent_call_get(a, counter, "increment", NULL), "1");
        assert_value(agent_call_get(a, counter, "increment", NULL), "2");

        const char *call_denied = harness_printf(h, "user %u may not call or look up it", (unsigned) ub.uid);
        for (int i = 0; i < 3; i++)
                /* Accepted, as calls are; its result, B's, says why it did not run. */
                assert_refused(agent_call_get(b, counter, "increment", NULL), "ERROR", ACCESS_DENIED,
                               call_denied);
        assert_refused(agent_run(b, "kill %s", idstr(counter)), "FAIL", ACCESS_DENIED,
                       harness_printf(h, "user %u may not kill it", (unsigned) ub.uid));
        assert_refused(agent_run(b, "getactor a-counter"), "FAIL", ACCESS_DENIED, call_denied);
        /* The actor is not detached: it lives while a handle on it is held, A's only. B letting go of
         * handles it never had takes nothing from A's. */
        for (int i = 0; i < 3; i++)
                agent_ok(b, "arelease %s", idstr(counter));

        /* Nothing of B's reached the actor: it runs on, with A's state, having run A's calls only. */
        cr_assert_str_eq(harness_property_string(h, actor_path(counter), HARNESS_IFACE_ACTOR, "State"),
                         "alive");
        assert_value(agent_call_get(a, counter, "get", NULL), "2");
        assert_value(agent_call_get(a, counter, "increment", NULL), "3");
        cr_assert_eq(harness_property_uint(h, actor_path(counter), HARNESS_IFACE_ACTOR, "CallsSubmitted"),
                     4);
        cr_assert_str_eq(idstr(agent_id(a, "getactor a-counter")), idstr(counter));
}

Test(owners, a_member_cannot_call_kill_or_look_up_anothers_actor_over_dbus) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        const char *path = agent_ok(a, "dcreate counter Counter {\"Name\": \"a-counter\"}");
        assert_value(agent_dcall_get(a, path, "increment"), "[1]");

        const char *call_denied = harness_printf(h, "user %u may not call or look up it", (unsigned) ub.uid);
        assert_refused(agent_run(b, "dcall %s increment", path), "FAIL", ACCESS_DENIED, call_denied);
        assert_refused(agent_run(b, "dgetactor a-counter"), "FAIL", ACCESS_DENIED, call_denied);
        /* Killing another user's actor is an administrator's act, which polkit decides: not here. */
        assert_refused(agent_run(b, "dkill %s", path), "FAIL", ACCESS_DENIED,
                       "kill another user's actor (polkit action io.kactor.manage-actors): "
                       "polkit is not running here");

        /* As an operator sees it. */
        const char *out;
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "call io.kactor.NodeManager1 %s io.kactor.Actor1 Call sav increment 0",
                                   path),
                      0, "B's busctl Call went through: %s", out);
        cr_assert(strstr(out, call_denied), "%s", out);
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "call io.kactor.NodeManager1 %s io.kactor.Actor1 Kill b true", path),
                      0, "B's busctl Kill went through: %s", out);
        cr_assert(strstr(out, "polkit is not running here, and only root may"), "%s", out);
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "call io.kactor.NodeManager1 /io/kactor/NodeManager1 "
                                   "io.kactor.NodeManager1 GetActor s a-counter"),
                      0, "B's busctl GetActor went through: %s", out);
        cr_assert(strstr(out, call_denied), "%s", out);

        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), "alive");
        assert_value(agent_dcall_get(a, path, "get"), "[1]");
        cr_assert_eq(harness_property_uint(h, path, HARNESS_IFACE_ACTOR, "CallsSubmitted"), 2);
        cr_assert_str_eq(agent_ok(a, "dgetactor a-counter"), path);
}

Test(owners, an_outsider_is_refused_everything) {
        start();
        Agent *a = agent_start(&ua), *o = agent_start(&uo);
        kactor_id counter = agent_id(a, "create counter Counter a-counter - -");
        kactor_id object = agent_id(a, "put \"A's value\"");
        const char *path = actor_path(counter), *opath = object_path(object);

        /* Not a member: the socket refuses the session itself (EACCES). */
        assert_refused(agent_run(o, "connect"), "FAIL", "errno:13", NULL);
        const char *denied =
                harness_printf(h, "user %u may not use this node manager (not root, not in group %s)",
                               (unsigned) uo.uid, group.name);
        assert_refused(agent_run(o, "dgetactor a-counter"), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dcall %s increment", path), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dkill %s", path), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dget %s", opath), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dwait %s", opath), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "drelease %s", opath), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dput 1"), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dcreate counter Counter"), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(o, "dprop %s " OBJECT_IFACE " State", opath), "FAIL", OTHERS_OBJECT, NULL);

        assert_value(agent_call_get(a, counter, "increment", NULL), "1");
        assert_value(agent_run(a, "get %s", idstr(object)), "\"A's value\"");
}

/* --- another user's objects --------------------------------------------------------------------------- */

Test(owners, a_member_cannot_get_wait_or_release_anothers_objects_natively) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id counter = agent_id(a, "create counter Counter - - -");
        kactor_id put = agent_id(a, "put {\"secret\": \"A's value\"}");
        kactor_id result = agent_id(a, "call %s increment", idstr(counter));
        assert_value(agent_run(a, "get %s", idstr(result)), "1");
        kactor_id own = agent_id(b, "put \"B's value\"");

        /* B guesses the ids (here the test hands them over). */
        const char *denied =
                harness_printf(h, "belongs to another user: user %u may not use it", (unsigned) ub.uid);
        assert_refused(agent_run(b, "get %s", idstr(put)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "get %s", idstr(result)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "wait %s", idstr(put)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "wait %s", idstr(result)), "FAIL", ACCESS_DENIED, denied);
        /* Nor hidden among its own. */
        assert_refused(agent_run(b, "get %s %s", idstr(own), idstr(put)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "wait %s %s", idstr(own), idstr(result)), "FAIL", ACCESS_DENIED, denied);
        /* A release of what B never held drops nothing of A's. */
        (void) agent_run(b, "release %s %s", idstr(put), idstr(result));
        assert_value(agent_run(b, "get %s", idstr(own)), "\"B's value\"");

        assert_value(agent_run(a, "get %s", idstr(put)), "{\"secret\": \"A's value\"}");
        assert_value(agent_run(a, "get %s", idstr(result)), "1");
        cr_assert_str_eq(agent_ok(a, "wait %s %s", idstr(put), idstr(result)), "2");
}

Test(owners, a_member_cannot_get_release_or_see_anothers_objects_over_dbus) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        const char *actor = agent_ok(a, "dcreate counter Counter");
        const char *put = agent_ok(a, "dput \"A's secret\"");
        const char *result = agent_ok(a, "dcall %s increment", actor);
        assert_value(agent_run(a, "dget %s", result), "[1]");

        const char *denied =
                harness_printf(h, "belongs to another user: user %u may not use it", (unsigned) ub.uid);
        const char *objects[] = { put, result };
        for (size_t i = 0; i < ELEMENTSOF(objects); i++) {
                assert_refused(agent_run(b, "dget %s", objects[i]), "FAIL", ACCESS_DENIED, denied);
                assert_refused(agent_run(b, "dwait %s", objects[i]), "FAIL", ACCESS_DENIED, denied);
                /* Pinned over D-Bus by A: only A's Release lets go of it. */
                assert_refused(agent_run(b, "drelease %s", objects[i]), "FAIL", ACCESS_DENIED, denied);
                /* Its properties are refused to B as its methods are. */
                assert_refused(agent_run(b, "dprop %s " OBJECT_IFACE " Owner", objects[i]), "FAIL",
                               OTHERS_OBJECT, denied);
                assert_refused(agent_run(b, "dprop %s " OBJECT_IFACE " State", objects[i]), "FAIL",
                               OTHERS_OBJECT, denied);
        }
        kactor_id never = { 0x7fffffffffffffffULL, 0x12345 };
        assert_refused(agent_run(b, "dprop %s " OBJECT_IFACE " State", object_path(never)), "FAIL",
                       NO_SUCH_OBJECT, NULL);

        /* As an operator sees it. */
        const char *out;
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "call io.kactor.NodeManager1 /io/kactor/NodeManager1 "
                                   "io.kactor.NodeManager1 Release ao 1 %s",
                                   put),
                      0, "B's busctl Release went through: %s", out);
        cr_assert(strstr(out, denied), "%s", out);
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "get-property io.kactor.NodeManager1 %s " OBJECT_IFACE " Owner", put),
                      0, "B read the owner of A's object: %s", out);
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "get-property io.kactor.NodeManager1 %s " OBJECT_IFACE " State", result),
                      0, "B read the state of A's result: %s", out);
        cr_assert_eq(users_busctl(h, &ua, &out,
                                  "get-property io.kactor.NodeManager1 %s " OBJECT_IFACE " Owner", put),
                     0, "%s", out);
        cr_assert_str_eq(out, harness_printf(h, "u %u", (unsigned) ua.uid));

        /* A still has both, and owns them. */
        assert_value(agent_run(a, "dget %s", put), "[\"A's secret\"]");
        assert_value(agent_run(a, "dget %s", result), "[1]");
        assert_value(agent_run(a, "dprop %s " OBJECT_IFACE " Owner", result), uid_json(ua.uid));
        cr_assert_str_eq(property_json(put, OBJECT_IFACE, "Owner"), uid_json(ua.uid));
        /* A's own Release works: B's was refused for being B's. */
        agent_ok(a, "drelease %s", put);
        assert_refused(agent_run(a, "dget %s", put), "FAIL", NO_SUCH_OBJECT, NULL);
}

/* --- root --------------------------------------------------------------------------------------------- */

Test(owners, root_may_call_get_and_kill_anyones_actors_and_objects) {
        start();
        Agent *a = agent_start(&ua);
        kactor_id counter = agent_id(a, "create counter Counter a-counter - -");
        assert_value(agent_call_get(a, counter, "increment", NULL), "1");
        kactor_id put = agent_id(a, "put \"A's value\"");
        kactor_id result = agent_id(a, "call %s get", idstr(counter));
        assert_value(agent_run(a, "get %s", idstr(result)), "1");
        const char *dactor = agent_ok(a, "dcreate counter Counter");
        const char *dput = agent_ok(a, "dput 7");

        kactor_client *c = harness_client(h);
        kactor_actor found;
        cr_assert_eq(kactor_get_actor(c, "a-counter", &found), 0, "%s", kactor_client_error_message(c));
        cr_assert(kactor_id_equal(found.id, counter));
        kactor_value *v = harness_call(c, found, "increment", NULL);
        harness_assert_value(v, "2");
        kactor_value_free(v);
        v = harness_get(c, (kactor_ref){ put });
        harness_assert_value(v, "\"A's value\"");
        kactor_value_free(v);
        v = harness_get(c, (kactor_ref){ result });
        harness_assert_value(v, "1");
        kactor_value_free(v);
        bool ready[2];
        cr_assert_eq(
                kactor_wait(c, (kactor_ref[]){ { put }, { result } }, 2, 2, HARNESS_TIMEOUT_USEC, ready), 2);

        /* Over D-Bus: A's objects and A's actor. */
        cr_assert(strstr(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot",
                                                "1", dput, "10000000", NULL),
                         "x 7"));
        cr_assert_str_eq(property_json(dput, OBJECT_IFACE, "Owner"), uid_json(ua.uid));
        cr_assert_str_eq(property_json(object_path(put), OBJECT_IFACE, "State"), "\"ready\"");
        const char *obj = harness_busctl_path(h,
                                              harness_busctl_call_ok(h, dactor, HARNESS_IFACE_ACTOR, "Call",
                                                                     "sav", "increment", "0", NULL));
        cr_assert(strstr(harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Get", "aot",
                                                "1", obj, "10000000", NULL),
                         "x 1"));
        cr_assert_str_eq(
                harness_busctl_path(h,
                                    harness_busctl_call_ok(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER,
                                                           "GetActor", "s", "a-counter", NULL)),
                actor_path(counter));

        /* Root kills: natively, and over D-Bus without polkit. */
        cr_assert_eq(kactor_kill(c, (kactor_actor){ counter }, true), 0, "%s",
                     kactor_client_error_message(c));
        cr_assert(harness_wait_actor_state(h, actor_path(counter), "dead", HARNESS_TIMEOUT_MS));
        harness_busctl_call_ok(h, dactor, HARNESS_IFACE_ACTOR, "Kill", "b", "true", NULL);
        cr_assert(harness_wait_actor_state(h, dactor, "dead", HARNESS_TIMEOUT_MS));
        assert_refused(agent_call_get(a, counter, "get", NULL), "ERROR", ACTOR_DIED, NULL);
        assert_refused(agent_run(a, "dcall %s get", dactor), "FAIL", ACTOR_DIED, NULL);
        /* What A made is still A's. */
        assert_value(agent_run(a, "get %s", idstr(put)), "\"A's value\"");
}

/* --- sharing ------------------------------------------------------------------------------------------ */

Test(owners, allow_users_lets_those_users_call_and_look_up_but_not_kill) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub), *cc = agent_start(&uc), *o = agent_start(&uo);
        /* With B, and with O, who may not use the node manager at all. */
        kactor_id shared =
                agent_id(a, "create counter Counter a-shared %u,%u -", (unsigned) ub.uid, (unsigned) uo.uid);
        assert_sharing(shared, ua.uid, harness_printf(h, "[%u, %u]", (unsigned) ub.uid, (unsigned) uo.uid),
                       "[]");
        const char *path = actor_path(shared);

        /* B: looks it up, calls it and gets its own results, natively and over D-Bus. */
        cr_assert_str_eq(idstr(agent_id(b, "getactor a-shared")), idstr(shared));
        kactor_id mine = agent_id(b, "call %s increment", idstr(shared));
        assert_value(agent_run(b, "get %s", idstr(mine)), "1");
        cr_assert_str_eq(agent_ok(b, "dgetactor a-shared"), path);
        assert_value(agent_dcall_get(b, path, "increment"), "[2]");
        /* The result is B's, not the actor's owner's. */
        cr_assert_str_eq(property_json(object_path(mine), OBJECT_IFACE, "Owner"), uid_json(ub.uid));
        assert_refused(agent_run(a, "get %s", idstr(mine)), "FAIL", ACCESS_DENIED,
                       harness_printf(h, "user %u may not use it", (unsigned) ua.uid));

        /* Killing stays A's. */
        assert_refused(agent_run(b, "kill %s", idstr(shared)), "FAIL", ACCESS_DENIED,
                       harness_printf(h, "user %u may not kill it", (unsigned) ub.uid));
        assert_refused(agent_run(b, "dkill %s", path), "FAIL", ACCESS_DENIED, "polkit is not running here");

        /* C, a member it was not shared with, and O, an outsider it was shared with, are refused as
         * before. */
        const char *c_denied = harness_printf(h, "user %u may not call or look up it", (unsigned) uc.uid);
        assert_refused(agent_call_get(cc, shared, "increment", NULL), "ERROR", ACCESS_DENIED, c_denied);
        assert_refused(agent_run(cc, "getactor a-shared"), "FAIL", ACCESS_DENIED, c_denied);
        assert_refused(agent_run(cc, "dcall %s increment", path), "FAIL", ACCESS_DENIED, c_denied);
        assert_refused(agent_run(cc, "kill %s", idstr(shared)), "FAIL", ACCESS_DENIED, "may not kill it");
        assert_refused(agent_run(o, "connect"), "FAIL", "errno:13", NULL);
        assert_refused(agent_run(o, "dcall %s increment", path), "FAIL", ACCESS_DENIED,
                       "may not use this node manager");
        assert_refused(agent_run(o, "dgetactor a-shared"), "FAIL", ACCESS_DENIED,
                       "may not use this node manager");

        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), "alive");
        assert_value(agent_call_get(a, shared, "get", NULL), "2");
        /* Its owner may kill it. */
        agent_ok(a, "kill %s", idstr(shared));
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));
}

Test(owners, allow_groups_lets_the_groups_members_call_but_not_kill) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub), *cc = agent_start(&uc), *o = agent_start(&uo);
        /* As an operator shares it: by the group's name, D-Bus type "as". */
        const char *out;
        cr_assert_eq(
                users_busctl(
                        h, &ua, &out,
                        "call io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1 "
                        "CreateActor 'ssava{sv}' counter Counter 0 2 AllowGroups as 1 %s Name s a-group",
                        share.name),
                0, "A's CreateActor: %s\n%s", out, harness_nodemgr_log(h));
        const char *path = harness_busctl_path(h, out);
        kactor_type t;
        kactor_id shared;
        cr_assert_geq(bus_path_parse(path, &t, &shared), 0);
        assert_sharing(shared, ua.uid, "[]", ids_json(share.gid));
        cr_assert_eq(users_busctl(h, &ua, &out,
                                  "get-property io.kactor.NodeManager1 %s io.kactor.Actor1 AllowGroups",
                                  path),
                     0, "%s", out);
        cr_assert_str_eq(out, harness_printf(h, "au 1 %u", (unsigned) share.gid));

        /* B is in the group: calls over D-Bus and natively, looks it up, reads its own results. */
        assert_value(agent_dcall_get(b, path, "increment"), "[1]");
        cr_assert_str_eq(agent_ok(b, "dgetactor a-group"), path);
        cr_assert_str_eq(idstr(agent_id(b, "getactor a-group")), idstr(shared));
        assert_value(agent_call_get(b, shared, "increment", NULL), "2");
        cr_assert_eq(users_busctl(h, &ub, &out,
                                  "call io.kactor.NodeManager1 %s io.kactor.Actor1 Call sav get 0", path),
                     0, "B's busctl Call: %s", out);

        /* But may not kill it. */
        assert_refused(agent_run(b, "dkill %s", path), "FAIL", ACCESS_DENIED, "polkit is not running here");
        assert_refused(agent_run(b, "kill %s", idstr(shared)), "FAIL", ACCESS_DENIED, "may not kill it");

        /* C, a member of the access group but not of this one, and O are refused. */
        const char *c_denied = harness_printf(h, "user %u may not call or look up it", (unsigned) uc.uid);
        assert_refused(agent_run(cc, "dcall %s increment", path), "FAIL", ACCESS_DENIED, c_denied);
        assert_refused(agent_run(cc, "dgetactor a-group"), "FAIL", ACCESS_DENIED, c_denied);
        assert_refused(agent_call_get(cc, shared, "increment", NULL), "ERROR", ACCESS_DENIED, c_denied);
        assert_refused(agent_run(o, "dcall %s increment", path), "FAIL", ACCESS_DENIED,
                       "may not use this node manager");

        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), "alive");
        assert_value(agent_dcall_get(a, path, "get"), "[2]");
        /* Its owner kills it over D-Bus without polkit. */
        agent_ok(a, "dkill %s", path);
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS));
}

Test(owners, sharing_with_a_user_or_group_that_does_not_exist_is_refused) {
        start();
        Agent *a = agent_start(&ua);
        assert_refused(agent_run(a, "dcreate counter Counter {\"AllowUsers\": [\"kown-nobody-such\"]}"),
                       "FAIL", "org.freedesktop.DBus.Error.InvalidArgs",
                       "AllowUsers: no user 'kown-nobody-such'");
        assert_refused(agent_run(a, "dcreate counter Counter {\"AllowGroups\": [\"kown-no-such-group\"]}"),
                       "FAIL", "org.freedesktop.DBus.Error.InvalidArgs",
                       "AllowGroups: no group 'kown-no-such-group'");
        assert_refused(agent_run(a, "dcreate counter Counter {\"AllowUsers\": \"%s\"}", ub.name), "FAIL",
                       "org.freedesktop.DBus.Error.InvalidArgs", "AllowUsers must be of D-Bus type 'as'");
        cr_assert_eq(harness_property_uint(h, HARNESS_BUS_PATH, HARNESS_IFACE_MANAGER, "Actors"), 0);
}

/* --- references and handles --------------------------------------------------------------------------- */

Test(owners, a_reference_to_anothers_object_gives_no_right) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id secret = agent_id(a, "put 41");
        const char *ref = harness_printf(h, "\"$o:%s\"", idstr(secret));
        kactor_id echo = agent_id(b, "create testmod Echo - - -");
        const char *denied = harness_printf(h, "object %s belongs to another user: user %u may not use it",
                                            idstr(secret), (unsigned) ub.uid);

        /* B's own reference goes through (top level: replaced by its value). */
        kactor_id own = agent_id(b, "put 7");
        assert_value(agent_call_get(b, echo, "echo", harness_printf(h, "[\"$o:%s\"]", idstr(own))), "[7]");

        /* A's, as an argument of a call to B's own actor: top level, nested in a list, in a map. */
        assert_refused(agent_call_get(b, echo, "echo", harness_printf(h, "[%s]", ref)), "ERROR",
                       ACCESS_DENIED, denied);
        assert_refused(agent_call_get(b, echo, "echo", harness_printf(h, "[[1, %s]]", ref)), "ERROR",
                       ACCESS_DENIED, denied);
        assert_refused(agent_call_get(b, echo, "echo", harness_printf(h, "[{\"k\": [%s]}]", ref)), "ERROR",
                       ACCESS_DENIED, denied);
        /* In a value B puts, in the arguments of B's task, of B's new actor. */
        kactor_id p = agent_id(b, "put [%s]", ref);
        assert_refused(agent_run(b, "get %s", idstr(p)), "ERROR", ACCESS_DENIED, denied);
        p = agent_id(b, "submit testmod echo [%s]", ref);
        assert_refused(agent_run(b, "get %s", idstr(p)), "ERROR", ACCESS_DENIED, denied);
        p = agent_id(b, "submit testmod echo [[%s]]", ref);
        assert_refused(agent_run(b, "get %s", idstr(p)), "ERROR", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "create testmod Echo - - - [%s]", ref), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "create testmod Echo - - - [[%s]]", ref), "FAIL", ACCESS_DENIED, denied);

        /* The same over D-Bus, where a reference is an object path. */
        const char *echo_path = actor_path(echo);
        const char *obj = agent_ok(b, "dcall %s echo [%s]", echo_path, ref);
        assert_refused(agent_run(b, "dget %s", obj), "FAIL", ACCESS_DENIED, denied);
        obj = agent_ok(b, "dcall %s echo [[%s]]", echo_path, ref);
        assert_refused(agent_run(b, "dget %s", obj), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "dput [%s]", ref), "FAIL", ACCESS_DENIED, denied);

        assert_value(agent_run(a, "get %s", idstr(secret)), "41");
}

/* A worker's own client is its user's: an id it is told is no more than B's guess. Compiled here, as
 * no test module gets an object by an id it is given as plain data. */
static const char peek_module[] =
        "#include <kactor/module.h>\n"
        "static int peek_init(kactor_ctx *ctx, const kactor_value *args, void **ret) {\n"
        "        *ret = NULL;\n"
        "        return 0;\n"
        "}\n"
        "/* get(id) -> the value of object id (32 hex digits), as this worker gets it */\n"
        "static int peek_get(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {\n"
        "        kactor_client *c = kactor_ctx_client(ctx);\n"
        "        const char *s;\n"
        "        kactor_ref ref;\n"
        "        if (kactor_arg_string(ctx, args, 0, &s) < 0 || kactor_id_from_string(s, &ref.id) < 0)\n"
        "                return kactor_fail(ctx, \"get(id)\");\n"
        "        if (kactor_get1(c, ref, 5000000, ret) < 0)\n"
        "                return kactor_fail(ctx, \"get: %s: %s\",\n"
        "                                   kactor_error_name(kactor_client_error(c)) ?: \"?\",\n"
        "                                   kactor_client_error_message(c));\n"
        "        return 0;\n"
        "}\n"
        "static const kactor_method peek_methods[] = { { .name = \"get\", .fn = peek_get }, {} };\n"
        "static const kactor_class peek_class = {\n"
        "        .name = \"Peek\", .init = peek_init, .methods = peek_methods,\n"
        "};\n"
        "KACTOR_MODULE(.name = \"peek\", .classes = (const kactor_class *const[]) { &peek_class, NULL });\n";

/* Compiles peek_module into a directory others can read: the module's path (harness-owned). */
static const char *build_peek_module(void) {
        _cleanup_free_ char *src_dir = strdup(h->build);
        cr_assert_not_null(src_dir);
        char *slash = strrchr(src_dir, '/');
        cr_assert_not_null(slash);
        *slash = 0; /* the build directory sits in the source tree */
        if (access(harness_printf(h, "%s/include/kactor/module.h", src_dir), R_OK) < 0 ||
            system("command -v cc >/dev/null 2>&1") != 0)
                kactor_skip_test(
                        "needs a C compiler and the source tree's include/ beside the build directory");
        cr_assert_not_null(mkdtemp(moddir));
        moddir_made = true;
        cr_assert_eq(chmod(moddir, 0755), 0);
        const char *src = harness_printf(h, "%s/peek.c", moddir),
                   *so = harness_printf(h, "%s/peek.so", moddir);
        FILE *f = fopen(src, "we");
        cr_assert_not_null(f);
        cr_assert_geq(fputs(peek_module, f), 0);
        cr_assert_eq(fclose(f), 0);
        const char *cmd = harness_printf(h,
                                         "cc -shared -fPIC -O1 -I'%s/include' -o '%s' '%s' -L'%s' -lkactor "
                                         "-Wl,-rpath,'%s' 2>&1",
                                         src_dir, so, src, h->build, h->build);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        cr_assert_eq(chmod(so, 0755), 0);
        return so;
}

Test(owners, a_users_actor_cannot_get_anothers_object_by_its_id) {
        start();
        const char *module = build_peek_module();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id secret = agent_id(a, "put \"A's secret\"");
        kactor_id own = agent_id(b, "put \"B's value\"");
        kactor_id peek = agent_id(b, "create %s Peek - - -", module);

        /* The worker, B's, reads B's objects... */
        assert_value(agent_call_get(b, peek, "get", harness_printf(h, "[\"%s\"]", idstr(own))),
                     "\"B's value\"");
        /* ...and not A's, whose id it was given as a plain string. */
        assert_refused(agent_call_get(b, peek, "get", harness_printf(h, "[\"%s\"]", idstr(secret))), "ERROR",
                       TASK_FAILED,
                       harness_printf(h,
                                      "get: " ACCESS_DENIED
                                      ": object %s belongs to another user: user %u may not use it",
                                      idstr(secret), (unsigned) ub.uid));
        assert_value(agent_run(a, "get %s", idstr(secret)), "\"A's secret\"");
}

Test(owners, an_actor_handle_gives_no_right) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id counter = agent_id(a, "create counter Counter - - -");
        assert_value(agent_call_get(a, counter, "increment", NULL), "1");
        const char *handle = harness_printf(h, "\"$a:%s\"", idstr(counter));
        const char *denied = harness_printf(h, "user %u may not call or look up it", (unsigned) ub.uid);

        /* B's actor, given A's handle, calls A's actor as B: refused. */
        kactor_id holder = agent_id(b, "create testmod Holder - - - [%s]", handle);
        assert_refused(agent_call_get(b, holder, "call", "[\"increment\"]"), "ERROR", TASK_FAILED, denied);
        /* B's task too. */
        kactor_id t = agent_id(b, "submit testmod call_actor [%s, \"increment\"]", handle);
        assert_refused(agent_run(b, "get %s", idstr(t)), "ERROR", TASK_FAILED, denied);
        /* Holding the handle is no licence to kill either. */
        assert_refused(agent_run(b, "kill %s", idstr(counter)), "FAIL", ACCESS_DENIED, "may not kill it");

        assert_value(agent_call_get(a, counter, "get", NULL), "1");
}

/* --- tasks -------------------------------------------------------------------------------------------- */

Test(owners, a_users_task_result_is_not_anothers) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id task = agent_id(b, "submit testmod add [2, 3]");
        assert_value(agent_run(b, "get %s", idstr(task)), "5");
        const char *dtask = agent_ok(b, "dsubmit testmod add [20, 22]");
        assert_value(agent_run(b, "dget %s", dtask), "[42]");

        const char *denied =
                harness_printf(h, "belongs to another user: user %u may not use it", (unsigned) ua.uid);
        assert_refused(agent_run(a, "get %s", idstr(task)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(a, "wait %s", idstr(task)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(a, "dget %s", object_path(task)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(a, "dget %s", dtask), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(a, "drelease %s", dtask), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(a, "dprop %s " OBJECT_IFACE " State", dtask), "FAIL", OTHERS_OBJECT, NULL);
        /* Nor passed on by A as an argument. */
        kactor_id t = agent_id(a, "submit testmod echo [\"$o:%s\"]", idstr(task));
        assert_refused(agent_run(a, "get %s", idstr(t)), "ERROR", ACCESS_DENIED, denied);

        cr_assert_str_eq(property_json(dtask, OBJECT_IFACE, "Owner"), uid_json(ub.uid));
        assert_value(agent_run(b, "get %s", idstr(task)), "5");
        assert_value(agent_run(b, "dget %s", dtask), "[42]");
}

/* --- tracing ------------------------------------------------------------------------------------------ */

Test(owners, changing_how_the_node_traces_stays_roots) {
        start();
        Agent *b = agent_start(&ub), *o = agent_start(&uo);
        const char *methods[] = { "Reset", "SetEnabled 0", "SetEnabled 1", "Timeline" };
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                assert_refused(
                        agent_run(b, "dtrace %s", methods[i]), "FAIL", ACCESS_DENIED,
                        "(polkit action io.kactor.trace): polkit is not running here, and only root may");
                assert_refused(agent_run(o, "dtrace %s", methods[i]), "FAIL", ACCESS_DENIED,
                               "may not use this node manager");
        }
        const char *out;
        cr_assert_neq(users_busctl(h, &ub, &out,
                                   "call io.kactor.NodeManager1 /io/kactor/NodeManager1 " TRACE_IFACE
                                   " Reset"),
                      0, "B reset the histograms: %s", out);
        cr_assert(strstr(out, "polkit is not running here"), "%s", out);

        /* Root passes the same check; what it gets then is tracing's own answer. */
        int enabled = 0;
        cr_assert_geq(sd_bus_get_property_trivial(harness_bus(h), HARNESS_BUS_NAME, HARNESS_BUS_PATH,
                                                  TRACE_IFACE, "Enabled", NULL, 'b', &enabled),
                      0);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = harness_bus_call(h, &error, NULL, HARNESS_BUS_PATH, TRACE_IFACE, "Reset", "");
        if (enabled) {
                cr_assert_geq(r, 0, "root's Reset: %s", error.message);
                r = harness_bus_call(h, &error, NULL, HARNESS_BUS_PATH, TRACE_IFACE, "SetEnabled", "b", 1);
                cr_assert_geq(r, 0, "root's SetEnabled: %s", error.message);
        } else {
                cr_log_info("tracing is off here (%s): root's calls get NotSupported",
                            harness_property_string(h, HARNESS_BUS_PATH, TRACE_IFACE, "Reason"));
                cr_assert(r < 0 && sd_bus_error_has_name(&error, NOT_SUPPORTED), "root's Reset: %s: %s",
                          error.name, error.message);
        }
        sd_bus_error_free(&error);
}

/* --- a restart ---------------------------------------------------------------------------------------- */

/* A restart (SIGTERM: the journal is complete; SIGKILL: a crash) keeps who owns what: the actors'
 * owners and sharing, the objects' owners, that of the result of a call in flight meanwhile. */
static void restart_keeps_owners(int sig) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub), *cc = agent_start(&uc);
        kactor_id shared = agent_id(a, "create counter Counter a-shared %u -", (unsigned) ub.uid);
        assert_value(agent_call_get(a, shared, "increment", NULL), "1");
        kactor_id secret = agent_id(a, "put \"A's secret\"");
        const char *pinned = agent_ok(a, "dput \"A's pinned secret\"");
        kactor_id mine = agent_id(b, "call %s increment", idstr(shared));
        assert_value(agent_run(b, "get %s", idstr(mine)), "2");
        const char *dmine = agent_ok(b, "dcall %s increment", actor_path(shared));
        assert_value(agent_run(b, "dget %s", dmine), "[3]");
        /* B's call still running on A's shared actor when the node manager goes (one: see
         * a_dbus_call_in_flight_at_a_restart_stays_its_callers for what more would meet). */
        kactor_id sleeper = agent_id(a, "create testmod Sleeper - %u -", (unsigned) ub.uid);
        kactor_id slow = agent_id(b, "call %s sleep_then [700, \"B's slow result\"]", idstr(sleeper));

        harness_restart_nodemgr(h, sig);

        const char *denied =
                harness_printf(h, "belongs to another user: user %u may not use it", (unsigned) ub.uid);
        assert_refused(agent_run(b, "get %s", idstr(secret)), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "dget %s", pinned), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "drelease %s", pinned), "FAIL", ACCESS_DENIED, denied);
        assert_refused(agent_run(b, "dprop %s " OBJECT_IFACE " State", pinned), "FAIL", OTHERS_OBJECT,
                       NULL);
        const char *a_denied = harness_printf(h, "user %u may not use it", (unsigned) ua.uid);
        assert_refused(agent_run(a, "get %s", idstr(mine)), "FAIL", ACCESS_DENIED, a_denied);
        assert_value(agent_run(a, "get %s", idstr(secret)), "\"A's secret\"");
        assert_value(agent_run(a, "dget %s", pinned), "[\"A's pinned secret\"]");
        assert_refused(agent_run(a, "dget %s", dmine), "FAIL", ACCESS_DENIED, a_denied);
        assert_value(agent_run(b, "get %s", idstr(mine)), "2");
        assert_value(agent_run(b, "dget %s", dmine), "[3]");
        cr_assert_str_eq(property_json(pinned, OBJECT_IFACE, "Owner"), uid_json(ua.uid));
        cr_assert_str_eq(property_json(object_path(mine), OBJECT_IFACE, "Owner"), uid_json(ub.uid));
        cr_assert_str_eq(property_json(dmine, OBJECT_IFACE, "Owner"), uid_json(ub.uid));

        /* The call that was in flight ends as B's. */
        assert_value(agent_run(b, "get %s", idstr(slow)), "\"B's slow result\"");
        assert_refused(agent_run(a, "get %s", idstr(slow)), "FAIL", ACCESS_DENIED, a_denied);
        cr_assert_str_eq(property_json(object_path(slow), OBJECT_IFACE, "Owner"), uid_json(ub.uid));

        /* The sharing holds, and so do its limits. */
        assert_sharing(shared, ua.uid, ids_json(ub.uid), "[]");
        assert_sharing(sleeper, ua.uid, ids_json(ub.uid), "[]");
        assert_value(agent_call_get(b, shared, "increment", NULL), "4");
        cr_assert_str_eq(idstr(agent_id(b, "getactor a-shared")), idstr(shared));
        assert_refused(agent_run(b, "kill %s", idstr(shared)), "FAIL", ACCESS_DENIED, "may not kill it");
        assert_refused(agent_run(b, "dkill %s", actor_path(shared)), "FAIL", ACCESS_DENIED,
                       "polkit is not running here");
        assert_refused(agent_call_get(cc, shared, "increment", NULL), "ERROR", ACCESS_DENIED,
                       harness_printf(h, "user %u may not call or look up it", (unsigned) uc.uid));
        assert_value(agent_call_get(a, shared, "get", NULL), "4");
}

Test(owners, owners_and_sharing_survive_a_restart) {
        restart_keeps_owners(SIGTERM);
}

Test(owners, owners_and_sharing_survive_a_crash_of_the_node_manager) {
        restart_keeps_owners(SIGKILL);
}

/* A D-Bus call in flight at a restart is made again by the next node manager for its caller (the
 * journal keeps it until it is answered): B's result stays B's. */
Test(owners, a_dbus_call_in_flight_at_a_restart_stays_its_callers) {
        start();
        Agent *a = agent_start(&ua), *b = agent_start(&ub);
        kactor_id sleeper = agent_id(a, "create testmod Sleeper - %u -", (unsigned) ub.uid);
        (void) harness_actor_pid(h, (kactor_actor){ sleeper });
        const char *slow =
                agent_ok(b, "dcall %s sleep_then [500, \"B's slow result\"]", actor_path(sleeper));

        harness_restart_nodemgr(h, SIGTERM);

        assert_value(agent_run(b, "dget %s", slow), "[\"B's slow result\"]");
        assert_refused(agent_run(a, "dget %s", slow), "FAIL", ACCESS_DENIED,
                       harness_printf(h, "user %u may not use it", (unsigned) ua.uid));
        cr_assert_str_eq(property_json(slow, OBJECT_IFACE, "Owner"), uid_json(ub.uid));
}
