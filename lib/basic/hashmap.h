/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * uthash, with a hash function fit for kactor's 128-bit ids (a node half and a counter half): a
 * multiply and two shifts instead of Jenkins' hash over 16 bytes. Other keys (names) keep Jenkins'.
 * Include this instead of <uthash.h>.
 */

#include <stdint.h>
#include <string.h>

#define HASH_FUNCTION(keyptr, keylen, hashv)                                                     \
        do {                                                                                     \
                if ((keylen) == 16) {                                                            \
                        uint64_t _hk_a, _hk_b;                                                   \
                        memcpy(&_hk_a, (const char *) (keyptr), 8);                              \
                        memcpy(&_hk_b, (const char *) (keyptr) + 8, 8);                          \
                        uint64_t _hk = (_hk_b * UINT64_C(0x9E3779B97F4A7C15)) ^ _hk_a;           \
                        _hk ^= _hk >> 29;                                                        \
                        _hk *= UINT64_C(0xBF58476D1CE4E5B9);                                     \
                        (hashv) = (unsigned) (_hk ^ (_hk >> 32));                                \
                } else                                                                           \
                        HASH_JEN(keyptr, keylen, hashv);                                         \
        } while (0)

#include <uthash.h>
