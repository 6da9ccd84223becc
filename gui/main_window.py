"""The main window: conversation sidebar, the four modes, a status bar with speed and memory; it runs the engine on
qasync's event loop, so the window never waits for the model."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListView, QMainWindow, QProgressBar, QPushButton, QSplitter, QStackedWidget, QToolButton,
                               QVBoxLayout, QWidget)

from wren.engine.library import catalog
from wren.engine.assistant import (MODE_LABELS, ChatController, EmailDraft, draft_email, refine_email, smart_reply,
                                   summarize)
from wren.engine import settings as wsettings
from wren.engine.engine import Engine
from wren.engine.remote import RemoteEngine, open_engine
from wren.engine.settings import Settings
from wren.gui.chat_panel import ChatPanel
from wren.gui.conversation_model import ConversationListModel
from wren.gui.desktop import fit_to_screen, rss_bytes
from wren.gui.empty_state import EmptyState
from wren.gui.mode_history import ModeHistory
from wren.gui.settings.banner import SettingsBanner
from wren.gui.theme import apply_theme
from wren.engine.store import Store
from wren.gui.status import Banner, ElidedLabel, engine_text, speed_text
from wren.gui.chat_view import ChatView
from wren.gui.views import EmailView, ReplyView, StreamBuffer, SummarizeView

NARROW = 900  # below this width the sidebar folds away

OpenEngine = Callable[..., Awaitable[Engine]]


class MainWindow(ChatPanel, QMainWindow):
    def __init__(self, settings: Settings, store: Store, open_engine: OpenEngine = open_engine,
                 settings_path=None, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.store = store
        self.open_engine = open_engine
        self.settings_path = settings_path
        self.engine: Engine | None = None
        self.loading = False
        self.busy = False
        self.task: asyncio.Future | None = None
        self.pending_settings = self.settings_dialog = None  # settings chosen while a job ran; the open dialog
        self.conversation = ChatController(store=store)  # the one shown in the chat view
        self.setWindowTitle("Wren")
        self.setMinimumSize(640, 420)
        fit_to_screen(self, 1100, 720)
        self._build()
        self.empty_state = EmptyState(self)  # what the chat shows before its first message
        self._shortcuts()
        self.memory_timer = QTimer(self)
        self.memory_timer.setInterval(2000)
        self.memory_timer.timeout.connect(self._show_memory)
        self.memory_timer.start()
        self._show_memory()
        self.size_timer = QTimer(self)
        self.size_timer.setSingleShot(True)
        self.size_timer.setInterval(300)
        self.size_timer.timeout.connect(self._count_summary_input)
        self.refresh_conversations()

    # ---- layout ------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        side = QWidget()
        side.setAccessibleName("Sidebar")
        side.setMinimumWidth(220)
        side.setMaximumWidth(340)
        sl = QVBoxLayout(side)
        self.mode_group = QButtonGroup(self)
        self.mode_buttons = {}
        for i, (key, label) in enumerate(MODE_LABELS.items()):
            b = QPushButton(label)
            b.setCheckable(True)
            b.setMinimumHeight(36)
            b.setAccessibleName(f"{label} mode")
            self.mode_group.addButton(b, i)
            self.mode_buttons[key] = b
            sl.addWidget(b)
        self.mode_group.idClicked.connect(lambda i: self.show_mode(list(MODE_LABELS)[i]))
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        sl.addWidget(line)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda t: self.refresh_conversations())
        sl.addWidget(self.search)
        row = QGridLayout()  # two by two: the labels keep their width at large font sizes
        self.new_button = QPushButton("New")
        self.new_button.setAccessibleName("New chat")
        self.rename_button = QPushButton("Rename")
        self.rename_button.setAccessibleName("Rename conversation")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setAccessibleName("Delete conversation")
        self.export_button = QPushButton("Export")
        self.export_button.setAccessibleName("Export conversation as Markdown")
        for i, b in enumerate((self.new_button, self.rename_button, self.delete_button, self.export_button)):
            b.setMinimumHeight(32)
            row.addWidget(b, i // 2, i % 2)
        sl.addLayout(row)
        self.new_button.clicked.connect(self.new_chat)
        self.rename_button.clicked.connect(self._rename_dialog)
        self.delete_button.clicked.connect(self._delete_current)
        self.export_button.clicked.connect(self._export_dialog)
        self.conv_model = ConversationListModel(self.store)
        self.conv_list = QListView()
        self.conv_list.setAccessibleName("Conversations")
        self.conv_list.setModel(self.conv_model)
        self.conv_list.setEditTriggers(QAbstractItemView.EditKeyPressed | QAbstractItemView.DoubleClicked)
        self.conv_list.clicked.connect(self._conversation_clicked)
        sl.addWidget(self.conv_list, 1)
        self.sidebar = side

        right = QWidget()
        rl = QVBoxLayout(right)
        top = QHBoxLayout()
        self.sidebar_toggle = QToolButton()
        self.sidebar_toggle.setText("☰")
        self.sidebar_toggle.setAccessibleName("Show or hide the sidebar")
        self.sidebar_toggle.clicked.connect(lambda: self.sidebar.setVisible(not self.sidebar.isVisible()))
        self.mode_title = QLabel()
        self.mode_title.setAccessibleName("Mode")
        f = self.mode_title.font()
        f.setBold(True)
        self.mode_title.setFont(f)
        self.system_button = QPushButton("System prompt")
        self.system_button.setAccessibleName("System prompt of this conversation")
        self.system_button.setToolTip("How the model should behave in this conversation")
        self.system_button.clicked.connect(self.edit_system_prompt)
        self.settings_button = QPushButton("Settings")
        self.settings_button.setAccessibleName("Settings")
        self.settings_button.clicked.connect(self.open_settings)
        top.addWidget(self.sidebar_toggle)
        top.addWidget(self.mode_title, 1)
        top.addWidget(self.system_button)
        rl.addLayout(top)
        self.banner = Banner()
        rl.addWidget(self.banner)
        self.settings_banner = SettingsBanner()
        rl.addWidget(self.settings_banner)
        self.fetch_row = QWidget()
        fr = QHBoxLayout(self.fetch_row)
        fr.setContentsMargins(0, 0, 0, 0)
        self.fetch_label = QLabel()
        self.fetch_button = QPushButton()
        self.fetch_button.setAccessibleName("Fetch the default model")
        self.fetch_button.clicked.connect(lambda: self.start(self.fetch_default()))
        fr.addWidget(self.fetch_label, 1)
        fr.addWidget(self.fetch_button)
        self.fetch_row.setVisible(False)
        rl.addWidget(self.fetch_row)
        self.stack = QStackedWidget()
        self.chat = ChatView()
        self.email = EmailView()
        self.reply = ReplyView()
        self.summarize = SummarizeView()
        self.views = {"chat": self.chat, "email": self.email, "reply": self.reply, "summarize": self.summarize}
        for v in self.views.values():
            self.stack.addWidget(v)
        self.history = ModeHistory(self.store, self.views, self.show_error, self)
        top.addWidget(self.history.button)
        top.addWidget(self.settings_button)
        rl.addWidget(self.stack, 1)

        self.splitter = QSplitter()
        self.splitter.addWidget(side)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)

        sb = self.statusBar()
        self.status_model = ElidedLabel("No model")
        self.status_model.setAccessibleName("Model")
        self.status_threads = ElidedLabel("")
        self.status_threads.setAccessibleName("Threads and cores")
        self.status_speed = ElidedLabel("")
        self.status_speed.setAccessibleName("Speed of the last answer")
        self.status_memory = QLabel("")
        self.status_memory.setAccessibleName("Memory in use")
        self.load_progress = QProgressBar()
        self.load_progress.setAccessibleName("Loading progress")
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setVisible(False)
        for w in (self.status_model, self.status_threads, self.status_speed):
            sb.addWidget(w)
        sb.addPermanentWidget(self.load_progress)
        sb.addPermanentWidget(self.status_memory)

        self.chat.sendRequested.connect(self._chat_send)
        self.chat.regenerateRequested.connect(lambda: self.start(self._chat_regenerate()))
        self.chat.systemRequested.connect(self.edit_system_prompt)
        self.email.draftRequested.connect(lambda req: self.start(self._draft(req)))
        self.email.refineRequested.connect(lambda how, s, b: self.start(self._refine(how, s, b)))
        self.reply.repliesRequested.connect(lambda text: self.start(self._replies(text)))
        self.reply.expandRequested.connect(self._expand_reply)
        self.summarize.summarizeRequested.connect(lambda t, s, ln: self.start(self._summarize(t, s, ln)))
        self.summarize.textChanged.connect(lambda _: self.size_timer.start())
        for v in self.views.values():
            v.stopRequested.connect(self.stop)
        self.email_stream = StreamBuffer(self, lambda text: self.email.body.setPlainText(text))
        self.show_mode("chat")

    def _shortcuts(self) -> None:
        def add(seq, slot):
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.ApplicationShortcut)
            sc.activated.connect(slot)
        add("Esc", self.stop)
        add("Ctrl+N", self.new_chat)
        add("Ctrl+,", self.open_settings)
        add("Ctrl+Shift+V", self.summarize_clipboard)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self.sidebar.setVisible(event.size().width() >= NARROW)

    # ---- state -------------------------------------------------------------------------------------------------

    def show_mode(self, key: str) -> None:
        self.stack.setCurrentWidget(self.views[key])
        self.mode_buttons[key].setChecked(True)
        self.mode_title.setText(MODE_LABELS[key])
        self.system_button.setVisible(key == "chat")
        self.history.show_for(key)

    def current_mode(self) -> str:
        return next(k for k, v in self.views.items() if v is self.stack.currentWidget())

    def show_error(self, text: str, about: str = "note") -> None:
        """Show a problem in the banner: about "model" (cleared by a model that loads), "job" (cleared by the next
        job), or a note the user dismisses; an empty text clears it."""
        self.banner.show_problem(about, text)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        for v in self.views.values():
            v.set_busy(busy)
        self.history.set_busy(busy)

    def start(self, coro) -> asyncio.Future | None:
        """Run a coroutine on the event loop; its errors land in the banner, never in a crash."""
        if self.busy:
            coro.close()
            return None

        self.set_busy(True)  # at once: nothing else starts between this call and the coroutine's first step

        async def guarded():
            self.show_error("", "job")  # the last job's problem: this one shows it again if it is still there
            try:
                await coro
            except asyncio.CancelledError:
                pass
            except Exception as e:  # shown to the user; the window keeps running
                self.show_error(str(e) or type(e).__name__, "job")
            finally:
                self.set_busy(False)
                self._apply_pending()
        self.task = asyncio.ensure_future(guarded())
        return self.task

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.cancel()

    def need_engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("The model is still loading." if self.loading else
                               "No model is loaded: open Settings to choose or fetch one.")
        return self.engine

    def _show_memory(self) -> None:
        self.status_memory.setText(f"{rss_bytes() / 2**20:.0f} MiB in use")

    def _show_engine(self) -> None:
        self.empty_state.refresh()
        e = self.engine
        if self.settings_dialog is not None:
            local = e is not None and not isinstance(e, RemoteEngine)  # a server's model is not this library's
            self.settings_dialog.set_model_in_use(e.settings.model if local else None)
        if e is None:
            self.status_model.setText("No model")
            self.status_threads.setText("")
            return
        self.status_model.setText(e.model_name)
        self.status_threads.setText(f"answered by {e.host}" if isinstance(e, RemoteEngine) else
                                    engine_text(e.threads, e.cpus, e.pinned, e.threads_note))

    # ---- the engine --------------------------------------------------------------------------------------------

    async def load_engine(self, settings: Settings | None = None) -> bool:
        """Open the settings' model; on failure the message shows in the window and the old engine stays."""
        settings = settings or self.settings
        self.loading = True
        self.load_progress.setVisible(True)
        self.load_progress.setValue(0)
        self.status_model.setText("Loading the model…")
        self.empty_state.refresh()

        def progress(done: int, total: int) -> None:
            self.load_progress.setMaximum(max(total, 1))
            self.load_progress.setValue(done)
        try:
            engine = await self.open_engine(None, settings, progress=progress)
        except FileNotFoundError as e:
            self._offer_fetch(str(e))
            self._show_engine()
            return False
        except Exception as e:  # the loader's message, shown; the app keeps running
            self.show_error(f"The model could not be loaded: {e}", "model")
            self._show_engine()
            return False
        finally:
            self.loading = False
            self.load_progress.setVisible(False)
            self._apply_pending()
        old, self.engine = self.engine, engine
        if old is not None:
            await old.close()
        self.fetch_row.setVisible(False)
        self.banner.clear("model", "job")
        self._show_engine()
        from wren.gui.settings.item_models import warm_model_cache
        from wren.gui.tasks import Task

        Task("Describing the installed models").start(lambda _report: warm_model_cache())  # the dialog opens at once
        return True

    def _offer_fetch(self, why: str) -> None:
        known = catalog.CATALOG[catalog.DEFAULT_MODEL]
        self.fetch_label.setText(f"{why}\nWren can fetch {known.name} ({known.size / 2**20:.0f} MiB) now.")
        self.fetch_button.setText(f"Fetch {known.name}")
        self.fetch_row.setVisible(True)

    async def fetch_default(self) -> None:
        loop = asyncio.get_running_loop()
        self.load_progress.setVisible(True)

        def progress(done: int, total: int, what: str) -> None:
            def show():
                self.load_progress.setMaximum(max(total, 1))
                self.load_progress.setValue(min(done, total))
                self.status_model.setText(f"Fetching the model: {what}")
            loop.call_soon_threadsafe(show)
        try:
            await asyncio.to_thread(catalog.fetch, catalog.DEFAULT_MODEL, progress)
        finally:
            self.load_progress.setVisible(False)
        self.fetch_row.setVisible(False)
        await self.load_engine()

    def settings_chosen(self, new: Settings) -> None:
        """OK or Apply: saved, theme and font at once; the engine's part now, or when the running job ends."""
        if not (self.busy or self.loading):
            self.start(self.apply_settings(new))
            return
        self._save_settings(new)
        self.pending_settings = new
        self.statusBar().showMessage("Settings saved: the model's settings apply when the current job ends", 8000)
        self._show_engine()

    def _apply_pending(self) -> None:
        if self.pending_settings is not None and not (self.busy or self.loading):
            new, self.pending_settings = self.pending_settings, None
            self.start(self.apply_settings(new))

    def _save_settings(self, new: Settings) -> None:
        try:
            if self.settings_path is not None:
                wsettings.save(new, self.settings_path)
                self.settings_banner.clear()  # the file is good again
        except OSError as e:
            self.show_error(f"The settings could not be saved: {e}")
        self.settings = new
        apply_theme(new.theme, new.font_size)

    async def apply_settings(self, new: Settings) -> None:
        elsewhere = (new.engine_url, new.engine_key) != (self.settings.engine_url, self.settings.engine_key)
        self._save_settings(new)
        if self.engine is None or elsewhere:
            await self.load_engine(new)
            return
        reopen = await self.engine.apply_settings(new)
        if reopen:  # another model or weight policy: load it (the running engine stays until it is ready)
            await self.load_engine(new)
        self._show_engine()

    def open_settings(self) -> None:
        from wren.gui.settings.dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, parent=self)
        dialog.settingsApplied.connect(self.settings_chosen)
        dialog.finished.connect(lambda _: setattr(self, "settings_dialog", None))
        dialog.open()  # modal to the window
        self.settings_dialog = dialog
        self._show_engine()

    # ---- email, reply, summarize ---------------------------------------------------------------------------------

    async def _draft(self, req: dict) -> None:
        draft = None
        try:
            engine = self.need_engine()
            self.email_stream.start()
            draft = await draft_email(engine, req["points"], to=req["to"], thread=req["thread"], tone=req["tone"],
                                      length=req["length"], on_token=self.email_stream.add)
        finally:
            self.email_stream.stop()
            if draft is None:
                self.email.abandon()
        self.email.show_draft(draft.subject, draft.body)
        if draft.body.strip():
            self.history.record("email", req)
        self._last_stats()

    async def _refine(self, how: str, subject: str, body: str) -> None:
        draft = None
        try:
            engine = self.need_engine()
            self.email_stream.start()
            draft = await refine_email(engine, EmailDraft(subject, body), how, on_token=self.email_stream.add)
        finally:
            self.email_stream.stop()
            if draft is None:
                self.email.abandon()
        self.email.show_draft(draft.subject, draft.body)
        self.history.record("email", new=False)
        self._last_stats()

    async def _replies(self, text: str) -> None:
        engine = self.need_engine()
        self.reply.show_replies([])
        result = await smart_reply(engine, text)
        self.reply.show_replies(result.replies, result.no_reply_needed, result.reason)
        if result.replies or result.no_reply_needed:
            self.history.record("reply", {"message": text})
        self._last_stats()

    def _expand_reply(self, chip: str, message: str) -> None:
        self.email.start_reply(chip, message)
        self.show_mode("email")
        self.start(self._draft(self.email.request()))

    async def _summarize(self, text: str, style: str, length: str) -> None:
        engine = self.need_engine()
        self.summarize.set_progress(0.0)
        stream = StreamBuffer(self, self.summarize.show_summary)
        stream.start()
        try:
            result = await summarize(engine, text, style=style, length=length,
                                     progress=self.summarize.set_progress, on_token=stream.add)
        finally:
            stream.stop()
            self.summarize.set_progress(None)
        self.summarize.show_summary(result.summary)
        if result.summary.strip():
            self.history.record("summarize", {"text": text, "style": style, "length": length})
        self._last_stats()

    def _last_stats(self) -> None:
        if self.engine is not None and self.engine.last_stats is not None:
            self.status_speed.setText(speed_text(self.engine.last_stats))

    def summarize_clipboard(self) -> None:
        self.show_mode("summarize")
        self.summarize.paste_clipboard()
        self.summarize._go()

    def _count_summary_input(self) -> None:
        if self.engine is None:
            return
        text = self.summarize.text.toPlainText()
        engine = self.engine

        async def count():
            n = await asyncio.to_thread(engine.count_tokens, text) if text.strip() else 0
            self.summarize.show_size(n, engine.n_ctx)
        asyncio.ensure_future(count())

    # ---- closing -------------------------------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.stop()
        super().closeEvent(event)

    async def shutdown(self) -> None:
        self.stop()
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 5)
            except (asyncio.TimeoutError, Exception):
                pass
        if self.engine is not None:
            await self.engine.close()
            self.engine = None
