/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "device-filter.h"
#include "macro.h"

/* The kernel's instruction macros (include/linux/filter.h) are not UAPI; these are the few we need. */
#define INSN(c, d, s, o, i) ((struct bpf_insn) { .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX_MEM_W(dst, src, off) INSN(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define ALU32_AND(dst, imm) INSN(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
#define JNE_IMM(dst, imm, off) INSN(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
#define MOV64_IMM(dst, imm) INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define EXIT_INSN() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* What every actor may open: the pseudo-devices a process expects to find. */
static const DeviceRule standard_rules[] = {
        { 'c', 1, 3, false },   /* null */
        { 'c', 1, 5, false },   /* zero */
        { 'c', 1, 7, false },   /* full */
        { 'c', 1, 8, false },   /* random */
        { 'c', 1, 9, false },   /* urandom */
        { 'c', 5, 0, false },   /* tty */
        { 'c', 5, 2, false },   /* ptmx */
        { 'c', 136, 0, true },  /* pts/N */
};

int device_rule_from_path(const char *path, DeviceRule *ret) {
        struct stat st;

        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
                return -ENOTTY;
        *ret = (DeviceRule) {
                .type = S_ISCHR(st.st_mode) ? 'c' : 'b',
                .major = major(st.st_rdev),
                .minor = minor(st.st_rdev),
        };
        return 0;
}

static size_t rule_append(struct bpf_insn *p, const DeviceRule *r) {
        size_t k = 0;
        int skip = r->any_minor ? 3 : 4; /* instructions after the first test */

        /* r2: type, r3: major, r4: minor. A mismatch jumps past this rule's block. */
        p[k++] = JNE_IMM(BPF_REG_2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, skip);
        p[k++] = JNE_IMM(BPF_REG_3, (int32_t) r->major, skip - 1);
        if (!r->any_minor)
                p[k++] = JNE_IMM(BPF_REG_4, (int32_t) r->minor, skip - 2);
        p[k++] = MOV64_IMM(BPF_REG_0, 1);
        p[k++] = EXIT_INSN();
        return k;
}

int device_filter_build(const DeviceRule *rules, size_t n, void **ret, size_t *ret_n) {
        size_t total = ELEMENTSOF(standard_rules) + n, k = 0;
        struct bpf_insn *p;

        if (n > DEVICE_FILTER_MAX_RULES)
                return -E2BIG;
        p = calloc(4 + 5 * total + 2, sizeof(struct bpf_insn));
        if (!p)
                return -ENOMEM;
        /* struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; } */
        p[k++] = LDX_MEM_W(BPF_REG_2, BPF_REG_1, 0);
        p[k++] = ALU32_AND(BPF_REG_2, 0xffff);
        p[k++] = LDX_MEM_W(BPF_REG_3, BPF_REG_1, 4);
        p[k++] = LDX_MEM_W(BPF_REG_4, BPF_REG_1, 8);
        for (size_t i = 0; i < ELEMENTSOF(standard_rules); i++)
                k += rule_append(p + k, &standard_rules[i]);
        for (size_t i = 0; i < n; i++) {
                if (rules[i].type != 'c' && rules[i].type != 'b') {
                        free(p);
                        return -EINVAL;
                }
                k += rule_append(p + k, &rules[i]);
        }
        /* Default deny. */
        p[k++] = MOV64_IMM(BPF_REG_0, 0);
        p[k++] = EXIT_INSN();
        *ret = p;
        *ret_n = k;
        return 0;
}

int device_filter_load(const DeviceRule *rules, size_t n) {
        _cleanup_free_ void *insns = NULL;
        size_t n_insns;
        int r, fd;

        r = device_filter_build(rules, n, &insns, &n_insns);
        if (r < 0)
                return r;
        fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, "kactor_devices", "GPL", insns, n_insns, NULL);
        if (fd < 0)
                return fd < -1 ? fd : negative_errno();
        return fd;
}

int device_filter_attach(int prog_fd, const char *cgroup_dir) {
        _cleanup_close_ int fd = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (bpf_prog_attach(prog_fd, fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) < 0)
                return negative_errno();
        return 0;
}
