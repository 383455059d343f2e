#!/usr/bin/env bash
# scripts/fleet-up.sh [--workers N]: a local fleet on loopback, no Docker: a
# Kafka broker and a redis-server (tests/services.sh starts them: the same
# Maven-fetched broker the tests use, free ports, 127.0.0.1 only) and N
# mutirao-worker processes (default 2) serving every pool. Prints the
# variables to export (also in $DIR/env.sh). scripts/fleet-down.sh stops
# exactly what this started: the pids recorded under $DIR.
#   MUTIRAO_FLEET_DIR=/tmp/mutirao-fleet   state: pid files, logs, data
#   MUTIRAO_BIN=build/bin                  where mutirao-worker is
# Needs a build (cmake -S . -B build && cmake --build build) and what
# tests/services.sh needs (scripts/deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DIR="${MUTIRAO_FLEET_DIR:-/tmp/mutirao-fleet}"
BIN="${MUTIRAO_BIN:-$ROOT/build/bin}"
N=2
usage() { echo "usage: scripts/fleet-up.sh [--workers N]" >&2; }
while (($#)); do
    case "$1" in
    --workers)
        [[ $# -ge 2 ]] || { echo "fleet-up: --workers needs a number (see --help)" >&2; exit 2; }
        N="$2"
        shift 2
        ;;
    --workers=*)
        N="${1#--workers=}"
        shift
        ;;
    -h | --help)
        sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "fleet-up: unknown argument '$1' (see scripts/fleet-up.sh --help)" >&2
        exit 2
        ;;
    esac
done
if ! [[ "$N" =~ ^[0-9]+$ ]] || ((N < 1 || N > 64)); then
    echo "fleet-up: --workers expects 1 to 64, got '$N'" >&2
    exit 2
fi
if [[ ! -x "$BIN/mutirao-worker" ]]; then
    echo "fleet-up: no $BIN/mutirao-worker: build first (cmake -S . -B build && cmake --build build)" >&2
    exit 1
fi
if compgen -G "$DIR/worker-*.pid" >/dev/null; then
    echo "fleet-up: a fleet is already up in $DIR (scripts/fleet-down.sh stops it)" >&2
    exit 1
fi
mkdir -p "$DIR"
log() { echo "fleet-up: $*" >&2; }

# Kafka and Redis: tests/services.sh, its state under $DIR/services
if ! MUTIRAO_SERVICES_DIR="$DIR/services" bash tests/services.sh start >"$DIR/services.log" 2>&1; then
    cat "$DIR/services.log" >&2
    log "Kafka or Redis did not start; stopping what did"
    MUTIRAO_SERVICES_DIR="$DIR/services" bash tests/services.sh stop >/dev/null 2>&1 || true
    exit 1
fi
# shellcheck disable=SC1091
source "$DIR/services/env.sh"
brokers="$MUTIRAO_TEST_KAFKA_BROKERS" redis="$MUTIRAO_TEST_REDIS_URL"
log "kafka on $brokers, redis on $redis"

# the workers: this fleet's addresses only, not a configuration file of
# the current directory or $MUTIRAO_CONFIG
for ((i = 1; i <= N; i++)); do
    (
        cd "$DIR"
        unset MUTIRAO_CONFIG
        export MUTIRAO_KAFKA_BROKERS="$brokers" MUTIRAO_REDIS_URL="$redis"
        exec "$BIN/mutirao-worker" --id "fleet-$(hostname -s)-$i" </dev/null >"$DIR/worker-$i.log" 2>&1
    ) &
    echo $! >"$DIR/worker-$i.pid"
done
# each one says so once Kafka and Redis answer
deadline=$((SECONDS + 60))
for ((i = 1; i <= N; i++)); do
    until grep -q "consuming" "$DIR/worker-$i.log" 2>/dev/null; do
        if ! kill -0 "$(cat "$DIR/worker-$i.pid")" 2>/dev/null || ((SECONDS > deadline)); then
            cat "$DIR/worker-$i.log" >&2
            log "worker $i did not start; scripts/fleet-down.sh stops the rest"
            exit 1
        fi
        sleep 0.1
    done
done
cat >"$DIR/env.sh" <<ENV
export MUTIRAO_KAFKA_BROKERS=$brokers
export MUTIRAO_REDIS_URL=$redis
ENV
log "$N worker(s) up (logs: $DIR/worker-*.log); export these (or: source $DIR/env.sh):"
cat "$DIR/env.sh"
