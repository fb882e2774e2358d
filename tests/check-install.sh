#!/usr/bin/env bash
# A staged install, as a packager and a client author meet it (README.md, "Installing"):
#   - `make install PREFIX=/usr DESTDIR=STAGE` from a build configured for /usr/local rebuilds what
#     embeds paths: the manager's compiled-in worker and module paths are /usr's;
#   - everything lands under /usr (nothing in /etc or /usr/local), the unit's ExecStart= and
#     Documentation=, the D-Bus activation file's Exec= name the installed files;
#   - kactor.pc is relocatable: pkg-config --define-prefix and PKG_CONFIG_SYSROOT_DIR both give the
#     staged -I/-L, and the public headers compile warning-free as C11 and C++17 (-pedantic);
#   - an example client (C) and a C++ module (tests/modules/cxxmod.cpp) build out of tree with
#     `pkg-config --cflags --libs kactor` against the stage; a private node manager loads the C++
#     module, and busctl creates an actor of its class and calls it; the client runs against the
#     staged library and example module.
# Usage: check-install.sh BUILD (a build made by `make`; it is copied, not changed). Exit 0 = pass.
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
checkout=$PWD
. tests/private-node.sh

for t in pkg-config g++ busctl dbus-daemon strings; do
        command -v "$t" >/dev/null || { echo "FAIL: $t is missing (make deps)"; exit 1; }
done
[ -x "$build/kactor-nodemgr" ] || { echo "FAIL: no $build/kactor-nodemgr (make all)"; exit 1; }

tmp=$(mktemp -d /tmp/kactor-install-check.XXXXXX)
cleanup() {
        # SIGINT: the node manager stops its actors before it exits (SIGTERM would leave them).
        if [ -n "${NODEMGR_PID:-}" ] && kill -0 "$NODEMGR_PID" 2>/dev/null; then
                kill -INT "$NODEMGR_PID"
                wait "$NODEMGR_PID" 2>/dev/null || true
        fi
        private_node_stop
        rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
        echo "FAIL: $*"
        [ -n "${PRIVATE_NODE_DIR:-}" ] && [ -e "$PRIVATE_NODE_DIR/nodemgr.log" ] &&
                { echo "--- nodemgr:"; tail -20 "$PRIVATE_NODE_DIR/nodemgr.log"; }
        exit 1
}
stage=$tmp/stage

# A copy of the build (its objects, with their times) made for /usr/local: the install must rebuild
# what embeds the prefix. The tests' programs are not installed and stay behind.
mkdir "$tmp/build"
tar -C "$build" --exclude=./tests/unit --exclude=./tests/integration --exclude=./tests/bench --exclude=./fuzz \
        -cf - . | tar -C "$tmp/build" -xf -
# A make of its own: not the variables (BUILD=, PREFIX=) or the jobserver of a make that runs this.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -j2 BUILD="$tmp/build" PREFIX=/usr DESTDIR="$stage" \
                install > "$tmp/install.log" 2>&1; then
        cat "$tmp/install.log"
        fail "make install PREFIX=/usr DESTDIR=... failed"
fi

# Everything is under /usr.
outside=$(cd "$stage" && find . -mindepth 1 -maxdepth 1 ! -name usr)
[ -z "$outside" ] || fail "PREFIX=/usr installed outside /usr: $outside"
for f in sbin/kactor-nodemgr bin/kactorctl libexec/kactor/kactor-worker lib/libkactor.so.0 lib/libkactor.so \
        include/kactor/client.h include/kactor/module.h include/kactor/value.h lib/pkgconfig/kactor.pc \
        lib/kactor/modules/counter.so lib/systemd/system/kactor-nodemgr.service lib/systemd/system/kactor.slice \
        share/dbus-1/system.d/io.kactor.NodeManager1.conf share/dbus-1/system-services/io.kactor.NodeManager1.service \
        share/polkit-1/actions/io.kactor.policy lib/sysusers.d/kactor.conf lib/tmpfiles.d/kactor.conf \
        share/doc/kactor/README.md share/doc/kactor/isolation.md; do
        [ -e "$stage/usr/$f" ] || fail "not installed: /usr/$f"
done

# The unit and the activation file name what was installed.
unit=$stage/usr/lib/systemd/system/kactor-nodemgr.service
grep -qx 'ExecStart=/usr/sbin/kactor-nodemgr' "$unit" || fail "unit: $(grep ExecStart= "$unit")"
for doc in $(sed -n 's/^Documentation=//p' "$unit" "$stage/usr/lib/systemd/system/kactor.slice"); do
        [ -e "$stage${doc#file://}" ] || fail "a Documentation= link goes nowhere: $doc"
done
activation=$stage/usr/share/dbus-1/system-services/io.kactor.NodeManager1.service
grep -qx 'Exec=/usr/sbin/kactor-nodemgr' "$activation" || fail "activation file: $(grep Exec= "$activation")"
grep -qx 'SystemdService=kactor-nodemgr.service' "$activation" || fail "activation file names no unit"
left=$(grep -l '/usr/local\|@[A-Z_]*@' "$unit" "$activation" "$stage/usr/lib/systemd/system/kactor.slice" \
        "$stage/usr/lib/pkgconfig/kactor.pc" || true)
[ -z "$left" ] || fail "/usr/local or a template's @NAME@ left in: $left"

# The manager's compiled-in paths followed PREFIX.
mgr_strings=$(strings "$stage/usr/sbin/kactor-nodemgr")
grep -qx '/usr/libexec/kactor/kactor-worker' <<<"$mgr_strings" || fail "the manager's worker path is not /usr's"
grep -qx '/usr/lib/kactor/modules' <<<"$mgr_strings" || fail "the manager's module dir is not /usr's"
grep -q '/usr/local' <<<"$mgr_strings" && fail "the manager still names /usr/local: $(grep /usr/local <<<"$mgr_strings")"

# kactor.pc, moved to the stage two ways.
pc=$stage/usr/lib/pkgconfig/kactor.pc
grep -qx 'prefix=/usr' "$pc" && grep -qx 'exec_prefix=${prefix}' "$pc" && grep -qx 'libdir=${exec_prefix}/lib' "$pc" &&
        grep -qx 'includedir=${prefix}/include' "$pc" || fail "kactor.pc is not relocatable: $(cat "$pc")"
want="-I$stage/usr/include -L$stage/usr/lib -lkactor"
got=$(PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR="$stage/usr/lib/pkgconfig" pkg-config --define-prefix --cflags --libs kactor)
[ "$(echo $got)" = "$want" ] || fail "pkg-config --define-prefix: '$got', wanted '$want'"
got=$(PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR="$stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage" \
        pkg-config --cflags --libs kactor)
[ "$(echo $got)" = "$want" ] || fail "pkg-config with PKG_CONFIG_SYSROOT_DIR: '$got', wanted '$want'"
export PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR="$stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
read -ra kactor_flags <<<"$(pkg-config --cflags --libs kactor)"

# Out of tree, from copies of the sources: the headers as C11 and C++17, pedantic; the C++ module; a client.
mkdir "$tmp/src" "$tmp/modules"
printf '#include <kactor/module.h>\n#include <kactor/client.h>\n#include <kactor/value.h>\nint main(void) { return 0; }\n' \
        > "$tmp/src/headers.c"
cp "$tmp/src/headers.c" "$tmp/src/headers.cpp"
cp tests/modules/cxxmod.cpp examples/demo-counter.c "$tmp/src/"
cd "$tmp/src"
gcc -std=c11 -Wall -Wextra -pedantic -Werror -o headers-c headers.c "${kactor_flags[@]}" ||
        fail "the headers do not compile warning-free as C11"
g++ -std=c++17 -Wall -Wextra -pedantic -Werror -o headers-cxx headers.cpp "${kactor_flags[@]}" ||
        fail "the headers do not compile warning-free as C++17"
g++ -std=c++20 -Wall -Wextra -pedantic -Werror -fPIC -shared -o "$tmp/modules/cxxmod.so" cxxmod.cpp "${kactor_flags[@]}" ||
        fail "the C++ module does not build"
gcc -O2 -Wall -o demo-counter demo-counter.c "${kactor_flags[@]}" || fail "the example client does not build"
# ... from the staged headers, not from any installed elsewhere.
grep -q "$stage/usr/include/kactor/client.h" <<<"$(gcc -MM demo-counter.c "${kactor_flags[@]}")" ||
        fail "the client was not built with the staged headers"
grep -q ' D kactor_module_info$' <<<"$(nm -D "$tmp/modules/cxxmod.so")" || fail "cxxmod.so exports no C kactor_module_info"
cd "$checkout"

# A node manager loads the C++ module; its actor keeps C++ state across calls.
private_node_start "$build" --module-path "$tmp/modules" --cgroup-manager=none || fail "no private node manager"
bc() { busctl --address="$PRIVATE_BUS" --timeout=20 "$@"; }
mgr=(io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1)
path_of() { cut -d'"' -f2 <<<"$1"; }
out=$(bc call "${mgr[@]}" CreateActor 'ssava{sv}' cxxmod Accumulator 1 s staged 0 2>&1) || fail "CreateActor: $out"
actor=$(path_of "$out")
call() { # METHOD [TYPE VALUE]: the result as busctl prints it
        local o
        if [ $# -gt 1 ]; then o=$(bc call io.kactor.NodeManager1 "$actor" io.kactor.Actor1 Call sav "$1" 1 "$2" "$3") ||
                return 1
        else o=$(bc call io.kactor.NodeManager1 "$actor" io.kactor.Actor1 Call sav "$1" 0) || return 1; fi
        bc call "${mgr[@]}" Get aot 1 "$(path_of "$o")" 10000000
}
got=$(call add x 5 2>&1) && [ "$got" = "av 1 x 5" ] || fail "Accumulator.add(5): $got"
got=$(call add x 37 2>&1) && [ "$got" = "av 1 x 42" ] || fail "Accumulator.add(37): $got"
got=$(call describe 2>&1) && [ "$got" = 'av 1 s "staged: 2 values"' ] || fail "Accumulator.describe(): $got"

# The client, linked against the staged libkactor, with the staged example module.
LD_LIBRARY_PATH="$stage/usr/lib" "$tmp/src/demo-counter" "$stage/usr/lib/kactor/modules" > "$tmp/client.log" 2>&1 ||
        { cat "$tmp/client.log"; fail "the example client failed against the staged library"; }
# (grep -q reads the output whole: under pipefail an early exit of grep would fail the pipe.)
grep -q "$stage/usr/lib/libkactor.so.0" <<<"$(LD_LIBRARY_PATH="$stage/usr/lib" ldd "$tmp/src/demo-counter")" ||
        fail "the client did not run with the staged libkactor"

echo "staged install (PREFIX=/usr): paths, kactor.pc, out-of-tree C client and C++ module loaded: OK"
