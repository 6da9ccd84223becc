"""The Appearance page: the theme, the font size, and whether Enter sends a chat message."""
from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QSpinBox, QWidget

from wren.gui.settings.common import combo, form, spin, touch

__all__ = ["AppearancePage"]

THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


class AppearancePage:
    """The Appearance page of SettingsDialog (mixed into it)."""

    def _build_appearance_page(self) -> QWidget:
        page = QWidget()
        f = form()
        page.setLayout(f)
        self.theme_combo = combo("Theme")
        for key, label in THEME_LABELS.items():
            self.theme_combo.addItem(label, key)
        self.theme_combo.currentIndexChanged.connect(self._changed)
        f.addRow("Theme:", self.theme_combo)
        self.font_spin = spin(QSpinBox(), "Font size", "0 uses the system's size; otherwise 6 to 72 points")
        self.font_spin.setRange(0, 72)
        self.font_spin.setSpecialValueText("System size")
        self.font_spin.setSuffix(" pt")
        self.font_spin.valueChanged.connect(self._changed)
        f.addRow("Font size:", self.font_spin)
        self.enter_check = touch(QCheckBox("Enter sends a message"), "Enter sends a message",
                                 "Shift+Enter starts a new line; when unticked, Ctrl+Enter sends")
        self.enter_check.toggled.connect(self._changed)
        f.addRow("Chat:", self.enter_check)
        return page
