"""The Model page: the installed models with what each needs in RAM, the model in use, opening a GGUF file,
fetching a known model and importing a file into the library (both as Tasks, with progress and cancel)."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from wren.engine.library import catalog
from wren.gui.settings.common import button, combo, format_bytes, format_count, html, note, table, touch
from wren.gui.settings.item_models import MODEL_COLUMNS, SOURCE_LABELS, ModelLibraryModel
from wren.gui.tasks import Task

__all__ = ["ModelPage", "ModelJob"]

JOB_ERRORS = (catalog.CatalogError, catalog.GGUFError, OSError, ValueError)  # their message says it all


class ModelJob(Task):
    """A fetch or an import: its result is the path of the model in the library."""

    def __init__(self, what: str):
        super().__init__(what, expected=JOB_ERRORS)

    @property
    def path(self) -> str:
        """Where the model went ("" unless it succeeded)."""
        return str(self.result) if self.result is not None and not self.error else ""


class ModelPage:
    """The Model page of SettingsDialog (mixed into it: it reads the context length and weight policy of the
    Performance page, and tells the dialog of a change through _changed)."""

    def _build_model_page(self) -> QWidget:
        self._opened: catalog.ModelInfo | None = None
        self._pending_remove: str | None = None
        self._job: ModelJob | None = None
        self.last_progress: tuple[int, int, str] | None = None  # of the running job, for the bar and for tests

        page = QWidget()
        v = QVBoxLayout(page)
        self.current_model_label = note()
        self.current_model_label.setAccessibleName("Selected model and model in use")
        v.addWidget(self.current_model_label)

        self.library = ModelLibraryModel(page)
        self.model_table = table("Installed models")
        self.model_table.setModel(self.library)
        self.model_table.setMinimumHeight(160)
        self.model_table.selectionModel().selectionChanged.connect(self._model_selection_changed)
        self.model_table.doubleClicked.connect(lambda _: self._use_selected())
        v.addWidget(self.model_table, 1)

        row = QHBoxLayout()
        self.use_button = button("Use this model", tip="Use the selected model")
        self.use_button.clicked.connect(self._use_selected)
        self.remove_button = button("Remove", "Remove model", "Delete the selected model from the library")
        self.remove_button.clicked.connect(self._remove_selected)
        self.open_button = button("Open GGUF file…", "Open GGUF file", "Check a GGUF file, then use or import it")
        self.open_button.clicked.connect(self._open_file_dialog)
        row.addWidget(self.use_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        row.addWidget(self.open_button)
        v.addLayout(row)

        self.confirm_panel = QFrame()
        self.confirm_panel.setFrameShape(QFrame.StyledPanel)
        c = QHBoxLayout(self.confirm_panel)
        self.confirm_label = note()
        self.confirm_yes = button("Delete", "Delete model")
        self.confirm_yes.clicked.connect(self.confirm_remove)
        self.confirm_no = button("Keep", "Keep model")
        self.confirm_no.clicked.connect(self._keep)
        c.addWidget(self.confirm_label, 1)
        c.addWidget(self.confirm_yes)
        c.addWidget(self.confirm_no)
        self.confirm_panel.hide()
        v.addWidget(self.confirm_panel)

        self.opened_panel = QFrame()
        self.opened_panel.setFrameShape(QFrame.StyledPanel)
        o = QVBoxLayout(self.opened_panel)
        self.opened_label = note()
        self.opened_label.setAccessibleName("Opened file")
        self.opened_label.setTextFormat(Qt.PlainText)
        o.addWidget(self.opened_label)
        ob = QHBoxLayout()
        self.opened_use = button("Use this file", tip="Run the opened file where it is")
        self.opened_use.clicked.connect(self.use_opened_file)
        self.opened_import = button("Import into library", tip="Copy the opened file into Wren's model library")
        self.opened_import.clicked.connect(self.import_opened_file)
        ob.addWidget(self.opened_use)
        ob.addWidget(self.opened_import)
        ob.addStretch(1)
        o.addLayout(ob)
        self.opened_panel.hide()
        v.addWidget(self.opened_panel)

        f = QHBoxLayout()
        self.fetch_combo = combo("Model to fetch")
        self.fetch_combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.fetch_combo.currentIndexChanged.connect(self._fetch_choice_changed)
        self.fetch_button = button("Fetch…", "Fetch model", "Download the chosen model into the library")
        self.fetch_button.clicked.connect(self._fetch_clicked)
        f.addWidget(QLabel("Known model:"))
        f.addWidget(self.fetch_combo, 1)
        f.addWidget(self.fetch_button)
        v.addLayout(f)

        p = QHBoxLayout()
        self.progress = QProgressBar()
        touch(self.progress, "Download progress")
        self.progress.setTextVisible(True)
        self.cancel_job_button = button("Cancel", "Cancel download")
        self.cancel_job_button.clicked.connect(self.cancel_job)
        p.addWidget(self.progress, 1)
        p.addWidget(self.cancel_job_button)
        v.addLayout(p)
        self.progress.hide()
        self.cancel_job_button.hide()

        self.model_status = note()
        self.model_status.setAccessibleName("Model library status")
        v.addWidget(self.model_status)
        return page

    # ---- public API --------------------------------------------------------------------------------------------

    def model_rows(self) -> list[dict]:
        return self.library.rows()

    def refresh_models(self) -> None:
        """Re-read the installed models and recompute their RAM needs at the chosen context and policy."""
        selected = self._selected_row()
        selected_name = selected["name"] if selected else None
        problem = self.library.load(self.context_spin.value(), self.policy_combo.currentData(), self._is_current)
        if problem:
            self.model_status.setText(problem)
        t = self.model_table
        t.clearSpans()
        for i, r in enumerate(self.library.rows()):
            if r["error"]:
                t.setSpan(i, 1, 1, len(MODEL_COLUMNS) - 2)
        i = self.library.find(lambda r: r["name"] == selected_name)
        if i >= 0:
            t.selectRow(i)
        self._model_selection_changed()
        self._show_current_model()
        self._fill_fetch_combo()
        if self._opened is not None:
            self._describe_opened()

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
        return self._run_job(ModelJob(f"Fetching {name}"), lambda report: catalog.fetch(
            name, progress=lambda *p: report(p), catalog=cat))

    def import_opened_file(self) -> ModelJob | None:
        """Copy the opened (checked) file into the library on a worker thread."""
        if self._opened is None or self._job is not None:
            return None
        src = self._opened.path
        return self._run_job(ModelJob(f"Importing {src.name}"), lambda report: catalog.import_file(
            src, progress=lambda *p: report(p)))

    def use_opened_file(self) -> None:
        if self._opened is not None:
            self.use_model(str(self._opened.path))

    def set_model_in_use(self, model: str | None) -> None:
        """The model the engine runs ("" the default one; None: no model is loaded)."""
        self._in_use = model
        self._show_current_model()

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
        row = self.library.row(self.library.find(lambda r: r["name"] == name))
        try:
            catalog.remove(name)
        except (catalog.CatalogError, OSError) as e:
            self.model_status.setText(str(e))
            return
        text = f"Deleted {name}."
        if row and self._model and self._is_current(row):
            self._model = ""
            text += " It was the selected model; the default model is selected now."
        self.model_status.setText(text)
        self.refresh_models()
        self._changed()

    def cancel_job(self) -> None:
        """Stop waiting for the running fetch or import (it is told to stop at its next block)."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
            job.progressed.disconnect(self._job_progress)
            self.model_status.setText(f"{job.what}: cancelled.")
        self._job_ui(False)

    # ---- the table ---------------------------------------------------------------------------------------------

    def _is_current(self, row: dict) -> bool:
        return self._is_model(self._model, row)

    @staticmethod
    def _is_model(model: str, row: dict) -> bool:
        model = model or catalog.DEFAULT_MODEL
        path = Path(row["path"])
        return catalog.matches(model, row["name"], path) or os.path.abspath(model) == str(path)

    def _show_current_model(self) -> None:
        """Say which model is selected and which one runs: a selection is used only after Apply or OK."""
        in_use = self._in_use
        self.library.mark_current(self._is_current, lambda r: in_use is not None and self._is_model(in_use, r))

        def shown(model: str) -> str:
            return f"<b>{html(model)}</b>" if model else f"<b>{html(catalog.DEFAULT_MODEL)}</b> (the default)"
        if in_use is None:
            text = f"Selected: {shown(self._model)}, loaded after Apply or OK. No model is loaded now."
        elif (self._model or catalog.DEFAULT_MODEL) == (in_use or catalog.DEFAULT_MODEL):
            text = f"In use: {shown(self._model)}"
        else:
            text = f"Selected: {shown(self._model)}, used after Apply or OK; in use now: {shown(in_use)}"
        self.current_model_label.setText(text)

    def _selected_row(self) -> dict | None:
        rows = self.model_table.selectionModel().selectedRows()
        return self.library.row(rows[0].row()) if rows else None

    def _model_selection_changed(self, *_) -> None:
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

    # ---- an opened file, fetching --------------------------------------------------------------------------------

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
        rows = self.library.rows()
        installed = {r["name"].lower() for r in rows} | {Path(r["path"]).name.lower() for r in rows}
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

    # ---- the running job -----------------------------------------------------------------------------------------

    def _run_job(self, job: ModelJob, fn) -> ModelJob:
        self._job = job
        job.progressed.connect(self._job_progress)  # bound methods: a deleted dialog hears nothing
        job.done.connect(self._job_done)
        job.failed.connect(self._job_failed)
        self.last_progress = None
        self.progress.setRange(0, 0)
        self.progress.setFormat(job.what + "…")
        self.model_status.setText("")
        self._job_ui(True)
        return job.start(fn)

    def _job_ui(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_job_button.setVisible(running)
        self.opened_import.setEnabled(not running and self._opened is not None)
        self._fetch_choice_changed()

    def _job_progress(self, step: tuple[int, int, str]) -> None:
        if self._job is None:
            return
        done, total, what = step
        self.last_progress = (done, total, what)
        if total > 0:
            shift = 0 if total < 1 << 31 else 10  # the bar's range is an int: past 2 GiB it counts KiB
            self.progress.setRange(0, total >> shift)
            self.progress.setValue(min(done, total) >> shift)
            self.progress.setFormat(f"{self._job.what}: {what} {format_bytes(done)} of {format_bytes(total)} (%p%)")
        else:
            self.progress.setRange(0, 0)

    def _job_done(self, path) -> None:
        self._job_ended(str(path), "")

    def _job_failed(self, error: str) -> None:
        self._job_ended("", error)

    def _job_ended(self, path: str, error: str) -> None:
        job = self._job
        if job is not None and job.isFinished():  # the job shown (a cancelled one was let go: it is not)
            self._job = None
            self._job_ui(False)
            self.model_status.setText(f"{job.what}: done — {path}" if path else f"{job.what}: {error}")
        self.refresh_models()  # a cancelled job may still have finished its file
        if path:
            i = self.library.find(lambda r: Path(r["path"]) == Path(path))
            if i >= 0:
                self.model_table.selectRow(i)
