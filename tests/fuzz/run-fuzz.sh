#!/bin/sh
# run-fuzz.sh BUILD_DIR SECONDS: builds the fuzzers with clang (ASan +
# UBSan + libFuzzer) in BUILD_DIR and runs them for SECONDS seconds in all:
# a third (at least 10 s) for fuzz-message (a worker's message path:
# signature, envelope, payload), the rest for fuzz-codec on a seed corpus
# made by gen-corpus. Exit status 0 means no crash.
# Everything it writes (the configure output in configure.log included)
# stays in BUILD_DIR.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
mkdir -p "$1"
build=$(cd "$1" && pwd)
secs=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

CC=clang cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMUTIRAO_FUZZ=ON -DMUTIRAO_SANITIZE=address >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target fuzz-codec fuzz-message gen-corpus -j "$jobs"

seeds=$build/fuzz-seeds
work=$build/fuzz-corpus
mkdir -p "$seeds" "$work"
"$build/bin/gen-corpus" "$seeds"
if [ -d "$src/tests/fuzz/corpus" ]; then
    cp "$src/tests/fuzz/corpus/"* "$seeds/" 2>/dev/null || true
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
msecs=$((secs / 3))
[ "$msecs" -ge 10 ] || msecs=10
mwork=$build/fuzz-message-corpus
mseeds=$build/fuzz-message-seeds
mkdir -p "$mwork" "$mseeds"
"$build/bin/gen-corpus" "$build/fuzz-seeds" "$mseeds"
"$build/bin/fuzz-message" -max_total_time="$msecs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/message-" "$mwork" \
    "$mseeds"
secs=$((secs > msecs ? secs - msecs : 10))
exec "$build/bin/fuzz-codec" -max_total_time="$secs" -max_len=65536 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/" "$work" "$seeds"
