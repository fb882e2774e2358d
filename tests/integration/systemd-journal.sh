#!/bin/bash
# The journal in a real systemd node (TESTING.md, docs/logging.md), as an operator reads it with
# journalctl: an actor's stdout and stderr under its own identifier kactor-actor-ID, with the
# actor's worker as _PID, its user as _UID and its scope as _SYSTEMD_UNIT (not the node manager's),
# a "<N>" prefix setting a line's priority; the node manager's entries without ERRNO=0, creation and
# kills at the default level with KACTOR_ACTOR_ID=, and a worker that dies in a call named with
# KACTOR_METHOD=.
# Usage: systemd-journal.sh CHECKOUT BUILD. Exit 0 = pass, 77 = cannot run here.
set -u
here=$(dirname "$0")
. "$here/nspawn-node.sh"

nspawn_boot "$1" "$2"
# A member of the access group creates the actor: its worker runs as that user.
run sh -c 'groupadd kactor && useradd -M -N -G kactor -s /bin/sh kj' || fail "cannot make the user"
kj_uid=$(run id -u kj)
nspawn_install_units
run systemctl start kactor-nodemgr || fail "systemctl start kactor-nodemgr"

mgr=(io.kactor.NodeManager1 /io/kactor/NodeManager1 io.kactor.NodeManager1)
path_of() { echo "$1" | cut -d'"' -f2; }
as_kj() { run setpriv --reuid=kj --regid="$(run id -g kj)" --init-groups busctl --timeout=10 "$@" 2>&1; }
# journal ARGS...: the entries journalctl selects, one JSON object per line.
journal() { run journalctl --no-pager -o json "$@" 2>/dev/null; }
# field NAME: the values of a field in the JSON entries on stdin, one per line.
field() { python3 -c 'import json, sys
for line in sys.stdin:
    v = json.loads(line).get(sys.argv[1])
    if v is not None: print(v if isinstance(v, str) else bytes(v).decode(errors="replace"))' "$1"; }
# wait_for DESCRIPTION ARGS...: a bounded wait until journalctl ARGS... selects an entry (journald
# reads the streams in its own time).
wait_for() {
        local what=$1; shift
        for _ in $(seq 100); do
                [ -n "$(journal "$@")" ] && return 0
                sleep 0.05
        done
        fail "no journal entry for $what (journalctl $*)"
}

# --- an actor's own output --------------------------------------------------------------------------
out=$(as_kj call "${mgr[@]}" CreateActor 'ssava{sv}' journalmod Printer 0 0) || fail "CreateActor: $out"
a=$(path_of "$out")
id=${a##*/}
pid=$(as_kj get-property io.kactor.NodeManager1 "$a" io.kactor.Actor1 Pid | cut -d' ' -f2)
o=$(path_of "$(as_kj call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Call sav say 1 s hello-journal)")
as_kj call "${mgr[@]}" Get aot 1 "$o" 10000000 >/dev/null || fail "say failed: $(as_kj call "${mgr[@]}" Get aot 1 "$o" 10000000)"

ident=kactor-actor-$id
wait_for "the actor's stderr" SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal as an error"
wait_for "the actor's stdout" SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal"
msgs=$(journal SYSLOG_IDENTIFIER="$ident" | field MESSAGE)
for m in "hello-journal" "hello-journal on stderr" "hello-journal as an error"; do
        echo "$msgs" | grep -qxF "$m" || fail "'$m' is not in the actor's journal: $msgs"
done
[ "$(journal SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal as an error" | field PRIORITY)" = 3 ] ||
        fail "the <3> line is not at priority 3"
[ "$(journal SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal" | field PRIORITY)" = 6 ] ||
        fail "stdout is not at priority 6 (info)"
# Trusted fields: the actor's, not the node manager's.
entry=$(journal SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal on stderr")
[ "$(echo "$entry" | field _PID)" = "$pid" ] || fail "_PID is not the worker's ($pid): $entry"
[ "$(echo "$entry" | field _UID)" = "$kj_uid" ] || fail "_UID is not the actor's user ($kj_uid): $entry"
[ "$(echo "$entry" | field _SYSTEMD_UNIT)" = "$ident.scope" ] || fail "_SYSTEMD_UNIT is not the actor's scope: $entry"
# journalctl's usual selections find it.
run journalctl --no-pager -t "$ident" | grep -q "hello-journal on stderr" || fail "journalctl -t $ident"
run journalctl --no-pager -u "$ident.scope" | grep -q "hello-journal on stderr" || fail "journalctl -u $ident.scope"
# ... and the node manager's identifier has none of it.
journal SYSLOG_IDENTIFIER=kactor-nodemgr | field MESSAGE | grep -q hello-journal &&
        fail "the actor's output is tagged kactor-nodemgr"

# --- the node manager's entries -----------------------------------------------------------------------
wait_for "the creation" _SYSTEMD_UNIT=kactor-nodemgr.service KACTOR_ACTOR_ID="$id"
created=$(journal _SYSTEMD_UNIT=kactor-nodemgr.service KACTOR_ACTOR_ID="$id" | field MESSAGE)
echo "$created" | grep -q "^Created actor $id (Printer, module .*journalmod.so) for user $kj_uid\.$" ||
        fail "no creation entry for $id: $created"
run busctl --timeout=10 call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Kill b true >/dev/null || fail "Kill"
wait_for "the kill" _SYSTEMD_UNIT=kactor-nodemgr.service KACTOR_ACTOR_ID="$id" MESSAGE="Killed actor $id (Printer) by request of user 0."
[ "$(journal _SYSTEMD_UNIT=kactor-nodemgr.service MESSAGE="Killed actor $id (Printer) by request of user 0." | field PRIORITY)" = 6 ] ||
        fail "the kill is not logged at info"

# A worker that dies in a call: the entry names the method.
out=$(as_kj call "${mgr[@]}" CreateActor 'ssava{sv}' journalmod Printer 0 1 MaxRestarts i 0) || fail "CreateActor: $out"
b=$(path_of "$out")
id_b=${b##*/}
o=$(path_of "$(as_kj call io.kactor.NodeManager1 "$b" io.kactor.Actor1 Call sav crash 0)")
as_kj call "${mgr[@]}" Get aot 1 "$o" 10000000 >/dev/null
wait_for "the death in a method" _SYSTEMD_UNIT=kactor-nodemgr.service KACTOR_ACTOR_ID="$id_b" KACTOR_METHOD=crash
journal KACTOR_ACTOR_ID="$id_b" KACTOR_METHOD=crash | field MESSAGE | grep -q "died in method crash: worker exited with status 3" ||
        fail "the death does not say the method: $(journal KACTOR_ACTOR_ID="$id_b" | field MESSAGE)"

# No entry of the node manager carries ERRNO=0; its entries are its own identifier's.
n=$(journal _SYSTEMD_UNIT=kactor-nodemgr.service _TRANSPORT=journal | wc -l)
[ "$n" -gt 0 ] || fail "the node manager wrote no entries with fields"
errno0=$(journal _SYSTEMD_UNIT=kactor-nodemgr.service ERRNO=0 | field MESSAGE)
[ -z "$errno0" ] || fail "entries with ERRNO=0: $errno0"
[ "$(journal _SYSTEMD_UNIT=kactor-nodemgr.service _TRANSPORT=journal | field SYSLOG_IDENTIFIER | sort -u)" = kactor-nodemgr ] ||
        fail "the node manager's entries lack SYSLOG_IDENTIFIER=kactor-nodemgr"

run busctl call "${mgr[@]}" Shutdown >/dev/null || fail "Shutdown"
echo "PASS: the actors' and the node manager's journal entries in a real systemd node"
