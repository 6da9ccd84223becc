"""The conversation list of the sidebar: a Qt list model over a Store."""
from __future__ import annotations

import time

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QObject, QPersistentModelIndex, Qt

from wren.engine.assistant import MODE_LABELS
from wren.engine.store import Conversation, Store

_Index = QModelIndex | QPersistentModelIndex


class ConversationListModel(QAbstractListModel):
    """One row per conversation, most recently updated first; titles are editable (a rename in the store)."""

    IdRole = Qt.ItemDataRole.UserRole + 1
    ModeRole = Qt.ItemDataRole.UserRole + 2

    def __init__(self, store: Store, parent: QObject | None = None):
        super().__init__(parent)
        self._store = store
        self._rows: list[Conversation] = store.conversations()
        self.search = ""

    def refresh(self, search: str = "") -> None:
        """Re-read the conversations from the store, keeping those that match `search`."""
        self.beginResetModel()
        self.search = search
        self._rows = self._store.conversations(search)
        self.endResetModel()

    def conversation_id(self, row: int) -> int:
        return self._rows[row].id

    def row_of(self, cid: int) -> int:
        """The row of conversation `cid`, -1 when it is not listed."""
        for row, conv in enumerate(self._rows):
            if conv.id == cid:
                return row
        return -1

    # ---- QAbstractListModel -----------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        conv = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conv.title
        if role == Qt.ItemDataRole.ToolTipRole:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.updated))
            return f"{conv.title}\n{MODE_LABELS.get(conv.mode, conv.mode)} · {when}"
        if role == self.IdRole:
            return conv.id
        if role == self.ModeRole:
            return conv.mode
        return None

    def setData(self, index: _Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not 0 <= index.row() < len(self._rows):
            return False
        title = " ".join(str(value or "").split())
        if not title:
            return False
        conv = self._rows[index.row()]
        self._store.rename(conv.id, title)
        conv.title = title
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole,
                                             Qt.ItemDataRole.ToolTipRole])
        return True

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable
                | Qt.ItemFlag.ItemNeverHasChildren)

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        names[self.IdRole] = QByteArray(b"conversationId")
        names[self.ModeRole] = QByteArray(b"mode")
        return names
