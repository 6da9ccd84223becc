"""The history of the email, reply and summarize modes in the window: each result is kept in the store with what was
asked, the "Recent" menu of the window's header lists the shown mode's results (most recent first), and choosing one
brings back its input and output. A refinement of an email, and going back or forward between its versions, changes
the draft's item rather than adding one."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMenu, QMessageBox, QPushButton, QWidget

from wren.engine.assistant.chat import title_from
from wren.engine.store import HISTORY_MODES, HistoryItem, Store, StoreError

SHOWN = 20  # items in the menu
TITLE_CHARS = 40  # of an item's title in the menu (its whole title is its tooltip)
KINDS = {"email": "drafts", "reply": "replies", "summarize": "summaries"}


def title_of(mode: str, request: dict, output: dict) -> str:
    if mode == "email":
        versions, current = output.get("versions", []), output.get("current", -1)
        subject = versions[current][0] if 0 <= current < len(versions) else ""
        return title_from(subject or request.get("points", ""))
    return title_from(request.get("message" if mode == "reply" else "text", ""))


def when(stamp: float, now: float | None = None) -> str:
    """A time of today as 14:05, an earlier one as its date."""
    day = time.localtime(now if now is not None else time.time())[:3]
    t = time.localtime(stamp)
    return time.strftime("%H:%M" if t[:3] == day else "%d %b", t)


class ModeHistory(QObject):
    """`views`: the window's mode views by mode (each has state() and restore()); `show_error(text)` says what could
    not be kept; `button`: the "Recent" menu."""

    def __init__(self, store: Store, views: dict[str, QWidget], show_error: Callable[[str], None], parent: QWidget):
        super().__init__(parent)
        self.store = store
        self.views = views
        self.show_error = show_error
        self.mode = HISTORY_MODES[0]  # the mode the menu lists
        self.shown: dict[str, int | None] = dict.fromkeys(HISTORY_MODES)  # the item each view shows
        self.button = QPushButton("Recent")
        self.button.setAccessibleName("Recent results of this mode")
        self.button.setToolTip("What this mode gave before: choose one to bring it back")
        self.menu = QMenu(self.button)
        self.menu.setToolTipsVisible(True)
        self.menu.aboutToShow.connect(self.fill)
        self.button.setMenu(self.menu)
        views["email"].versionChanged.connect(lambda: self.record("email", new=False))

    def show_for(self, mode: str) -> None:
        self.mode = mode
        self.button.setVisible(mode in HISTORY_MODES)

    def set_busy(self, busy: bool) -> None:
        self.button.setEnabled(not busy)  # a result coming in is not replaced under it

    def record(self, mode: str, asked: dict | None = None, new: bool = True) -> None:
        """Keep what the mode's view shows: a new item (`asked`: what the model was asked, when the view may hold
        something else by now), or (new=False) a change of the item it shows."""
        request, output = self.views[mode].state()
        request = asked if asked is not None else request
        hid = self.shown[mode]
        try:
            if not new and hid is not None:
                self.store.update_history(hid, output)
            else:
                self.shown[mode] = self.store.add_history(mode, title_of(mode, request, output), request, output)
        except (sqlite3.Error, StoreError) as e:  # the result stays on screen; only its keeping failed
            self.show_error(f"This {KINDS[mode][:-1]} could not be kept in the history: {e}")

    def items(self) -> list[HistoryItem]:
        return self.store.history(self.mode, SHOWN)

    def fill(self) -> None:
        self.menu.clear()
        items = self.items()
        if not items:
            self.menu.addAction(f"No {KINDS[self.mode]} kept yet").setEnabled(False)
            return
        now = time.time()
        for item in items:
            title = item.title if len(item.title) <= TITLE_CHARS else item.title[:TITLE_CHARS - 1].rstrip() + "…"
            action = self.menu.addAction(f"{title}  ·  {when(item.updated, now)}")
            action.setToolTip(item.title)
            action.setCheckable(True)
            action.setChecked(item.id == self.shown[self.mode])
            action.triggered.connect(lambda _=False, hid=item.id: self.reopen(hid))
        self.menu.addSeparator()
        self.menu.addAction("Clear this list…").triggered.connect(self._clear)

    def reopen(self, hid: int) -> None:
        item = self.store.history_item(hid)
        self.views[item.mode].restore(item.input, item.output)
        self.shown[item.mode] = hid

    def _clear(self) -> None:
        ask = QMessageBox.question(self.parent(), "Clear the list",
                                   f"Forget every kept {KINDS[self.mode][:-1]}?")
        if ask == QMessageBox.StandardButton.Yes:
            self.store.delete_history(self.mode)
            self.shown[self.mode] = None
