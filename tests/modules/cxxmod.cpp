// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A module written in C++: tests/check-install.sh builds it out of tree with `pkg-config kactor`
 * against a staged install (g++ -std=c++20 -Wall -Wextra -pedantic -Werror) and creates an actor of
 * its class on a node manager. The make rules do not build it: C is theirs.
 *
 * Accumulator(label): add(x) appends x and returns the sum so far; describe() returns
 * "LABEL: N values". The state is a C++ object with a std::string and a std::vector, so the module
 * needs libstdc++ and its constructors and destructors in the worker.
 */

#include <cerrno>
#include <cstdint>
#include <new>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <kactor/module.h>

namespace {

class Accumulator {
public:
        explicit Accumulator(std::string label) : label_(std::move(label)) {}

        int64_t add(int64_t x) {
                values_.push_back(x);
                return std::accumulate(values_.begin(), values_.end(), int64_t{0});
        }

        std::string describe() const {
                return label_ + ": " + std::to_string(values_.size()) + " values";
        }

private:
        std::string label_;
        std::vector<int64_t> values_;
};

// No exception may leave a callback: the worker that calls them is C.
int accumulator_init(kactor_ctx *ctx, const kactor_value *args, void **ret_state) {
        const char *label;
        int r = kactor_arg_string(ctx, args, 0, &label);
        if (r < 0)
                return r;
        try {
                *ret_state = new Accumulator(label);
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        }
        return 0;
}

void accumulator_destroy(void *state) {
        delete static_cast<Accumulator *>(state);
}

int accumulator_add(kactor_ctx *ctx, void *state, const kactor_value *args, kactor_value **ret) {
        int64_t x;
        int r = kactor_arg_int(ctx, args, 0, &x);
        if (r < 0)
                return r;
        try {
                *ret = kactor_value_new_int(static_cast<Accumulator *>(state)->add(x));
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        }
        return *ret ? 0 : -ENOMEM;
}

int accumulator_describe(kactor_ctx *, void *state, const kactor_value *, kactor_value **ret) {
        try {
                *ret = kactor_value_new_string(static_cast<const Accumulator *>(state)->describe().c_str());
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        }
        return *ret ? 0 : -ENOMEM;
}

const kactor_method accumulator_methods[] = {
        { .name = "add", .fn = accumulator_add, .flags = 0 },
        { .name = "describe", .fn = accumulator_describe, .flags = KACTOR_METHOD_READ_ONLY },
        {},
};

const kactor_class accumulator_class = {
        .name = "Accumulator",
        .init = accumulator_init,
        .destroy = accumulator_destroy,
        .methods = accumulator_methods,
        .save = nullptr,
        .restore = nullptr,
};

const kactor_class *const classes[] = { &accumulator_class, nullptr };

} // namespace

KACTOR_MODULE(.name = "cxxmod", .classes = classes, .functions = nullptr);
