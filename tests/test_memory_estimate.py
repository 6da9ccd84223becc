"""The memory estimate that the memory check uses (catalog.ModelInfo.ram_bytes) is at least what loading a model
and generating with it takes: the peak resident memory (VmHWM) of a fresh process, for each installed model. Not
ru_maxrss: Linux keeps it across fork and exec, so a child of a large test process would report its parent's."""
import json
import subprocess
import sys

import pytest

from conftest import model_or_skip

pytestmark = pytest.mark.model

PEAK = """
import json, re, sys
from wren.engine.library import catalog
from wren.engine.runtime import loader, placement, topology
from wren.engine.runtime.sampling import GREEDY, Sampler
from wren.engine.settings import Settings
settings = Settings().validated()
topo = topology.read_topology()
n_threads = placement.context_threads(placement.place(settings, topo), topo.allowed)
info = catalog.describe(sys.argv[1])
estimate = info.ram_bytes(settings.context_length, settings.weight_policy, settings.batch_size, n_threads)
gen = loader.open_generator(sys.argv[1], settings)
for _ in gen.stream(gen.tokenizer.encode("Hello there, how are you today? " * 20), 8, Sampler(GREEDY)):
    pass
with open("/proc/self/status") as f:
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024
print(json.dumps({"estimate": estimate, "peak": peak}))
"""


@pytest.mark.parametrize("name", ["SmolLM2-135M-Instruct", "Gemma-3-270M", "Qwen2.5-Coder-1.5B-Instruct"])
def test_estimate_covers_the_measured_peak(name):
    path = model_or_skip(name)
    proc = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["estimate"] >= result["peak"], f"{name}: estimate {result['estimate'] >> 20} MiB, " \
                                                 f"measured peak {result['peak'] >> 20} MiB"
