"""The Settings dialog: model library, performance (threads and the core picker), generation defaults per mode, and
appearance (product.md, "Settings").

The dialog edits a copy of the settings. Apply and OK emit `settingsApplied` with validated Settings; a value that
cannot be used (a custom core set with no CPU ticked, a CPU this process may not run on, ...) is shown in an error
line at the bottom and nothing is emitted. Fetching and importing models run on worker threads with a progress bar;
a model file that cannot be read shows the loader's message in the dialog.
"""
from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QThread, Qt, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView, QAbstractSpinBox, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
    QFrame, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox,
    QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from wren.engine.library import catalog
from wren.engine.runtime import topology as topology_mod
from wren.engine.settings import (
    CORE_PRESETS, MAX_THREADS, MODE_DEFAULTS, MODES, ModeSampling, Settings, SettingsError,
)

__all__ = ["SettingsDialog", "ModelJob"]

TOUCH_HEIGHT = 40  # px: the least height of anything one taps

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
THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
MODE_LABELS = {"chat": "Chat", "email": "Draft email", "reply": "Smart reply", "summarize": "Summarize"}
SOURCE_LABELS = {"library": "Library", "package": "Python package", "WREN_MODELS_DIR": "Models folder"}

MODEL_COLUMNS = ("Name", "Architecture", "Parameters", "Quantization", "File size", "RAM needed", "Source")
CPU_COLUMNS = ("CPU", "Core type", "Capacity", "Max frequency", "Cluster")


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


def describe_placement(pool: dict) -> str:
    """One line saying what will run, from Settings.pool_settings()."""
    n = pool["threads"]
    threads = f"{n} thread{'s' if n != 1 else ''}"
    if pool["cpus"] is None:
        return f"{threads}, placed by the system"
    cpus = topology_mod.format_cpu_list(pool["cpus"])
    word = "CPU" if len(pool["cpus"]) == 1 else "CPUs"
    if pool["strict"]:
        return f"{threads} on {word} {cpus}, pinned"
    return f"{threads} sharing {word} {cpus}, not pinned"


# ---- describing models (cached: a header read takes a fraction of a second) -----------------------------------

_describe_cache: dict[tuple, catalog.ModelInfo] = {}
_cache_lock = threading.Lock()


def _describe(path: Path) -> catalog.ModelInfo:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        info = _describe_cache.get(key)
    if info is None:
        info = catalog.describe(path)
        with _cache_lock:
            _describe_cache[key] = info
    return info


def warm_model_cache() -> int:
    """Describe every installed model ahead of time (on a worker thread), so that the dialog opens at once.
    Returns how many were described; damaged files are skipped (the dialog shows their error when it opens)."""
    n = 0
    for m in catalog.installed():
        try:
            _describe(m.path)
            n += 1
        except Exception:  # listed with its error by the dialog itself
            pass
    return n


# ---- background jobs -------------------------------------------------------------------------------------------


class _Cancelled(Exception):
    """Raised from the progress callback to stop a copy or download between two blocks."""


class ModelJob(QThread):
    """Runs fn(progress) on its own thread (a fetch, an import). `progressed(done, total, what)` while it runs;
    `completed(path, error)` once at the end: the resulting path and "" on success, "" and the reason on failure,
    "" and "cancelled" after cancel()."""

    progressed = Signal(object, object, str)
    completed = Signal(str, str)

    def __init__(self, what: str, fn: Callable[[catalog.Progress], Path]):
        super().__init__()
        self.what = what
        self._fn = fn
        self._cancel = threading.Event()
        self.path: str = ""
        self.error: str = ""

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, done: int, total: int, what: str) -> None:
        if self._cancel.is_set():
            raise _Cancelled()
        self.progressed.emit(done, total, what)

    def run(self) -> None:
        try:
            self.path = str(self._fn(self._progress))
        except _Cancelled:
            self.error = "cancelled"
        except (catalog.CatalogError, catalog.GGUFError, OSError, ValueError) as e:
            self.error = str(e) or type(e).__name__
        except Exception as e:  # a worker thread must report, never die silently
            self.error = f"{type(e).__name__}: {e}"
        if self._cancel.is_set() and not self.path:
            self.error = "cancelled"
        self.completed.emit(self.path, self.error)


_running_jobs: set[ModelJob] = set()  # jobs outlive a closed dialog (a QThread must not be destroyed running)


def _start(job: ModelJob) -> ModelJob:
    for old in [j for j in _running_jobs if j.isFinished()]:  # a finished QThread may go
        _running_jobs.discard(old)
    _running_jobs.add(job)
    job.start()
    return job


# ---- small widget helpers --------------------------------------------------------------------------------------


def _touch(widget: QWidget, name: str, tip: str | None = None) -> QWidget:
    widget.setAccessibleName(name)
    widget.setMinimumHeight(TOUCH_HEIGHT)
    if tip:
        widget.setToolTip(tip)
        widget.setAccessibleDescription(tip)
    return widget


def _button(text: str, name: str | None = None, tip: str | None = None) -> QPushButton:
    b = QPushButton(text)
    _touch(b, name or text.rstrip("…."), tip)
    b.setMinimumWidth(96)
    return b


def _scrolled(inner: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setWidget(inner)
    return area


def _form() -> QFormLayout:
    form = QFormLayout()
    form.setFieldGrowthPolicy(QFormLayout.FieldsStayAtSizeHint)
    form.setLabelAlignment(Qt.AlignLeft | Qt.AlignVCenter)
    form.setRowWrapPolicy(QFormLayout.DontWrapRows)
    return form


def _spin(widget: QAbstractSpinBox, name: str, tip: str | None = None) -> QAbstractSpinBox:
    _touch(widget, name, tip)
    widget.setMinimumWidth(200)
    return widget


def _combo(name: str, tip: str | None = None) -> QComboBox:
    combo = QComboBox()
    _touch(combo, name, tip)
    combo.setMinimumWidth(300)
    combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
    return combo


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


def _table(columns: tuple[str, ...], name: str) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
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


def _item(text: str, accessible: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setData(Qt.AccessibleTextRole, accessible or text)
    return item


# ---- the dialog ------------------------------------------------------------------------------------------------


class SettingsDialog(QDialog):
    """Settings editor. `settingsApplied(Settings)` on Apply and OK, with validated settings only."""

    settingsApplied = Signal(object)

    def __init__(self, settings: Settings, topology: topology_mod.Topology | None = None,
                 allowed_cpus: list[int] | None = None, parent: QWidget | None = None,
                 model_catalog: dict[str, catalog.KnownModel] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumSize(640, 400)
        self.resize(860, 600)
        self._topology = topology if topology is not None else topology_mod.read_topology()
        self._allowed = sorted(allowed_cpus if allowed_cpus is not None else self._topology.allowed)
        self._catalog = model_catalog if model_catalog is not None else catalog.CATALOG
        self._base = settings  # fields the dialog does not show come from here
        self._model = settings.model
        self._sampling: dict[str, ModeSampling] = {m: settings.mode(m) for m in MODES}
        self._custom_cpus: tuple[int, ...] = ()  # as given, so an unchanged order survives a round trip
        self._loading = False
        self._rows: list[dict] = []
        self._opened: catalog.ModelInfo | None = None
        self._pending_remove: str | None = None
        self._job: ModelJob | None = None
        self.last_progress: tuple[int, int, str] | None = None  # of the running job, for the bar and for tests

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.setDocumentMode(True)
        self.tabs.setStyleSheet(f"QTabBar::tab {{ min-height: {TOUCH_HEIGHT - 12}px; padding: 6px 16px; }}")
        self.tabs.addTab(_scrolled(self._build_model_page()), "Model")
        self.tabs.addTab(_scrolled(self._build_performance_page()), "Performance")
        self.tabs.addTab(_scrolled(self._build_generation_page()), "Generation")
        self.tabs.addTab(_scrolled(self._build_appearance_page()), "Appearance")

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
            _touch(self.buttons.button(which), name)
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
            ticked = tuple(self._ticked())
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
            strict_pinning=self.strict_check.isChecked(),
            weight_policy=self.policy_combo.currentData(),
            context_length=self.context_spin.value(),
            batch_size=self.batch_spin.value(),
            theme=self.theme_combo.currentData(),
            font_size=self.font_spin.value(),
            sampling=dict(self._sampling),
        ).validated()
        s.pool_settings(self._topology, self._allowed)  # CPUs that exist and that this process may use
        return s

    def set_settings(self, settings: Settings) -> None:
        self._loading = True
        try:
            self._base = settings
            self._model = settings.model
            self._sampling = {m: settings.mode(m) for m in MODES}
            self._custom_cpus = tuple(settings.custom_cpus)
            self.threads_spin.setValue(settings.threads)
            self.strict_check.setChecked(settings.strict_pinning)
            self._select(self.policy_combo, settings.weight_policy)
            self.context_spin.setValue(settings.context_length)
            self.batch_spin.setValue(settings.batch_size)
            self._select(self.theme_combo, settings.theme)
            self.font_spin.setValue(settings.font_size)
            self._select(self.preset_combo, settings.cores)
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

    def cpu_rows(self) -> list[dict]:
        rows = []
        for row, cpu in enumerate(self._topology.cpus):
            box = self._cpu_boxes[row]
            rows.append(dict(id=cpu.id, core=cpu.core_name, capacity=cpu.capacity, max_freq=cpu.max_freq_khz,
                             cluster=cpu.cluster, checked=box.isChecked(), enabled=box.isEnabled()))
        return rows

    def model_rows(self) -> list[dict]:
        return [dict(r) for r in self._rows]

    def open_model_file(self, path: str | os.PathLike) -> catalog.ModelInfo | None:
        """Check a GGUF file (what "Open GGUF file…" does after the file dialog). A file that is not usable shows
        the loader's message and returns None; a good one is offered for use and for import."""
        path = Path(path)
        self._opened = None
        self.opened_use.setEnabled(False)
        self.opened_import.setEnabled(False)
        self.opened_panel.show()
        try:
            info = catalog.validate(path)
        except (catalog.GGUFError, OSError, ValueError) as e:
            self.opened_label.setText(f"{path.name} cannot be used: {e}")
            self.opened_label.setStyleSheet("color: #c62828;")
            return None
        except Exception as e:  # whatever a hostile file provokes, the dialog keeps running
            self.opened_label.setText(f"{path.name} cannot be used: {type(e).__name__}: {e}")
            self.opened_label.setStyleSheet("color: #c62828;")
            return None
        self._opened = info
        self.opened_label.setStyleSheet("")
        self._describe_opened()
        self.opened_use.setEnabled(True)
        self.opened_import.setEnabled(True)
        return info

    def fetch_model(self, name: str) -> ModelJob | None:
        """Fetch a known model into the library on a worker thread; returns the job (None if one is running)."""
        if self._job is not None:
            self.model_status.setText("Wait for the current download or copy to end, or cancel it.")
            return None
        cat = self._catalog
        job = ModelJob(f"Fetching {name}", lambda progress: catalog.fetch(name, progress=progress, catalog=cat))
        return self._run_job(job)

    def import_opened_file(self) -> ModelJob | None:
        """Copy the opened (checked) file into the library on a worker thread."""
        if self._opened is None or self._job is not None:
            return None
        src = self._opened.path
        job = ModelJob(f"Importing {src.name}", lambda progress: catalog.import_file(src, progress=progress))
        return self._run_job(job)

    def use_opened_file(self) -> None:
        if self._opened is not None:
            self._model = str(self._opened.path)
            self._show_current_model()
            self._changed()

    def use_model(self, name: str) -> None:
        self._model = name
        self._show_current_model()
        self._changed()

    def remove_model(self, name: str) -> None:
        """Ask (inline) before deleting a library model; confirm_remove() deletes."""
        self._pending_remove = name
        self.confirm_label.setText(f"Delete {name} from the library? The file is removed from disk.")
        self.confirm_panel.show()

    def confirm_remove(self) -> None:
        name, self._pending_remove = self._pending_remove, None
        self.confirm_panel.hide()
        if name is None:
            return
        row = next((r for r in self._rows if r["name"] == name), None)
        try:
            catalog.remove(name)
        except (catalog.CatalogError, OSError) as e:
            self.model_status.setText(str(e))
            return
        note = f"Deleted {name}."
        if row and self._model and self._model.lower() in (row["name"].lower(), str(row["path"]).lower()):
            self._model = ""
            note += " It was the model in use; the default model will be used."
        self.model_status.setText(note)
        self.refresh_models()
        self._changed()

    def cancel_job(self) -> None:
        """Stop waiting for the running fetch or import (it is told to stop at its next block)."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
            self.model_status.setText(f"{job.what}: cancelled.")
        self._job_ui(False)

    # ---- Model page --------------------------------------------------------------------------------------------

    def _build_model_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        self.current_model_label = _note()
        self.current_model_label.setAccessibleName("Model in use")
        v.addWidget(self.current_model_label)

        self.model_table = _table(MODEL_COLUMNS, "Installed models")
        self.model_table.setMinimumHeight(160)
        self.model_table.itemSelectionChanged.connect(self._model_selection_changed)
        self.model_table.itemDoubleClicked.connect(lambda _: self._use_selected())
        v.addWidget(self.model_table, 1)

        row = QHBoxLayout()
        self.use_button = _button("Use this model", tip="Use the selected model")
        self.use_button.clicked.connect(self._use_selected)
        self.remove_button = _button("Remove", "Remove model", "Delete the selected model from the library")
        self.remove_button.clicked.connect(self._remove_selected)
        self.open_button = _button("Open GGUF file…", "Open GGUF file", "Check a GGUF file, then use or import it")
        self.open_button.clicked.connect(self._open_file_dialog)
        row.addWidget(self.use_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        row.addWidget(self.open_button)
        v.addLayout(row)

        self.confirm_panel = QFrame()
        self.confirm_panel.setFrameShape(QFrame.StyledPanel)
        c = QHBoxLayout(self.confirm_panel)
        self.confirm_label = _note()
        self.confirm_yes = _button("Delete", "Delete model")
        self.confirm_yes.clicked.connect(self.confirm_remove)
        self.confirm_no = _button("Keep", "Keep model")
        self.confirm_no.clicked.connect(self._keep)
        c.addWidget(self.confirm_label, 1)
        c.addWidget(self.confirm_yes)
        c.addWidget(self.confirm_no)
        self.confirm_panel.hide()
        v.addWidget(self.confirm_panel)

        self.opened_panel = QFrame()
        self.opened_panel.setFrameShape(QFrame.StyledPanel)
        o = QVBoxLayout(self.opened_panel)
        self.opened_label = _note()
        self.opened_label.setAccessibleName("Opened file")
        self.opened_label.setTextFormat(Qt.PlainText)
        o.addWidget(self.opened_label)
        ob = QHBoxLayout()
        self.opened_use = _button("Use this file", tip="Run the opened file where it is")
        self.opened_use.clicked.connect(self.use_opened_file)
        self.opened_import = _button("Import into library", tip="Copy the opened file into Wren's model library")
        self.opened_import.clicked.connect(self.import_opened_file)
        ob.addWidget(self.opened_use)
        ob.addWidget(self.opened_import)
        ob.addStretch(1)
        o.addLayout(ob)
        self.opened_panel.hide()
        v.addWidget(self.opened_panel)

        f = QHBoxLayout()
        self.fetch_combo = _combo("Model to fetch")
        self.fetch_combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.fetch_combo.currentIndexChanged.connect(self._fetch_choice_changed)
        self.fetch_button = _button("Fetch…", "Fetch model", "Download the chosen model into the library")
        self.fetch_button.clicked.connect(self._fetch_clicked)
        f.addWidget(QLabel("Known model:"))
        f.addWidget(self.fetch_combo, 1)
        f.addWidget(self.fetch_button)
        v.addLayout(f)

        p = QHBoxLayout()
        self.progress = QProgressBar()
        _touch(self.progress, "Download progress")
        self.progress.setTextVisible(True)
        self.cancel_job_button = _button("Cancel", "Cancel download")
        self.cancel_job_button.clicked.connect(self.cancel_job)
        p.addWidget(self.progress, 1)
        p.addWidget(self.cancel_job_button)
        v.addLayout(p)
        self.progress.hide()
        self.cancel_job_button.hide()

        self.model_status = _note()
        self.model_status.setAccessibleName("Model library status")
        v.addWidget(self.model_status)
        return page

    def refresh_models(self) -> None:
        """Re-read the installed models and recompute their RAM needs at the chosen context and policy."""
        n_ctx, policy = self.context_spin.value(), self.policy_combo.currentData()
        selected = self._selected_row()
        selected_name = selected["name"] if selected else None
        rows = []
        try:
            models = catalog.installed()
        except OSError as e:
            models = []
            self.model_status.setText(f"Cannot list the installed models: {e}")
        for m in models:
            row = dict(name=m.name, path=m.path, source=m.source, architecture=None, parameters=None,
                       quantization=None, file_size=m.size, ram_bytes=None, error=None)
            try:
                info = _describe(m.path)
                row.update(architecture=info.architecture, parameters=info.parameters,
                           quantization=info.quantization, file_size=info.file_size,
                           ram_bytes=info.ram_bytes(n_ctx, policy))
            except Exception as e:  # a damaged file is listed with the reason, never fatal
                row["error"] = str(e) or type(e).__name__
            row["current"] = self._is_current(row)
            rows.append(row)
        self._rows = rows

        t = self.model_table
        t.blockSignals(True)
        t.clearSpans()
        t.setRowCount(len(rows))
        header = t.horizontalHeaderItem(5)
        header.setText(f"RAM at {n_ctx} tokens")
        try:
            available = catalog.available_memory()
        except (OSError, ValueError):
            available = None
        bold = QFont()
        bold.setBold(True)
        for i, r in enumerate(rows):
            name = _item(r["name"] + ("  (in use)" if r["current"] else ""), r["name"])
            name.setToolTip(str(r["path"]))
            if r["current"]:
                name.setFont(bold)
            t.setItem(i, 0, name)
            if r["error"]:
                err = _item(r["error"])
                err.setForeground(Qt.red)
                err.setToolTip(r["error"])
                t.setItem(i, 1, err)
                for col in range(2, len(MODEL_COLUMNS) - 1):
                    t.setItem(i, col, _item(""))
                t.setSpan(i, 1, 1, len(MODEL_COLUMNS) - 2)
            else:
                t.setItem(i, 1, _item(r["architecture"]))
                t.setItem(i, 2, _item(format_count(r["parameters"])))
                t.setItem(i, 3, _item(r["quantization"]))
                t.setItem(i, 4, _item(format_bytes(r["file_size"])))
                ram = _item(format_bytes(r["ram_bytes"]))
                if available is not None and r["ram_bytes"] > available:
                    ram.setForeground(Qt.red)
                    ram.setToolTip(f"more than the {format_bytes(available)} available now")
                t.setItem(i, 5, ram)
            t.setItem(i, 6, _item(SOURCE_LABELS.get(r["source"], r["source"])))
        t.blockSignals(False)
        for i, r in enumerate(rows):
            if r["name"] == selected_name:
                t.selectRow(i)
        self._model_selection_changed()
        self._show_current_model()
        self._fill_fetch_combo()
        if self._opened is not None:
            self._describe_opened()

    def _is_current(self, row: dict) -> bool:
        model = self._model or catalog.DEFAULT_MODEL
        path = Path(row["path"])
        return model.lower() in (row["name"].lower(), path.name.lower(), path.stem.lower()) or \
            os.path.abspath(model) == str(path)

    def _show_current_model(self) -> None:
        for r in self._rows:
            r["current"] = self._is_current(r)
        for i, r in enumerate(self._rows):
            item = self.model_table.item(i, 0)
            if item is not None:
                item.setText(r["name"] + ("  (in use)" if r["current"] else ""))
                f = item.font()
                f.setBold(r["current"])
                item.setFont(f)
        shown = self._model or f"{catalog.DEFAULT_MODEL} (the default)"
        self.current_model_label.setText(f"Model in use: <b>{_html(shown)}</b>")

    def _selected_row(self) -> dict | None:
        rows = self.model_table.selectionModel().selectedRows() if self.model_table.selectionModel() else []
        if not rows or rows[0].row() >= len(self._rows):
            return None
        return self._rows[rows[0].row()]

    def _model_selection_changed(self) -> None:
        r = self._selected_row()
        self.use_button.setEnabled(r is not None and r["error"] is None)
        self.remove_button.setEnabled(r is not None and r["source"] == "library")
        if r is not None and r["source"] != "library":
            self.remove_button.setToolTip(f"{r['name']} comes from {SOURCE_LABELS.get(r['source'], r['source'])}; "
                                          "it is not deleted here")
        else:
            self.remove_button.setToolTip("Delete the selected model from the library")

    def _use_selected(self) -> None:
        r = self._selected_row()
        if r is not None and r["error"] is None:
            self.use_model(r["name"])

    def _remove_selected(self) -> None:
        r = self._selected_row()
        if r is not None and r["source"] == "library":
            self.remove_model(r["name"])

    def _keep(self) -> None:
        self._pending_remove = None
        self.confirm_panel.hide()

    def _open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open GGUF file", str(Path.home()),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.open_model_file(path)

    def _describe_opened(self) -> None:
        info = self._opened
        n_ctx, policy = self.context_spin.value(), self.policy_combo.currentData()
        self.opened_label.setText(
            f"{info.path.name}: {info.name} — {info.architecture}, {format_count(info.parameters)} "
            f"parameters, {info.quantization}, {format_bytes(info.file_size)}; needs about "
            f"{format_bytes(info.ram_bytes(n_ctx, policy))} at {n_ctx} tokens ({policy}).")

    def _fill_fetch_combo(self) -> None:
        installed = {r["name"].lower() for r in self._rows}
        installed |= {Path(r["path"]).name.lower() for r in self._rows}
        self.fetch_combo.blockSignals(True)
        self.fetch_combo.clear()
        for name, known in self._catalog.items():
            if name.lower() in installed or known.file_name.lower() in installed:
                continue
            self.fetch_combo.addItem(f"{name} ({format_bytes(known.size)})", name)
            self.fetch_combo.setItemData(self.fetch_combo.count() - 1, known.description, Qt.ToolTipRole)
        if self.fetch_combo.count() == 0:
            self.fetch_combo.addItem("Every known model is installed", None)
        self.fetch_combo.blockSignals(False)
        self._fetch_choice_changed()

    def _fetch_choice_changed(self) -> None:
        has = self.fetch_combo.currentData() is not None
        self.fetch_combo.setEnabled(has)
        self.fetch_button.setEnabled(has and self._job is None)

    def _fetch_clicked(self) -> None:
        name = self.fetch_combo.currentData()
        if name:
            self.fetch_model(name)

    def _run_job(self, job: ModelJob) -> ModelJob:
        self._job = job
        job.progressed.connect(self._job_progress)
        job.completed.connect(self._job_completed)
        self.last_progress = None
        self.progress.setRange(0, 0)
        self.progress.setFormat(job.what + "…")
        self.model_status.setText("")
        self._job_ui(True)
        return _start(job)

    def _job_ui(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_job_button.setVisible(running)
        self.opened_import.setEnabled(not running and self._opened is not None)
        self._fetch_choice_changed()

    @Slot(object, object, str)
    def _job_progress(self, done: int, total: int, what: str) -> None:
        if self.sender() is not self._job:
            return
        self.last_progress = (done, total, what)
        if total > 0:
            shift = 0 if total < 1 << 31 else 10  # the bar's range is an int: past 2 GiB it counts KiB
            self.progress.setRange(0, total >> shift)
            self.progress.setValue(min(done, total) >> shift)
            self.progress.setFormat(f"{self._job.what}: {what} {format_bytes(done)} of {format_bytes(total)} (%p%)")
        else:
            self.progress.setRange(0, 0)

    @Slot(str, str)
    def _job_completed(self, path: str, error: str) -> None:
        job = self.sender()
        ours = job is self._job
        if ours:
            self._job = None
            self._job_ui(False)
            if path:
                self.model_status.setText(f"{job.what}: done — {path}")
            else:
                self.model_status.setText(f"{job.what}: {error}")
        self.refresh_models()  # a cancelled job may still have finished its file
        if path:
            stored = Path(path)
            for i, r in enumerate(self._rows):
                if Path(r["path"]) == stored:
                    self.model_table.selectRow(i)

    # ---- Performance page --------------------------------------------------------------------------------------

    def _build_performance_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        form = _form()

        self.threads_spin = _spin(QSpinBox(), "Threads", "0 runs one thread per selected core")
        self.threads_spin.setRange(0, MAX_THREADS)
        self.threads_spin.setSpecialValueText("One per selected core")
        self.threads_spin.valueChanged.connect(self._changed)
        form.addRow("Threads:", self.threads_spin)

        self.preset_combo = _combo("Cores")
        for key in CORE_PRESETS:
            self.preset_combo.addItem(PRESET_LABELS[key], key)
        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        form.addRow("Cores:", self.preset_combo)
        v.addLayout(form)
        self.placement_label = _note()
        self.placement_label.setAccessibleName("What will run")
        f = self.placement_label.font()
        f.setBold(True)
        self.placement_label.setFont(f)
        v.addWidget(self.placement_label)
        v.addWidget(_note("Tap a CPU to choose the cores yourself (Custom)."))

        self.cpu_table = _table(CPU_COLUMNS, "CPUs")
        self.cpu_table.setSelectionMode(QAbstractItemView.NoSelection)
        self._cpu_boxes: list[QCheckBox] = []
        allowed, online = set(self._allowed), set(self._topology.online)
        recommended = set(self._topology.recommended)
        self.cpu_table.setRowCount(len(self._topology.cpus))
        for row, cpu in enumerate(self._topology.cpus):
            core = cpu.core_name or "unknown core"
            box = QCheckBox(f"CPU {cpu.id}")
            box.setAccessibleName(f"CPU {cpu.id}, {core}")
            box.setMinimumHeight(TOUCH_HEIGHT)
            box.setStyleSheet("QCheckBox { padding-left: 6px; } "
                              "QCheckBox::indicator { width: 22px; height: 22px; }")
            usable = cpu.id in allowed and cpu.id in online
            box.setProperty("usable", usable)
            if not usable:
                box.setToolTip("offline" if cpu.id not in online else "this process may not run on it")
            box.toggled.connect(self._cpu_toggled)
            self._cpu_boxes.append(box)
            self.cpu_table.setCellWidget(row, 0, box)
            self.cpu_table.setItem(row, 0, _item("", f"CPU {cpu.id}"))
            note = " (recommended)" if cpu.id in recommended else ""
            if not usable:
                note = " (offline)" if cpu.id not in online else " (not available)"
            self.cpu_table.setItem(row, 1, _item(core + note))
            self.cpu_table.setItem(row, 2, _item(str(cpu.capacity) if cpu.capacity else "unknown"))
            self.cpu_table.setItem(row, 3, _item(format_freq(cpu.max_freq_khz)))
            self.cpu_table.setItem(row, 4, _item(str(cpu.cluster) if cpu.cluster >= 0 else "–"))
        rows_shown = min(len(self._topology.cpus), 8)  # the page scrolls; more CPUs scroll inside the table
        self.cpu_table.setMinimumHeight(TOUCH_HEIGHT * (rows_shown + 1) + 6)
        self.cpu_table.setMaximumHeight(TOUCH_HEIGHT * (rows_shown + 1) + 6)
        self.cpu_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Fixed)
        self.cpu_table.setColumnWidth(0, 110)
        self.cpu_table.cellClicked.connect(self._cpu_cell_clicked)
        v.addWidget(self.cpu_table)


        form2 = _form()
        self.strict_check = _touch(QCheckBox("Pin each thread alone to one core"), "Strict pinning")
        self.strict_check.toggled.connect(self._changed)
        form2.addRow("Pinning:", self.strict_check)
        self.policy_combo = _combo("Weight policy")
        for key, label in POLICY_LABELS.items():
            self.policy_combo.addItem(label, key)
        self.policy_combo.currentIndexChanged.connect(self._memory_inputs_changed)
        form2.addRow("Weights:", self.policy_combo)
        self.context_spin = _spin(QSpinBox(), "Context length", "Tokens the model can see at once")
        self.context_spin.setRange(128, 1 << 20)
        self.context_spin.setSingleStep(512)
        self.context_spin.setSuffix(" tokens")
        self.context_spin.valueChanged.connect(self._memory_inputs_changed)
        form2.addRow("Context length:", self.context_spin)
        self.batch_spin = _spin(QSpinBox(), "Prompt batch size", "Prompt tokens processed in one pass")
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setSingleStep(64)
        self.batch_spin.setSuffix(" tokens")
        self.batch_spin.valueChanged.connect(self._changed)
        form2.addRow("Prompt batch:", self.batch_spin)
        v.addLayout(form2)
        v.addStretch(1)
        return page

    def _preset(self) -> str:
        return self.preset_combo.currentData()

    def _ticked(self) -> list[int]:
        return [cpu.id for cpu, box in zip(self._topology.cpus, self._cpu_boxes) if box.isChecked()]

    def _preset_cpus(self, preset: str) -> list[int]:
        """The CPUs a preset means (all its cores, whatever the thread count)."""
        if preset == "system":
            return list(self._allowed)
        pool = Settings(cores=preset, threads=0, strict_pinning=True).pool_settings(self._topology, self._allowed)
        return list(pool["cpus"] or self._allowed)

    def _apply_preset(self, preset: str, custom: tuple[int, ...] | list[int] = ()) -> None:
        ticks = set(custom) if preset == "custom" else set(self._preset_cpus(preset))
        for box, cpu in zip(self._cpu_boxes, self._topology.cpus):
            box.blockSignals(True)
            box.setChecked(cpu.id in ticks)
            box.setEnabled(preset == "custom" and (bool(box.property("usable")) or cpu.id in ticks))
            box.blockSignals(False)

    def _preset_changed(self) -> None:
        if self._loading:
            return
        preset = self._preset()
        if preset == "custom":
            self._custom_cpus = tuple(self._ticked())  # start from what the previous preset ticked
        self._apply_preset(preset, self._custom_cpus)
        self._changed()

    def _cpu_toggled(self) -> None:
        if self._loading:
            return
        if self._preset() != "custom":
            self._select(self.preset_combo, "custom")  # ticking a box is a custom choice
        self._custom_cpus = tuple(self._ticked())
        self._apply_preset("custom", self._custom_cpus)
        self._changed()

    def _cpu_cell_clicked(self, row: int, _column: int) -> None:
        """A tap on a CPU's row picks it by hand: Custom, starting from what the preset ticked."""
        box = self._cpu_boxes[row]
        if box.isEnabled() or (self._preset() != "custom" and box.property("usable")):
            box.setChecked(not box.isChecked())

    def _memory_inputs_changed(self) -> None:
        if self._loading:
            return
        self.refresh_models()
        self._changed()

    # ---- Generation page ---------------------------------------------------------------------------------------

    def _build_generation_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        top = QHBoxLayout()
        self.mode_combo = _combo("Mode")
        for m in MODES:
            self.mode_combo.addItem(MODE_LABELS[m], m)
        self.mode_combo.currentIndexChanged.connect(lambda _: self._show_mode(self.mode_combo.currentData()))
        top.addWidget(QLabel("Defaults for:"))
        top.addWidget(self.mode_combo, 1)
        self.mode_reset = _button("Reset mode", "Reset mode defaults", "Back to this mode's built-in values")
        self.mode_reset.clicked.connect(self._reset_mode)
        top.addWidget(self.mode_reset)
        v.addLayout(top)

        form = _form()
        self.gen_widgets: dict[str, QWidget] = {}

        def dspin(key, label, lo, hi, step, decimals, tip):
            w = _spin(QDoubleSpinBox(), label, tip)
            w.setRange(lo, hi)
            w.setSingleStep(step)
            w.setDecimals(decimals)
            w.valueChanged.connect(lambda value, k=key: self._gen_edited(k, float(value)))
            self.gen_widgets[key] = w
            form.addRow(label + ":", w)

        def ispin(key, label, lo, hi, tip, special=None):
            w = _spin(QSpinBox(), label, tip)
            w.setRange(lo, hi)
            if special:
                w.setSpecialValueText(special)
            w.valueChanged.connect(lambda value, k=key: self._gen_edited(k, int(value)))
            self.gen_widgets[key] = w
            form.addRow(label + ":", w)

        dspin("temperature", "Temperature", 0.0, 10.0, 0.05, 3, "0 always picks the likeliest token")
        ispin("top_k", "Top-k", 0, 1_000_000, "Keep the k likeliest tokens; 0 keeps all", "Off (0)")
        dspin("top_p", "Top-p", 0.001, 1.0, 0.01, 3, "Keep the likeliest tokens up to this probability mass")
        dspin("min_p", "Min-p", 0.0, 0.999, 0.01, 3, "Drop tokens less likely than this times the best one")
        dspin("repeat_penalty", "Repeat penalty", 0.01, 10.0, 0.05, 3, "1 means no penalty")
        ispin("seed", "Seed", -1, 2**31 - 1, "-1 picks a new seed each time", "Random (-1)")
        ispin("max_new_tokens", "Max new tokens", 1, 1 << 16, "The longest answer, in tokens")
        v.addLayout(form)
        v.addStretch(1)
        return page

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

    def mode_values(self, mode: str) -> ModeSampling:
        return self._sampling[mode]

    # ---- Appearance page ---------------------------------------------------------------------------------------

    def _build_appearance_page(self) -> QWidget:
        page = QWidget()
        form = _form()
        page.setLayout(form)
        self.theme_combo = _combo("Theme")
        for key, label in THEME_LABELS.items():
            self.theme_combo.addItem(label, key)
        self.theme_combo.currentIndexChanged.connect(self._changed)
        form.addRow("Theme:", self.theme_combo)
        self.font_spin = _spin(QSpinBox(), "Font size", "0 uses the system's size; otherwise 6 to 72 points")
        self.font_spin.setRange(0, 72)
        self.font_spin.setSpecialValueText("System size")
        self.font_spin.setSuffix(" pt")
        self.font_spin.valueChanged.connect(self._changed)
        form.addRow("Font size:", self.font_spin)
        return page

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
        try:
            self.placement_label.setText(describe_placement(s.pool_settings(self._topology, self._allowed)))
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

    @staticmethod
    def _select(combo: QComboBox, key) -> None:
        i = combo.findData(key)
        if i >= 0:
            combo.setCurrentIndex(i)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
