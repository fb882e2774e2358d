/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What kactorctl.c (the verbs, the global options and the command-line parser) gives the other verbs'
 * files. */

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "kactorctl-output.h"

/* The global options (docs/kactorctl.md), as systemctl's: they may stand anywhere on the command line. */
extern JsonFormat arg_json;       /* --json=pretty|short|off; plain --json is short */
extern bool arg_legend;           /* false with --no-legend: tables without header and footer */
extern bool arg_quiet;            /* -q --quiet: no informational output */
extern bool arg_pager;            /* false with --no-pager */
extern uint64_t arg_timeout_usec; /* --timeout; 0: wait forever */
extern bool arg_timeout_set;      /* whether --timeout was given (create has a default of its own) */

/* The ids a verb's own long-only options take: from here up to VERB_OPTION_MAX. The global options
 * use 'h', 'q' and the ids above VERB_OPTION_MAX. */
#define VERB_OPTION_FIRST 0x100
#define VERB_OPTION_MAX 0xfff

typedef struct Verb Verb;

/* Called for each of a verb's own options: c as the verb's table says, arg its argument or NULL.
 * Returns 0 to go on, or an exit status (EXIT_USAGE after saying why) or a negative errno to stop. */
typedef int (*VerbOptionFunc)(int c, const char *arg, void *userdata);

struct Verb {
        const char *name;
        /* Its own options, besides the global ones: a getopt_long() table ending in {}, and its short
         * options in getopt's syntax ("o:"). Both may be NULL. */
        const struct option *options;
        const char *short_options;
        void (*help)(void);
        /* argv[0] is the verb; the verb calls verb_parse_argv() on them. */
        int (*run)(const Verb *verb, int argc, char *argv[]);
        bool hidden; /* not in help or completion (__complete) */
};

/*
 * Parses a verb's command line (argv[0] is the verb): the global options and the verb's own
 * wherever they stand, up to "--", which ends them. The other arguments go to *ret_args in order
 * (pointers into argv, in a malloc'd array the caller frees): those that do not start with '-',
 * "-" itself, everything after "--", and those that start with '-' and a digit ("-1", "-2.5",
 * "-1e3"), which are values, not options (no option of kactorctl is a digit). --help prints the
 * verb's help (through the pager), --version the version.
 *
 * Returns 1 to go on, 0 when help or the version was printed, EXIT_USAGE after saying what was
 * wrong, what f returned to stop, or a negative errno.
 */
int verb_parse_argv(const Verb *verb, int argc, char *argv[], VerbOptionFunc f, void *userdata,
                    char ***ret_args, size_t *ret_n_args);

/* Connects to the node manager's bus as the global options (--bus, $KACTOR_BUS_ADDRESS) say. Says
 * why when it fails. */
int kactorctl_bus_connect(sd_bus **ret);
