"""The banner that says which saved settings could not be used: it stays until the user dismisses it or saves the
settings (a model load or another message does not clear it)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

__all__ = ["SettingsBanner"]


class SettingsBanner(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Settings problem")
        self.setObjectName("settingsBanner")
        self.setAttribute(Qt.WA_StyledBackground, True)
        self.setStyleSheet("#settingsBanner { background: #fff4e5; border-radius: 6px; } "
                           "#settingsBanner QLabel { color: #663c00; }")
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 6, 8, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setAccessibleName("Settings that could not be used")
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.setAccessibleName("Dismiss the settings message")
        self.dismiss_button.clicked.connect(self.clear)
        row.addWidget(self.label, 1)
        row.addWidget(self.dismiss_button, 0, Qt.AlignTop)
        self.hide()

    def text(self) -> str:
        return self.label.text()

    def show_problem(self, text: str) -> None:
        self.label.setText(f"Settings: {text}. Open Settings and press OK to save good ones.")
        self.setVisible(bool(text))

    def clear(self) -> None:
        self.label.setText("")
        self.hide()
