/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Numbers and sizes from the command line or a config file. Each returns 0 and writes *ret, or
 * -EINVAL when s is not of the form, -ERANGE when it is out of range (-ENOMEM: parse_bytes); *ret is
 * written only on success. */

#include <stdint.h>

/* Decimal digits only: no sign, no spaces, no base prefix. */
int parse_uint64(const char *s, uint64_t *ret);
int parse_uint32(const char *s, uint32_t *ret);
/* Decimal digits with an optional '-'. */
int parse_int32(const char *s, int32_t *ret);
/* A finite, non-negative decimal number. */
int parse_nonnegative_double(const char *s, double *ret);
/* "SEC" (decimals allowed) as microseconds; 0 stays 0, and anything above 0 is at least 1. */
int parse_timeout(const char *s, uint64_t *ret);
/* As parse_timeout(), for a period that cannot be 0: more than 0 and at most max_usec, else -ERANGE. */
int parse_timeout_bounded(const char *s, uint64_t max_usec, uint64_t *ret);
/* Bytes, optionally with a binary suffix: K, M, G, T (1024-based, either case). */
int parse_bytes(const char *s, uint64_t *ret);
