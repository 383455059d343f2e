#!/usr/bin/env bash
# scripts/fleet-down.sh: stops the fleet scripts/fleet-up.sh started: its
# workers (SIGTERM: running tasks finish, up to 30 s, then SIGKILL), then its
# Kafka and Redis (tests/services.sh stop). Only the pids recorded under
# ${MUTIRAO_FLEET_DIR:-/tmp/mutirao-fleet} are stopped, and only while they
# are still those processes. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${MUTIRAO_FLEET_DIR:-/tmp/mutirao-fleet}"
log() { echo "fleet-down: $*" >&2; }
if [[ ! -d "$DIR" ]]; then
    log "no fleet in $DIR"
    exit 0
fi
# TERM them all at once, then wait for each
pids=()
for f in "$DIR"/worker-*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q mutirao-worker; then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    fi
    rm -f "$f"
done
deadline=$((SECONDS + 35))
for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "worker pid $pid did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
((${#pids[@]} == 0)) || log "stopped ${#pids[@]} worker(s)"
if [[ -d "$DIR/services" ]]; then
    MUTIRAO_SERVICES_DIR="$DIR/services" bash tests/services.sh stop >"$DIR/services-stop.log" 2>&1 ||
        { cat "$DIR/services-stop.log" >&2; exit 1; }
    log "stopped kafka and redis"
fi
rm -f "$DIR/env.sh"
