#!/bin/bash
# The systemd backend in a real systemd node (TESTING.md): boots systemd-nspawn over the host's /usr
# (tmpfs root), starts kactor-nodemgr from the unit files with systemctl, creates actors with busctl
# and checks: the scope exists (systemctl list-units), the worker sits in the leaf inside it with its
# device program, daemon-reload leaves the program in place, Kill removes a scope; then that the actors
# outlive the node manager: `systemctl restart kactor-nodemgr`, `systemctl restart dbus`, kill -9 of the
# manager (Restart=on-failure) and `systemctl stop` + `start` each leave the same worker with its
# state; Shutdown stops everything.
# Usage: systemd-node.sh CHECKOUT BUILD. Exit 0 = pass, 77 = cannot run here.
set -u
checkout=$1 build=$2
command -v systemd-nspawn >/dev/null || { echo "no systemd-nspawn"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }

name=kt$$
log=$(mktemp /tmp/kactor-nspawn.XXXXXX)
# A real host gives PID 1 every capability and bpf(); nspawn withholds them by default.
# It goes down with this script even if the script is killed outright (--pdeathsig).
setpriv --pdeathsig TERM systemd-nspawn -D / --volatile=yes -b --register=no --keep-unit -M "$name" --bind-ro="$checkout":/opt/kactor \
        --capability=CAP_BPF,CAP_NET_ADMIN,CAP_PERFMON --system-call-filter=bpf \
        -- systemd.firstboot=off > "$log" 2>&1 &
nspawn=$!
cleanup() {
        kill -TERM "$nspawn" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$nspawn" 2>/dev/null
        wait "$nspawn" 2>/dev/null
        rm -f "$log"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- nspawn:"; tail -20 "$log"; echo "--- nodemgr:"; run journalctl -u kactor-nodemgr --no-pager | tail -20; exit 1; }

# The container's PID 1: nspawn's child in a PID namespace of its own.
leader=
ourns=$(readlink /proc/self/ns/pid)
for _ in $(seq 100); do
        for c in $(cat /proc/$nspawn/task/*/children 2>/dev/null); do
                ns=$(readlink /proc/$c/ns/pid 2>/dev/null)
                if [ -n "$ns" ] && [ "$ns" != "$ourns" ]; then leader=$c; break; fi
        done
        [ -n "$leader" ] && break
        sleep 0.1
done
[ -n "$leader" ] || fail "nspawn started no container"
run() { timeout 30 nsenter -t "$leader" -a "$@"; }
state=
for _ in $(seq 200); do
        state=$(run systemctl is-system-running 2>/dev/null)
        [ "$state" = running ] || [ "$state" = degraded ] && break
        sleep 0.1
done
[ "$state" = running ] || [ "$state" = degraded ] || fail "the node did not boot: $state"

rel=${build#"$checkout"/}
run sh -c "mkdir -p /etc/dbus-1/system.d /run/systemd/system/kactor-nodemgr.service.d &&
        cp /opt/kactor/units/io.kactor.NodeManager1.conf /etc/dbus-1/system.d/ &&
        cp /opt/kactor/units/kactor-nodemgr.service /opt/kactor/units/kactor.slice /run/systemd/system/ &&
        printf '[Service]\nExecStart=\nExecStart=/opt/kactor/$rel/kactor-nodemgr --module-path /opt/kactor/$rel/tests/modules:/opt/kactor/$rel/examples\nEnvironment=KACTOR_WORKER_REATTACH_SEC=60\n' \
                > /run/systemd/system/kactor-nodemgr.service.d/test.conf" || fail "cannot install the units"
run busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null || fail "dbus reload"
run systemctl daemon-reload || fail "daemon-reload"
run systemctl start kactor-nodemgr || fail "systemctl start kactor-nodemgr"

bus() { run busctl "$@"; }
mgr=(io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1)
[ "$(bus get-property "${mgr[@]}" CgroupManager)" = 's "systemd"' ] || fail "CgroupManager is not systemd"
# A limit is enforced, or refused: never shown and ignored. This node (nspawn on a hybrid host) has
# its v1 memory controller read-only and none on v2: MemoryMax must be refused, naming it. On a node
# with a memory controller systemd can use, the limit file of that hierarchy must hold it.
lim_out=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' isomod Probe 0 1 MemoryMax t 100000000 2>&1)
if run test -w /sys/fs/cgroup/memory || run grep -qw memory /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null ||
        run grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        l=$(echo "$lim_out" | cut -d'"' -f2)
        lunit=kactor-actor-${l##*/}.scope
        if run test -e /sys/fs/cgroup/memory/cgroup.procs; then
                lim=$(run cat "/sys/fs/cgroup/memory/kactor.slice/$lunit/memory.limit_in_bytes")
        else
                lim=$(run cat "/sys/fs/cgroup/kactor.slice/$lunit/memory.max")
        fi
        [ "$lim" = 100000000 ] || [ "$lim" = 99999744 ] || fail "MemoryMax is not enforced: the limit file says '$lim'"
else
        echo "$lim_out" | grep -q "cannot apply MemoryMax" || fail "MemoryMax was not refused without a usable memory controller: $lim_out"
fi
a=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' isomod Probe 0 0 | cut -d'"' -f2)
b=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' isomod Probe 0 0 | cut -d'"' -f2)
[ -n "$a" ] && [ -n "$b" ] || fail "CreateActor"
o=$(bus call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Call sav identity 0 | cut -d'"' -f2)
bus call "${mgr[@]}" Get aot 1 "$o" 10000000 >/dev/null || fail "the actor does not answer"
unit=$(bus get-property io.kactor.NodeManager1 "$a" io.kactor.Actor1 Unit | cut -d'"' -f2)
cg=$(bus get-property io.kactor.NodeManager1 "$a" io.kactor.Actor1 ControlGroup | cut -d'"' -f2)
[ "$unit" = "kactor-actor-${a##*/}.scope" ] || fail "Unit is '$unit'"
run systemctl list-units --no-pager --no-legend "$unit" | grep -q "active running" || fail "$unit is not running"
[ "$(run systemctl show -P Slice "$unit")" = kactor.slice ] || fail "$unit is not in kactor.slice"
v2=/sys/fs/cgroup; [ -e /sys/fs/cgroup/unified/cgroup.procs ] && v2=/sys/fs/cgroup/unified
run sh -c "test -e $v2$cg/cgroup.procs" || fail "no leaf $cg"
run bpftool cgroup show "$v2$cg" | grep -q kactor_devices || fail "no device program on $cg"
run systemctl daemon-reload
run bpftool cgroup show "$v2$cg" | grep -q kactor_devices || fail "daemon-reload removed the device program"
o=$(bus call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Call sav open_errno 1 s /dev/null | cut -d'"' -f2)
[ "$(bus call "${mgr[@]}" Get aot 1 "$o" 10000000)" = "av 1 x 0" ] || fail "/dev/null denied after daemon-reload"

bus call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Kill b true >/dev/null || fail "Kill"
for _ in $(seq 100); do run systemctl is-active -q "$unit" || break; sleep 0.05; done
run systemctl is-active -q "$unit" && fail "$unit still active after Kill"
# --- restarts: the actors outlive the node manager --------------------------------------------------
c=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' counter Counter 0 0 | cut -d'"' -f2)
[ -n "$c" ] || fail "CreateActor counter"
cunit=kactor-actor-${c##*/}.scope
node=$(bus get-property "${mgr[@]}" NodeId)
pid=$(bus get-property io.kactor.NodeManager1 "$c" io.kactor.Actor1 Pid)
expect=0
# Calls increment on the counter (retrying while the node manager comes back, bounded) and checks the
# count went on from where it was, in the same worker.
increment() {
        local what=$1 out= o
        expect=$((expect + 1))
        for _ in $(seq 100); do
                o=$(bus call io.kactor.NodeManager1 "$c" io.kactor.Actor1 Call sav increment 0 2>/dev/null | cut -d'"' -f2)
                [ -n "$o" ] && out=$(bus call "${mgr[@]}" Get aot 1 "$o" 10000000 2>/dev/null) && break
                sleep 0.1
        done
        [ "$out" = "av 1 x $expect" ] || fail "after $what: increment gave '$out', expected $expect"
        [ "$(bus get-property io.kactor.NodeManager1 "$c" io.kactor.Actor1 Pid)" = "$pid" ] ||
                fail "after $what: the actor has another worker"
        [ "$(bus get-property "${mgr[@]}" NodeId)" = "$node" ] || fail "after $what: the node id changed"
}
active() {
        for _ in $(seq 100); do run systemctl is-active -q kactor-nodemgr && return 0; sleep 0.1; done
        return 1
}
increment "the start"
increment "a second call"

run systemctl restart kactor-nodemgr || fail "systemctl restart kactor-nodemgr"
active || fail "not active after restart"
increment "systemctl restart kactor-nodemgr"

run systemctl restart dbus || fail "systemctl restart dbus"
increment "systemctl restart dbus"
run systemctl is-active -q kactor-nodemgr || fail "a D-Bus restart stopped the node manager"

main=$(run systemctl show -P MainPID kactor-nodemgr)
run kill -9 "$main" || fail "kill -9 $main"
for _ in $(seq 100); do
        now=$(run systemctl show -P MainPID kactor-nodemgr)
        [ -n "$now" ] && [ "$now" != 0 ] && [ "$now" != "$main" ] && break
        sleep 0.1
done
active || fail "Restart=on-failure did not bring it back after kill -9"
increment "kill -9 of the node manager"

run systemctl stop kactor-nodemgr || fail "systemctl stop"
run systemctl is-active -q "$cunit" || fail "systemctl stop stopped the actor's scope"
run systemctl start kactor-nodemgr || fail "systemctl start"
increment "systemctl stop and start"

# Shutdown: every actor, then the node manager.
bus call "${mgr[@]}" Shutdown >/dev/null || fail "Shutdown"
for _ in $(seq 100); do run systemctl is-active -q kactor-nodemgr || break; sleep 0.1; done
run systemctl is-active -q kactor-nodemgr && fail "the node manager is still active after Shutdown"
left=$(run systemctl list-units --no-pager --no-legend 'kactor-actor-*' | wc -l)
[ "$left" = 0 ] || fail "$left scopes left after Shutdown"
run test -e /run/kactor/state && fail "the state journal is left after Shutdown"
echo "PASS: systemd scopes and restarts in a real systemd node"
