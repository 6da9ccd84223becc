"""Parity figures of one model against llama.cpp's reference outputs, under a weight policy, and its perplexity.

    python tools/parity.py MODEL.gguf REFERENCE.json [--policy mixed|int4] [--act-blocks llama.cpp|32] [--text FILE]

Prints: top-1 agreement over every prompt position, the worst top-16 logit difference, how many 24-token greedy
continuations are identical, and (with --text) the perplexity over the text in windows of 512 tokens.
"""
import argparse
import json
import math

import numpy as np

from wren.engine.runtime import native
from wren.engine.runtime.model import ACT_BLOCKS, Model
from wren.engine.runtime.tokenizer import Tokenizer


def parity(m: Model, ref: dict, pool) -> dict:
    agree = total = 0
    worst = 0.0
    sq = []
    same = 0
    for p in ref["prompts"]:
        ids = p["ids"]
        want = p["greedy_ids"]
        ctx = m.context(len(ids) + len(want) + 8, 512, pool.threads)
        logits = ctx.forward(ids, 0, pool, all_logits=True)
        for i, top in enumerate(p["top16_per_position"]):
            agree += int(np.argmax(logits[i]) == top["ids"][0])
            total += 1
            diff = logits[i][top["ids"]] - np.array(top["logits"])
            worst = max(worst, float(np.abs(diff).max()))
            sq.append(diff ** 2)
        out, pos, tok = [], len(ids), int(np.argmax(logits[-1]))
        for _ in range(len(want)):
            out.append(tok)
            tok = int(np.argmax(ctx.forward([tok], pos, pool)[0]))
            pos += 1
        same += int(out == want)
    return {"top1": f"{agree}/{total}", "top1_pct": round(100 * agree / total, 1), "worst_top16": round(worst, 3),
            "rms_top16": round(float(np.sqrt(np.mean(np.concatenate(sq)))), 4),
            "greedy_identical": f"{same}/{len(ref['prompts'])}"}


def perplexity(m: Model, tok: Tokenizer, text: str, pool, window: int = 512) -> dict:
    ids = tok.encode(text, add_special=False)
    bos = [tok.bos_id] if tok.bos_id is not None else []
    nll, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = bos + ids[start:start + window]
        if len(chunk) < 2:
            break
        logits = m.context(len(chunk) + 1, 512, pool.threads).forward(chunk, 0, pool, all_logits=True)
        logits = logits.astype(np.float64)
        for i in range(len(bos), len(chunk) - 1):  # predict every token of the window after its first
            row = logits[i]
            mx = row.max()
            nll += mx + math.log(np.exp(row - mx).sum()) - row[chunk[i + 1]]
            count += 1
    return {"tokens_scored": count, "perplexity": round(math.exp(nll / count), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("reference")
    ap.add_argument("--policy", default="mixed", choices=["mixed", "int4"])
    ap.add_argument("--act-blocks", default="llama.cpp", choices=list(ACT_BLOCKS),
                    help="activation blocks of K-quant matrices (engine/runtime/model.py)")
    ap.add_argument("--text")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    m = Model(args.model, args.policy, act_blocks=args.act_blocks)
    ref = json.loads(open(args.reference, encoding="utf-8").read())
    out = {"model": m.path.name, "policy": args.policy, "act_blocks": args.act_blocks, "formats": m.stats.formats}
    with native.Pool(args.threads) as pool:
        out.update(parity(m, ref, pool))
        if args.text:
            tok = Tokenizer.from_gguf(m.gguf)
            out.update(perplexity(m, tok, open(args.text, encoding="utf-8").read(), pool))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
