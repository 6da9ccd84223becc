"""The kernels an Arm process chooses, checked against the level its CPU is known to have.

scripts/arm64.sh runs the engine's tests as arm64 code under qemu-aarch64 for an emulated CPU whose features are
known (cortex-a76: dotprod; max: dotprod and i8mm) and sets WREN_EXPECT_VARIANT to the kernels that CPU must get.
Anywhere else (no WREN_EXPECT_VARIANT) these tests skip: the general rule, the best variant the detected features
allow, is tests/test_kernels.py's.
"""
import os
import platform
import subprocess
import sys

import pytest

from wren.engine.runtime import native
from wren.engine.runtime.native import Format, Variant

EXPECT = os.environ.get("WREN_EXPECT_VARIANT")
FEATURES = {"neon": {"asimd"}, "dotprod": {"asimd", "asimddp"}, "i8mm": {"asimd", "asimddp", "i8mm"}}

pytestmark = [pytest.mark.arm64,
              pytest.mark.skipif(not EXPECT, reason="WREN_EXPECT_VARIANT unset (set by scripts/arm64.sh)")]


def test_this_is_arm64_code():
    assert platform.machine() == "aarch64"


def test_detected_features_are_the_emulated_cpus():
    assert FEATURES[EXPECT] <= set(native.cpu_features()), native.cpu_features()


def test_every_format_uses_the_expected_kernels():
    assert not native.forced_reference()
    simd = [f for f in Format if not f.super_block]   # Q4_K and Q6_K have x86 and reference kernels only
    assert {f.label: native.chosen_variant(f).label for f in simd} == {f.label: EXPECT for f in simd}
    assert Variant.REFERENCE not in {native.chosen_variant(f) for f in simd}


def test_wren_info_reports_them():
    out = subprocess.run([sys.executable, "-m", "wren.engine.cli", "info"], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert "Linux aarch64" in out, out
    for f in Format:
        if not f.super_block:
            assert f"  {f.label}: {EXPECT} " in out, out
