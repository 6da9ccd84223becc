"""The mode views: draft email, smart reply, summarize (the chat view is gui/chat_view.py), and what they share. They
hold widgets and emit requests; the main window runs the requests on the engine and feeds results back, so every view
can be tested without a model. Each view's state() is what it was asked and what it shows, as JSON-able dicts, and
restore() brings such a pair back (the window keeps them in the store's history)."""
from __future__ import annotations

import urllib.parse
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QShortcut, QTextDocument
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMenu,
                               QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSizePolicy, QTextBrowser,
                               QVBoxLayout, QWidget)

from wren.gui import mail

STREAM_INTERVAL_MS = 50  # streamed text reaches the screen in batches this often
# model output is Markdown without raw HTML: a stray "<tag>" in an answer must not hide the text after it
MARKDOWN = QTextDocument.MarkdownFeature(QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
                                         | QTextDocument.MarkdownFeature.MarkdownNoHTML.value)


def set_markdown(browser: QTextBrowser, text: str) -> None:
    browser.document().setMarkdown(text, MARKDOWN)


def button(text: str, name: str, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setAccessibleName(name)
    b.setMinimumHeight(36)
    if tip:
        b.setToolTip(tip)
    return b


def send_shortcut(widget: QWidget, slot) -> None:
    for seq in ("Ctrl+Return", "Ctrl+Enter"):
        sc = QShortcut(QKeySequence(seq), widget)
        sc.setContext(Qt.WidgetWithChildrenShortcut)
        sc.activated.connect(slot)


class StreamBuffer:
    """Collects streamed pieces; a timer hands them to `flush(text_so_far)` at most every STREAM_INTERVAL_MS."""

    def __init__(self, parent: QWidget, flush):
        self.text = ""
        self._dirty = False
        self._flush = flush
        self.timer = QTimer(parent)
        self.timer.setInterval(STREAM_INTERVAL_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.text, self._dirty = "", False
        self.timer.start()

    def add(self, piece: str) -> None:
        self.text += piece
        self._dirty = True

    def _tick(self) -> None:
        if self._dirty:
            self._dirty = False
            self._flush(self.text)

    def stop(self) -> None:
        self.timer.stop()
        self._tick()


def editor_can_undo(editor: QObject, redo: bool = False) -> bool:
    """Whether a text box has typing of its own to undo (or redo)."""
    if isinstance(editor, QLineEdit):
        return editor.isRedoAvailable() if redo else editor.isUndoAvailable()
    doc = editor.document()
    return doc.isRedoAvailable() if redo else doc.isUndoAvailable()


class EmailView(QWidget):
    """An email from points, and its refinements. Each refinement is a new version of the email: Undo goes back to
    the one before, Redo forward again. Ctrl+Z in the subject or body first undoes the typing there, then the
    refinement; edits made to a version are kept when the user moves away from it."""
    draftRequested = Signal(dict)  # points, to, thread, tone, length
    refineRequested = Signal(str, str, str)  # how, subject, body
    stopRequested = Signal()
    versionChanged = Signal()  # Undo or Redo showed another version of the email

    def __init__(self, parent=None):
        super().__init__(parent)
        self.points = QPlainTextEdit()
        self.points.setAccessibleName("What the email should say")
        self.points.setPlaceholderText("What should the email say? Free text or bullet points.")
        self.points.setMaximumHeight(120)  # the room below is the email's
        self.to = QLineEdit()
        self.to.setAccessibleName("Recipient")
        self.to.setPlaceholderText("Optional: who it is for, e.g. \"my manager\"")
        self.thread = QPlainTextEdit()
        self.thread.setAccessibleName("Thread being replied to")
        self.thread.setPlaceholderText("Optional: paste the message you are replying to")
        self.thread.setMaximumHeight(90)
        self.tone = QComboBox()
        self.tone.setAccessibleName("Tone")
        self.tone.addItems(["Formal", "Neutral", "Friendly", "Direct"])
        self.tone.setCurrentText("Neutral")
        self.length = QComboBox()
        self.length.setAccessibleName("Length")
        self.length.addItems(["Short", "Medium", "Long"])
        self.length.setCurrentText("Medium")
        self.generate = button("Draft", "Draft email", "Write the email (Ctrl+Enter)")
        self.stop = button("Stop", "Stop")
        self.subject = QLineEdit()
        self.subject.setAccessibleName("Subject")
        self.body = QPlainTextEdit()
        self.body.setAccessibleName("Body")
        self.copy = button("Copy", "Copy email")
        self.regen = button("Regenerate", "Regenerate email")
        self.refine = button("Refine", "Refine email")
        menu = QMenu(self.refine)
        for label, how in (("Shorter", "shorter"), ("Longer", "longer"), ("More formal", "formal"),
                           ("Friendlier", "friendlier")):
            act = menu.addAction(label)
            act.triggered.connect(lambda _=False, h=how: self._refine(h))
        self.refine.setMenu(menu)
        self.mailto = button("Open in mail app", "Open in mail app")
        self.save = button("Save as .eml", "Save as eml")
        self.generate.clicked.connect(self._draft)
        self.regen.clicked.connect(self._draft)
        self.stop.clicked.connect(self.stopRequested)
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(
            f"Subject: {self.subject.text()}\n\n{self.body.toPlainText()}"))
        self.mailto.clicked.connect(self.open_in_mail_app)
        self.save.clicked.connect(self._save_dialog)
        self.undo = button("Undo", "Undo the refinement", "Back to the version before the refinement (Ctrl+Z)")
        self.redo = button("Redo", "Redo the refinement", "Forward to the refined version again (Ctrl+Shift+Z)")
        self.undo.clicked.connect(self.undo_version)
        self.redo.clicked.connect(self.redo_version)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self._refining: tuple[str, str] | None = None  # the email a refinement started from
        self.versions: list[list[str]] = []  # [subject, body] of the draft, then of each refinement
        self.current = -1  # the version shown
        self.busy = False
        send_shortcut(self, self._draft)
        for seq, slot in ((QKeySequence.StandardKey.Undo, self.undo_version),
                          (QKeySequence.StandardKey.Redo, self.redo_version)):
            sc = QShortcut(QKeySequence(seq), self)  # the focus out of the subject and body (on a button, say)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        for editor in (self.subject, self.body):
            editor.installEventFilter(self)

        form = QFormLayout()
        form.addRow("Say", self.points)
        form.addRow("To", self.to)
        form.addRow("Replying to", self.thread)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("Tone"))
        opts.addWidget(self.tone)
        opts.addWidget(QLabel("Length"))
        opts.addWidget(self.length)
        opts.addStretch(1)
        opts.addWidget(self.generate)
        opts.addWidget(self.stop)
        actions = QHBoxLayout()
        for b in (self.copy, self.regen, self.refine, self.mailto, self.save):
            actions.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(opts)
        subject = QHBoxLayout()  # one row: a small screen keeps its height for the body
        subject.addWidget(QLabel("Subject"))
        subject.addWidget(self.subject, 1)
        subject.addWidget(self.undo)
        subject.addWidget(self.redo)
        layout.addLayout(subject)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.note)
        layout.addLayout(actions)
        self.set_busy(False)

    def start_reply(self, reply: str, message: str) -> None:
        """Set up an email from a smart reply to message: its recipient is the message's sender (or nobody), tone
        and length the defaults; nothing of the draft before stays."""
        from wren.engine.assistant.reply import reply_sender

        self.points.setPlainText(reply)
        self.thread.setPlainText(message)
        self.to.setText(reply_sender(message))
        self.tone.setCurrentText("Neutral")
        self.length.setCurrentText("Short")
        self._refining = None
        self._set_versions([], -1)
        self.note.setText("")

    def request(self) -> dict:
        return {"points": self.points.toPlainText().strip(), "to": self.to.text().strip(),
                "thread": self.thread.toPlainText().strip(), "tone": self.tone.currentText().lower(),
                "length": self.length.currentText().lower()}

    def _draft(self) -> None:
        if self.generate.isEnabled() and self.points.toPlainText().strip():
            self._refining = None  # what comes back is a new draft (a refinement that failed is over)
            self.draftRequested.emit(self.request())

    def _refine(self, how: str) -> None:
        self._keep_edits()
        del self.versions[self.current + 1:]  # a refinement of an earlier version: the later ones are left behind
        self._refining = (self.subject.text(), self.body.toPlainText())
        self.refineRequested.emit(how, *self._refining)

    def show_draft(self, subject: str, body: str) -> None:
        """Show a new draft, or the result of the refinement asked for (a new version; one that gave the same email
        back is no version, and is said)."""
        refining, self._refining = self._refining, None
        if refining is None:
            self._set_versions([[subject, body]], 0)
            self.note.setText("")
        elif (subject, body.split()) == (refining[0], refining[1].split()):
            self.note.setText("The refinement came back unchanged: try it again, or another one.")
            self._show_version()
        else:
            self._set_versions(self.versions + [[subject, body]], len(self.versions))
            self.note.setText("Refined. Undo (Ctrl+Z) brings back the version before.")

    def abandon(self) -> None:
        """A draft or refinement that failed: what it streamed goes, the version shown before comes back."""
        self._refining = None
        self._show_version()

    # ---- versions ------------------------------------------------------------------------------------------------
    def undo_version(self) -> None:
        self._go_to(self.current - 1)

    def redo_version(self) -> None:
        self._go_to(self.current + 1)

    def _go_to(self, index: int) -> None:
        if self.busy or not 0 <= index < len(self.versions) or index == self.current:
            return
        self._keep_edits()
        self._set_versions(self.versions, index)
        self.note.setText(f"Version {index + 1} of {len(self.versions)}.")
        self.versionChanged.emit()

    def _keep_edits(self) -> None:
        """What the user changed in the version shown stays with it."""
        shown = [self.subject.text(), self.body.toPlainText()]
        if 0 <= self.current < len(self.versions):
            self.versions[self.current] = shown
        elif any(shown):
            self._set_versions([shown], 0)

    def _set_versions(self, versions: list[list[str]], current: int) -> None:
        self.versions, self.current = versions, current
        self._show_version()

    def _show_version(self) -> None:
        subject, body = self.versions[self.current] if 0 <= self.current < len(self.versions) else ("", "")
        self.subject.setText(subject)
        self.subject.setCursorPosition(0)  # a long subject shows its start
        self.body.setPlainText(body)  # the typing to undo is the new version's own
        self._update_buttons()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """Ctrl+Z (Ctrl+Shift+Z) in the subject or body: once the typing there is undone (redone), the version."""
        if event.type() == QEvent.Type.KeyPress and obj in (self.subject, self.body):
            for seq, redo in ((QKeySequence.StandardKey.Undo, False), (QKeySequence.StandardKey.Redo, True)):
                if event.matches(seq) and not editor_can_undo(obj, redo):
                    self.redo_version() if redo else self.undo_version()
                    return True
        return super().eventFilter(obj, event)

    # ---- history ------------------------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        self._keep_edits()
        return self.request(), {"versions": [list(v) for v in self.versions], "current": self.current}

    def restore(self, request: dict, output: dict) -> None:
        self.points.setPlainText(request.get("points", ""))
        self.to.setText(request.get("to", ""))
        self.thread.setPlainText(request.get("thread", ""))
        self.tone.setCurrentText(request.get("tone", "neutral").capitalize())
        self.length.setCurrentText(request.get("length", "medium").capitalize())
        versions = [list(v) for v in output.get("versions", [])]
        self._refining = None
        self._set_versions(versions, min(max(output.get("current", 0), 0), len(versions) - 1))
        self.note.setText(f"Version {self.current + 1} of {len(versions)}." if len(versions) > 1 else "")

    def open_in_mail_app(self) -> None:
        """Hand the email to the desktop's mail app; without one, say so and offer to save it as a .eml file."""
        if mail.app_available() and QDesktopServices.openUrl(QUrl(self.mailto_url())):
            self.note.setText("")
            return
        self.note.setText("No mail app is set up to open emails on this computer.")
        ask = QMessageBox.question(self, "No mail app", "No mail app is set up to open emails. Save the email as "
                                   "a .eml file instead (most mail apps open those)?")
        if ask == QMessageBox.StandardButton.Yes:
            self._save_dialog()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        for b in (self.generate, self.regen, self.refine):
            b.setEnabled(not busy)
        self.stop.setEnabled(busy)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.undo.setEnabled(not self.busy and self.current > 0)
        self.redo.setEnabled(not self.busy and 0 <= self.current < len(self.versions) - 1)

    def mailto_url(self) -> str:
        q = urllib.parse.urlencode({"subject": self.subject.text(), "body": self.body.toPlainText()},
                                   quote_via=urllib.parse.quote)
        return f"mailto:{urllib.parse.quote(self.to.text()) if '@' in self.to.text() else ''}?{q}"

    def eml_bytes(self) -> bytes:
        return mail.message_file(self.subject.text(), self.body.toPlainText(), self.to.text(),
                                 self.thread.toPlainText())

    def save_eml(self, path: str | Path) -> None:
        Path(path).write_bytes(self.eml_bytes())

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save email", "email.eml", "Email (*.eml)")
        if path:
            self.save_eml(path)


# ---- smart reply -----------------------------------------------------------------------------------------------


class ReplyView(QWidget):
    repliesRequested = Signal(str)
    expandRequested = Signal(str, str)  # chip text, the original message
    stopRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.message = QPlainTextEdit()
        self.message.setAccessibleName("Received message")
        self.message.setPlaceholderText("Paste a message you received.")
        self.suggest = button("Suggest replies", "Suggest replies", "Three short replies (Ctrl+Enter)")
        self.stop = button("Stop", "Stop")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.chips: list[tuple[QLabel, QPushButton, QPushButton]] = []
        self.result = {"replies": [], "no_reply_needed": False, "reason": ""}  # what the chips show
        chips = QVBoxLayout()
        for i in range(3):
            label = QLabel()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setAccessibleName(f"Reply {i + 1}")
            label.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
            label.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 14px; padding: 8px; }")
            copy = button("Copy", f"Copy reply {i + 1}")
            expand = button("Expand", f"Expand reply {i + 1} into an email")
            copy.clicked.connect(lambda _=False, n=i: QGuiApplication.clipboard().setText(self.chips[n][0].text()))
            expand.clicked.connect(lambda _=False, n=i: self.expandRequested.emit(
                self.chips[n][0].text(), self.message.toPlainText()))
            row = QHBoxLayout()
            row.addWidget(label, 1)
            row.addWidget(copy)
            row.addWidget(expand)
            chips.addLayout(row)
            self.chips.append((label, copy, expand))
        self.suggest.clicked.connect(self._suggest)
        self.stop.clicked.connect(self.stopRequested)
        send_shortcut(self, self._suggest)
        top = QHBoxLayout()
        top.addStretch(1)
        top.addWidget(self.suggest)
        top.addWidget(self.stop)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message, 1)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addLayout(chips)
        layout.addStretch(1)
        self.show_replies([])
        self.set_busy(False)

    def _suggest(self) -> None:
        if self.suggest.isEnabled() and self.message.toPlainText().strip():
            self.repliesRequested.emit(self.message.toPlainText())

    def show_replies(self, replies: list[str], no_reply_needed: bool = False, reason: str = "") -> None:
        self.result = {"replies": list(replies), "no_reply_needed": no_reply_needed, "reason": reason}
        self.note.setText(f"No reply needed: {reason}." if no_reply_needed else "")
        for i, (label, copy, expand) in enumerate(self.chips):
            text = replies[i] if i < len(replies) else ""
            label.setText(text)
            for w in (label, copy, expand):
                w.setVisible(bool(text))

    def replies(self) -> list[str]:
        return [label.text() for label, _, _ in self.chips if label.text()]

    def state(self) -> tuple[dict, dict]:
        return {"message": self.message.toPlainText()}, dict(self.result)

    def restore(self, request: dict, output: dict) -> None:
        self.message.setPlainText(request.get("message", ""))
        self.show_replies(output.get("replies", []), output.get("no_reply_needed", False), output.get("reason", ""))

    def set_busy(self, busy: bool) -> None:
        self.suggest.setEnabled(not busy)
        self.stop.setEnabled(busy)


# ---- summarize -------------------------------------------------------------------------------------------------


class _DropText(QPlainTextEdit):
    """A text box that also takes dropped .txt / .md / .eml files."""
    fileDropped = Signal(str)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasUrls() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasUrls():
            for url in source.urls():
                if url.isLocalFile():
                    self.fileDropped.emit(url.toLocalFile())
                    return
        super().insertFromMimeData(source)


class SummarizeView(QWidget):
    summarizeRequested = Signal(str, str, str)  # text, style, length
    stopRequested = Signal()
    textChanged = Signal(str)

    STYLES = (("Paragraph", "paragraph"), ("Key points", "key_points"), ("TL;DR", "tldr"),
              ("Action items", "action_items"))

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = _DropText()
        self.text.setAccessibleName("Text to summarize")
        self.text.setPlaceholderText("Paste text, drop a .txt/.md/.eml file, or open one.")
        self.text.fileDropped.connect(self.load_file)
        self.open = button("Open file…", "Open file")
        self.paste = button("Paste clipboard", "Paste clipboard")
        self.style = QComboBox()
        self.style.setAccessibleName("Summary style")
        for label, _ in self.STYLES:
            self.style.addItem(label)
        self.length = QComboBox()
        self.length.setAccessibleName("Summary length")
        self.length.addItems(["Short", "Medium", "Detailed"])
        self.length.setCurrentText("Medium")
        self.size = QLabel()
        self.size.setAccessibleName("Input size")
        self.size.setWordWrap(True)
        self.go = button("Summarize", "Summarize", "Summarize (Ctrl+Enter)")
        self.stop = button("Stop", "Stop")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Summary progress")
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.result = QTextBrowser()
        self.result.setAccessibleName("Summary")
        self.summary = ""  # the summary shown, as the model wrote it (Markdown)
        self.copy = button("Copy", "Copy summary")
        self.open.clicked.connect(self._open_dialog)
        self.paste.clicked.connect(self.paste_clipboard)
        self.go.clicked.connect(self._go)
        self.stop.clicked.connect(self.stopRequested)
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.result.toPlainText()))
        self.text.textChanged.connect(lambda: self.textChanged.emit(self.text.toPlainText()))
        send_shortcut(self, self._go)
        sources = QHBoxLayout()  # two rows: every label keeps its width on a small screen at a large font size
        sources.addWidget(self.open)
        sources.addWidget(self.paste)
        sources.addStretch(1)
        row = QHBoxLayout()
        for w in (QLabel("Style"), self.style, QLabel("Length"), self.length):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.go)
        row.addWidget(self.stop)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 2)
        layout.addWidget(self.size)
        layout.addLayout(sources)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.result, 2)
        layout.addWidget(self.copy)
        self.set_busy(False)

    def style_key(self) -> str:
        return self.STYLES[self.style.currentIndex()][1]

    def _go(self) -> None:
        if self.go.isEnabled() and self.text.toPlainText().strip():
            self.summarizeRequested.emit(self.text.toPlainText(), self.style_key(), self.length.currentText().lower())

    def load_file(self, path: str) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            self.size.setText(f"Cannot open {path}: {e}")
            return
        if Path(path).suffix.lower() == ".eml":
            import email
            from email import policy

            msg = email.message_from_bytes(data, policy=policy.default)
            body = msg.get_body(preferencelist=("plain", "html"))
            text = f"Subject: {msg.get('subject', '')}\n\n" + (body.get_content() if body else "")
        else:
            text = data.decode("utf-8", errors="replace")
        self.text.setPlainText(text)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a text", "", "Text (*.txt *.md *.eml);;All files (*)")
        if path:
            self.load_file(path)

    def paste_clipboard(self) -> None:
        self.text.setPlainText(QGuiApplication.clipboard().text())

    def show_size(self, tokens: int, n_ctx: int) -> None:
        if tokens <= 0:
            self.size.setText("")
        elif tokens < n_ctx * 0.7:
            self.size.setText(f"{tokens:,} tokens — fits the context window of {n_ctx:,}")
        else:
            self.size.setText(f"{tokens:,} tokens — more than the context window of {n_ctx:,}: it will be "
                              "summarized in parts, then the parts combined")

    def set_progress(self, fraction: float | None) -> None:
        self.progress.setVisible(fraction is not None)
        if fraction is not None:
            self.progress.setValue(int(fraction * 1000))

    def show_summary(self, text: str) -> None:
        self.summary = text
        set_markdown(self.result, text)

    def state(self) -> tuple[dict, dict]:
        request = {"text": self.text.toPlainText(), "style": self.style_key(),
                   "length": self.length.currentText().lower()}
        return request, {"summary": self.summary}

    def restore(self, request: dict, output: dict) -> None:
        self.text.setPlainText(request.get("text", ""))
        keys = [key for _, key in self.STYLES]
        self.style.setCurrentIndex(keys.index(request["style"]) if request.get("style") in keys else 0)
        self.length.setCurrentText(request.get("length", "medium").capitalize())
        self.show_summary(output.get("summary", ""))

    def set_busy(self, busy: bool) -> None:
        self.go.setEnabled(not busy)
        self.stop.setEnabled(busy)
