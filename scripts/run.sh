#!/usr/bin/env bash
# Installs Wren into .venv and starts it: the window when there is a display, otherwise the command line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
"$venv/bin/python" -m pip install -q --disable-pip-version-check .
"$venv/bin/wren" info
exec "$venv/bin/wren" "$@"
