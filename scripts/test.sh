#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (scripts/test-deps.sh),
# then runs every test: unit, integration, end-to-end (the real binary) and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-deps.sh
go test ./... "$@"
