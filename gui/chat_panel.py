"""The chat mode and the conversations of the sidebar, as part of the main window: ChatPanel is a base class of
MainWindow and works with what MainWindow makes (the chat view `chat`, the sidebar's list `conv_list` with its
model `conv_model` and `search` box, the `store`) and does (`start`, `need_engine`, `show_error`, `show_mode`).
The conversation shown is one ChatController, `conversation`."""
from __future__ import annotations

import sqlite3
from contextlib import aclosing

from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from wren.engine.assistant import ChatController
from wren.engine.engine import ContextTrimmed, Done, Token
from wren.engine.store import StoreError
from wren.gui.status import speed_text


class ChatPanel:
    # ---- conversations -----------------------------------------------------------------------------------------

    @property
    def cid(self) -> int | None:
        """The stored conversation shown in the chat view (None before its first message)."""
        return self.conversation.cid

    def refresh_conversations(self) -> None:
        self.conv_model.refresh(self.search.text())
        if self.cid is not None:
            row = self.conv_model.row_of(self.cid)
            if row is not None and row >= 0:
                self.conv_list.setCurrentIndex(self.conv_model.index(row, 0))

    def new_chat(self) -> None:
        if self.busy:
            return
        self.conversation = ChatController(store=self.store)
        self.chat.show_conversation(None, [])
        self.chat.show_system("")
        self.show_mode("chat")
        self.conv_list.clearSelection()
        self.chat.input.setFocus()

    def open_conversation(self, cid: int) -> None:
        if self.busy:
            return
        self.conversation = ChatController.open(self.store, cid)
        self.chat.show_conversation(cid, self.conversation.messages)
        self.chat.show_system(self.conversation.system)
        self.show_mode("chat")

    def _conversation_clicked(self, index: QModelIndex) -> None:
        cid = self.conv_model.conversation_id(index.row())
        if cid is not None:
            self.open_conversation(cid)

    def _rename_dialog(self) -> None:
        if self.cid is None:
            return
        title, ok = QInputDialog.getText(self, "Rename", "Title", text=self.store.conversation(self.cid).title)
        if ok and title.strip():
            self.store.rename(self.cid, title.strip())
            self.refresh_conversations()

    def _delete_current(self) -> None:
        if self.cid is None or self.busy:
            return
        if QMessageBox.question(self, "Delete", "Delete this conversation?") != QMessageBox.Yes:
            return
        self.delete_conversation(self.cid)

    def delete_conversation(self, cid: int) -> None:
        self.store.delete(cid)
        if cid == self.cid:
            self.new_chat()
        self.chat.forget(cid)
        self.refresh_conversations()

    def _export_dialog(self) -> None:
        if self.cid is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export as Markdown", "conversation.md", "Markdown (*.md)")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.store.export_markdown(self.cid))

    def edit_system_prompt(self) -> None:
        text, ok = QInputDialog.getMultiLineText(
            self, "System prompt", "How the model should behave in this conversation (empty for none):",
            self.conversation.system)
        if ok:
            self.set_system_prompt(text)

    def set_system_prompt(self, text: str) -> None:
        """The shown conversation's system prompt, from its next answer on (kept with it in the store)."""
        try:
            self.conversation.set_system(text)
        except (sqlite3.Error, StoreError) as e:  # used from the next answer on, but not kept
            self.show_error(f"The system prompt could not be kept with the conversation: {e}")
        self.chat.show_system(self.conversation.system)

    # ---- chat ----------------------------------------------------------------------------------------------------

    def _chat_send(self, text: str, edited) -> None:
        self.start(self._chat_turn(text, edited))  # refused while busy

    async def _chat_turn(self, text: str, edited=None) -> None:
        self.need_engine()
        chat = self.conversation
        if edited is not None:
            chat.edit(chat.index_of(edited), text)
        else:
            chat.add_user(text)
        self.chat.sent(chat.cid)
        self.refresh_conversations()
        await self._answer()

    async def _chat_regenerate(self) -> None:
        self.need_engine()
        if self.conversation.regenerate():
            await self._answer()

    async def _answer(self) -> None:
        engine = self.need_engine()
        chat = self.conversation
        self.chat.set_messages(chat.messages)
        self.chat.begin_answer()
        done = None
        try:
            async with aclosing(chat.answer(engine)) as events:
                async for ev in events:
                    if isinstance(ev, Token):
                        self.chat.add_token(ev.text)
                    elif isinstance(ev, ContextTrimmed):
                        self.statusBar().showMessage(f"The conversation outgrew the context: its "
                                                     f"{ev.dropped_messages} oldest messages are no longer sent to "
                                                     "the model", 8000)
                    elif isinstance(ev, Done):
                        done = ev
        finally:
            self.chat.end_answer(chat.messages)
            self.refresh_conversations()
        if done is not None:
            self.status_speed.setText(speed_text(done.stats))
            if done.reason == "error":
                self.show_error(done.error, "job")
