/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by every part of kactor: cleanup attributes, ownership, sizes. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _public_ __attribute__((visibility("default")))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
/* The length of a string literal, at compile time. */
#define STRLEN(x) (sizeof(x) - 1)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Takes ownership of a pointer: returns it and sets the variable to NULL. */
#define TAKE_PTR(p)                                                                              \
        ({                                                                                       \
                typeof(p) _p = (p);                                                              \
                (p) = NULL;                                                                      \
                _p;                                                                              \
        })
#define TAKE_FD(fd)                                                                              \
        ({                                                                                       \
                int _fd = (fd);                                                                  \
                (fd) = -1;                                                                       \
                _fd;                                                                             \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* The structure of type `type` whose member `member` ptr points to. */
#define container_of(ptr, type, member) ((type *) (void *) ((char *) (ptr) - offsetof(type, member)))

/* Frees p and returns NULL, for `x = mfree(x);`. */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* A copy of n bytes at p (n > 0), or NULL. */
static inline void *memdup(const void *p, size_t n) {
        void *q = malloc(n);
        return q ? memcpy(q, p, n) : NULL;
}

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)
static inline void close_pairp(int (*p)[2]) {
        safe_close((*p)[0]);
        safe_close((*p)[1]);
}
#define _cleanup_close_pair_ _cleanup_(close_pairp)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Declares `name##p()` for use with _cleanup_(), calling `func` on a non-NULL pointer. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                  \
        static inline void func##p(type *p) {                                                    \
                if (*p)                                                                          \
                        func(*p);                                                                \
        }

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* Negative errno from the current errno, never 0. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
