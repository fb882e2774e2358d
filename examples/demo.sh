#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The seed's examples, live: starts a private D-Bus bus and a node manager with two (fake) GPUs,
# runs each example program against it, then drives the same node manager with busctl.
#
#   examples/demo.sh BUILD_DIR          (what `make demo` runs)
#
# It stops exactly the processes it started, by PID, and removes its temporary directory on exit.
# Exits non-zero when any example failed.

set -u -o pipefail

if [ $# -ne 1 ]; then
        echo "Usage: $0 BUILD_DIR" >&2
        exit 2
fi
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "demo.sh: no build directory '$1'" >&2; exit 1; }

for f in kactor-nodemgr kactor-worker examples/demo-counter examples/demo-handles examples/demo-cartpole \
        examples/demo-nnet; do
        if [ ! -x "$BUILD/$f" ]; then
                echo "demo.sh: $BUILD/$f is missing; run 'make' first" >&2
                exit 1
        fi
done
for m in counter cartpole nnet; do
        if [ ! -e "$BUILD/examples/$m.so" ]; then
                echo "demo.sh: $BUILD/examples/$m.so is missing; run 'make' first" >&2
                exit 1
        fi
done
for t in dbus-daemon busctl; do
        if ! command -v "$t" >/dev/null; then
                echo "demo.sh: $t is not installed (make deps installs it)" >&2
                exit 1
        fi
done

if [ -t 1 ]; then
        BOLD=$'\e[1m' GREEN=$'\e[32m' RED=$'\e[31m' RESET=$'\e[0m'
else
        BOLD='' GREEN='' RED='' RESET=''
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kactor-demo.XXXXXX") || exit 1
BUS="unix:path=$TMP/bus"
DBUS_PID=
NODEMGR_PID=
FAILED=()
PASSED=()

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
        local rc=$? i

        # Finish cleaning up even if another signal comes.
        trap - EXIT
        trap '' INT TERM
        if [ -n "$NODEMGR_PID" ] && kill -0 "$NODEMGR_PID" 2>/dev/null; then
                # SIGINT: it stops its actors' workers before it exits (SIGTERM would leave them running
                # for a next node manager); give it a bounded time, then force it.
                kill -INT "$NODEMGR_PID" 2>/dev/null
                for ((i = 0; i < 150; i++)); do
                        kill -0 "$NODEMGR_PID" 2>/dev/null || break
                        sleep 0.1
                done
                if kill -0 "$NODEMGR_PID" 2>/dev/null; then
                        echo "demo.sh: kactor-nodemgr ($NODEMGR_PID) did not stop on SIGINT; sending SIGKILL" >&2
                        kill -KILL "$NODEMGR_PID" 2>/dev/null
                        rc=1
                fi
        fi
        if [ -n "$NODEMGR_PID" ]; then
                wait "$NODEMGR_PID" 2>/dev/null
        fi
        if [ -n "$DBUS_PID" ]; then
                kill -TERM "$DBUS_PID" 2>/dev/null
        fi
        rm -rf "$TMP"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

heading() {
        printf '\n%s==== %s ====%s\n' "$BOLD" "$1" "$RESET"
}

# Prints a command line the way a person would type it: plain words as they are, others in quotes
# (a lone & stays as it is, for commands shown running in the background).
print_command() {
        local a line='$'

        for a in "$@"; do
                if [[ "$a" =~ ^[A-Za-z0-9_./:=,@%+-]+$ || "$a" == '&' ]]; then
                        line+=" $a"
                else
                        line+=" '${a//\'/\'\\\'\'}'"
                fi
        done
        printf '%s%s%s\n' "$BOLD" "$line" "$RESET"
}

# Prints a command, then runs it.
show() {
        print_command "$@"
        "$@"
}

# show_capture VAR COMMAND...: as show, and keeps what the command printed (stdout) in VAR.
show_capture() {
        local -n _captured=$1
        local rc

        shift
        print_command "$@"
        _captured=$("$@")
        rc=$?
        [ -z "$_captured" ] || printf '%s\n' "$_captured"
        return $rc
}

nodemgr_log_tail() {
        if [ -s "$TMP/nodemgr.log" ]; then
                echo "--- last lines of the node manager's log:" >&2
                tail -n 30 "$TMP/nodemgr.log" >&2
                echo "---" >&2
        fi
}

# record NAME RC
record() {
        if [ "$2" -eq 0 ]; then
                PASSED+=("$1")
                printf '%s-> %s passed%s\n' "$GREEN" "$1" "$RESET"
        else
                FAILED+=("$1")
                printf '%s-> %s FAILED (exit status %s)%s\n' "$RED" "$1" "$2" "$RESET"
                nodemgr_log_tail
        fi
}

# --- a private D-Bus bus -------------------------------------------------------------------------
cat >"$TMP/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$TMP/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
# --fork returns once the bus listens; it writes its address and PID to the given descriptors.
if ! dbus-daemon --config-file="$TMP/bus.conf" --fork --print-address=3 --print-pid=4 \
        3>"$TMP/bus.address" 4>"$TMP/bus.pid" </dev/null; then
        echo "demo.sh: failed to start dbus-daemon" >&2
        exit 1
fi
DBUS_PID=$(head -n1 "$TMP/bus.pid")
if ! [[ "$DBUS_PID" =~ ^[0-9]+$ ]]; then
        DBUS_PID=
        echo "demo.sh: dbus-daemon did not report its PID" >&2
        exit 1
fi

# --- the node manager ----------------------------------------------------------------------------
heading "Starting kactor-nodemgr on a private bus with 2 GPUs"
mkdir -p "$TMP/run"
NODEMGR_CMD=("$BUILD/kactor-nodemgr" --bus "$BUS" --runtime-dir "$TMP/run" --module-path "$BUILD/examples" --gpus 2)
print_command "${NODEMGR_CMD[@]}" '&'
"${NODEMGR_CMD[@]}" </dev/null >"$TMP/nodemgr.log" 2>&1 &
NODEMGR_PID=$!

# Ready when it owns its bus name and its socket exists: at most ~10 s.
ready=false
for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$NODEMGR_PID" 2>/dev/null; then
                wait "$NODEMGR_PID"
                echo "demo.sh: kactor-nodemgr exited with status $? while starting" >&2
                NODEMGR_PID=
                nodemgr_log_tail
                exit 1
        fi
        if [ -S "$TMP/run/nodemgr.sock" ] &&
                busctl --address="$BUS" status io.kactor.NodeManager1 >/dev/null 2>&1; then
                ready=true
                break
        fi
        sleep 0.1
done
if ! $ready; then
        echo "demo.sh: kactor-nodemgr did not become ready within 10 s" >&2
        nodemgr_log_tail
        exit 1
fi
export KACTOR_SOCKET="$TMP/run/nodemgr.sock"
echo "node manager PID $NODEMGR_PID, bus $BUS, socket \$KACTOR_SOCKET=$KACTOR_SOCKET"

# --- the example programs ------------------------------------------------------------------------
heading "1. Counter: parallel actors, ordered calls (examples/demo-counter.c)"
cat <<'EOF'
Check: ten fresh counters incremented once print [1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
       one counter incremented five more times prints [2, 3, 4, 5, 6].
EOF
show "$BUILD/examples/demo-counter" "$BUILD/examples"
record demo-counter $?

heading "2. Actor handles passed to tasks and returned from them (examples/demo-handles.c)"
cat <<'EOF'
Check: four tasks share one counter through its handle; the values read while they run rise,
       the final value is 400; a handle returned by a task works (101).
EOF
show "$BUILD/examples/demo-handles" "$BUILD/examples"
record demo-handles $?

heading "3. CartPole: an actor wrapping a stateful simulator (examples/demo-cartpole.c)"
cat <<'EOF'
Check: the episode runs step by step inside one actor and ends when the pole falls or after
       200 steps; an invalid action is a TaskFailed error and the actor keeps working.
EOF
show "$BUILD/examples/demo-cartpole" "$BUILD/examples"
record demo-cartpole $?

heading "4. NeuralNet with num_gpus=1 (examples/demo-nnet.c)"
cat <<'EOF'
Check: accuracy well above chance (> 0.9); the actor got one GPU, and CUDA_VISIBLE_DEVICES
       names the same GPU; asking for 2 more GPUs with only 1 free is refused with
       io.kactor.Error.InsufficientResources ("not enough GPUs").
EOF
show "$BUILD/examples/demo-nnet" "$BUILD/examples"
record demo-nnet $?

# --- the same node manager over D-Bus ------------------------------------------------------------
heading "5. The D-Bus API with busctl"
echo "Every command below can be typed while a node manager runs; this one's bus is $BUS."

busctl_demo() {
        local actor obj out i objs=()
        local B=(busctl --no-pager --address="$BUS")
        local M=(io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1)

        show "${B[@]}" get-property "${M[@]}" Version NodeId Gpus FreeGpus Actors || return 1

        echo
        echo "# CreateActor(s module, s class, av args, a{sv} options) -> o actor"
        show_capture out "${B[@]}" call "${M[@]}" CreateActor 'ssava{sv}' counter Counter 0 0 || return 1
        actor=$(sed -n 's/^o "\(.*\)"$/\1/p' <<<"$out")
        [ -n "$actor" ] || { echo "CreateActor did not return an object path" >&2; return 1; }

        echo
        echo "# Actor1.Call(s method, av args) -> o object, three times; calls run in order"
        for i in 1 2 3; do
                show_capture out "${B[@]}" call io.kactor.NodeManager1 "$actor" io.kactor.Actor1 Call sav increment 0 ||
                        return 1
                obj=$(sed -n 's/^o "\(.*\)"$/\1/p' <<<"$out")
                [ -n "$obj" ] || { echo "Call did not return an object path" >&2; return 1; }
                objs+=("$obj")
        done

        echo
        echo "# Get(ao objects, t timeout_usec: here 10 s) -> av values: the third increment returned 3"
        show_capture out "${B[@]}" call "${M[@]}" Get aot 1 "$obj" 10000000 || return 1
        if ! grep -q '^av 1 x 3$' <<<"$out"; then
                echo "expected: av 1 x 3" >&2
                return 1
        fi

        echo
        echo "# The actor's properties"
        show "${B[@]}" get-property io.kactor.NodeManager1 "$actor" io.kactor.Actor1 \
                Class State Pid ControlGroup CallsSubmitted CallsCompleted || return 1

        echo
        echo "# Every actor is an object under the manager (ObjectManager)"
        show "${B[@]}" tree io.kactor.NodeManager1 || return 1
        show "${B[@]}" introspect io.kactor.NodeManager1 "$actor" io.kactor.Actor1 || return 1

        echo
        echo "# Asking for more GPUs than are free is refused"
        if show_capture out "${B[@]}" call "${M[@]}" CreateActor 'ssava{sv}' nnet NeuralNet 0 1 NumGpus u 3 \
                2>"$TMP/busctl.err"; then
                echo "expected io.kactor.Error.InsufficientResources" >&2
                return 1
        fi
        cat "$TMP/busctl.err"
        if ! grep -qi 'gpu' "$TMP/busctl.err"; then
                echo "expected a \"not enough GPUs\" message" >&2
                return 1
        fi

        echo
        echo "# Objects made over D-Bus live until released; actors made over D-Bus are detached: kill it"
        show "${B[@]}" call "${M[@]}" Release ao "${#objs[@]}" "${objs[@]}" || return 1
        show "${B[@]}" call io.kactor.NodeManager1 "$actor" io.kactor.Actor1 Kill b true || return 1
        return 0
}
busctl_demo
record busctl $?

heading "6. kactorctl"
if [ -x "$BUILD/kactorctl" ]; then
        show "$BUILD/kactorctl" --bus "$BUS" status || echo "(kactorctl status failed; not counted)"
        show "$BUILD/kactorctl" --bus "$BUS" list || echo "(kactorctl list failed; not counted)"
else
        echo "($BUILD/kactorctl is not built; skipped)"
fi

# --- summary -------------------------------------------------------------------------------------
heading "Summary"
for p in "${PASSED[@]}"; do
        printf '%s  passed: %s%s\n' "$GREEN" "$p" "$RESET"
done
for f in "${FAILED[@]}"; do
        printf '%s  FAILED: %s%s\n' "$RED" "$f" "$RESET"
done
if [ ${#FAILED[@]} -gt 0 ]; then
        exit 1
fi
echo "All examples behaved as the seed describes."
exit 0
