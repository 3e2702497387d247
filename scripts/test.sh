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
# A real kube-apiserver/controller-manager/scheduler 1.20 built from Debian's source (cached after the
# first ~5-minute build) and Debian's docker-registry, for tests/k8s (docs/kubernetes-testing.md).
MODELHOST_TEST_K8S_BIN=$(tests/support/k8s/build.sh | tail -n 1)
export MODELHOST_TEST_K8S_BIN
tests/support/k8s/setup-registry.sh >/dev/null
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy
exec .venv/bin/pytest "$@"
