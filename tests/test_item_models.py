"""The settings pages' Qt item models (the model library, the CPU table) pass qtmodeltester and say what the tables
show: each CPU with its tick, each installed model with its RAM need or the reason it cannot be read."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from test_topology import make_tree, rk3588  # noqa: E402

from wren.engine.library import catalog  # noqa: E402
from wren.engine.runtime.topology import read_topology  # noqa: E402
from wren.gui.settings.item_models import CpuTableModel, ModelLibraryModel  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def rk(tmp_path):
    root, info = make_tree(tmp_path, rk3588())
    return read_topology(root, info)


def texts(model, row: int) -> list[str]:
    return [model.index(row, c).data() for c in range(model.columnCount())]


def test_the_cpu_table_model(qtmodeltester, rk):
    model = CpuTableModel(rk, allowed=[0, 1, 2, 3, 4, 5, 6])  # CPU 7 is not ours
    qtmodeltester.check(model)
    assert model.rowCount() == 8 and model.headerData(0, Qt.Horizontal) == "CPU"
    assert texts(model, 4) == ["CPU 4", "Cortex-A76 (recommended)", "1024", "2.35 GHz", "1"]
    assert model.index(7, 1).data() == "Cortex-A76 (not available)"
    assert model.index(7, 0).data(Qt.ToolTipRole) == "this process may not run on it"
    assert model.index(0, 0).data(Qt.AccessibleTextRole) == "CPU 0, Cortex-A55"

    model.set_ticks({4, 5}, custom=False)
    assert model.ticked_ids() == [4, 5] and not any(model.is_enabled(r) for r in range(8))
    assert model.index(4, 0).data(Qt.CheckStateRole) == Qt.Checked
    assert not model.flags(model.index(4, 0)) & Qt.ItemIsEnabled
    seen = []
    model.ticked.connect(lambda: seen.append(model.ticked_ids()))
    model.set_ticks({4, 7}, custom=True)  # a tick on a CPU not ours can still be taken away
    assert seen == [] and [model.is_enabled(r) for r in range(8)] == [True] * 8
    model.set_ticks({4}, custom=True)
    assert not model.is_enabled(7) and model.flags(model.index(7, 1)) & Qt.ItemIsEnabled
    assert model.setData(model.index(2, 0), Qt.Checked, Qt.CheckStateRole)
    assert seen == [[2, 4]]
    assert not model.setData(model.index(2, 1), Qt.Unchecked, Qt.CheckStateRole)  # only the first column ticks
    qtmodeltester.check(model)
    assert [r["id"] for r in model.rows() if r["checked"]] == [2, 4]


def test_the_model_library_model(qtmodeltester, tmp_path, monkeypatch, tiny):
    library = tmp_path / "data" / "models"
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "data"))
    model = ModelLibraryModel()
    qtmodeltester.check(model)
    library.mkdir(parents=True)
    (library / "tiny-llama.gguf").write_bytes(tiny.read_bytes())
    (library / "cut.gguf").write_bytes(tiny.read_bytes()[:-100])
    assert model.load(1024, "mixed", lambda r: r["name"] == "tiny-llama") == ""
    qtmodeltester.check(model)
    assert model.headerData(5, Qt.Horizontal) == "RAM at 1024 tokens"

    good = model.find(lambda r: r["name"] == "tiny-llama")
    info = catalog.describe(library / "tiny-llama.gguf")
    row = model.row(good)
    assert row["ram_bytes"] == info.ram_bytes(1024, "mixed") and row["current"] and row["error"] is None
    assert model.index(good, 0).data() == "tiny-llama  (in use)"
    assert model.index(good, 0).data(Qt.AccessibleTextRole) == "tiny-llama"
    assert model.index(good, 0).data(Qt.FontRole).bold()
    assert model.index(good, 1).data() == "llama" and model.index(good, 6).data() == "Library"

    cut = model.find(lambda r: r["name"] == "cut")
    with pytest.raises(catalog.GGUFError) as loader:
        catalog.describe(library / "cut.gguf")
    assert texts(model, cut)[1:] == [str(loader.value), "", "", "", "", "Library"]
    assert model.index(cut, 1).data(Qt.ForegroundRole) is not None

    changed = []
    model.dataChanged.connect(lambda a, b, roles: changed.append((a.row(), b.row(), a.column(), b.column())))
    model.mark_current(lambda r: r["name"] == "cut")
    assert changed == [(0, model.rowCount() - 1, 0, 0)]
    assert not model.row(good)["current"] and model.index(cut, 0).data() == "cut  (in use)"
    assert model.find(lambda r: r["name"] == "absent") == -1 and model.row(-1) is None
