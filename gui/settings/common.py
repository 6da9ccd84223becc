"""What the settings pages share: the touch size, number formats and small widget makers."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QAbstractSpinBox, QComboBox, QFormLayout, QFrame, QHeaderView, QLabel, QPushButton,
    QScrollArea, QTableView, QWidget,
)

TOUCH_HEIGHT = 40  # px: the least height of anything one taps


# ---- formatting ------------------------------------------------------------------------------------------------


def format_bytes(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 1 << 20:
        return f"{n / 2**20:.0f} MiB"
    if n >= 1 << 10:
        return f"{n / 2**10:.0f} KiB"
    return f"{n} B"


def format_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}K"
    return str(n)


def format_freq(khz: int | None) -> str:
    if not khz:
        return "unknown"
    if khz >= 1_000_000:
        return f"{khz / 1e6:.2f} GHz"
    return f"{round(khz / 1000)} MHz"


def html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- widgets ---------------------------------------------------------------------------------------------------


def touch(widget: QWidget, name: str, tip: str | None = None) -> QWidget:
    """Name a control for screen readers and make it tall enough to tap."""
    widget.setAccessibleName(name)
    widget.setMinimumHeight(TOUCH_HEIGHT)
    if tip:
        widget.setToolTip(tip)
        widget.setAccessibleDescription(tip)
    return widget


def button(text: str, name: str | None = None, tip: str | None = None) -> QPushButton:
    b = QPushButton(text)
    touch(b, name or text.rstrip("…."), tip)
    b.setMinimumWidth(96)
    return b


def scrolled(inner: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setWidget(inner)
    return area


def form() -> QFormLayout:
    f = QFormLayout()
    f.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
    f.setLabelAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    f.setRowWrapPolicy(QFormLayout.DontWrapRows)
    return f


def spin(widget: QAbstractSpinBox, name: str, tip: str | None = None) -> QAbstractSpinBox:
    touch(widget, name, tip)
    widget.setMinimumWidth(200)
    return widget


def combo(name: str, tip: str | None = None) -> QComboBox:
    c = QComboBox()
    touch(c, name, tip)
    c.setMinimumWidth(300)
    c.setSizeAdjustPolicy(QComboBox.AdjustToContents)
    return c


def select(c: QComboBox, key) -> None:
    """Choose the entry whose data is key (none if no entry has it)."""
    i = c.findData(key)
    if i >= 0:
        c.setCurrentIndex(i)


def note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


def table(name: str, view: QTableView | None = None) -> QTableView:
    """A read-only table of whole rows, one selected at a time, each row tall enough to tap."""
    t = view if view is not None else QTableView()
    t.setAccessibleName(name)
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectRows)
    t.setSelectionMode(QAbstractItemView.SingleSelection)
    t.verticalHeader().setVisible(False)
    t.verticalHeader().setDefaultSectionSize(TOUCH_HEIGHT)
    t.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    t.setWordWrap(False)
    t.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
    t.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)
    return t
