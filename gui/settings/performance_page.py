"""The Performance page: threads, which cores (a preset or CPUs ticked by hand in the CPU table), pinning, the weight
policy, the context length and the prompt batch."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QCheckBox, QHeaderView, QSpinBox, QTableView, QVBoxLayout, QWidget

from wren.engine.runtime import placement
from wren.engine.settings import CORE_PRESETS, MAX_THREADS, Settings
from wren.gui.settings.common import TOUCH_HEIGHT, combo, form, note, select, spin, table, touch
from wren.gui.settings.item_models import CpuTableModel

__all__ = ["PerformancePage"]

PRESET_LABELS = {
    "big": "Big cores only (recommended)",
    "all": "All cores",
    "system": "Let the system decide",
    "custom": "Custom",
}
POLICY_LABELS = {
    "mixed": "Mixed (int8 where the file has more than 4 bits; best quality)",
    "int4": "int4 (smallest and fastest; slightly lower quality)",
}


class CpuTable(QTableView):
    """The CPU table: a tap on a row, or Space on the current row, asks to flip that CPU's tick (on_tap(row))."""

    def __init__(self, on_tap):
        super().__init__()
        self._on_tap = on_tap
        self.clicked.connect(lambda index: self._on_tap(index.row()))

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if event.key() == Qt.Key_Space and self.currentIndex().isValid():
            self._on_tap(self.currentIndex().row())
            return
        super().keyPressEvent(event)


class PerformancePage:
    """The Performance page of SettingsDialog (mixed into it; a change of the context length or the weight policy
    refreshes the RAM column of the Model page)."""

    def _build_performance_page(self) -> QWidget:
        self._custom_cpus: tuple[int, ...] = ()  # as given, so an unchanged order survives a round trip
        page = QWidget()
        v = QVBoxLayout(page)
        f = form()

        self.threads_spin = spin(QSpinBox(), "Threads", "0 runs one thread per selected core")
        self.threads_spin.setRange(0, MAX_THREADS)
        self.threads_spin.setSpecialValueText("One per selected core")
        self.threads_spin.valueChanged.connect(self._changed)
        f.addRow("Threads:", self.threads_spin)

        self.preset_combo = combo("Cores")
        for key in CORE_PRESETS:
            self.preset_combo.addItem(PRESET_LABELS[key], key)
        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        f.addRow("Cores:", self.preset_combo)
        v.addLayout(f)
        self.placement_label = note()
        self.placement_label.setAccessibleName("What will run")
        font = self.placement_label.font()
        font.setBold(True)
        self.placement_label.setFont(font)
        v.addWidget(self.placement_label)
        v.addWidget(note("Tap a CPU to choose the cores yourself (Custom)."))

        self.cpus = CpuTableModel(self._topology, self._allowed, page)
        self.cpus.ticked.connect(self._cpu_toggled)
        self.cpu_table = table("CPUs", CpuTable(self._cpu_tapped))
        self.cpu_table.setModel(self.cpus)
        self.cpu_table.setSelectionMode(QAbstractItemView.NoSelection)
        self.cpu_table.setStyleSheet("QTableView::indicator { width: 22px; height: 22px; }")
        rows_shown = min(self.cpus.rowCount(), 8)  # the page scrolls; more CPUs scroll inside the table
        self.cpu_table.setMinimumHeight(TOUCH_HEIGHT * (rows_shown + 1) + 6)
        self.cpu_table.setMaximumHeight(TOUCH_HEIGHT * (rows_shown + 1) + 6)
        self.cpu_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Fixed)
        self.cpu_table.setColumnWidth(0, 110)
        v.addWidget(self.cpu_table)

        f2 = form()
        self._pin_wish = True  # the box as the user left it; unticked while pinning is impossible
        self.strict_check = touch(QCheckBox("Pin each thread alone to one core"), "Strict pinning")
        self.strict_check.toggled.connect(self._pin_toggled)
        f2.addRow("Pinning:", self.strict_check)
        self.pin_note = note()
        self.pin_note.setAccessibleName("Why the threads cannot be pinned")
        self.pin_note.hide()
        f2.addRow(self.pin_note)  # the whole width
        self.policy_combo = combo("Weight policy")
        for key, label in POLICY_LABELS.items():
            self.policy_combo.addItem(label, key)
        self.policy_combo.currentIndexChanged.connect(self._memory_inputs_changed)
        f2.addRow("Weights:", self.policy_combo)
        self.context_spin = spin(QSpinBox(), "Context length", "Tokens the model can see at once")
        self.context_spin.setRange(128, 1 << 20)
        self.context_spin.setSingleStep(512)
        self.context_spin.setSuffix(" tokens")
        self.context_spin.valueChanged.connect(self._memory_inputs_changed)
        f2.addRow("Context length:", self.context_spin)
        self.batch_spin = spin(QSpinBox(), "Prompt batch size", "Prompt tokens processed in one pass")
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setSingleStep(64)
        self.batch_spin.setSuffix(" tokens")
        self.batch_spin.valueChanged.connect(self._changed)
        f2.addRow("Prompt batch:", self.batch_spin)
        v.addLayout(f2)
        v.addStretch(1)
        return page

    def cpu_rows(self) -> list[dict]:
        return self.cpus.rows()

    def _preset(self) -> str:
        return self.preset_combo.currentData()

    def _preset_cpus(self, preset: str) -> list[int]:
        """The CPUs a preset means (all its cores, whatever the thread count)."""
        if preset == "system":
            return list(self._allowed)
        pool = placement.place(Settings(cores=preset, threads=0, strict_pinning=True), self._topology, self._allowed)
        return list(pool.cpus or self._allowed)

    def _apply_preset(self, preset: str, custom: tuple[int, ...] | list[int] = ()) -> None:
        ticks = set(custom) if preset == "custom" else set(self._preset_cpus(preset))
        self.cpus.set_ticks(ticks, custom=preset == "custom")

    def _preset_changed(self) -> None:
        if self._loading:
            return
        preset = self._preset()
        if preset == "custom":
            self._custom_cpus = tuple(self.cpus.ticked_ids())  # start from what the previous preset ticked
        self._apply_preset(preset, self._custom_cpus)
        self._changed()

    def _cpu_toggled(self) -> None:
        if self._loading:
            return
        if self._preset() != "custom":
            select(self.preset_combo, "custom")  # ticking a box is a custom choice
        self._custom_cpus = tuple(self.cpus.ticked_ids())
        self._apply_preset("custom", self._custom_cpus)
        self._changed()

    def _cpu_tapped(self, row: int) -> None:
        """A tap on a CPU's row picks it by hand: Custom, starting from what the preset ticked."""
        if self.cpus.is_enabled(row) or (self._preset() != "custom" and self.cpus.usable(row)):
            index = self.cpus.index(row, 0)
            self.cpus.setData(index, Qt.Unchecked if self.cpus.is_checked(row) else Qt.Checked, Qt.CheckStateRole)

    def _pin_toggled(self, checked: bool) -> None:
        if self._loading or not self.strict_check.isEnabled():
            return
        self._pin_wish = checked
        self._changed()

    def _show_pinning(self, s: Settings) -> None:
        """Tick "Pin each thread" only where each thread can have a core of its own, and say why not."""
        possible = placement.can_pin(s, self._topology, self._allowed)
        self.strict_check.blockSignals(True)
        self.strict_check.setChecked(self._pin_wish and possible)
        self.strict_check.blockSignals(False)
        self.strict_check.setEnabled(possible)
        if possible:
            why = ""
        elif s.cores == "system":
            why = "The system places the threads: choose a preset or cores to pin them."
        else:
            cores = len(s.custom_cpus) if s.cores == "custom" else len(self._preset_cpus(s.cores))
            why = (f"Pinning needs a core for each thread: {s.threads} threads on {cores} "
                   f"core{'s' if cores != 1 else ''}. Choose fewer threads or more cores.")
        self.pin_note.setText(why)
        self.pin_note.setVisible(bool(why))

    def _memory_inputs_changed(self) -> None:
        if self._loading:
            return
        self.refresh_models()
        self._changed()
