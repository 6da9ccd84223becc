"""The command line as a user runs it: `wren info`, `wren bench --kernels`, `wren` without a display."""
import json
import os
import subprocess
import sys

import pytest

from wren.engine import native


def wren(*args, env=None, timeout=300):
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    return proc


def test_info_reports_features_kernels_and_topology():
    proc = wren("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fmt in native.Format:
        assert f"{fmt.label}: {native.chosen_variant(fmt).label}" in out
    assert "CPU features:" in out and "recommended for generation: CPUs" in out
    for feature in native.cpu_features():
        assert feature in out


def test_environment_forces_the_reference():
    proc = wren("info", env={"WREN_KERNELS": "reference"})
    assert proc.returncode == 0, proc.stderr
    for fmt in native.Format:
        assert f"{fmt.label}: reference" in proc.stdout
    assert "forces the scalar reference" in proc.stdout


def test_no_display_prints_the_cli_hint():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0 and "wren info" in proc.stdout and "Traceback" not in proc.stderr


def test_kernel_bench_prints_and_records(tmp_path):
    out_file = tmp_path / "bench.json"
    proc = wren("bench", "--kernels", "--quick", "-t", "1", "--formats", "q4_0", "--json", "-o", str(out_file))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["read_gbs"]["1"] > 0
    assert {(g["n"], g["k"]) for g in data["gemv"]} == {(576, 1536), (1536, 576)}
    assert all(g["gbs"] > 0 and g["format"] == "q4_0" for g in data["gemv"])
    assert all(g["gops"] > 0 for g in data["gemm"])
    assert json.loads(out_file.read_text()) == data


def test_bad_option_is_a_clear_error():
    proc = wren("bench", "--kernels", "--formats", "q9_9")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
