/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The hash functions kactor uses, one copy each. None is cryptographic: they spread keys (cgroup
 * names, rendezvous scores, tracing map keys), and their values must never change, because other
 * node managers, cgroup names on disk and tracing tools compare them. */

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A64_OFFSET UINT64_C(0xcbf29ce484222325)
#define HASH_FNV1A64_PRIME UINT64_C(0x100000001b3)
#define HASH_FNV1A32_OFFSET UINT32_C(2166136261)
#define HASH_FNV1A32_PRIME UINT32_C(16777619)
#define HASH_GOLDEN_RATIO64 UINT64_C(0x9e3779b97f4a7c15)

/* 64-bit FNV-1a of n bytes. */
static inline uint64_t hash_fnv1a64(const void *p, size_t n) {
        const uint8_t *b = p;
        uint64_t h = HASH_FNV1A64_OFFSET;

        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * HASH_FNV1A64_PRIME;
        return h;
}

/* 32-bit FNV-1a of n bytes; p may be NULL when n is 0. */
static inline uint32_t hash_fnv1a32(const void *p, size_t n) {
        const uint8_t *b = p;
        uint32_t h = HASH_FNV1A32_OFFSET;

        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * HASH_FNV1A32_PRIME;
        return h;
}

/* splitmix64's finalizer: a bijection of 64-bit values whose every output bit depends on every
 * input bit, so that close inputs (node ids, counters) give unrelated outputs. */
static inline uint64_t hash_mix64(uint64_t x) {
        x += HASH_GOLDEN_RATIO64;
        x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
        return x ^ (x >> 31);
}

/* Folds a 128-bit value (two halves) into 64 bits cheaply, by one multiply and one shift: enough
 * when the high half is already random (as a kactor id's node half is). */
static inline uint64_t hash_fold128(uint64_t hi, uint64_t lo) {
        uint64_t h = hi ^ (lo * HASH_GOLDEN_RATIO64);

        return h ^ (h >> 31);
}

/* A hash table's bucket hash of a 128-bit id: a multiply and two shifts instead of Jenkins' hash over
 * 16 bytes, since ids differ mostly in their low half (a counter). Only spreads buckets in memory. */
static inline unsigned hash_table_id128(uint64_t hi, uint64_t lo) {
        uint64_t h = (lo * HASH_GOLDEN_RATIO64) ^ hi;

        h ^= h >> 29;
        h *= UINT64_C(0xbf58476d1ce4e5b9);
        return (unsigned) (h ^ (h >> 32));
}
