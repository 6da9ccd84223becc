"""The OpenAI-compatible wire format: requests checked field by field, answers, chunks and error bodies.

Every problem with a request is an ApiError (an HTTP status and an OpenAI-style error body), never a traceback.
Fields the OpenAI API has but Wren does not implement are accepted only with their neutral value; fields no one
knows are refused, so that a typo does not pass silently.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from wren.engine.runtime.generate import GenerationStats
from wren.engine.runtime.sampling import SamplingParams

MAX_STOPS = 4
MAX_STOP_CHARS = 256


class ApiError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def parse_json(raw: bytes) -> dict:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "the body must be a JSON object")
    return obj


# ---- reading fields ----------------------------------------------------------------------------------------------


class Fields:
    """A request body read field by field; `finish()` refuses whatever was not read."""

    def __init__(self, body: dict, neutral: dict[str, Any] | None = None):
        self._body = body
        self._seen: set[str] = set()
        for name, value in (neutral or {}).items():  # known to OpenAI, not implemented: only the neutral value
            if name in body:
                self._seen.add(name)
                if body[name] is not None and body[name] != value:
                    raise ApiError(400, f"{name}={body[name]!r} is not supported (only {value!r})", param=name)

    def get(self, name: str, types: type | tuple, default: Any = None, required: bool = False) -> Any:
        self._seen.add(name)
        value = self._body.get(name)
        if value is None:
            if required:
                raise ApiError(400, f"{name} is required", param=name)
            return default
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ApiError(400, f"{name} must be {_type_names(types)}", param=name)
        if not isinstance(value, types):
            raise ApiError(400, f"{name} must be {_type_names(types)}", param=name)
        return value

    def number(self, name: str, default: float | None, lo: float, hi: float) -> float | None:
        v = self.get(name, (int, float), default)
        if v is not None and not lo <= v <= hi:
            raise ApiError(400, f"{name} must be between {lo} and {hi}, not {v}", param=name)
        return v

    def finish(self) -> None:
        unknown = sorted(set(self._body) - self._seen)
        if unknown:
            raise ApiError(400, f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                           param=unknown[0])


def _type_names(types) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
             dict: "an object"}
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(names.get(t, t.__name__) for t in types if not (t is int and float in types))


# ---- generation requests -------------------------------------------------------------------------------------


@dataclass
class GenRequest:
    """What a /v1 request asks for, checked; the prompt is messages (chat) or text (completions)."""
    messages: list[dict] | None = None
    text: str | None = None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: list[str] = field(default_factory=list)
    response_format: dict | None = None  # {"type": "json_object"} or {"type": "json_schema", "schema": {...}}
    grammar: str | None = None  # Wren's extension: an assistant mode's output format (constrained.MODE_GRAMMARS)
    trim: bool = False  # Wren's extension: leave out the oldest messages that outgrow the context


_COMMON_NEUTRAL = {"n": 1, "frequency_penalty": 0, "presence_penalty": 0, "logprobs": False,
                   "logit_bias": {}, "best_of": 1}
_CHAT_NEUTRAL = {**_COMMON_NEUTRAL, "tools": [], "tool_choice": "none", "parallel_tool_calls": None,
                 "top_logprobs": None, "store": False, "metadata": {}}
_COMPLETION_NEUTRAL = {**_COMMON_NEUTRAL, "echo": False, "suffix": None}


def _common(f: Fields, req: GenRequest, defaults: SamplingParams, n_ctx: int) -> None:
    f.get("model", str)  # one model is served: any name answers with it
    f.get("user", str)  # an end-user id: accepted and ignored
    req.stream = f.get("stream", bool, False)
    opts = f.get("stream_options", dict)
    if opts is not None:
        if not req.stream:
            raise ApiError(400, "stream_options is only allowed with stream: true", param="stream_options")
        extra = set(opts) - {"include_usage"}
        if extra:
            raise ApiError(400, f"unknown field in stream_options: {', '.join(sorted(extra))}",
                           param="stream_options")
        inc = opts.get("include_usage", False)
        if not isinstance(inc, bool):
            raise ApiError(400, "stream_options.include_usage must be a boolean", param="stream_options")
        req.include_usage = inc
    limit = f.get("max_completion_tokens", int)
    limit = f.get("max_tokens", int, limit)
    if limit is not None and not 1 <= limit <= n_ctx:
        raise ApiError(400, f"max_tokens must be between 1 and the context length {n_ctx}, not {limit}",
                       param="max_tokens")
    req.max_tokens = limit
    s = defaults
    t = f.number("temperature", None, 0.0, 2.0)
    p = f.number("top_p", None, 0.0, 1.0)
    if p is not None and p <= 0.0:
        raise ApiError(400, "top_p must be above 0", param="top_p")
    seed = f.get("seed", int)
    top_k = f.get("top_k", int)  # llama-server's extensions
    min_p = f.number("min_p", None, 0.0, 0.999)
    rep = f.number("repeat_penalty", None, 0.01, 10.0)
    if top_k is not None and not 0 <= top_k <= 1 << 20:
        raise ApiError(400, f"top_k must be 0 or more, not {top_k}", param="top_k")
    changes = {k: v for k, v in dict(temperature=t, top_p=p, seed=seed, top_k=top_k, min_p=min_p,
                                      repeat_penalty=rep).items() if v is not None}
    req.sampling = replace(s, **changes)
    stop = f.get("stop", (str, list))
    stops = [stop] if isinstance(stop, str) else (stop or [])
    if len(stops) > MAX_STOPS or not all(isinstance(x, str) and 0 < len(x) <= MAX_STOP_CHARS for x in stops):
        raise ApiError(400, f"stop is a string or a list of at most {MAX_STOPS} non-empty strings of at most "
                       f"{MAX_STOP_CHARS} characters", param="stop")
    req.stop = stops
    req.response_format = _response_format(f.get("response_format", dict))


def _response_format(rf: dict | None) -> dict | None:
    if rf is None:
        return None
    kind = rf.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object", "schema": None}
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise ApiError(400, "response_format.json_schema must be an object with a schema object",
                           param="response_format")
        return {"type": "json_schema", "schema": spec.get("schema") or {"type": "object"},
                "name": spec.get("name", "")}
    raise ApiError(400, "response_format.type must be text, json_object or json_schema", param="response_format")


ROLES = ("system", "user", "assistant", "developer")


def _content(value: Any, i: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
            parts.append(part["text"])
        return "".join(parts)
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts", param="messages")


def chat_request(body: dict, defaults: SamplingParams, n_ctx: int) -> GenRequest:
    f = Fields(body, _CHAT_NEUTRAL)
    req = GenRequest()
    msgs = f.get("messages", list, required=True)
    if not msgs:
        raise ApiError(400, "messages must not be empty", param="messages")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object", param="messages")
        extra = set(m) - {"role", "content", "name"}
        if extra:
            raise ApiError(400, f"messages[{i}] has unsupported field(s): {', '.join(sorted(extra))}",
                           param="messages")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}", param="messages")
        out.append({"role": "system" if role == "developer" else role, "content": _content(m.get("content"), i)})
    req.messages = out
    _common(f, req, defaults, n_ctx)
    req.grammar = f.get("wren_grammar", str)
    req.trim = f.get("wren_trim", bool, False)
    if req.grammar is not None:
        from wren.engine.runtime.constrained import MODE_GRAMMARS

        if req.grammar not in MODE_GRAMMARS:
            raise ApiError(400, f"wren_grammar must be one of {', '.join(MODE_GRAMMARS)}", param="wren_grammar")
        if req.response_format is not None:
            raise ApiError(400, "wren_grammar and response_format exclude each other", param="wren_grammar")
    f.finish()
    return req


def completion_request(body: dict, defaults: SamplingParams, n_ctx: int) -> GenRequest:
    f = Fields(body, _COMPLETION_NEUTRAL)
    req = GenRequest()
    prompt = f.get("prompt", (str, list), required=True)
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise ApiError(400, "prompt must be a string (or a list of one string)", param="prompt")
        prompt = prompt[0]
    if not prompt:
        raise ApiError(400, "prompt must not be empty", param="prompt")
    req.text = prompt
    _common(f, req, defaults, n_ctx)
    f.finish()
    return req


# ---- stop strings --------------------------------------------------------------------------------------------


class StopStrings:
    """Finds stop strings across token boundaries: feed(text) gives what may be shown (text that could still be the
    start of a stop string is held back) and whether a stop string was met."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        buf = self._held + text
        if not self.stops:
            return buf, False
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return buf[:min(hits)], True
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


# ---- answers -------------------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(stats: GenerationStats) -> dict:
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.generated_tokens,
            "total_tokens": stats.prompt_tokens + stats.generated_tokens,
            "prompt_tokens_details": {"cached_tokens": stats.cached_tokens}}


def timings(stats: GenerationStats) -> dict:
    """llama-server's timings object, with the time to first token."""
    pn, pms = stats.prefilled_tokens, stats.prefill_seconds * 1000.0
    dn, dms = max(stats.generated_tokens - 1, 0), stats.decode_seconds * 1000.0
    return {"prompt_n": pn, "prompt_ms": pms, "prompt_per_token_ms": pms / pn if pn else 0.0,
            "prompt_per_second": stats.prefill_tokens_per_s, "cache_n": stats.cached_tokens,
            "predicted_n": stats.generated_tokens, "predicted_ms": dms,
            "predicted_per_token_ms": dms / dn if dn else 0.0, "predicted_per_second": stats.decode_tokens_per_s,
            "ttft_ms": stats.ttft_seconds * 1000.0}


def finish_reason(stats: GenerationStats, stopped: bool) -> str:
    if stopped or stats.finish_reason == "stop":
        return "stop"
    return "length" if stats.finish_reason == "length" else stats.finish_reason or "stop"


def chat_answer(rid: str, model: str, text: str, reason: str, stats: GenerationStats) -> dict:
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": reason}],
            "usage": usage(stats), "timings": timings(stats)}


def completion_answer(rid: str, model: str, text: str, reason: str, stats: GenerationStats) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}],
            "usage": usage(stats), "timings": timings(stats)}


def chat_chunk(rid: str, model: str, created: int, delta: dict, reason: str | None = None) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}


def completion_chunk(rid: str, model: str, created: int, text: str, reason: str | None = None) -> dict:
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}]}
