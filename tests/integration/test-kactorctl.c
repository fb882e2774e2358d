/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * kactorctl as an operator runs it (docs/kactorctl.md, man/kactorctl.1.scd): global options in any
 * position and '--' ending them, negative numbers as values, create waiting for the constructor and
 * its exit status, list and top hiding dead actors without --all, --no-legend, --json=short|pretty,
 * help VERB, top fitting a terminal of a given size (a pseudo-terminal and $LINES), the pager, the
 * bash completion, and the man pages (built, rendered by man, naming every option there is).
 *
 * Each run is `sh -c` on the real binary against the harness's node manager; what a test looks at is
 * what a person would see: stdout, stderr and the exit status.
 */

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static Harness *h;

static void setup(void) {
        h = harness_start(NULL);
}

static void teardown(void) {
        h = harness_stop(h);
}

TestSuite(kactorctl, .init = setup, .fini = teardown, .timeout = 120);

typedef struct Run {
        int status; /* the exit status; -1 when killed by a signal */
        const char *out, *err;
} Run;

static const char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        char *s = NULL;
        size_t size = 0;

        cr_assert_not_null(f, "cannot open %s", path);
        FILE *m = open_memstream(&s, &size);
        cr_assert_not_null(m);
        for (int c; (c = fgetc(f)) != EOF;)
                fputc(c, m);
        fclose(f);
        fclose(m);
        return harness_keep(h, s);
}

/*
 * Runs a shell command line with $CTL (kactorctl, on the harness's bus through $KACTOR_BUS_ADDRESS),
 * $COUNTER and $TESTMOD (the modules' paths), $COMPLETION (the bash completion) and $MAN (the source
 * of the man pages) set; bounded by timeout(1).
 */
static Run sh(const char *format, ...) __attribute__((format(printf, 1, 2)));
static Run sh(const char *format, ...) {
        char *script;
        va_list ap;
        Run run = {};

        va_start(ap, format);
        cr_assert(vasprintf(&script, format, ap) >= 0);
        va_end(ap);
        harness_keep(h, script);

        const char *out = harness_printf(h, "%s/out", h->dir), *err = harness_printf(h, "%s/err", h->dir);
        const char *file = harness_printf(h, "%s/script", h->dir);
        FILE *f = fopen(file, "we");
        cr_assert_not_null(f);
        fprintf(f,
                "export KACTOR_BUS_ADDRESS='%s' CTL='%s/kactorctl' COUNTER='%s' TESTMOD='%s'\n"
                "export COMPLETION='%s/shell-completion/bash/kactorctl' MAN='%s/man'\n"
                "unset LINES COLUMNS KACTOR_PAGER SYSTEMD_PAGER PAGER\n"
                "%s\n",
                h->bus_address, h->build, harness_module(h, "counter"), harness_module(h, "testmod"),
                getenv("KACTOR_SRCDIR") ?: ".", getenv("KACTOR_SRCDIR") ?: ".", script);
        fclose(f);

        const char *cmd = harness_printf(h, "timeout 60 sh %s >%s 2>%s </dev/null", file, out, err);
        int status = system(cmd);
        run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        run.out = read_file(out);
        run.err = read_file(err);
        return run;
}

/* sh(), asserting exit status 0. */
#define sh_ok(...)                                                                                          \
        ({                                                                                                  \
                Run _r = sh(__VA_ARGS__);                                                                   \
                cr_assert_eq(_r.status, 0, "exit status %d\nstdout: %s\nstderr: %s", _r.status, _r.out,     \
                             _r.err);                                                                       \
                _r;                                                                                         \
        })

static size_t count_lines(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* The id of the actor a path printed by create names (harness-owned). */
static const char *path_id(const char *out) {
        const char *slash = strrchr(out, '/');
        cr_assert_not_null(slash, "not a path: %s", out);
        return harness_printf(h, "%.32s", slash + 1);
}

/* Creates an actor with kactorctl and returns its id. */
static const char *create(const char *args) {
        Run r = sh_ok("$CTL create %s", args);
        return path_id(r.out);
}

/* An actor that died at once (no such class), --no-block so that create does not say so; waits until
 * it is dead. Returns its id. */
static const char *create_dead(void) {
        Run r = sh_ok("$CTL create --no-block \"$COUNTER\" NoClass");
        const char *path = harness_printf(h, "%.*s", (int) strcspn(r.out, "\n"), r.out);
        cr_assert(harness_wait_actor_state(h, path, "dead", HARNESS_TIMEOUT_MS), "%s did not die", path);
        return path_id(r.out);
}

static void assert_json(const char *file_or_text, bool one_line) {
        const char *path = harness_printf(h, "%s/json", h->dir);
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(file_or_text, f);
        fclose(f);
        if (one_line)
                cr_assert_eq(count_lines(file_or_text), 1, "not one line: %s", file_or_text);
        Run r = sh("python3 -c 'import json, sys; json.load(open(sys.argv[1]))' %s", path);
        cr_assert_eq(r.status, 0, "not valid JSON (%s): %s", r.err, file_or_text);
}

Test(kactorctl, global_options_stand_anywhere) {
        Run a = sh_ok("$CTL --json create \"$COUNTER\" Counter");
        Run b = sh_ok("$CTL create \"$COUNTER\" Counter --json");
        Run c = sh_ok("$CTL create --json=short \"$COUNTER\" Counter");
        for (size_t i = 0; i < 3; i++) {
                const char *out = (const char *[]){ a.out, b.out, c.out }[i];
                cr_assert(strstr(out, "\"actor\": \"/io/kactor/NodeManager1/actor/"), "not JSON: %s", out);
                assert_json(out, true);
        }

        Run before = sh_ok("$CTL --no-legend --no-pager list");
        Run after = sh_ok("$CTL list --no-pager --no-legend");
        cr_assert_str_eq(before.out, after.out);
        cr_assert_eq(count_lines(after.out), 3, "three actors, no header or footer: %s", after.out);

        /* -q: create's path is informational; the exit status says the actor started. */
        Run q = sh_ok("$CTL create \"$COUNTER\" Counter -q");
        cr_assert_str_eq(q.out, "");
        Run bad = sh("$CTL list --bogus");
        cr_assert_eq(bad.status, 2);
        cr_assert(strstr(bad.err, "Unknown option '--bogus'"), "%s", bad.err);
}

Test(kactorctl, double_dash_ends_options_and_negative_numbers_are_values) {
        create("--name e \"$TESTMOD\" Echo");
        Run r = sh_ok("$CTL call e echo -- --json -x");
        cr_assert_str_eq(r.out, "[\"--json\", \"-x\"]\n");
        r = sh_ok("$CTL call e echo -1 -2.5 -1e3 --json=short");
        cr_assert_str_eq(r.out, "[-1, -2.5, -1000.0]\n");
        r = sh("$CTL call e echo -x");
        cr_assert_eq(r.status, 2, "-x is an unknown option: %s", r.out);

        /* A constructor's argument, and an option's value. */
        create("--name c --max-restarts -1 \"$COUNTER\" Counter -5");
        r = sh_ok("$CTL call c get");
        cr_assert_str_eq(r.out, "-5\n");
        /* After '--', --json reaches the constructor, which wants an int. */
        r = sh("$CTL create \"$COUNTER\" Counter -- --json");
        cr_assert_eq(r.status, 1);
        cr_assert(strstr(r.err, "must be int"), "%s", r.err);
}

Test(kactorctl, create_waits_for_the_constructor_and_fails_with_the_cause) {
        Run r = sh("$CTL create \"$COUNTER\" NoClass");
        cr_assert_eq(r.status, 1, "a dead actor is a failure: %s", r.out);
        cr_assert_str_eq(r.out, "");
        cr_assert(strstr(r.err, "died: ") && strstr(r.err, "has no actor class 'NoClass'"), "%s", r.err);

        r = sh("$CTL create \"$TESTMOD\" Failer fail 'no luck'");
        cr_assert_eq(r.status, 1);
        cr_assert(strstr(r.err, "no luck"), "the constructor's message: %s", r.err);

        /* Alive once create has returned. */
        const char *id = create("\"$COUNTER\" Counter");
        const char *path = harness_printf(h, "/io/kactor/NodeManager1/actor/%s", id);
        cr_assert_str_eq(harness_property_string(h, path, HARNESS_IFACE_ACTOR, "State"), "alive");

        /* --no-block returns at once, as before. */
        r = sh_ok("$CTL create --no-block \"$COUNTER\" NoClass");
        cr_assert(strncmp(r.out, "/io/kactor/NodeManager1/actor/", 30) == 0, "%s", r.out);
}

Test(kactorctl, list_hides_dead_actors_unless_all) {
        const char *live = create("--name live1 \"$COUNTER\" Counter");
        const char *dead = create_dead();

        Run r = sh_ok("$CTL list");
        cr_assert(strstr(r.out, live) && !strstr(r.out, dead), "%s", r.out);
        cr_assert(strstr(r.out, "1 actor listed. 1 dead one not shown (--all shows them)."), "%s", r.out);
        r = sh_ok("$CTL list --all");
        cr_assert(strstr(r.out, live) && strstr(r.out, dead) && strstr(r.out, "has no actor class"), "%s",
                  r.out);
        cr_assert(strstr(r.out, "DEATH CAUSE"), "%s", r.out);

        r = sh_ok("$CTL list --json=short");
        assert_json(r.out, true);
        cr_assert(strstr(r.out, live) && !strstr(r.out, dead), "%s", r.out);
        r = sh_ok("$CTL list --json=short --all");
        cr_assert(strstr(r.out, dead), "%s", r.out);

        r = sh_ok("$CTL list --no-legend");
        cr_assert_eq(count_lines(r.out), 1, "%s", r.out);
        cr_assert(strncmp(r.out, live, 32) == 0, "no header line: %s", r.out);
}

Test(kactorctl, json_formats) {
        Run s = sh_ok("$CTL status --json=short");
        assert_json(s.out, true);
        Run plain = sh_ok("$CTL status --json");
        cr_assert_str_eq(plain.out, s.out, "plain --json is short");
        Run p = sh_ok("$CTL --json=pretty status");
        assert_json(p.out, false);
        cr_assert_gt(count_lines(p.out), 5, "pretty is indented: %s", p.out);
        cr_assert(strstr(p.out, "\n        \"node_id\": "), "%s", p.out);
        Run off = sh_ok("$CTL --json --json=off status");
        cr_assert(strstr(off.out, "   Node: "), "%s", off.out);
        Run bad = sh("$CTL status --json=yaml");
        cr_assert_eq(bad.status, 2);
}

Test(kactorctl, help_verb_is_the_verbs_help) {
        Run a = sh_ok("$CTL help create");
        Run b = sh_ok("$CTL create --help");
        Run c = sh_ok("$CTL --help create");
        cr_assert(strncmp(a.out, "kactorctl create ", 17) == 0, "%s", a.out);
        cr_assert_str_eq(a.out, b.out);
        cr_assert_str_eq(a.out, c.out);
        Run all = sh_ok("$CTL help");
        cr_assert(strstr(all.out, "--no-legend") && strstr(all.out, "help [COMMAND]"), "%s", all.out);
        cr_assert_eq(sh("$CTL help nosuch").status, 2);
}

Test(kactorctl, top_fits_the_terminal_and_hides_dead_actors) {
        const char *dead = create_dead();
        for (int i = 0; i < 12; i++)
                sh_ok("$CTL create -q --no-block \"$COUNTER\" Counter");

        /* Not a terminal and no $LINES: every row. */
        /* -q: no "(no figures: ...)" line should tracing be off. */
        Run r = sh_ok("$CTL top -n 1 --interval 0.1 -q");
        cr_assert_eq(count_lines(r.out), 13, "a header and 12 rows: %s", r.out);
        cr_assert(!strstr(r.out, dead), "a dead actor in top: %s", r.out);
        r = sh_ok("$CTL top -n 1 --interval 0.1 --all --no-legend -q");
        cr_assert(strstr(r.out, dead) && count_lines(r.out) == 13, "%s", r.out);

        /* $LINES: 7 lines and the cursor's; the header, 5 rows and what is left out. */
        r = sh_ok("LINES=8 COLUMNS=60 $CTL top -n 1 --interval 0.1 -q");
        cr_assert_eq(count_lines(r.out), 7, "%s", r.out);
        cr_assert(strstr(r.out, "\n... 7 more\n"), "%s", r.out);
        for (const char *l = r.out; *l; l = strchr(l, '\n') + 1)
                cr_assert_leq(strcspn(l, "\n"), 60, "a line wider than $COLUMNS: %s", r.out);

        /* A real terminal, 10 rows of 80 columns: two frames, each of at most 9 lines of 79
         * columns, redrawn from the top. */
        r = sh_ok(
                "script -q -e -c 'stty rows 10 cols 80; exec '\"$CTL\"' top -q -n 2 --interval 0.1' /dev/null");
        const char *frame = strstr(r.out, "\033[H");
        cr_assert_not_null(frame, "no frame: %s", r.out);
        frame = strstr(frame + 1, "\033[H");
        cr_assert_not_null(frame, "no second frame: %s", r.out);
        size_t lines = 0;
        for (const char *l = frame + 3; *l; l++) {
                size_t width = 0;
                for (; *l && *l != '\n'; l++)
                        if (*l == '\033') /* \033[K, \033[J: no width */
                                l += strspn(l + 2, "0123456789;") + 2;
                        else if (*l != '\r')
                                width++;
                cr_assert_leq(width, 79, "line %zu is %zu wide: %s", lines, width, frame);
                if (!*l)
                        break;
                lines++;
        }
        cr_assert_eq(lines, 9, "%zu lines in a 10-row terminal (and the cursor's): %s", lines, frame);
        cr_assert(strstr(frame, "... 5 more"), "%s", frame);
}

Test(kactorctl, pager_runs_on_a_terminal_unless_no_pager) {
        create("\"$COUNTER\" Counter");
        Run r = sh_ok("script -q -e -c \"KACTOR_PAGER='sed s/^/PAGED:/' $CTL list\" /dev/null");
        cr_assert(strstr(r.out, "PAGED:ID "), "%s", r.out);
        r = sh_ok("script -q -e -c \"KACTOR_PAGER='sed s/^/PAGED:/' $CTL list --no-pager\" /dev/null");
        cr_assert(!strstr(r.out, "PAGED:") && strstr(r.out, "ID "), "%s", r.out);
        /* Not a terminal: no pager. */
        r = sh_ok("KACTOR_PAGER='sed s/^/PAGED:/' $CTL list");
        cr_assert(!strstr(r.out, "PAGED:"), "%s", r.out);
}

Test(kactorctl, bash_completion_completes_verbs_options_and_actors) {
        create("--name completeme \"$COUNTER\" Counter");
#define complete                                                                                            \
        "bash -c 'source \"$COMPLETION\"; COMP_WORDS=(\"$CTL\" %s); COMP_CWORD=%d; _kactorctl; "            \
        "echo \"${COMPREPLY[*]}\"'"
        Run r = sh_ok(complete, "cr", 1);
        cr_assert_str_eq(r.out, "create\n");
        r = sh_ok(complete, "list --a", 2);
        cr_assert_str_eq(r.out, "--all\n");
        r = sh_ok(complete, "--json=pretty call comp", 3);
        cr_assert_str_eq(r.out, "completeme\n");
        r = sh_ok(complete, "help ki", 2);
        cr_assert_str_eq(r.out, "kill\n");
        /* A value of an option is no argument: the actor comes after --timeout's. */
        r = sh_ok(complete, "kill --timeout 5 comp", 4);
        cr_assert_str_eq(r.out, "completeme\n");
#undef complete
}

/* Every word of words (one a line) is in the file. */
static void assert_all_in(const char *words, const char *file) {
        char *list = strdup(words);

        cr_assert_not_null(list);
        for (char *p = list; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        harness_keep(h, list);
        Run r = sh("for w in %s; do grep -qF -e \"$w\" %s || echo \"$w\"; done", list, file);
        cr_assert_eq(r.status, 0);
        cr_assert_str_eq(r.out, "", "not in %s: %s", file, r.out);
}

Test(kactorctl, man_pages_render_and_name_every_option) {
        const char *pages[] = { "man1/kactorctl.1", "man8/kactor-nodemgr.8" };
        for (size_t i = 0; i < 2; i++) {
                const char *page = harness_printf(h, "%s/man/%s", h->build, strchr(pages[i], '/') + 1);
                struct stat st;
                cr_assert(stat(page, &st) == 0, "%s is not built (make all builds it)", page);
                Run r = sh_ok("MANWIDTH=100 man -l %s", page);
                cr_assert(strstr(r.out, "NAME") && strstr(r.out, "SYNOPSIS") && strstr(r.out, "OPTIONS"),
                          "%s", r.out);
        }

        /* Whatever kactorctl and kactor-nodemgr accept, their pages say. */
        Run r = sh_ok(
                "for v in $($CTL __complete verbs); do $CTL __complete options $v; done | grep -- '^--' | "
                "sed 's/=$//' | sort -u");
        assert_all_in(r.out, "\"$MAN/kactorctl.1.scd\"");
        r = sh_ok("%s/kactor-nodemgr --help | grep -o -- '--[a-z][a-z-]*' | sort -u", h->build);
        assert_all_in(r.out, "\"$MAN/kactor-nodemgr.8.scd\"");
}
