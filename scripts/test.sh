#!/usr/bin/env bash
# Installs what the tests need (system packages, .venv with Wren and its test extra) and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
"$venv/bin/python" -m pip install -q --disable-pip-version-check ".[test]"
export QT_QPA_PLATFORM=offscreen
exec "$venv/bin/python" -m pytest -q "$@"
