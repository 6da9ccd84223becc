"""A small fuzz campaign (tools/fuzz.py) with a fixed seed: every mutated model is refused with the loader's typed
error or runs; none raises another exception, hangs, dies of a signal or blows up its memory. CI runs >= 10,000
cases with a rotating seed (.ci/run)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gguf")

FUZZ = Path(__file__).parents[1] / "tools" / "fuzz.py"


def test_two_hundred_mutated_models_are_refused_or_run():
    # a guard against a hung campaign, not a measure of speed (each case has its own limit in the campaign)
    proc = subprocess.run([sys.executable, str(FUZZ), "--cases", "200", "--seed", "18", "--jobs", "2"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = {k: int(v) for k, v in re.findall(r"(refused|ran|other|hang|signal|memory) (\d+)", proc.stdout)}
    assert counts["refused"] + counts["ran"] == 200, proc.stdout
    assert counts["refused"] > 50 and counts["ran"] > 10, proc.stdout  # the mutations reach both ends


def test_replay_reproduces_one_case():
    proc = subprocess.run([sys.executable, str(FUZZ), "--replay", "18:0"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("case 18:0 [llama-Q4_0: ")
    assert proc.stdout.strip().splitlines()[-1].split()[0] in ("refused", "ran")
