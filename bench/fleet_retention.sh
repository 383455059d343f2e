#!/usr/bin/env bash
# bench/fleet_retention.sh [N]: what Redis keeps after N fleet tasks whose
# results are all awaited (default 1,000,000): used_memory and key count of
# a private redis-server (started here on a free port, so nothing else
# writes to it) before the run, right after it, and the keys left. Kafka is
# the one of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS, or started).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
N="${1:-1000000}"
if [[ -z "${MUTIRAO_TEST_KAFKA_BROKERS:-}" && -f build-services/env.sh ]]; then
    source build-services/env.sh
fi
: "${MUTIRAO_TEST_KAFKA_BROKERS:?start the services first: bash tests/services.sh start}"
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
worker=""
cleanup() {
    [[ -n "$worker" ]] && kill "$worker" 2>/dev/null && wait "$worker" 2>/dev/null || true
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 50); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done
mem() { cli info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
export MUTIRAO_KAFKA_BROKERS="$MUTIRAO_TEST_KAFKA_BROKERS" MUTIRAO_REDIS_URL="redis://127.0.0.1:$port"
pool="retention-$(date +%s)"
"$BUILD/bin/mutirao-worker" --pools "$pool" --id "retention-$pool" --log-level warn &
worker=$!
before="$(mem)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis used_memory before: $before bytes, keys: $(cli dbsize)"
FLEET_BENCH_N="$N" FLEET_BENCH_POOL="$pool" "$BUILD/bin/mutirao" run --fleet bench/fleet_retention.lua
sleep 1
after="$(mem)"
echo "redis used_memory after:  $after bytes, keys: $(cli dbsize)"
echo "difference: $(( (after - before) / 1024 )) KiB for $N tasks"
echo "keys left:"; cli --scan | sed -E 's/:[0-9]+$/:N/' | sort | uniq -c | sort -rn | head
