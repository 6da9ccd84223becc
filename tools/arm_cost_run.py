"""One generation for tools/arm_cost.sh, run as arm64 code under qemu-aarch64 with the instruction-counting plugin:
load the model (single thread), then stream PROMPT_TOKENS of prompt and GEN_TOKENS new tokens through the
engine's own generator (greedy sampler, incremental detokenizer, no stop tokens), as the application does.

    python tools/arm_cost_run.py MODEL PROMPT_TOKENS GEN_TOKENS

Two runs that differ only in GEN_TOKENS (or only in PROMPT_TOKENS) differ by the cost of those tokens: loading,
start-up and exit cancel out.
"""
import os
import sys

from wren.engine.bench import compare as bench
from wren.engine.runtime import native
from wren.engine.runtime.generate import Generator
from wren.engine.runtime.model import Model
from wren.engine.runtime.sampling import Sampler, SamplingParams
from wren.engine.runtime.tokenizer import Tokenizer


def main() -> int:
    path, n_prompt, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # single thread in the caller's thread (no pool): a pool's idle worker would spin, and under emulation
    # spinning is counted as instructions; one CPU also makes the load convert its matrices in this thread, so
    # that it repeats the same instructions in every run (threads waiting on each other do not)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    model = Model(path)
    gen = Generator(model, Tokenizer.from_gguf(model.gguf), None,
                    model.context(max(256, n_prompt + n_gen + 8), max(64, n_prompt), 1))
    bos = [gen.tokenizer.bos_id] if gen.tokenizer.add_bos and gen.tokenizer.bos_id is not None else []
    ids = bench.prompt_ids(lambda s: gen.tokenizer.encode(s, add_special=False), n_prompt, bos)
    assert len(ids) == n_prompt
    out = [tok for tok, _ in gen.stream(ids, n_gen, Sampler(SamplingParams(temperature=0.0)), stop_ids=set())
           if tok >= 0]
    gen.close()
    assert len(out) == n_gen, len(out)
    if os.environ.get("WREN_MAPS_OUT"):  # for tools/arm_profile.py: what the guest had mapped where
        with open("/proc/self/maps") as src, open(os.environ["WREN_MAPS_OUT"], "w") as dst:
            dst.write(src.read())
    print(f"kernels {native.chosen_variant(native.Format.Q4_1).label}; prompt {len(ids)}; generated {len(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
