"""The Generation page: the sampling defaults of each mode (temperature, top-k, top-p, min-p, repeat penalty, seed,
the longest answer), edited one mode at a time."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from wren.engine.settings import MODE_DEFAULTS, MODES, ModeSampling
from wren.engine.assistant import MODE_LABELS
from wren.gui.settings.common import button, combo, form, spin

__all__ = ["GenerationPage"]


class GenerationPage:
    """The Generation page of SettingsDialog (mixed into it). The values of every mode live in self._sampling."""

    def _build_generation_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        top = QHBoxLayout()
        self.mode_combo = combo("Mode")
        for m in MODES:
            self.mode_combo.addItem(MODE_LABELS[m], m)
        top.addWidget(QLabel("Defaults for:"))
        top.addWidget(self.mode_combo, 1)
        self.mode_reset = button("Reset mode", "Reset mode defaults", "Back to this mode's built-in values")
        self.mode_reset.clicked.connect(self._reset_mode)
        top.addWidget(self.mode_reset)
        v.addLayout(top)

        f = form()
        self.gen_widgets: dict[str, QWidget] = {}

        def dspin(key, label, lo, hi, step, decimals, tip):
            w = spin(QDoubleSpinBox(), label, tip)
            w.setRange(lo, hi)
            w.setSingleStep(step)
            w.setDecimals(decimals)
            w.valueChanged.connect(lambda value, k=key: self._gen_edited(k, float(value)))
            self.gen_widgets[key] = w
            f.addRow(label + ":", w)

        def ispin(key, label, lo, hi, tip, special=None):
            w = spin(QSpinBox(), label, tip)
            w.setRange(lo, hi)
            if special:
                w.setSpecialValueText(special)
            w.valueChanged.connect(lambda value, k=key: self._gen_edited(k, int(value)))
            self.gen_widgets[key] = w
            f.addRow(label + ":", w)

        dspin("temperature", "Temperature", 0.0, 10.0, 0.05, 3, "0 always picks the likeliest token")
        ispin("top_k", "Top-k", 0, 1_000_000, "Keep the k likeliest tokens; 0 keeps all", "Off (0)")
        dspin("top_p", "Top-p", 0.001, 1.0, 0.01, 3, "Keep the likeliest tokens up to this probability mass")
        dspin("min_p", "Min-p", 0.0, 0.999, 0.01, 3, "Drop tokens less likely than this times the best one")
        dspin("repeat_penalty", "Repeat penalty", 0.01, 10.0, 0.05, 3, "1 means no penalty")
        ispin("seed", "Seed", -1, 2**31 - 1, "-1 picks a new seed each time", "Random (-1)")
        ispin("max_new_tokens", "Max new tokens", 1, 1 << 16, "The longest answer, in tokens")
        v.addLayout(f)
        v.addStretch(1)
        self.mode_combo.currentIndexChanged.connect(lambda _: self._show_mode(self.mode_combo.currentData()))
        return page

    def mode_values(self, mode: str) -> ModeSampling:
        return self._sampling[mode]

    def _show_mode(self, mode: str) -> None:
        m = self._sampling[mode]
        for key, w in self.gen_widgets.items():
            w.blockSignals(True)
            w.setValue(getattr(m, key))
            w.blockSignals(False)

    def _gen_edited(self, key: str, value) -> None:
        mode = self.mode_combo.currentData()
        self._sampling[mode] = replace(self._sampling[mode], **{key: value})
        self._changed()

    def _reset_mode(self) -> None:
        mode = self.mode_combo.currentData()
        self._sampling[mode] = MODE_DEFAULTS.get(mode, ModeSampling())
        self._show_mode(mode)
        self._changed()
