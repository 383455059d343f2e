#!/usr/bin/env bash
# tests/docs/compose_config.sh SOURCE_DIR: compose.yaml is a valid Compose
# file (`docker-compose config -q`: the schema, types and references; no
# Docker daemon needed). Debian 12's docker-compose (scripts/deps.sh) or
# `docker compose`; without either, skipped (77), failed when CI is set.
set -euo pipefail
cd "$1"
if command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f compose.yaml config -q
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    docker compose -f compose.yaml config -q
else
    echo "neither docker-compose nor docker compose installed: skipped"
    [[ -n "${CI:-}" ]] && exit 1
    exit 77
fi
echo "compose.yaml: valid"
