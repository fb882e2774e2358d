/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes, n > 0), or 0 when it is not one. */
size_t utf8_sequence_len(const unsigned char *s, size_t n);

/* True when the n bytes at s are UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), as D-Bus requires of its strings. */
bool utf8_is_valid(const char *s, size_t n);
