"""The C kernel harness (tests/c/), natively and cross-compiled for aarch64 under qemu-aarch64.

Each emulated CPU must exercise its SIMD level: cortex-a53 NEON only, cortex-a76 adds dotprod, max adds i8mm.
Without the cross tools the Arm runs skip with the reason, except under CI, where .ci/run installs them.
"""
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BUILD = HERE / "c" / "build.sh"
IN_CI = bool(os.environ.get("CI"))


def run_harness(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"^\d+ passed, 0 failed$", out, re.M), out[-2000:]
    exercised = re.search(r"^variants exercised:(.*)$", out, re.M).group(1).split()
    assert not [v for v in exercised if "FAILED" in v], out
    return out, set(exercised)


def build(target, out):
    subprocess.run(["sh", str(BUILD), target, str(out)], check=True, capture_output=True, text=True, timeout=600)
    return out


def test_native_harness(tmp_path):
    out, exercised = run_harness([str(build("native", tmp_path / "harness"))])
    assert "reference" in exercised
    if platform.machine() == "x86_64":
        assert "avx2" in exercised, out  # this machine has AVX2: the SIMD path must be the one checked
    print(out)


@pytest.fixture(scope="module")
def arm_harness(tmp_path_factory):
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if not shutil.which(t)]
    if missing:
        reason = f"cross tools absent: {', '.join(missing)} (Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)"
        if IN_CI:
            pytest.fail(reason + "; .ci/run must install them")
        pytest.skip(reason)
    return build("aarch64", tmp_path_factory.mktemp("arm") / "harness")


@pytest.mark.parametrize("cpu,expected", [
    ("cortex-a53", {"reference", "neon"}),
    ("cortex-a76", {"reference", "neon", "dotprod"}),
    ("max", {"reference", "neon", "dotprod", "i8mm"}),
])
@pytest.mark.qemu
def test_arm_harness_under_qemu(arm_harness, cpu, expected):
    out, exercised = run_harness(["qemu-aarch64", "-cpu", cpu, str(arm_harness)])
    assert exercised == expected, out
    print(out)
