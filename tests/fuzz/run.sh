#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the fuzz targets into BUILD/fuzz/ and runs each for a bounded time from a seed corpus made
# by tests/fuzz/seeds.c. Exits non-zero when a target crashes, leaks, or trips a sanitizer or one of
# its own checks; the input that did it is left in BUILD/fuzz/ (crash-*, leak-*, timeout-*) and can
# be replayed with `BUILD/fuzz/fuzz-frame FILE`.
#
#   tests/fuzz/run.sh [BUILD]          (default: build)
#
# FUZZ_TIME (seconds per target, default 20; fuzz-peer gets FUZZ_PEER_TIME, default 10) and FUZZ_CC
# (default clang) may be set.

set -eu

BUILD=${1:-build}
FUZZ_TIME=${FUZZ_TIME:-20}
FUZZ_PEER_TIME=${FUZZ_PEER_TIME:-10}
FUZZ_CC=${FUZZ_CC:-clang}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$BUILD/fuzz

if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
        echo "tests/fuzz/run.sh: $FUZZ_CC not found (the fuzz targets need clang with libFuzzer)" >&2
        exit 1
fi

mkdir -p "$OUT"
MSGPACK_CFLAGS=$(pkg-config --cflags msgpack)
MSGPACK_LIBS=$(pkg-config --libs msgpack)
CFLAGS="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$SRC/include -I$SRC/lib -I$SRC/nodemgr $MSGPACK_CFLAGS"
# What the targets decode with: values, the codec, framing, lineage records.
SOURCES="$SRC/lib/proto.c $SRC/lib/codec.c $SRC/lib/value.c $SRC/nodemgr/lineage.c"

echo "== building $OUT/fuzz-frame"
# shellcheck disable=SC2086
"$FUZZ_CC" $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
        -o "$OUT/fuzz-frame" "$SRC/tests/fuzz/fuzz-frame.c" $SOURCES $MSGPACK_LIBS -lm
# shellcheck disable=SC2086
"$FUZZ_CC" $CFLAGS -o "$OUT/fuzz-seeds" "$SRC/tests/fuzz/seeds.c" $SOURCES $MSGPACK_LIBS -lm

SEEDS=$OUT/seeds
CORPUS=$OUT/corpus-frame
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$CORPUS"
"$OUT/fuzz-seeds" "$SEEDS"
# Checked-in inputs (crashes found before, kept as regression seeds) come along when there are any.
if [ -d "$SRC/tests/fuzz/corpus" ]; then
        cp "$SRC/tests/fuzz/corpus/"* "$SEEDS/" 2>/dev/null || true
fi

echo "== running fuzz-frame for ${FUZZ_TIME}s"
# New inputs go to CORPUS (kept between runs under BUILD); SEEDS is read only. The artifacts of a
# failure land in OUT.
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        "$OUT/fuzz-frame" -max_total_time="$FUZZ_TIME" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$OUT/" "$CORPUS" "$SEEDS"
echo "fuzz-frame: no crash in ${FUZZ_TIME}s"

# The peer protocol: frames under the peer cap, peer messages, membership entries (nodemgr/membership.c).
echo "== building $OUT/fuzz-peer"
# shellcheck disable=SC2086
"$FUZZ_CC" $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
        -o "$OUT/fuzz-peer" "$SRC/tests/fuzz/fuzz-peer.c" "$SRC/nodemgr/membership.c" "$SRC/nodemgr/remote-proto.c" $SOURCES $MSGPACK_LIBS -lm
PEER_CORPUS=$OUT/corpus-peer
mkdir -p "$PEER_CORPUS"
echo "== running fuzz-peer for ${FUZZ_PEER_TIME}s"
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        "$OUT/fuzz-peer" -max_total_time="$FUZZ_PEER_TIME" -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$OUT/peer-" "$PEER_CORPUS" "$SEEDS"
echo "fuzz-peer: no crash in ${FUZZ_PEER_TIME}s"
