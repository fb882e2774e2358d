#!/bin/bash
# The systemd backend in a real systemd node (TESTING.md): boots systemd-nspawn over the host's /usr
# (tmpfs root), starts kactor-nodemgr from the unit files with systemctl, creates actors with busctl
# and checks: the scope exists (systemctl list-units), the worker sits in the leaf inside it with its
# device program, daemon-reload leaves the program in place, Kill removes a scope; then that the actors
# outlive the node manager: `systemctl restart kactor-nodemgr`, `systemctl restart dbus`, kill -9 of the
# manager (Restart=on-failure) and `systemctl stop` + `start` each leave the same worker with its
# state; Shutdown stops everything. And the service's sandbox (docs/isolation.md, "The service's
# sandbox"), which the actors run inside: fake GPU nodes reachable (ENXIO) only for the actor given
# them (others EPERM), /etc and /root read-only to actors, other users' processes hidden from them,
# the system call filter in actors, no CAP_SYS_ADMIN in the manager, the host's /tmp still
# writable after a restart, and tracing (BPF, pins in bpffs) working under it.
# Usage: systemd-node.sh CHECKOUT BUILD. Exit 0 = pass, 77 = cannot run here.
set -u
. "$(dirname "$0")/nspawn-node.sh"
nspawn_boot "$1" "$2"

# Fake GPUs (TESTING.md): device nodes with no driver behind them, where the manager's device program
# decides between ENXIO and EPERM.
gpus=/dev/kactor-gpu/nvidia0,/dev/kactor-gpu/nvidia1,/dev/kactor-gpu/nvidiactl
run sh -c "mkdir -p /dev/kactor-gpu && mknod /dev/kactor-gpu/nvidia0 c 195 0 && mknod /dev/kactor-gpu/nvidia1 c 195 1 &&
        mknod /dev/kactor-gpu/nvidiactl c 195 255" || fail "cannot make the fake GPUs"
nspawn_install_units --gpu-devices "$gpus"
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

# --- the service's sandbox, as the actors meet it (docs/isolation.md, "The service's sandbox") -------
# Calls METHOD(ARGS...) on ACTOR and prints what Get says of the result.
call_get() {
        local actor=$1 o; shift
        o=$(bus call io.kactor.NodeManager1 "$actor" io.kactor.Actor1 Call sav "$@" | cut -d'"' -f2)
        [ -n "$o" ] && bus call "${mgr[@]}" Get aot 1 "$o" 10000000
}
open_errno() { call_get "$1" open_errno 1 s "$2"; }
# GPUs: the nodes are there for actors (no PrivateDevices=), and the actor's device program decides.
g=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' isomod Probe 0 1 NumGpus u 1 | cut -d'"' -f2)
[ -n "$g" ] || fail "CreateActor with a GPU"
[ "$(bus get-property io.kactor.NodeManager1 "$g" io.kactor.Actor1 GpuIds)" = "au 1 0" ] || fail "the GPU actor has no GPU 0"
for dev in nvidia0:6 nvidiactl:6 nvidia1:1; do
        e=$(open_errno "$g" "/dev/kactor-gpu/${dev%:*}")
        [ "$e" = "av 1 x ${dev#*:}" ] || fail "the GPU actor opening ${dev%:*}: '$e', expected errno ${dev#*:}"
        e=$(open_errno "$a" "/dev/kactor-gpu/${dev%:*}")
        [ "$e" = "av 1 x 1" ] || fail "an actor without GPUs opening ${dev%:*}: '$e', expected EPERM"
done
bus call io.kactor.NodeManager1 "$g" io.kactor.Actor1 Kill b true >/dev/null || fail "Kill of the GPU actor"
# The file system: actors (here root's, without capabilities, so only the mounts stop them) cannot
# write to /etc (ProtectSystem=strict) or /root (ProtectHome=read-only): EROFS.
run sh -c 'echo probe > /etc/kactor-probe && echo probe > /root/kactor-probe' || fail "cannot write the probe files"
for f in /etc/kactor-probe /root/kactor-probe; do
        e=$(open_errno "$a" "$f")
        [ "$e" = "av 1 x 30" ] || fail "an actor opened $f for writing: '$e', expected EROFS"
done
main=$(run systemctl show -P MainPID kactor-nodemgr)
# ProtectProc=invisible: an actor of another user does not see the node manager; root's does.
u=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' isomod Probe 0 1 User v s nobody | cut -d'"' -f2)
[ -n "$u" ] || fail "CreateActor as nobody"
[ "$(open_errno "$u" "/proc/$main/status")" = "av 1 x 2" ] || fail "nobody's actor sees the node manager in /proc"
[ "$(open_errno "$a" "/proc/$main/comm")" = "av 1 x 0" ] || fail "root's actor does not see the node manager in /proc"
bus call io.kactor.NodeManager1 "$u" io.kactor.Actor1 Kill b true >/dev/null || fail "Kill of nobody's actor"
# The system call filter is the actors' too: ptrace (@debug) and setns (RestrictNamespaces=) fail
# with EPERM (ESRCH and EBADF without it); seccomp(), which only takes rights away, is allowed.
p=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' sandboxmod Probe 0 0 | cut -d'"' -f2)
[ -n "$p" ] || fail "CreateActor sandboxmod"
for sc in ptrace:1 setns:1 seccomp:0; do
        e=$(call_get "$p" syscall_errno 1 s "${sc%:*}")
        [ "$e" = "av 1 x ${sc#*:}" ] || fail "an actor's ${sc%:*}(): '$e', expected errno ${sc#*:}"
done
bus call io.kactor.NodeManager1 "$p" io.kactor.Actor1 Kill b true >/dev/null || fail "Kill of the sandboxmod actor"
# The node manager has no CAP_SYS_ADMIN (bit 21) in its bounding set.
bnd=$(run sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$main/status")
[ -n "$bnd" ] && [ $((0x$bnd >> 21 & 1)) = 0 ] || fail "the node manager's bounding set $bnd has CAP_SYS_ADMIN"
# Tracing under the sandbox: the programs load (CAP_BPF, CAP_PERFMON, bpf() allowed), the maps are
# pinned in bpffs, SetEnabled detaches and attaches, and a call made after it is counted.
t=(io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.Trace1)
[ "$(bus get-property "${t[@]}" Enabled)" = "b true" ] || fail "tracing is off: $(bus get-property "${t[@]}" Reason)"
pin=$(bus get-property "${t[@]}" PinPath | cut -d'"' -f2)
run test -e "$pin/hists" || fail "no pinned maps in '$pin'"
bus call "${t[@]}" SetEnabled b false >/dev/null && [ "$(bus get-property "${t[@]}" Enabled)" = "b false" ] ||
        fail "SetEnabled false"
bus call "${t[@]}" SetEnabled b true >/dev/null && [ "$(bus get-property "${t[@]}" Enabled)" = "b true" ] ||
        fail "SetEnabled true"
call_get "$a" identity 0 >/dev/null || fail "identity after SetEnabled"
n=$(bus call "${t[@]}" GetCallStats ss "${a##*/}" identity | grep -o '"identity" "total" [0-9]*' | cut -d' ' -f3)
[ -n "$n" ] && [ "$n" -ge 1 ] || fail "GetCallStats does not count the call: '$n'"

bus call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Kill b true >/dev/null || fail "Kill"
for _ in $(seq 100); do run systemctl is-active -q "$unit" || break; sleep 0.05; done
run systemctl is-active -q "$unit" && fail "$unit still active after Kill"
# --- restarts: the actors outlive the node manager --------------------------------------------------
c=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' counter Counter 0 0 | cut -d'"' -f2)
[ -n "$c" ] || fail "CreateActor counter"
# An actor that writes in the host's /tmp, which must stay usable across restarts (a PrivateTmp=
# /tmp would be deleted by systemd under it when the service stops).
sl=$(bus call "${mgr[@]}" CreateActor 'ssava{sv}' testmod Sleeper 0 0 | cut -d'"' -f2)
[ -n "$sl" ] || fail "CreateActor Sleeper"
in_tmp() {
        local out
        out=$(call_get "$sl" rendezvous 4 s /tmp s "$1" s "$1" x 100 2>&1)
        [ "$out" = "av 1 b true" ] || fail "$2: the actor cannot make a file in /tmp: $out"
        run test -e "/tmp/$1" || fail "$2: the actor's /tmp is not the node's"
}
in_tmp kactor-tmp-start "at the start"
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
in_tmp kactor-tmp-restart "after systemctl restart kactor-nodemgr"

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
# Stopped, and cleanly: a node manager that failed on its way out is restarted (Restart=on-failure).
for _ in $(seq 100); do
        state=$(run systemctl show -P ActiveState kactor-nodemgr)
        [ "$state" = inactive ] || [ "$state" = failed ] && break
        sleep 0.1
done
[ "$state" = inactive ] || fail "the node manager is $state after Shutdown ($(run systemctl show -P Result kactor-nodemgr))"
left=$(run systemctl list-units --no-pager --no-legend 'kactor-actor-*' | wc -l)
[ "$left" = 0 ] || fail "$left scopes left after Shutdown"
run test -e /run/kactor/state && fail "the state journal is left after Shutdown"
run sh -c 'ls /run/kactor/lineage.* 2>/dev/null' | grep -q . && fail "a lineage file is left after Shutdown"
echo "PASS: systemd scopes and restarts in a real systemd node"
