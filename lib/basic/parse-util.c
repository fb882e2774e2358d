/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse-util.h"

int parse_uint64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end != 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_uint32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r = parse_uint64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_int32(const char *s, int32_t *ret) {
        long long v;
        char *end;

        if (!isdigit((unsigned char) s[0]) && !(s[0] == '-' && isdigit((unsigned char) s[1])))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX)
                return -ERANGE;
        if (*end != 0)
                return -EINVAL;
        *ret = (int32_t) v;
        return 0;
}

/* A finite, non-negative decimal number. */
int parse_nonnegative_double(const char *s, double *ret) {
        double v;
        char *end;

        if (!isdigit((unsigned char) s[0]) && s[0] != '.')
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (*end != 0)
                return -EINVAL;
        if (errno == ERANGE || !isfinite(v))
                return -ERANGE;
        *ret = v;
        return 0;
}

/* "SEC" (decimals allowed) as microseconds; 0 stays 0 (which means "forever" to the callers). */
int parse_timeout(const char *s, uint64_t *ret) {
        double sec;
        int r = parse_nonnegative_double(s, &sec);
        if (r < 0)
                return r;
        if (sec * 1e6 >= (double) (UINT64_MAX / 2))
                return -ERANGE;
        *ret = (uint64_t) llround(sec * 1e6);
        if (*ret == 0 && sec > 0)
                *ret = 1;
        return 0;
}

int parse_timeout_bounded(const char *s, uint64_t max_usec, uint64_t *ret) {
        uint64_t usec;
        int r = parse_timeout(s, &usec);
        if (r < 0)
                return r;
        if (usec == 0 || usec > max_usec)
                return -ERANGE;
        *ret = usec;
        return 0;
}

/* Bytes, optionally with a binary suffix: K, M, G, T (1024-based). */
int parse_bytes(const char *s, uint64_t *ret) {
        static const struct {
                char suffix;
                unsigned shift;
        } units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 } };
        _cleanup_free_ char *digits = strdup(s);
        unsigned shift = 0;
        uint64_t v;
        size_t n;
        int r;

        if (!digits)
                return -ENOMEM;
        n = strlen(digits);
        for (size_t i = 0; n > 0 && i < ELEMENTSOF(units); i++)
                if (toupper((unsigned char) digits[n - 1]) == units[i].suffix) {
                        shift = units[i].shift;
                        digits[--n] = 0;
                        break;
                }
        r = parse_uint64(digits, &v);
        if (r < 0)
                return r;
        if (shift > 0 && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}
