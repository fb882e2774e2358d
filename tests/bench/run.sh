#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make bench: runs the kactor benchmarks against a private dbus-daemon and kactor-nodemgr that this
# script starts, and stops exactly those processes (by PID) when it ends.
#
#   tests/bench/run.sh BUILD [NAME...]
#
# NAME selects benchmarks (as printed, or tracing_overhead for bench-tracing; "baseline" is always
# run). It reports, it does not judge: a missed target is a MISS line, and the exit status is 0
# unless a benchmark could not run or something crashed. The output is also kept in
# BUILD/bench-results.txt. Knobs (environment):
# KACTOR_BENCH_DURATION (s, 1.5), KACTOR_BENCH_WARMUP (s, 0.3), KACTOR_BENCH_BATCH (1000),
# KACTOR_BENCH_ACTORS (1000), KACTOR_BENCH_ACTORS_1N (4), KACTOR_BENCH_CLIENTS (nproc, >= 2),
# KACTOR_BENCH_KEEP=1 keeps the temporary directory (logs) for inspection; KACTOR_TRACE=off is
# passed on to the node manager (its always-on tracing is otherwise part of every figure).

set -u

BUILD=$(cd "${1:-build}" && pwd) || exit 1
shift
BENCH=$BUILD/tests/bench
MODULE_PATH=$BUILD/examples:$BUILD/tests/modules
RESULTS=$BUILD/bench-results.txt

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kactor-bench.XXXXXX") || exit 1
DBUS_PID=
NODEMGR_PID=
FAILED=0

# Whether a child of ours still runs (kill -0 also succeeds on a zombie).
alive() {
        local state
        state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
        [[ $state != Z* ]]
}

# Stops what we started, by PID, politely first; bounded.
stop_pid() {
        local pid=$1 i
        [ -n "$pid" ] || return 0
        kill -TERM "$pid" 2>/dev/null || return 0
        for i in $(seq 50); do
                alive "$pid" || break
                sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
}

cleanup() {
        stop_pid "$NODEMGR_PID"
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
cat >"$DIR/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$DIR/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
CONF

dbus-daemon --config-file="$DIR/bus.conf" --nofork --nopidfile >"$DIR/dbus.log" 2>&1 &
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
         exec "$BUILD/kactor-nodemgr" --bus "$BUS" --runtime-dir "$DIR/run" --module-path "$MODULE_PATH" \
                --num-cpus "$(nproc)") >>"$DIR/nodemgr.log" 2>&1 &
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

# run TITLE LIMIT PROGRAM [ARGS...]
run() {
        local title=$1 limit=$2 rc
        shift 2
        say "== $title"
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
        stop_pid "$NODEMGR_PID"
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
if [ $# = 0 ] || [[ " $* " == *" actor_creation_systemd "* ]] || [[ " $* " == *" isolation "* ]]; then
        run "isolation: systemd scopes (systemd-nspawn node)" 180 "$(dirname "$0")/bench-systemd-node.sh" "$BUILD"
fi

say "== summary"
say "$(grep -c ' PASS ' "$RESULTS") PASS, $(grep -c ' MISS ' "$RESULTS") MISS (a report, not a test); results in $RESULTS"
exit "$FAILED"
