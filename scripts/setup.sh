#!/usr/bin/env bash
# scripts/setup.sh: first command of the README on a fresh Debian 12 machine.
#   1. installs the missing Debian packages (scripts/deps.sh; fast when none),
#   2. configures and builds into build/,
#   3. runs examples/hello.lua on the embedded backend.
# Safe to run again at any time, from any directory.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="${MUTIRAO_JOBS:-2}"

echo "== setup: packages"
bash scripts/deps.sh

echo "== setup: configure + build (build/)"
cmake -S . -B build
cmake --build build -j"$JOBS"

echo "== setup: run examples/hello.lua (embedded backend)"
build/bin/mutirao run examples/hello.lua

echo "== setup: done. Run the tests with: scripts/test.sh"
