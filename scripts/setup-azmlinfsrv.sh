#!/usr/bin/env bash
# Installs the v1 reference scoring server (azureml-inference-server-http) into its own venv outside
# the work tree, cached and keyed by version, with what the compatibility entry scripts import
# (numpy, pandas; inference-schema comes with the server). Idempotent: a marker file makes the second
# run a no-op. Prints only the venv's path on stdout; everything else goes to stderr.
set -euo pipefail
log() { echo "setup-azmlinfsrv: $*" >&2; }

VERSION=1.5.1
# Pins for the entry scripts' own imports; the server's dependencies come from its own metadata.
EXTRA=("numpy>=1.26,<3" "pandas>=2.1,<3")
VENV="${CACHE_DIR:-$HOME/.cache/modelhost}/azmlinfsrv-${VERSION}"
MARKER="$VENV/.modelhost-installed"
WANT="azureml-inference-server-http==${VERSION} ${EXTRA[*]}"

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ] && [ -x "$VENV/bin/azmlinfsrv" ]; then
  echo "$VENV"
  exit 0
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
elif [ -x "$REPO/.venv/bin/uv" ]; then
  UV=("$REPO/.venv/bin/uv")
elif python3 -m uv --version >/dev/null 2>&1; then
  UV=(python3 -m uv)
else
  log "uv is needed (pip install uv, or use the project's .venv/bin/uv)"
  exit 1
fi

log "creating $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"${UV[@]}" venv --quiet --python python3.11 "$VENV" >&2
log "installing $WANT"
VIRTUAL_ENV="$VENV" "${UV[@]}" pip install --quiet "azureml-inference-server-http==${VERSION}" "${EXTRA[@]}" >&2
"$VENV/bin/python" -c "import azureml_inference_server_http, inference_schema, numpy, pandas" >&2
echo "$WANT" >"$MARKER"
echo "$VENV"
