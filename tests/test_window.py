"""The window, offscreen: widgets against a small scripted engine (streaming, stop, errors, persistence), then the
real default model end to end (ask, stop, regenerate, each mode), with a check that the event loop runs during every
model load and forward pass, and a kill -9 while an answer streams. (tools/latency.py measures how long the window
stalls.)"""
import asyncio
import os
import signal
import subprocess
import sys
import threading

import pytest
from conftest import model_or_skip, run, wait_until

qasync = pytest.importorskip("qasync")

from wren.engine.engine import Done, Request, Stats, Token  # noqa: E402
from wren.engine.runtime import placement  # noqa: E402
from wren.engine.runtime.topology import read_topology  # noqa: E402
from wren.engine.settings import Settings  # noqa: E402
from wren.gui.main_window import MainWindow  # noqa: E402
from wren.engine.store import Store  # noqa: E402

pytestmark = pytest.mark.gui


async def idle(window):
    """Wait for the task the window started last (window.start) to end."""
    if window.task is not None:
        await asyncio.wait([window.task])


class ScriptedEngine:
    """Stands in for the engine in widget tests: streams a fixed answer, honours cancel, can fail."""
    model_name = "Scripted"
    n_ctx = 512
    threads = 1
    cpus = (0,)
    pinned = True
    threads_note = ""
    settings = Settings()

    class template:  # noqa: N801 (the engine's attribute name)
        @staticmethod
        def encode(messages):
            return [0] * sum(len(m["content"].split()) for m in messages)

    def __init__(self, answer="Hello **there**, this is a streamed answer.", delay=0.01, error=""):
        self.answer, self.delay, self.error = answer, delay, error
        self.on_token = None  # on_token(n) as the n-th token goes out: a test's hook
        self.cancelled = False
        self.cancels = 0  # cancel() calls (summarize stops once they change)
        self.last_stats = None
        self.closed = False

    def cancel(self):
        self.cancelled = True
        self.cancels += 1

    async def generate(self, request: Request):
        self.cancelled = False
        self.request = request  # what the model was sent last
        stats = Stats(prompt_tokens=10, ttft_seconds=0.01, prefill_seconds=0.01)
        out = []
        for word in self.answer.split(" "):
            await asyncio.sleep(self.delay)  # pacing, as a model streams; nothing waits on it
            if self.cancelled:
                stats.finish_reason = "cancelled"
                break
            piece = word + " "
            out.append(piece)
            stats.generated_tokens += 1
            if self.on_token is not None:
                self.on_token(stats.generated_tokens)
            yield Token(piece)
        else:
            stats.finish_reason = "error" if self.error else "stop"
            stats.error = self.error
        self.last_stats = stats
        yield Done(stats, "".join(out))

    def count_tokens(self, text):
        return len(text.split())

    async def apply_settings(self, settings):
        return set()

    async def close(self):
        self.closed = True


def make_window(tmp_path, engine=None, qtbot=None):
    store = Store(tmp_path / "wren.sqlite3")

    async def opener(path, settings, progress=None):
        if progress:
            progress(1, 1)
        return engine

    w = MainWindow(Settings(context_length=1024), store, open_engine=opener)
    if qtbot is not None:
        qtbot.addWidget(w)
    w.resize(1100, 720)
    w.show()
    return w, store


def test_chat_streams_saves_and_shows_stats(qtbot, loop, tmp_path):
    engine = ScriptedEngine()
    w, store = make_window(tmp_path, engine, qtbot)
    assert run(loop, w.load_engine())
    assert w.status_model.text() == "Scripted" and "1 thread on CPUs 0" in w.status_threads.text()
    w.chat.input.setPlainText("Hi there")
    w.activateWindow()
    w.chat.input.setFocus()
    from PySide6.QtCore import Qt
    qtbot.keyClick(w.chat.input, Qt.Key_Return, Qt.ControlModifier)
    run(loop, idle(w))
    convs = store.conversations()
    assert len(convs) == 1 and convs[0].title == "Hi there"
    msgs = store.messages(convs[0].id)
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[1].complete
    assert msgs[1].content == engine.answer
    assert "there" in w.chat.transcript.toPlainText() and "**" not in w.chat.transcript.toPlainText()
    assert "TTFT" in w.status_speed.text()
    assert w.conv_model.rowCount() == 1


def test_stop_keeps_the_partial_answer(qtbot, loop, tmp_path):
    engine = ScriptedEngine(answer=" ".join(f"w{i}" for i in range(400)), delay=0.01)
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())

    engine.on_token = lambda n: n == 5 and w.stop()  # the stop button, pressed as the fifth word goes out

    async def scenario():
        w._chat_send("Tell me a long story", None)
        await idle(w)
    run(loop, scenario())
    msgs = store.messages(store.conversations()[0].id)
    assert msgs[-1].role == "assistant" and not msgs[-1].complete
    assert msgs[-1].content.split() == ["w0", "w1", "w2", "w3", "w4"]
    assert "(stopped)" not in msgs[-1].content


def test_errors_show_in_the_window(qtbot, loop, tmp_path):
    w, _ = make_window(tmp_path, ScriptedEngine(error="the model ran out of context"), qtbot)
    run(loop, w.load_engine())
    run(loop, w._chat_turn("Hello"))
    assert "ran out of context" in w.banner.text() and w.banner.isVisible()

    async def failing(path, settings, progress=None):
        from wren.engine.runtime.gguffile import GGUFError
        raise GGUFError("bad.gguf: the file is truncated")
    w2, _ = make_window(tmp_path / "b", None, qtbot) if (tmp_path / "b").mkdir() is None else None
    w2.open_engine = failing
    assert not run(loop, w2.load_engine())
    assert "truncated" in w2.banner.text() and w2.engine is None
    w2._chat_send("Hello", None)  # no model: a message, not a crash
    run(loop, idle(w2))
    assert "No model" in w2.banner.text() or "loaded" in w2.banner.text()


def test_edit_and_regenerate_rewrite_the_conversation(qtbot, loop, tmp_path):
    w, store = make_window(tmp_path, ScriptedEngine(answer="An answer."), qtbot)
    run(loop, w.load_engine())
    run(loop, w._chat_turn("First question"))
    run(loop, w._chat_turn("Second question"))
    cid = w.cid
    first_user = store.messages(cid)[0]
    run(loop, w._chat_turn("First question, edited", edited=first_user.id))
    assert [m.content for m in store.messages(cid)] == ["First question, edited", "An answer."]
    run(loop, w._chat_regenerate())
    assert [m.role for m in store.messages(cid)] == ["user", "assistant"]


def test_sidebar_search_rename_delete_and_narrow_layout(qtbot, loop, tmp_path):
    w, store = make_window(tmp_path, ScriptedEngine(answer="ok"), qtbot)
    run(loop, w.load_engine())
    run(loop, w._chat_turn("About apples"))
    w.new_chat()
    run(loop, w._chat_turn("About pears"))
    assert w.conv_model.rowCount() == 2
    w.search.setText("apples")
    assert w.conv_model.rowCount() == 1
    w.search.setText("")
    store.rename(w.cid, "Pears")
    w.refresh_conversations()
    assert "Pears" in [w.conv_model.data(w.conv_model.index(r, 0)) for r in range(2)]
    w.delete_conversation(w.cid)
    assert w.conv_model.rowCount() == 1 and w.cid is None
    w.resize(800, 480)
    qtbot.wait(50)
    assert not w.sidebar.isVisible()
    w.resize(1200, 800)
    qtbot.wait(50)
    assert w.sidebar.isVisible()


def test_mode_views_round_trip(qtbot, loop, tmp_path):
    engine = ScriptedEngine(answer="Subject: Lunch\n\nHi Sam,\nNoon works.\nBest")
    w, _ = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    w.show_mode("email")
    w.email.points.setPlainText("lunch at noon works")
    run(loop, w._draft(w.email.request()))
    assert w.email.subject.text() == "Lunch" and w.email.body.toPlainText().startswith("Hi Sam")
    assert w.email.mailto_url().startswith("mailto:?subject=Lunch&body=Hi%20Sam")
    eml = tmp_path / "x.eml"
    w.email.save_eml(eml)
    assert b"Subject: Lunch" in eml.read_bytes()
    engine.answer = "1. Sure, see you then!\n2. Sorry, I can't.\n3. Where exactly?"
    run(loop, w._replies("Lunch tomorrow?"))
    assert w.reply.replies() == ["Sure, see you then!", "Sorry, I can't.", "Where exactly?"]
    engine.answer = "A short summary."
    run(loop, w._summarize("Some text to summarize. " * 10, "paragraph", "short"))
    assert "A short summary." in w.summarize.result.toPlainText()
    assert not w.summarize.progress.isVisible()


# ---- the real default model ----------------------------------------------------------------------------------------


class LoopCheck:
    """Wraps cls.name so that every call first has the window's event loop run a callback, and waits for it: a call
    made on the loop's own thread (the window frozen until it returns) never sees the callback run and counts as a
    stall (after `patience` seconds, a guard against a hang, not a measurement)."""

    def __init__(self, loop, monkeypatch, cls, name, patience=60):
        self.calls = self.stalls = 0
        real = getattr(cls, name)

        def checked(*args, **kwargs):
            ran = threading.Event()
            loop.call_soon_threadsafe(ran.set)
            self.calls += 1
            if not ran.wait(patience):
                self.stalls += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(cls, name, checked)


@pytest.fixture(scope="module")
def real_window(qapp, loop, tmp_path_factory):
    from wren.engine.runtime.model import Model

    model_or_skip("SmolLM2-135M-Instruct")
    store = Store(tmp_path_factory.mktemp("real") / "wren.sqlite3")
    w = MainWindow(Settings(context_length=2048), store)
    w.resize(1100, 720)
    w.show()
    with pytest.MonkeyPatch.context() as mp:
        w.load_check = LoopCheck(loop, mp, Model, "__init__")
        assert run(loop, w.load_engine()), w.banner.text()
    yield w
    run(loop, w.shutdown())
    w.close()
    store.close()


@pytest.mark.model
def test_real_model_loads_without_freezing_the_window(real_window):
    assert real_window.engine is not None
    assert (real_window.load_check.calls, real_window.load_check.stalls) == (1, 0)


@pytest.mark.model
def test_real_chat_ask_stop_regenerate(real_window, loop, monkeypatch):
    from wren.engine.runtime.model import Context

    w = real_window
    w.new_chat()
    with monkeypatch.context() as mp:
        check = LoopCheck(loop, mp, Context, "forward")
        run(loop, w._chat_turn("What is the capital of France? Answer in one sentence."))
    assert check.calls > 1 and check.stalls == 0, "a forward pass ran while the window's event loop could not"
    msgs = w.store.messages(w.cid)
    assert msgs[-1].role == "assistant" and msgs[-1].content.strip() and msgs[-1].complete
    assert "TTFT" in w.status_speed.text()

    # stop: the fifth decode step waits until the stop button has been pressed
    reached, resume = threading.Event(), threading.Event()
    forward, decode_steps = Context.forward, []

    def paused(self, tokens, *args, **kwargs):
        if len(tokens) == 1:
            decode_steps.append(1)
            if len(decode_steps) == 5:
                reached.set()
                resume.wait(60)
        return forward(self, tokens, *args, **kwargs)

    async def stop_midway():
        w._chat_send("Write a long story about a lighthouse keeper.", None)
        assert await asyncio.to_thread(reached.wait, 60)
        w.stop()
        resume.set()
        await idle(w)
    with monkeypatch.context() as mp:
        mp.setattr(Context, "forward", paused)
        try:
            run(loop, stop_midway())
        finally:
            resume.set()
    last = w.store.messages(w.cid)[-1]
    assert last.role == "assistant" and not last.complete and last.content
    run(loop, w._chat_regenerate())
    msgs = w.store.messages(w.cid)
    assert msgs[-1].role == "assistant" and msgs[-1].content.strip()
    assert [m.role for m in msgs].count("assistant") == 2


@pytest.mark.model
def test_real_chat_after_trimming_prefills_only_the_new_text(qtbot, loop, tmp_path):
    from test_chat_controller import new_text_tokens
    model_or_skip("SmolLM2-135M-Instruct")
    store = Store(tmp_path / "wren.sqlite3")
    w = MainWindow(Settings(context_length=256).with_mode("chat", temperature=0.0, max_new_tokens=16), store)
    qtbot.addWidget(w)
    try:
        assert run(loop, w.load_engine()), w.banner.text()
        for i in range(40):  # until the conversation outgrows the context
            run(loop, w._chat_turn(f"Question {i}: what is a good name for a pet number {i}?"))
            if store.conversation(w.cid).first_kept:
                break
        else:
            pytest.fail("forty turns did not outgrow a context of 256 tokens")
        first_kept = store.conversation(w.cid).first_kept
        for text in ("And one for a goldfish?", "And for a parrot?"):
            new = new_text_tokens(w.engine, w.conversation, text)
            run(loop, w._chat_turn(text))
            st = w.engine.last_stats
            assert store.conversation(w.cid).first_kept == first_kept  # no second trim
            assert st.prompt_tokens > 4 * new and st.prefilled_tokens <= new
            w.open_conversation(w.cid)  # shown again from the store: it goes on where it was
        assert len(w.chat.messages) == len(store.messages(w.cid))
    finally:
        run(loop, w.shutdown())
        store.close()


@pytest.mark.model
def test_real_modes_once_each(real_window, loop):
    w = real_window
    w.email.points.setPlainText("the report is late; it will be ready on Friday")
    run(loop, w._draft(w.email.request()))
    assert w.email.subject.text().strip() and w.email.body.toPlainText().strip()
    run(loop, w._replies("Are you joining the team dinner on Friday at seven?"))
    replies = w.reply.replies()
    assert len(replies) == 3 and len(set(replies)) == 3
    text = ("The council met on Tuesday. It approved the new bike lanes on Main Street and delayed the vote on the "
            "library budget until next month. Residents asked for more street lights near the park.")
    run(loop, w._summarize(text, "key_points", "short"))
    assert w.summarize.result.toPlainText().strip()


KILL_SCRIPT = """
import asyncio, sys
import qasync
from PySide6.QtWidgets import QApplication
from wren.engine.settings import Settings
from wren.gui.main_window import MainWindow
from wren.engine.store import Store
app = QApplication(sys.argv)
loop = qasync.QEventLoop(app)
asyncio.set_event_loop(loop)
w = MainWindow(Settings(context_length=2048), Store(sys.argv[1]))
w.show()
async def main():
    assert await w.load_engine(), w.banner.text()
    w._chat_send("Write a very long story about a dragon who learns to bake bread.", None)
    await asyncio.Event().wait()  # streams until the test kills this process
with loop:
    loop.run_until_complete(main())
"""


@pytest.mark.model
def test_kill_during_streaming_keeps_the_partial_answer(tmp_path):
    model_or_skip("SmolLM2-135M-Instruct")
    db = tmp_path / "wren.sqlite3"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(db)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    def partial_answer():
        if proc.poll() is not None:
            return "exited"
        if not db.exists():
            return None
        with Store(db) as s:
            convs = s.conversations()
            msgs = s.messages(convs[0].id) if convs else []
            if msgs and msgs[-1].role == "assistant" and len(msgs[-1].content) > 40:
                return msgs[-1].content
        return None

    try:
        partial = wait_until(partial_answer, timeout=120)
        assert partial != "exited", proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(db) as s:
        convs = s.conversations()
        assert len(convs) == 1
        msgs = s.messages(convs[0].id)
        assert msgs[0].role == "user" and "dragon" in msgs[0].content
        assert msgs[-1].role == "assistant" and not msgs[-1].complete
        assert msgs[-1].content.startswith(partial[:40])


@pytest.mark.model
def test_settings_from_the_dialog_apply_to_the_running_engine(real_window, loop):
    w = real_window
    cpus = sorted(os.sched_getaffinity(0))
    w.open_settings()
    dialog = w.settings_dialog
    from dataclasses import replace
    dialog.set_settings(replace(w.settings, cores="custom", custom_cpus=(cpus[-1],), threads=1))
    applied = dialog.apply()
    assert applied is not None
    run(loop, idle(w))
    assert w.engine.threads == 1
    assert run(loop, w.engine.worker_cpus()) == [cpus[-1]]
    assert f"CPUs {cpus[-1]}" in w.status_threads.text()
    dialog.set_settings(replace(w.settings, cores="big", custom_cpus=(), threads=0))
    dialog.apply()
    run(loop, idle(w))
    dialog.close()
    assert w.engine.threads == len(placement.place(w.settings, read_topology()).cpus or cpus)


@pytest.mark.model
def test_corrupt_model_from_the_dialog_shows_the_loaders_message(real_window, loop, tmp_path):
    w = real_window
    engine_before = w.engine
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(200))
    w.open_settings()
    dialog = w.settings_dialog
    assert dialog.open_model_file(bad) is None  # the dialog itself shows the loader's message
    from dataclasses import replace
    run(loop, w.apply_settings(replace(w.settings, model=str(bad))))
    assert "broken.gguf" in w.banner.text() and w.banner.isVisible()
    assert w.engine is engine_before  # still running the model it had
    run(loop, w.apply_settings(replace(w.settings, model="")))
    dialog.close()
    run(loop, w._chat_turn("Say hi."))
    assert w.store.messages(w.cid)[-1].role == "assistant"


def test_first_run_offers_to_fetch_the_default_model(qtbot, loop, tmp_path):
    async def missing(path, settings, progress=None):
        raise FileNotFoundError("model SmolLM2-135M-Instruct is not installed")
    w, _ = make_window(tmp_path, None, qtbot)
    w.open_engine = missing
    assert not run(loop, w.load_engine())
    assert w.fetch_row.isVisible() and "SmolLM2-135M-Instruct" in w.fetch_button.text()


HEADLESS_SCRIPT = """
import sys
from wren.gui import main_window
load_engine = main_window.MainWindow.load_engine
async def announced(self, *args, **kwargs):  # the window is up and has its signal handlers once this runs
    ok = await load_engine(self, *args, **kwargs)
    print("loaded" if ok else "not loaded", flush=True)
    return ok
main_window.MainWindow.load_engine = announced
from wren.engine import cli
sys.exit(cli.main([]))
"""


@pytest.mark.model
def test_headless_wren_opens_the_window_and_quits_cleanly(tmp_path):
    model_or_skip("SmolLM2-135M-Instruct")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", WREN_DATA_DIR=str(tmp_path / "data"),
               WREN_CONFIG_DIR=str(tmp_path / "config"))
    proc = subprocess.Popen([sys.executable, "-c", HEADLESS_SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    guard = threading.Timer(300, proc.kill)  # against a hang only
    guard.start()
    try:
        line = proc.stdout.readline()
    finally:
        guard.cancel()
    assert line == b"loaded\n", proc.stderr.read().decode()[-2000:] if proc.poll() is not None else line
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err
    assert (tmp_path / "data" / "wren.sqlite3").exists()


def test_every_control_has_an_accessible_name(qtbot, loop, tmp_path):
    from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QListView, QPlainTextEdit, QTextBrowser
    w, _ = make_window(tmp_path, ScriptedEngine(), qtbot)
    kinds = (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QTextBrowser, QListView)
    def inner(c):  # parts Qt builds inside a combo box or a line edit (its popup, its clear button)
        p = c.parent()
        while p is not None:
            if isinstance(p, (QComboBox, QLineEdit)):
                return True
            p = p.parent()
        return False
    controls = [c for c in w.findChildren(kinds[0].__mro__[1]) if isinstance(c, kinds) and not inner(c)]
    assert len(controls) > 30
    unnamed = [f"{type(c).__name__} {c.text() if hasattr(c, 'text') else ''!r}" for c in controls
               if not c.accessibleName()]
    assert not unnamed, unnamed


def test_themes_follow_the_setting(qtbot, loop, tmp_path):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from wren.gui.theme import apply_theme
    app = QApplication.instance()
    try:
        apply_theme("dark")
        assert app.palette().color(QPalette.Window).lightness() < 80
        apply_theme("light")
        assert app.palette().color(QPalette.Window).lightness() > 180
    finally:
        apply_theme("system")


# ---- the chat as a user meets it: edits, failed sends, the banner, buttons, stopping, the status bar ---------------


class GatedEngine(ScriptedEngine):
    """Streams `before` words of its answer, then waits at a gate until it is stopped (or `before` is None: it streams
    the whole answer); its stats say how much of the prompt the cache held."""

    def __init__(self, answer="Paris is the capital of France.", before=None, cached=0):
        super().__init__(answer, delay=0)
        self.before, self.cached = before, cached
        self.paused = asyncio.Event()
        self.gate = asyncio.Event()

    def cancel(self):
        self.cancelled = True
        self.gate.set()

    async def generate(self, request: Request):
        self.cancelled = False
        self.request = request  # what the model was sent last
        self.gate.clear()
        stats = Stats(prompt_tokens=40, cached_tokens=self.cached, prefill_seconds=0.002)
        out = []
        for i, word in enumerate(self.answer.split(" ")):
            if i == self.before:
                self.paused.set()
                await self.gate.wait()
            if self.cancelled:
                stats.finish_reason = "cancelled"
                break
            if i == 0:
                stats.ttft_seconds = 0.002
            else:
                stats.decode_seconds += 0.001
            out.append(word + " ")
            stats.generated_tokens += 1
            yield Token(word + " ")
        else:
            stats.finish_reason = "stop"
        self.last_stats = stats
        yield Done(stats, "".join(out))


def send(loop, w, text):
    """Types text into the chat input and clicks Send, as a user does; waits for the turn to end."""
    w.chat.input.setPlainText(text)
    w.chat.send.click()
    if w.task is not None:
        run(loop, w.task)


def test_an_edit_stays_in_its_conversation(qtbot, loop, tmp_path):
    w, store = make_window(tmp_path, GatedEngine("An answer."), qtbot)
    run(loop, w.load_engine())
    send(loop, w, "First question")
    send(loop, w, "Second question")
    first = w.cid
    w.new_chat()
    send(loop, w, "Other question")
    other = w.cid
    w.open_conversation(first)
    first_user = store.messages(first)[0]
    from PySide6.QtCore import QUrl
    w.chat._anchor(QUrl(f"edit:{first_user.id}"))  # the "edit" link under the first question
    w.open_conversation(other)
    send(loop, w, "Follow-up there")
    assert not w.banner.isVisible(), w.banner.text()
    assert [m.content for m in store.messages(other)] == ["Other question", "An answer.", "Follow-up there",
                                                          "An answer."]
    assert len(store.messages(first)) == 4
    w.open_conversation(first)  # the edit waits where it was started
    assert w.chat.editing == first_user.id and w.chat.input.toPlainText() == "First question"


def test_a_send_that_fails_keeps_the_typed_text(qtbot, loop, tmp_path):
    w, store = make_window(tmp_path, None, qtbot)  # no model loaded
    send(loop, w, "Is anyone there?")
    assert w.banner.isVisible() and "No model" in w.banner.text()
    assert w.chat.input.toPlainText() == "Is anyone there?"
    assert store.conversations() == []


def test_the_banner_closes_and_clears_once_the_problem_is_gone(qtbot, loop, tmp_path):
    engine = ScriptedEngine(answer="ok", delay=0, error="the model ran out of context")
    w, _ = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    send(loop, w, "Hello")
    assert w.banner.isVisible() and "ran out of context" in w.banner.text()
    w.banner.close_button.click()  # dismissed by the user
    assert not w.banner.isVisible()
    send(loop, w, "Hello again")
    assert w.banner.isVisible()
    engine.error = ""
    send(loop, w, "And now?")  # the next turn works: the old problem is gone
    assert not w.banner.isVisible() and w.banner.text() == ""


def test_regenerate_follows_the_conversation_shown(qtbot, loop, tmp_path):
    w, _ = make_window(tmp_path, GatedEngine("An answer."), qtbot)
    run(loop, w.load_engine())
    send(loop, w, "A question")
    cid = w.cid
    w.new_chat()
    assert not w.chat.regen.isEnabled()  # nothing to answer again in an empty chat
    w.open_conversation(cid)
    assert w.chat.regen.isEnabled()


def test_a_question_stopped_before_its_first_token_can_be_asked_again(qtbot, loop, tmp_path):
    engine = GatedEngine(before=0)
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    w.chat.input.setPlainText("What is the capital of France?")
    w.chat.send.click()
    run(loop, engine.paused.wait())
    w.chat.stop.click()
    run(loop, w.task)
    assert [m.role for m in store.messages(w.cid)] == ["user"]
    assert "0 ms" not in w.status_speed.text() and "tok/s" not in w.status_speed.text()
    assert w.chat.regen.isEnabled()
    engine.before = None
    w.chat.regen.click()
    run(loop, w.task)
    assert [m.content for m in store.messages(w.cid)] == ["What is the capital of France?", engine.answer]


def test_a_stopped_answer_is_marked_and_stays_marked(qtbot, loop, tmp_path):
    engine = GatedEngine(before=2)
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    w.chat.input.setPlainText("What is the capital of France?")
    w.chat.send.click()
    run(loop, engine.paused.wait())
    w.chat.stop.click()
    run(loop, w.task)
    assert w.chat.transcript.toPlainText().rstrip().endswith("(stopped)")
    cid = w.cid
    w.new_chat()
    w.open_conversation(cid)  # reopened from the store
    assert w.chat.transcript.toPlainText().rstrip().endswith("(stopped)")


def test_the_status_bar_shows_only_figures_that_mean_something(qtbot, loop, tmp_path):
    engine = GatedEngine("Yes.", cached=40)  # the whole prompt came from the cache; one token written
    w, _ = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    assert "1 thread on" in w.status_threads.text()
    send(loop, w, "Is it?")
    text = w.status_speed.text()
    assert "TTFT 2 ms" in text and "prefill" not in text and "decode" not in text
    engine.answer, engine.cached = "A longer answer this time, word by word.", 0
    send(loop, w, "And now?")
    text = w.status_speed.text()
    assert "TTFT 2 ms" in text and "prefill 20000 tok/s" in text and "decode" in text


# ---- settings while a job runs, a bad settings file (issue 14) ---------------------------------------------------


class SettingsGatedEngine(ScriptedEngine):
    """Streams its answer, then holds the end of it until `gate` opens; records the settings applied to it."""

    def __init__(self):
        super().__init__(answer="one two three", delay=0)
        self.gate = asyncio.Event()
        self.applied = []

    async def generate(self, request: Request):
        async for ev in super().generate(request):
            if isinstance(ev, Done):
                await self.gate.wait()
            yield ev

    async def apply_settings(self, settings):
        self.applied.append(settings)
        return {"model"} if settings.model != self.settings.model else set()


def test_settings_chosen_while_an_answer_streams_are_saved_and_applied(qtbot, loop, tmp_path):
    from PySide6.QtWidgets import QApplication

    from wren.engine import settings as wsettings
    from wren.gui.theme import apply_theme

    engine = SettingsGatedEngine()
    w, _ = make_window(tmp_path, engine, qtbot)
    w.settings_path = tmp_path / "settings.toml"
    opened = []

    async def opener(path, settings, progress=None):
        opened.append(settings.model)
        return engine
    w.open_engine = opener
    assert run(loop, w.load_engine())

    async def scenario():
        w._chat_send("Hello", None)
        assert w.busy
        w.open_settings()
        d = w.settings_dialog
        d.font_spin.setValue(16)
        d.threads_spin.setValue(1)
        d.use_model("Other-Model")
        assert d.apply() is not None
        saved = wsettings.load(w.settings_path).settings
        assert (saved.font_size, saved.threads, saved.model) == (16, 1, "Other-Model")  # saved at once
        assert QApplication.font().pointSize() == 16  # the font applies at once
        assert engine.applied == [] and opened == [""]  # the engine's settings wait for the answer to end
        assert "Other-Model" in d.current_model_label.text() and "in use now" in d.current_model_label.text()
        engine.gate.set()
        await idle(w)
        assert engine.applied and engine.applied[-1].threads == 1
        assert opened == ["", "Other-Model"]  # the new model was loaded once the answer ended
        assert w.settings.font_size == 16
        d.close()
    try:
        run(loop, scenario())
    finally:
        apply_theme("system", 0)


def test_a_bad_settings_file_is_named_in_a_banner_that_stays_until_dismissed_or_saved(qtbot, loop, tmp_path):
    from PySide6.QtCore import Qt

    from wren.engine import settings as wsettings

    path = tmp_path / "settings.toml"
    path.write_text("threads = 'many'\ntheme = 'pink'\ncontext_length = 2048\n")
    loaded = wsettings.load(path)
    assert loaded.settings.context_length == 2048
    w, _ = make_window(tmp_path, ScriptedEngine(), qtbot)
    w.settings_path = path
    w.settings_banner.show_problem(loaded.problem)  # as the app does when it starts
    assert run(loop, w.load_engine())  # a model load does not clear it
    banner = w.settings_banner
    assert banner.isVisible() and "threads = 'many'" in banner.text() and "theme = 'pink'" in banner.text()
    qtbot.mouseClick(banner.dismiss_button, Qt.LeftButton)
    assert not banner.isVisible()
    banner.show_problem(loaded.problem)
    run(loop, w.apply_settings(loaded.settings))  # saved: the file is good again
    assert not banner.isVisible() and wsettings.load(path).problem is None


def test_a_system_prompt_belongs_to_its_conversation(qtbot, loop, tmp_path, monkeypatch):
    from wren.gui import chat_panel

    engine = ScriptedEngine(answer="Arr.")
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    assert w.system_button.isVisible() and not w.chat.system_row.isVisible()
    monkeypatch.setattr(chat_panel.QInputDialog, "getMultiLineText", lambda *a: ("Answer like a pirate.", True))
    w.system_button.click()  # a new chat, before its first message
    assert w.chat.system_row.isVisible() and "Answer like a pirate." in w.chat.system_label.text()
    run(loop, w._chat_turn("Hello"))
    assert engine.request.messages[0] == {"role": "system", "content": "Answer like a pirate."}
    pirate = w.cid
    assert store.conversation(pirate).system == "Answer like a pirate."
    w.new_chat()  # another conversation has none
    assert not w.chat.system_row.isVisible()
    run(loop, w._chat_turn("Hi"))
    assert engine.request.messages[0]["role"] == "user" and store.conversation(w.cid).system == ""
    w.open_conversation(pirate)  # coming back shows it, and the next answer uses it
    assert w.chat.system_row.isVisible()
    monkeypatch.setattr(chat_panel.QInputDialog, "getMultiLineText", lambda *a: ("Answer in French.", True))
    w.chat.system_edit.click()
    run(loop, w._chat_turn("Again"))
    assert engine.request.messages[0]["content"] == "Answer in French."
    assert store.conversation(pirate).system == "Answer in French." and "French" in w.chat.system_label.text()
    w.show_mode("email")
    assert not w.system_button.isVisible() and w.history.button.isVisible()


def test_every_mode_keeps_its_results_and_reopens_them(qtbot, loop, tmp_path):
    engine = ScriptedEngine(answer="Subject: Lunch\n\nHi Sam,\nNoon works for me, see you there.\nBest")
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    w.show_mode("email")
    w.email.points.setPlainText("lunch at noon works")
    w.email.tone.setCurrentText("Friendly")
    run(loop, w._draft(w.email.request()))
    engine.answer = "Subject: Lunch\n\nHi Sam, noon."
    w.email.refine.menu().actions()[0].trigger()  # Shorter
    run(loop, idle(w))
    assert w.email.body.toPlainText() == "Hi Sam, noon."
    engine.answer = "1. Sure, see you then!\n2. Sorry, I can't.\n3. Where exactly?"
    run(loop, w._replies("Lunch tomorrow?"))
    engine.answer = "A short summary."
    w.summarize.length.setCurrentText("Short")
    run(loop, w._summarize("Some text to summarize. " * 10, "key_points", "short"))

    w2, _ = make_window(tmp_path / "again", engine, qtbot) if (tmp_path / "again").mkdir() is None else None
    w2.store = w2.history.store = store  # a new window on the same database: nothing of the first one's widgets
    w2.show_mode("email")
    w2.history.fill()
    entries = [a.text() for a in w2.history.menu.actions() if a.isEnabled() and not a.isSeparator()]
    assert entries[0].startswith("Lunch") and entries[-1] == "Clear this list…"
    w2.history.menu.actions()[0].trigger()
    assert w2.email.points.toPlainText() == "lunch at noon works" and w2.email.tone.currentText() == "Friendly"
    assert w2.email.body.toPlainText() == "Hi Sam, noon."  # the refined version, and the one before it
    w2.email.undo.click()
    assert w2.email.body.toPlainText().startswith("Hi Sam,\nNoon works")
    assert store.history("email")[0].output["current"] == 0  # going back is kept too
    w2.show_mode("reply")
    w2.history.fill()
    w2.history.menu.actions()[0].trigger()
    assert w2.reply.message.toPlainText() == "Lunch tomorrow?" and w2.reply.replies()[0] == "Sure, see you then!"
    w2.show_mode("summarize")
    w2.history.fill()
    w2.history.menu.actions()[0].trigger()
    assert w2.summarize.text.toPlainText().startswith("Some text") and w2.summarize.style_key() == "key_points"
    assert "A short summary." in w2.summarize.result.toPlainText()
    assert [len(store.history(m)) for m in ("email", "reply", "summarize")] == [1, 1, 1]


def test_a_refinement_that_fails_leaves_the_email_as_it_was(qtbot, loop, tmp_path):
    engine = ScriptedEngine(answer="Subject: Lunch\n\nHi Sam,\nNoon works.")
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())
    w.show_mode("email")
    w.email.points.setPlainText("lunch at noon works")
    run(loop, w._draft(w.email.request()))
    engine.answer, engine.error = "Subject: Lunch\n\nHalf a refin", "the model ran out of context"
    w.email.refine.menu().actions()[0].trigger()
    run(loop, idle(w))
    assert "ran out of context" in w.banner.text()
    assert w.email.body.toPlainText() == "Hi Sam,\nNoon works."
    assert w.email.versions == [["Lunch", "Hi Sam,\nNoon works."]]
    assert not w.email.undo.isEnabled()
    engine.error = ""
    engine.answer = "Subject: Lunch\n\nHi Sam, noon."
    w.email._draft()  # a new draft after the failure is a new draft, not a refinement
    run(loop, idle(w))
    assert w.email.versions == [["Lunch", "Hi Sam, noon."]] and len(store.history("email")) == 2


def test_a_result_the_history_cannot_keep_stays_on_screen_and_says_so(qtbot, loop, tmp_path, monkeypatch):
    import sqlite3

    engine = ScriptedEngine(answer="A short summary.")
    w, store = make_window(tmp_path, engine, qtbot)
    run(loop, w.load_engine())

    def read_only(*args):
        raise sqlite3.OperationalError("attempt to write a readonly database")
    monkeypatch.setattr(store, "add_history", read_only)
    run(loop, w._summarize("Some text to summarize. " * 10, "paragraph", "short"))
    assert "A short summary." in w.summarize.result.toPlainText()
    assert "could not be kept" in w.banner.text() and "readonly" in w.banner.text()
