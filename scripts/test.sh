#!/usr/bin/env bash
# What `make test` runs after the venv exists: start the servers the tests need, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELHOST_TEST_POSTGRES_URL=$(scripts/setup-postgres.sh)
export MODELHOST_TEST_POSTGRES_URL
if [ -x scripts/setup-azmlinfsrv.sh ]; then
  MODELHOST_TEST_AZMLINFSRV=$(scripts/setup-azmlinfsrv.sh)
  export MODELHOST_TEST_AZMLINFSRV
fi
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy
exec .venv/bin/pytest "$@"
