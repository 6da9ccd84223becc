"""Step by step, how far Wren's forward pass is from llama.cpp's, bit for bit (development).

llama.cpp's side runs under a Python that has llama-cpp-python (an optional development dependency), Wren's under
this project's; the two meet in a .npz file:

    python tools/bitcheck.py dump MODEL.gguf --text "The capital of France is" OUT.npz [--decode 2]
    python tools/bitcheck.py compare MODEL.gguf OUT.npz [--layers 2]

`dump` records every tensor llama.cpp computes for the prompt (one batch, as llama-cpp-python's `eval` runs it)
and for `--decode` further single-token steps (greedy), through its graph callback. `compare` runs Wren on the same
ids with a trace of each step (`wren_ctx_set_trace`) and prints, per step, how many values differ from the
llama.cpp tensor of the same name and the largest difference, in units in the last place.
"""
import argparse
import ctypes
import sys

import numpy as np

GGML_F32, GGML_F16 = 0, 1


class _Tensor(ctypes.Structure):  # struct ggml_tensor (ggml.h), for the fields read here
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64)]


def _read(t: _Tensor) -> np.ndarray | None:
    if t.type not in (GGML_F32, GGML_F16) or not t.data:
        return None
    dt = np.float32 if t.type == GGML_F32 else np.float16
    ne, nb = list(t.ne), list(t.nb)
    span = sum((ne[i] - 1) * nb[i] for i in range(4)) + np.dtype(dt).itemsize
    buf = (ctypes.c_char * span).from_address(t.data)
    a = np.lib.stride_tricks.as_strided(np.frombuffer(buf, dtype=dt), shape=ne[::-1], strides=nb[::-1])
    return np.array(a, dtype=np.float32)


def dump(args) -> None:
    import llama_cpp as L

    tensors: dict[str, np.ndarray] = {}
    step = ["p"]

    @L.ggml_backend_sched_eval_callback
    def cb(ptr, ask, _user):
        if ask:
            return True
        t = _Tensor.from_address(ptr)
        a = _read(t)
        if a is not None:
            base = f"{step[0]}/{t.name.decode()}"
            key, i = base, 1
            while key in tensors:
                key, i = f"{base}#{i}", i + 1
            tensors[key] = a
        return True

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 2048, 512, 512
    cp.n_threads = cp.n_threads_batch = args.threads
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    cp.cb_eval, cp.cb_eval_user_data = cb, None
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    text = args.text.encode()
    buf = (L.llama_token * (len(text) + 8))()
    n = L.llama_tokenize(vocab, text, len(text), buf, len(buf), True, True)
    ids = [buf[i] for i in range(n)]
    n_vocab = L.llama_vocab_n_tokens(vocab)

    def run(tokens, pos0):
        batch = L.llama_batch_init(len(tokens), 0, 1)
        for i, tok in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos0 + i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, int(not args.last or i == len(tokens) - 1)
        batch.n_tokens = len(tokens)
        if L.llama_decode(ctx, batch):
            sys.exit("llama_decode failed")
        L.llama_batch_free(batch)
        rows = 1 if args.last else len(tokens)
        return np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(rows, n_vocab)).copy()

    logits = run(ids, 0)
    out = {"ids": np.array(ids, dtype=np.int32), "logits/p": logits, "last": np.array(int(args.last))}
    for k in range(args.decode):
        tok = int(np.argmax(logits[-1]))
        step[0] = f"d{k}"
        logits = run([tok], len(ids) + k)
        out[f"next/d{k}"] = np.array([tok], dtype=np.int32)
        out[f"logits/d{k}"] = logits
    out.update({f"t/{k}": v for k, v in tensors.items()})
    np.savez_compressed(args.out, **out)
    print(f"{len(ids)} ids, {len(tensors)} tensors -> {args.out}")


ALIASES = {"Qmat": "Qcur", "Kmat": "Kcur", "ffn_glu": "ffn_swiglu|ffn_geglu", "ffn_down": "ffn_out",
           "kqv_out": "kqv_out"}


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ia = a.astype(np.float32).view(np.int32).astype(np.int64)
    ib = b.astype(np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def compare(args) -> None:
    from wren.engine.runtime import native
    from wren.engine.runtime.model import Model

    data = np.load(args.dump)
    ids = data["ids"]
    llama = {k[2:]: data[k] for k in data.files if k.startswith("t/")}
    model = Model(args.model)
    ctx = model.context(2048, 512, args.threads)
    with native.Pool(args.threads) as pool:
        _compare(args, data, ids, llama, ctx, pool)


def _compare(args, data, ids, llama, ctx, pool) -> None:
    from wren.engine.runtime.native import ffi, lib

    rows: list[tuple] = []
    step = ["p"]

    @ffi.callback("void(void *, const char *, int32_t, const float *, int64_t, int64_t, int64_t)")
    def tr(_user, name, layer, ptr, n_rows, cols, stride):
        nm = ffi.string(name).decode()
        if args.layers is not None and layer >= args.layers:
            return
        a = np.frombuffer(ffi.buffer(ptr, 4 * ((n_rows - 1) * stride + cols)), dtype=np.float32)
        a = np.lib.stride_tricks.as_strided(a, shape=(n_rows, cols), strides=(4 * stride, 4)).copy()
        rows.append((step[0], nm, layer, a))

    lib.wren_ctx_set_trace(ctx._ptr, tr, ffi.NULL)
    last = "last" in data.files and bool(data["last"])
    logits = ctx.forward(ids, 0, pool=pool, all_logits=not last)
    steps = [("p", ids, 0)]
    k = 0
    while f"next/d{k}" in data.files:
        steps.append((f"d{k}", data[f"next/d{k}"], len(ids) + k))
        k += 1
    wren_logits = {"p": logits}
    for s, toks, pos in steps[1:]:
        step[0] = s
        wren_logits[s] = ctx.forward(toks, pos, pool=pool, all_logits=True)
    lib.wren_ctx_set_trace(ctx._ptr, ffi.NULL, ffi.NULL)
    for s, nm, layer, a in rows:
        names = ALIASES.get(nm, nm).split("|")
        cands = []
        for base in names:
            full = f"{s}/{base}" + (f"-{layer}" if layer >= 0 else "")
            cands += [v for k, v in llama.items() if (k == full or k.startswith(full + "#")) and v.size == a.size]
        if not cands:
            print(f"{s:3} {nm:14} {layer:3}  (no llama.cpp tensor)")
            continue
        c = min(cands, key=lambda c: (np.count_nonzero(a.reshape(-1) != c.reshape(-1)),
                                      float(np.max(np.abs(a.reshape(-1) - c.reshape(-1))))))
        a1, c1 = a.reshape(-1), c.reshape(-1)
        nz = int(np.count_nonzero(a1 != c1))
        rel = float(np.max(np.abs(a1 - c1))) / max(float(np.max(np.abs(c1))), 1e-30)
        u = ulps(a1, c1)
        one = int(np.count_nonzero(u == 1))
        print(f"{s:3} {nm:14} {layer:3}  differ {nz:7d} / {a.size:8d} (1 ulp: {one:7d})   max diff / max {rel:.2e}")
        if args.stop and nz:
            break
    for s in wren_logits:
        ref = data[f"logits/{s}"]
        w = wren_logits[s]
        same = int(np.sum(np.argmax(w, -1) == np.argmax(ref, -1)))
        print(f"logits {s}: bit-identical {np.array_equal(w, ref)}, top-1 {same}/{len(ref)}, "
              f"max |diff| {float(np.max(np.abs(w - ref))):.4g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("model")
    d.add_argument("out")
    d.add_argument("--text", default="The capital of France is")
    d.add_argument("--decode", type=int, default=1)
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--last", action="store_true", help="logits of the last prompt token only (llama.cpp then runs "
                   "the last layer after attention on that row alone)")
    c = sub.add_parser("compare")
    c.add_argument("model")
    c.add_argument("dump")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--layers", type=int, default=None)
    c.add_argument("--stop", action="store_true", help="stop at the first step that differs")
    args = ap.parse_args()
    dump(args) if args.cmd == "dump" else compare(args)


if __name__ == "__main__":
    main()
