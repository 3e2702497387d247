#!/usr/bin/env bash
# Installs Debian's docker-registry (distribution 2.8) when absent, for the `oci_registry` test
# fixture, which starts its own instance on a free port. Debian's service is not started (no
# systemd here, and the fixture needs none). Idempotent; prints the binary's path.
set -euo pipefail
if ! command -v docker-registry >/dev/null 2>&1; then
  echo "setup-registry: installing docker-registry from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends docker-registry >&2
fi
command -v docker-registry
