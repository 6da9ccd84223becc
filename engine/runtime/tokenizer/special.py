"""Special tokens as llama.cpp treats them.

- Detection (llama_vocab::impl::load): tokens whose *text* marks the end of a turn or generation, or fill-in-the-middle
  (``<|im_end|>``, ``</s>``, ``<|fim_pad|>``, ...), get the CONTROL attribute even when the vocabulary types them
  NORMAL or USER_DEFINED, so they are not matched in plain text; they make up the end-of-generation set.
- Partition (tokenizer_st_partition): before the merges run, special tokens are cut out of the text, longest first:
  USER_DEFINED ones always, CONTROL and UNKNOWN ones only with ``parse_special``.
"""
from __future__ import annotations

import logging
import re

from wren.engine.runtime.tokenizer.vocab import (ATTR_CONTROL, ATTR_HIDDEN, ATTR_LSTRIP, ATTR_NORMAL, ATTR_RSTRIP,
                                                 ATTR_SPECIAL, ATTR_USER_DEFINED, Vocab)

log = logging.getLogger(__name__)

_EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
              "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
_EOM_TEXTS = ("<|eom_id|>",)
_FIM_TEXTS = {
    "pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>",
            "<|prefix|>"),
    "suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>",
            "<|suffix|>"),
    "mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>",
            "<|middle|>"),
    "pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "sep": ("<|file_sep|>",),
}
_EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
              "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
              "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
              "<｜end▁of▁sentence｜>", "[e~[")
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss: forced USER_DEFINED
_C_SPACE = " \t\n\v\f\r"  # C isspace()


def detect(vocab: Vocab, eos_id: int | None, kinds: dict[str, int], model_name: str) -> tuple[int | None, frozenset]:
    """(end-of-turn id, end-of-generation ids) by llama.cpp's rules; sets the attributes it forces in `vocab`.
    `kinds` holds the ids the file names (eot, eom, fim_pre, ...)."""
    n, attr, t2i = len(vocab), vocab.attrs, vocab.ids
    kinds = {k: v for k, v in kinds.items() if 0 <= v < n}

    def force_control(i):
        if not attr[i] & ATTR_CONTROL:
            log.debug("control-looking token %d %r was not control-type; overriding", i, vocab.tokens[i])
            attr[i] |= ATTR_CONTROL

    for kind, texts in (("eot", _EOT_TEXTS), ("eom", _EOM_TEXTS),
                        *((f"fim_{k}", v) for k, v in _FIM_TEXTS.items())):
        if kind in kinds:
            continue
        for text in texts:  # llama.cpp takes the first in hash order; the order of the list here
            if text in t2i:
                kinds[kind] = t2i[text]
                force_control(t2i[text])
                break
    eog = {kinds[k] for k in ("fim_pad", "fim_rep", "fim_sep") if k in kinds}
    for text in _EOG_TEXTS:
        if text in t2i:
            eog.add(t2i[text])
            force_control(t2i[text])
    for text in _ALWAYS_RENDERED:
        if text in t2i:
            attr[t2i[text]] = ATTR_USER_DEFINED
    for i in (eos_id, kinds.get("eot"), kinds.get("eom")):
        if i is not None:
            eog.add(i)
    texts = {vocab.tokens[i]: i for i in eog}
    if "<|end|>" in texts and (("<|return|>" in texts and ("<|call|>" in texts or "<|calls|>" in texts))
                               or (("<|call|>" in texts or "<|calls|>" in texts) and "<|flush|>" in texts)):
        eog.discard(texts["<|end|>"])
        attr[texts["<|end|>"]] = ATTR_USER_DEFINED
    if "<|tool_response>" in texts and "</s>" in texts:
        eog.discard(texts["</s>"])
        attr[texts["</s>"]] = ATTR_NORMAL
    # per-model strip attributes (llama.cpp sets them by model name)
    name = model_name.lower()
    if "phi-3" in name or "phi3" in name:
        for i in range(n):
            if attr[i] & ATTR_SPECIAL:
                attr[i] |= ATTR_RSTRIP
        if "</s>" in t2i:
            attr[t2i["</s>"]] |= ATTR_RSTRIP
        for text in ("<unk>", "<s>", "<|endoftext|>"):
            if text in t2i:
                attr[t2i[text]] &= ~ATTR_RSTRIP
    return kinds.get("eot"), frozenset(eog)


class Partition:
    """tokenizer_st_partition over a vocabulary whose attributes are final. split(text, parse_special) gives the text
    cut into str fragments and special-token ids."""

    def __init__(self, vocab: Vocab):
        self._vocab = vocab
        # (byte length desc, id) order, one trie per mode
        order = [i for i in range(len(vocab)) if vocab.attrs[i] & ATTR_SPECIAL]
        order.sort(key=lambda i: (-len(vocab.tokens[i].encode("utf-8")), i))
        self._order = {tid: k for k, tid in enumerate(order)}
        self.ids = frozenset(order)
        self._tries: dict[bool, tuple | None] = {}

    def _trie(self, parse_special: bool):
        """(first-character regex, trie) over the special tokens this mode matches."""
        if parse_special in self._tries:
            return self._tries[parse_special]
        tokens, attr = self._vocab.tokens, self._vocab.attrs
        root: dict = {}
        for tid in self._order:
            if not parse_special and attr[tid] & ATTR_HIDDEN:
                continue
            node = root
            for ch in tokens[tid]:
                node = node.setdefault(ch, {})
            node[None] = tid
        result = None
        if root:
            first = re.compile("[" + "".join(re.escape(c) for c in sorted(root)) + "]")
            result = (first, root)
        self._tries[parse_special] = result
        return result

    def split(self, text: str, parse_special: bool) -> list:
        trie = self._trie(parse_special)
        if trie is None:
            return [text]
        first, root = trie
        present: set[int] = set()
        for m in first.finditer(text):
            node, i = root, m.start()
            while i < len(text):
                node = node.get(text[i])
                if node is None:
                    break
                i += 1
                tid = node.get(None)
                if tid is not None:
                    present.add(tid)
        if not present:
            return [text]
        frags: list = [text]
        tokens, attr = self._vocab.tokens, self._vocab.attrs
        for tid in sorted(present, key=self._order.__getitem__):
            tok = tokens[tid]
            lstrip, rstrip = attr[tid] & ATTR_LSTRIP, attr[tid] & ATTR_RSTRIP
            new: list = []
            for frag in frags:
                if isinstance(frag, int) or tok not in frag:
                    new.append(frag)
                    continue
                start = 0
                while True:
                    pos = frag.find(tok, start)
                    if pos < 0:
                        break
                    left = frag[start:pos]
                    if lstrip:
                        left = left.rstrip(_C_SPACE)
                    if left:
                        new.append(left)
                    new.append(tid)
                    start = pos + len(tok)
                    if rstrip:
                        while start < len(frag) and frag[start] in _C_SPACE:
                            start += 1
                if start < len(frag):
                    new.append(frag[start:])
            frags = new
        return frags
