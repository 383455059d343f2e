#!/usr/bin/env bash
# bench/fleet_callgrind.sh BUILD SIDE N [OUT]: instructions of one side of the
# fleet under callgrind (valgrind --tool=callgrind, all threads), the other
# side running normally: SIDE producer (`mutirao run --fleet bench/fleet.lua`
# under valgrind, a mutirao-worker of BUILD beside it) or worker (the
# mutirao-worker under valgrind); N trivial tasks (FLEET_BENCH_MODE
# throughput), a pool of its own. Prints the total and, per task, the
# inclusive instructions of the functions of FUNCS (default: the event loop
# of the main thread, uv_run, and the hot paths of that side). OUT: the
# callgrind file (default a temporary one). Needs the services of
# tests/services.sh (build-services/env.sh, or MUTIRAO_TEST_KAFKA_BROKERS /
# MUTIRAO_TEST_REDIS_URL). The producer's totals move with timing (its
# Kafka and Redis client threads poll): uv_run per task is the steadier
# figure there.
set -euo pipefail
cd "$(dirname "$0")/.."
B="$(realpath "$1")" side="$2" N="$3"
out="$(realpath -m "${4:-$(mktemp -u /tmp/fleet-callgrind.XXXXXX)}")"
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" ]]; then
    # shellcheck disable=SC1091
    source build-services/env.sh
fi
lua="$PWD/bench/fleet.lua"
unset MUTIRAO_CONFIG
export MUTIRAO_KAFKA_BROKERS="$MUTIRAO_TEST_KAFKA_BROKERS" MUTIRAO_REDIS_URL="$MUTIRAO_TEST_REDIS_URL"
cd "$(mktemp -d)"
pool="cg-$side-$(date +%s)-$RANDOM"
vg=(valgrind --tool=callgrind "--callgrind-out-file=$out")
export FLEET_BENCH_MODE=throughput FLEET_BENCH_N="$N" FLEET_BENCH_POOL="$pool"
if [[ $side == worker ]]; then
    "${vg[@]}" "$B/bin/mutirao-worker" --pools "$pool" --id "$pool" --log-level warn >/dev/null 2>&1 &
    wpid=$!
    sleep 3
    FLEET_BENCH_SETTLE_MS=4000 timeout 600 "$B/bin/mutirao" run --fleet "$lua" 2>/dev/null | grep RESULT
    funcs="${FUNCS:-uv_run codec_decode envelope_task_decode envelope_result_encode parse_id}"
else
    "$B/bin/mutirao-worker" --pools "$pool" --id "$pool" --log-level warn >/dev/null 2>&1 &
    wpid=$!
    FLEET_BENCH_SETTLE_MS=2000 timeout 600 "${vg[@]}" "$B/bin/mutirao" run --fleet "$lua" 2>/dev/null |
        grep RESULT
    funcs="${FUNCS:-uv_run envelope_task_encode envelope_result_decode flush_submits hash_id parse_id}"
fi
kill "$wpid"
wait "$wpid" || true
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk -v n="$N" -v funcs="$funcs" -v out="$out" '
    BEGIN { split(funcs, want, " "); for (i in want) need[want[i]] = 1 }
    /PROGRAM TOTALS/ { v = $1; gsub(",", "", v); printf "%s: %.1f M instructions, %.0f per task\n", out, v / 1e6, v / n }
    {
        # "IR (PCT)  file:function [object]": the first line of each function
        if (match($0, /:[A-Za-z_0-9]+( |$)/)) {
            f = substr($0, RSTART + 1, RLENGTH - 1); sub(/ $/, "", f)
            if ((f in need) && !(f in done) && $0 !~ /\)  \//) {
                v = $1; gsub(",", "", v); done[f] = 1
                printf "  %-24s %7.0f per task\n", f, v / n
            }
        }
    }'
