#!/usr/bin/env bash
# bench/fleet_scale.sh [ROUNDS] [N] [WORK]: does a second mutirao-worker
# process add throughput when a core is free? Tasks that each loop WORK
# times (default 200000: CPU-bound, so the workers are the bottleneck, not
# the producer, Redis or Kafka), N of them per run (default 2000), runs
# interleaved (ROUNDS pairs, default 5):
#   A  one worker pinned to core 1 (`taskset -c 1`)
#   B  the same plus a second worker pinned to core 0 (`taskset -c 0`)
# The producer, Redis and Kafka are not pinned. Prints each run's tasks/s,
# then the median (min-max) of each side, the ratio B / A and the load
# average. Needs 2+ cores and the services of tests/services.sh (used when
# MUTIRAO_TEST_* are set or build-services/env.sh exists, else started and
# stopped here). BUILD=DIR picks another build (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ROUNDS="${1:-5}" N="${2:-2000}" WORK="${3:-200000}"
BUILD="$(realpath "${BUILD:-build}")"
[[ -x "$BUILD/bin/mutirao-worker" ]] || {
    echo "fleet_scale: $BUILD/bin/mutirao-worker not found (build first, or BUILD=DIR)" >&2
    exit 2
}
(($(nproc) >= 2)) || {
    echo "fleet_scale: needs at least 2 cores" >&2
    exit 2
}
started=""
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" && -f build-services/env.sh ]]; then
    # shellcheck disable=SC1091
    source build-services/env.sh
fi
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" ]] || ! redis-cli -u "$MUTIRAO_TEST_REDIS_URL" ping >/dev/null 2>&1; then
    bash tests/services.sh start >&2
    # shellcheck disable=SC1091
    source build-services/env.sh
    started=1
fi
export MUTIRAO_KAFKA_BROKERS="$MUTIRAO_TEST_KAFKA_BROKERS" MUTIRAO_REDIS_URL="$MUTIRAO_TEST_REDIS_URL"
unset MUTIRAO_CONFIG
work="$(mktemp -d)"
pids=()
stop_workers() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    stop_workers
    rm -rf "$work"
    if [[ -n "$started" ]]; then bash "$ROOT/tests/services.sh" stop >&2; fi
}
trap cleanup EXIT

# run SIDE ROUND: one run; prints its tasks/s
run() {
    local pool="scale-$$-$1-$2"
    pids=()
    taskset -c 1 "$BUILD/bin/mutirao-worker" --pools "$pool" --id "$pool-1" --log-level warn \
        >>"$work/log" 2>&1 &
    pids+=($!)
    if [[ "$1" == B ]]; then
        taskset -c 0 "$BUILD/bin/mutirao-worker" --pools "$pool" --id "$pool-2" --log-level warn \
            >>"$work/log" 2>&1 &
        pids+=($!)
    fi
    local out
    out="$(cd "$work" && FLEET_BENCH_MODE=throughput FLEET_BENCH_N="$N" FLEET_BENCH_WORK="$WORK" \
        FLEET_BENCH_POOL="$pool" FLEET_BENCH_SETTLE_MS=4000 \
        timeout 600 "$BUILD/bin/mutirao" run --fleet "$ROOT/bench/fleet.lua" 2>>"$work/log" |
        sed -n 's/^RESULT .* rate=\([0-9]*\) .*/\1/p')"
    stop_workers
    [[ -n "$out" ]] || {
        echo "fleet_scale: run $1 $2 failed; log:" >&2
        tail -n 20 "$work/log" >&2
        exit 1
    }
    echo "$out"
}

echo "# bench/fleet_scale.sh $ROUNDS $N $WORK ($(date -u +%FT%TZ), $(nproc) cores," \
    "tree $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
a=() b=()
for r in $(seq 1 "$ROUNDS"); do
    x="$(run A "$r")"
    a+=("$x")
    echo "round $r A (1 worker, core 1)       $x tasks/s; load $(cut -d' ' -f1 /proc/loadavg)"
    y="$(run B "$r")"
    b+=("$y")
    echo "round $r B (2 workers, cores 1, 0)  $y tasks/s; load $(cut -d' ' -f1 /proc/loadavg)"
done
python3 - "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print("A one worker   %.0f (%.0f-%.0f) tasks/s" % (ma, min(a), max(a)))
print("B two workers  %.0f (%.0f-%.0f) tasks/s" % (mb, min(b), max(b)))
print("B / A: %.2f (median of ratios per round %.2f)" % (
    mb / ma, statistics.median(y / x for x, y in zip(a, b))))
PY
