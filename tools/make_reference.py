"""Regenerate llama.cpp's reference outputs for a model (the files in tests/data/reference/).

Development only: needs llama-cpp-python (`pip install -e ".[compare]"`, which builds llama.cpp from source).

    python tools/make_reference.py MODEL.gguf tests/data/reference/corpus.json OUT.json [--threads 2]

For each corpus string: its token ids three ways (add_special / parse_special as llama_tokenize takes them); for
each prompt: its ids, the 16 highest logits after every position, and the 24-token greedy continuation.
"""
import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    import llama_cpp

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--greedy", type=int, default=24)
    args = ap.parse_args()
    corpus = json.loads(Path(args.corpus).read_text())
    llm = llama_cpp.Llama(args.model, n_ctx=2048, n_batch=512, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=True, verbose=False)
    out = {"model": Path(args.model).name, "llama_cpp_python": llama_cpp.__version__,
           "note": f"greedy, as llama.cpp computes it on this machine, {args.threads} threads",
           "tokenize": [], "prompts": []}
    for text in corpus["tokenize"]:
        b = text.encode()
        out["tokenize"].append({
            "text": text,
            "ids_with_bos": llm.tokenize(b, add_bos=True, special=False) if b else [],
            "ids_no_bos": llm.tokenize(b, add_bos=False, special=False) if b else [],
            "ids_special": llm.tokenize(b, add_bos=False, special=True) if b else [],
        })
    eog = {llm.token_eos()}
    for text in corpus["prompts"]:
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[:len(ids)])
        top = []
        for row in scores:
            best = np.argsort(-row, kind="stable")[:16]
            top.append({"ids": [int(i) for i in best], "logits": [round(float(row[i]), 4) for i in best]})
        greedy = []
        for _ in range(args.greedy):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if tok in eog or llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
                break
            greedy.append(tok)
            llm.eval([tok])
        out["prompts"].append({"text": text, "ids": ids, "top16_per_position": top, "greedy_ids": greedy,
                               "greedy_text": llm.detokenize(greedy).decode("utf-8", errors="replace")})
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
