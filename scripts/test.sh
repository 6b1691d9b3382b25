#!/usr/bin/env bash
# Set up everything (idempotent) and run Hangar's whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Only *.test.js files are tests (node would also run every other .js under
# a test/ folder: fixtures, helpers, child scripts). Tests boot real VMs under
# TCG on a 2-core machine: two test files at a time.
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
# --test-force-exit: a test file whose test failed mid-way must not keep the
# run waiting on a handle it left open; --test-timeout bounds any one test.
exec node --test --test-concurrency=2 --test-force-exit --test-timeout=1200000 "${files[@]}"
