"""The Qt item models of the settings pages: the installed models (with what each needs in RAM) and the CPUs."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from wren.engine.library import catalog
from wren.engine.runtime import topology as topology_mod
from wren.gui.settings.common import format_bytes, format_count, format_freq

__all__ = ["ModelLibraryModel", "CpuTableModel", "warm_model_cache", "SOURCE_LABELS"]

SOURCE_LABELS = {"library": "Library", "package": "Python package", "WREN_MODELS_DIR": "Models folder"}
MODEL_COLUMNS = ("Name", "Architecture", "Parameters", "Quantization", "File size", "RAM needed", "Source")
CPU_COLUMNS = ("CPU", "Core type", "Capacity", "Max frequency", "Cluster")
RAM_COLUMN = 5
RED = QBrush(QColor(Qt.red))


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


def _table_header(columns: tuple[str, ...], section: int, orientation, role) -> str | None:
    if orientation == Qt.Horizontal and role in (Qt.DisplayRole, Qt.AccessibleTextRole) \
            and 0 <= section < len(columns):
        return columns[section]
    return None


# ---- the model library -----------------------------------------------------------------------------------------


class ModelLibraryModel(QAbstractTableModel):
    """One row per installed model: a dict with name, path, source, architecture, parameters, quantization,
    file_size, ram_bytes (at the chosen context and weight policy), error (a damaged file's reason), current (the
    chosen model) and in_use (the model the engine runs)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[dict] = []
        self._n_ctx = 0
        self._available: int | None = None

    def load(self, n_ctx: int, policy: str, is_current: Callable[[dict], bool]) -> str:
        """Re-read the installed models; returns "" or why they cannot be listed."""
        problem = ""
        try:
            models = catalog.installed()
        except OSError as e:
            models = []
            problem = f"Cannot list the installed models: {e}"
        rows = []
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
            row["current"] = row["in_use"] = is_current(row)
            rows.append(row)
        try:
            available = catalog.available_memory()
        except (OSError, ValueError):
            available = None
        self.beginResetModel()
        self._rows, self._n_ctx, self._available = rows, n_ctx, available
        self.endResetModel()
        return problem

    def mark_current(self, is_current: Callable[[dict], bool], in_use: Callable[[dict], bool] | None = None) -> None:
        """Mark the chosen model (current) and the one the engine runs (in_use; by default the chosen one)."""
        for r in self._rows:
            r["current"] = is_current(r)
            r["in_use"] = r["current"] if in_use is None else in_use(r)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0))

    def rows(self) -> list[dict]:
        return [dict(r) for r in self._rows]

    def row(self, i: int) -> dict | None:
        return self._rows[i] if 0 <= i < len(self._rows) else None

    def find(self, pred: Callable[[dict], bool]) -> int:
        """The first row for which pred holds, or -1."""
        return next((i for i, r in enumerate(self._rows) if pred(r)), -1)

    # ---- QAbstractTableModel -----------------------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(MODEL_COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if section == RAM_COLUMN and orientation == Qt.Horizontal and role == Qt.DisplayRole and self._n_ctx:
            return f"RAM at {self._n_ctx} tokens"
        return _table_header(MODEL_COLUMNS, section, orientation, role)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        r, col = self._rows[index.row()], index.column()
        if role in (Qt.DisplayRole, Qt.AccessibleTextRole):
            if col == 0 and role == Qt.AccessibleTextRole:
                return r["name"]
            return self._text(r, col)
        if role == Qt.ToolTipRole:
            if col == 0:
                return str(r["path"])
            if col == 1 and r["error"]:
                return r["error"]
            if col == RAM_COLUMN and self._over(r):
                return f"more than the {format_bytes(self._available)} available now"
        if role == Qt.FontRole and col == 0 and r["current"]:
            bold = QFont()
            bold.setBold(True)
            return bold
        if role == Qt.ForegroundRole and ((col == 1 and r["error"]) or (col == RAM_COLUMN and self._over(r))):
            return RED
        return None

    def _over(self, r: dict) -> bool:
        return self._available is not None and r["ram_bytes"] is not None and r["ram_bytes"] > self._available

    @staticmethod
    def _text(r: dict, col: int) -> str:
        if col == 0:
            return r["name"] + ("  (in use)" if r["in_use"] else "  (selected)" if r["current"] else "")
        if col == len(MODEL_COLUMNS) - 1:
            return SOURCE_LABELS.get(r["source"], r["source"])
        if r["error"]:
            return r["error"] if col == 1 else ""
        return (r["architecture"], format_count(r["parameters"]), r["quantization"], format_bytes(r["file_size"]),
                format_bytes(r["ram_bytes"]))[col - 1]


# ---- the CPUs --------------------------------------------------------------------------------------------------


class CpuTableModel(QAbstractTableModel):
    """One row per CPU of the machine; the first column carries its tick. setData (a tap) emits `ticked`;
    set_ticks (a preset) does not."""

    ticked = Signal()

    def __init__(self, topology: topology_mod.Topology, allowed: list[int], parent=None):
        super().__init__(parent)
        self._cpus = list(topology.cpus)
        self._online = set(topology.online)
        self._recommended = set(topology.recommended)
        self._usable = [cpu.id in set(allowed) and cpu.id in self._online for cpu in self._cpus]
        self._checked = [False] * len(self._cpus)
        self._enabled = [False] * len(self._cpus)

    def cpu_ids(self) -> list[int]:
        return [cpu.id for cpu in self._cpus]

    def usable(self, row: int) -> bool:
        return self._usable[row]

    def is_checked(self, row: int) -> bool:
        return self._checked[row]

    def is_enabled(self, row: int) -> bool:
        return self._enabled[row]

    def ticked_ids(self) -> list[int]:
        return [cpu.id for cpu, on in zip(self._cpus, self._checked) if on]

    def set_ticks(self, ids: set[int], custom: bool) -> None:
        """Tick exactly `ids`; in Custom a row can be changed if its CPU is usable (or ticked, so it can go)."""
        for row, cpu in enumerate(self._cpus):
            self._checked[row] = cpu.id in ids
            self._enabled[row] = custom and (self._usable[row] or cpu.id in ids)
        if self._cpus:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._cpus) - 1, len(CPU_COLUMNS) - 1))

    def rows(self) -> list[dict]:
        return [dict(id=cpu.id, core=cpu.core_name, capacity=cpu.capacity, max_freq=cpu.max_freq_khz,
                     cluster=cpu.cluster, checked=self._checked[i], enabled=self._enabled[i])
                for i, cpu in enumerate(self._cpus)]

    # ---- QAbstractTableModel -----------------------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._cpus)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(CPU_COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        return _table_header(CPU_COLUMNS, section, orientation, role)

    def flags(self, index):
        if not index.isValid():
            return Qt.NoItemFlags
        if index.column() == 0 and not self._enabled[index.row()]:
            return Qt.NoItemFlags
        return Qt.ItemIsEnabled

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or not (0 <= index.row() < len(self._cpus)):
            return None
        row, col = index.row(), index.column()
        cpu = self._cpus[row]
        core = cpu.core_name or "unknown core"
        if role == Qt.CheckStateRole and col == 0:
            return Qt.Checked if self._checked[row] else Qt.Unchecked
        if role == Qt.AccessibleTextRole and col == 0:
            return f"CPU {cpu.id}, {core}"
        if role == Qt.ToolTipRole and not self._usable[row]:
            return "offline" if cpu.id not in self._online else "this process may not run on it"
        if role not in (Qt.DisplayRole, Qt.AccessibleTextRole):
            return None
        if col == 0:
            return f"CPU {cpu.id}"
        if col == 1:
            note = " (recommended)" if cpu.id in self._recommended else ""
            if not self._usable[row]:
                note = " (offline)" if cpu.id not in self._online else " (not available)"
            return core + note
        if col == 2:
            return str(cpu.capacity) if cpu.capacity else "unknown"
        if col == 3:
            return format_freq(cpu.max_freq_khz)
        return str(cpu.cluster) if cpu.cluster >= 0 else "–"

    def setData(self, index, value, role=Qt.EditRole) -> bool:  # noqa: N802
        if not index.isValid() or index.column() != 0 or role != Qt.CheckStateRole:
            return False
        on = Qt.CheckState(value) == Qt.Checked
        row = index.row()
        if self._checked[row] != on:
            self._checked[row] = on
            self.dataChanged.emit(index, index, [Qt.CheckStateRole])
            self.ticked.emit()
        return True
