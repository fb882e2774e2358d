/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "resources.h"

int resources_init(Resources *r, size_t n_gpus, double cpus) {
        *r = (Resources){ .cpus_total = cpus };
        if (n_gpus == 0)
                return 0;
        r->gpus = calloc(n_gpus, sizeof(Gpu));
        if (!r->gpus)
                return -ENOMEM;
        for (size_t i = 0; i < n_gpus; i++)
                r->gpus[i].id = (uint32_t) i;
        r->n_gpus = n_gpus;
        return 0;
}

int resources_init_devices(Resources *r, char *const *devices, size_t n, double cpus) {
        int k = resources_init(r, n, cpus);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                r->gpus[i].device = strdup(devices[i]);
                if (!r->gpus[i].device) {
                        resources_done(r);
                        return -ENOMEM;
                }
        }
        return 0;
}

void resources_done(Resources *r) {
        for (size_t i = 0; i < r->n_gpus; i++)
                free(r->gpus[i].device);
        free(r->gpus);
        *r = (Resources){};
}

size_t resources_free_gpus(const Resources *r) {
        size_t n = 0;
        for (size_t i = 0; i < r->n_gpus; i++)
                n += !r->gpus[i].in_use;
        return n;
}

int resources_acquire(Resources *r, size_t n, double cpus, uint32_t *ret_ids, char **ret_msg) {
        size_t free_gpus = resources_free_gpus(r);

        if (n > free_gpus) {
                if (ret_msg &&
                    asprintf(ret_msg, "requested %zu GPU%s, %zu of %zu free", n, n == 1 ? "" : "s",
                             free_gpus, r->n_gpus) < 0)
                        *ret_msg = NULL;
                return -ENOSPC;
        }
        /* A little slack for sums of fractions such as 0.1. */
        if (cpus > 0 && r->cpus_used + cpus > r->cpus_total + 1e-9) {
                /* The same slack here, so that ten 0.1s taken from 1 leave "0 free", not 1.11022e-16. */
                double free_cpus = r->cpus_total - r->cpus_used;
                if (free_cpus < 1e-9)
                        free_cpus = 0;
                if (ret_msg &&
                    asprintf(ret_msg, "requested %g CPUs, %g of %g free", cpus, free_cpus, r->cpus_total) <
                            0)
                        *ret_msg = NULL;
                return -ENOSPC;
        }

        size_t k = 0;
        for (size_t i = 0; i < r->n_gpus && k < n; i++)
                if (!r->gpus[i].in_use) {
                        r->gpus[i].in_use = true;
                        ret_ids[k++] = r->gpus[i].id;
                }
        if (cpus > 0)
                r->cpus_used += cpus;
        return 0;
}

int resources_take(Resources *r, const uint32_t *ids, size_t n, double cpus) {
        for (size_t i = 0; i < n; i++) {
                size_t j = 0;
                while (j < r->n_gpus && r->gpus[j].id != ids[i])
                        j++;
                if (j == r->n_gpus)
                        return -ENOENT;
                if (r->gpus[j].in_use)
                        return -EBUSY;
        }
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < r->n_gpus; j++)
                        if (r->gpus[j].id == ids[i])
                                r->gpus[j].in_use = true;
        /* CPUs are a reservation: what the actors had, they have again, even past the total. */
        if (cpus > 0)
                r->cpus_used += cpus;
        return 0;
}

void resources_release(Resources *r, const uint32_t *ids, size_t n, double cpus) {
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < r->n_gpus; j++)
                        if (r->gpus[j].id == ids[i])
                                r->gpus[j].in_use = false;
        if (cpus > 0) {
                r->cpus_used -= cpus;
                if (r->cpus_used < 1e-9)
                        r->cpus_used = 0;
        }
}

char *resources_gpu_list_string(const uint32_t *ids, size_t n) {
        char *s = strdup("");
        for (size_t i = 0; s && i < n; i++) {
                char *t;
                if (asprintf(&t, "%s%s%u", s, i > 0 ? "," : "", ids[i]) < 0)
                        t = NULL;
                free(s);
                s = t;
        }
        return s;
}
