"""Constrained decoding: a grammar (a JSON schema, a Lark grammar or a regex) masks the sampler's logits, so that
every token drawn keeps the text inside the grammar. The grammar engine is llguidance (see docs/serve.md for why).

    c = Constraint.json_schema(schema, tokenizer, stop_ids)   # one per generation: it keeps the parser's state
    Request(..., constraint=c)                                # Generator.stream masks, then reports each token

Without a constraint nothing here runs and generation is unchanged, bit for bit.
The assistant modes' formats are here too (MODE_GRAMMARS, mode_constraint): a small model cannot break them.
"""
from __future__ import annotations

import json
import threading
import weakref
from typing import Any, Iterable

import numpy as np

import llguidance
from llguidance import LLMatcher, LLTokenizer


class ConstraintError(ValueError):
    """A grammar or schema that cannot be compiled."""


class _Vocabulary:
    """What llguidance needs to know of a tokenizer: each token's bytes, the special ones, and how to encode."""

    def __init__(self, tokenizer: Any, stop_ids: Iterable[int]):
        n = tokenizer.vocab_size
        # control tokens are marked with a leading 0xff, as llguidance's llama.cpp adapter does: never plain text
        self.tokens = [(b"\xff" if tokenizer.is_control(i) else b"") + tokenizer.token_bytes(i) for i in range(n)]
        self.special_token_ids = [i for i in range(n) if tokenizer.is_control(i)]
        stops = sorted(set(stop_ids))
        self.eos_token_id = stops[0] if stops else tokenizer.eos_id
        self.bos_token_id = tokenizer.bos_id
        self._tok = tokenizer
        self.is_tokenizer_wrapper = True

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._tok.encode(text, add_special=False)


_cache: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def ll_tokenizer(tokenizer: Any, stop_ids: Iterable[int] = ()) -> LLTokenizer:
    """The llguidance view of a Wren tokenizer, where stop_ids (and the tokenizer's end-of-generation tokens) end
    the text. Built once per tokenizer and stop set (it walks the whole vocabulary)."""
    stops = frozenset(stop_ids) | frozenset(tokenizer.eog_ids)
    with _cache_lock:
        per_tok = _cache.setdefault(tokenizer, {})
        if stops not in per_tok:
            vocab = _Vocabulary(tokenizer, stops)
            per_tok[stops] = LLTokenizer(llguidance.TokenizerWrapper(vocab), n_vocab=tokenizer.vocab_size,
                                         eos_token=sorted(stops) or None)
        return per_tok[stops]


class Constraint:
    """One generation's grammar state: mask(logits) before each draw, accept(token) after it."""

    def __init__(self, grammar: str, tokenizer: Any, stop_ids: Iterable[int] = ()):
        self._ll = ll_tokenizer(tokenizer, stop_ids)
        error = LLMatcher.validate_grammar(grammar, self._ll)
        if error:
            raise ConstraintError(f"the grammar is not usable: {error}")
        self._matcher = LLMatcher(self._ll, grammar, log_level=0)
        if self._matcher.is_error():
            raise ConstraintError(f"the grammar is not usable: {self._matcher.get_error()}")
        self._n = tokenizer.vocab_size

    @classmethod
    def json_schema(cls, schema: dict | None, tokenizer: Any, stop_ids: Iterable[int] = ()) -> "Constraint":
        """Text that is one JSON value valid under schema (None: any JSON object)."""
        if schema is None:
            schema = {"type": "object"}
        if not isinstance(schema, dict):
            raise ConstraintError("a JSON schema is an object")
        try:
            grammar = LLMatcher.grammar_from_json_schema(json.dumps(schema),
                                                         defaults={"whitespace_flexible": False})
        except (ValueError, TypeError) as e:
            raise ConstraintError(f"the JSON schema is not usable: {e}") from None
        return cls(grammar, tokenizer, stop_ids)

    @classmethod
    def lark(cls, grammar: str, tokenizer: Any, stop_ids: Iterable[int] = ()) -> "Constraint":
        return cls(LLMatcher.grammar_from_lark(grammar), tokenizer, stop_ids)

    @classmethod
    def regex(cls, pattern: str, tokenizer: Any, stop_ids: Iterable[int] = ()) -> "Constraint":
        return cls(LLMatcher.grammar_from_regex(pattern), tokenizer, stop_ids)

    # ---- the logits-processor protocol that Generator.stream calls -------------------------------------------

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """A copy of logits where the tokens the grammar forbids next are -inf."""
        bits = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[:logits.size].astype(bool)
        if allowed.size < logits.size:  # logits wider than the vocabulary (padding rows): never allowed
            allowed = np.concatenate([allowed, np.zeros(logits.size - allowed.size, dtype=bool)])
        if not allowed.any():
            raise ConstraintError(f"the grammar allows no next token ({self._matcher.get_error() or 'dead end'})")
        out = np.asarray(logits, dtype=np.float32).reshape(-1).copy()
        out[~allowed] = -np.inf
        return out

    def accept(self, token: int) -> None:
        if not self._matcher.consume_token(int(token)):
            raise ConstraintError(f"token {token} breaks the grammar: {self._matcher.get_error()}")

    @property
    def finished(self) -> bool:
        """The grammar allows nothing more: the text is complete."""
        return self._matcher.is_stopped()

    @property
    def accepting(self) -> bool:
        """The text so far is a whole sentence of the grammar (it may still go on)."""
        return self._matcher.is_accepting()


# ---- the assistant modes' formats ------------------------------------------------------------------------------

# The formats the mode prompts already ask for (engine/assistant), as grammars: the parsers there keep working and
# a small model can no longer leave out the subject, the body, or one of the three replies.
MODE_GRAMMARS = {
    # "Subject: <line>\n\n<body>", the body starting with a letter (a greeting)
    "email": 'start: "Subject: " SUBJECT "\\n\\n" BODY\n'
             'SUBJECT: /[A-Za-z0-9"\'][^\\n]{2,100}/\n'
             'BODY: /[A-Za-z][^\\x00]*/\n',
    # three numbered replies of one line each, or "NO REPLY"
    "reply": 'start: "NO REPLY" | "1. " LINE "\\n2. " LINE "\\n3. " LINE\n'
             'LINE: /[A-Za-z"\'][^\\n]{2,90}/\n',
    # one reply alone (the modes ask for a missing intent on its own)
    "one_reply": 'start: LINE\n'
                 'LINE: /[A-Za-z"\'][^\\n]{2,90}/\n',
}

# The JSON the mode endpoints and `wren email|reply --json` answer with.
EMAIL_JSON_SCHEMA = {
    "type": "object",
    "properties": {"subject": {"type": "string", "minLength": 1, "maxLength": 120},
                   "body": {"type": "string", "minLength": 1}},
    "required": ["subject", "body"],
    "additionalProperties": False,
}
REPLY_JSON_SCHEMA = {
    "oneOf": [
        {"type": "object",
         "properties": {"replies": {"type": "array", "items": {"type": "string", "minLength": 1},
                                    "minItems": 1, "maxItems": 3}},
         "required": ["replies"], "additionalProperties": False},
        {"type": "object", "properties": {"no_reply_needed": {"const": True}},
         "required": ["no_reply_needed"], "additionalProperties": False},
    ],
}
SUMMARY_JSON_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}


def mode_constraint(engine: Any, mode: str) -> Constraint:
    """A fresh constraint for one generation of an assistant mode ("email", "reply" or "one_reply") on an engine
    (anything with .tokenizer and .template.stop_ids)."""
    if mode not in MODE_GRAMMARS:
        raise ValueError(f"no grammar for mode {mode!r} (known: {', '.join(MODE_GRAMMARS)})")
    return Constraint.lark(MODE_GRAMMARS[mode], engine.tokenizer, engine.template.stop_ids)
