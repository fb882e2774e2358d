#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make bench: runs the kactor benchmarks against a private dbus-daemon and kactor-nodemgr that this
# script starts, and stops exactly those processes (by PID) when it ends.
#
#   tests/bench/run.sh BUILD [NAME...]
#
# NAME selects benchmarks (as printed, or tracing_overhead for bench-tracing, direct for the direct vs
# relayed call comparisons; "baseline" is always run). It reports, it does not judge: a missed target
# is a MISS line, and the exit status is 0 unless a benchmark could not run or something crashed. The
# output is also kept in BUILD/bench-results.txt. Knobs (environment):
# KACTOR_BENCH_DURATION (s, 1.5), KACTOR_BENCH_WARMUP (s, 0.3), KACTOR_BENCH_BATCH (1000),
# KACTOR_BENCH_ACTORS (1000), KACTOR_BENCH_ACTORS_1N (4), KACTOR_BENCH_CLIENTS (nproc, >= 2),
# KACTOR_BENCH_KEEP=1 keeps the temporary directory (logs) for inspection; KACTOR_TRACE=off is
# passed on to the node manager (its always-on tracing is otherwise part of every figure), and
# KACTOR_DIRECT_CALLS=0 to the clients (the default path then relays every call through the node
# manager; the _relayed figures are relayed whatever it says).
# The cluster benchmarks (bench-cluster, on clusters of node managers this script starts on loopback
# addresses): KACTOR_BENCH_SOAK (s, 60: the idle cluster watched for false deaths),
# KACTOR_BENCH_DETECT_ROUNDS (5 SIGSTOPs timed to dead), KACTOR_BENCH_CLUSTER_PORT (7947).

set -u

BUILD=$(cd "${1:-build}" && pwd) || exit 1
shift
SELECTED=("$@")
BENCH=$BUILD/tests/bench
MODULE_PATH=$BUILD/examples:$BUILD/tests/modules
RESULTS=$BUILD/bench-results.txt

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kactor-bench.XXXXXX") || exit 1
DBUS_PID=
NODEMGR_PID=
FAILED=0
CLUSTER_PIDS=()     # the running cluster's node managers
CLUSTER_BUS_PIDS=() # and their dbus-daemons
CLUSTER_NODES=()    # its node managers as LABEL:PID:DIR, for bench-cluster
CLUSTER_CGROUPS=()  # their --cgroup-name
CLUSTER_SEED=
CLUSTER_N=0

# Whether a child of ours still runs (kill -0 also succeeds on a zombie).
alive() {
        local state
        state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
        [[ $state != Z* ]]
}

# Stops what we started, by PID, politely first (with $2, TERM by default; a node manager gets INT,
# which stops its actors too, where TERM would leave them running); bounded.
stop_pid() {
        local pid=$1 i
        [ -n "$pid" ] || return 0
        kill -"${2:-TERM}" "$pid" 2>/dev/null || return 0
        for i in $(seq 50); do
                alive "$pid" || break
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
}

# Stops the cluster's processes, node managers first (a stopped one is woken to hear SIGINT), and
# removes the cgroups a node manager killed on purpose (kill -9, a crashed machine) left behind, with
# the workers in them (which outlive a node manager, to re-attach to the next one). Only our own, by
# the names we gave them.
cluster_stop() {
        local pid cg d
        for pid in "${CLUSTER_PIDS[@]}"; do
                kill -CONT "$pid" 2>/dev/null
                stop_pid "$pid" INT
        done
        for pid in "${CLUSTER_BUS_PIDS[@]}"; do
                stop_pid "$pid"
        done
        for cg in "${CLUSTER_CGROUPS[@]}"; do
                for d in /sys/fs/cgroup/kactor/"$cg" /sys/fs/cgroup/*/kactor/"$cg"; do
                        [ -f "$d/cgroup.kill" ] && echo 1 > "$d/cgroup.kill" 2>/dev/null
                        for _ in $(seq 50); do
                                grep -qs "populated 1" "$d/cgroup.events" || break
                                sleep 0.1
                        done
                        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
                done
        done
        CLUSTER_PIDS=()
        CLUSTER_BUS_PIDS=()
        CLUSTER_NODES=()
        CLUSTER_CGROUPS=()
        CLUSTER_SEED=
}

cleanup() {
        cluster_stop
        stop_pid "$NODEMGR_PID" INT
        stop_pid "$DBUS_PID"
        if [ "${KACTOR_BENCH_KEEP:-0}" = 1 ]; then
                echo "kept $DIR"
        else
                rm -rf "$DIR"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$@" | tee -a "$RESULTS"; }

: >"$RESULTS"
say "# kactor benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
say "# machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r)"
say "# each figure: ${KACTOR_BENCH_DURATION:-1.5} s measured after ${KACTOR_BENCH_WARMUP:-0.3} s warm-up"

# --- baselines (no kactor involved) ---------------------------------------------------------------
say "== baselines"
timeout 60 "$BENCH/bench-baseline" "$DIR/baseline.env" | tee -a "$RESULTS"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ] || [ ! -s "$DIR/baseline.env" ]; then
        say "bench-baseline failed (exit $rc): no baselines, ratios will be missing"
        FAILED=1
else
        set -a
        # shellcheck disable=SC1091
        . "$DIR/baseline.env"
        set +a
fi

# --- a private bus and node manager --------------------------------------------------------------
# write_bus_conf DIR: a private bus listening on DIR/bus.
write_bus_conf() {
        cat >"$1/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$1/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
}

# What this script starts gets SIGKILL should the script die (a timeout, a kill -9): nothing outlives it.
PDEATHSIG=()
command -v setpriv >/dev/null && PDEATHSIG=(setpriv --pdeathsig KILL)

write_bus_conf "$DIR"
"${PDEATHSIG[@]}" dbus-daemon --config-file="$DIR/bus.conf" --nofork --nopidfile >"$DIR/dbus.log" 2>&1 &
DBUS_PID=$!
for i in $(seq 100); do
        [ -S "$DIR/bus" ] && break
        alive "$DBUS_PID" || break
        sleep 0.05
done
if [ ! -S "$DIR/bus" ]; then
        say "dbus-daemon did not start:"; cat "$DIR/dbus.log"
        exit 1
fi
BUS=unix:path=$DIR/bus

mkdir -p "$DIR/run"
start_nodemgr() {
        local i
        rm -f "$DIR/run/nodemgr.sock"
        # 1,000 actors need more descriptors than the usual soft limit of 1024 (a unit sets LimitNOFILE=).
        (ulimit -n "$(ulimit -Hn)" 2>/dev/null
         exec "${PDEATHSIG[@]}" "$BUILD/kactor-nodemgr" --bus "$BUS" --runtime-dir "$DIR/run" \
                --module-path "$MODULE_PATH" --num-cpus "$(nproc)") >>"$DIR/nodemgr.log" 2>&1 &
        NODEMGR_PID=$!
        for i in $(seq 100); do
                alive "$NODEMGR_PID" || break
                if busctl --address="$BUS" status io.kactor.NodeManager1 >/dev/null 2>&1 && [ -S "$DIR/run/nodemgr.sock" ]; then
                        export KACTOR_BENCH_NODEMGR_PID=$NODEMGR_PID
                        say "# node manager PID $NODEMGR_PID${KACTOR_TRACE:+, KACTOR_TRACE=$KACTOR_TRACE}"
                        return 0
                fi
                sleep 0.1
        done
        say "kactor-nodemgr did not become ready; its log:"
        tail -n 30 "$DIR/nodemgr.log"
        exit 1
}

start_nodemgr

export KACTOR_SOCKET=$DIR/run/nodemgr.sock
export KACTOR_BENCH_BUS=$BUS

# The benchmarks measure kactor as shipped: tracing in its default mode (always-on where the node
# manager may load it, i.e. as root); bench-tracing compares the modes.
TRACING=$(busctl --address="$BUS" get-property io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.Trace1 \
        Enabled 2>/dev/null)
if [ "$TRACING" = "b true" ]; then
        say "# tracing: always-on (the default)"
else
        say "# tracing: off ($(busctl --address="$BUS" get-property io.kactor.NodeManager1 /io/kactor/NodeManager1 \
                io.kactor.Trace1 Reason 2>/dev/null | sed 's/^s //'))"
fi

nodemgr_crashed() {
        if ! alive "$NODEMGR_PID"; then
                wait "$NODEMGR_PID"
                say "kactor-nodemgr died (exit $?); the end of its log:"
                tail -n 30 "$DIR/nodemgr.log" | tee -a "$RESULTS"
                NODEMGR_PID=
                return 0
        fi
        return 1
}

# run TITLE LIMIT PROGRAM [ARGS...] (an empty TITLE: the caller printed the section's title)
run() {
        local title=$1 limit=$2 rc
        shift 2
        [ -n "$title" ] && say "== $title"
        timeout "$limit" "$@" 2>"$DIR/stderr" | tee -a "$RESULTS"
        rc=${PIPESTATUS[0]}
        if [ -s "$DIR/stderr" ]; then
                sed 's/^/   stderr: /' "$DIR/stderr" | head -n 20 | tee -a "$RESULTS"
        fi
        case $rc in
        0) ;;
        124) say "$(basename "$1"): timed out after $limit s"; FAILED=1 ;;
        2) say "$(basename "$1"): could not run (see ERROR above)"; FAILED=1 ;;
        *) say "$(basename "$1"): crashed (exit $rc$( [ "$rc" -gt 128 ] && echo ", signal $((rc - 128))"))"; FAILED=1 ;;
        esac
        if nodemgr_crashed; then
                FAILED=1
                exit 1
        fi
}

run "actor calls" 90 "$BENCH/bench-actor-calls" "$@"
run "tasks and objects" 90 "$BENCH/bench-tasks" "$@"
if [ $# = 0 ] || [[ " $* " == *" tracing_overhead "* ]]; then
        if [ "$TRACING" = "b true" ]; then
                run "tracing overhead (off, always-on, timeline; medians of interleaved rounds)" 600 \
                        "$BENCH/bench-tracing"
        else
                say "== tracing overhead: not measured, tracing is off (needs root)"
        fi
fi
if [ $# = 0 ] || [[ " $* " == *" actor_creation "* ]]; then
        # A fresh node manager, so its memory figure is that of the 1,000 actors alone; what the
        # earlier benchmarks left behind shows in nodemgr_rss_after_calls.
        stop_pid "$NODEMGR_PID" INT
        NODEMGR_PID=
        start_nodemgr
        run "actor creation and memory (fresh node manager)" 120 "$BENCH/bench-actor-creation"
fi
# Restart and replay against this node manager; the cgroup backends against private node managers
# that bench-isolation starts and stops itself, and the systemd backend in a systemd-nspawn node.
# Their knobs: KACTOR_BENCH_RESTARTS (11), KACTOR_BENCH_ROUNDS (15 paired rounds of DURATION/10),
# KACTOR_BENCH_ISO_ACTORS (100 per creation round), KACTOR_BENCH_ISO_ROUNDS (5), KACTOR_BENCH_ISO_BURST (400).
run "lineage: restart, replay, the log's cost" 90 "$BENCH/bench-lineage" "$@"
run "isolation: cgroup backends (private node managers)" 120 "$BENCH/bench-isolation" "$@"
# Node manager restarts that leave the actors running, against private nodes bench-restart starts and
# stops itself (their node managers with SIGINT at the end, so their actors stop too). Its knobs:
# KACTOR_BENCH_RESTART_ACTORS (1000), KACTOR_BENCH_RESTART_ROUNDS (3), KACTOR_BENCH_RESTART_COUNT (5
# restarts under load), KACTOR_BENCH_RESTART_INFLIGHT (64 calls per caller), KACTOR_BENCH_RESTART_GAP (1.0 s).
run "restart: actors outlive the node manager (private node managers)" 120 "$BENCH/bench-restart" "$@"
if [ $# = 0 ] || [[ " $* " == *" actor_creation_systemd "* ]] || [[ " $* " == *" isolation "* ]]; then
        run "isolation: systemd scopes (systemd-nspawn node)" 180 "$(dirname "$0")/bench-systemd-node.sh" "$BUILD"
fi

# --- clusters ------------------------------------------------------------------------------------
# bench-cluster runs against node managers started here, one cluster per group of benchmarks: each
# node with its own dbus-daemon, runtime directory and --cgroup-name, listening on
# 127.X.Y.N:$CLUSTER_PORT (X.Y from our PID, so that runs side by side never share an address; N new
# for every node, so that no address is reused while the old socket lingers) and joined through the
# cluster's first node. Both processes get SIGKILL should this script die (setpriv --pdeathsig), and
# cluster_stop stops them by PID.
CLUSTER_NET=127.$((($$ >> 8) & 255)).$(($$ & 255))
CLUSTER_PORT=${KACTOR_BENCH_CLUSTER_PORT:-7947}

# cluster_wanted GROUP NAME...: whether the selected benchmarks include the group or one of its names.
cluster_wanted() {
        local group=$1 a n
        shift
        [ ${#SELECTED[@]} = 0 ] && return 0
        for a in "${SELECTED[@]}"; do
                [ "$a" = cluster ] || [ "$a" = "$group" ] && return 0
                for n in "$@"; do
                        [ "$a" = "$n" ] && return 0
                done
        done
        return 1
}

# cluster_node_start LABEL [=plaintext] [=seed] [NODEMGR ARGS...]: a node of the current cluster,
# ready (its bus name and native socket there); the first one is the others' seed. =plaintext: its
# peers speak without TLS (KACTOR_PEER_PLAINTEXT=1); =seed: it starts a cluster of its own, the seed
# of the nodes after it.
cluster_node_start() {
        local label=$1 dir=$DIR/cluster-$1 addr cgroup pid i new_seed=0
        local join=() env=()
        shift
        while [ $# -gt 0 ] && [[ $1 == =* ]]; do
                case $1 in
                =plaintext) env=(env KACTOR_PEER_PLAINTEXT=1) ;;
                =seed) new_seed=1 ;;
                esac
                shift
        done
        CLUSTER_N=$((CLUSTER_N + 1))
        addr=$CLUSTER_NET.$CLUSTER_N:$CLUSTER_PORT
        cgroup=kactor-bench-$$-$label
        mkdir -p "$dir/run"
        write_bus_conf "$dir"
        "${PDEATHSIG[@]}" dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile >"$dir/dbus.log" 2>&1 &
        pid=$!
        CLUSTER_BUS_PIDS+=("$pid")
        for i in $(seq 100); do
                [ -S "$dir/bus" ] && break
                alive "$pid" || break
                sleep 0.05
        done
        if [ ! -S "$dir/bus" ]; then
                say "cluster node $label: dbus-daemon did not start:"; cat "$dir/dbus.log"
                return 1
        fi
        if [ -n "$CLUSTER_SEED" ] && [ "$new_seed" = 0 ]; then
                join=(--join "$CLUSTER_SEED")
        else
                CLUSTER_SEED=$addr
        fi
        (ulimit -n "$(ulimit -Hn)" 2>/dev/null
         exec "${PDEATHSIG[@]}" "${env[@]}" "$BUILD/kactor-nodemgr" --bus "unix:path=$dir/bus" --runtime-dir "$dir/run" \
                --module-path "$MODULE_PATH" --num-cpus "$(nproc)" --cgroup-name "$cgroup" --listen "$addr" \
                "${join[@]}" --cluster-secret-file "$DIR/cluster.secret" "$@") >>"$dir/nodemgr.log" 2>&1 &
        pid=$!
        CLUSTER_PIDS+=("$pid")
        CLUSTER_CGROUPS+=("$cgroup")
        for i in $(seq 100); do
                alive "$pid" || break
                if busctl --address="unix:path=$dir/bus" status io.kactor.NodeManager1 >/dev/null 2>&1 &&
                   [ -S "$dir/run/nodemgr.sock" ]; then
                        CLUSTER_NODES+=("$label:$pid:$dir")
                        say "# cluster node $label: PID $pid, $addr${join:+, joined through $CLUSTER_SEED}${env:+, KACTOR_PEER_PLAINTEXT=1}${*:+, $*}"
                        return 0
                fi
                sleep 0.1
        done
        say "cluster node $label: kactor-nodemgr did not become ready; its log:"
        tail -n 30 "$dir/nodemgr.log" | tee -a "$RESULTS"
        return 1
}

# cluster_run TITLE LIMIT GROUP NODE-SPEC...: starts the nodes (LABEL or LABEL,ARG,ARG...), runs
# bench-cluster GROUP on them, stops them.
cluster_run() {
        local title=$1 limit=$2 group=$3 spec
        local args=()
        shift 3
        if [ ${#PDEATHSIG[@]} = 0 ]; then
                say "== $title: skipped, no setpriv (util-linux) to tie the nodes to this script"
                return 0
        fi
        say "== $title"
        for spec in "$@"; do
                IFS=, read -r -a args <<<"$spec"
                if ! cluster_node_start "${args[@]}"; then
                        FAILED=1
                        cluster_stop
                        return 0
                fi
        done
        # bench-cluster kills a node manager on purpose: bash's notice of a job killed by a signal
        # goes to the shell's stderr when it reaps it, here or in cluster_stop.
        {
                run "" "$limit" "$BENCH/bench-cluster" "$group" "${CLUSTER_NODES[@]}" -- "${SELECTED[@]}"
                cluster_stop
        } 2>/dev/null
}

if cluster_wanted calls remote_1_1_actor_calls_sync remote_1_1_actor_calls_async ||
   cluster_wanted replication replication_r1_calls_async replication_r2_calls_async ||
   cluster_wanted tls tls_remote_calls_sync tls_remote_calls_async tls_replication_r1_calls_async ||
   cluster_wanted failure soak_idle_3_nodes failure_detection failure_detection_kill9 rebuild_10000_calls; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/cluster.secret"
        chmod 600 "$DIR/cluster.secret"
fi
if cluster_wanted calls remote_1_1_actor_calls_sync remote_1_1_actor_calls_async; then
        cluster_run "cluster: remote vs local calls (2 nodes, defaults: --replicas 1)" 120 calls a b
fi
if cluster_wanted replication replication_r1_calls_async replication_r2_calls_async; then
        cluster_run "cluster: replication (3 nodes, --replicas 0, 1, 2)" 120 replication \
                r0,--replicas,0 r1,--replicas,1 r2,--replicas,2
fi
if cluster_wanted tls tls_remote_calls_sync tls_remote_calls_async tls_replication_r1_calls_async; then
        cluster_run "cluster: TLS vs plaintext (2 clusters of 2 nodes, defaults: --replicas 1)" 180 tls \
                p1,=plaintext p2,=plaintext t1,=seed t2
fi
if cluster_wanted failure soak_idle_3_nodes failure_detection failure_detection_kill9 rebuild_10000_calls; then
        cluster_run "cluster: false deaths, failure detection, rebuilding (3 nodes, defaults)" \
                "$(awk -v s="${KACTOR_BENCH_SOAK:-60}" 'BEGIN { printf "%d", s + 180 }')" failure x y z
fi

say "== summary"
say "$(grep -c ' PASS ' "$RESULTS") PASS, $(grep -c ' MISS ' "$RESULTS") MISS (a report, not a test); results in $RESULTS"
exit "$FAILED"
