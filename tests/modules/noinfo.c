/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A shared object that loads but is not a kactor module: it has no kactor_module_info.
 */

int noinfo_answer(void);

int noinfo_answer(void) {
        return 42;
}
