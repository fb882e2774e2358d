#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the fuzz targets into BUILD/fuzz/ and runs each for a bounded time from a seed corpus made
# by tests/fuzz/seeds.c. Exits non-zero when a target crashes, leaks, or trips a sanitizer or one of
# its own checks; the input that did it is left in BUILD/fuzz/ (crash-*, leak-*, timeout-*, with the
# target's name as prefix) and can be replayed with `BUILD/fuzz/fuzz-TARGET FILE`.
#
#   tests/fuzz/run.sh [BUILD]          (default: build)
#
# The targets:
#   fuzz-frame          the frame decoder, the codec, lineage records
#   fuzz-peer           the peer message parsers and the membership table
#   fuzz-native         a real node manager driven by native clients (request sequences)
#   fuzz-peer-session   a real clustered node manager driven by an authenticated peer (needs root:
#                       it runs in a network namespace of its own)
#   fuzz-direct         the worker's side of direct calls (lib/worker/worker-direct.c) driven by
#                       callers on direct sockets
#
# Seconds per target: FUZZ_TIME (fuzz-frame, default 8), FUZZ_PEER_TIME (default 7),
# FUZZ_NATIVE_TIME (default 18), FUZZ_PEER_SESSION_TIME (default 12), FUZZ_DIRECT_TIME (default 6); 0
# skips a target. docs/fuzzing.md describes the targets. FUZZ_CC (default clang) may be set. The node
# manager's sources are compiled once by the Makefile (clang, ASan+UBSan, libFuzzer's coverage) into
# BUILD/fuzz/core/libkactor-core.a, and only again when they change.

set -eu

BUILD=${1:-build}
FUZZ_TIME=${FUZZ_TIME:-8}
FUZZ_PEER_TIME=${FUZZ_PEER_TIME:-7}
FUZZ_NATIVE_TIME=${FUZZ_NATIVE_TIME:-18}
FUZZ_PEER_SESSION_TIME=${FUZZ_PEER_SESSION_TIME:-12}
FUZZ_DIRECT_TIME=${FUZZ_DIRECT_TIME:-6}
FUZZ_CC=${FUZZ_CC:-clang}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$BUILD/fuzz
CORE=$OUT/core
MAKE=${MAKE:-make}

if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
        echo "tests/fuzz/run.sh: $FUZZ_CC not found (the fuzz targets need clang with libFuzzer)" >&2
        exit 1
fi

mkdir -p "$OUT"
echo "== building $CORE/libkactor-core.a"
# A build of its own: not the flags or jobserver of a make that runs this script.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "$MAKE" -s -C "$SRC" BUILD="$(cd "$OUT" && pwd)/core" CC="$FUZZ_CC" SANITIZE=1 CFLAGS="-O1 -fsanitize=fuzzer-no-link" \
        -j2 "$(cd "$OUT" && pwd)/core/libkactor-core.a"

PKGS="libsystemd msgpack libbpf libcap libcgroup libssl libcrypto zlib"
# shellcheck disable=SC2086
CFLAGS="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$SRC/include -I$SRC/lib/basic -I$SRC/lib -I$SRC/cgroups -I$SRC/bpf -I$SRC/nodemgr/core \
-I$SRC/nodemgr/bus -I$SRC/nodemgr/native -I$SRC/nodemgr/cluster \
$(pkg-config --cflags $PKGS)"
# shellcheck disable=SC2086
LIBS="$CORE/libkactor-core.a $(pkg-config --libs $PKGS) -lm"
FUZZ_CFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

build() { # target, sources...
        target=$1
        shift
        echo "== building $OUT/$target"
        # shellcheck disable=SC2086
        "$FUZZ_CC" $CFLAGS $FUZZ_CFLAGS -o "$OUT/$target" "$@" $LIBS
}

build fuzz-frame "$SRC/tests/fuzz/fuzz-frame.c"
build fuzz-peer "$SRC/tests/fuzz/fuzz-peer.c"
build fuzz-native "$SRC/tests/fuzz/fuzz-native.c" "$SRC/tests/fuzz/fuzz-manager.c"
build fuzz-peer-session "$SRC/tests/fuzz/fuzz-peer-session.c" "$SRC/tests/fuzz/fuzz-manager.c"
# The worker's runtime is not in the core archive (it is kactor-worker's): its two files that direct
# calls go through are compiled in, with the fuzzer's coverage.
build fuzz-direct -I"$SRC/lib/worker" "$SRC/tests/fuzz/fuzz-direct.c" "$SRC/lib/worker/worker-direct.c" \
        "$SRC/lib/worker/worker-runtime.c"
# shellcheck disable=SC2086
"$FUZZ_CC" $CFLAGS -fsanitize=address,undefined -o "$OUT/fuzz-seeds" "$SRC/tests/fuzz/seeds.c" $LIBS

# Seeds: made afresh each run (read only for the fuzzer), with the checked-in inputs (crashes found
# before, kept as regressions): tests/fuzz/corpus/ for fuzz-frame and fuzz-peer, corpus/native/,
# corpus/peer-session/ and corpus/direct/ for the other three.
seeds() { # dir, seeds option, checked-in dir
        rm -rf "$1"
        mkdir -p "$1"
        # shellcheck disable=SC2086
        "$OUT/fuzz-seeds" $2 "$1"
        if [ -d "$3" ]; then
                find "$3" -maxdepth 1 -type f -exec cp {} "$1/" \;
        fi
}
seeds "$OUT/seeds" "" "$SRC/tests/fuzz/corpus"
seeds "$OUT/seeds-native" --native "$SRC/tests/fuzz/corpus/native"
seeds "$OUT/seeds-peer-session" --peer-session "$SRC/tests/fuzz/corpus/peer-session"
seeds "$OUT/seeds-direct" --direct "$SRC/tests/fuzz/corpus/direct"

# What a fixture leaves when a target crashes stays in the build directory.
TMPDIR=$(cd "$OUT" && pwd)/tmp
export TMPDIR
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

run() { # target, seconds, max_len, seeds
        if [ "$2" -eq 0 ]; then
                echo "== $1: skipped (0 s)"
                return 0
        fi
        echo "== running $1 for ${2}s"
        # New inputs go to corpus-TARGET (kept between runs under BUILD); the seeds are read only.
        mkdir -p "$OUT/corpus-${1#fuzz-}"
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
                "$OUT/$1" -max_total_time="$2" -rss_limit_mb=2048 -max_len="$3" -timeout=10 \
                -print_final_stats=1 -artifact_prefix="$OUT/$1-" "$OUT/corpus-${1#fuzz-}" "$4"
        echo "$1: no crash in ${2}s"
}

run fuzz-frame "$FUZZ_TIME" 65536 "$OUT/seeds"
run fuzz-peer "$FUZZ_PEER_TIME" 65536 "$OUT/seeds"
run fuzz-native "$FUZZ_NATIVE_TIME" 65536 "$OUT/seeds-native"
run fuzz-peer-session "$FUZZ_PEER_SESSION_TIME" 16384 "$OUT/seeds-peer-session"
run fuzz-direct "$FUZZ_DIRECT_TIME" 65536 "$OUT/seeds-direct"
rm -rf "$TMPDIR"
