#!/usr/bin/env bash
# Hangar rootfs conversion vs skopeo + umoci + mkfs.erofs. Usage: bash bench/rootfs/run.sh [runs]
set -euo pipefail
HANGAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export HANGAR_ROOT
cd "$HANGAR_ROOT"
npx tsc -p tsconfig.json >/dev/null 2>&1 || true   # emits even if other components have type errors
exec node dist/bench/rootfs/bench.js "${1:-5}"
