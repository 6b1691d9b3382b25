#!/usr/bin/env bash
# bench/deploy: one-line change → `hangar deploy` vs `docker build` (see run.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run --silent build >/dev/null || true
exec node dist/bench/deploy/run.js "$@"
