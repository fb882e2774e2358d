/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* JSON string literals, written one way for every JSON kactor prints (values, traces). */

#include <stddef.h>
#include <stdio.h>

/* Where json_string_write() sends its output, in pieces: n bytes at s. */
typedef void (*JsonPutFunc)(const char *s, size_t n, void *userdata);

/* Writes the n bytes at s as a JSON string literal, quotes included: '"', '\\' and control characters
 * escaped, and each byte that does not start valid UTF-8 as U+FFFD, so that the output is valid JSON
 * whatever the input. */
void json_string_write(const char *s, size_t n, JsonPutFunc put, void *userdata);

/* The same for a NUL-terminated string (NULL: the empty string) to a stdio stream. */
void json_string_fputs(const char *s, FILE *f);
