"""The theme and the font size: light, dark or the system's, applied to the whole application, open windows and
dialogs included."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

_SYSTEM_FONT = "wren_system_font"  # the application's font before the first change, kept on the application


def dark_palette() -> QPalette:
    p = QPalette()
    colors = {
        QPalette.Window: "#202124", QPalette.WindowText: "#e8eaed", QPalette.Base: "#17181a",
        QPalette.AlternateBase: "#26272b", QPalette.ToolTipBase: "#2b2c30", QPalette.ToolTipText: "#e8eaed",
        QPalette.Text: "#e8eaed", QPalette.Button: "#2b2c30", QPalette.ButtonText: "#e8eaed",
        QPalette.BrightText: "#ff6b6b", QPalette.Link: "#8ab4f8", QPalette.Highlight: "#3d6bd6",
        QPalette.HighlightedText: "#ffffff", QPalette.PlaceholderText: "#9aa0a6", QPalette.Mid: "#5f6368",
    }
    for role, color in colors.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor("#80868b"))
    return p


def apply_theme(theme: str, font_size: int = 0) -> None:
    """Light, dark, or the system's: the color scheme hint for platforms that follow it, and the palette itself
    (Fusion draws with it), so that the choice holds everywhere; font_size 0 is the system's size."""
    app = QApplication.instance()
    if app is None:
        return
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(theme, Qt.ColorScheme.Unknown)
    app.styleHints().setColorScheme(scheme)
    if theme == "dark":
        app.setPalette(dark_palette())
    else:
        app.setPalette(app.style().standardPalette())
    system = app.property(_SYSTEM_FONT)
    if system is None:
        system = QFont(app.font())
        app.setProperty(_SYSTEM_FONT, system)
    font = QFont(system)
    if font_size:
        font.setPointSize(font_size)
    app.setFont(font)
    # a widget with a style sheet was given the palette and font of its last polish as its own: polish it again,
    # so that open windows and dialogs take the new ones everywhere
    for w in app.allWidgets():
        if w.styleSheet():
            w.setStyleSheet(w.styleSheet())
