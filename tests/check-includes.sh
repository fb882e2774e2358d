#!/usr/bin/env bash
# Fails when an #include "..." goes the wrong way between folders, and reports include cycles
# between folders (docs/architecture.md, "Layers"). The per-folder -I in the Makefile refuses most
# wrong-way includes already; this catches the rest: a header found next to the includer, a folder
# whose -I was added for one file, a header included by path.
#
# The layers, lowest first; a folder may include its own headers and those of the layers below it:
#   lib/basic <- lib (include/ is its public API) <- {lib/worker, cgroups, bpf} <- nodemgr/core
#   <- {nodemgr/bus, nodemgr/native, nodemgr/cluster} <- nodemgr (nodemgr.c, main)
# kactorctl/ is a client: lib/basic, lib, bpf's trace format and the bus's value mapping.
# tests/ and examples/ may include anything.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A LAYER=(
        [lib/basic]="lib/basic"
        [lib]="lib/basic lib"
        [lib/worker]="lib/basic lib lib/worker"
        [cgroups]="lib/basic lib cgroups"
        [bpf]="lib/basic lib bpf"
        [nodemgr/core]="lib/basic lib cgroups bpf nodemgr/core"
        [nodemgr/bus]="lib/basic lib cgroups bpf nodemgr/core nodemgr/bus"
        [nodemgr/native]="lib/basic lib cgroups bpf nodemgr/core nodemgr/native"
        [nodemgr/cluster]="lib/basic lib cgroups bpf nodemgr/core nodemgr/cluster"
        [nodemgr]="lib/basic lib cgroups bpf nodemgr/core nodemgr/bus nodemgr/native nodemgr/cluster nodemgr"
        [kactorctl]="lib/basic lib bpf/trace-format.h nodemgr/bus/bus-value.h kactorctl"
)

# Temporary exceptions, "FROM TO" (folders), one a line with the reason: each is a debt, and this
# list should stay empty. (The last, "nodemgr/core nodemgr/cluster" for INC_CORE_UPWARD, went when the
# core came to reach the cluster only through ClusterHooks.) An exception no include needs fails.
EXCEPTIONS=(
)

FOLDERS=(lib/basic lib include lib/worker cgroups bpf nodemgr/core nodemgr/bus nodemgr/native nodemgr/cluster
         nodemgr kactorctl)

# include/kactor/*.h is libkactor's public API: the lib layer.
folder_of() {
        local d
        d=$(dirname "$1")
        case "$d" in
        include | include/*) echo lib ;;
        *) echo "$d" ;;
        esac
}

is_exception() {
        local e
        for e in "${EXCEPTIONS[@]}"; do
                [[ "$e" == "$1 $2" ]] && return 0
        done
        return 1
}

# Where `#include "$2"` in file $1 lands: next to the includer first (as the compiler looks), then
# the folders. Prints the path, or "generated:bpf" for a skeleton or vmlinux.h; fails when the name
# is nowhere or in more than one folder.
resolve() {
        local file=$1 inc=$2 d hits=()
        if [[ -e "$(dirname "$file")/$inc" ]]; then
                echo "$(dirname "$file")/$inc"
                return 0
        fi
        for d in "${FOLDERS[@]}"; do
                [[ -e "$d/$inc" ]] && hits+=("$d/$inc")
        done
        if ((${#hits[@]} == 1)); then
                echo "${hits[0]}"
                return 0
        fi
        if ((${#hits[@]} > 1)); then
                echo "ambiguous: ${hits[*]}"
                return 1
        fi
        case "$inc" in
        *.skel.h | vmlinux.h)
                echo "generated:bpf"
                return 0
                ;;
        esac
        echo "not found in any folder"
        return 1
}

allowed() {
        local from=$1 target=$2 tfolder=$3 a
        for a in ${LAYER[$from]}; do
                [[ "$a" == "$tfolder" || "$a" == "$target" ]] && return 0
        done
        is_exception "$from" "$tfolder"
}

failed=0
declare -A EDGE=()

mapfile -t files < <(find lib include cgroups bpf nodemgr kactorctl -type f \( -name '*.c' -o -name '*.h' \) | sort)
for f in "${files[@]}"; do
        from=$(folder_of "$f")
        if [[ -z "${LAYER[$from]+x}" ]]; then
                echo "$f: folder $from has no layer: add it to tests/check-includes.sh and docs/architecture.md" >&2
                failed=1
                continue
        fi
        while IFS=: read -r line inc; do
                if ! target=$(resolve "$f" "$inc"); then
                        echo "$f:$line: #include \"$inc\": $target" >&2
                        failed=1
                        continue
                fi
                if [[ "$target" == generated:* ]]; then
                        tfolder=${target#generated:}
                        target=$tfolder/$inc
                else
                        target=$(realpath -m --relative-to=. "$target")
                        tfolder=$(folder_of "$target")
                fi
                [[ "$tfolder" == "$from" ]] && continue
                if is_exception "$from" "$tfolder"; then
                        EDGE["$from $tfolder"]=exception
                elif allowed "$from" "$target" "$tfolder"; then
                        [[ -n "${EDGE["$from $tfolder"]+x}" ]] || EDGE["$from $tfolder"]=down
                else
                        echo "$f:$line: #include \"$inc\" goes the wrong way: $from may not use $target" >&2
                        EDGE["$from $tfolder"]=wrong
                        failed=1
                fi
        done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
                 sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/')
done

# Cycles between folders. Every allowed edge goes down the layers, so a cycle takes a wrong-way edge
# (already an error) or a listed exception (reported, a known debt): print the way back for those.
path_back() { # FROM TO: a path of edges from FROM to TO, or nothing
        local -A parent=([$1]=)
        local queue=("$1") u v e
        while ((${#queue[@]})); do
                u=${queue[0]}
                queue=("${queue[@]:1}")
                for e in "${!EDGE[@]}"; do
                        [[ "${e%% *}" == "$u" ]] || continue
                        v=${e#* }
                        [[ -n "${parent[$v]+x}" ]] && continue
                        parent[$v]=$u
                        if [[ "$v" == "$2" ]]; then
                                local p=$v
                                while [[ "$p" != "$1" ]]; do
                                        v="${parent[$p]} -> $v"
                                        p=${parent[$p]}
                                done
                                echo "$v"
                                return 0
                        fi
                        queue+=("$v")
                done
        done
}

for e in "${!EDGE[@]}"; do
        [[ "${EDGE[$e]}" == down ]] && continue
        back=$(path_back "${e#* }" "${e%% *}")
        [[ -n "$back" ]] || continue
        if [[ "${EDGE[$e]}" == wrong ]]; then
                echo "include cycle between folders: ${e%% *} -> $back" >&2
        else
                echo "include cycle between folders through a listed exception: ${e%% *} -> $back"
        fi
done

for x in "${EXCEPTIONS[@]}"; do
        if [[ "${EDGE[$x]:-}" != exception ]]; then
                echo "exception \"$x\" is not needed any more: remove it from tests/check-includes.sh" >&2
                failed=1
        fi
done

if ((failed)); then
        echo "check-includes: FAILED (the layers: docs/architecture.md)" >&2
        exit 1
fi
echo "check-includes: ${#files[@]} files, every include goes down the layers${EXCEPTIONS[*]:+ (exceptions: ${#EXCEPTIONS[@]})}"
