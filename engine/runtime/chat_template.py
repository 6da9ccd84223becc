"""Chat templates: the GGUF's own Jinja template (`tokenizer.chat_template`), rendered in a sandbox, with a built-in
fallback when the model has none or it cannot be used.

The template runs in a sandbox (template_sandbox): jinja2's ImmutableSandboxedEnvironment, which refuses Python's
internals, with every construct bounded by a budget of steps and one of output size, both counts, not times.
A template over a budget stops with ChatTemplateError (kind "budget"); one that fails to compile or to render a probe
conversation is replaced by the fallback, and ``fallback_reason`` says why.

The fallback format follows the turn markers the vocabulary has: ChatML (``<|im_start|>``/``<|im_end|>``) when
present, else Gemma turns (``<start_of_turn>``/``<end_of_turn>``), else Llama 3 headers, else ChatML as plain text.
A base model such as Gemma 3 270M ships no template, but its vocabulary carries Gemma's turn tokens as single special
tokens; Gemma's own format is what its instruction-tuned sibling was trained on, so it is the better guess than ChatML
(which that vocabulary would split into ``<``, ``|``, ``im``, ... pieces).

Rendered text is meant to be tokenized with parse_special=True; :meth:`ChatTemplate.encode` does that and drops a
second BOS when both the template and the tokenizer add one.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError, TemplateError

from wren.engine.runtime.template_sandbox import (CHARS_PER_STEP, MIN_OUTPUT, Budget, BudgetExceeded, budget,
                                                  check_size, compile_template)

__all__ = ["ChatTemplate", "ChatTemplateError", "RENDER_STEPS"]

RENDER_STEPS = 100_000  # steps one render may take, or STEPS_PER_MESSAGE per message if more
STEPS_PER_MESSAGE = 500  # real templates take about 10 per message

# end-of-turn markers a chat model may end its reply with (all in llama.cpp's end-of-generation list)
TURN_END_TEXTS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<|eom_id|>",
                  "<|end_of_text|>", "<EOT>", "<end_of_utterance>", "<|return|>", "<|call|>")



class ChatTemplateError(Exception):
    """A chat template could not be rendered; the message says why. ``kind`` is "template" (the template's own
    error, e.g. its raise_exception), "sandbox" (it reached for something the sandbox refuses) or "budget" (steps or
    output size ran out)."""

    def __init__(self, message: str, kind: str = "template"):
        super().__init__(message)
        self.kind = kind


def _text_of(content: Any) -> str:
    """Message content as text: a str, or the text parts of an OpenAI-style list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, Mapping) and p.get("type", "text") == "text":
                parts.append(str(p.get("text", "")))
        return "".join(parts)
    return str(content)


def _check_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, (list, tuple)):
        raise ChatTemplateError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise ChatTemplateError(f"message {i} is not a dict with a string 'role'")
        out.append(dict(m))
    return out


# --- built-in formats ---------------------------------------------------------------------------------------------
def _render_chatml(messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    parts = [f"<|im_start|>{m['role']}\n{_text_of(m.get('content'))}<|im_end|>\n" for m in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _render_gemma(messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    # Gemma 3's format: no system role (its text opens the first user turn), the assistant is "model", content trimmed
    msgs = list(messages)
    prefix = ""
    if msgs and msgs[0]["role"] == "system":
        prefix = _text_of(msgs[0].get("content")).strip() + "\n\n"
        msgs = msgs[1:]
    parts = []
    for i, m in enumerate(msgs):
        role = "model" if m["role"] == "assistant" else m["role"]
        text = _text_of(m.get("content")).strip()
        if i == 0 and prefix:
            text = prefix + text
        parts.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
    if not msgs and prefix:
        parts.append(f"<start_of_turn>user\n{prefix.rstrip()}<end_of_turn>\n")
    if add_generation_prompt:
        parts.append("<start_of_turn>model\n")
    return "".join(parts)


def _render_llama3(messages: list[dict], add_generation_prompt: bool, bos: str) -> str:
    parts = [f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{_text_of(m.get('content')).strip()}<|eot_id|>"
             for m in messages]
    if add_generation_prompt:
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


_FORMATS = {  # name -> (renderer, tokens the vocabulary must have to prefer it)
    "chatml": (_render_chatml, ("<|im_start|>", "<|im_end|>")),
    "gemma": (_render_gemma, ("<start_of_turn>", "<end_of_turn>")),
    "llama3": (_render_llama3, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
}

_PROBES = (
    [{"role": "system", "content": "Probe system text."}, {"role": "user", "content": "Probe user text."},
     {"role": "assistant", "content": "Probe reply text."}, {"role": "user", "content": "Probe second text."}],
    [{"role": "user", "content": "Probe user text."}, {"role": "assistant", "content": "Probe reply text."},
     {"role": "user", "content": "Probe second text."}],
    [{"role": "user", "content": "Probe user text."}],
)


class ChatTemplate:
    """Renders a conversation into the prompt text a model expects.

    Attributes: ``source`` (the Jinja text in use, None for a built-in format), ``name`` ("gguf" or the built-in
    format's name), ``fallback_reason`` (None when the GGUF template is used), ``stop_ids`` (token ids that end the
    assistant's turn), ``bos_token`` / ``eos_token`` (their text).
    """

    def __init__(self, tokenizer, source: str | None = None, *, fallback: str | None = None):
        self.tokenizer = tokenizer
        self.bos_token = tokenizer.token_text(tokenizer.bos_id) if tokenizer.bos_id is not None else ""
        self.eos_token = tokenizer.token_text(tokenizer.eos_id) if tokenizer.eos_id is not None else ""
        self.fallback_format = fallback or self._pick_fallback(tokenizer)
        self.source: str | None = None
        self.name = self.fallback_format
        self.fallback_reason: str | None = None
        self._template: jinja2.Template | None = None
        if source is None:
            self.fallback_reason = "the model has no chat template (tokenizer.chat_template)"
        else:
            self._adopt(source)
        self.stop_ids = self._stop_ids()

    @classmethod
    def from_gguf(cls, g: Any, tokenizer) -> "ChatTemplate":
        md = g if isinstance(g, Mapping) else g.metadata
        source = md.get("tokenizer.chat_template")
        if source is not None and not isinstance(source, str):
            source = None
        return cls(tokenizer, source)

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _pick_fallback(tokenizer) -> str:
        for name in ("chatml", "gemma", "llama3"):
            if all(tokenizer.token_to_id(t) is not None for t in _FORMATS[name][1]):
                return name
        return "chatml"

    def _adopt(self, source: str) -> None:
        try:
            template = compile_template(source)
        except TemplateError as e:
            self.fallback_reason = f"the model's chat template does not compile: {e}"
            return
        except (RecursionError, MemoryError, ValueError, TypeError) as e:
            self.fallback_reason = f"the model's chat template does not compile: {type(e).__name__}: {e}"
            return
        errors = []
        for probe in _PROBES:
            try:
                text = self._render_jinja(template, probe, True, {})
            except ChatTemplateError as e:
                errors.append(str(e))
                if e.kind != "template":  # hostile or runaway: no second chance with another conversation
                    break
                continue
            if not all(m["content"] in text for m in probe):
                errors.append("its output leaves out the conversation")
                continue
            self._template, self.source, self.name = template, source, "gguf"
            return
        self.fallback_reason = "the model's chat template cannot render a conversation: " + "; ".join(
            dict.fromkeys(errors))

    def _stop_ids(self) -> frozenset[int]:
        tok = self.tokenizer
        ids = {i for i in (tok.eos_id, getattr(tok, "eot_id", None)) if i is not None}
        for text in TURN_END_TEXTS:
            i = tok.token_to_id(text)
            if i is not None and (i in tok.eog_ids or i == tok.eos_id):
                ids.add(i)
        return frozenset(ids)

    # ------------------------------------------------------------------ rendering
    def _render_jinja(self, template: jinja2.Template, messages: list[dict], add_generation_prompt: bool,
                      extra: Mapping[str, Any]) -> str:
        size = sum(len(_text_of(m.get("content"))) for m in messages)
        limit = max(MIN_OUTPUT, 8 * size)
        steps = max(RENDER_STEPS, STEPS_PER_MESSAGE * len(messages), 4 * limit // CHARS_PER_STEP)
        token = budget.set(Budget(steps, limit))
        try:
            ctx = dict(extra)
            ctx.update(messages=messages, add_generation_prompt=bool(add_generation_prompt),
                       bos_token=self.bos_token, eos_token=self.eos_token)
            ctx.setdefault("tools", None)
            out, n = [], 0
            for chunk in template.generate(**ctx):
                n += len(chunk)
                check_size(n)
                out.append(chunk)
            return "".join(out)
        except BudgetExceeded as e:
            raise ChatTemplateError(f"chat template stopped: {e}", "budget") from None
        except SecurityError as e:
            raise ChatTemplateError(f"chat template blocked by the sandbox: {e}", "sandbox") from None
        except TemplateError as e:
            raise ChatTemplateError(f"chat template error: {e}") from None
        except RecursionError:
            raise ChatTemplateError("chat template recursed too deeply", "budget") from None
        except MemoryError:
            raise ChatTemplateError("chat template ran out of memory", "budget") from None
        except Exception as e:  # a template can raise anything the sandbox lets it reach (TypeError, KeyError, ...)
            raise ChatTemplateError(f"chat template failed: {type(e).__name__}: {e}") from None
        finally:
            budget.reset(token)

    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> str:
        """The prompt text for `messages` ([{'role': 'system'|'user'|'assistant', 'content': str}, ...]).
        `extra` is passed to the template (e.g. tools=[...]). Raises ChatTemplateError."""
        msgs = _check_messages(messages)
        if self._template is not None:
            return self._render_jinja(self._template, msgs, add_generation_prompt, extra)
        return _FORMATS[self.fallback_format][0](msgs, add_generation_prompt, self.bos_token)

    def encode(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> list[int]:
        """render() tokenized as llama.cpp's chat path does (add_special=True, parse_special=True), without a
        doubled BOS when the template writes the BOS token itself."""
        tok = self.tokenizer
        ids = tok.encode(self.render(messages, add_generation_prompt, **extra), add_special=True, parse_special=True)
        if tok.add_bos and len(ids) >= 2 and ids[0] == ids[1] == tok.bos_id:
            del ids[0]
        return ids

    def __repr__(self) -> str:
        why = f", fallback because {self.fallback_reason}" if self.fallback_reason else ""
        return f"ChatTemplate({self.name}, stop_ids={sorted(self.stop_ids)}{why})"
