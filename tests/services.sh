#!/usr/bin/env bash
# tests/services.sh start|stop|status: the loopback services the test suite
# needs, started by .ci/run (and by scripts/test.sh when run by hand) and
# always stopped by them through a trap.
#
# ---------------------------------------------------------------------------
# SERVICES. Started by default: a redis-server and a single-node KRaft Apache
# Kafka broker (pinned below; jars fetched from Maven Central with `mvn` into
# a cache, offline afterwards). Each service:
#   - listens on 127.0.0.1 only, on a free port picked at start (never a
#     default port, so a system redis-server or Kafka is never touched);
#   - keeps its pid, log and data under $STATE_DIR (build-services/);
#   - writes the variables the tests read into $STATE_DIR/env.sh, which
#     scripts/test.sh sources before running ctest:
#       MUTIRAO_TEST_KAFKA_BROKERS=127.0.0.1:PORT
#       MUTIRAO_TEST_REDIS_URL=redis://127.0.0.1:PORT
# Only processes whose pid this script recorded are ever stopped; stop also
# removes the data directories and is safe to run twice.
# ---------------------------------------------------------------------------
#   MUTIRAO_SERVICES="redis kafka"   override the list (empty: none)
#   MUTIRAO_SERVICES_DIR=...         state dir (default build-services/)
#   MUTIRAO_REDIS_PORT= MUTIRAO_KAFKA_PORT= MUTIRAO_KAFKA_CONTROLLER_PORT=
#                                    fixed ports instead of free ones
#   MUTIRAO_CACHE=~/.cache/mutirao   where the Kafka jars are kept
#   MUTIRAO_KAFKA_START_TIMEOUT=90   seconds to wait for the broker
#   MUTIRAO_JAVA=java                the java launcher (17 or newer)
# Needs: redis-server, redis-cli, python3, java >= 17, mvn (first run only);
# scripts/deps.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

SERVICES_DEFAULT="redis kafka"
read -r -a SERVICES <<<"${MUTIRAO_SERVICES-$SERVICES_DEFAULT}"

STATE_DIR="${MUTIRAO_SERVICES_DIR:-$ROOT/build-services}"
ENV_FILE="$STATE_DIR/env.sh"
REDIS_PORT="${MUTIRAO_REDIS_PORT:-}"
KAFKA_PORT="${MUTIRAO_KAFKA_PORT:-}"
KAFKA_CONTROLLER_PORT="${MUTIRAO_KAFKA_CONTROLLER_PORT:-}"

# Pinned Kafka broker (Maven Central: org.apache.kafka:kafka_2.13) and the
# slf4j binding matching its slf4j-api (1.7.x: Kafka ships no binding).
KAFKA_VERSION="4.1.1"
SLF4J_VERSION="1.7.36"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
CACHE_DIR="${MUTIRAO_CACHE:-${HOME:-/tmp}/.cache/mutirao}"
KAFKA_LIB="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_START_TIMEOUT="${MUTIRAO_KAFKA_START_TIMEOUT:-90}"
JAVA="${MUTIRAO_JAVA:-java}"

log() { echo "services: $*"; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local secs="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "$what did not come up in ${secs}s"
    return 1
}

pid_alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# pid_is PID PATTERN: PID is alive and its command line contains PATTERN
# (guards against a recycled pid in a stale pidfile).
pid_is() {
    local pid="$1" pat="$2" cmd
    pid_alive "$pid" || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmd" == *"$pat"* ]]
}

# running NAME PATTERN: the pid recorded for NAME, if it is still that process.
running() {
    local file="$STATE_DIR/$1.pid" pid
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file" 2>/dev/null || true)"
    pid_is "$pid" "$2" && echo "$pid"
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1, one a line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
EOF
}

# tcp_open PORT: something accepts connections on 127.0.0.1:PORT.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pidfile NAME FILE PATTERN SECS: TERM the recorded pid (if it is still
# the process we started), wait for it, KILL after SECS seconds.
stop_pidfile() {
    local name="$1" file="$2" pat="$3" secs="$4" pid deadline
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    if pid_is "$pid" "$pat"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + secs))
        while pid_alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if pid_alive "$pid"; then
            log "$name did not stop in ${secs}s, killing pid $pid"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 5))
            while pid_alive "$pid" && ((SECONDS < deadline)); do
                sleep 0.1
            done
        fi
    elif [[ -n "$pid" ]]; then
        log "$name: recorded pid $pid is gone (or not ours); nothing to stop"
    fi
    rm -f "$file"
}

# --- redis ------------------------------------------------------------------
start_redis() {
    local dir="$STATE_DIR/redis" pidfile="$STATE_DIR/redis.pid" envf="$STATE_DIR/redis.env"
    local logf="$STATE_DIR/redis.log" pid port
    if pid="$(running redis redis-server)" && [[ -f "$envf" ]]; then
        log "redis already running (pid $pid)"
    else
        stop_redis
        command -v redis-server >/dev/null 2>&1 || {
            log "redis-server not found (scripts/deps.sh installs it)"
            return 1
        }
        port="${REDIS_PORT:-$(free_ports 1)}"
        rm -rf "$dir"
        mkdir -p "$dir"
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$dir" --daemonize no </dev/null >"$logf" 2>&1 &
        pid=$!
        echo "$pid" >"$pidfile"
        wait_for 20 "redis on 127.0.0.1:$port" \
            bash -c "redis-cli -h 127.0.0.1 -p '$port' ping | grep -q PONG" || {
            tail -n 20 "$logf" >&2 || true
            stop_redis
            return 1
        }
        echo "export MUTIRAO_TEST_REDIS_URL=redis://127.0.0.1:$port" >"$envf"
        log "redis up on 127.0.0.1:$port (pid $pid)"
    fi
    cat "$envf" >>"$ENV_FILE"
}
stop_redis() {
    stop_pidfile redis "$STATE_DIR/redis.pid" redis-server 10
    rm -rf "$STATE_DIR/redis" "$STATE_DIR/redis.env"
}

# --- kafka ------------------------------------------------------------------
# The jars: kafka_2.13 and its runtime dependencies plus slf4j-simple, copied
# by Maven into $KAFKA_LIB. Maven runs only while that directory is not
# complete (marker file written last, directory renamed into place).
kafka_jars_complete() {
    [[ -f "$KAFKA_LIB/.complete" && -f "$KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar" ]]
}

fetch_kafka() {
    if kafka_jars_complete; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || {
        log "mvn not found (scripts/deps.sh installs maven)"
        return 1
    }
    log "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIB"
    mkdir -p "$CACHE_DIR"
    local work
    work="$(mktemp -d "$CACHE_DIR/.kafka-$KAFKA_VERSION.XXXXXX")"
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mutirao.test</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    local n ok=0
    for n in 1 2 3; do
        if timeout 600 mvn -B -q -f "$work/pom.xml" \
            "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
            -DoutputDirectory="$work/lib" </dev/null >"$work/maven.log" 2>&1; then
            ok=1
            break
        fi
        log "mvn attempt $n failed:"
        tail -n 20 "$work/maven.log" >&2 || true
        sleep $((n * 5))
    done
    if ((!ok)) || [[ ! -f "$work/lib/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
        log "could not fetch Kafka $KAFKA_VERSION jars"
        rm -rf "$work"
        return 1
    fi
    cp "$work/pom.xml" "$work/lib/pom.xml"
    touch "$work/lib/.complete"
    if ! kafka_jars_complete; then # (a concurrent start may have won)
        rm -rf "$KAFKA_LIB"
        mv "$work/lib" "$KAFKA_LIB"
    fi
    rm -rf "$work"
    log "cached $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars in $KAFKA_LIB"
}

# Kafka 4.x needs Java 17 or newer.
check_java() {
    command -v "$JAVA" >/dev/null 2>&1 || {
        log "java not found (scripts/deps.sh installs default-jdk-headless)"
        return 1
    }
    local v
    v="$("$JAVA" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = *//p' | head -n 1)"
    v="${v#1.}"
    if [[ ! "$v" =~ ^[0-9]+$ ]] || ((v < 17)); then
        log "Kafka $KAFKA_VERSION needs Java 17 or newer; '$JAVA' is '${v:-unknown}'"
        return 1
    fi
}

kafka_started() {
    grep -q -E 'Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)' \
        "$STATE_DIR/kafka.log" && tcp_open "$1"
}

# start_kafka_once PORT CPORT: format a fresh log dir, start the broker in the
# background and wait until it answers. Returns 2 if a port was taken.
start_kafka_once() {
    local port="$1" cport="$2"
    local dir="$STATE_DIR/kafka" pidfile="$STATE_DIR/kafka.pid" logf="$STATE_DIR/kafka.log"
    local cp="$KAFKA_LIB/*" id pid deadline
    : >"$logf"
    rm -rf "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/server.properties" <<EOF
# Single-node KRaft broker+controller for mutirao's tests (tests/services.sh).
node.id=1
process.roles=broker,controller
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=8
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
    id="$("$JAVA" -cp "$cp" kafka.tools.StorageTool random-uuid 2>>"$logf" | tail -n 1)"
    if [[ ! "$id" =~ ^[A-Za-z0-9_-]{22}$ ]]; then
        log "kafka: StorageTool random-uuid gave '$id'"
        tail -n 20 "$logf" >&2 || true
        return 1
    fi
    if ! "$JAVA" -cp "$cp" kafka.tools.StorageTool format -t "$id" \
        -c "$dir/server.properties" >>"$logf" 2>&1; then
        log "kafka: formatting $dir/data failed"
        tail -n 30 "$logf" >&2 || true
        return 1
    fi
    "$JAVA" -Xmx512m -Xms64m -XX:+UseSerialGC -Djava.awt.headless=true \
        -cp "$cp" kafka.Kafka "$dir/server.properties" </dev/null >>"$logf" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if kafka_started "$port"; then
            echo "export MUTIRAO_TEST_KAFKA_BROKERS=127.0.0.1:$port" >"$STATE_DIR/kafka.env"
            log "kafka $KAFKA_VERSION up on 127.0.0.1:$port (controller $cport, pid $pid)"
            return 0
        fi
        pid_alive "$pid" || break
        sleep 0.2
    done
    if pid_alive "$pid"; then
        log "kafka did not come up in ${KAFKA_START_TIMEOUT}s; log tail ($logf):"
    else
        log "kafka exited during start; log tail ($logf):"
    fi
    tail -n 40 "$logf" >&2 || true
    if grep -q -E '^\[[^]]*\] (ERROR|FATAL)' "$logf"; then
        log "kafka: first errors in $logf:"
        grep -E '^\[[^]]*\] (ERROR|FATAL)|^Caused by:' "$logf" | head -n 10 >&2 || true
    fi
    stop_pidfile kafka "$pidfile" kafka.Kafka 10
    if grep -q -i 'address already in use' "$logf"; then
        return 2
    fi
    return 1
}

start_kafka() {
    local pid envf="$STATE_DIR/kafka.env" port cport try rc
    if pid="$(running kafka kafka.Kafka)" && [[ -f "$envf" ]]; then
        log "kafka already running (pid $pid)"
    else
        stop_kafka
        check_java
        fetch_kafka
        for try in 1 2 3; do
            local ports=()
            mapfile -t ports < <(free_ports 2)
            port="${KAFKA_PORT:-${ports[0]}}"
            cport="${KAFKA_CONTROLLER_PORT:-${ports[1]}}"
            rc=0
            start_kafka_once "$port" "$cport" || rc=$?
            if ((rc == 0)); then
                break
            fi
            if ((rc != 2)) || [[ -n "$KAFKA_PORT$KAFKA_CONTROLLER_PORT" ]]; then
                return 1
            fi
            log "kafka: a port was taken (try $try), picking new ones"
        done
        ((rc == 0)) || return 1
    fi
    cat "$envf" >>"$ENV_FILE"
}
stop_kafka() {
    stop_pidfile kafka "$STATE_DIR/kafka.pid" kafka.Kafka 30
    rm -rf "$STATE_DIR/kafka" "$STATE_DIR/kafka.env"
}

# --- driver -----------------------------------------------------------------
cmd_start() {
    mkdir -p "$STATE_DIR"
    : >"$ENV_FILE"
    if ((${#SERVICES[@]} == 0)); then
        log "none needed"
        return 0
    fi
    local s t0=$SECONDS
    for s in "${SERVICES[@]}"; do
        case "$s" in
        redis | kafka) "start_$s" ;;
        *)
            log "unknown service '$s'"
            return 1
            ;;
        esac
    done
    log "started ${SERVICES[*]} in $((SECONDS - t0))s; variables in $ENV_FILE:"
    sed 's/^/  /' "$ENV_FILE"
}

cmd_stop() {
    # Stop everything this script may have started, whatever the list says
    # now: a pidfile exists only for what we started.
    stop_kafka
    stop_redis
    rm -f "$ENV_FILE"
}

# Exit status 1 if a service of the list is not running.
cmd_status() {
    local s pat pid rc=0
    for s in redis kafka; do
        case "$s" in
        redis) pat=redis-server ;;
        kafka) pat=kafka.Kafka ;;
        esac
        if pid="$(running "$s" "$pat")"; then
            log "$s running (pid $pid): $(cat "$STATE_DIR/$s.env" 2>/dev/null | sed 's/^export //')"
        else
            log "$s not running"
            [[ " ${SERVICES[*]} " == *" $s "* ]] && rc=1
        fi
    done
    return "$rc"
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
