"""Tokenizer built from a GGUF vocabulary, reproducing llama.cpp's `llama_tokenize` / `llama_token_to_piece`.

Two vocabulary types (`tokenizer.ggml.model`):

- ``gpt2``: byte-level BPE. The text is split by the pre-tokenizer regexes that `tokenizer.ggml.pre` names (llama.cpp's
  table), every piece is mapped byte -> printable char (GPT-2's byte encoder) and merged by merge rank.
- ``llama``: SentencePiece-style (Llama 2, Gemma). Spaces become U+2581, a space is prefixed when
  `add_space_prefix` says so, adjacent symbols are merged best-score first, and characters that are not tokens fall
  back to ``<0xNN>`` byte tokens.

Before either runs, special tokens are cut out of the text as llama.cpp does (`tokenizer_st_partition`): every
CONTROL / USER_DEFINED / UNKNOWN token, longest first; CONTROL and UNKNOWN ones only when ``parse_special=True``,
USER_DEFINED ones always. llama.cpp also forces the CONTROL attribute onto tokens whose *text* marks the end of
generation or fill-in-the-middle (``<|im_end|>``, ``</s>``, ``<|fim_pad|>``, ...), so such a token is not matched
in plain text even when the vocabulary types it NORMAL or USER_DEFINED; that is reproduced here.

Everything is pure Python and exact against llama.cpp's reference ids; repeated words are cached.
"""
from __future__ import annotations

import codecs
import heapq
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["Tokenizer", "StreamDecoder", "TokenizerError"]


class TokenizerError(ValueError):
    """The GGUF vocabulary cannot be turned into a tokenizer; the message says why."""


# token types in GGUF (llama_token_type) and llama.cpp's attribute bits (llama_token_attr)
TYPE_UNDEFINED, TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_USER_DEFINED, TYPE_UNUSED, TYPE_BYTE = range(7)
ATTR_UNDEFINED = 0
ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_NORMAL = 1 << 2
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5
ATTR_LSTRIP = 1 << 7
ATTR_RSTRIP = 1 << 8
_TYPE_TO_ATTR = np.array([ATTR_UNDEFINED, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_UNUSED,
                          ATTR_BYTE], dtype=np.int64)
_ATTR_SPECIAL = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN  # what tokenizer_st_partition looks for
_ATTR_HIDDEN = ATTR_CONTROL | ATTR_UNKNOWN  # skipped unless parse_special / rendered only with special=True

# --- llama.cpp's text-based detection of special tokens (llama_vocab::impl::load) -----------------------------------
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

# --- pre-tokenizer regexes (llm_tokenizer_bpe), exactly as llama.cpp writes them -------------------------------------
_RE_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_RE_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_RE_QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
             r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_RE_GPT4O = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
             r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
             r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
             r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
             r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_RE_TEKKEN = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
              r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
              r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_RE_BLOOM = " ?[^(\\s|.,!?…。，、।۔،)]+"
_RE_DEFAULT = (r"[\p{P}\$\+<=>\^~\|]+", _RE_GPT2, r"\p{N}+", r"[0-9][0-9][0-9]")


def _pre(names: str, regexes, **flags) -> dict:
    return {name: (tuple(regexes), flags) for name in names.split()}


# pre-tokenizer name -> (regexes, flags that llama.cpp sets for it)
_PRE_TYPES: dict[str, tuple[tuple[str, ...], dict]] = {
    **_pre("default", _RE_DEFAULT),
    **_pre("llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano", [_RE_LLAMA3],
           ignore_merges=True, add_bos=True),
    **_pre("dbrx smaug-bpe", [_RE_LLAMA3]),
    **_pre("glm4 chatglm-bpe", [_RE_LLAMA3], no_bos=True),
    **_pre("deepseek-coder", ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", r"\p{N}"]),
    **_pre("falcon", [r"[\p{P}\$\+<=>\^~\|`]+", _RE_GPT2, r"[0-9][0-9][0-9]"]),
    **_pre("starcoder refact command-r smollm codeshell exaone minerva-7b mellum2", [r"\p{N}", _RE_GPT2]),
    **_pre("gpt-2 gpt2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert jina-v1-en "
           "jina-v2-code roberta-bpe mpt olmo jais trillion granite-docling exaone4", [_RE_GPT2]),
    **_pre("qwen2 deepseek-r1-qwen kormo f2llmv2 stablelm2 megrez hunyuan solar-open grok-2", [_RE_QWEN2]),
    **_pre("gpt-4o llama4 kanana2 minimax-m2", [_RE_GPT4O]),
    **_pre("tekken", [_RE_TEKKEN], ignore_merges=True, add_bos=True),
    **_pre("poro-chat bloom gpt3-finnish", [_RE_BLOOM]),
    **_pre("viking", [_RE_BLOOM, r"\p{N}"]),
    **_pre("chameleon", [r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )",
                         r"\p{N}", r"[\p{P}!-/:-@\[-`{-~]", _RE_GPT2], add_bos=True),
    **_pre("seed-coder", [r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
                          r"|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"]),
    **_pre("bailingmoe bailingmoe2 llada-moe", [r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+"
                                                r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"]),
}

# llama.cpp's regex engine sees a "collapsed" text: ASCII stays, every other code point becomes one byte per Unicode
# category, and \p{..} in the regex becomes that byte plus the ASCII members of the category (unicode.cpp).
_CAT_CHAR = {"N": "\u00d1", "L": "\u00d2", "P": "\u00d3", "M": "\u00d4", "S": "\u00d5"}
_CAT_OTHER = "\u00d0"
_UCAT = {"N": "\u00d10-9", "L": "\u00d2A-Za-z", "P": "\u00d3!-#%-*,-/:-;?-@\\[-\\]_\\{\\}", "M": "\u00d4",
         "S": "\u00d5\\$\\+<->\\^`\\|", "Lu": "\u00d2A-Za-z", "Ll": "\u00d2A-Za-z", "Lt": "\u00d2A-Za-z",
         "Lm": "\u00d2A-Za-z", "Lo": "\u00d2A-Za-z"}
_UCAT_RE = re.compile(r"\\p\{(N|L|P|M|S|Lu|Ll|Lt|Lm|Lo)\}")
# unicode_set_whitespace (the White_Space property); C++ std::regex's \s only knows the ASCII ones, so llama.cpp maps
# the others to \v
_WHITESPACE = frozenset(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028,
                                  0x2029, 0x202F, 0x205F, 0x3000]))


class _Collapse(dict):
    """str.translate table: non-ASCII code point -> its category byte, computed once per code point."""

    def __init__(self, keep_categories: bool):
        super().__init__()
        self.keep_categories = keep_categories

    def __missing__(self, cp: int) -> str | int:
        if cp < 128:
            value: str | int = cp
        else:
            ch = chr(cp)
            if ch in _WHITESPACE:
                value = "\x0b"
            elif not self.keep_categories:
                value = cp
            else:
                value = _CAT_CHAR.get(unicodedata.category(ch)[0], _CAT_OTHER)
        if len(self) > 100_000:  # bound the memo (a hostile text can name every code point)
            self.clear()
        self[cp] = value
        return value


_COLLAPSE = _Collapse(True)  # for regexes with \p{..}
_WTEXT = _Collapse(False)  # for the others (std::wregex on the code points, non-ASCII spaces -> \v)


def _compile_llama_regex(expr: str) -> tuple[re.Pattern, bool]:
    """Python equivalent of how llama.cpp runs one pre-tokenizer regex: (compiled, uses collapsed text)."""
    if not _UCAT_RE.search(expr):
        return re.compile(expr, re.ASCII), False
    out, inside, i = [], False, 0
    while i < len(expr):
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            inside = True
        elif inside and c == "]" and expr[i - 1] != "\\":
            inside = False
        elif c == "\\":
            m = _UCAT_RE.match(expr, i)
            if m:
                cls = _UCAT[m.group(1)]
                out.append(cls if inside else f"[{cls}]")
                i = m.end()
                continue
            out.append(expr[i:i + 2])  # keep escapes (\s, \[, ...) whole
            i += 2
            continue
        out.append(c)
        i += 1
    return re.compile("".join(out), re.ASCII), True


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte encoder: byte -> printable character."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return [table[b] for b in range(256)]


_BYTE_ENC = _bytes_to_unicode()
_BYTE_DEC = {c: b for b, c in enumerate(_BYTE_ENC)}
_LATIN1_TO_BYTELEVEL = str.maketrans({chr(b): c for b, c in enumerate(_BYTE_ENC)})
_C_SPACE = " \t\n\v\f\r"  # C isspace()
_SURROGATES = re.compile("[\ud800-\udfff]")
_CACHE_LIMIT = 200_000


def _meta(g: Any) -> Mapping[str, Any]:
    if isinstance(g, Mapping):
        return g
    md = getattr(g, "metadata", None)
    if isinstance(md, Mapping):
        return md
    raise TypeError("Tokenizer.from_gguf needs a GGUFFile (wren.engine.runtime.gguffile.read) or its metadata dict")


class Tokenizer:
    """Encode / decode text exactly as llama.cpp does for the vocabulary in a GGUF file.

    Tokenizer.from_gguf(g)                      build from a GGUFFile or its metadata dict (no network)
    encode(text, add_special=True, parse_special=False) -> list[int]    as llama_tokenize
    decode(ids, special=True) -> str           special=False hides CONTROL/UNKNOWN tokens
    token_bytes(id, special=True) -> bytes     the piece a token stands for (llama_token_to_piece)
    stream(special=True) -> StreamDecoder      feed(id) -> str / flush() -> str, whole characters only
    bos_id, eos_id, eot_id, vocab_size, add_bos, add_eos, add_space_prefix, vocab_type ("bpe"/"spm"), pre
    special_ids (what partitioning looks for), eog_ids (llama.cpp's end-of-generation set), is_control(id),
    is_eog(id), token_text(id), token_to_id(text)
    """

    def __init__(self, tokens: list[str], token_types: Iterable[int] | None = None,
                 scores: Iterable[float] | None = None, merges: list[str] | None = None, *,
                 model: str = "gpt2", pre: str | None = None, bos_id: int | None = None, eos_id: int | None = None,
                 unk_id: int | None = None, add_bos: bool | None = None, add_eos: bool | None = None,
                 add_space_prefix: bool | None = None, special_ids_by_kind: Mapping[str, int] | None = None,
                 model_name: str = ""):
        n = len(tokens)
        if n == 0:
            raise TokenizerError("the vocabulary is empty")
        self.model = model
        if model == "llama":
            self.vocab_type = "spm"
        elif model == "gpt2":
            self.vocab_type = "bpe"
        else:
            raise TokenizerError(f"tokenizer model '{model}' is not supported (only 'gpt2' BPE and 'llama' SPM)")

        # token texts (llama.cpp renames empty ones) and text -> id
        tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        self._tokens = tokens
        self._tok2id: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        if len(self._tok2id) != n:
            seen: dict[str, int] = {}
            for i, t in enumerate(tokens):
                if t in seen:
                    raise TokenizerError(f"duplicate token in vocabulary: {t!r} has ids {seen[t]} and {i}")
                seen[t] = i
        if scores is None:
            self._scores = [0.0] * n
        else:
            sc = np.asarray(scores, dtype=np.float64)
            if sc.shape[0] < n:
                raise TokenizerError(f"{sc.shape[0]} scores for {n} tokens")
            self._scores = sc[:n].tolist()
        if token_types is None:
            attrs = np.full(n, ATTR_NORMAL, dtype=np.int64)
        else:
            tt = np.asarray(token_types, dtype=np.int64)
            if tt.shape[0] < n:
                raise TokenizerError(f"{tt.shape[0]} token types for {n} tokens")
            tt = tt[:n]
            attrs = np.where((tt >= 0) & (tt < len(_TYPE_TO_ATTR)), _TYPE_TO_ATTR[np.clip(tt, 0, 6)], ATTR_UNDEFINED)
        self._attr: list[int] = attrs.tolist()

        # pre-tokenizer, flags and defaults as llama.cpp's load() sets them
        pre_flags: dict = {}
        self.ignore_merges = False
        if self.vocab_type == "bpe":
            if merges is None:
                raise TokenizerError("a gpt2 (BPE) vocabulary needs tokenizer.ggml.merges")
            d_bos, d_eos, d_unk = 11, 11, None
            d_add_bos, d_space = False, False
            if not pre:
                log.warning("GGUF has no tokenizer.ggml.pre; using llama.cpp's 'default' pre-tokenizer")
                pre = "default"
            if pre not in _PRE_TYPES:
                log.warning("unknown pre-tokenizer '%s'; falling back to the GPT-2 regex (token ids may differ "
                            "from the model's own tokenizer)", pre)
                regexes, pre_flags = (_RE_GPT2,), {}
            else:
                regexes, pre_flags = _PRE_TYPES[pre]
            self.ignore_merges = bool(pre_flags.get("ignore_merges"))
            d_add_bos = bool(pre_flags.get("add_bos", d_add_bos))
            if pre_flags.get("no_bos"):
                d_bos = None
            self._regexes = [_compile_llama_regex(r) for r in regexes]
            self._needs_collapse = any(c for _, c in self._regexes)
            # merges: "first second", split at the first space after position 0; the first rank of a pair wins
            pairs = []
            for m in merges:
                p = m.find(" ", 1)
                pairs.append((m[:p], m[p + 1:]) if p >= 0 else ("", ""))
            self._ranks: dict[tuple[str, str], int] = dict(zip(reversed(pairs), range(len(pairs) - 1, -1, -1)))
        else:
            d_bos, d_eos, d_unk = 1, 2, 0
            d_add_bos, d_space = True, True
            pre = pre or "default"
            self._ranks = {}
        self.pre = pre
        self.add_space_prefix = d_space if add_space_prefix is None else bool(add_space_prefix)
        self.add_bos = d_add_bos if add_bos is None else bool(add_bos)
        self.add_eos = False if add_eos is None else bool(add_eos)

        def valid(i):
            return i if i is not None and 0 <= int(i) < n else None

        self.bos_id = valid(bos_id) if bos_id is not None else valid(d_bos)
        self.eos_id = valid(eos_id) if eos_id is not None else valid(d_eos)
        self.unk_id = valid(unk_id) if unk_id is not None else valid(d_unk)
        if self.add_bos and self.bos_id is None:
            raise TokenizerError("add_bos_token is true, but there is no valid bos_token_id")
        if self.add_eos and self.eos_id is None:
            raise TokenizerError("add_eos_token is true, but there is no valid eos_token_id")

        self._detect_special(dict(special_ids_by_kind or {}), model_name)

        # special-token partition: (byte length desc, id) order, one trie per mode
        cache = [i for i in range(n) if self._attr[i] & _ATTR_SPECIAL]
        cache.sort(key=lambda i: (-len(tokens[i].encode("utf-8")), i))
        self._special_order = {tid: k for k, tid in enumerate(cache)}
        #: ids llama.cpp cuts out of the text before tokenizing: CONTROL and UNKNOWN (only with parse_special) and
        #: USER_DEFINED (always)
        self.special_ids = frozenset(cache)
        self._tries: dict[bool, tuple | None] = {}

        # byte tokens, SPM split points, caches
        self._byte_ids = [self._byte_to_token(b) for b in range(256)] if self.vocab_type == "spm" else []
        self._word_cache: dict[str, tuple[int, ...]] = {}
        self._pieces: list[bytes | None] = [None] * n
        if self.vocab_type == "spm":
            # a boundary just before U+2581 can be cut (and the halves cached) unless some token spans it
            left = {t[i - 1] for t in tokens if "\u2581" in t[1:]
                    for i in range(1, len(t)) if t[i] == "\u2581" and t[i - 1] != "\u2581"}
            left.add("\u2581")
            self._spm_split = (re.compile("(?<=[^" + "".join(re.escape(c) for c in sorted(left)) + "])(?=\u2581)")
                               if len(left) < 512 else None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_gguf(cls, g: Any) -> "Tokenizer":
        """Build from a GGUFFile (wren.engine.runtime.gguffile.read) or its metadata dict."""
        md = _meta(g)
        model = md.get("tokenizer.ggml.model")
        if model is None:
            raise TokenizerError("GGUF has no tokenizer.ggml.model")
        tokens = md.get("tokenizer.ggml.tokens")
        if tokens is None:
            raise TokenizerError("GGUF has no tokenizer.ggml.tokens")
        kinds = {}
        for kind, key in (("eot", "eot"), ("eom", "eom"), ("fim_pre", "fim_pre"), ("fim_suf", "fim_suf"),
                          ("fim_mid", "fim_mid"), ("fim_pad", "fim_pad"), ("fim_rep", "fim_rep"),
                          ("fim_sep", "fim_sep"), ("fim_pre", "prefix"), ("fim_suf", "suffix"),
                          ("fim_mid", "middle")):
            v = md.get(f"tokenizer.ggml.{key}_token_id")
            if v is not None and kind not in kinds:
                kinds[kind] = int(v)
        opt = md.get
        return cls(list(tokens), opt("tokenizer.ggml.token_type"), opt("tokenizer.ggml.scores"),
                   opt("tokenizer.ggml.merges"), model=str(model), pre=opt("tokenizer.ggml.pre"),
                   bos_id=opt("tokenizer.ggml.bos_token_id"), eos_id=opt("tokenizer.ggml.eos_token_id"),
                   unk_id=opt("tokenizer.ggml.unknown_token_id"), add_bos=opt("tokenizer.ggml.add_bos_token"),
                   add_eos=opt("tokenizer.ggml.add_eos_token"),
                   add_space_prefix=opt("tokenizer.ggml.add_space_prefix"), special_ids_by_kind=kinds,
                   model_name=str(opt("general.name") or ""))

    @classmethod
    def from_path(cls, path) -> "Tokenizer":
        from wren.engine.runtime import gguffile
        with gguffile.read(path) as g:
            return cls.from_gguf(g)

    def _detect_special(self, kinds: dict[str, int], model_name: str) -> None:
        """llama.cpp's text-based detection of EOT/EOM/FIM/EOG tokens and the attributes it forces on them."""
        n, attr, t2i = len(self._tokens), self._attr, self._tok2id
        kinds = {k: v for k, v in kinds.items() if 0 <= v < n}

        def force_control(i):
            if not attr[i] & ATTR_CONTROL:
                log.debug("control-looking token %d %r was not control-type; overriding", i, self._tokens[i])
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
        for i in (self.eos_id, kinds.get("eot"), kinds.get("eom")):
            if i is not None:
                eog.add(i)
        texts = {self._tokens[i]: i for i in eog}
        if "<|end|>" in texts and (("<|return|>" in texts and ("<|call|>" in texts or "<|calls|>" in texts))
                                   or (("<|call|>" in texts or "<|calls|>" in texts) and "<|flush|>" in texts)):
            eog.discard(texts["<|end|>"])
            attr[texts["<|end|>"]] = ATTR_USER_DEFINED
        if "<|tool_response>" in texts and "</s>" in texts:
            eog.discard(texts["</s>"])
            attr[texts["</s>"]] = ATTR_NORMAL
        self.eot_id = kinds.get("eot")
        self.special_token_ids = dict(kinds)
        self.eog_ids = frozenset(eog)
        # per-model strip attributes (llama.cpp sets them by model name)
        name = model_name.lower()
        if "phi-3" in name or "phi3" in name:
            for i in range(n):
                if attr[i] & _ATTR_SPECIAL:
                    attr[i] |= ATTR_RSTRIP
            if "</s>" in t2i:
                attr[t2i["</s>"]] |= ATTR_RSTRIP
            for text in ("<unk>", "<s>", "<|endoftext|>"):
                if text in t2i:
                    attr[t2i[text]] &= ~ATTR_RSTRIP

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def is_control(self, token_id: int) -> bool:
        """CONTROL tokens (after llama.cpp's overrides): matched only with parse_special, hidden with special=False."""
        return bool(self._attr[token_id] & ATTR_CONTROL)

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.eog_ids

    def token_text(self, token_id: int) -> str:
        """The raw vocabulary string of a token (U+2581 / byte-level characters as stored)."""
        return self._tokens[token_id]

    def token_to_id(self, text: str) -> int | None:
        """The id of the token whose vocabulary string is exactly `text`, or None."""
        return self._tok2id.get(text)

    def token_attr(self, token_id: int) -> int:
        return self._attr[token_id]

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of `text`, as llama_tokenize(text, add_special, parse_special)."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes str, not {type(text).__name__}")
        if _SURROGATES.search(text):
            text = _SURROGATES.sub("\ufffd", text)
        fragments = self._partition(text, parse_special) if text else []
        out: list[int] = []
        if self.vocab_type == "spm":
            if add_special and self.add_bos:
                out.append(self.bos_id)
            prev_special = True
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    prev_special = True
                    continue
                if self.add_space_prefix and prev_special:
                    frag = " " + frag
                self._spm_encode(frag.replace(" ", "\u2581"), out)
                prev_special = False
        else:
            if add_special and self.add_bos:
                out.append(self.bos_id)
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                else:
                    self._bpe_encode(frag, out)
        if add_special and self.add_eos:
            out.append(self.eos_id)
        return out

    def __call__(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.encode(text, add_special, parse_special)

    def _trie(self, parse_special: bool):
        """(first-character regex, trie) over the special tokens this mode matches."""
        if parse_special in self._tries:
            return self._tries[parse_special]
        root: dict = {}
        for tid in self._special_order:
            if not parse_special and self._attr[tid] & _ATTR_HIDDEN:
                continue
            node = root
            for ch in self._tokens[tid]:
                node = node.setdefault(ch, {})
            node[None] = tid
        result = None
        if root:
            first = re.compile("[" + "".join(re.escape(c) for c in sorted(root)) + "]")
            result = (first, root)
        self._tries[parse_special] = result
        return result

    def _partition(self, text: str, parse_special: bool) -> list:
        """tokenizer_st_partition: the text cut into str fragments and special-token ids."""
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
        tokens, attr = self._tokens, self._attr
        for tid in sorted(present, key=self._special_order.__getitem__):
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

    # --- BPE
    def _split_words(self, text: str) -> list[str]:
        """unicode_regex_split: the pre-tokenizer's pieces of `text`."""
        collapsed = wtext = None
        spans = [(0, len(text))]
        for rx, uses_collapsed in self._regexes:
            if uses_collapsed:
                if collapsed is None:
                    collapsed = text if text.isascii() else text.translate(_COLLAPSE)
                subject = collapsed
            else:
                if wtext is None:
                    wtext = text if text.isascii() else text.translate(_WTEXT)
                subject = wtext
            new = []
            for start, end in spans:
                pos = start
                for m in rx.finditer(subject, start, end):
                    s, e = m.span()
                    if s > pos:
                        new.append((pos, s))
                    if e > s:
                        new.append((s, e))
                    pos = e
                if pos < end:
                    new.append((pos, end))
            spans = new
        return [text[s:e] for s, e in spans]

    def _bpe_encode(self, text: str, out: list[int]) -> None:
        cache = self._word_cache
        for word in self._split_words(text):
            ids = cache.get(word)
            if ids is None:
                ids = self._bpe_word(word.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_BYTELEVEL))
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[word] = ids
            out.extend(ids)

    def _bpe_word(self, word: str) -> tuple[int, ...]:
        t2i = self._tok2id
        if self.ignore_merges:
            tid = t2i.get(word)
            if tid is not None:
                return (tid,)
        syms = list(word)
        n = len(syms)
        if n > 1:
            ranks = self._ranks
            nxt = list(range(1, n + 1))
            nxt[-1] = -1
            prv = list(range(-1, n - 1))
            heap = []
            for i in range(n - 1):
                r = ranks.get((syms[i], syms[i + 1]))
                if r is not None:
                    heap.append((r, i, i + 1, syms[i] + syms[i + 1]))
            heapq.heapify(heap)
            while heap:
                _, left, right, text = heapq.heappop(heap)
                a, b = syms[left], syms[right]
                if not a or not b or a + b != text:
                    continue
                syms[left], syms[right] = text, ""
                nr = nxt[right]
                nxt[left] = nr
                if nr >= 0:
                    prv[nr] = left
                pl = prv[left]
                if pl >= 0:
                    r = ranks.get((syms[pl], text))
                    if r is not None:
                        heapq.heappush(heap, (r, pl, left, syms[pl] + text))
                if nr >= 0:
                    r = ranks.get((text, syms[nr]))
                    if r is not None:
                        heapq.heappush(heap, (r, left, nr, text + syms[nr]))
        ids = []
        for s in syms:
            if not s:
                continue
            tid = t2i.get(s)
            if tid is not None:
                ids.append(tid)
            else:  # llama.cpp looks each byte of the symbol up as a one-byte token; others are dropped
                for ch in s:
                    if len(ch.encode("utf-8")) == 1:
                        tid = t2i.get(ch)
                        if tid is not None:
                            ids.append(tid)
        return tuple(ids)

    # --- SPM
    def _byte_to_token(self, b: int) -> int | None:
        tid = self._tok2id.get(f"<0x{b:02X}>")
        if tid is None:
            tid = self._tok2id.get(chr(b)) if b < 128 else None
        return tid

    def _spm_encode(self, text: str, out: list[int]) -> None:
        cache = self._word_cache
        parts = self._spm_split.split(text) if self._spm_split is not None else [text]
        for part in parts:
            if not part:
                continue
            ids = cache.get(part)
            if ids is None:
                ids = self._spm_segment(part)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[part] = ids
            out.extend(ids)

    def _spm_segment(self, text: str) -> tuple[int, ...]:
        """llm_tokenizer_spm_session::tokenize on one segment (spaces already U+2581)."""
        t2i, scores = self._tok2id, self._scores
        syms = list(text)
        n = len(syms)
        if n > 1:
            nxt = list(range(1, n + 1))
            nxt[-1] = -1
            prv = list(range(-1, n - 1))
            heap = []
            for i in range(n - 1):
                pair = syms[i] + syms[i + 1]
                tid = t2i.get(pair)
                if tid is not None:
                    heap.append((-scores[tid], i, i + 1, 2))
            heapq.heapify(heap)
            while heap:
                _, left, right, size = heapq.heappop(heap)
                a, b = syms[left], syms[right]
                if not a or not b or len(a) + len(b) != size:
                    continue
                merged = a + b
                syms[left], syms[right] = merged, ""
                nr = nxt[right]
                nxt[left] = nr
                if nr >= 0:
                    prv[nr] = left
                pl = prv[left]
                if pl >= 0:
                    cand = syms[pl] + merged
                    tid = t2i.get(cand)
                    if tid is not None:
                        heapq.heappush(heap, (-scores[tid], pl, left, len(cand)))
                if nr >= 0:
                    cand = merged + syms[nr]
                    tid = t2i.get(cand)
                    if tid is not None:
                        heapq.heappush(heap, (-scores[tid], left, nr, len(cand)))
        ids = []
        for s in syms:
            if not s:
                continue
            tid = t2i.get(s)
            if tid is not None:
                ids.append(tid)
                continue
            for byte in s.encode("utf-8"):  # byte fallback
                tid = self._byte_ids[byte]
                if tid is None:
                    tid = self.unk_id
                if tid is not None:
                    ids.append(tid)
        return tuple(ids)

    # ------------------------------------------------------------------ decoding
    def token_bytes(self, token_id: int, special: bool = True) -> bytes:
        """The bytes a token stands for (llama_token_to_piece). CONTROL/UNKNOWN tokens give their text when
        `special`, else b''; UNUSED/UNDEFINED tokens give b'' (as llama.cpp)."""
        attr = self._attr[token_id]
        if not special and attr & _ATTR_HIDDEN:
            return b""
        piece = self._pieces[token_id]
        if piece is None:
            piece = self._piece(token_id)
            self._pieces[token_id] = piece
        return piece

    def _piece(self, token_id: int) -> bytes:
        text, attr = self._tokens[token_id], self._attr[token_id]
        if attr & (_ATTR_HIDDEN | ATTR_USER_DEFINED):
            return text.encode("utf-8")
        if attr & ATTR_NORMAL:
            if self.vocab_type == "spm":
                return text.replace("\u2581", " ").encode("utf-8")
            dec = _BYTE_DEC
            return b"".join(bytes((dec[c],)) if c in dec else c.encode("utf-8") for c in text)
        if attr & ATTR_BYTE:
            try:
                return bytes((int(text[3:5], 16),))
            except ValueError:
                return text.encode("utf-8")
        return b""

    def decode_bytes(self, ids: Iterable[int], special: bool = True) -> bytes:
        data = b"".join(self.token_bytes(int(i), special) for i in ids)
        return data

    def decode(self, ids: Iterable[int], special: bool = True) -> str:
        """The text of `ids`. Special (CONTROL) tokens are rendered as their text unless special=False. With
        add_space_prefix (Llama 2 style SPM) the space the encoder prefixed is removed from the first text token
        (llama.cpp removes it only when that token comes first, before any BOS). Bytes that do not form valid
        UTF-8 become U+FFFD."""
        ids = [int(i) for i in ids]
        parts = []
        strip = self.add_space_prefix
        for i in ids:
            piece = self.token_bytes(i, special)
            if strip and piece and not self._attr[i] & _ATTR_HIDDEN:
                if piece.startswith(b" "):
                    piece = piece[1:]
                strip = False
            parts.append(piece)
        return b"".join(parts).decode("utf-8", errors="replace")

    def stream(self, special: bool = True) -> "StreamDecoder":
        """An incremental decoder for generated ids: feed(id) -> text, never half a UTF-8 character."""
        return StreamDecoder(self, special)

    def __repr__(self) -> str:
        return (f"Tokenizer({self.vocab_type}, pre={self.pre!r}, vocab={self.vocab_size}, bos={self.bos_id}, "
                f"eos={self.eos_id}, add_bos={self.add_bos})")


class StreamDecoder:
    """Turns a stream of token ids into text. A byte-fallback or byte-level token may carry part of a UTF-8
    character; its bytes are held until the character is complete, so every string returned is whole characters.
    Invalid byte sequences come out as U+FFFD. flush() returns what is still held (as U+FFFD if incomplete)."""

    def __init__(self, tokenizer: Tokenizer, special: bool = True):
        self._tok = tokenizer
        self._special = special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._strip = tokenizer.add_space_prefix

    def feed(self, token_id: int) -> str:
        tok = self._tok
        piece = tok.token_bytes(int(token_id), self._special)
        if self._strip and piece and not tok.token_attr(int(token_id)) & _ATTR_HIDDEN:
            if piece.startswith(b" "):
                piece = piece[1:]
            self._strip = False
        return self._dec.decode(piece, final=False)

    def feed_many(self, ids: Iterable[int]) -> str:
        return "".join(self.feed(i) for i in ids)

    def flush(self) -> str:
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished character are being held."""
        return bool(self._dec.getstate()[0])
