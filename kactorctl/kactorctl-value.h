/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* kactorctl's value arguments: JSON text and bare numbers as kactor values (docs/kactorctl.md). */

#include <stddef.h>

#include <kactor/value.h>

/* Why an argument did not parse: a message for people and, for JSON, the offset it points at. */
typedef struct ValueParseError {
        const char *message;
        size_t offset;
} ValueParseError;

/* JSON text (a list, a map or a string, as written after '[', '{' or '"'), with the scalars inside
 * mapped as bare arguments are: integers -> int64, numbers with a fraction or exponent -> double.
 * Returns 0 and the value, -EINVAL or -ERANGE with *ret_error set when it does not parse, or
 * -ENOMEM. */
int value_parse_json(const char *text, kactor_value **ret, ValueParseError *ret_error);

/* A whole argument that is a number: 0 and an int64 or a double; -EINVAL (*ret_error untouched)
 * when text is not entirely a number, so the caller takes it as a string; -ERANGE with *ret_error
 * set when it is out of range; -ENOMEM. */
int value_parse_number(const char *text, kactor_value **ret, ValueParseError *ret_error);
