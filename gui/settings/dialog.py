"""The Settings dialog (product.md, "Settings"): the shell that holds the pages, and apply / save.

The dialog edits a copy of the settings. Apply and OK emit `settingsApplied` with validated Settings; a value that
cannot be used (a custom core set with no CPU ticked, a CPU this process may not run on, ...) is shown in an error
line at the bottom and nothing is emitted. Each page is one module of this package, mixed into the dialog:
model_page (the model library), performance_page (threads and the core picker), generation_page (sampling defaults
per mode) and appearance_page.
"""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTabWidget, QVBoxLayout, QWidget

from wren.engine.library import catalog
from wren.engine.runtime import placement
from wren.engine.runtime import topology as topology_mod
from wren.engine.settings import MODES, ModeSampling, Settings, SettingsError
from wren.gui.desktop import fit_to_screen
from wren.gui.settings.appearance_page import AppearancePage
from wren.gui.settings.common import TOUCH_HEIGHT, scrolled, select, touch
from wren.gui.settings.engine_page import EnginePage
from wren.gui.settings.generation_page import GenerationPage
from wren.gui.settings.model_page import ModelPage
from wren.gui.settings.performance_page import PerformancePage

__all__ = ["SettingsDialog"]


class SettingsDialog(ModelPage, PerformancePage, GenerationPage, AppearancePage, EnginePage, QDialog):
    """Settings editor. `settingsApplied(Settings)` on Apply and OK, with validated settings only."""

    settingsApplied = Signal(object)

    def __init__(self, settings: Settings, topology: topology_mod.Topology | None = None,
                 allowed_cpus: list[int] | None = None, parent: QWidget | None = None,
                 model_catalog: dict[str, catalog.KnownModel] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumSize(640, 400)
        fit_to_screen(self, 860, 600)
        self._topology = topology if topology is not None else topology_mod.read_topology()
        self._allowed = sorted(allowed_cpus if allowed_cpus is not None else self._topology.allowed)
        self._catalog = model_catalog if model_catalog is not None else catalog.CATALOG
        self._base = settings  # fields the dialog does not show come from here
        self._model = settings.model  # the selected model
        self._in_use: str | None = settings.model  # the model the engine runs, as the window says (set_model_in_use)
        self._sampling: dict[str, ModeSampling] = {m: settings.mode(m) for m in MODES}
        self._loading = True  # until set_settings: the pages' signals wait for the whole dialog

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.setDocumentMode(True)
        self.tabs.setStyleSheet(f"QTabBar::tab {{ min-height: {TOUCH_HEIGHT - 12}px; padding: 6px 16px; }}")
        self.tabs.addTab(scrolled(self._build_model_page()), "Model")
        self.tabs.addTab(scrolled(self._build_performance_page()), "Performance")
        self.tabs.addTab(scrolled(self._build_generation_page()), "Generation")
        self.tabs.addTab(scrolled(self._build_appearance_page()), "Appearance")
        self.tabs.addTab(scrolled(self._build_engine_page()), "Engine")

        self.error_label = QLabel()
        self.error_label.setAccessibleName("Settings error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828; font-weight: bold;")
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.Ok | QDialogButtonBox.Apply | QDialogButtonBox.Cancel | QDialogButtonBox.RestoreDefaults)
        names = {QDialogButtonBox.Ok: "OK", QDialogButtonBox.Apply: "Apply", QDialogButtonBox.Cancel: "Cancel",
                 QDialogButtonBox.RestoreDefaults: "Restore defaults"}
        for which, name in names.items():
            touch(self.buttons.button(which), name)
        self.buttons.button(QDialogButtonBox.Ok).clicked.connect(self._ok)
        self.buttons.button(QDialogButtonBox.Apply).clicked.connect(self.apply)
        self.buttons.button(QDialogButtonBox.Cancel).clicked.connect(self.reject)
        self.buttons.button(QDialogButtonBox.RestoreDefaults).clicked.connect(self._restore_defaults)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.set_settings(settings)

    # ---- public API --------------------------------------------------------------------------------------------

    def settings(self) -> Settings:
        """What the widgets say now, validated (SettingsError if a value cannot be used on this machine)."""
        preset = self._preset()
        custom = self._custom_cpus
        if preset == "custom":
            ticked = tuple(self.cpus.ticked_ids())
            if not ticked:
                raise SettingsError("setting custom_cpus: tick at least one CPU for Custom, or choose a preset")
            known = {cpu.id for cpu in self._topology.cpus}
            if set(ticked) != set(custom) & known:  # CPUs this machine lacks stay, and are reported
                custom = ticked
        s = replace(
            self._base,
            model=self._model,
            threads=self.threads_spin.value(),
            cores=preset,
            custom_cpus=custom,
            strict_pinning=self._pin_wish,
            weight_policy=self.policy_combo.currentData(),
            context_length=self.context_spin.value(),
            batch_size=self.batch_spin.value(),
            theme=self.theme_combo.currentData(),
            font_size=self.font_spin.value(),
            enter_sends=self.enter_check.isChecked(),
            engine_url=self._engine_url(),
            engine_key=self._engine_key(),
            sampling=dict(self._sampling),
        ).validated()
        placement.place(s, self._topology, self._allowed)  # CPUs that exist and that this process may use
        return s

    def set_settings(self, settings: Settings) -> None:
        self._loading = True
        try:
            self._base = settings
            self._model = settings.model
            self._sampling = {m: settings.mode(m) for m in MODES}
            self._custom_cpus = tuple(settings.custom_cpus)
            self.threads_spin.setValue(settings.threads)
            self._pin_wish = settings.strict_pinning
            self.strict_check.setChecked(settings.strict_pinning)
            select(self.policy_combo, settings.weight_policy)
            self.context_spin.setValue(settings.context_length)
            self.batch_spin.setValue(settings.batch_size)
            select(self.theme_combo, settings.theme)
            self.font_spin.setValue(settings.font_size)
            self.enter_check.setChecked(settings.enter_sends)
            self._set_engine(settings.engine_url, settings.engine_key)
            select(self.preset_combo, settings.cores)
            self._apply_preset(settings.cores, settings.custom_cpus)
            self._show_mode(self.mode_combo.currentData())
        finally:
            self._loading = False
        self.refresh_models()
        self._changed()

    def apply(self) -> Settings | None:
        """Validate and emit settingsApplied; on a bad value show it and return None."""
        try:
            s = self.settings()
        except SettingsError as e:
            self._show_error(str(e))
            return None
        self._show_error("")
        self._base = s
        self.settingsApplied.emit(s)
        return s

    # ---- validation and buttons --------------------------------------------------------------------------------

    def _changed(self, *_) -> None:
        if self._loading:
            return
        try:
            s = self.settings()
        except SettingsError as e:
            self._show_error(str(e))
            self.placement_label.setText("")
            return
        self._show_error("")
        self._show_pinning(s)
        try:
            self.placement_label.setText(placement.describe(placement.place(s, self._topology, self._allowed)))
        except SettingsError as e:
            self.placement_label.setText(str(e))

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def _ok(self) -> None:
        if self.apply() is not None:
            self.accept()

    def _restore_defaults(self) -> None:
        self.set_settings(replace(Settings(), model=self._model))

    def done(self, result: int) -> None:
        if self._job is not None:  # closing stops waiting; the job is told to stop
            self.cancel_job()
        super().done(result)
