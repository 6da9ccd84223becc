"""The chat view: the conversation's system prompt when it has one, the transcript (Markdown, streamed), the message
box, Send / Stop / Regenerate / Copy, and editing an earlier message."""
from __future__ import annotations

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QTextBrowser, QVBoxLayout, QWidget

from wren.gui.status import ElidedLabel
from wren.gui.views import StreamBuffer, button, send_shortcut, set_markdown


class ChatView(QWidget):
    """The conversation as Markdown, an input box, and Send / Stop / Regenerate / Copy. Each user message has an
    "edit" link: its text comes back into the input, and sending replaces it and what followed. The input box and an
    edit in progress belong to the conversation shown: another conversation has its own, and coming back brings them
    back. A message leaves the input only once the window has taken it (sent())."""
    sendRequested = Signal(str, object)  # text, id of the user message being edited (None for a new one)
    stopRequested = Signal()
    regenerateRequested = Signal()
    systemRequested = Signal()  # the user asks to set or change the conversation's system prompt

    def __init__(self, parent=None):
        super().__init__(parent)
        self.messages: list[dict] = []  # {"id", "role", "content", "complete"}
        self.key: object = None  # the conversation shown (None: a new one)
        self.drafts: dict[object, tuple[str, object, str]] = {}  # other conversations' (input, editing, before_edit)
        self.editing: object = None
        self.before_edit = ""  # what the input held when the edit began: cancelling the edit brings it back
        self.busy = False
        self.streaming = False
        self.system_label = ElidedLabel()
        self.system_label.setAccessibleName("System prompt of this conversation")
        self.system_edit = button("Edit", "Edit the system prompt", "Change how the model behaves in this conversation")
        self.system_edit.clicked.connect(self.systemRequested)
        self.system_row = QWidget()
        system_layout = QHBoxLayout(self.system_row)
        system_layout.setContentsMargins(0, 0, 0, 0)
        system_layout.addWidget(self.system_label, 1)
        system_layout.addWidget(self.system_edit)
        self.system_row.setVisible(False)
        self.transcript = QTextBrowser()
        self.transcript.setAccessibleName("Conversation")
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._anchor)
        self.input = QPlainTextEdit()
        self.input.setAccessibleName("Message")
        self.input.setPlaceholderText("Ask anything. Ctrl+Enter sends, Esc stops.")
        self.input.setMaximumHeight(120)
        self.edit_label = QLabel("Editing an earlier message: sending replaces it and everything after it.")
        self.edit_label.setWordWrap(True)
        self.cancel_edit = button("Cancel edit", "Cancel edit", "Keep the message as it was")
        self.edit_row = QWidget()
        edit_layout = QHBoxLayout(self.edit_row)
        edit_layout.setContentsMargins(0, 0, 0, 0)
        edit_layout.addWidget(self.edit_label, 1)
        edit_layout.addWidget(self.cancel_edit)
        self.edit_row.setVisible(False)
        self.send = button("Send", "Send", "Send (Ctrl+Enter)")
        self.stop = button("Stop", "Stop", "Stop the answer (Esc)")
        self.regen = button("Regenerate", "Regenerate", "Answer the last message again")
        self.copy = button("Copy", "Copy answer", "Copy the last answer")
        self.send.clicked.connect(self._send)
        self.stop.clicked.connect(self.stopRequested)
        self.regen.clicked.connect(self.regenerateRequested)
        self.copy.clicked.connect(self._copy_last)
        self.cancel_edit.clicked.connect(self._cancel_edit)
        send_shortcut(self, self._send)
        buttons = QHBoxLayout()
        for b in (self.send, self.stop, self.regen, self.copy):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.system_row)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.edit_row)
        layout.addWidget(self.input)
        layout.addLayout(buttons)
        self.stream = StreamBuffer(self, self._show_partial)
        self._update_buttons()

    # what the window calls
    def show_conversation(self, key, messages: list[dict]) -> None:
        """Show another conversation (key: its id, None for a new one), with its own input and edit."""
        if key != self.key:
            text = self.input.toPlainText()
            if text.strip() or self.editing is not None:
                self.drafts[self.key] = (text, self.editing, self.before_edit)
            text, self.editing, self.before_edit = self.drafts.pop(key, ("", None, ""))
            self.key = key
            self.input.setPlainText(text)
            self.edit_row.setVisible(self.editing is not None)
        self.set_messages(messages)

    def show_system(self, text: str) -> None:
        """The conversation's system prompt, on one line above the transcript; nothing when it has none."""
        self.system_label.setText("System prompt: " + " ".join(text.split()))
        self.system_row.setVisible(bool(text.strip()))

    def sent(self, key) -> None:
        """The window took the message in the input (to the conversation `key`): the input is free again."""
        self.key = key
        self.editing, self.before_edit = None, ""
        self.edit_row.setVisible(False)
        self.input.clear()

    def forget(self, key) -> None:
        """The conversation `key` is gone, and so is what was typed for it."""
        self.drafts.pop(key, None)
        if key == self.key:
            self.sent(None)

    def set_messages(self, messages: list[dict]) -> None:
        self.messages = [dict(m) for m in messages]
        self.render()
        self._update_buttons()

    def begin_answer(self) -> None:
        self.messages.append({"id": None, "role": "assistant", "content": "", "complete": False})
        self.streaming = True
        self.stream.start()
        self.render()

    def add_token(self, piece: str) -> None:
        self.stream.add(piece)

    def end_answer(self, messages: list[dict]) -> None:
        """The answer is over (or never came): the conversation as it now stands."""
        self.stream.stop()
        self.streaming = False
        self.set_messages(messages)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Regenerate answers the last question again: also one whose answer was stopped before it began."""
        self.send.setEnabled(not self.busy)
        self.regen.setEnabled(not self.busy and any(m["role"] == "user" for m in self.messages))
        self.copy.setEnabled(any(m["role"] == "assistant" and m["content"] for m in self.messages))
        self.stop.setEnabled(self.busy)

    def markdown(self) -> str:
        parts = []
        for m in self.messages:
            if m["role"] == "system":
                continue
            if m["role"] == "user":
                link = f" [edit](edit:{m['id']})" if m.get("id") is not None else ""
                parts.append(f"**You**{link}\n\n{m['content']}")
            else:
                streaming = self.streaming and m is self.messages[-1]
                note = "" if m.get("complete", True) or streaming else "\n\n*(stopped)*"
                parts.append(f"**Wren**\n\n{m['content'] or '…'}{note}")
        return "\n\n---\n\n".join(parts)

    def render(self) -> None:
        """Draw the conversation again; the view follows the end only when it was there, else it stays put."""
        bar = self.transcript.verticalScrollBar()
        place = bar.value()
        at_end = place >= bar.maximum() - 4
        set_markdown(self.transcript, self.markdown())
        bar.setValue(bar.maximum() if at_end else place)

    def _show_partial(self, text: str) -> None:
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages[-1]["content"] = text
            self.render()

    def _send(self) -> None:
        if not self.send.isEnabled():
            return
        text = self.input.toPlainText().strip()
        if text:
            self.sendRequested.emit(text, self.editing)

    def _anchor(self, url: QUrl) -> None:
        if url.scheme() == "edit":
            mid = url.path() or url.toString().split(":", 1)[1]
            for m in self.messages:
                if str(m.get("id")) == mid and m["role"] == "user":
                    self.start_edit(m["id"], m["content"])

    def start_edit(self, mid, text: str) -> None:
        if self.editing is None:
            self.before_edit = self.input.toPlainText()
        self.editing = mid
        self.input.setPlainText(text)
        self.edit_row.setVisible(True)
        self.input.setFocus()

    def _cancel_edit(self) -> None:
        self.editing = None
        self.input.setPlainText(self.before_edit)
        self.before_edit = ""
        self.edit_row.setVisible(False)

    def _copy_last(self) -> None:
        for m in reversed(self.messages):
            if m["role"] == "assistant":
                QGuiApplication.clipboard().setText(m["content"])
                return


# ---- draft email -----------------------------------------------------------------------------------------------
