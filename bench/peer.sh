#!/usr/bin/env bash
# bench/peer.sh [RUNS] [N]: mutirao's fleet and its peer BullMQ side by side,
# runs interleaved (mutirao, BullMQ, mutirao, BullMQ, ...: RUNS pairs,
# default 5) so that both see the same load on a shared machine, both on
# the same redis-server (tests/services.sh's; mutirao also uses its Kafka).
# Modes (PEER_MODES, default "throughput open idle"):
#   throughput  N trivial tasks (default 50000). mutirao: one
#               mutirao-worker and `mutirao run --fleet bench/fleet.lua`
#               submitting all N at once; BullMQ: its own benchmark's style,
#               N jobs added first with addBulk, then one Worker in the same
#               node process, concurrency 50 (bench/bullmq/throughput.js).
#   open        open loop at PEER_RATE tasks/s (default 1000) for
#               PEER_DURATION_S s (default 20), each task awaited by its own
#               goroutine / promise; submit-to-result latency p50, p99, max,
#               and over the first 2 s (bench/fleet.lua mode open,
#               bench/bullmq/latency.js: worker in its own node process).
#   idle        open, after the pool / queue sat idle PEER_IDLE_S s
#               (default 30) after its warm-up (open: 2 s).
# For every run: tasks/s or latencies, CPU µs per task summed over every
# process involved (mutirao: producer, worker, redis-server, the Kafka
# broker's JVM; BullMQ: node process(es), redis-server), each process's
# share, and the 1-minute load average. CPU is utime+stime from
# /proc/PID/stat (the running benchmark reads it for every process at the
# start and the end of its measured window, so startup, warm-up and idle
# time are not counted); the servers' PIDs are found from the ports of
# MUTIRAO_TEST_REDIS_URL / MUTIRAO_TEST_KAFKA_BROKERS with `ss -ltnp`
# (needs root, or the same user as the servers). At the end: median (min-max)
# of each figure for each side and the ratio of medians mutirao / BullMQ.
# PEER_KAFKA_REQUESTS=1 (open and idle modes): also what mutirao asks of the
# Kafka broker, requests per task by type (Produce, Fetch, Metadata,
# OffsetCommit, Heartbeat, ...) counted by the broker itself from 4 s after
# the worker's start plus the idle time to 1 s before the loop's end (inside
# the loop when the warm-up takes at most 4 s; bench/kafka_requests.java,
# needs a JDK; it attaches to the broker's JVM, so the same user or root).
#
# From a fresh clone (Debian 12):
#   scripts/setup.sh                       # builds build/
#   bash bench/bullmq/install.sh           # npm ci: bullmq, ioredis
#   bash tests/services.sh start && source build-services/env.sh
#   bash bench/peer.sh 5 50000
# BUILD=DIR picks another build (default build/). Services already running
# are used as they are (MUTIRAO_TEST_* set, or build-services/env.sh);
# otherwise this script starts them and stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUNS="${1:-5}" N="${2:-50000}"
read -r -a MODES <<<"${PEER_MODES:-throughput open idle}"
RATE="${PEER_RATE:-1000}" DURATION="${PEER_DURATION_S:-20}" IDLE="${PEER_IDLE_S:-30}"
BUILD="$(realpath "${BUILD:-build}")"
HZ="$(getconf CLK_TCK)"

for f in "$BUILD/bin/mutirao" "$BUILD/bin/mutirao-worker"; do
    [[ -x "$f" ]] || {
        echo "peer: $f not found (build first, or BUILD=DIR)" >&2
        exit 2
    }
done
if [[ ! -d bench/bullmq/node_modules/bullmq ]]; then
    bash bench/bullmq/install.sh >&2
fi

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
work="$(mktemp -d)"
log="$work/peer.log"
wpid=""
cleanup() {
    if [[ -n "$wpid" ]]; then
        kill "$wpid" 2>/dev/null || true
        wait "$wpid" 2>/dev/null || true
    fi
    if [[ -f "$work/redis/redis.pid" ]]; then kill "$(cat "$work/redis/redis.pid")" 2>/dev/null || true; fi
    if [[ -n "$started" ]]; then bash "$ROOT/tests/services.sh" stop >&2; fi
}
trap cleanup EXIT
if [[ "${PEER_REDIS:-shared}" == private ]]; then
    # a redis-server of our own on a free port: its CPU is this benchmark's alone
    mkdir "$work/redis"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis" \
        --daemonize yes --pidfile "$work/redis/redis.pid" --logfile "$work/redis/redis.log"
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    MUTIRAO_TEST_REDIS_URL="redis://127.0.0.1:$port"
fi
export MUTIRAO_KAFKA_BROKERS="$MUTIRAO_TEST_KAFKA_BROKERS" MUTIRAO_REDIS_URL="$MUTIRAO_TEST_REDIS_URL"
export MUTIRAO_TEST_REDIS_URL
# no configuration file: the build reads only the environment
unset MUTIRAO_CONFIG

port_pid() { # port_pid PORT: the pid of the process listening on PORT
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1
}
redis_port="$(sed -E 's#^[a-z]+://([^@/]*@)?[^:/]+:([0-9]+).*#\2#' <<<"$MUTIRAO_TEST_REDIS_URL")"
kafka_first="${MUTIRAO_TEST_KAFKA_BROKERS%%,*}"
rpid="$(port_pid "$redis_port")"
kpid="$(port_pid "${kafka_first##*:}")"
if [[ -z "$rpid" || -z "$kpid" ]]; then
    echo "peer: warning: redis-server pid '${rpid}', Kafka pid '${kpid}' (ss -ltnp found no listener):" \
        "their CPU is not counted" >&2
fi
servers_mutirao="${rpid:+redis=$rpid}${kpid:+ kafka=$kpid}"
# the broker's CPU during a BullMQ run (which does not use Kafka) is what
# the other users of a shared broker cost it: shown as kafkabg, not summed
servers_bullmq="${rpid:+redis=$rpid}${kpid:+ kafkabg=$kpid}"
tag="peer$(date +%s)-$$"
lua="$ROOT/bench/fleet.lua"

# run_mutirao MODE RUN: one run of mutirao; prints its RESULT line (or nothing)
run_mutirao() {
    local pool="$tag-$1-$2" env=()
    case "$1" in
    throughput) env=(FLEET_BENCH_MODE=throughput FLEET_BENCH_N="$N" FLEET_BENCH_SETTLE_MS=2000) ;;
    open) env=(FLEET_BENCH_MODE=open FLEET_BENCH_SETTLE_MS=2000) ;;
    idle) env=(FLEET_BENCH_MODE=open FLEET_BENCH_SETTLE_MS=$((IDLE * 1000))) ;;
    esac
    "$BUILD/bin/mutirao-worker" --pools "$pool" --id "$pool" --log-level warn >>"$log" 2>&1 &
    wpid=$!
    local rc=0 kreq=""
    rm -f "$work/kreq"
    if [[ -n "${PEER_KAFKA_REQUESTS:-}" && -n "$kpid" && "$1" != throughput ]] && ((DURATION > 5)); then
        # the open loop starts after the warm-up and the settle time
        local settle=2
        [[ "$1" == idle ]] && settle=$IDLE
        java "$ROOT/bench/kafka_requests.java" "$kpid" $((settle + 4)) $((DURATION - 5)) \
            >"$work/kreq" 2>>"$log" &
        kreq=$!
    fi
    (cd "$work" && env "${env[@]}" FLEET_BENCH_RATE="$RATE" FLEET_BENCH_DURATION_S="$DURATION" \
        FLEET_BENCH_POOL="$pool" FLEET_BENCH_CPU_PIDS="$servers_mutirao worker=$wpid" \
        timeout 300 "$BUILD/bin/mutirao" run --fleet "$lua") >"$work/out" 2>>"$log" || rc=$?
    kill "$wpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
    wpid=""
    if [[ -n "$kreq" ]]; then
        wait "$kreq" 2>/dev/null || true
        # requests/s over the rate: per task (total, then each type)
        awk -v rate="$RATE" '/^KAFKA_REQUESTS/ {
            out = ""
            for (i = 3; i <= NF; i++) {
                split($i, kv, "="); sub("/s", "", kv[2])
                if (kv[1] !~ /_in$/) out = out sprintf(" %s=%.3f", kv[1], kv[2] / rate)
            }
            print "peer: kafka requests per task:" out
        }' "$work/kreq" >>"$work/out"
    fi
    done_run mutirao "$1" "$2" "$rc"
}

# done_run SIDE MODE RUN STATUS: logs the run's output and status, prints
# its RESULT line
done_run() {
    {
        echo "peer: $1 $2 run $3: exit status $4"
        cat "$work/out"
    } >>"$log"
    grep '^RESULT' "$work/out" || true
}

# run_bullmq MODE RUN: one run of BullMQ; prints its RESULT line (or nothing)
run_bullmq() {
    local queue="$tag-$1-$2" rc=0
    case "$1" in
    throughput)
        BULLMQ_QUEUE="$queue" BENCH_CPU_PIDS="$servers_bullmq" \
            timeout 300 node bench/bullmq/throughput.js "$N" >"$work/out" 2>>"$log" || rc=$?
        ;;
    open | idle)
        local idle_ms=2000
        [[ "$1" == idle ]] && idle_ms=$((IDLE * 1000))
        BULLMQ_QUEUE="$queue" BENCH_CPU_PIDS="$servers_bullmq" BULLMQ_RATE="$RATE" \
            BULLMQ_DURATION_S="$DURATION" BULLMQ_IDLE_MS="$idle_ms" \
            timeout 300 node bench/bullmq/latency.js >"$work/out" 2>>"$log" || rc=$?
        ;;
    esac
    if ((rc != 0)); then # a run that did not finish leaves its queue's keys
        redis-cli -u "$MUTIRAO_TEST_REDIS_URL" --scan --pattern "bull:$queue:*" |
            xargs -r redis-cli -u "$MUTIRAO_TEST_REDIS_URL" del >/dev/null 2>&1 || true
    fi
    done_run bullmq "$1" "$2" "$rc"
}

# figures RESULT-LINE: "KEY=VALUE ..." with the CPU of the run in µs per task:
# cpu (all processes), cpu_self, cpu_worker, cpu_redis, cpu_kafka (and
# cpu_kafkabg, not in cpu)
figures() {
    awk -v hz="$HZ" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        n = v["tasks"]; total = v["cpu_self_us"]; out = ""
        for (k in v) {
            if (k ~ /^cpu_ticks_/) {
                us = v[k] * 1e6 / hz
                if (k !~ /bg$/) total += us
                out = out sprintf(" cpu_%s=%.1f", substr(k, 11), us / n)
            } else if (k !~ /^cpu_/) out = out " " k "=" v[k]
        }
        printf "cpu=%.1f cpu_self=%.1f%s\n", total / n, v["cpu_self_us"] / n, out
    }' <<<"$1"
}
get() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

# stats VALUES...: "median (min-max)" (the median of an even count is the
# mean of the middle two)
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        f = (m >= 100) ? "%.0f" : "%.2f"
        printf f " (" f "-" f ")\n", m, v[1], v[NR]
    }'
}
median() { stats "$@" | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }

echo "# bench/peer.sh $RUNS $N  ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r))"
echo "# mutirao: $BUILD (tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')); BullMQ" \
    "$(node -p 'require("./bench/bullmq/node_modules/bullmq/package.json").version'), node $(node --version);" \
    "redis-server (${PEER_REDIS:-shared}) pid ${rpid:-?}, Kafka pid ${kpid:-?}; modes ${MODES[*]}; rate $RATE/s for ${DURATION}s, idle ${IDLE}s"
echo "# logs: $log"

for mode in "${MODES[@]}"; do
    case "$mode" in
    throughput) echo "## throughput: $N trivial tasks, one worker; $RUNS pairs, interleaved" ;;
    open) echo "## open loop: $RATE tasks/s for ${DURATION} s after 2 s idle; $RUNS pairs, interleaved" ;;
    idle) echo "## open loop: $RATE tasks/s for ${DURATION} s after ${IDLE} s idle; $RUNS pairs, interleaved" ;;
    *)
        echo "peer: unknown mode $mode" >&2
        exit 2
        ;;
    esac
    declare -A col=()
    keys=(rate process_rate p50_ms p99_ms max_ms head_p99_ms head_max_ms cpu cpu_self cpu_worker cpu_redis cpu_kafka cpu_kafkabg load)
    for i in $(seq 1 "$RUNS"); do
        for side in mutirao bullmq; do
            line="$("run_$side" "$mode" "$i")"
            load="$(cut -d' ' -f1 /proc/loadavg)"
            if [[ -z "$line" ]]; then
                echo "run $i $side: no result (see $log); left out"
                continue
            fi
            fig="$(figures "$line") load=$load"
            for k in "${keys[@]}"; do
                v="$(get "$k" "$fig")"
                [[ -n "$v" ]] && col[$side.$k]="${col[$side.$k]:-} $v"
            done
            share="producer/node $(get cpu_self "$fig")"
            [[ -n "$(get cpu_worker "$fig")" ]] && share+=", worker $(get cpu_worker "$fig")"
            share+=", redis $(get cpu_redis "$fig")"
            [[ -n "$(get cpu_kafka "$fig")" ]] && share+=", kafka $(get cpu_kafka "$fig")"
            [[ -n "$(get cpu_kafkabg "$fig")" ]] && share+="; not summed: kafka's other users $(get cpu_kafkabg "$fig")"
            if [[ "$mode" == throughput ]]; then
                what="$(get rate "$fig") tasks/s"
                [[ -n "$(get process_rate "$fig")" ]] && what+=" (processing alone $(get process_rate "$fig")/s)"
            else
                what="p50 $(get p50_ms "$fig") ms, p99 $(get p99_ms "$fig") ms, max $(get max_ms "$fig") ms;"
                what+=" first 2 s: p99 $(get head_p99_ms "$fig") ms, max $(get head_max_ms "$fig") ms"
            fi
            printf 'run %d %-7s %s; CPU %s µs/task (%s); load %s\n' "$i" "$side" "$what" \
                "$(get cpu "$fig")" "$share" "$load"
            if [[ "$side" == mutirao ]] && grep -q '^peer: kafka requests' "$work/out"; then
                sed -n 's/^peer: kafka requests per task:/      kafka requests per task:/p' "$work/out"
            fi
        done
    done
    echo "### $mode: median (min-max) over the runs"
    for side in mutirao bullmq; do
        for k in "${keys[@]}"; do
            [[ -n "${col[$side.$k]:-}" ]] || continue
            read -r -a vals <<<"${col[$side.$k]}"
            printf '%-7s %-12s %s  (%d runs)\n' "$side" "$k" "$(stats "${vals[@]}")" "${#vals[@]}"
        done
    done
    echo "### $mode: ratio of medians, mutirao / BullMQ"
    med() {
        local v
        read -r -a v <<<"${col[$1.$2]:-}"
        ((${#v[@]})) && median "${v[@]}" || echo 0
    }
    if [[ "$mode" == throughput ]]; then
        echo "tasks/s: $(ratio "$(med mutirao rate)" "$(med bullmq rate)") (mutirao end to end / BullMQ end to end, addBulk included)"
        echo "tasks/s: $(ratio "$(med mutirao rate)" "$(med bullmq process_rate)") (mutirao end to end / BullMQ processing alone, as its own benchmark counts)"
    else
        for k in p50_ms p99_ms max_ms head_p99_ms head_max_ms; do
            echo "$k: $(ratio "$(med mutirao "$k")" "$(med bullmq "$k")")"
        done
    fi
    echo "CPU µs/task: $(ratio "$(med mutirao cpu)" "$(med bullmq cpu)")"
    unset col
done
