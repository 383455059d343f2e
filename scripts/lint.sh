#!/usr/bin/env bash
# scripts/lint.sh: clang-format (style of .clang-format, no rewrite) and
# cppcheck over the project's C sources and headers. Exits non-zero on any
# finding. To fix formatting in place:  scripts/lint.sh --fix
# scripts/test.sh runs this first when MUTIRAO_LINT=1.
set -euo pipefail
cd "$(dirname "$0")/.."

DIRS=(lua shared producer worker include tests/c tests/integration tests/faults tests/fuzz bench)

existing=()
for d in "${DIRS[@]}"; do
    [[ -d "$d" ]] && existing+=("$d")
done
files=()
if ((${#existing[@]} > 0)); then
    while IFS= read -r -d '' f; do
        files+=("$f")
    done < <(find "${existing[@]}" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
fi
if ((${#files[@]} == 0)); then
    echo "lint: no C files under ${DIRS[*]}; nothing to check"
    exit 0
fi

for tool in clang-format cppcheck; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "lint: $tool not found (scripts/deps.sh installs it)" >&2
        exit 1
    fi
done

fmt=0
if [[ "${1:-}" == "--fix" ]]; then
    echo "lint: clang-format -i on ${#files[@]} files"
    clang-format -i "${files[@]}"
else
    echo "lint: clang-format --dry-run -Werror on ${#files[@]} files"
    clang-format --dry-run -Werror "${files[@]}" || fmt=1
fi

cpp=0
echo "lint: cppcheck on ${#files[@]} files"
cppcheck --quiet --std=c11 --enable=warning,performance,portability --error-exitcode=1 \
    --inline-suppr --suppress=missingIncludeSystem -I include -I shared -I shared/base -I lua \
    "${files[@]}" || cpp=1

if ((fmt)); then
    echo "lint: FAILED: clang-format (fix with: scripts/lint.sh --fix)" >&2
fi
if ((cpp)); then
    echo "lint: FAILED: cppcheck (see above; '// cppcheck-suppress ID' for false positives)" >&2
fi
if ((fmt || cpp)); then
    exit 1
fi
echo "lint: ok"
