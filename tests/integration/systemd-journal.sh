#!/bin/bash
# The journal in a real systemd node (TESTING.md, docs/logging.md), as an operator reads it with
# journalctl: every line of an actor's stdout and stderr an entry with SYSLOG_IDENTIFIER=kactor-actor-ID
# and KACTOR_ACTOR_ID=ID, at priority 6 (stdout) or 3 (stderr) unless a "<N>" prefix says otherwise,
# with the actor's worker as _PID, its user as _UID and its scope as _SYSTEMD_UNIT (not the node
# manager's); bytes that are not UTF-8 as they were, a long line in several entries, and the last line
# of a worker that exits or aborts; the node manager's entries without ERRNO=0, creation and kills at
# the default level with KACTOR_ACTOR_ID=, and a worker that dies in a call named with KACTOR_METHOD=.
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
wait_for "the actor's stderr" SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal as a warning"
wait_for "the actor's stdout" SYSLOG_IDENTIFIER="$ident" MESSAGE="hello-journal"
msgs=$(journal SYSLOG_IDENTIFIER="$ident" | field MESSAGE)
for m in "hello-journal" "hello-journal on stderr" "hello-journal as a warning"; do
        echo "$msgs" | grep -qxF "$m" || fail "'$m' is not in the actor's journal: $msgs"
done
# priority MESSAGE: the PRIORITY of the actor's entry with that text.
priority() { journal SYSLOG_IDENTIFIER="$ident" MESSAGE="$1" | field PRIORITY; }
[ "$(priority "hello-journal")" = 6 ] || fail "stdout is not at priority 6 (info): $(priority hello-journal)"
[ "$(priority "hello-journal on stderr")" = 3 ] || fail "stderr is not at priority 3 (err): $(priority "hello-journal on stderr")"
[ "$(priority "hello-journal as a warning")" = 4 ] || fail "the <4> line is not at priority 4"
echo "$msgs" | grep -q '^<' && fail "a priority prefix is left in a message: $msgs"
# Every line carries the actor's id, stdout's and stderr's alike, and the actor's trusted fields.
for m in "hello-journal" "hello-journal on stderr" "hello-journal as a warning"; do
        entry=$(journal SYSLOG_IDENTIFIER="$ident" MESSAGE="$m")
        [ "$(echo "$entry" | field KACTOR_ACTOR_ID)" = "$id" ] || fail "'$m' lacks KACTOR_ACTOR_ID=$id: $entry"
        [ "$(echo "$entry" | field _PID)" = "$pid" ] || fail "_PID of '$m' is not the worker's ($pid): $entry"
        [ "$(echo "$entry" | field _UID)" = "$kj_uid" ] || fail "_UID of '$m' is not the actor's user ($kj_uid): $entry"
        [ "$(echo "$entry" | field _SYSTEMD_UNIT)" = "$ident.scope" ] || fail "_SYSTEMD_UNIT of '$m' is not the actor's scope: $entry"
done
# Bytes that are not UTF-8 arrive as they were written.
[ "$(journal SYSLOG_IDENTIFIER="$ident" KACTOR_ACTOR_ID="$id" | python3 -c 'import json, sys
for line in sys.stdin:
    v = json.loads(line).get("MESSAGE")
    if isinstance(v, list) and bytes(v) == b"hello-journal in bytes \xff\xfe": print("found")')" = found ] ||
        fail "the line that is not UTF-8 is not in the journal as it was written"
# journalctl's usual selections find it, and the actor's id finds the actor's own lines too.
run journalctl --no-pager -t "$ident" | grep -q "hello-journal on stderr" || fail "journalctl -t $ident"
run journalctl --no-pager -u "$ident.scope" | grep -q "hello-journal on stderr" || fail "journalctl -u $ident.scope"
run journalctl --no-pager KACTOR_ACTOR_ID="$id" | grep -q "hello-journal on stderr" || fail "journalctl KACTOR_ACTOR_ID=$id"
# ... and the node manager's identifier has none of it.
journal SYSLOG_IDENTIFIER=kactor-nodemgr | field MESSAGE | grep -q hello-journal &&
        fail "the actor's output is tagged kactor-nodemgr"

# A line longer than the journal's lines: several entries, each at the first one's priority, that
# together are the line without its prefix (--all: journalctl shows a field of more than 4 KiB as null
# without it).
o=$(path_of "$(as_kj call io.kactor.NodeManager1 "$a" io.kactor.Actor1 Call sav long_line 1 x 100000)")
as_kj call "${mgr[@]}" Get aot 1 "$o" 10000000 >/dev/null || fail "long_line failed"
long() { journal --all SYSLOG_IDENTIFIER="$ident" PRIORITY=4 | python3 -c 'import json, sys
parts = [json.loads(l)["MESSAGE"] for l in sys.stdin]
parts = [p for p in parts if isinstance(p, str) and p and set(p) == {"x"}]
print(len(parts), sum(map(len, parts)))'; }
for _ in $(seq 100); do [ "$(long | cut -d' ' -f2)" = 100000 ] && break; sleep 0.05; done
read -r n_parts n_chars <<< "$(long)"
[ "$n_chars" = 100000 ] && [ "$n_parts" -gt 1 ] || fail "the long line is $n_parts entries at priority 4 of $n_chars x's in all"

# The last line a worker writes before it exits, without a newline, still in stdio's buffer; and the
# line a worker writes to stderr right before abort().
for how in last_words abort; do
        out=$(as_kj call "${mgr[@]}" CreateActor 'ssava{sv}' journalmod Printer 0 1 MaxRestarts i 0) || fail "CreateActor: $out"
        c=$(path_of "$out")
        id_c=${c##*/}
        o=$(path_of "$(as_kj call io.kactor.NodeManager1 "$c" io.kactor.Actor1 Call sav $how 1 s "$how-of-$id_c")")
        as_kj call "${mgr[@]}" Get aot 1 "$o" 10000000 >/dev/null
        wait_for "the line before $how" SYSLOG_IDENTIFIER="kactor-actor-$id_c" MESSAGE="$how-of-$id_c"
        entry=$(journal SYSLOG_IDENTIFIER="kactor-actor-$id_c" MESSAGE="$how-of-$id_c")
        [ "$(echo "$entry" | field KACTOR_ACTOR_ID)" = "$id_c" ] || fail "the line before $how lacks KACTOR_ACTOR_ID: $entry"
        [ "$(echo "$entry" | field _UID)" = "$kj_uid" ] || fail "_UID of the line before $how is not the actor's user: $entry"
done
[ "$(journal SYSLOG_IDENTIFIER="kactor-actor-$id_c" MESSAGE="abort-of-$id_c" | field PRIORITY)" = 3 ] ||
        fail "the line before abort() is not at priority 3"

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
