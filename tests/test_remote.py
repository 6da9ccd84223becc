"""The window on a remote engine: a chat turn and a summarize through a `wren serve` started here (a real process on
127.0.0.1 with an API key) and through a server that is not Wren (a small OpenAI-compatible stub in this process);
a connection lost mid-answer keeps the partial answer and says so; a wrong key is shown as such; a Wren server's
admin API (threads, cores) and /tokenize. Handshakes only, no timing asserts."""
import asyncio
import json
import time

import pytest
from conftest import model_or_skip, run, start_server, stop_server

qasync = pytest.importorskip("qasync")

from aiohttp import web  # noqa: E402

from wren.engine.assistant import ChatController  # noqa: E402
from wren.engine.engine import ContextTrimmed, Done, Request  # noqa: E402
from wren.engine.remote import RemoteEngine, RemoteError, admin, estimate_tokens, host_of, server_root  # noqa: E402
from wren.engine.settings import Settings, SettingsError  # noqa: E402
from wren.engine.store import Store  # noqa: E402
from wren.gui.main_window import MainWindow  # noqa: E402

pytestmark = pytest.mark.model

KEY = "remote-test-key"
COUNCIL = ("The council met on Tuesday. It approved the new bike lanes on Main Street and delayed the vote on the "
           "library budget until next month. Residents asked for more street lights near the park.")


def start_wren(*args):
    """`wren serve` with the default model."""
    return start_server("-m", str(model_or_skip("SmolLM2-135M-Instruct")), *args)


@pytest.fixture(scope="module")
def wren_url():
    proc, url = start_wren("--api-key", KEY)
    yield url
    stop_server(proc)


@pytest.fixture
def make_window(qtbot, loop, tmp_path):
    """A window whose settings name a server; its engine is closed at the end of the test."""
    made = []

    def make(url, key=KEY):
        store = Store(tmp_path / f"wren{len(made)}.sqlite3")
        settings = Settings(engine_url=url, engine_key=key).with_mode("chat", seed=7, max_new_tokens=48)
        w = MainWindow(settings, store)
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        return w, store
    yield make
    for w in made:
        run(loop, w.shutdown())
    

def chat_turn(loop, w, text):
    w.chat.input.setPlainText(text)
    w.chat.send.click()
    run(loop, w.task)


# ---- a non-Wren server: a stub of the OpenAI chat API --------------------------------------------------------


class Stub:
    """An OpenAI-compatible server that is not Wren: /v1/models and streaming chat completions, no /props, no
    /tokenize. `drop_after` pieces: then the connection is cut."""

    ANSWER = "- The council approved bike lanes and delayed the library vote."

    def __init__(self):
        self.bodies: list[dict] = []
        self.drop_after: int | None = None
        self.reason = "stop"  # the finish reason the answer ends with
        self.runner = None
        self.url = ""

    async def start(self):
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"

    async def models(self, request):
        return web.json_response({"object": "list", "data": [{"id": "stub-model", "object": "model",
                                                              "owned_by": "someone"}]})

    async def chat(self, request):
        body = await request.json()
        self.bodies.append(body)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(obj):
            await resp.write(f"data: {json.dumps(obj)}\n\n".encode())

        def chunk(delta, reason=None):
            return {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub-model",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

        await send(chunk({"role": "assistant", "content": ""}))
        for i, word in enumerate(self.ANSWER.split(" ")):
            if self.drop_after is not None and i == self.drop_after:
                request.transport.close()  # the connection is lost mid-answer
                return resp
            await send(chunk({"content": word if i == 0 else " " + word}))
        await send(chunk({}, self.reason))
        await send({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub-model",
                    "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 11, "total_tokens": 41}})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


@pytest.fixture
def stub(loop):
    s = Stub()
    run(loop, s.start())
    yield s
    run(loop, s.runner.cleanup())


# ---- the tests -------------------------------------------------------------------------------------------------


def test_server_addresses():
    assert server_root("http://h:8080/v1/") == "http://h:8080"
    assert host_of("http://h:8080") == "h:8080" and host_of("https://h") == "h:443"
    assert Settings(engine_url="http://192.168.1.20:8080/v1", engine_key="k").validated()
    for bad in ("ftp://h", "h:8080", "http://", "http://h:port", " http://h"):
        with pytest.raises(SettingsError, match="engine_url"):
            Settings(engine_url=bad).validated()
    with pytest.raises(SettingsError, match="engine_key"):
        Settings(engine_key="two words").validated()


def test_wrens_extension_fields_are_checked():
    from wren.engine.runtime.sampling import SamplingParams
    from wren.engine.serve import protocol as P

    msgs = [{"role": "user", "content": "Hi"}]
    req = P.chat_request({"messages": msgs, "wren_grammar": "reply", "wren_trim": True}, SamplingParams(), 512)
    assert req.grammar == "reply" and req.trim
    with pytest.raises(P.ApiError, match="wren_grammar must be one of"):
        P.chat_request({"messages": msgs, "wren_grammar": "poem"}, SamplingParams(), 512)
    with pytest.raises(P.ApiError, match="exclude each other"):
        P.chat_request({"messages": msgs, "wren_grammar": "email", "response_format": {"type": "json_object"}},
                       SamplingParams(), 512)
    with pytest.raises(P.ApiError, match="wren_trim must be a boolean"):
        P.chat_request({"messages": msgs, "wren_trim": "yes"}, SamplingParams(), 512)


def test_window_chat_and_summarize_through_wren_serve(loop, make_window, wren_url):
    w, store = make_window(wren_url)
    assert run(loop, w.load_engine()), w.banner.text()
    assert isinstance(w.engine, RemoteEngine) and w.engine.info.kind == "wren"
    assert w.status_threads.text() == f"answered by {host_of(wren_url)}"
    assert w.status_model.text() == "SmolLM2-135M-Instruct"
    chat_turn(loop, w, "What is the capital of France? Answer in one sentence.")
    msgs = store.messages(w.cid)
    assert msgs[-1].role == "assistant" and msgs[-1].content.strip() and msgs[-1].complete, w.banner.text()
    assert "TTFT" in w.status_speed.text()  # the server's timings
    run(loop, w._summarize(COUNCIL, "key_points", "short"))
    assert w.summarize.result.toPlainText().strip()
    # a smart reply goes with its grammar (wren_grammar): three well-formed replies
    run(loop, w._replies("Are you joining the team dinner on Friday at seven?"))
    assert len(w.reply.replies()) == 3
    # the server counts tokens (its /tokenize), not the estimate
    text = "hello world " * 20
    n = run(loop, asyncio.to_thread(w.engine.count_tokens, text))
    assert 0 < n != estimate_tokens(text)


def test_window_chat_and_summarize_through_another_server(loop, make_window, stub):
    w, store = make_window(stub.url, key="")
    assert run(loop, w.load_engine()), w.banner.text()
    assert w.engine.info.kind == "openai" and w.status_model.text() == "stub-model"
    chat_turn(loop, w, "What did the council do?")
    msgs = store.messages(w.cid)
    assert msgs[-1].content == Stub.ANSWER and msgs[-1].complete
    assert "TTFT" in w.status_speed.text()  # measured here: the stub sends no timings
    run(loop, w._summarize(COUNCIL, "key_points", "short"))
    assert "council approved bike lanes" in w.summarize.result.toPlainText()
    # Wren's own fields never reach another server; its token counts are the estimate
    run(loop, w._replies("Are you joining the team dinner on Friday at seven?"))
    assert not any("wren_grammar" in b or "top_k" in b for b in stub.bodies)
    assert stub.bodies[0]["model"] == "stub-model" and stub.bodies[0]["stream"] is True
    assert w.engine.count_tokens("x" * 400) == 100


def test_another_server_gets_a_trimmed_conversation(loop, stub):
    """A conversation that outgrew the context: for a server that is not Wren the oldest turns are left out here
    (the system prompt and the last message stay), and the window is told as with a local engine; Wren's
    repetition guard's finish reason comes through."""
    turns = [{"role": "system", "content": "Be brief."}]
    for i in range(40):
        turns += [{"role": "user", "content": f"Question {i}: " + "words " * 30},
                  {"role": "assistant", "content": f"Answer {i}: " + "words " * 30}]
    turns.append({"role": "user", "content": "And the last one?"})
    stub.reason = "repetition"

    async def ask(trim):
        async with await RemoteEngine.open(stub.url, "", Settings(context_length=1024)) as engine:
            return [ev async for ev in engine.generate(Request(messages=turns, max_new_tokens=64, trim=trim))]
    events = run(loop, ask(True))
    sent = stub.bodies[-1]["messages"]
    trimmed = [ev for ev in events if isinstance(ev, ContextTrimmed)]
    assert len(trimmed) == 1 and trimmed[0].dropped_messages == len(turns) - len(sent) > 0
    assert sent[0] == turns[0] and sent[-1] == turns[-1] and sent[1]["role"] == "user"
    assert sum(estimate_tokens(m["content"]) for m in sent) < 1024 - 64
    assert events[-1].reason == "repetition" and events[-1].text == Stub.ANSWER
    events = run(loop, ask(False))  # not asked to trim: sent whole, the server says what it makes of it
    assert stub.bodies[-1]["messages"] == turns and not any(isinstance(ev, ContextTrimmed) for ev in events)


def test_connection_lost_mid_answer_keeps_the_partial_answer(loop, make_window, stub):
    stub.drop_after = 4
    w, store = make_window(stub.url, key="")
    assert run(loop, w.load_engine())
    chat_turn(loop, w, "What did the council do?")
    msgs = store.messages(w.cid)
    assert msgs[-1].role == "assistant" and not msgs[-1].complete
    assert msgs[-1].content == " ".join(Stub.ANSWER.split(" ")[:4])
    assert "lost mid-answer" in w.banner.text() and "partial answer is kept" in w.banner.text()
    stub.drop_after = None  # the next turn works again on the same engine
    chat_turn(loop, w, "And then?")
    assert store.messages(w.cid)[-1].complete


def test_a_wren_server_killed_mid_answer(loop, make_window):
    proc, url = start_wren()
    try:
        w, store = make_window(url, key="")
        w.settings = w.settings.with_mode("chat", seed=7, max_new_tokens=400)
        assert run(loop, w.load_engine()), w.banner.text()

        async def kill_midway():
            w._chat_send("Write a very long story about a dragon who learns to bake bread.", None)
            t0 = time.monotonic()
            while len(w.chat.stream.text) < 20:  # a handshake: the first words are on the screen
                assert time.monotonic() - t0 < 300, "no answer came"
                await asyncio.sleep(0.02)
            proc.kill()
            await w.task
        run(loop, kill_midway())
        msgs = store.messages(w.cid)
        assert msgs[-1].role == "assistant" and not msgs[-1].complete and len(msgs[-1].content) >= 20
        assert "lost mid-answer" in w.banner.text(), w.banner.text()
    finally:
        proc.kill()
        proc.wait()


def test_a_wrong_key_is_shown_as_such(loop, make_window, wren_url):
    w, _ = make_window(wren_url, key="not-the-key")
    assert not run(loop, w.load_engine())
    assert w.engine is None
    assert "refused the API key (401)" in w.banner.text()


def test_unreachable_server_is_a_message(loop, stub):
    port = stub.url.split(":")[2].split("/")[0]
    run(loop, stub.runner.cleanup())  # nothing listens there now
    with pytest.raises(RemoteError, match=f"cannot reach the server at 127.0.0.1:{port}"):
        run(loop, RemoteEngine.open(stub.url))


def test_admin_api_of_a_wren_server(loop, wren_url):
    with pytest.raises(RemoteError, match="401"):
        run(loop, admin(wren_url, "wrong"))
    state = run(loop, admin(wren_url, KEY))
    assert state["model"] == "SmolLM2-135M-Instruct" and state["machine"]["cpus"]
    assert any(m["name"] == "SmolLM2-135M-Instruct" for m in state["models"])
    state = run(loop, admin(wren_url, KEY, {"threads": 1}))
    assert state["threads"] == 1 and state["settings"]["threads"] == 1
    with pytest.raises(RemoteError, match="cores must be one of"):
        run(loop, admin(wren_url, KEY, {"cores": "fastest"}))
    run(loop, admin(wren_url, KEY, {"threads": 0}))


def test_admin_api_switches_the_served_model(loop, wren_url):
    """The window picks another of the server's installed models: the server loads it and answers with it; a name
    that is not installed (or a path) is refused and the server keeps its model."""
    model_or_skip("Gemma-3-270M")
    with pytest.raises(RemoteError, match="no installed model is called '/etc/passwd'"):
        run(loop, admin(wren_url, KEY, {"model": "/etc/passwd"}))
    try:
        state = run(loop, admin(wren_url, KEY, {"model": "Gemma-3-270M", "threads": 1}))
        assert state["model"] == "Gemma-3-270M" and state["threads"] == 1
        assert [m["name"] for m in state["models"] if m["serving"]] == ["Gemma-3-270M"]

        async def ask():
            async with await RemoteEngine.open(wren_url, KEY) as engine:
                assert engine.model_name == "Gemma-3-270M"
                async for ev in engine.generate(Request(messages=[{"role": "user", "content": "Hi"}],
                                                        max_new_tokens=4)):
                    pass
                return ev
        done = run(loop, ask())
        assert done.reason in ("stop", "length") and done.text
    finally:
        state = run(loop, admin(wren_url, KEY, {"model": "SmolLM2-135M-Instruct", "threads": 0}))
    assert state["model"] == "SmolLM2-135M-Instruct"


def test_the_engine_page_reaches_a_wren_servers_model_and_cores(qtbot, loop, wren_url):
    """Settings -> Engine on a Wren server: its installed models (the one it serves chosen), its cores with a
    custom CPU set of that machine, applied there."""
    from wren.gui.settings.dialog import SettingsDialog

    before = run(loop, admin(wren_url, KEY))["settings"]
    dlg = SettingsDialog(Settings(engine_url=wren_url, engine_key=KEY))
    qtbot.addWidget(dlg)
    try:
        run(loop, dlg._ask_remote(wren_url, KEY, None))
        names = [dlg.remote_model.itemData(i) for i in range(dlg.remote_model.count())]
        assert "SmolLM2-135M-Instruct" in names and dlg.remote_model.currentData() == "SmolLM2-135M-Instruct"
        assert "model" not in dlg.remote_changes()  # the served one: nothing to load
        dlg.remote_cores.setCurrentIndex(dlg.remote_cores.findData("custom"))
        for bad in ("", "0-"):
            dlg.remote_cpus.setText(bad)
            with pytest.raises(ValueError):
                dlg.remote_changes()
        dlg.remote_cpus.setText("0")
        assert dlg.remote_changes() == {"threads": before["threads"], "cores": "custom", "custom_cpus": [0]}
        run(loop, dlg._ask_remote(wren_url, KEY, dlg.remote_changes()))
        after = run(loop, admin(wren_url, KEY))["settings"]
        assert after["cores"] == "custom" and after["custom_cpus"] == [0]
        assert "Wren at" in dlg.remote_label.text()
    finally:
        run(loop, admin(wren_url, KEY, {"cores": before["cores"], "threads": before["threads"]}))
        dlg.close()
        run(loop, dlg.stopping_browsing())


def test_stop_closes_the_stream(loop, wren_url):
    async def scenario():
        engine = await RemoteEngine.open(wren_url, KEY)
        try:
            events = []
            async for ev in engine.generate(Request(messages=[{"role": "user", "content": "Tell a long story."}],
                                                    max_new_tokens=300)):
                events.append(ev)
                if len(events) == 3:
                    engine.cancel()
            return events[-1]
        finally:
            await engine.close()
    done = run(loop, scenario())
    assert done.reason == "cancelled" and done.text


def test_a_long_conversation_is_trimmed_on_a_wren_server(loop):
    proc, url = start_wren("--ctx", "256")

    async def scenario():
        engine = await RemoteEngine.open(url, "", Settings().with_mode("chat", seed=3, max_new_tokens=12))
        chat = ChatController()
        trimmed = []
        try:
            for i in range(4):
                chat.add_user(f"Question {i}: " + "what is the weather like in spring? " * 10)
                async for ev in chat.answer(engine):
                    if isinstance(ev, ContextTrimmed):
                        trimmed.append(ev)
                    elif isinstance(ev, Done):
                        assert ev.reason in ("stop", "length"), ev.error
        finally:
            await engine.close()
        return chat, trimmed
    try:
        chat, trimmed = run(loop, scenario())
    finally:
        stop_server(proc)
    assert trimmed and chat.first_kept == sum(t.dropped_messages for t in trimmed) > 0
    assert all(t.prompt_tokens < 256 for t in trimmed)
