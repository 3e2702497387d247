#!/usr/bin/env bash
# Creates the project's virtual environment with uv (installing uv itself when absent) and
# installs modelhost in editable mode with its server, postgres and dev extras.
set -euo pipefail
venv=${1:-.venv}
if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv with pip" >&2
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
python=$(command -v python3.11 || command -v python3)
[ -x "$venv/bin/python" ] || uv venv --quiet --python "$python" "$venv"
VIRTUAL_ENV="$venv" uv pip install --quiet -e '.[dev]'
echo "bootstrap: $venv ready ($("$venv/bin/python" --version))" >&2
