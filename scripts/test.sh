#!/usr/bin/env bash
# Set up everything (idempotent) and run Hangar's whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Tests boot real VMs under TCG on a 2-core machine: two test files at a time.
exec node --test --test-concurrency=2 dist/test/
