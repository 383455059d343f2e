#!/usr/bin/env bash
# bench/fleet.sh: end-to-end fleet figures on this machine, Kafka and Redis
# on loopback: throughput with 1 and 2 mutirao-worker processes, and
# submit-to-await latency at a moderate rate. Uses the services of
# tests/services.sh (started and stopped here unless MUTIRAO_TEST_* are set).
#   bench/fleet.sh [N]      N tasks per throughput run (default 50000)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
N="${1:-50000}"
started=""
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" ]]; then
    if [[ -f build-services/env.sh ]]; then
        source build-services/env.sh
    fi
    if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" ]] || ! redis-cli -u "$MUTIRAO_TEST_REDIS_URL" ping >/dev/null 2>&1; then
        bash tests/services.sh start >&2
        source build-services/env.sh
        started=1
    fi
fi
export MUTIRAO_KAFKA_BROKERS="$MUTIRAO_TEST_KAFKA_BROKERS" MUTIRAO_REDIS_URL="$MUTIRAO_TEST_REDIS_URL"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n "$started" ]]; then bash tests/services.sh stop >&2; fi
}
trap cleanup EXIT
tag="$(date +%s)"
workers() { # workers COUNT POOL
    for i in $(seq 1 "$1"); do
        "$BUILD/bin/mutirao-worker" --pools "$2" --id "bench-$2-$i" --log-level warn &
        pids+=($!)
    done
}
stop_workers() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
}
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(uname -r)"
for w in 1 2; do
    pool="fb$w-$tag"
    workers "$w" "$pool"
    echo "## throughput, $w worker process(es), $N trivial tasks"
    FLEET_BENCH_MODE=throughput FLEET_BENCH_N="$N" FLEET_BENCH_POOL="$pool" \
        "$BUILD/bin/mutirao" run --fleet bench/fleet.lua
    stop_workers
done
pool="fl-$tag"
workers 1 "$pool"
echo "## latency, 1 worker process"
FLEET_BENCH_MODE=latency FLEET_BENCH_N=2000 FLEET_BENCH_POOL="$pool" \
    "$BUILD/bin/mutirao" run --fleet bench/fleet.lua
stop_workers
