"""Constrained decoding: grammars mask the logits so that whatever the logits say, the text stays in the grammar.
Unit tests run on a small byte-level vocabulary; the last test (marked model) runs the assistant modes' grammars
on SmolLM2 with the modes' own prompts and parsers."""
import asyncio
import json
import os

import jsonschema
import numpy as np
import pytest

from wren.engine.runtime.constrained import (
    EMAIL_JSON_SCHEMA, MODE_GRAMMARS, REPLY_JSON_SCHEMA, Constraint, ConstraintError, mode_constraint)
from wren.engine.runtime.sampling import Sampler, SamplingParams

EOS = 256 + 6


class ByteTokenizer:
    """256 byte tokens, a few multi-byte ones, and a control end-of-text token."""
    words = [b'{"', b'":', b'true', b'false', b'null', b', ']

    def __init__(self):
        self.pieces = [bytes((b,)) for b in range(256)] + self.words + [b"<|end|>"]
        self.vocab_size = len(self.pieces)
        self.eog_ids = frozenset({EOS})
        self.eos_id, self.bos_id = EOS, None

    def is_control(self, i):
        return i == EOS

    def token_bytes(self, i, special=True):
        return self.pieces[i]

    def encode(self, text, add_special=False):
        return list(text.encode())  # byte by byte: valid, if not the shortest

    def decode(self, ids):
        return b"".join(self.pieces[i] for i in ids).decode()


TOK = ByteTokenizer()


def run(constraint, seed, steps=400, params=SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0)):
    """Draw from random logits through the constraint until it ends; the text and the way it ended."""
    rng = np.random.default_rng(seed)
    sampler = Sampler(SamplingParams(**{**params.__dict__, "seed": seed}))
    ids = []
    for _ in range(steps):
        logits = rng.normal(0, 3, TOK.vocab_size).astype(np.float32)
        logits[EOS] -= 4.0  # ending early is less likely, as with a real model
        token = sampler.sample(constraint.mask(logits), ids)
        if token == EOS:
            return TOK.decode(ids), "eos"
        constraint.accept(token)
        ids.append(token)
        if constraint.finished:
            return TOK.decode(ids), "finished"
    return TOK.decode(ids), "length"


SCHEMA = {"type": "object",
          "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 99},
                         "tag": {"enum": ["a", "b"]}, "word": {"type": "string", "pattern": "^[a-z]{1,6}$"}},
          "required": ["ok", "n", "tag", "word"], "additionalProperties": False}


@pytest.mark.parametrize("seed", range(12))
def test_json_schema_holds_whatever_the_logits(seed):
    text, how = run(Constraint.json_schema(SCHEMA, TOK, [EOS]), seed)
    assert how in ("eos", "finished"), text
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("seed", range(4))
def test_json_object_is_an_object(seed):
    text, how = run(Constraint.json_schema(None, TOK, [EOS]), seed, steps=3000)
    if how != "length":
        assert isinstance(json.loads(text), dict)


def test_greedy_sampling_respects_the_mask():
    c = Constraint.regex(r"yes|no", TOK, [EOS])
    logits = np.zeros(TOK.vocab_size, np.float32)
    logits[ord("x")] = 50.0  # the model's favourite is forbidden
    logits[ord("n")] = 1.0
    token = Sampler(SamplingParams(temperature=0.0)).sample(c.mask(logits))
    assert token == ord("n")
    c.accept(token)
    assert not c.finished and not c.accepting
    c.accept(ord("o"))
    assert c.finished and c.accepting


def test_a_forbidden_token_and_a_bad_schema_are_errors():
    c = Constraint.regex(r"[0-9]+", TOK, [EOS])
    with pytest.raises(ConstraintError):
        c.accept(ord("a"))
    with pytest.raises(ConstraintError):
        Constraint.json_schema({"type": "no-such-type"}, TOK, [EOS])
    with pytest.raises(ConstraintError):
        Constraint.json_schema(["not", "a", "schema"], TOK, [EOS])


def test_the_mask_leaves_allowed_logits_alone():
    c = Constraint.regex(r"[ab]c", TOK, [EOS])
    logits = np.arange(TOK.vocab_size, dtype=np.float32)
    out = c.mask(logits)
    assert np.isfinite(out).sum() == 2 and out[ord("a")] == logits[ord("a")] and out[ord("b")] == logits[ord("b")]
    assert logits[ord("x")] == ord("x")  # the caller's array is untouched


@pytest.mark.parametrize("mode", sorted(MODE_GRAMMARS))
def test_mode_grammars_compile_and_generate(mode):
    class E:
        tokenizer = TOK

        class template:
            stop_ids = frozenset({EOS})

    text, how = run(mode_constraint(E, mode), 1, steps=600)
    if mode == "reply":
        assert text == "NO REPLY" or text.startswith("1. ") and "\n2. " in text and "\n3. " in text
    elif mode == "email":
        assert text.startswith("Subject: ") and "\n\n" in text
    assert how in ("eos", "finished", "length")


def test_mode_json_schemas_are_valid_schemas():
    jsonschema.validate({"replies": ["Sure.", "No.", "When?"]}, REPLY_JSON_SCHEMA)
    jsonschema.validate({"no_reply_needed": True}, REPLY_JSON_SCHEMA)
    jsonschema.validate({"subject": "Hi", "body": "Hello."}, EMAIL_JSON_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"subject": "", "body": "x"}, EMAIL_JSON_SCHEMA)


# ---- the modes' formats on a real model --------------------------------------------------------------------------

MESSAGES = [
    "Can we move our call to Thursday afternoon?", "Are you coming to the party on Saturday?",
    "Please review the attached contract and tell me if the terms work for you.",
    "Hey, do you still have my umbrella?", "The server is down again, can you take a look?",
    "Would you like to join the book club this month?", "Can you cover my shift tomorrow morning?",
    "Did you get a chance to read my proposal?", "Lunch at noon?", "Could you lend me your car this weekend?",
]
POINTS = ["the meeting moves to Friday at 3pm", "thank the team for the launch", "ask for the invoice of March",
          "decline the invitation to speak, suggest a colleague", "remind everyone of the deadline on the 12th",
          "request two days off next week", "welcome the new intern Sam", "ask the landlord to fix the heating"]


@pytest.mark.model
def test_mode_formats_hold_on_smollm2():
    """The modes' prompts and parsers with the modes' grammars: every run well-formed (WREN_MODE_RUNS runs each,
    default 4; docs/serve.md records 50)."""
    from conftest import model_or_skip
    from wren.engine.assistant import email, reply
    from wren.engine.engine import Done, Engine, Request

    runs = int(os.environ.get("WREN_MODE_RUNS", "4"))
    path = model_or_skip("SmolLM2-135M-Instruct")

    async def complete(engine, messages, mode, seed, limit):
        req = Request(messages=messages, sampling=SamplingParams(temperature=0.7, seed=seed), max_new_tokens=limit,
                      trim=False, constraint=mode_constraint(engine, mode))
        async for ev in engine.generate(req):
            if isinstance(ev, Done):
                assert ev.reason in ("stop", "length"), ev.error
                return ev.text

    async def main():
        engine = await Engine.open(path)
        try:
            for i in range(runs):
                text = await complete(engine, reply.reply_messages(MESSAGES[i % len(MESSAGES)]), "reply", i, 120)
                replies = reply.parse_replies(text)
                assert text == "NO REPLY" or len(replies) == 3, text
                text = await complete(engine, email.email_messages(POINTS[i % len(POINTS)], length="short"),
                                      "email", i, 200)
                draft = email.parse_email(text)
                assert text.startswith("Subject: ") and draft.subject and draft.body, text
        finally:
            await engine.close()

    asyncio.run(main())
