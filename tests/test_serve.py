"""`wren serve` with the default model, through real clients: the official `openai` package (sync, streaming, a
json_schema answer validated with jsonschema) and plain HTTP (aiohttp), and every kind of bad request as a 4xx with
an OpenAI-style error body. The server is a real `wren serve` process on 127.0.0.1 (a free port it picks)."""
import asyncio
import json
import os
import subprocess
import sys

import aiohttp
import jsonschema
import openai
import pytest
from conftest import model_or_skip, start_server, stop_server

from wren.engine.runtime.constrained import EMAIL_JSON_SCHEMA, REPLY_JSON_SCHEMA, SUMMARY_JSON_SCHEMA
from wren.engine.serve.protocol import StopStrings

pytestmark = pytest.mark.model

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def server():
    model = str(model_or_skip("SmolLM2-135M-Instruct"))
    proc, url = start_server("-m", model, "--queue", "0", "--max-body-mb", "0.25")
    yield url
    stop_server(proc)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0)


def http(method, url, body=None, raw=None, headers=None):
    """(status, headers, parsed JSON or text) of one plain HTTP request."""
    async def go():
        async with aiohttp.ClientSession() as s:
            data = raw if raw is not None else (json.dumps(body) if body is not None else None)
            async with s.request(method, url, data=data, headers=headers) as r:
                text = await r.text()
                try:
                    return r.status, r.headers, json.loads(text)
                except ValueError:
                    return r.status, r.headers, text
    return asyncio.run(go())


def assert_error(status, body, expected_status, *words):
    assert status == expected_status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    for w in words:
        assert w in err["message"] or w == err["code"], err


# ---- the openai client -------------------------------------------------------------------------------------------


def test_models_and_health(server, client):
    models = client.models.list().data
    assert [m.id for m in models] == ["SmolLM2-135M-Instruct"]
    status, _, body = http("GET", server + "/health")
    assert status == 200 and body["status"] == "ok"


def test_chat_completion(client):
    r = client.chat.completions.create(model="SmolLM2-135M-Instruct", max_tokens=16, seed=7, temperature=0.5,
                                       top_p=0.9, messages=[{"role": "system", "content": "Be brief."},
                                                            {"role": "user", "content": "Name a colour."}])
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    timings = r.model_extra["timings"]
    assert timings["predicted_n"] == r.usage.completion_tokens
    assert {"prompt_per_second", "predicted_per_second", "ttft_ms"} <= set(timings)


def test_streaming_chat_completion(client):
    stream = client.chat.completions.create(model="any", max_tokens=20, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Say hello to Ada."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.strip() and reasons in (["stop"], ["length"])
    assert chunks[0].choices[0].delta.role == "assistant"
    assert not chunks[-1].choices and 0 < chunks[-1].usage.completion_tokens <= 20


def test_json_schema_answer_validates(client):
    schema = {"type": "object",
              "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 24},
                             "age": {"type": "integer", "minimum": 0, "maximum": 120},
                             "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 3}},
              "required": ["name", "age", "pets"], "additionalProperties": False}
    r = client.chat.completions.create(
        model="m", max_tokens=120, temperature=0.8, seed=3,
        messages=[{"role": "user", "content": "Describe a person with pets, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_json_object_and_completions(client):
    r = client.chat.completions.create(model="m", max_tokens=200, temperature=0.0,
                                       messages=[{"role": "user", "content": "A JSON object about Paris."}],
                                       response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    c = client.completions.create(model="m", prompt="1, 2, 3, 4, 5,", max_tokens=12, temperature=0.0, stop=["8"])
    assert "8" not in c.choices[0].text and c.choices[0].finish_reason in ("stop", "length")
    assert c.usage.completion_tokens > 0


def test_streamed_completion_with_stop_string(server):
    async def go():
        async with aiohttp.ClientSession() as s:
            body = {"prompt": "Monday, Tuesday,", "max_tokens": 30, "stream": True, "stop": [","],
                    "temperature": 0.0}
            async with s.post(server + "/v1/completions", json=body) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
                return [line for line in (await r.text()).split("\n\n") if line]
    events = asyncio.run(go())
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert "," not in text
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and "usage" in chunks[-1]


def test_mode_endpoints_answer_the_cli_json(server):
    status, _, body = http("POST", server + "/wren/v1/reply",
                           {"message": "Can you send me the slides before the meeting?", "seed": 1})
    assert status == 200, body
    jsonschema.validate(body, REPLY_JSON_SCHEMA)
    status, _, body = http("POST", server + "/wren/v1/summarize",
                           {"text": "The bridge closes on Monday for repairs. Buses replace trams.",
                            "length": "short"})
    assert status == 200, body
    jsonschema.validate(body, SUMMARY_JSON_SCHEMA)
    status, _, body = http("POST", server + "/wren/v1/email", {"points": "lunch moves to 1pm", "length": "short"})
    assert status == 200, body
    jsonschema.validate(body, EMAIL_JSON_SCHEMA)
    status, _, body = http("POST", server + "/wren/v1/email", {"points": "x", "tone": "sarcastic"})
    assert_error(status, body, 400, "tone")


# ---- bad requests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, words", [
    ("{not json", ["not valid JSON"]),
    ("[1, 2]", ["JSON object"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "temprature": 0.5}', ["temprature"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000000000}', ["max_tokens"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', ["max_tokens"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "n": 2}', ["n=2"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', ["temperature"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}', ["stop"]),
    ('{"messages": [{"role": "wizard", "content": "hi"}]}', ["role"]),
    ('{"messages": []}', ["messages"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}}', ["response_format"]),
    ('{"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}', ["stream"]),
])
def test_bad_chat_requests_are_400s(server, raw, words):
    status, _, body = http("POST", server + "/v1/chat/completions", raw=raw)
    assert_error(status, body, 400, *words)


def test_prompt_longer_than_the_context(server):
    status, _, body = http("POST", server + "/v1/completions", {"prompt": "hello " * 5000, "max_tokens": 4})
    assert_error(status, body, 400, "context_length_exceeded")


def test_body_over_the_size_limit_is_413(server):
    status, _, body = http("POST", server + "/v1/completions", {"prompt": "a" * 400_000})
    assert_error(status, body, 413)


def test_unknown_route_and_method(server):
    status, _, body = http("GET", server + "/v1/nothing")
    assert_error(status, body, 404)
    status, _, body = http("GET", server + "/v1/chat/completions")
    assert_error(status, body, 405)


def test_full_queue_is_503_and_a_client_that_leaves_cancels_its_generation(server):
    # a schema that forbids ending before 100000 characters: the generation runs until cancelled
    endless = {"messages": [{"role": "user", "content": "Write."}], "stream": True,
               "response_format": {"type": "json_schema",
                                   "json_schema": {"name": "s", "schema": {"type": "string", "minLength": 100000}}}}

    async def go():
        async with aiohttp.ClientSession() as s:
            before = (await (await s.get(server + "/health")).json())["requests"]
            r = await s.post(server + "/v1/chat/completions", json=endless)
            assert r.status == 200
            await r.content.readline()  # the stream is under way
            async with s.post(server + "/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "hi"}]}) as busy:
                assert busy.status == 503 and int(busy.headers["Retry-After"]) > 0
                assert (await busy.json())["error"]["code"] == "queue_full"
            r.close()  # the client goes away mid-stream
            for _ in range(2400):  # the server notices at its next write, cancels, and frees the engine (bounded)
                health = await (await s.get(server + "/health")).json()
                if not health["busy"]:
                    break
                await asyncio.sleep(0.05)
            assert not health["busy"], "the engine was not freed"
            after = health["requests"]
            assert after["cancelled"] == before["cancelled"] + 1
            assert after["refused"] == before["refused"] + 1
            async with s.post(server + "/v1/completions", json={"prompt": "Hi", "max_tokens": 2}) as ok:
                assert ok.status == 200
    asyncio.run(asyncio.wait_for(go(), 300))


# ---- binding and keys --------------------------------------------------------------------------------------------


def test_binding_all_addresses_without_a_key_is_refused():
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, WREN_API_KEY=""))
    assert proc.returncode == 1
    assert "API key" in proc.stderr and "Traceback" not in proc.stderr


def test_api_key_is_required_and_checked():
    model = str(model_or_skip("SmolLM2-135M-Instruct"))
    proc, url = start_server("-m", model, env={"WREN_API_KEY": KEY})
    try:
        status, _, body = http("GET", url + "/v1/models")
        assert_error(status, body, 401, "invalid_api_key")
        status, _, body = http("GET", url + "/v1/models", headers={"Authorization": "Bearer wrong"})
        assert_error(status, body, 401, "invalid_api_key")
        assert http("GET", url + "/health")[0] == 200
        good = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        assert good.models.list().data
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        stop_server(proc)


# ---- stop strings (no model) -------------------------------------------------------------------------------------


def test_the_gate_is_closed_while_the_model_is_switched():
    from wren.engine.serve.app import Gate
    from wren.engine.serve.protocol import ApiError

    async def scenario():
        gate = Gate(1)
        with gate.admit():
            idle = asyncio.ensure_future(gate.idle())
            await asyncio.sleep(0)
            assert not idle.done()  # a switch waits for the running request
        await idle
        gate.switching = True
        with pytest.raises(ApiError) as e:
            with gate.admit():
                pass
        return e.value
    err = asyncio.run(scenario())
    assert err.status == 503 and err.code == "switching_model" and err.headers["Retry-After"]


def test_stop_strings_across_pieces():
    s = StopStrings(["END", "\n\n"])
    out = [s.feed(p) for p in ["Hello E", "N", "x. Then E", "ND and more"]]
    assert out == [("Hello ", False), ("", False), ("ENx. Then ", False), ("", True)]
    s = StopStrings(["stop"])
    assert s.feed("no st") == ("no ", False) and s.flush() == "st"
    assert StopStrings([]).feed("a\n\nb") == ("a\n\nb", False)
