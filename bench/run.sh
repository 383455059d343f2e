#!/usr/bin/env bash
# bench/run.sh: runs every benchmark side by side in one go and prints the
# figures recorded in bench/RESULTS.md. Needs a build in build/ (or BUILD=dir).
#   bench/run.sh            all benchmarks
#   bench/run.sh goroutines | preempt | pool | codec | http
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
export MUTIRAO_CPATH="$PWD/$BUILD/lib/?.so;"
what="${1:-all}"
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(uname -r)"
if [[ $what == all || $what == goroutines ]]; then
    echo "## goroutines vs raw coroutines: lua5.4 bench/goroutines.lua"
    lua5.4 bench/goroutines.lua
    for _ in 1 2 3; do
        lua5.4 bench/goroutines.lua cold-raw
        lua5.4 bench/goroutines.lua cold-spawn
    done
fi
if [[ $what == all || $what == preempt ]]; then
    echo "## preemption: lua5.4 bench/preempt.lua"
    lua5.4 bench/preempt.lua
fi
if [[ $what == all || $what == pool ]]; then
    echo "## pool throughput vs a new lua_State per task, interleaved: bench/pool_ab.py"
    python3 bench/pool_ab.py -n 7 --mode fresh "$BUILD"
    python3 bench/pool_ab.py -n 5 --mode trivial "$BUILD"
    echo "## CPU-bound tasks, 1 VM vs 2 VMs"
    for _ in 1 2; do
        MUTIRAO_PROCS=1 lua5.4 bench/pool.lua cpu 32
        MUTIRAO_PROCS=2 lua5.4 bench/pool.lua cpu 32
    done
fi
if [[ $what == all || $what == http ]]; then
    echo "## http: 1,000 requests, goroutines vs one after another vs a curl loop: lua5.4 bench/http.lua"
    lua5.4 bench/http.lua 1000
fi
if [[ $what == all || $what == codec ]]; then
    echo "## codec: $BUILD/bin/codec-bench"
    "$BUILD/bin/codec-bench"
fi
