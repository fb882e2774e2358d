/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * uthash, with a hash function fit for kactor's 128-bit ids (a node half and a counter half) and
 * their 64-bit halves: a multiply and two shifts instead of Jenkins' hash over 16 or 8 bytes. Other
 * keys (names) keep Jenkins'.
 * Include this instead of <uthash.h>.
 */

#include <stdint.h>
#include <string.h>

#include "hash-util.h"

#define HASH_FUNCTION(keyptr, keylen, hashv)                                                     \
        do {                                                                                     \
                if ((keylen) == 16) {                                                            \
                        uint64_t _hk_a, _hk_b;                                                   \
                        memcpy(&_hk_a, (const char *) (keyptr), 8);                              \
                        memcpy(&_hk_b, (const char *) (keyptr) + 8, 8);                          \
                        (hashv) = hash_table_id128(_hk_a, _hk_b);                                \
                } else if ((keylen) == 8) {                                                      \
                        uint64_t _hk_a;                                                          \
                        memcpy(&_hk_a, (const char *) (keyptr), 8);                              \
                        (hashv) = hash_table_id128(0, _hk_a);                                    \
                } else                                                                           \
                        HASH_JEN(keyptr, keylen, hashv);                                         \
        } while (0)

#include <uthash.h>
