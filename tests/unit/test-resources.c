/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Node resources: which GPUs and how much CPU an actor or task gets, and what a refusal says. */

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "resources.h"

static Resources res;

static void teardown(void) {
        resources_done(&res);
}

TestSuite(resources, .fini = teardown);

/* Acquire that must succeed. */
static void take(size_t n, double cpus, uint32_t *ids) {
        char *msg = NULL;
        int r = resources_acquire(&res, n, cpus, ids, &msg);
        cr_assert_eq(r, 0, "acquiring %zu GPUs and %g CPUs: %s", n, cpus, msg ?: "(no message)");
        cr_assert_null(msg);
}

/* Acquire that must be refused with exactly this message. */
static void refused(size_t n, double cpus, const char *expected) {
        uint32_t ids[16];
        char *msg = NULL;
        cr_assert_leq(n, 16);
        cr_assert_eq(resources_acquire(&res, n, cpus, ids, &msg), -ENOSPC);
        cr_assert_not_null(msg);
        char said[128];
        snprintf(said, sizeof(said), "%s", msg);
        free(msg);
        cr_assert_str_eq(said, expected);
}

/* --- set-up --- */

Test(resources, gpus_are_numbered_from_zero_and_all_free) {
        cr_assert_eq(resources_init(&res, 3, 4), 0);
        cr_assert_eq(res.n_gpus, 3);
        cr_assert_eq(resources_free_gpus(&res), 3);
        for (uint32_t i = 0; i < 3; i++) {
                cr_assert_eq(res.gpus[i].id, i);
                cr_assert_null(res.gpus[i].device);
                cr_assert_not(res.gpus[i].in_use);
        }
        cr_assert_float_eq(res.cpus_total, 4.0, 1e-12);
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);
}

Test(resources, node_without_gpus_has_none_free) {
        cr_assert_eq(resources_init(&res, 0, 2), 0);
        cr_assert_eq(res.n_gpus, 0);
        cr_assert_eq(resources_free_gpus(&res), 0);
}

Test(resources, gpus_from_device_paths_keep_their_order_and_ids) {
        char a[] = "/dev/nvidia0", b[] = "/dev/dri/renderD128", c[] = "/tmp/fake-gpu";
        char *const devices[] = { a, b, c };

        cr_assert_eq(resources_init_devices(&res, devices, 3, 8), 0);
        a[5] = 'X'; /* the paths are copied */

        cr_assert_eq(res.n_gpus, 3);
        cr_assert_eq(resources_free_gpus(&res), 3);
        cr_assert_eq(res.gpus[0].id, 0);
        cr_assert_str_eq(res.gpus[0].device, "/dev/nvidia0");
        cr_assert_eq(res.gpus[1].id, 1);
        cr_assert_str_eq(res.gpus[1].device, "/dev/dri/renderD128");
        cr_assert_eq(res.gpus[2].id, 2);
        cr_assert_str_eq(res.gpus[2].device, "/tmp/fake-gpu");
}

Test(resources, empty_device_list_gives_no_gpus) {
        cr_assert_eq(resources_init_devices(&res, NULL, 0, 1), 0);
        cr_assert_eq(res.n_gpus, 0);
        refused(1, 0, "requested 1 GPU, 0 of 0 free");
}

Test(resources, done_leaves_nothing_behind) {
        char a[] = "/dev/nvidia0";
        char *const devices[] = { a };
        cr_assert_eq(resources_init_devices(&res, devices, 1, 1), 0);
        resources_done(&res);
        cr_assert_null(res.gpus);
        cr_assert_eq(res.n_gpus, 0);
        resources_done(&res); /* twice is harmless: teardown does it again */
}

/* --- GPUs --- */

Test(resources, gpus_are_handed_out_lowest_free_first) {
        cr_assert_eq(resources_init(&res, 4, 0), 0);
        uint32_t ids[4];

        take(2, 0, ids);
        cr_assert_eq(ids[0], 0);
        cr_assert_eq(ids[1], 1);
        cr_assert(res.gpus[0].in_use && res.gpus[1].in_use);
        cr_assert_eq(resources_free_gpus(&res), 2);

        take(1, 0, ids);
        cr_assert_eq(ids[0], 2);
        cr_assert_eq(resources_free_gpus(&res), 1);
}

Test(resources, two_actors_get_different_gpus) {
        cr_assert_eq(resources_init(&res, 2, 0), 0);
        uint32_t first[1], second[1];

        take(1, 0, first);
        take(1, 0, second);
        cr_assert_neq(first[0], second[0]);
        cr_assert_eq(resources_free_gpus(&res), 0);
}

Test(resources, released_gpus_are_handed_out_again_lowest_first) {
        cr_assert_eq(resources_init(&res, 4, 0), 0);
        uint32_t all[4], again[2];
        take(4, 0, all);

        uint32_t back[] = { 3, 1 };
        resources_release(&res, back, 2, 0);
        cr_assert_eq(resources_free_gpus(&res), 2);
        cr_assert_not(res.gpus[1].in_use);
        cr_assert_not(res.gpus[3].in_use);
        cr_assert(res.gpus[0].in_use && res.gpus[2].in_use);

        take(2, 0, again);
        cr_assert_eq(again[0], 1);
        cr_assert_eq(again[1], 3);
}

Test(resources, asking_for_more_gpus_than_free_takes_none) {
        cr_assert_eq(resources_init(&res, 1, 0), 0);

        refused(2, 0, "requested 2 GPUs, 1 of 1 free");
        cr_assert_eq(resources_free_gpus(&res), 1);
        cr_assert_not(res.gpus[0].in_use);
}

Test(resources, refusal_counts_the_free_gpus_of_all) {
        cr_assert_eq(resources_init(&res, 2, 0), 0);
        refused(3, 0, "requested 3 GPUs, 2 of 2 free");
        cr_assert_eq(resources_free_gpus(&res), 2);
}

Test(resources, refusal_of_one_gpu_says_gpu_in_the_singular) {
        cr_assert_eq(resources_init(&res, 2, 0), 0);
        uint32_t ids[2];
        take(2, 0, ids);

        refused(1, 0, "requested 1 GPU, 0 of 2 free");
}

Test(resources, refusal_after_some_are_taken_says_how_many_are_left) {
        cr_assert_eq(resources_init(&res, 4, 0), 0);
        uint32_t ids[3];
        take(3, 0, ids);

        refused(2, 0, "requested 2 GPUs, 1 of 4 free");
        cr_assert_eq(resources_free_gpus(&res), 1);
}

Test(resources, refusal_without_a_message_pointer_is_still_refused) {
        cr_assert_eq(resources_init(&res, 1, 1), 0);
        uint32_t ids[2];
        cr_assert_eq(resources_acquire(&res, 2, 0, ids, NULL), -ENOSPC);
        cr_assert_eq(resources_acquire(&res, 0, 2, ids, NULL), -ENOSPC);
        cr_assert_eq(resources_free_gpus(&res), 1);
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);
}

Test(resources, asking_for_nothing_always_succeeds) {
        cr_assert_eq(resources_init(&res, 0, 0), 0);
        take(0, 0, NULL);
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);
}

Test(resources, gpu_list_string_is_comma_separated) {
        uint32_t two[] = { 0, 1 }, one[] = { 3 }, three[] = { 2, 10, 7 };

        char *s = resources_gpu_list_string(two, 2);
        cr_assert_str_eq(s, "0,1");
        free(s);
        s = resources_gpu_list_string(one, 1);
        cr_assert_str_eq(s, "3");
        free(s);
        s = resources_gpu_list_string(three, 3);
        cr_assert_str_eq(s, "2,10,7");
        free(s);
        s = resources_gpu_list_string(NULL, 0);
        cr_assert_str_eq(s, "");
        free(s);
}

Test(resources, gpu_list_string_of_acquired_gpus) {
        cr_assert_eq(resources_init(&res, 2, 0), 0);
        uint32_t ids[2];
        take(2, 0, ids);

        char *s = resources_gpu_list_string(ids, 2);
        cr_assert_str_eq(s, "0,1");
        free(s);
}

/* --- CPUs --- */

Test(resources, ten_tenths_of_a_cpu_fit_in_one_cpu) {
        cr_assert_eq(resources_init(&res, 0, 1), 0);

        for (int i = 0; i < 10; i++)
                take(0, 0.1, NULL);
        refused(0, 0.1, "requested 0.1 CPUs, 0 of 1 free");
}

Test(resources, released_cpus_can_be_taken_again) {
        cr_assert_eq(resources_init(&res, 0, 1), 0);
        for (int i = 0; i < 10; i++)
                take(0, 0.1, NULL);

        for (int i = 0; i < 10; i++)
                resources_release(&res, NULL, 0, 0.1);
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);

        take(0, 1, NULL);
        refused(0, 0.5, "requested 0.5 CPUs, 0 of 1 free");
}

Test(resources, cpu_refusal_says_what_is_free) {
        cr_assert_eq(resources_init(&res, 0, 2), 0);
        take(0, 1.5, NULL);

        refused(0, 1.5, "requested 1.5 CPUs, 0.5 of 2 free");
        cr_assert_float_eq(res.cpus_used, 1.5, 1e-12);
}

Test(resources, refusal_for_cpus_takes_no_gpus) {
        cr_assert_eq(resources_init(&res, 2, 1), 0);

        refused(1, 2, "requested 2 CPUs, 1 of 1 free");
        cr_assert_eq(resources_free_gpus(&res), 2);
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);
}

Test(resources, refusal_for_gpus_takes_no_cpus) {
        cr_assert_eq(resources_init(&res, 1, 4), 0);

        refused(2, 1, "requested 2 GPUs, 1 of 1 free");
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);
        cr_assert_eq(resources_free_gpus(&res), 1);
}

Test(resources, gpus_and_cpus_are_taken_and_returned_together) {
        cr_assert_eq(resources_init(&res, 2, 2), 0);
        uint32_t ids[1];

        take(1, 1.5, ids);
        cr_assert_eq(ids[0], 0);
        cr_assert_eq(resources_free_gpus(&res), 1);
        cr_assert_float_eq(res.cpus_used, 1.5, 1e-12);

        resources_release(&res, ids, 1, 1.5);
        cr_assert_eq(resources_free_gpus(&res), 2);
        cr_assert_float_eq(res.cpus_used, 0.0, 1e-12);
}
