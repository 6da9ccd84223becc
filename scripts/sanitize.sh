#!/usr/bin/env bash
# The C core under AddressSanitizer and UndefinedBehaviorSanitizer (-fno-sanitize-recover=all: the first report
# ends the run with a failure): the C kernel harness (tests/c), then the engine in Python with the core built the same
# way (LD_PRELOAD of libasan; leaks are not checked, as CPython keeps memory to the end by design), running a forward
# pass of the default model (SmolLM2) and of small files whose weights are NaN, infinite or so large that the
# activations overflow: the NaN/inf files must be refused at load, the overflowing one must end its generation with
# the sampler's NonFiniteLogitsError, and the kernels must meet the non-finite activations without undefined behaviour.
#
#   bash scripts/sanitize.sh      (after scripts/test.sh made $WREN_VENV, default .venv; 2 to 3 minutes on 2 free cores)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=$(cd "${WREN_VENV:-.venv}" && pwd)/bin/python
cc=${CC:-cc}
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "sanitize [${SECONDS} s]: building the C harness and the engine's core with the sanitizers"
CC="$cc $san" sh tests/c/build.sh native "$work/harness" > "$work/harness-build.log" 2>&1 &
harness_build=$!
mkdir -p "$work/ext/engine"   # a copy of the sources, built in place there (engine/_build.py builds where it lies)
cp -r csrc "$work/ext/"
cp engine/_build.py "$work/ext/engine/"
(cd "$work/ext" && WREN_CFLAGS="$san" LDFLAGS="$san" "$py" engine/_build.py) > "$work/build.log" 2>&1 ||
    { grep -B2 -A8 "error" "$work/build.log" | head -60; exit 1; }
wait $harness_build || { tail -40 "$work/harness-build.log"; exit 1; }
echo "sanitize [${SECONDS} s]: running the C harness"
"$work/harness" > "$work/harness.log" 2>&1 || { tail -40 "$work/harness.log"; echo "sanitize: harness FAILED"; exit 1; }
tail -1 "$work/harness.log"
ext=$(find "$work/ext" -name '_native*.so' | head -1)

echo "sanitize [${SECONDS} s]: forward passes under the sanitizers"
LD_PRELOAD=$("$cc" -print-file-name=libasan.so) "$py" - "$ext" "$root" <<'EOF'
import importlib.util, sys, tempfile, time
from pathlib import Path

import wren.engine  # noqa: F401 (the package, before its native module is replaced)
spec = importlib.util.spec_from_file_location("wren.engine._native", sys.argv[1])
native_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(native_mod)
sys.modules["wren.engine._native"] = native_mod

import numpy as np
from wren.engine.runtime import gguffile, loader, native, nonfinite
from wren.engine.runtime.model import Model
from wren.engine.runtime.sampling import GREEDY, NonFiniteLogitsError, Sampler
from wren.engine.runtime.tokenizer import Tokenizer
assert native.lib is native_mod.lib, "the sanitized core is not the one in use"
sys.path.insert(0, str(Path(sys.argv[2]) / "tests"))
from test_forward import write_synthetic  # noqa: E402 (the tests' tiny models, written with the gguf package)


def decode(m, prompt, n=4, pool=None):
    """Greedy tokens after the prompt (NonFiniteLogitsError when the logits are not finite)."""
    ctx, sampler = m.context(64, 16, 2), Sampler(GREEDY)
    logits, out = ctx.forward(prompt, 0, pool), []
    for i in range(n):
        out.append(sampler.sample(logits))
        logits = ctx.forward([out[-1]], len(prompt) + i, pool)[0]
    return out


t0 = time.monotonic()
path = loader.resolve_model_path(None)
m = Model(path)
tok = Tokenizer.from_gguf(m.gguf)
with native.Pool(2) as pool:
    print(f"{path.name}:", repr(tok.decode(decode(m, tok.encode("The capital of France is"), 6, pool))),
          f"({time.monotonic() - t0:.0f} s)")
del m

with tempfile.TemporaryDirectory() as tmp:
    def patched(name, tensor, values):
        """A tiny llama whose `tensor` starts with `values` (for a quantized tensor: its first block's scale)."""
        p = write_synthetic(Path(tmp) / f"{name}.gguf", "llama")
        g = gguffile.read(p)
        t = g.tensors[tensor]
        off, kind = t.offset, t.type_name
        g.close()
        with open(p, "r+b") as f:
            f.seek(off)
            f.write(np.asarray(values, dtype="<f4" if kind == "F32" else "<f2").tobytes())
        return p, kind

    for name, tensor, value in (("nan-q4_0-scale", "blk.0.attn_q.weight", np.nan), ("inf-f16", "blk.0.attn_k.weight", np.inf),
                                ("nan-q5_0-scale", "blk.0.ffn_gate.weight", np.nan),
                                ("inf-f32-norm", "blk.0.attn_norm.weight", np.inf)):
        p, kind = patched(name, tensor, [value])
        try:
            Model(p)
        except gguffile.GGUFError as e:
            assert tensor in str(e), e
            print(f"{name} ({kind}): refused at load: {e}")
        else:
            raise SystemExit(f"{name}: a non-finite {kind} tensor was loaded")
        # the kernels meet the NaN / inf when the load check is bypassed: garbage logits, but no undefined behaviour
        check, nonfinite.check_tensor = nonfinite.check_tensor, lambda *a: None
        try:
            print(f"{name}: without the load check: decoded {decode(Model(p), [3, 17, 42, 5])}")
        except NonFiniteLogitsError as e:
            print(f"{name}: without the load check, generation ends: {e}")
        finally:
            nonfinite.check_tensor = check
    # finite weights whose activations overflow: loaded, and the generation ends with the sampler's error
    p, _ = patched("huge", "output_norm.weight", np.full(64, 3.0e38))
    try:
        raise SystemExit(f"huge: overflowing activations decoded to {decode(Model(p), [3, 17, 42, 5])}")
    except NonFiniteLogitsError as e:
        print(f"huge: finite weights, overflowing activations: generation ends: {e}")
print("sanitize: forward passes clean")
EOF
echo "sanitize: no reports (${SECONDS} s)"
