#!/usr/bin/env bash
# bench/bullmq/install.sh: installs the BullMQ benchmark's npm packages
# (bullmq and ioredis, versions pinned by package.json and
# package-lock.json) into bench/bullmq/node_modules/ (not committed; `npm ci` lays it anew each time). Needs
# node >= 18 and npm (Debian: apt-get install nodejs npm). Idempotent.
#   bash bench/bullmq/install.sh
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install: $tool not found (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
done
if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund
else
    npm install --no-audit --no-fund
fi
node -e 'console.log("install: bullmq " + require("bullmq/package.json").version + ", ioredis " + require("ioredis/package.json").version)'
