#!/usr/bin/env bash
# The service's sandbox stays what docs/isolation.md ("The service's sandbox") says it is:
# `systemd-analyze security` (offline, on the unit file) must rate kactor-nodemgr.service (generated
# from units/kactor-nodemgr.service.in into BUILD/units/) at an overall exposure of 4.0 ("OK") or less,
# and `systemd-analyze verify` must have nothing to say about the unit or the slice. Both look at a
# copy whose ExecStart= is the built binary, the one thing that differs from the installed unit
# (verify wants the binary to exist).
# Usage: check-unit-security.sh BUILD. Exit 0 when both hold.
set -euo pipefail
build=${1:-build}
max=4.0
cd "$(dirname "$0")/.."

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze is missing (make deps)"; exit 1; }
[ -x "$build/kactor-nodemgr" ] && [ -e "$build/units/kactor-nodemgr.service" ] ||
        { echo "FAIL: no $build/kactor-nodemgr or $build/units/ (make all)"; exit 1; }
dir=$(mktemp -d /tmp/kactor-unit-check.XXXXXX)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=.*|ExecStart=$(realpath "$build")/kactor-nodemgr|" "$build/units/kactor-nodemgr.service" \
        > "$dir/kactor-nodemgr.service"
cp "$build/units/kactor.slice" "$dir/"

# verify exits 0 on a setting it cannot parse and ignores (it only says so): any word about our
# units fails. What it may say of the host's own units is not ours to fix.
rc=0
out=$(systemd-analyze verify "$dir/kactor-nodemgr.service" "$dir/kactor.slice" 2>&1) || rc=$?
if [ "$rc" != 0 ] || grep -q kactor <<<"$out"; then
        echo "FAIL: systemd-analyze verify (exit $rc):"
        echo "$out"
        exit 1
fi

out=$(systemd-analyze security --offline=yes --no-pager "$dir/kactor-nodemgr.service" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for kactor-nodemgr\.service: \([0-9][0-9.]*\).*/\1/p' <<<"$out")
if [ -z "$exposure" ]; then
        echo "FAIL: systemd-analyze security gave no overall exposure:"
        echo "$out"
        exit 1
fi
if ! awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e <= m) }'; then
        echo "FAIL: kactor-nodemgr.service: exposure $exposure, more than $max. What is exposed:"
        grep '✗' <<<"$out" || true
        exit 1
fi
echo "kactor-nodemgr.service: exposure $exposure (at most $max), systemd-analyze verify clean"
