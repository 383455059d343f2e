#!/usr/bin/env bash
# scripts/deps.sh: install the Debian 12 packages mutirao needs to build,
# test, lint, fuzz and (later) run its loopback services.
#
# Idempotent and fast when nothing is missing: apt is not touched at all
# then. Works as root; as another user it uses sudo when sudo exists.
# Used by scripts/setup.sh, scripts/test.sh and .ci/run.
#
#   MUTIRAO_SKIP_DEPS=1   do nothing (e.g. on a machine that is not Debian)
#   scripts/deps.sh --list  print the package list and exit
set -euo pipefail

# Debian 12 (bookworm) package names.
PACKAGES=(
    # toolchain
    build-essential cmake pkg-config git curl ca-certificates procps
    # Lua 5.4 and the C libraries the code links
    lua5.4 liblua5.4-dev libuv1-dev libmsgpack-dev libhiredis-dev
    librdkafka-dev libcurl4-openssl-dev
    # libcrypto and libssl (SHA1 of Redis scripts and TLS to Redis,
    # shared/redis/redis_uv.c)
    libssl-dev
    # tests: busted specs, the Redis server the fleet tests start, python3
    # (CLI tests; tests/services.sh picks free ports with it)
    lua-busted redis-server python3
    # the Python producer (python/): tests/python/run_pytest.py makes a venv
    # that sees these (no network) and pip-installs the package into it
    python3-venv python3-pip python3-setuptools python3-wheel python3-msgpack python3-pytest
    # (redis-cli --cluster create joins the local Redis Cluster of
    # integration.redis_cluster_*; redis-server depends on it, named anyway)
    redis-tools
    # (the https spec and the TLS tests make certificates with the openssl
    # command; integration.tls_redis needs Debian's redis-server, built with TLS)
    openssl
    # fuzzing: clang + its runtime. libclang_rt.fuzzer*.a (-fsanitize=fuzzer)
    # is in libclang-rt-14-dev, which clang only *recommends* on Debian 12.
    clang libclang-rt-14-dev
    # lint, memory checks, benchmarks
    clang-format cppcheck valgrind hyperfine
    # docs.compose_config: `docker-compose config` checks compose.yaml (no
    # Docker daemon needed)
    docker-compose
    # the install tests: man (install.prefix reads the installed man pages)
    # and LuaRocks (install.luarocks builds and installs the rock; it pulls
    # in lua5.1, which may then be /usr/bin/lua: nothing here runs `lua`,
    # and .busted runs busted under lua5.4)
    man-db luarocks
    # dashboard.chromium: `mutirao dashboard`'s page in a headless Chromium,
    # driven over the DevTools protocol from Python
    chromium python3-websocket
    # the terminal tests (tests/terminal): mutirao top and run's progress
    # line drawn in a real terminal, read back with capture-pane
    tmux
)

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${PACKAGES[@]}"
    echo "default-jdk-headless (only if java is missing or older than 17)"
    echo "maven (only if mvn is missing)"
    echo "promtool (only if missing: /usr/local/bin/promtool from the prometheus package)"
    exit 0
fi

if [[ "${MUTIRAO_SKIP_DEPS:-0}" == "1" ]]; then
    echo "deps: MUTIRAO_SKIP_DEPS=1, not checking packages"
    exit 0
fi

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: dpkg-query not found: this script installs Debian 12 packages;" >&2
    echo "deps: install these by hand and set MUTIRAO_SKIP_DEPS=1:" >&2
    printf '  %s\n' "${PACKAGES[@]}" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done
# Java and Maven are for the Kafka test service (tests/services.sh runs the
# broker from Maven Central jars): any Java the machine already has will do if
# it is 17 or newer (Kafka 4.x needs 17); otherwise install Debian's default
# JDK (OpenJDK 17 on Debian 12), whose java then takes the alternative.
java_ok() {
    command -v java >/dev/null 2>&1 || return 1
    local v
    v="$(java -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = *//p' | head -n 1)"
    v="${v#1.}"
    [[ "$v" =~ ^[0-9]+$ ]] && ((v >= 17))
}
java_ok || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

# promtool checks the worker's /metrics output (integration.metrics_*). Debian
# 12 has it only in the prometheus package (the server, its web assets and a
# service that would start on install): only its promtool binary is taken,
# from the downloaded package, into /usr/local/bin.
need_promtool=0
command -v promtool >/dev/null 2>&1 || need_promtool=1

if ((${#missing[@]} == 0 && need_promtool == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}$( ((need_promtool)) && echo " (and promtool)")"

SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "deps: not root and sudo is not available; as root run:" >&2
        echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)

retry() {
    local n
    for n in 1 2 3; do
        if "$@"; then
            return 0
        fi
        echo "deps: attempt $n failed: $*" >&2
        sleep $((n * 5))
    done
    return 1
}

retry "${APT[@]}" update -q
if ((${#missing[@]} > 0)); then
    retry "${APT[@]}" install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
if ((need_promtool)); then
    dl="$(mktemp -d)"
    chmod 777 "$dl" # apt-get download may run as the _apt user
    (cd "$dl" && retry "${APT[@]}" download prometheus) &&
        dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -C "$dl" ./usr/bin/promtool &&
        "${SUDO[@]}" install -m 0755 "$dl/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$dl"
    command -v promtool >/dev/null 2>&1 || still_promtool=1
fi

still=()
for p in "${missing[@]}"; do
    case "$p" in
    default-jdk-headless) java_ok || still+=("$p") ;;
    maven) command -v mvn >/dev/null 2>&1 || still+=("$p") ;;
    *) is_installed "$p" || still+=("$p") ;;
    esac
done
((${still_promtool:-0})) && still+=(promtool)
if ((${#still[@]} > 0)); then
    echo "deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "deps: done"
