#!/usr/bin/env bash
# bench/fleet_ab.sh BUILD_A BUILD_B [N] [RUNS]: fleet throughput of two builds
# side by side, runs interleaved A B A B ...: per run, one mutirao-worker and
# one `mutirao run --fleet bench/fleet.lua` producer of that build, N trivial
# tasks (default 50000), RUNS pairs (default 5); prints each run's tasks/s
# and the median per build (a run that did not finish within 300 s, e.g. on
# a machine shared with other workers of the same group, is left out). Needs the services of tests/services.sh
# (build-services/env.sh, or MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
A="$(realpath "$1")" B="$(realpath "$2")" N="${3:-50000}" RUNS="${4:-5}"
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" ]]; then
    source build-services/env.sh
fi
lua="$PWD/bench/fleet.lua"
# no configuration file: either build reads only the environment
unset MUTIRAO_CONFIG
cd "$(mktemp -d)"
export MUTIRAO_KAFKA_BROKERS="$MUTIRAO_TEST_KAFKA_BROKERS" MUTIRAO_REDIS_URL="$MUTIRAO_TEST_REDIS_URL"
tag="ab$(date +%s)"
wpid=""
trap '[[ -n "$wpid" ]] && kill "$wpid" 2>/dev/null; true' EXIT
one() { # one BUILD RUN: prints tasks/s
    local pool="$tag-$2-$RANDOM"
    "$1/bin/mutirao-worker" --pools "$pool" --id "$pool" --log-level warn >/dev/null 2>&1 &
    wpid=$!
    FLEET_BENCH_MODE=throughput FLEET_BENCH_N="$N" FLEET_BENCH_POOL="$pool" \
        FLEET_BENCH_SETTLE_MS=2000 timeout 300 "$1/bin/mutirao" run --fleet "$lua" 2>/dev/null |
        sed -n 's/.* = \([0-9]*\) tasks\/s.*/\1/p'
    kill "$wpid"
    wait "$wpid" 2>/dev/null || true
    wpid=""
}
ra=() rb=()
for i in $(seq 1 "$RUNS"); do
    a=$(one "$A" "$i") && [[ -n "$a" ]] && ra+=("$a")
    b=$(one "$B" "$i") && [[ -n "$b" ]] && rb+=("$b")
    echo "run $i: A $a tasks/s, B $b tasks/s  (load $(cut -d' ' -f1 /proc/loadavg))"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "median: A $(median "${ra[@]}") tasks/s (${#ra[@]} runs), B $(median "${rb[@]}") tasks/s (${#rb[@]} runs), N=$N"
