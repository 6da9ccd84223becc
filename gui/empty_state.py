"""What a first run meets in the chat: an empty conversation says what each mode does and which model is loaded, with
a hint toward a more capable model when this computer's memory allows one; and Enter as the send key when the
settings ask for it (Shift+Enter then starts a new line)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from wren.engine.assistant import MODE_LABELS
from wren.engine.library import catalog

MODE_HELP = {
    "chat": "ask, explain, brainstorm; each conversation is kept in the sidebar.",
    "email": "an email written from a few points, in the tone and length you choose.",
    "reply": "three short answers to a message you paste.",
    "summarize": "a paragraph, key points, a TL;DR or action items from a long text; Ctrl+Shift+V summarizes the "
                 "clipboard.",
}
HEADROOM = 2  # a model is suggested when the memory available is this many times its file


def capable_model(current: str, available: int) -> catalog.KnownModel | None:
    """The largest known model, when it is not the one in use and this much available memory holds it with room to
    spare."""
    best = max(catalog.CATALOG.values(), key=lambda m: m.size)
    if best.name == current or available < HEADROOM * best.size:
        return None
    return best


class EmptyState(QObject):
    """Fills the chat transcript while the conversation has no message yet. `window`: the MainWindow (its chat view,
    engine, loading flag and settings are read; refresh() is called when the engine or the settings change)."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.chat = window.chat
        self.html = ""
        self.enter = EnterSends(self.chat, lambda: window.settings.enter_sends)
        # never inside the transcript's own signal: its document is still being replaced then
        self.chat.transcript.textChanged.connect(lambda: QTimer.singleShot(0, self, self._follow))
        self.refresh()

    def text_for(self, model: str | None, loading: bool, available: int, enter_sends: bool) -> str:
        modes = "".join(f"<li><b>{MODE_LABELS[k]}</b>: {MODE_HELP[k]}</li>" for k in MODE_LABELS)
        if model:
            state = f"The model in use is <b>{model}</b>."
        elif loading:
            state = "The model is loading…"
        else:
            state = "No model is loaded: Settings › Model chooses or fetches one."
        hint = ""
        better = capable_model(model, available) if model else None
        if better is not None:
            installed = any(m.name == better.name for m in catalog.installed())
            how = "choose it in Settings › Model" if installed else \
                f"<code>wren models fetch {better.name}</code> downloads it, then choose it in Settings › Model"
            hint = (f"<p>This computer has {available / 2**30:.1f} GiB of memory free: <b>{better.name}</b> "
                    f"gives much better answers, more slowly; {how}.</p>")
        keys = "Enter sends, Shift+Enter starts a new line" if enter_sends else "Ctrl+Enter sends"
        return (f"<h3>Wren runs on this computer: nothing you write leaves it.</h3><ul>{modes}</ul>"
                f"<p>{state}</p>{hint}<p>Type below: {keys}; Esc stops an answer.</p>")

    def showing(self) -> bool:
        return not any(m["role"] != "system" for m in self.chat.messages)

    def refresh(self) -> None:
        w = self.window
        try:
            available = catalog.available_memory()
        except (OSError, ValueError):
            available = 0
        self.html = self.text_for(w.engine.model_name if w.engine is not None else None, w.loading, available,
                                  w.settings.enter_sends)
        self.enter.update_placeholder()
        if self.showing():
            self._show()

    def _follow(self) -> None:
        if self.showing() and not self.chat.transcript.toPlainText():  # the view has just drawn an empty chat
            self._show()

    def _show(self) -> None:
        t = self.chat.transcript
        t.blockSignals(True)
        t.setHtml(self.html)
        t.blockSignals(False)


class EnterSends(QObject):
    """With `enabled()`, Enter in the chat's input sends (as its Send button does) and Shift+Enter adds a line."""

    def __init__(self, chat, enabled):
        super().__init__(chat)
        self.chat = chat
        self.enabled = enabled
        self.placeholder = chat.input.placeholderText()
        chat.input.installEventFilter(self)

    def update_placeholder(self) -> None:
        self.chat.input.setPlaceholderText(
            "Ask anything. Enter sends, Shift+Enter starts a new line, Esc stops." if self.enabled()
            else self.placeholder)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.KeyPress or event.key() not in (Qt.Key_Return, Qt.Key_Enter) \
                or not self.enabled():
            return False
        mods = event.modifiers() & ~Qt.KeypadModifier
        if mods == Qt.ShiftModifier:
            self.chat.input.insertPlainText("\n")
            return True
        if mods == Qt.NoModifier:
            self.chat.send.click()
            return True
        return False
