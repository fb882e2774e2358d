#!/bin/bash
# The Debian package in a real systemd node (TESTING.md), as an operator meets it: `dpkg -i` of the
# .deb that `make deb` builds creates group kactor, enables and starts kactor-nodemgr.service and
# reloads D-Bus; busctl and kactorctl work as root and as a member of the group (an outsider is
# refused); `apt-get remove` stops the actors and the service; `dpkg --purge` leaves no file of the
# package, no unit and no /run/kactor. The group stays (debian/postrm says why).
# The node's /usr, /etc and /var are the host's under overlays whose upper layers are this script's,
# so dpkg can write there (and finds the host's packages and groups) and the host is not touched.
# Usage: systemd-deb.sh CHECKOUT BUILD. Exit 0 = pass, 77 = cannot run here.
set -u
here=$(dirname "$0")
. "$here/nspawn-node.sh"
checkout=$1 build=$2

command -v dpkg-buildpackage >/dev/null || { echo "no dpkg-buildpackage (make deps)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
tmp=$(mktemp -d /tmp/kactor-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The package: built from the tree's sources whatever BUILD's flags (a sanitized build's test uses the
# same .deb), once in the checkout's build/, and again only when a file of the tree changed.
debbuild=$checkout/build
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$checkout" -s BUILD="$debbuild" deb > "$tmp/deb.log" 2>&1; then
        tail -40 "$tmp/deb.log"
        echo "FAIL: make deb"
        exit 1
fi
deb=$(ls "$debbuild"/deb/kactor_*_"$(dpkg --print-architecture)".deb) || { echo "FAIL: make deb made no .deb"; exit 1; }

mkdir "$tmp/usr" "$tmp/var" "$tmp/etc"
nspawn_boot "$checkout" "$build" --overlay=/usr:"$tmp/usr":/usr --overlay=/var:"$tmp/var":/var \
        --overlay=/etc:"$tmp/etc":/etc \
        --bind-ro="$(dirname "$deb")":/opt/kactor-deb
trap 'nspawn_cleanup; rm -rf "$tmp"' EXIT
# What PID 1 mounts on a host and not in a container (nspawn-node.sh says why).
run sh -c "mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700,nosuid,nodev,noexec bpf /sys/fs/bpf" ||
        fail "cannot mount bpffs"
# A host made from a container image may forbid starting services in packages' scripts; a real
# machine does not.
run rm -f /usr/sbin/policy-rc.d
pkg() { run env DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# What the package will bring, and which of its paths the node already has (/usr, /usr/lib, ...).
run sh -c '! getent group kactor' || fail "the node has a group kactor before the package"
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^/\?$' > "$tmp/contents"
[ -s "$tmp/contents" ] || fail "cannot list the package"
run sh -c 'while read -r p; do [ -e "$p" ] || [ -L "$p" ] || echo "$p"; done' < "$tmp/contents" > "$tmp/new"
grep -qx /usr/sbin/kactor-nodemgr "$tmp/new" || fail "the node has kactor-nodemgr before the package"

out=$(pkg dpkg -i "/opt/kactor-deb/$(basename "$deb")" 2>&1) || fail "dpkg -i: $out"

# Installed: the group, the enabled and running service, its name on the bus.
run getent group kactor >/dev/null || fail "the package made no group kactor"
[ "$(run systemctl is-enabled kactor-nodemgr.service)" = enabled ] || fail "kactor-nodemgr.service is not enabled"
[ "$(run systemctl is-active kactor-nodemgr.service)" = active ] || fail "kactor-nodemgr.service is not active"
run test -d /run/kactor || fail "no /run/kactor"
for doc in $(run systemctl show -P Documentation kactor-nodemgr.service); do
        run test -e "${doc#file://}" || fail "a Documentation= link of the unit goes nowhere: $doc"
done
run busctl status io.kactor.NodeManager1 >/dev/null 2>&1 || fail "io.kactor.NodeManager1 is not on the bus"

run sh -c 'useradd -M -N -G kactor -s /bin/sh kmember && useradd -M -N -s /bin/sh koutsider' || fail "cannot make the users"
mgr=(io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1)
# as USER CMD...: CMD as USER (with its groups), or as root; what it says, and its status.
as() {
        local user=$1; shift
        if [ "$user" = root ]; then run "$@" 2>&1; return; fi
        run setpriv --reuid="$user" --regid="$(run id -g "$user")" --init-groups "$@" 2>&1
}
path_of() { cut -d'"' -f2 <<<"$1"; }
for user in root kmember; do
        # busctl: a counter from the package's module directory, by name.
        out=$(as $user busctl --timeout=20 call "${mgr[@]}" CreateActor 'ssava{sv}' counter Counter 0 0) ||
                fail "CreateActor as $user: $out"
        actor=$(path_of "$out")
        out=$(as $user busctl --timeout=20 call io.kactor.NodeManager1 "$actor" io.kactor.Actor1 Call sav increment 0) ||
                fail "Call as $user: $out"
        out=$(as $user busctl --timeout=20 call "${mgr[@]}" Get aot 1 "$(path_of "$out")" 10000000) &&
                [ "$out" = "av 1 x 1" ] || fail "Get as $user: $out"
        # kactorctl, from the package.
        out=$(as $user kactorctl create --name "c-$user" counter Counter) || fail "kactorctl create as $user: $out"
        as $user kactorctl call "c-$user" increment >/dev/null || fail "kactorctl call as $user"
        out=$(as $user kactorctl call "c-$user" increment) && [ "$out" = 2 ] || fail "kactorctl call as $user: $out"
done
out=$(as koutsider busctl --timeout=20 call "${mgr[@]}" CreateActor 'ssava{sv}' counter Counter 0 0) &&
        fail "an outsider created an actor: $out"
run pgrep -f kactor-worker >/dev/null || fail "no actor's worker runs"

# Removed: the actors and the service stop, the units go.
out=$(pkg apt-get remove -y -q kactor 2>&1) || fail "apt-get remove: $out"
run pgrep -f kactor-worker >/dev/null && fail "actors' workers outlived the removal: $(run pgrep -af kactor-worker)"
[ "$(run systemctl is-active kactor-nodemgr.service)" = active ] && fail "kactor-nodemgr.service still runs"
units=$(run systemctl list-units --all --no-legend --plain 'kactor*' | grep -v 'not-found' || true)
[ -z "$units" ] || fail "units left after apt-get remove: $units"
run busctl status io.kactor.NodeManager1 >/dev/null 2>&1 && fail "io.kactor.NodeManager1 is still on the bus"

# Purged: nothing of the package's is left, nor what it made at run time; the group stays.
out=$(pkg dpkg --purge kactor 2>&1) || fail "dpkg --purge: $out"
status=$(run dpkg-query -W -f='${db:Status-Status}' kactor 2>/dev/null)
[ -z "$status" ] || [ "$status" = not-installed ] || fail "kactor is $status after purge"
left=$(run sh -c 'while read -r p; do [ -e "$p" ] || [ -L "$p" ] && echo "$p"; done' < "$tmp/new")
[ -z "$left" ] || fail "left after purge: $left"
left=$(run find /etc /usr /var/lib /run /sys/fs/bpf /sys/fs/cgroup -xdev -name '*kactor*' 2>/dev/null)
[ -z "$left" ] || fail "left after purge: $left"
run systemctl list-unit-files --no-legend 'kactor*' | grep -q . && fail "unit files left after purge"
run getent group kactor >/dev/null || fail "the purge removed group kactor (debian/postrm keeps it)"
echo "kactor .deb in a systemd node: installed, started, used by root and group members, removed and purged clean"
