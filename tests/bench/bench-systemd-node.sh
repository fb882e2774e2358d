#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# actor_creation_systemd: actor creation with the systemd backend (a transient scope per actor), in
# a real systemd node: boots systemd-nspawn over the host's /usr (tmpfs root), as
# tests/integration/systemd-node.sh does, starts kactor-nodemgr there from the unit files with
# systemctl, and runs `bench-isolation --creation-only systemd` inside the node (nsenter) against
# it. Stops the node (by PID) whatever happens.
#
#   tests/bench/bench-systemd-node.sh BUILD
#
# Prints one figure line; "skipped" (info) where no node can be booted here (no systemd-nspawn, not
# root). Exit 0 unless the benchmark could not run (2).
set -u
build=$(cd "${1:-build}" && pwd) || exit 2
checkout=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
name=actor_creation_systemd
skip() { printf '%-30s %15s  (%s)%*s info\n' "$name" skipped "$1" 1 ""; exit 0; }
command -v systemd-nspawn >/dev/null || skip "no systemd-nspawn"
command -v nsenter >/dev/null || skip "no nsenter"
[ "$(id -u)" = 0 ] || skip "booting a systemd-nspawn node needs root"

machine=kb$$
log=$(mktemp /tmp/kactor-bench-nspawn.XXXXXX)
nspawn=
cleanup() {
        if [ -n "$nspawn" ]; then
                kill -TERM "$nspawn" 2>/dev/null
                for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$nspawn" 2>/dev/null
                wait "$nspawn" 2>/dev/null
        fi
        rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
        echo "$name  ERROR: $*"
        echo "--- nspawn:" >&2; tail -n 15 "$log" >&2
        [ -n "${leader:-}" ] && run journalctl -u kactor-nodemgr -u kactor-bench-cgfs --no-pager 2>/dev/null | tail -n 15 >&2
        exit 2
}

# A real host gives PID 1 every capability and bpf(); nspawn withholds them by default.
setpriv --pdeathsig TERM systemd-nspawn -D / --volatile=yes -b --register=no --keep-unit -M "$machine" \
        --bind-ro="$checkout":/opt/kactor --bind-ro="$build":/opt/kactor-build \
        --capability=CAP_BPF,CAP_NET_ADMIN,CAP_PERFMON --system-call-filter=bpf \
        -- systemd.firstboot=off >"$log" 2>&1 &
nspawn=$!
t_boot=$(date +%s%N)

# The node's PID 1: nspawn's child in a PID namespace of its own.
leader=
ourns=$(readlink /proc/self/ns/pid)
for _ in $(seq 100); do
        for c in $(cat /proc/$nspawn/task/*/children 2>/dev/null); do
                ns=$(readlink /proc/$c/ns/pid 2>/dev/null)
                if [ -n "$ns" ] && [ "$ns" != "$ourns" ]; then leader=$c; break; fi
        done
        [ -n "$leader" ] && break
        kill -0 "$nspawn" 2>/dev/null || break
        sleep 0.1
done
[ -n "$leader" ] || fail "systemd-nspawn started no node"
run() { timeout 60 nsenter -t "$leader" -a "$@"; }
state=
for _ in $(seq 300); do
        state=$(run systemctl is-system-running 2>/dev/null)
        [ "$state" = running ] || [ "$state" = degraded ] && break
        sleep 0.1
done
[ "$state" = running ] || [ "$state" = degraded ] || fail "the node did not boot: $state"
t_booted=$(date +%s%N)

run sh -c "mkdir -p /etc/dbus-1/system.d /run/systemd/system/kactor-nodemgr.service.d &&
        cp /opt/kactor/units/io.kactor.NodeManager1.conf /etc/dbus-1/system.d/ &&
        cp /opt/kactor-build/units/kactor-nodemgr.service /opt/kactor-build/units/kactor.slice /run/systemd/system/ &&
        printf '[Service]\nExecStart=\nExecStart=/opt/kactor-build/kactor-nodemgr --module-path /opt/kactor-build/examples:/opt/kactor-build/tests/modules --num-cpus $(nproc)\nLimitNOFILE=65536\n' \
                > /run/systemd/system/kactor-nodemgr.service.d/bench.conf" || fail "cannot install the units"
run busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null || fail "dbus reload"
run systemctl daemon-reload || fail "daemon-reload"
run systemctl start kactor-nodemgr || fail "systemctl start kactor-nodemgr"
manager=$(run busctl get-property io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1 CgroupManager)
[ "$manager" = 's "systemd"' ] || fail "CgroupManager is $manager, not systemd"
printf '%-30s %15s  (systemd-nspawn node booted in %d ms; kactor-nodemgr started by systemctl)\n' "  systemd node" "" \
        $(((t_booted - t_boot) / 1000000))

# Beside it, for reference in the same node and the same rounds, a second node manager with
# --cgroup-manager=cgroupfs on a private dbus-daemon (the name is taken on the system bus).
run sh -c "mkdir -p /run/kactor-cgfs/run && cat > /run/kactor-cgfs/bus.conf" <<CONF || fail "cannot write bus.conf"
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=/run/kactor-cgfs/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
run systemd-run -q --unit=kactor-bench-bus dbus-daemon --config-file=/run/kactor-cgfs/bus.conf --nofork --nopidfile ||
        fail "cannot start the private dbus-daemon"
for _ in $(seq 100); do run test -S /run/kactor-cgfs/bus && break; sleep 0.1; done
run systemd-run -q --unit=kactor-bench-cgfs -p Delegate=yes -p LimitNOFILE=65536 \
        /opt/kactor-build/kactor-nodemgr --bus=unix:path=/run/kactor-cgfs/bus --runtime-dir /run/kactor-cgfs/run \
        --module-path /opt/kactor-build/examples:/opt/kactor-build/tests/modules --num-cpus "$(nproc)" \
        --cgroup-manager=cgroupfs || fail "cannot start the cgroupfs node manager"
for _ in $(seq 100); do
        manager=$(run busctl --address=unix:path=/run/kactor-cgfs/bus get-property io.kactor.NodeManager1 \
                /io/kactor/NodeManager1 io.kactor.NodeManager1 CgroupManager 2>/dev/null)
        [ -n "$manager" ] && run test -S /run/kactor-cgfs/run/nodemgr.sock && break
        sleep 0.1
done
[ "$manager" = 's "cgroupfs"' ] || fail "the second node manager's CgroupManager is $manager, not cgroupfs"

# run.sh's environment (the posix_spawn baseline, KACTOR_BENCH_*) goes along.
timeout 120 nsenter -t "$leader" -a /opt/kactor-build/tests/bench/bench-isolation --creation \
        cgroupfs_nspawn /run/kactor-cgfs/run/nodemgr.sock unix:path=/run/kactor-cgfs/bus \
        systemd /run/kactor/nodemgr.sock unix:path=/run/dbus/system_bus_socket
rc=$?
[ "$rc" = 0 ] || fail "bench-isolation --creation exited with $rc"
run systemctl stop kactor-nodemgr kactor-bench-cgfs kactor-bench-bus
left=$(run systemctl list-units --no-pager --no-legend 'kactor-actor-*' | wc -l)
[ "$left" = 0 ] || echo "$name: note: $left actor scopes were still listed after the node manager stopped" >&2
exit 0
