/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/capability.h>

/* For _cleanup_(cap_freep): libcap's capability sets. */
static inline void cap_freep(cap_t *c) {
        if (*c)
                cap_free(*c);
}
