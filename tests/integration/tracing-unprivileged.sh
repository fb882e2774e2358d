#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# tests/integration/tracing-unprivileged.sh BUILD: runs a node manager as an unprivileged user (no
# capabilities) on a private bus and checks that it runs, without tracing, and says why: once in
# its log, and in `kactorctl status`. Stops exactly what it started. Exit 0 when all is as it should.

set -u
BUILD=$1
USER_ID=${TRACE_TEST_UID:-65534}
DIR=$(mktemp -d /tmp/kactor-trace-unpriv.XXXXXX) || exit 1
chmod 0755 "$DIR"
DBUS_PID= NODEMGR_PID=
# Stops a child we started: politely ($2, TERM by default; a node manager gets INT, which stops its
# actors too), then (after 5 s) not.
stop_pid() {
        [ -n "$1" ] || return 0
        kill -"${2:-TERM}" "$1" 2>/dev/null || return 0
        for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$1" 2>/dev/null
        wait "$1" 2>/dev/null
}
cleanup() {
        stop_pid "$NODEMGR_PID" INT
        stop_pid "$DBUS_PID"
        rm -rf "$DIR"
}
trap cleanup EXIT

cat >"$DIR/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$DIR/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
# Both die with this script even if it is killed outright (a test timeout): --pdeathsig.
setpriv --pdeathsig TERM dbus-daemon --config-file="$DIR/bus.conf" --nofork --nopidfile >"$DIR/dbus.log" 2>&1 &
DBUS_PID=$!
for _ in $(seq 100); do [ -S "$DIR/bus" ] && break; sleep 0.05; done
[ -S "$DIR/bus" ] || { echo "dbus-daemon did not start"; exit 1; }
chmod 0666 "$DIR/bus"
BUS=unix:path=$DIR/bus

mkdir -m 0777 "$DIR/run"
setpriv --pdeathsig TERM --reuid="$USER_ID" --regid="$USER_ID" --clear-groups --inh-caps=-all --bounding-set=-all \
        "$BUILD/kactor-nodemgr" --bus "$BUS" --runtime-dir "$DIR/run" --module-path "$BUILD/examples" \
        >"$DIR/nodemgr.log" 2>&1 &
NODEMGR_PID=$!
for _ in $(seq 200); do
        timeout 5 busctl --address="$BUS" status io.kactor.NodeManager1 >/dev/null 2>&1 && break
        kill -0 "$NODEMGR_PID" 2>/dev/null || break
        sleep 0.1
done

status=$(KACTOR_BUS_ADDRESS=$BUS timeout 20 "$BUILD/kactorctl" status 2>&1)
echo "$status"
fail=0
echo "$status" | grep -q '^Tracing: off (not permitted to load BPF programs' || { echo "FAIL: status does not say why tracing is off"; fail=1; }
n=$(grep -c 'Tracing is off' "$DIR/nodemgr.log")
[ "$n" = 1 ] || { echo "FAIL: the node manager said $n times that tracing is off"; fail=1; }
# The rest of the node works without tracing: it takes an actor. (Whether an unprivileged node
# manager's workers run is the isolation code's business, not this test's.)
# --no-block: create would wait for the constructor, which is that business.
a=$(KACTOR_BUS_ADDRESS=$BUS timeout 20 "$BUILD/kactorctl" create --no-block counter Counter 2>&1) || { echo "FAIL: create: $a"; fail=1; }
[ "$fail" = 0 ] || { echo "--- nodemgr log"; cat "$DIR/nodemgr.log"; }
exit "$fail"
