# Sourced by the scripts that test kactor in a real systemd node (TESTING.md): boots systemd-nspawn
# over the host's /usr (tmpfs root) with the capabilities a real host gives PID 1, installs the units
# generated in the build (units/*.in) with an ExecStart= for the build, and gives:
#
#   nspawn_boot CHECKOUT BUILD [nspawn options...]   boots the node, waits until it runs
#   nspawn_install_units [nodemgr options...]        the unit, the slice and the D-Bus policy
#   run CMD...                                       CMD inside the node (30 s at most)
#   fail MESSAGE                                     says why, shows the logs, exits 1
#
# The node goes down with the caller (an EXIT trap, and --pdeathsig if the caller is killed outright).
# Exit 77 from nspawn_boot: no systemd-nspawn, or not root.

nspawn_boot() {
        checkout=$1 build=$2
        shift 2
        command -v systemd-nspawn >/dev/null || { echo "no systemd-nspawn"; exit 77; }
        [ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
        nspawn_name=kt$$
        nspawn_log=$(mktemp /tmp/kactor-nspawn.XXXXXX)
        setpriv --pdeathsig TERM systemd-nspawn -D / --volatile=yes -b --register=no --keep-unit -M "$nspawn_name" \
                --bind-ro="$checkout":/opt/kactor \
                --capability=CAP_BPF,CAP_NET_ADMIN,CAP_PERFMON --system-call-filter=bpf "$@" \
                -- systemd.firstboot=off > "$nspawn_log" 2>&1 &
        nspawn_pid=$!
        trap nspawn_cleanup EXIT
        # The container's PID 1: nspawn's child in a PID namespace of its own.
        leader=
        local ourns c ns state
        ourns=$(readlink /proc/self/ns/pid)
        for _ in $(seq 100); do
                for c in $(cat /proc/$nspawn_pid/task/*/children 2>/dev/null); do
                        ns=$(readlink /proc/$c/ns/pid 2>/dev/null)
                        if [ -n "$ns" ] && [ "$ns" != "$ourns" ]; then leader=$c; break; fi
                done
                [ -n "$leader" ] && break
                sleep 0.1
        done
        [ -n "$leader" ] || fail "nspawn started no container"
        for _ in $(seq 200); do
                state=$(run systemctl is-system-running 2>/dev/null)
                [ "$state" = running ] || [ "$state" = degraded ] && break
                sleep 0.1
        done
        [ "$state" = running ] || [ "$state" = degraded ] || fail "the node did not boot: $state"
}

nspawn_cleanup() {
        kill -TERM "$nspawn_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$nspawn_pid" 2>/dev/null
        wait "$nspawn_pid" 2>/dev/null
        rm -f "$nspawn_log"
}

run() { timeout 30 nsenter -t "$leader" -a "$@"; }

fail() {
        echo "FAIL: $*"
        echo "--- nspawn:"; tail -20 "$nspawn_log"
        [ -n "${leader:-}" ] && { echo "--- nodemgr:"; run journalctl -u kactor-nodemgr --no-pager | tail -20; }
        exit 1
}

# Installs the units with a drop-in: ExecStart= the build's manager with the test modules and any
# EXTRA manager options given. What a host has and a container lacks comes first: bpffs, which PID 1
# mounts at boot outside containers (the sandbox lets the manager pin there but not mount it).
nspawn_install_units() {
        local rel=${build#"$checkout"/} asan_env=
        run sh -c "mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700,nosuid,nodev,noexec bpf /sys/fs/bpf" ||
                fail "cannot mount bpffs"
        # A sanitized build (make check-asan): LeakSanitizer stops the world with ptrace, which the
        # unit's system call filter refuses, and would fail every exit (its report would go unread to
        # the node's journal anyway). AddressSanitizer itself stays on.
        ldd "$build/kactor-nodemgr" 2>/dev/null | grep -q libasan && asan_env='\nEnvironment=ASAN_OPTIONS=detect_leaks=0'
        run sh -c "mkdir -p /etc/dbus-1/system.d /run/systemd/system/kactor-nodemgr.service.d &&
                cp /opt/kactor/units/io.kactor.NodeManager1.conf /etc/dbus-1/system.d/ &&
                cp /opt/kactor/$rel/units/kactor-nodemgr.service /opt/kactor/$rel/units/kactor.slice /run/systemd/system/ &&
                printf '[Service]\nExecStart=\nExecStart=/opt/kactor/$rel/kactor-nodemgr --module-path /opt/kactor/$rel/tests/modules:/opt/kactor/$rel/examples $*\nEnvironment=KACTOR_WORKER_REATTACH_SEC=60$asan_env\n' \
                        > /run/systemd/system/kactor-nodemgr.service.d/test.conf" || fail "cannot install the units"
        run busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null || fail "dbus reload"
        run systemctl daemon-reload || fail "daemon-reload"
}
