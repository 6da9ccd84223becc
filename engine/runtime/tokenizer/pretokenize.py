"""Byte-level BPE's pre-tokenizers: the regexes that cut text into words before merging, by the name in
`tokenizer.ggml.pre` (llama.cpp's table, llm_tokenizer_bpe), run the way llama.cpp's unicode_regex_split runs them."""
from __future__ import annotations

import logging
import re
import unicodedata

from wren.engine.runtime.gguffile import short

log = logging.getLogger(__name__)

# regexes exactly as llama.cpp writes them
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


class PreTokenizer:
    """The regexes of one pre-tokenizer; split(text) gives the words (each regex splits the pieces of the one before;
    what a regex does not match stays a piece of its own)."""

    def __init__(self, regexes: tuple[str, ...]):
        self._regexes = [_compile_llama_regex(r) for r in regexes]

    def split(self, text: str) -> list[str]:
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


def named(pre: str | None) -> tuple[str, PreTokenizer, dict]:
    """(name, pre-tokenizer, flags llama.cpp sets for it) for a `tokenizer.ggml.pre` value. No name means llama.cpp's
    'default'; an unknown one falls back to the GPT-2 regex; both with a warning."""
    if not pre:
        log.warning("GGUF has no tokenizer.ggml.pre; using llama.cpp's 'default' pre-tokenizer")
        pre = "default"
    if pre not in _PRE_TYPES:
        log.warning("unknown pre-tokenizer '%s'; falling back to the GPT-2 regex (token ids may differ "
                    "from the model's own tokenizer)", short(pre))
        regexes, flags = (_RE_GPT2,), {}
    else:
        regexes, flags = _PRE_TYPES[pre]
    return pre, PreTokenizer(regexes), flags
