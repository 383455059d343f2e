#!/bin/sh
# libmutirao-exports.sh NM HEADER LIBSO LIBA: libmutirao shows its callers
# the public API and nothing else. The functions declared MUTIRAO_API in
# HEADER (include/mutirao.h) must be exactly
#   - the dynamic symbols LIBSO defines (nm -D --defined-only), and
#   - the global or weak symbols LIBA defines (nm -g --defined-only), so that
#     a program linking the archive may use any other name for itself.
set -eu
nm=$1 header=$2 so=$3 a=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sed -n 's/^MUTIRAO_API.*[ *]\(mutirao_[A-Za-z0-9_]*\)(.*/\1/p' "$header" | sort -u >"$tmp/api"
if [ ! -s "$tmp/api" ]; then
    echo "no MUTIRAO_API function found in $header" >&2
    exit 1
fi
"$nm" -D --defined-only "$so" | awk 'NF == 3 { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/so"
"$nm" -g --defined-only "$a" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/a"

status=0
for lib in so a; do
    case $lib in
    so) file=$so ;;
    a) file=$a ;;
    esac
    extra=$(comm -13 "$tmp/api" "$tmp/$lib")
    missing=$(comm -23 "$tmp/api" "$tmp/$lib")
    if [ -n "$extra" ]; then
        echo "$file: global symbols outside the API:" >&2
        echo "$extra" | sed 's/^/  /' >&2
        status=1
    fi
    if [ -n "$missing" ]; then
        echo "$file: API functions not defined:" >&2
        echo "$missing" | sed 's/^/  /' >&2
        status=1
    fi
    echo "$file: $(wc -l <"$tmp/$lib") global symbols, $(wc -l <"$tmp/api") in the API"
done
exit $status
