"""Chat templates: the GGUF's own Jinja template (`tokenizer.chat_template`), rendered in a sandbox, with a built-in
fallback when the model has none or it cannot be used.

The template runs in jinja2's ImmutableSandboxedEnvironment, tightened further: attribute access to Python internals
(``__class__``, ``__globals__``, ...) is refused by the sandbox; ranges, repetition (``*``), concatenation (``+``),
``%``-formatting, ``**`` and filters/methods with huge numeric arguments are bounded; and a render stops after
RENDER_STEPS steps (loop iterations, calls, operators, lookups, filters; more for long conversations) or once its
output exceeds the output budget. Both are counts, not times: a busy machine renders what an idle one does. A
template that fails to compile or to render a probe conversation is replaced by the fallback, and
``fallback_reason`` says why.

The fallback format follows the turn markers the vocabulary has: ChatML (``<|im_start|>``/``<|im_end|>``) when
present, else Gemma turns (``<start_of_turn>``/``<end_of_turn>``), else Llama 3 headers, else ChatML as plain text.
A base model such as Gemma 3 270M ships no template, but its vocabulary carries Gemma's turn tokens as single special
tokens; Gemma's own format is what its instruction-tuned sibling was trained on, so it is the better guess than ChatML
(which that vocabulary would split into ``<``, ``|``, ``im``, ... pieces).

Rendered text is meant to be tokenized with parse_special=True; :meth:`ChatTemplate.encode` does that and drops a
second BOS when both the template and the tokenizer add one.
"""
from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ChatTemplate", "ChatTemplateError", "RENDER_STEPS"]

RENDER_STEPS = 100_000  # steps one render may take, or STEPS_PER_MESSAGE per message if more
STEPS_PER_MESSAGE = 500  # real templates take about 10 per message
MAX_INT_ARG = 1_000_000  # largest number a filter / method / repetition may be asked for
MAX_RANGE = 100_000
_MIN_OUTPUT = 1 << 20  # output budget: this, or 8x the size of the messages if larger

# end-of-turn markers a chat model may end its reply with (all in llama.cpp's end-of-generation list)
TURN_END_TEXTS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<|eom_id|>",
                  "<|end_of_text|>", "<EOT>", "<end_of_utterance>", "<|return|>", "<|call|>")



class _Budget:
    """What is left to a render: steps (of `limit`), and characters of output."""
    __slots__ = ("steps", "limit", "output")

    def __init__(self, steps: int, output: int):
        self.steps = self.limit = steps
        self.output = output


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("wren_chat_budget", default=None)


class ChatTemplateError(Exception):
    """A chat template could not be rendered; the message says why. ``kind`` is "template" (the template's own
    error, e.g. its raise_exception), "sandbox" (it reached for something the sandbox refuses) or "budget" (steps or
    output size ran out)."""

    def __init__(self, message: str, kind: str = "template"):
        super().__init__(message)
        self.kind = kind


class _Abort(Exception):
    """Raised inside a render when a budget runs out (converted to ChatTemplateError)."""


def _step() -> None:
    b = _budget.get()
    if b is not None:
        b.steps -= 1
        if b.steps < 0:
            raise _Abort(f"rendering took more than {b.limit} steps")


def _check_size(n: int) -> None:
    b = _budget.get()
    limit = b.output if b is not None else _MIN_OUTPUT
    if n > limit:
        raise _Abort(f"template output would exceed {limit} characters")


def _check_args(args: Iterable[Any]) -> None:
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARG:
            raise SecurityError(f"numeric argument {a} is too large for a chat template")


def _range(*args: int):
    """range() that counts a step per item (nested loops cannot run away)."""
    _check_args(args)
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range of {len(r)} items is too large for a chat template")
    for i in r:
        _step()
        yield i


def _counted(iterable):
    """What every {% for %} iterates: its items, a step each."""
    for item in iterable:
        _step()
        yield item


def _count_loop_steps(ast: nodes.Template) -> nodes.Template:
    """Wraps each loop's iterable in the environment's counted() (an attribute of the environment, which a template
    cannot rebind), so that loops over anything, not only range(), take steps."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [loop.iter], [], None, None,
                               lineno=loop.iter.lineno)
    return ast


def _guard_filter(f):
    @functools.wraps(f)  # keeps jinja's pass_context / pass_environment markers
    def guarded(*args, **kwargs):
        _step()
        _check_args(args)
        _check_args(kwargs.values())
        return f(*args, **kwargs)
    return guarded


def _tojson(value, indent=None, ensure_ascii=False, sort_keys=False, separators=None):
    """Like transformers' chat-template tojson: no HTML escaping, Unicode kept."""
    if indent is not None:
        _check_args([indent])
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys, separators=separators)


def _raise_exception(message: str = "template error"):
    raise TemplateError(str(message))


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(str(fmt))


_BIG_WIDTH = re.compile(r"\d{7,}")


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    counted = staticmethod(_counted)

    def call_binop(self, context, operator, left, right):
        _step()
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError("exponent too large for a chat template")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _check_size(len(seq) * max(n, 0))
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _check_size(len(left) + len(right))
        elif operator == "%":
            if isinstance(left, str) and _BIG_WIDTH.search(left):
                raise SecurityError("format width too large for a chat template")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj, attribute):
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _step()
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj, attribute):
        # jinja's sandbox returns an Undefined that prints as ""; refusing outright makes the reason visible
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        _step()
        _check_args(args)
        _check_args(kwargs.values())
        return super().call(__context, __obj, *args, **kwargs)


def _make_env() -> _Env:
    env = _Env(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
               extensions=[jinja2.ext.loopcontrols], autoescape=False)
    env.filters = {name: _guard_filter(f) for name, f in env.filters.items()}
    env.filters["tojson"] = _tojson
    env.globals.pop("lipsum", None)  # generates text of any size; no chat template needs it
    env.globals["range"] = _range
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


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
        env = _make_env()
        try:
            template = env.from_string(_count_loop_steps(env.parse(source)))
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
        limit = max(_MIN_OUTPUT, 8 * size)
        token = _budget.set(_Budget(max(RENDER_STEPS, STEPS_PER_MESSAGE * len(messages)), limit))
        try:
            ctx = dict(extra)
            ctx.update(messages=messages, add_generation_prompt=bool(add_generation_prompt),
                       bos_token=self.bos_token, eos_token=self.eos_token)
            ctx.setdefault("tools", None)
            out, n = [], 0
            for chunk in template.generate(**ctx):
                n += len(chunk)
                _check_size(n)
                out.append(chunk)
            return "".join(out)
        except _Abort as e:
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
            _budget.reset(token)

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
