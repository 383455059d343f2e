#!/usr/bin/env bash
# bench/fleet_ab.sh BUILD_A BUILD_B [N] [RUNS]: fleet throughput of two builds
# side by side, runs interleaved A B A B ...: per run, one mutirao-worker and
# one `mutirao run --fleet bench/fleet.lua` producer of that build, N trivial
# tasks (default 50000), RUNS pairs (default 5); prints each run's tasks/s
# and CPU µs per task of the producer, the worker, redis-server and the Kafka
# broker (utime+stime over the measured window; the servers found from their
# ports with `ss -ltnp`), then the median (min-max) per build (a run that did
# not finish within 300 s, e.g. on a machine shared with other workers of the
# same group, is left out). Needs the services of tests/services.sh
# (build-services/env.sh, or MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
A="$(realpath "$1")" B="$(realpath "$2")" N="${3:-50000}" RUNS="${4:-5}"
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" ]]; then
    # shellcheck disable=SC1091
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
port_pid() { # the pid listening on local port $1, if any
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}
rport="$(sed -E 's#^[a-z]+://([^@/]*@)?[^:/]+:([0-9]+).*#\2#' <<<"$MUTIRAO_TEST_REDIS_URL")"
kfirst="${MUTIRAO_TEST_KAFKA_BROKERS%%,*}"
rpid="$(port_pid "$rport")" kpid="$(port_pid "${kfirst##*:}")"
hz="$(getconf CLK_TCK)"
one() { # one BUILD RUN: prints "tasks/s producer worker redis kafka" (CPU µs per task)
    local pool="$tag-$2-$RANDOM"
    "$1/bin/mutirao-worker" --pools "$pool" --id "$pool" --log-level warn >/dev/null 2>&1 &
    wpid=$!
    FLEET_BENCH_MODE=throughput FLEET_BENCH_N="$N" FLEET_BENCH_POOL="$pool" \
        FLEET_BENCH_SETTLE_MS=2000 \
        FLEET_BENCH_CPU_PIDS="worker=$wpid${rpid:+ redis=$rpid}${kpid:+ kafka=$kpid}" \
        timeout 300 "$1/bin/mutirao" run --fleet "$lua" 2>/dev/null |
        awk -v n="$N" -v hz="$hz" '/^RESULT/ {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            us = 1e6 / hz / n
            printf "%s %.1f %.1f %.1f %.1f\n", f["rate"], f["cpu_self_us"] / n,
                f["cpu_ticks_worker"] * us, f["cpu_ticks_redis"] * us, f["cpu_ticks_kafka"] * us }'
    kill "$wpid"
    wait "$wpid" 2>/dev/null || true
    wpid=""
}
ra=() rb=()
for i in $(seq 1 "$RUNS"); do
    a=$(one "$A" "$i") && [[ -n "$a" ]] && ra+=("$a")
    b=$(one "$B" "$i") && [[ -n "$b" ]] && rb+=("$b")
    echo "run $i: A ${a:-failed}, B ${b:-failed}  (tasks/s, CPU µs/task: producer worker redis kafka; load $(cut -d' ' -f1 /proc/loadavg))"
done
summary() { # summary NAME RUN...: median (min-max) of each column
    local name="$1"
    shift
    printf '%s\n' "$@" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
names = ["tasks/s", "producer", "worker", "redis", "kafka"]
cols = list(zip(*rows))
print(sys.argv[1] + " (%d runs): " % len(rows) + ", ".join(
    "%s %s (%s-%s)" % (n, *(("%.0f" if n == "tasks/s" else "%.1f") % v
                           for v in (statistics.median(c), min(c), max(c))))
    for n, c in zip(names, cols)) + "; CPU us/task in all %.1f" % sum(
    statistics.median(c) for c in cols[1:]))' "$name"
}
summary "A $A" "${ra[@]}"
summary "B $B" "${rb[@]}"
echo "N=$N"
