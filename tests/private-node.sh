# Sourced by scripts that need a node manager of their own: a private dbus-daemon and a
# kactor-nodemgr on it, both stopped (by PID) by private_node_stop, which callers put in an EXIT trap.
#
#   private_node_start BUILD_DIR [nodemgr options...]
#   -> PRIVATE_NODE_DIR, PRIVATE_BUS (a D-Bus address), KACTOR_SOCKET (exported), NODEMGR_PID

private_node_start() {
        local build=$1; shift
        PRIVATE_NODE_DIR=$(mktemp -d /tmp/kactor-node.XXXXXX)
        cat > "$PRIVATE_NODE_DIR/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=$PRIVATE_NODE_DIR/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
        # Both go down with the caller even if it is killed outright (--pdeathsig).
        setpriv --pdeathsig TERM dbus-daemon --config-file="$PRIVATE_NODE_DIR/bus.conf" --nofork --nopidfile \
                2> "$PRIVATE_NODE_DIR/bus.log" &
        BUS_PID=$!
        local j
        for j in $(seq 100); do
                [ -S "$PRIVATE_NODE_DIR/bus" ] && break
                sleep 0.05
        done
        PRIVATE_BUS="unix:path=$PRIVATE_NODE_DIR/bus"
        export KACTOR_SOCKET="$PRIVATE_NODE_DIR/run/nodemgr.sock"
        export KACTOR_BUS_ADDRESS="$PRIVATE_BUS"

        setpriv --pdeathsig TERM "$build/kactor-nodemgr" --bus "$PRIVATE_BUS" --runtime-dir "$PRIVATE_NODE_DIR/run" "$@" \
                2> "$PRIVATE_NODE_DIR/nodemgr.log" &
        NODEMGR_PID=$!
        # Ready once the name is on the bus (bounded: 10 s).
        local i
        for i in $(seq 100); do
                if busctl --address="$PRIVATE_BUS" status io.kactor.NodeManager1 >/dev/null 2>&1 &&
                   [ -S "$KACTOR_SOCKET" ]; then
                        return 0
                fi
                if ! kill -0 "$NODEMGR_PID" 2>/dev/null; then
                        echo "kactor-nodemgr failed to start:" >&2
                        cat "$PRIVATE_NODE_DIR/nodemgr.log" >&2
                        return 1
                fi
                sleep 0.1
        done
        echo "kactor-nodemgr did not become ready in 10 s" >&2
        return 1
}

private_node_stop() {
        # SIGINT stops the actors with it; SIGTERM would leave them running for a next node manager
        # (docs/restart.md), their workers waiting to re-attach and their cgroups in place.
        if [ -n "${NODEMGR_PID:-}" ] && kill -0 "$NODEMGR_PID" 2>/dev/null; then
                kill -INT "$NODEMGR_PID"
                wait "$NODEMGR_PID" 2>/dev/null || true
        fi
        if [ -n "${BUS_PID:-}" ] && kill -0 "$BUS_PID" 2>/dev/null; then
                kill -TERM "$BUS_PID"
                wait "$BUS_PID" 2>/dev/null || true
        fi
        [ -n "${PRIVATE_NODE_DIR:-}" ] && rm -rf "$PRIVATE_NODE_DIR"
        NODEMGR_PID= BUS_PID= PRIVATE_NODE_DIR=
}
