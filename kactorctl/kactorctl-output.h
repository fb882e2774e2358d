/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How kactorctl's output reaches the terminal: JSON in the format asked for, the pager, the
 * terminal's size. No D-Bus in here. */

#include <stdbool.h>
#include <stdio.h>

typedef enum JsonFormat {
        JSON_OFF,
        JSON_SHORT,  /* one document a line, as libkactor writes values: {"a": 1, "b": [2, 3]} */
        JSON_PRETTY, /* indented, one member or item a line */
        _JSON_FORMAT_MAX,
} JsonFormat;

/* "off", "short", "pretty": 0 and the format, or -EINVAL. */
int json_format_from_string(const char *s, JsonFormat *ret);

/* Writes the JSON text (valid JSON, any spacing) to f in format (JSON_OFF: as JSON_SHORT) and a
 * newline. Only the spacing between tokens changes; strings and numbers are copied as they are. */
void json_format_write(FILE *f, const char *text, JsonFormat format);

/* Sends stdout through a pager when it is a terminal and pager is true: $KACTOR_PAGER,
 * $SYSTEMD_PAGER or $PAGER (run by sh; empty or "cat" for none), else less with $LESS defaulting to
 * "FRSXMK" as systemd's, else more. A pager already open stays. Returns 0 (also when no pager was
 * started: that is no error), or a negative errno. */
int pager_open(bool pager);
/* Ends the output, closing the pager's pipe, and waits for the pager to exit. Nothing without one. */
void pager_close(void);
/* Whether output goes to a pager now (a write error is then the pager having quit: no error). */
bool pager_is_open(void);

/* The terminal's size for a table that should fit it: of stdout when it is a terminal (TIOCGWINSZ),
 * else $LINES and $COLUMNS; 0 where neither says. */
unsigned terminal_lines(void);
unsigned terminal_columns(void);
