"""Chat: a conversation with the model, its state in one place.

A ChatController holds the conversation (system prompt, messages) and `first_kept`, the first message the model still
sees once the conversation outgrew the context. Each turn sends what the last one sent plus what is new, so the
engine reuses its KV cache and prefills only the new text, also after the oldest turns were left out. With a store,
every message is recorded as it comes (a streaming answer at intervals, so a crash loses little), and so is
`first_kept`: a conversation opened again leaves out what it left out before, and keeps reusing the cache.

The window keeps one controller for the conversation it shows; `wren chat` keeps one for the terminal's.
"""
from __future__ import annotations

import re
import time
from contextlib import aclosing
from typing import TYPE_CHECKING, AsyncIterator

from wren.engine.engine import ContextTrimmed, Done, Engine, Event, Request, Token
from wren.engine.runtime.sampling import SamplingParams

if TYPE_CHECKING:  # the store imports this package (for MODES): no import of it at run time
    from wren.engine.store import Store

PARTIAL_SAVE_SECONDS = 0.5  # a streaming answer is written to the store this often


def title_from(text: str) -> str:
    """A conversation's title from its first message: its first words."""
    words = re.sub(r"\s+", " ", text).strip().split(" ")
    title = " ".join(words[:7])
    return (title[:60] + "…") if len(title) > 60 or len(words) > 7 else title or "New chat"


class ChatController:
    """One conversation. `messages` are dicts {"role", "content", "id", "complete"}: `id` is the store's (None
    without a store), `complete` False for an answer that was stopped. The store, when given, is used from the
    event loop's thread only."""

    def __init__(self, system: str = "", store: Store | None = None, cid: int | None = None):
        self.system = system
        self.messages: list[dict] = []
        self.first_kept = 0
        self.store = store
        self.cid = cid  # the stored conversation; made with the first message

    @classmethod
    def open(cls, store: Store, cid: int) -> ChatController:
        """A stored conversation, as it was left: its messages and the first one the model still sees."""
        conv = store.conversation(cid)
        chat = cls(conv.system, store, cid)
        chat.messages = [{"role": m.role, "content": m.content, "id": m.id, "complete": m.complete}
                         for m in store.messages(cid) if m.role != "system"]
        chat.first_kept = min(conv.first_kept, max(len(chat.messages) - 1, 0))
        return chat

    def prompt_messages(self) -> list[dict]:
        """What the model is sent: the system prompt and the messages from `first_kept` on."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": m["role"], "content": m["content"]} for m in self.messages[self.first_kept:]]

    def set_system(self, text: str) -> None:
        """The conversation's system prompt ("" for none) from the next answer on; kept with the conversation."""
        self.system = text.strip()
        if self.store is not None and self.cid is not None:
            self.store.set_system(self.cid, self.system)

    def index_of(self, mid: int) -> int:
        for i, m in enumerate(self.messages):
            if m["id"] == mid:
                return i
        raise ValueError(f"message {mid} is not in this conversation")

    # ---- shaping the conversation --------------------------------------------------------------------------------

    def add_user(self, text: str) -> None:
        """A new user message (the next answer() answers it)."""
        if not text.strip():
            raise ValueError("the message is empty")
        self.messages.append(self._record("user", text))

    def edit(self, index: int, text: str) -> None:
        """Replace the user message at index and forget everything after it (the next answer() answers it)."""
        if not 0 <= index < len(self.messages) or self.messages[index]["role"] != "user":
            raise ValueError(f"message {index} is not a user message")
        self._truncate(index)
        self.add_user(text)
        self._keep_in_view(index)

    def regenerate(self) -> bool:
        """Forget the answer to the last user message, so that the next answer() answers it again. False when there
        is no user message to answer."""
        last_user = max((i for i, m in enumerate(self.messages) if m["role"] == "user"), default=None)
        if last_user is None:
            return False
        self._truncate(last_user + 1)
        self._keep_in_view(last_user)
        return True

    def _truncate(self, index: int) -> None:
        """Forget the messages from index on."""
        if index < len(self.messages) and self.store is not None and self.messages[index]["id"] is not None:
            self.store.delete_messages_from(self.cid, self.messages[index]["id"])
        del self.messages[index:]

    def _keep_in_view(self, index: int) -> None:
        """The model sees the message at index (the one to answer) whatever was left out before."""
        if self.first_kept > index:
            self._set_first_kept(index)

    def _record(self, role: str, content: str, complete: bool = True) -> dict:
        mid = None
        if self.store is not None:
            if self.cid is None:
                self.cid = self.store.new_conversation(title_from(content), system=self.system)
            mid = self.store.add_message(self.cid, role, content, complete=complete)
        return {"role": role, "content": content, "id": mid, "complete": complete}

    def _set_first_kept(self, first_kept: int) -> None:
        self.first_kept = first_kept
        if self.store is not None and self.cid is not None:
            self.store.set_first_kept(self.cid, first_kept)

    # ---- answering ---------------------------------------------------------------------------------------------

    async def answer(self, engine: Engine, sampling: SamplingParams | None = None,
                     max_new_tokens: int | None = None) -> AsyncIterator[Event]:
        """The engine's events for one answer to the last user message. The answer, also a partial one (stopped, or
        the consumer left early), is added to the conversation; messages the context no longer holds are counted
        out of what later turns send."""
        if not self.messages or self.messages[-1]["role"] != "user":
            raise ValueError("the conversation does not end with a user message")
        mode = engine.settings.mode("chat")
        request = Request(messages=self.prompt_messages(), sampling=sampling or mode.params(),
                          max_new_tokens=max_new_tokens or mode.max_new_tokens)
        answer = self._record("assistant", "", complete=False)
        parts: list[str] = []
        done = None
        saved = time.monotonic()
        try:
            async with aclosing(engine.generate(request)) as events:
                async for ev in events:
                    if isinstance(ev, Token):
                        parts.append(ev.text)
                        if answer["id"] is not None and time.monotonic() - saved >= PARTIAL_SAVE_SECONDS:
                            self.store.update_message(answer["id"], "".join(parts), complete=False)
                            saved = time.monotonic()
                    elif isinstance(ev, ContextTrimmed):
                        self._set_first_kept(self.first_kept + ev.dropped_messages)
                    elif isinstance(ev, Done):
                        done = ev
                    yield ev
        finally:
            self._keep(answer, "".join(parts).strip(), done)

    def _keep(self, answer: dict, text: str, done: Done | None) -> None:
        complete = done is not None and done.reason in ("stop", "length")
        if not text:  # nothing was written: no empty answer in the conversation
            if answer["id"] is not None:
                self.store.delete_messages_from(self.cid, answer["id"])
            return
        answer.update(content=text, complete=complete)
        if answer["id"] is not None:
            stats = None
            if done is not None:
                st = done.stats
                stats = {"ttft_s": st.ttft_seconds, "prefill_tok_s": st.prefill_tokens_per_s,
                         "decode_tok_s": st.decode_tokens_per_s, "reason": st.finish_reason}
            self.store.update_message(answer["id"], text, complete=complete, stats=stats)
        self.messages.append(answer)
