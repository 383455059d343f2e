#!/usr/bin/env bash
# tests/services.sh start|stop|status: the loopback services the test suite
# needs, started by .ci/run (and by scripts/test.sh when run by hand) and
# always stopped by them through a trap.
#
# ---------------------------------------------------------------------------
# SERVICES HOOK. This stage needs no service, so SERVICES is empty and start
# and stop do nothing. To turn one on later, add it to the default below
# (e.g. "redis kafka") and, for Kafka, fill in start_kafka/stop_kafka.
# Each service:
#   - listens on 127.0.0.1 only, on a port of its own (not the default, so a
#     system redis-server already on 6379 is never touched);
#   - keeps its pid, log and data under $STATE_DIR (build-services/);
#   - writes the variables the tests read into $STATE_DIR/env.sh, which
#     scripts/test.sh sources before running ctest.
# Only processes whose pid this script recorded are ever stopped.
# ---------------------------------------------------------------------------
#   MUTIRAO_SERVICES="redis kafka"   override the list (empty: none)
#   MUTIRAO_REDIS_PORT=6390          MUTIRAO_KAFKA_PORT=9392
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

SERVICES_DEFAULT=""   # later stage: "redis kafka"
read -r -a SERVICES <<<"${MUTIRAO_SERVICES-$SERVICES_DEFAULT}"

STATE_DIR="${MUTIRAO_SERVICES_DIR:-$ROOT/build-services}"
ENV_FILE="$STATE_DIR/env.sh"
REDIS_PORT="${MUTIRAO_REDIS_PORT:-6390}"
KAFKA_PORT="${MUTIRAO_KAFKA_PORT:-9392}"

log() { echo "services: $*"; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local secs="$1" what="$2"
    shift 2
    local i
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "$what did not come up in ${secs}s"
    return 1
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# stop_pidfile NAME FILE: TERM the recorded pid, KILL after 10 s.
stop_pidfile() {
    local name="$1" file="$2" pid i
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    if pid_alive "$pid"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            log "$name did not stop, killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

# --- redis ------------------------------------------------------------------
start_redis() {
    local dir="$STATE_DIR/redis" pidfile="$STATE_DIR/redis.pid"
    if [[ -f "$pidfile" ]] && pid_alive "$(cat "$pidfile")"; then
        log "redis already running (pid $(cat "$pidfile"))"
    else
        mkdir -p "$dir"
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
            --dir "$dir" --logfile "$dir/redis.log" --pidfile "$pidfile" \
            --daemonize yes </dev/null
        wait_for 20 "redis on 127.0.0.1:$REDIS_PORT" \
            bash -c "redis-cli -h 127.0.0.1 -p '$REDIS_PORT' ping | grep -q PONG" || {
            tail -n 20 "$dir/redis.log" >&2 || true
            return 1
        }
        log "redis up on 127.0.0.1:$REDIS_PORT (pid $(cat "$pidfile"))"
    fi
    echo "export MUTIRAO_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT" >>"$ENV_FILE"
}
stop_redis() { stop_pidfile redis "$STATE_DIR/redis.pid"; }

# --- kafka ------------------------------------------------------------------
# Later stage: start a single-node KRaft broker on 127.0.0.1:$KAFKA_PORT in
# the background, record its pid in $STATE_DIR/kafka.pid, wait until it
# answers, then append MUTIRAO_TEST_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT to
# $ENV_FILE. Java and Maven are installed by scripts/deps.sh.
start_kafka() {
    log "kafka: not wired yet (tests/services.sh start_kafka)"
    return 1
}
stop_kafka() { stop_pidfile kafka "$STATE_DIR/kafka.pid"; }

# --- driver -----------------------------------------------------------------
cmd_start() {
    mkdir -p "$STATE_DIR"
    : >"$ENV_FILE"
    if ((${#SERVICES[@]} == 0)); then
        log "none needed"
        return 0
    fi
    local s
    for s in "${SERVICES[@]}"; do
        case "$s" in
        redis | kafka) "start_$s" ;;
        *)
            log "unknown service '$s'"
            return 1
            ;;
        esac
    done
}

cmd_stop() {
    # Stop everything this script may have started, whatever the list says
    # now: a pidfile exists only for what we started.
    stop_kafka
    stop_redis
    rm -f "$ENV_FILE"
}

cmd_status() {
    local s f
    for s in redis kafka; do
        f="$STATE_DIR/$s.pid"
        if [[ -f "$f" ]] && pid_alive "$(cat "$f")"; then
            log "$s running (pid $(cat "$f"))"
        else
            log "$s not running"
        fi
    done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
