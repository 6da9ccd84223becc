"""The chat controller with the real default model (SmolLM2-135M-Instruct): each turn prefills only what is new,
regenerate and edit roll the KV cache back, a long conversation leaves its oldest turns out (the system prompt
stays), and what was left out is stored, so that the turn after (also in a conversation opened again from the store)
still prefills only the new text."""
import asyncio

import pytest
from conftest import model_or_skip

from wren.engine.assistant import ChatController
from wren.engine.engine import ContextTrimmed, Done, Engine
from wren.engine.runtime.sampling import GREEDY, SamplingParams
from wren.engine.settings import Settings
from wren.engine.store import Store

pytestmark = pytest.mark.model

MODEL = "SmolLM2-135M-Instruct"
CTX = 1024
SMALL_CTX = 256


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def open_engine(loop, n_ctx):
    return loop.run_until_complete(Engine.open(model_or_skip(MODEL), Settings(context_length=n_ctx,
                                                                              batch_size=256)))


@pytest.fixture(scope="module")
def engine(loop):
    eng = open_engine(loop, CTX)
    yield eng
    loop.run_until_complete(eng.close())


@pytest.fixture(scope="module")
def small_engine(loop):
    eng = open_engine(loop, SMALL_CTX)
    yield eng
    loop.run_until_complete(eng.close())


def turn(loop, engine, chat, text=None, sampling=GREEDY, max_new_tokens=16):
    """The events of one answer (to `text`, added first, or to the conversation as it stands)."""
    if text is not None:
        chat.add_user(text)

    async def run():
        return [ev async for ev in chat.answer(engine, sampling=sampling, max_new_tokens=max_new_tokens)]
    events = loop.run_until_complete(run())
    assert isinstance(events[-1], Done) and events[-1].reason in ("stop", "length"), events[-1].error
    return events


def new_text_tokens(engine, chat, text):
    """Tokens a turn with `text` adds to what the last turn sent and wrote, plus what the KV cache cannot hold: the
    last answer's final token (sampled, never fed back) and the template's end of that answer's turn."""
    before = len(engine.template.encode(chat.prompt_messages(), add_generation_prompt=False))
    after = len(engine.template.encode(chat.prompt_messages() + [{"role": "user", "content": text}]))
    end_of_turn = before - len(engine.template.encode(chat.prompt_messages()[:-1]) +
                               engine.tokenizer.encode(chat.messages[-1]["content"], add_special=False))
    return after - before + 1 + end_of_turn


def test_turn_two_prefills_only_what_is_new(loop, engine):
    chat = ChatController("You are a concise assistant.")
    first = turn(loop, engine, chat, "Name a fruit.")[-1]
    new = new_text_tokens(engine, chat, "And a vegetable?")
    second = turn(loop, engine, chat, "And a vegetable?")[-1]
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "user", "assistant"]
    st = second.stats
    assert st.cached_tokens > first.stats.prompt_tokens
    assert st.prefilled_tokens <= new


def test_regenerate_and_edit_roll_the_cache_back(loop, engine):
    chat = ChatController()
    turn(loop, engine, chat, "Say hello.", max_new_tokens=8)
    turn(loop, engine, chat, "Say goodbye.", max_new_tokens=8)
    assert chat.regenerate()
    assert chat.prompt_messages()[-1] == {"role": "user", "content": "Say goodbye."}
    again = turn(loop, engine, chat, sampling=SamplingParams(seed=3), max_new_tokens=8)[-1]
    assert again.stats.cached_tokens > 0 and chat.messages[-1]["role"] == "assistant"
    chat.edit(0, "Say hi.")
    assert chat.prompt_messages() == [{"role": "user", "content": "Say hi."}]
    edited = turn(loop, engine, chat, max_new_tokens=8)[-1]
    # only the template's header before the first message can be reused
    assert edited.stats.cached_tokens < edited.stats.prompt_tokens


def test_long_conversation_drops_oldest_turns_keeping_the_system_prompt(loop, engine):
    chat = ChatController("SYSTEM-MARKER: answer briefly.")
    filler = "Tell me about this: " + "lorem ipsum dolor sit amet " * 40
    trimmed = []
    for _ in range(6):
        trimmed += [ev for ev in turn(loop, engine, chat, filler, max_new_tokens=8) if isinstance(ev, ContextTrimmed)]
    assert trimmed, "six long turns should outgrow a context of 1024 tokens"
    assert chat.first_kept > 0
    sent = chat.prompt_messages()
    assert sent[0]["content"].startswith("SYSTEM-MARKER") and sent[-1]["role"] == "assistant"
    assert all(ev.prompt_tokens < CTX for ev in trimmed)


def test_after_trimming_the_next_turn_prefills_only_the_new_text(loop, small_engine, tmp_path):
    engine = small_engine
    with Store(tmp_path / "wren.sqlite3") as store:
        chat = ChatController("Answer in a few words.", store)
        for i in range(40):  # until the conversation outgrows the context
            events = turn(loop, engine, chat, f"Question {i}: what is a good name for a pet number {i}?")
            if any(isinstance(ev, ContextTrimmed) for ev in events):
                break
        else:
            pytest.fail(f"forty turns did not outgrow a context of {SMALL_CTX} tokens")
        assert chat.first_kept > 0
        assert store.conversation(chat.cid).first_kept == chat.first_kept  # stored, not only remembered

        text = "And one for a goldfish?"
        new = new_text_tokens(engine, chat, text)
        events = turn(loop, engine, chat, text)
        assert not any(isinstance(ev, ContextTrimmed) for ev in events)
        st = events[-1].stats
        assert st.prompt_tokens > 4 * new  # most of the prompt is the conversation so far ...
        assert st.prefilled_tokens <= new  # ... and only the new text is prefilled

        # the conversation opened again from the store sends the same prompt: the cache is reused as before
        again = ChatController.open(store, chat.cid)
        assert again.first_kept == chat.first_kept and again.prompt_messages() == chat.prompt_messages()
        text = "And for a parrot?"
        new = new_text_tokens(engine, again, text)
        st = turn(loop, engine, again, text)[-1].stats
        assert st.prefilled_tokens <= new
        assert [m.content for m in store.messages(chat.cid)] == [m["content"] for m in again.messages]


def test_a_system_prompt_set_for_a_conversation_is_kept_and_sent(tmp_path):
    with Store(tmp_path / "wren.sqlite3") as store:
        chat = ChatController(store=store)
        chat.set_system("  Answer like a pirate. ")  # before the first message: stored when the conversation is
        chat.add_user("Hello")
        assert store.conversation(chat.cid).system == "Answer like a pirate."
        chat.set_system("Answer in French.")
        assert chat.prompt_messages()[0] == {"role": "system", "content": "Answer in French."}
        again = ChatController.open(store, chat.cid)
        assert again.system == "Answer in French." and again.prompt_messages()[0]["content"] == "Answer in French."
        again.set_system("")
        assert store.conversation(chat.cid).system == "" and again.prompt_messages()[0]["role"] == "user"
