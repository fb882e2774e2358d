# kactor — top-level build.
#
#   make            build everything into build/
#   make check      unit and integration tests, then again with ASan+UBSan (build-asan/)
#   make demo       the seed's examples against a node manager on a private bus
#   make bench      the benchmarks (not part of check)
#   make install    binaries, library, headers, pkg-config file, units
#   make deps       installs the Debian packages the build, demo and tests need (only missing ones)

BUILD ?= build
SANITIZE ?=
PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec/kactor
INCLUDEDIR ?= $(PREFIX)/include
MODULEDIR ?= $(LIBDIR)/kactor/modules
SYSTEMDUNITDIR ?= /etc/systemd/system
DBUSSYSTEMDIR ?= /etc/dbus-1/system.d
DBUSSERVICEDIR ?= /usr/share/dbus-1/system-services
SYSUSERSDIR ?= /usr/lib/sysusers.d
# polkit reads its actions from here only, whatever the prefix.
POLKITACTIONDIR ?= /usr/share/polkit-1/actions
TMPFILESDIR ?= /usr/lib/tmpfiles.d
VERSION := 0.1.0
SOVERSION := 0

CC ?= gcc
PKG_CONFIG ?= pkg-config

DEB_PACKAGES := build-essential pkg-config zlib1g-dev libsystemd-dev libmsgpack-dev uthash-dev libbpf-dev \
        libcap-dev libcgroup-dev libcriterion-dev bpftool clang llvm systemtap-sdt-dev dbus \
        dbus-daemon systemd systemd-container iproute2 nftables procps libssl-dev \
        libjson-c-dev

# Packages that must be there before pkg-config can be asked anything.
ifneq ($(filter deps,$(MAKECMDGOALS)),deps)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags libsystemd msgpack 2>/dev/null)
PKG_LIBS_SYSTEMD := $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
PKG_LIBS_MSGPACK := $(shell $(PKG_CONFIG) --libs msgpack 2>/dev/null)
# cgroups/: the device-cgroup program, capabilities, v1 controllers.
PKG_LIBS_ISOLATION := $(shell $(PKG_CONFIG) --libs libbpf libcap libcgroup 2>/dev/null)
# nodemgr/peer.c: HMAC-SHA256 for peer authentication.
PKG_LIBS_CRYPTO := $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null)
# The state journal's checksums (nodemgr/core/persist.c).
PKG_LIBS_ZLIB := $(shell $(PKG_CONFIG) --libs zlib 2>/dev/null)
PKG_CRITERION := $(shell $(PKG_CONFIG) --cflags --libs criterion 2>/dev/null)
# kactorctl/: its JSON arguments (libkactor itself does not link it).
PKG_CFLAGS_JSONC := $(shell $(PKG_CONFIG) --cflags json-c 2>/dev/null)
PKG_LIBS_JSONC := $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null)
endif

WARNINGS := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wshadow \
        -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror=implicit-function-declaration
BASE_CFLAGS := -std=gnu11 -g -O2 -fPIC -D_GNU_SOURCE -DKACTOR_VERSION='"$(VERSION)"' \
        -DKACTOR_LIBEXECDIR='"$(LIBEXECDIR)"' -DKACTOR_MODULEDIR='"$(MODULEDIR)"' \
        $(WARNINGS) $(PKG_CFLAGS)

# --- layers ----------------------------------------------------------------------------------------
# Each folder sees only its own headers and those of the layers below it, so an include that goes
# the wrong way does not compile (docs/architecture.md; tests/check-includes.sh checks the rest):
#   lib/basic <- lib <- lib/worker, cgroups, bpf <- nodemgr/core <- nodemgr/{bus,native,cluster}
#   <- nodemgr/nodemgr.c;   kactorctl/ is a client: lib, bpf's formats and the bus's value mapping.
INC_BASIC := -Ilib/basic
INC_LIB := $(INC_BASIC) -Iinclude -Ilib
INC_CGROUPS := $(INC_LIB) -Icgroups
INC_BPF := $(INC_LIB) -Ibpf -I$(BUILD)/bpf
INC_CORE := $(INC_CGROUPS) -Ibpf -I$(BUILD)/bpf -Inodemgr/core
INC_NODEMGR := $(INC_CORE) -Inodemgr/bus -Inodemgr/native -Inodemgr/cluster
INC_KACTORCTL := $(INC_LIB) -Ibpf -Inodemgr/bus -Ikactorctl

$(BUILD)/obj/lib/basic/%.o: FOLDER_INC = $(INC_BASIC)
$(BUILD)/obj/lib/%.o: FOLDER_INC = $(INC_LIB)
$(BUILD)/obj/lib/worker/%.o: FOLDER_INC = $(INC_LIB) -Ibpf -Ilib/worker
$(BUILD)/obj/cgroups/%.o: FOLDER_INC = $(INC_CGROUPS)
$(BUILD)/obj/bpf/%.o: FOLDER_INC = $(INC_BPF)
$(BUILD)/obj/nodemgr/core/%.o: FOLDER_INC = $(INC_CORE)
$(BUILD)/obj/nodemgr/bus/%.o: FOLDER_INC = $(INC_CORE) -Inodemgr/bus
$(BUILD)/obj/nodemgr/native/%.o: FOLDER_INC = $(INC_CORE) -Inodemgr/native
$(BUILD)/obj/nodemgr/cluster/%.o: FOLDER_INC = $(INC_CORE) -Inodemgr/cluster
$(BUILD)/obj/nodemgr/nodemgr.o: FOLDER_INC = $(INC_NODEMGR)
$(BUILD)/obj/kactorctl/%.o: FOLDER_INC = $(INC_KACTORCTL) $(PKG_CFLAGS_JSONC)
# Tests see everything they test.
$(BUILD)/obj/tests/%.o: FOLDER_INC = $(INC_NODEMGR) -Ikactorctl
TEST_INC = $(INC_NODEMGR) -Ikactorctl
ifeq ($(SANITIZE),1)
BASE_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BASE_LDFLAGS += -fsanitize=address,undefined
endif
CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(BASE_LDFLAGS) $(LDFLAGS) -Wl,-z,relro,-z,now
RPATH = -Wl,-rpath,'$$ORIGIN'

# --- sources ---------------------------------------------------------------------------------------
# libkactor: values, codec, framing, the client; exported symbols in lib/libkactor.sym.
BASIC_SRCS := $(wildcard lib/basic/*.c)
# log.c and parse-util.c are the programs' (libkactor returns errors and takes no command lines).
LIB_SRCS := $(wildcard lib/*.c) $(filter-out lib/basic/log.c lib/basic/parse-util.c,$(BASIC_SRCS))
# kactor-worker: its runtime links libkactor's objects in (it uses the codec and framing, which the
# library does not export); modules it loads link libkactor.so for the API, module-api.c among it.
WORKER_SRCS := $(wildcard lib/worker/*.c)
# The node manager's layers; nodemgr.c holds main.
NODEMGR_SRCS := lib/basic/log.c lib/basic/parse-util.c $(wildcard nodemgr/core/*.c nodemgr/bus/*.c nodemgr/native/*.c nodemgr/cluster/*.c) \
        $(wildcard cgroups/*.c) $(filter-out %.bpf.c,$(wildcard bpf/*.c))
KACTORCTL_SRCS := $(wildcard kactorctl/*.c)
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
NODEMGR_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(NODEMGR_SRCS))
WORKER_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(WORKER_SRCS))
KACTORCTL_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(KACTORCTL_SRCS))

EXAMPLE_MODULES := $(patsubst examples/%.c,$(BUILD)/examples/%.so,$(filter-out examples/demo-%.c,$(wildcard examples/*.c)))
EXAMPLE_PROGRAMS := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/demo-*.c))
TEST_MODULES := $(patsubst tests/modules/%.c,$(BUILD)/tests/modules/%.so,$(wildcard tests/modules/*.c))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test-*.c))
INTEGRATION_TESTS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test-*.c))
INTEGRATION_HELPERS := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out tests/integration/test-%.c,$(wildcard tests/integration/*.c)))
BENCH_PROGRAMS := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(filter-out tests/bench/bench-util.c,$(wildcard tests/bench/*.c)))
BENCH_HELPERS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/bench/bench-util.c))

BINARIES := $(BUILD)/kactor-nodemgr $(BUILD)/kactorctl $(BUILD)/kactor-worker
LIBKACTOR := $(BUILD)/libkactor.so.$(SOVERSION)
CORE_ARCHIVE := $(BUILD)/libkactor-core.a

.PHONY: all deps check check-unit check-integration check-asan check-docs check-includes demo bench install clean \
        format docs tests
all: $(LIBKACTOR) $(BUILD)/libkactor.so $(BINARIES) $(EXAMPLE_MODULES) $(EXAMPLE_PROGRAMS) $(TEST_MODULES) \
        $(BUILD)/kactor.pc

# --- Debian packages -------------------------------------------------------------------------------
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	        dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	        echo "Installing Debian packages:$$missing"; \
	        if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (or with sudo) to install:$$missing" >&2; exit 1; fi; \
	        DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing </dev/null; \
	else echo "All build and test dependencies are installed."; fi

# --- compile ---------------------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(FOLDER_INC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# --- BPF (bpf/): CO-RE objects and their skeletons (generated, never committed) -------------------
# vmlinux.h comes from the running kernel's BTF; x.bpf.c -> x.bpf.o -> x.skel.h (struct x_bpf).
BPFTOOL ?= bpftool
BPF_CLANG ?= clang
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -I/usr/include/$(shell $(CC) -dumpmachine 2>/dev/null) \
        -I$(BUILD)/bpf -Ibpf -Wall -Wno-unused-function
BPF_HEADERS := $(wildcard bpf/*.h)

$(BUILD)/bpf/vmlinux.h:
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HEADERS) $(BUILD)/bpf/vmlinux.h
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

# The loader includes its skeleton.
$(BUILD)/obj/bpf/trace.o: $(BUILD)/bpf/trace.skel.h

# The tracing overhead benchmark talks D-Bus and reads the programs' run counters.
$(BUILD)/tests/bench/bench-tracing: tests/bench/bench-tracing.c $(BENCH_HELPERS) $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -Itests/bench $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/../..' -o $@ $< $(BENCH_HELPERS) \
	        -L$(BUILD) -lkactor $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) $(PKG_LIBS_ISOLATION) -lm

# The cluster benchmark watches the nodes' Peers on their buses (sd-bus) and waits for a call in a thread.
$(BUILD)/tests/bench/bench-cluster: tests/bench/bench-cluster.c $(BENCH_HELPERS) $(wildcard tests/bench/*.h) \
                $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -Itests/bench $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/../..' -o $@ $< $(BENCH_HELPERS) \
	        -L$(BUILD) -lkactor $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) -lpthread -lm

# The restart benchmark reads actors' properties over D-Bus (sd-bus) and calls from threads.
$(BUILD)/tests/bench/bench-restart: tests/bench/bench-restart.c $(BENCH_HELPERS) $(wildcard tests/bench/*.h) \
                $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -Itests/bench $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/../..' -o $@ $< $(BENCH_HELPERS) \
	        -L$(BUILD) -lkactor $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) -lpthread -lm

# Unit tests of BPF programs drive them with BPF_PROG_TEST_RUN through a test object of their own.
$(BUILD)/tests/unit/bpf/%.bpf.o: tests/unit/bpf/%.bpf.c bpf/trace.bpf.c $(BPF_HEADERS) $(BUILD)/bpf/vmlinux.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/tests/unit/bpf/%.skel.h: $(BUILD)/tests/unit/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@.tmp && mv $@.tmp $@

BPF_UNIT_TESTS := $(filter $(BUILD)/tests/unit/test-bpf-%,$(UNIT_TESTS))
$(BPF_UNIT_TESTS): $(BUILD)/tests/unit/test-bpf-%: tests/unit/test-bpf-%.c $(BUILD)/tests/unit/bpf/test-%.skel.h \
                $(CORE_ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -I$(BUILD)/tests/unit/bpf $(ALL_LDFLAGS) -o $@ $< $(CORE_ARCHIVE) $(PKG_CRITERION) \
	        $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) $(PKG_LIBS_ISOLATION) $(PKG_LIBS_CRYPTO) $(PKG_LIBS_ZLIB) -lm

$(CORE_ARCHIVE): $(LIB_OBJS) $(NODEMGR_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBKACTOR): $(LIB_OBJS) lib/libkactor.sym
	$(CC) -shared $(ALL_LDFLAGS) -Wl,-soname,libkactor.so.$(SOVERSION) -Wl,--version-script=lib/libkactor.sym \
	        -o $@ $(LIB_OBJS) $(PKG_LIBS_MSGPACK)

$(BUILD)/libkactor.so: $(LIBKACTOR)
	ln -sf libkactor.so.$(SOVERSION) $@

# It also loads libkactor.so itself, so a module finds the library the worker came with wherever
# the module lies (a module copied out of the build tree finds it by its soname).
$(BUILD)/kactor-worker: $(WORKER_OBJS) $(LIB_OBJS) $(BUILD)/libkactor.so
	$(CC) $(ALL_LDFLAGS) $(RPATH) -o $@ $(WORKER_OBJS) $(LIB_OBJS) -L$(BUILD) -Wl,--no-as-needed -lkactor \
	        -Wl,--as-needed $(PKG_LIBS_MSGPACK) \
	        $(shell $(PKG_CONFIG) --libs libcap 2>/dev/null) -ldl

$(BUILD)/kactor-nodemgr: $(BUILD)/obj/nodemgr/nodemgr.o $(CORE_ARCHIVE)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(CORE_ARCHIVE) $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) $(PKG_LIBS_ISOLATION) $(PKG_LIBS_CRYPTO) $(PKG_LIBS_ZLIB) -lm

$(BUILD)/kactorctl: $(KACTORCTL_OBJS) $(CORE_ARCHIVE)
	$(CC) $(ALL_LDFLAGS) -o $@ $(KACTORCTL_OBJS) $(CORE_ARCHIVE) $(PKG_LIBS_JSONC) $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) \
	        $(PKG_LIBS_ISOLATION) $(PKG_LIBS_CRYPTO) $(PKG_LIBS_ZLIB) -lm

$(BUILD)/examples/%.so: examples/%.c $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(ALL_CFLAGS) -shared $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/..' -o $@ $< -L$(BUILD) -lkactor -lm

$(BUILD)/examples/demo-%: examples/demo-%.c $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(ALL_CFLAGS) $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/..' -o $@ $< -L$(BUILD) -lkactor -lm

$(BUILD)/tests/modules/%.so: tests/modules/%.c $(wildcard tests/modules/*.h) $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) -Iinclude $(ALL_CFLAGS) -shared $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/../..' -o $@ $< -L$(BUILD) -lkactor -lm

$(BUILD)/kactor.pc: lib/kactor.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' $< > $@

# --- tests -----------------------------------------------------------------------------------------
$(BUILD)/tests/unit/%: tests/unit/%.c $(CORE_ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(CORE_ARCHIVE) $(PKG_CRITERION) $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) $(PKG_LIBS_ISOLATION) $(PKG_LIBS_CRYPTO) $(PKG_LIBS_ZLIB) -lm

# Pure logic is tested alone: these unit tests see only lib's headers and their own folder's, and
# link only their files, lib/basic and what those really need, so a dependency that creeps in
# (the manager, sd-bus, sockets) fails to build.
BASIC_ARCHIVE := $(BUILD)/libkactor-basic.a
PURE_UNIT_TESTS := $(BUILD)/tests/unit/test-membership $(BUILD)/tests/unit/test-placement \
        $(BUILD)/tests/unit/test-kactorctl-value
$(BUILD)/tests/unit/test-membership: $(patsubst %,$(BUILD)/obj/%.o,nodemgr/cluster/membership lib/codec lib/proto lib/value)
$(BUILD)/tests/unit/test-membership: PURE_LIBS = $(PKG_LIBS_MSGPACK)
$(BUILD)/tests/unit/test-placement: $(BUILD)/obj/nodemgr/cluster/placement.o
$(BUILD)/tests/unit/test-kactorctl-value: $(patsubst %,$(BUILD)/obj/%.o,kactorctl/kactorctl-value lib/value)
$(BUILD)/tests/unit/test-kactorctl-value: PURE_INC = -Ikactorctl $(PKG_CFLAGS_JSONC)
$(BUILD)/tests/unit/test-kactorctl-value: PURE_LIBS = $(PKG_LIBS_JSONC)
$(PURE_UNIT_TESTS): $(BUILD)/tests/unit/%: tests/unit/%.c $(BASIC_ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(INC_LIB) -Inodemgr/cluster $(PURE_INC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(filter %.o,$^) $(BASIC_ARCHIVE) \
	        $(PKG_CRITERION) $(PURE_LIBS) -lm

$(BASIC_ARCHIVE): $(patsubst %.c,$(BUILD)/obj/%.o,$(BASIC_SRCS))
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/integration/%: tests/integration/%.c $(INTEGRATION_HELPERS) $(CORE_ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -Itests/integration $(ALL_LDFLAGS) -o $@ $< $(INTEGRATION_HELPERS) $(CORE_ARCHIVE) \
	        $(PKG_CRITERION) $(PKG_LIBS_SYSTEMD) $(PKG_LIBS_MSGPACK) $(PKG_LIBS_ISOLATION) $(PKG_LIBS_CRYPTO) $(PKG_LIBS_ZLIB) -lm

$(BUILD)/tests/bench/%: tests/bench/%.c $(BENCH_HELPERS) $(wildcard tests/bench/*.h) $(BUILD)/libkactor.so
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -Itests/bench $(ALL_LDFLAGS) -Wl,-rpath,'$$ORIGIN/../..' -o $@ $< $(BENCH_HELPERS) \
	        -L$(BUILD) -lkactor $(PKG_LIBS_MSGPACK) -lm

tests: all $(UNIT_TESTS) $(INTEGRATION_TESTS)

# Criterion prints "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N" per binary. A
# sanitizer report (a leak is reported after Criterion has counted the test) fails the run too.
CRITERION_ARGS ?= --jobs=2 --timeout=120
SANITIZER_REPORT := ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:
# Skipped tests are not in Criterion's count: tests/skip.h prints a "[SKIP]" line for each, counted here.
RUN_TESTS = set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; skipped=0; for t in $(1); do echo "== $$t"; \
        if ! KACTOR_BUILD=$(abspath $(BUILD)) LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
                $$t $(CRITERION_ARGS) > $$log 2>&1; then cat $$log; exit 1; fi; \
        cat $$log; if grep -Eq '$(SANITIZER_REPORT)' $$log; then echo "FAIL: sanitizer report in $$t" >&2; exit 1; fi; \
        skipped=$$((skipped + $$(grep -c '^\[SKIP\]' $$log || true))); done; echo "== $$skipped tests skipped"

check-unit: tests
	@$(call RUN_TESTS,$(UNIT_TESTS))

check-integration: tests
	@$(call RUN_TESTS,$(INTEGRATION_TESTS))

check-docs: all
	tests/check-dbus-docs.sh $(BUILD)

# The service's sandbox: systemd-analyze security (offline) at 4.0 or less, verify clean (docs/isolation.md).
.PHONY: check-unit-security
check-unit-security: all
	tests/check-unit-security.sh $(BUILD)

# Every #include goes down the layers (docs/architecture.md); cheap, so check runs it first.
check-includes:
	tests/check-includes.sh

# libFuzzer under ASan+UBSan (clang): the frame decoder and codec, the peer parsers, and real node managers
# driven by native clients and by an authenticated peer; bounded (docs/fuzzing.md).
.PHONY: check-fuzz
check-fuzz:
	tests/fuzz/run.sh $(BUILD)

check-asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 check-unit check-integration

check: deps check-includes
	$(MAKE) check-unit check-integration check-docs check-unit-security check-fuzz
	$(MAKE) check-asan
	@echo "make check: all tests passed (normal and ASan+UBSan builds)"

docs: all
	tests/check-dbus-docs.sh $(BUILD) --update

demo: deps
	$(MAKE) all
	examples/demo.sh $(BUILD)

bench: all $(BENCH_PROGRAMS)
	tests/bench/run.sh $(BUILD)

# --- install ---------------------------------------------------------------------------------------
install: all
	install -Dm755 $(BUILD)/kactor-nodemgr $(DESTDIR)$(PREFIX)/sbin/kactor-nodemgr
	install -Dm755 $(BUILD)/kactorctl $(DESTDIR)$(PREFIX)/bin/kactorctl
	install -Dm755 $(BUILD)/kactor-worker $(DESTDIR)$(LIBEXECDIR)/kactor-worker
	install -Dm755 $(LIBKACTOR) $(DESTDIR)$(LIBDIR)/libkactor.so.$(SOVERSION)
	ln -sf libkactor.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkactor.so
	install -Dm644 include/kactor/value.h $(DESTDIR)$(INCLUDEDIR)/kactor/value.h
	install -Dm644 include/kactor/client.h $(DESTDIR)$(INCLUDEDIR)/kactor/client.h
	install -Dm644 include/kactor/module.h $(DESTDIR)$(INCLUDEDIR)/kactor/module.h
	install -Dm644 $(BUILD)/kactor.pc $(DESTDIR)$(LIBDIR)/pkgconfig/kactor.pc
	install -d $(DESTDIR)$(MODULEDIR)
	for m in $(EXAMPLE_MODULES); do install -m755 $$m $(DESTDIR)$(MODULEDIR)/; done
	for f in units/kactor-*.service units/*.slice; do [ -e "$$f" ] && install -Dm644 $$f $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$f); done; true
	[ ! -e units/io.kactor.NodeManager1.conf ] || install -Dm644 units/io.kactor.NodeManager1.conf $(DESTDIR)$(DBUSSYSTEMDIR)/io.kactor.NodeManager1.conf
	[ ! -e units/dbus-io.kactor.NodeManager1.service ] || install -Dm644 units/dbus-io.kactor.NodeManager1.service $(DESTDIR)$(DBUSSERVICEDIR)/io.kactor.NodeManager1.service
	install -Dm644 units/io.kactor.policy $(DESTDIR)$(POLKITACTIONDIR)/io.kactor.policy
	[ ! -e units/kactor.sysusers ] || install -Dm644 units/kactor.sysusers $(DESTDIR)$(SYSUSERSDIR)/kactor.conf
	[ ! -e units/kactor.tmpfiles ] || install -Dm644 units/kactor.tmpfiles $(DESTDIR)$(TMPFILESDIR)/kactor.conf
	install -Dm644 README.md $(DESTDIR)$(PREFIX)/share/doc/kactor/README.md
	for d in docs/*.md; do install -Dm644 $$d $(DESTDIR)$(PREFIX)/share/doc/kactor/$$(basename $$d); done
	[ -n "$(DESTDIR)" ] || ldconfig

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
