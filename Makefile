# kactor — top-level build.
#
#   make            build everything into build/
#   make check      unit and integration tests, then again with ASan+UBSan (build-asan/)
#   make demo       the seed's examples against a node manager on a private bus
#   make bench      the benchmarks (not part of check)
#   make install    binaries, library, headers, pkg-config file, units (PREFIX=, DESTDIR=, the GNU *DIR=s)
#   make deb        the Debian package (debian/), into $(BUILD)/deb/
#   make deps       installs the Debian packages the build, demo and tests need (only missing ones)

BUILD ?= build
SANITIZE ?=
VERSION := 0.1.0
SOVERSION := 0

# --- where `make install` puts things ----------------------------------------------------------------
# The GNU directory variables, each settable on the command line (`make install PREFIX=/usr
# DESTDIR=/tmp/stage`). What embeds them (the manager's worker and module paths, the units, the
# D-Bus activation file, kactor.pc) follows them: see $(CONFIG_STAMP) below.
PREFIX ?= /usr/local
DESTDIR ?=
EXEC_PREFIX ?= $(PREFIX)
BINDIR ?= $(EXEC_PREFIX)/bin
SBINDIR ?= $(EXEC_PREFIX)/sbin
LIBDIR ?= $(EXEC_PREFIX)/lib
LIBEXECDIR ?= $(EXEC_PREFIX)/libexec
# kactor-worker lies here (GNU's pkglibexecdir).
PKGLIBEXECDIR ?= $(LIBEXECDIR)/kactor
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/kactor
MANDIR ?= $(DATADIR)/man
# bash-completion also reads $XDG_DATA_DIRS (/usr/local/share:/usr/share by default).
BASHCOMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
# /etc for /usr, as meson and Debian do; GNU's $(PREFIX)/etc otherwise.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MODULEDIR ?= $(LIBDIR)/kactor/modules
# The system's services read their configuration from fixed places, and not from every prefix:
# systemd 252 reads units, sysusers.d and tmpfiles.d under /usr/lib and /usr/local/lib (and /etc),
# dbus-daemon 1.14 activation files under /usr/share and /usr/local/share, but bus policies only
# from /usr/share/dbus-1/system.d and /etc/dbus-1/system.d. So for PREFIX=/usr and /usr/local these
# files go under the prefix, where `systemctl edit` and files in /etc can still override them; for
# any other prefix (nothing there is read) they go to /etc, or to /usr/share where there is no /etc
# directory.
SYSTEM_PREFIX := $(filter /usr /usr/local,$(PREFIX))
SYSTEM_ETC := $(if $(filter /usr,$(PREFIX)),$(SYSCONFDIR),/etc)
UNITDIR ?= $(if $(SYSTEM_PREFIX),$(PREFIX)/lib/systemd/system,$(SYSTEM_ETC)/systemd/system)
SYSTEMDUNITDIR ?= $(UNITDIR)
DBUSSYSTEMDIR ?= $(if $(filter /usr,$(PREFIX)),$(DATADIR)/dbus-1/system.d,$(SYSTEM_ETC)/dbus-1/system.d)
DBUSSERVICEDIR ?= $(if $(SYSTEM_PREFIX),$(DATADIR),/usr/share)/dbus-1/system-services
SYSUSERSDIR ?= $(if $(SYSTEM_PREFIX),$(PREFIX)/lib/sysusers.d,$(SYSTEM_ETC)/sysusers.d)
TMPFILESDIR ?= $(if $(SYSTEM_PREFIX),$(PREFIX)/lib/tmpfiles.d,$(SYSTEM_ETC)/tmpfiles.d)
# polkit reads its actions from /usr/share/polkit-1/actions only, whatever the prefix.
POLKITACTIONDIR ?= $(if $(filter /usr,$(PREFIX)),$(DATADIR),/usr/share)/polkit-1/actions

# Passed to `make install-extras` (mk/*.mk) and substituted as @NAME@ in the templates (*.in).
DIR_VARS := PREFIX EXEC_PREFIX BINDIR SBINDIR LIBDIR LIBEXECDIR PKGLIBEXECDIR INCLUDEDIR DATADIR DOCDIR MANDIR \
        BASHCOMPLETIONDIR SYSCONFDIR MODULEDIR SYSTEMDUNITDIR DBUSSYSTEMDIR DBUSSERVICEDIR SYSUSERSDIR TMPFILESDIR \
        POLKITACTIONDIR

CC ?= gcc
PKG_CONFIG ?= pkg-config

DEB_PACKAGES := build-essential pkg-config zlib1g-dev libsystemd-dev libmsgpack-dev uthash-dev libbpf-dev \
        libcap-dev libcgroup-dev libcriterion-dev bpftool clang llvm systemtap-sdt-dev dbus \
        dbus-daemon systemd systemd-container iproute2 nftables procps libssl-dev \
        libjson-c-dev debhelper dpkg-dev fakeroot scdoc

# Packages that must be there before pkg-config can be asked anything.
ifneq ($(filter deps,$(MAKECMDGOALS)),deps)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags libsystemd msgpack 2>/dev/null)
PKG_LIBS_SYSTEMD := $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
PKG_LIBS_MSGPACK := $(shell $(PKG_CONFIG) --libs msgpack 2>/dev/null)
# cgroups/: the device-cgroup program, capabilities, v1 controllers.
PKG_LIBS_ISOLATION := $(shell $(PKG_CONFIG) --libs libbpf libcap libcgroup 2>/dev/null)
# nodemgr/cluster/peer*.c: TLS 1.3 between peers (libssl), HMAC-SHA256 and HKDF (libcrypto).
PKG_LIBS_CRYPTO := $(shell $(PKG_CONFIG) --libs libssl libcrypto 2>/dev/null)
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
$(BUILD)/obj/lib/worker/%.o: FOLDER_INC = $(INC_LIB) -Ilib/worker
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
# units/*.in: the files that name installed paths, generated for the configured ones.
GENERATED_UNITS := $(patsubst units/%.in,$(BUILD)/units/%,$(wildcard units/*.in))
LIBKACTOR := $(BUILD)/libkactor.so.$(SOVERSION)
CORE_ARCHIVE := $(BUILD)/libkactor-core.a

.PHONY: all deps check check-unit check-integration check-asan check-docs check-includes demo bench install clean \
        format docs tests
all: $(LIBKACTOR) $(BUILD)/libkactor.so $(BINARIES) $(EXAMPLE_MODULES) $(EXAMPLE_PROGRAMS) $(TEST_MODULES) \
        $(BUILD)/kactor.pc $(GENERATED_UNITS) all-extras

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
	$(CC) $(FOLDER_INC) $(ALL_CFLAGS) $(PATH_CFLAGS) -MMD -MP -c $< -o $@

# --- configured paths ------------------------------------------------------------------------------
# $(CONFIG_STAMP) holds the directories; it is rewritten only when one of them changes, and what
# embeds them depends on it, so `make install PREFIX=/usr` after `make` rebuilds those and nothing
# else. Only the objects listed here see the paths: a new user of KACTOR_MODULEDIR or
# KACTOR_LIBEXECDIR joins PATH_OBJS, or it does not compile (rather than keep a stale path).
CONFIG_STAMP := $(BUILD)/config.stamp
PATH_OBJS := $(BUILD)/obj/nodemgr/nodemgr.o $(BUILD)/obj/nodemgr/core/manager.o
$(PATH_OBJS): PATH_CFLAGS = -DKACTOR_LIBEXECDIR='"$(PKGLIBEXECDIR)"' -DKACTOR_MODULEDIR='"$(MODULEDIR)"'
$(PATH_OBJS): $(CONFIG_STAMP)

.PHONY: FORCE
$(CONFIG_STAMP): FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' $(foreach v,VERSION $(DIR_VARS),'$(v)=$($(v))') > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "configured $(BUILD) for PREFIX=$(PREFIX)"; fi

# Templates: @NAME@ is the value of NAME (one of DIR_VARS, VERSION, or kactor.pc's PC_* below).
# A name left unsubstituted fails the build.
SUBST_VARS := VERSION $(DIR_VARS) PC_EXEC_PREFIX PC_LIBDIR PC_INCLUDEDIR PC_MODULEDIR PC_LIBS_PRIVATE
SUBST = sed $(foreach v,$(SUBST_VARS),-e 's|@$(v)@|$($(v))|g') $< > $@.tmp && \
        if grep -n '@[A-Z_]*@' $@.tmp; then echo "$<: unknown @NAME@ above" >&2; rm -f $@.tmp; exit 1; fi && \
        mv $@.tmp $@

# kactor.pc names its directories relative to ${prefix}, so pkg-config --define-prefix and
# PKG_CONFIG_SYSROOT_DIR can move it (a staged install, a relocated tree).
PC_EXEC_PREFIX = $(if $(filter $(PREFIX),$(EXEC_PREFIX)),$${prefix},$(EXEC_PREFIX))
PC_LIBDIR = $(patsubst $(EXEC_PREFIX)/%,$${exec_prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
PC_MODULEDIR = $(patsubst $(LIBDIR)/%,$${libdir}/%,$(MODULEDIR))
# libkactor links msgpack-c; a static link needs it too. Not Requires.private: a client of the
# shared library should not need msgpack's development files for `pkg-config --cflags`.
PC_LIBS_PRIVATE = $(strip $(PKG_LIBS_MSGPACK))

$(BUILD)/kactor.pc: lib/kactor.pc.in $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(SUBST)

# The units and the D-Bus activation file (GENERATED_UNITS) name the installed programs and docs.
$(BUILD)/units/%: units/%.in $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(SUBST)

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
	        -Wl,--as-needed $(PKG_LIBS_MSGPACK) $(PKG_LIBS_SYSTEMD) \
	        $(shell $(PKG_CONFIG) --libs libcap 2>/dev/null) -ldl -pthread

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

# Integration tests with BPF programs of their own (tests/integration/bpf/) attach them to the real
# binaries: test-usdt to kactor's USDT probes.
$(BUILD)/tests/integration/bpf/%.bpf.o: tests/integration/bpf/%.bpf.c $(wildcard tests/integration/bpf/*.h) \
                $(BUILD)/bpf/vmlinux.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -Itests/integration/bpf -c $< -o $@

$(BUILD)/tests/integration/bpf/%.skel.h: $(BUILD)/tests/integration/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/integration/test-usdt: tests/integration/test-usdt.c $(BUILD)/tests/integration/bpf/test-usdt.skel.h \
                $(INTEGRATION_HELPERS) $(CORE_ARCHIVE)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_INC) $(ALL_CFLAGS) -Itests/integration -Itests/integration/bpf -I$(BUILD)/tests/integration/bpf \
	        $(ALL_LDFLAGS) -o $@ $< $(INTEGRATION_HELPERS) $(CORE_ARCHIVE) \
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

# A staged `make install PREFIX=/usr` from a copy of the build: the installed paths, kactor.pc, an
# out-of-tree C client and C++ module built with pkg-config, the C++ module loaded (a few seconds).
.PHONY: check-install
check-install: all
	tests/check-install.sh $(BUILD)

# Every #include goes down the layers (docs/architecture.md); cheap, so check runs it first.
check-includes:
	tests/check-includes.sh

# libFuzzer under ASan+UBSan (clang): the frame decoder and codec, the peer parsers, and real node managers
# driven by native clients and by an authenticated peer; bounded (docs/fuzzing.md).
.PHONY: check-fuzz
check-fuzz:
	tests/fuzz/run.sh $(BUILD)

NPROC := $(shell nproc 2>/dev/null || echo 1)
check-asan:
	$(MAKE) -j$(NPROC) BUILD=build-asan SANITIZE=1 tests
	$(MAKE) BUILD=build-asan SANITIZE=1 check-unit check-integration

# Everything is built first on every CPU; the tests then run one binary at a time (each runs its tests
# in parallel, and timing checks want the machine to themselves).
check: deps check-includes
	$(MAKE) -j$(NPROC) tests
	$(MAKE) check-unit check-integration check-docs check-unit-security check-install check-fuzz
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
# Honours DESTDIR and the directory variables at the top (README.md, "Running it as a service").
install: all
	install -Dm755 $(BUILD)/kactor-nodemgr $(DESTDIR)$(SBINDIR)/kactor-nodemgr
	install -Dm755 $(BUILD)/kactorctl $(DESTDIR)$(BINDIR)/kactorctl
	install -Dm755 $(BUILD)/kactor-worker $(DESTDIR)$(PKGLIBEXECDIR)/kactor-worker
	install -Dm755 $(LIBKACTOR) $(DESTDIR)$(LIBDIR)/libkactor.so.$(SOVERSION)
	ln -sf libkactor.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkactor.so
	install -d $(DESTDIR)$(INCLUDEDIR)/kactor
	install -m644 $(wildcard include/kactor/*.h) $(DESTDIR)$(INCLUDEDIR)/kactor/
	install -Dm644 $(BUILD)/kactor.pc $(DESTDIR)$(LIBDIR)/pkgconfig/kactor.pc
	install -d $(DESTDIR)$(MODULEDIR)
	install -m755 $(EXAMPLE_MODULES) $(DESTDIR)$(MODULEDIR)/
	install -Dm644 $(BUILD)/units/kactor-nodemgr.service $(DESTDIR)$(SYSTEMDUNITDIR)/kactor-nodemgr.service
	install -Dm644 $(BUILD)/units/kactor.slice $(DESTDIR)$(SYSTEMDUNITDIR)/kactor.slice
	install -Dm644 units/io.kactor.NodeManager1.conf $(DESTDIR)$(DBUSSYSTEMDIR)/io.kactor.NodeManager1.conf
	install -Dm644 $(BUILD)/units/dbus-io.kactor.NodeManager1.service \
	        $(DESTDIR)$(DBUSSERVICEDIR)/io.kactor.NodeManager1.service
	install -Dm644 units/io.kactor.policy $(DESTDIR)$(POLKITACTIONDIR)/io.kactor.policy
	install -Dm644 units/kactor.sysusers $(DESTDIR)$(SYSUSERSDIR)/kactor.conf
	install -Dm644 units/kactor.tmpfiles $(DESTDIR)$(TMPFILESDIR)/kactor.conf
	install -d $(DESTDIR)$(DOCDIR)
	install -m644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	$(MAKE) install-extras DESTDIR='$(DESTDIR)' $(foreach v,$(DIR_VARS),$(v)='$($(v))')
	[ -n "$(DESTDIR)" ] || ldconfig

# --- Debian package --------------------------------------------------------------------------------
# `make deb`: dpkg-buildpackage -b (debian/, PREFIX=/usr) on a copy of the tree's files (tracked, and
# untracked ones git does not ignore), so nothing is written into the tree or beside it, and without
# this make's variables (SANITIZE=1, a PREFIX); the package lands in $(DEB_DIR), and is built again
# only when one of those files changed.
DEB_DIR := $(BUILD)/deb
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_FILE := $(DEB_DIR)/kactor_$(VERSION)_$(DEB_ARCH).deb
# Only when asked: listing the tree costs a git call.
ifneq ($(filter deb $(DEB_FILE),$(MAKECMDGOALS)),)
DEB_SOURCES := $(wildcard $(shell git ls-files --cached --others --exclude-standard 2>/dev/null))
endif
.PHONY: deb
deb: $(DEB_FILE)
$(DEB_FILE): $(DEB_SOURCES)
	@[ -n "$(DEB_SOURCES)" ] || { echo "make deb: needs the git checkout (git ls-files)" >&2; exit 1; }
	@v=$$(dpkg-parsechangelog -S Version) && [ "$$v" = "$(VERSION)" ] || \
	        { echo "make deb: debian/changelog is at $$v, the Makefile at $(VERSION)" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src/kactor-$(VERSION)
	@echo "copying $(words $(DEB_SOURCES)) files to $(DEB_DIR)/src/kactor-$(VERSION)"
	@printf '%s\0' $(DEB_SOURCES) | tar --null -T - -cf - | tar -C $(DEB_DIR)/src/kactor-$(VERSION) -xf -
	cd $(DEB_DIR)/src/kactor-$(VERSION) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	        $(foreach v,BUILD SANITIZE DESTDIR CFLAGS LDFLAGS $(DIR_VARS),-u $(v)) dpkg-buildpackage -us -uc -b -Jauto
	mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/src/*.buildinfo $(DEB_DIR)/src/*.changes $(DEB_DIR)/
	rm -rf $(DEB_DIR)/src
	@ls $(DEB_DIR)/*.deb

# Parts with make rules of their own (mk/*.mk) add to these double-colon rules: what they build for
# `all`, and what they install.
.PHONY: all-extras install-extras
all-extras::
install-extras::
-include $(wildcard mk/*.mk)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
