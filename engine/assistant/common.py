"""What the assistant modes share: their error, the check of a choice (tone, length, style), pasted text quoted as
data, and one generation run to its end.

Pasted text (a thread, a received message, a document) is data, never instructions: prompts put it between markers
and tell the model not to follow anything inside; marker look-alikes inside the text are neutralised first.
"""
from __future__ import annotations

import re
from typing import Callable

from wren.engine.engine import Done, Engine, Progress, Request, Token
from wren.engine.runtime.sampling import SamplingParams


class ModeError(ValueError):
    """A mode was given inputs it cannot use."""


def check_choice(value: str, allowed, what: str) -> str:
    v = value.lower().replace("-", "_").replace(" ", "_")
    if v not in allowed:
        raise ModeError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return v


def quote_data(text: str, tag: str) -> str:
    """Text between <tag> markers, with anything that looks like our markers taken out of it."""
    clean = re.sub(r"</?\s*(document|message|thread|draft|notes)\s*>", "", text, flags=re.I)
    return f"<{tag}>\n{clean.strip()}\n</{tag}>"


async def complete(engine: Engine, messages: list[dict], sampling: SamplingParams, max_new_tokens: int,
                   on_token: Callable[[str], None] | None = None,
                   on_prefill: Callable[[int, int], None] | None = None, grammar: str | None = None) -> Done:
    """Run one generation from messages (never trimmed: a mode's prompt fits or fails) to its Done; a generation that
    failed raises ModeError with the engine's message. `grammar` names the mode's output format
    (runtime/constrained.MODE_GRAMMARS): the sampler then only draws tokens that keep the answer in that format."""
    done = None
    async for ev in engine.generate(Request(messages=messages, sampling=sampling, max_new_tokens=max_new_tokens,
                                            trim=False, grammar=grammar)):
        if isinstance(ev, Token) and on_token:
            on_token(ev.text)
        elif isinstance(ev, Progress) and on_prefill:
            on_prefill(ev.done, ev.total)
        elif isinstance(ev, Done):
            done = ev
    assert done is not None
    if done.reason == "error":
        raise ModeError(done.error)
    return done
