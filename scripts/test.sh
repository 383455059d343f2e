#!/usr/bin/env bash
# scripts/test.sh: the README's test command. Builds and runs the whole suite:
#   0. scripts/lint.sh: clang-format + cppcheck (MUTIRAO_LINT=0 skips it)
#   1. normal build in build/        + ctest --output-on-failure
#   2. ASan+UBSan build in build-asan/ (-DMUTIRAO_SANITIZE=address) + ctest
#   3. TSan build in build-tsan/ (-DMUTIRAO_SANITIZE=thread) + ctest -L tsan;
#      skipped (not built) while no test carries the label "tsan"
#   4. bounded libFuzzer run: tests/fuzz/run-fuzz.sh build-fuzz 60, if present
#   5. in a git checkout: nothing new in `git status --porcelain` (the run
#      writes only under build*/, which .gitignore ignores)
# Installs missing packages first (scripts/deps.sh) and starts/stops the
# loopback services (tests/services.sh) unless .ci/run already did.
#
#   MUTIRAO_TEST_QUICK=1     only step 1 (no sanitizer or fuzz builds)
#   MUTIRAO_LINT=0           skip step 0 (lint: clang-format + cppcheck)
#   MUTIRAO_JOBS=2           build parallelism      MUTIRAO_CTEST_JOBS=1
#   MUTIRAO_TEST_TIMEOUT=300 default per-test timeout (s) for tests without one
#   MUTIRAO_FUZZ_SECONDS=60  fuzzing budget
# Runs every step even after a test failure and exits non-zero if any failed;
# a build that does not compile stops the run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

JOBS="${MUTIRAO_JOBS:-2}"
CTEST_JOBS="${MUTIRAO_CTEST_JOBS:-1}"
TEST_TIMEOUT="${MUTIRAO_TEST_TIMEOUT:-300}"
FUZZ_SECONDS="${MUTIRAO_FUZZ_SECONDS:-60}"
QUICK="${MUTIRAO_TEST_QUICK:-0}"

# Sanitizer runtime defaults; anything already set in the environment wins.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

START_TIME=$SECONDS
declare -a RESULTS=()
FAILED=0

step() { echo; echo "==== [$(date +%H:%M:%S) +$((SECONDS - START_TIME))s] $*"; }
record() { RESULTS+=("$(printf '%-28s %s' "$1" "$2")"); }
fail() { FAILED=1; record "$1" "FAILED"; }

# What git status shows now, one path a line (empty outside a git checkout).
git_status() { { git status --porcelain --untracked-files=all 2>/dev/null || true; } | LC_ALL=C sort; }
IN_GIT=0
if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    IN_GIT=1
    GIT_BEFORE="$(git_status)"
fi

summary() {
    echo
    echo "==== scripts/test.sh summary ($((SECONDS - START_TIME))s)"
    local r
    for r in "${RESULTS[@]}"; do echo "  $r"; done
}

# configure_build NAME DIR [cmake args...]: stop the run if it does not build.
configure_build() {
    local name="$1" dir="$2"
    shift 2
    step "$name: configure + build ($dir/)"
    if ! cmake -S . -B "$dir" "$@" || ! cmake --build "$dir" -j"$JOBS"; then
        fail "$name build"
        summary
        echo "scripts/test.sh: $name build failed" >&2
        exit 1
    fi
}

# run_ctest NAME DIR [ctest args...]
run_ctest() {
    local name="$1" dir="$2"
    shift 2
    step "$name: ctest ($dir/)"
    if (cd "$dir" && ctest --output-on-failure --timeout "$TEST_TIMEOUT" -j"$CTEST_JOBS" "$@"); then
        record "$name tests" "ok"
    else
        fail "$name tests"
    fi
}

# Number of tests ctest would run in DIR with the given filter (0 if none).
count_tests() {
    local dir="$1"
    shift
    (cd "$dir" && ctest -N "$@" 2>/dev/null) | sed -n 's/^Total Tests: *\([0-9][0-9]*\).*/\1/p' | tail -n 1
}

step "packages"
bash scripts/deps.sh

# Loopback services (none at this stage; see tests/services.sh). .ci/run
# manages them itself and sets MUTIRAO_SERVICES_MANAGED=1.
if [[ "${MUTIRAO_SERVICES_MANAGED:-0}" != "1" ]]; then
    trap 'bash "$ROOT/tests/services.sh" stop || true' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    step "services: start"
    bash tests/services.sh start
fi
if [[ -f build-services/env.sh ]]; then
    # shellcheck disable=SC1091
    source build-services/env.sh
fi

if [[ "${MUTIRAO_LINT:-1}" == "1" ]]; then
    step "lint"
    if bash scripts/lint.sh; then record lint ok; else fail lint; fi
else
    record lint "skipped (MUTIRAO_LINT=0)"
fi

# 1. normal build
configure_build normal build
run_ctest normal build

if [[ "$QUICK" == "1" ]]; then
    record "asan / tsan / fuzz" "skipped (MUTIRAO_TEST_QUICK=1)"
else
    # 2. ASan + UBSan
    configure_build asan build-asan -DMUTIRAO_SANITIZE=address
    run_ctest asan build-asan

    # 3. TSan: only the tests labelled "tsan"; skipped while there are none.
    step "tsan: configure (build-tsan/)"
    if ! cmake -S . -B build-tsan -DMUTIRAO_SANITIZE=thread; then
        fail "tsan configure"
    else
        n="$(count_tests build-tsan -L tsan)"
        if [[ -z "$n" || "$n" == "0" ]]; then
            echo "tsan: no test carries the label 'tsan'; skipping the TSan build"
            record "tsan tests" "skipped (no test labelled tsan)"
        else
            configure_build tsan build-tsan -DMUTIRAO_SANITIZE=thread
            # TSan needs a low-entropy address layout: run without ASLR when
            # the kernel randomises more than 28 bits (newer kernels).
            rnd="$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)"
            if ((rnd > 28)) && setarch "$(uname -m)" -R true 2>/dev/null; then
                step "tsan: vm.mmap_rnd_bits=$rnd, running ctest under setarch -R"
                (cd build-tsan && setarch "$(uname -m)" -R ctest --output-on-failure \
                    --timeout "$TEST_TIMEOUT" -j"$CTEST_JOBS" -L tsan) &&
                    record "tsan tests" ok || fail "tsan tests"
            else
                run_ctest tsan build-tsan -L tsan
            fi
        fi
    fi

    # 4. bounded fuzzing
    if [[ -f tests/fuzz/run-fuzz.sh ]]; then
        step "fuzz: tests/fuzz/run-fuzz.sh build-fuzz $FUZZ_SECONDS"
        if bash tests/fuzz/run-fuzz.sh build-fuzz "$FUZZ_SECONDS"; then
            record fuzz ok
        else
            fail fuzz
        fi
    else
        record fuzz "skipped (no tests/fuzz/run-fuzz.sh)"
    fi
fi

# 5. the checkout is as the run found it
if ((IN_GIT)); then
    step "checkout: nothing new in git status --porcelain"
    new="$(LC_ALL=C comm -13 <(printf '%s\n' "$GIT_BEFORE") <(git_status))"
    if [[ -n "$new" ]]; then
        echo "the run left these in the checkout (write them under a build directory):"
        sed 's/^/  /' <<<"$new"
        fail "checkout clean"
    else
        record "checkout clean" ok
    fi
fi

summary
if ((FAILED)); then
    echo "scripts/test.sh: FAILED" >&2
    exit 1
fi
echo "scripts/test.sh: all steps passed"
