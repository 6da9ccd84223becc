"""The Settings dialog: settings round trips, the core picker on a fake RK3588, validation shown inline, per-mode
generation values, and the model library (real default model, corrupt and valid GGUF files, a fetch over HTTP from
a local server)."""
from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from conftest import model_or_skip

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractButton, QAbstractSpinBox, QComboBox, QDialogButtonBox, QTableView, QTabBar,
)
from test_topology import make_tree, rk3588  # noqa: E402

from wren.engine.library import catalog  # noqa: E402
from wren.engine.settings import MODES, ModeSampling, Settings, SettingsError  # noqa: E402
from wren.engine.runtime import placement  # noqa: E402
from wren.engine.runtime.topology import read_topology  # noqa: E402
from wren.gui.settings.common import TOUCH_HEIGHT  # noqa: E402
from wren.gui.settings.dialog import SettingsDialog  # noqa: E402

pytestmark = pytest.mark.gui

gguf = pytest.importorskip("gguf")

RK3588_CPUS = list(range(8))


@pytest.fixture
def rk(tmp_path):
    root, info = make_tree(tmp_path, rk3588())
    return read_topology(root, info)


@pytest.fixture
def library(tmp_path, monkeypatch):
    """An empty model library of this test (the real models stay visible through WREN_MODELS_DIR)."""
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data" / "models"


def make(qtbot, settings=None, topo=None, **kwargs) -> SettingsDialog:
    d = SettingsDialog(settings or Settings(), topo, RK3588_CPUS if topo is not None else None, **kwargs)
    qtbot.addWidget(d)
    return d


def apply_button(d: SettingsDialog):
    return d.buttons.button(QDialogButtonBox.Apply)


def cell(view, row: int, column: int) -> str:
    return view.model().index(row, column).data()


def tick(d: SettingsDialog, row: int, on: bool) -> None:
    """Set the tick of a CPU's row in the CPU table as a tap on its check box does."""
    model = d.cpu_table.model()
    assert model.setData(model.index(row, 0), Qt.Checked if on else Qt.Unchecked, Qt.CheckStateRole)


def non_default() -> Settings:
    s = Settings(model="Gemma-3-270M", threads=3, cores="custom", custom_cpus=(6, 4), strict_pinning=False,
                 weight_policy="int4", context_length=3000, batch_size=77, theme="dark", font_size=13)
    s = s.with_mode("chat", temperature=0.123, top_k=7, top_p=0.811, min_p=0.02, repeat_penalty=1.3, seed=42,
                    max_new_tokens=99)
    return s.with_mode("summarize", seed=-1, max_new_tokens=1000).validated()


# ---- settings in and out ---------------------------------------------------------------------------------------


def test_round_trip_of_non_default_settings(qtbot, rk, library):
    s = non_default()
    d = make(qtbot, s, rk)
    assert d.settings() == s
    assert d.preset_combo.currentData() == "custom"
    assert [r["id"] for r in d.cpu_rows() if r["checked"]] == [4, 6]
    assert d.threads_spin.value() == 3 and d.context_spin.value() == 3000 and d.font_spin.value() == 13
    assert d.theme_combo.currentData() == "dark" and d.policy_combo.currentData() == "int4"
    d.set_settings(Settings())
    assert d.settings() == Settings()
    d.set_settings(s)
    assert d.settings() == s


def test_presets_tick_the_cpus_they_mean_and_lock_the_boxes(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    rows = d.cpu_rows()
    assert [r["id"] for r in rows] == RK3588_CPUS
    assert [r["core"] for r in rows] == ["Cortex-A55"] * 4 + ["Cortex-A76"] * 4
    assert rows[0]["capacity"] == 414 and rows[7]["capacity"] == 1024 and rows[7]["max_freq"] == 2400000
    assert [r["id"] for r in rows if r["checked"]] == [4, 5, 6, 7]
    assert not any(r["enabled"] for r in rows)
    assert d.placement_label.text() == "4 threads on CPUs 4-7, pinned"
    # the table shows the type, capacity and frequency of each CPU
    assert cell(d.cpu_table, 4, 1).startswith("Cortex-A76")
    assert cell(d.cpu_table, 0, 3) == "1.80 GHz" and cell(d.cpu_table, 6, 3) == "2.40 GHz"

    d.preset_combo.setCurrentIndex(d.preset_combo.findData("all"))
    rows = d.cpu_rows()
    assert all(r["checked"] for r in rows) and not any(r["enabled"] for r in rows)
    assert d.settings().cores == "all"
    assert d.placement_label.text() == "8 threads on CPUs 0-7, pinned"

    d.threads_spin.setValue(12)  # more threads than CPUs: clamped, and said
    assert d.placement_label.text() == ("8 threads on CPUs 0-7, pinned (threads = 12 is more than the 8 CPUs this "
                                        "process may use: using 8)")
    assert d.error_label.isHidden()
    d.threads_spin.setValue(6)
    d.preset_combo.setCurrentIndex(d.preset_combo.findData("system"))
    assert d.placement_label.text() == "6 threads, placed by the system"
    assert not any(r["enabled"] for r in d.cpu_rows())

    d.preset_combo.setCurrentIndex(d.preset_combo.findData("big"))
    assert [r["id"] for r in d.cpu_rows() if r["checked"]] == [4, 5, 6, 7]
    d.preset_combo.setCurrentIndex(d.preset_combo.findData("custom"))
    rows = d.cpu_rows()
    assert all(r["enabled"] for r in rows)
    assert [r["id"] for r in rows if r["checked"]] == [4, 5, 6, 7]  # Custom starts from what was ticked


def test_ticking_a_cpu_switches_to_custom(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    seen = []
    d.settingsApplied.connect(seen.append)
    # a tap on CPU 2's row while a preset is chosen
    rect = d.cpu_table.visualRect(d.cpu_table.model().index(2, 2))
    qtbot.mouseClick(d.cpu_table.viewport(), Qt.LeftButton, pos=rect.center())
    assert d.preset_combo.currentData() == "custom"
    assert [r["id"] for r in d.cpu_rows() if r["checked"]] == [2, 4, 5, 6, 7]
    assert all(r["enabled"] for r in d.cpu_rows())
    # then a click on a check box itself
    box = d.cpu_table.model().index(7, 0)
    assert box.data(Qt.CheckStateRole) == Qt.Checked and box.data() == "CPU 7"
    qtbot.mouseClick(d.cpu_table.viewport(), Qt.LeftButton, pos=d.cpu_table.visualRect(box).center())
    assert box.data(Qt.CheckStateRole) == Qt.Unchecked
    s = d.settings()
    assert s.cores == "custom" and s.custom_cpus == (2, 4, 5, 6)
    assert d.placement_label.text() == "4 threads on CPUs 2,4-6, pinned"
    qtbot.mouseClick(apply_button(d), Qt.LeftButton)
    assert seen == [s]


def test_space_on_a_cpu_row_ticks_it(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    d.tabs.setCurrentIndex(1)
    d.show()
    qtbot.waitExposed(d)
    d.cpu_table.setFocus()
    d.cpu_table.setCurrentIndex(d.cpu_table.model().index(1, 1))
    qtbot.keyClick(d.cpu_table, Qt.Key_Space)
    assert d.settings().cores == "custom" and d.settings().custom_cpus == (1, 4, 5, 6, 7)
    qtbot.keyClick(d.cpu_table, Qt.Key_Space)
    assert d.settings().custom_cpus == (4, 5, 6, 7)


def test_an_empty_custom_selection_shows_the_error_and_emits_nothing(qtbot, rk, library):
    d = make(qtbot, Settings(cores="custom", custom_cpus=(5,)), rk)
    seen = []
    d.settingsApplied.connect(seen.append)
    assert d.error_label.isHidden()
    tick(d, 5, False)
    assert not d.error_label.isHidden() and "tick at least one CPU" in d.error_label.text()
    with pytest.raises(SettingsError):
        d.settings()
    qtbot.mouseClick(apply_button(d), Qt.LeftButton)
    qtbot.mouseClick(d.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert seen == [] and d.result() == 0
    assert "custom_cpus" in d.error_label.text()
    tick(d, 0, True)
    assert d.error_label.isHidden()
    qtbot.mouseClick(apply_button(d), Qt.LeftButton)
    assert len(seen) == 1 and seen[0].custom_cpus == (0,)


def test_cpus_this_machine_lacks_are_an_error_not_a_crash(qtbot, rk, library):
    d = make(qtbot, Settings(cores="custom", custom_cpus=(4, 9)), rk)
    assert "CPU 9 is not available here" in d.error_label.text()
    with pytest.raises(SettingsError, match="CPU 9"):
        d.settings()
    tick(d, 5, True)  # any change of the selection keeps only CPUs that exist
    assert d.settings().custom_cpus == (4, 5) and d.error_label.isHidden()


def test_an_invalid_value_elsewhere_is_shown_too(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    d.tabs.setCurrentIndex(3)
    d.font_spin.setValue(3)  # 0 (the system's) or 6 to 72
    assert "font_size" in d.error_label.text() and d.error_label.isVisibleTo(d)
    with qtbot.assertNotEmitted(d.settingsApplied):
        d.apply()
    d.font_spin.setValue(0)
    assert d.error_label.isHidden()


def test_apply_and_ok_emit_the_settings(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    d.show()
    d.threads_spin.setValue(2)
    d.context_spin.setValue(2048)
    d.theme_combo.setCurrentIndex(d.theme_combo.findData("light"))
    expected = Settings(threads=2, context_length=2048, theme="light")
    with qtbot.waitSignal(d.settingsApplied) as blocker:
        qtbot.mouseClick(apply_button(d), Qt.LeftButton)
    assert blocker.args == [expected]
    assert d.isVisible()
    assert d.placement_label.text() == "2 threads on CPUs 4-5, pinned"
    with qtbot.waitSignal(d.settingsApplied) as blocker:
        qtbot.mouseClick(d.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert blocker.args == [expected] and not d.isVisible() and d.result() == 1


def test_generation_values_per_mode(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    values = {
        "chat": dict(temperature=0.9, top_k=10, top_p=0.8, min_p=0.1, repeat_penalty=1.2, seed=5, max_new_tokens=64),
        "email": dict(temperature=0.2, top_k=0, top_p=0.5, min_p=0.0, repeat_penalty=1.0, seed=-1,
                      max_new_tokens=700),
        "reply": dict(temperature=1.5, top_k=3, top_p=1.0, min_p=0.3, repeat_penalty=2.0, seed=123,
                      max_new_tokens=30),
        "summarize": dict(temperature=0.0, top_k=1, top_p=0.9, min_p=0.05, repeat_penalty=1.15, seed=7,
                          max_new_tokens=333),
    }
    for mode in MODES:
        d.mode_combo.setCurrentIndex(d.mode_combo.findData(mode))
        for key, value in values[mode].items():
            d.gen_widgets[key].setValue(value)
    s = d.settings()
    for mode in MODES:
        assert s.mode(mode) == ModeSampling(**values[mode]), mode
    # switching modes shows each mode's own values
    d.mode_combo.setCurrentIndex(d.mode_combo.findData("email"))
    assert d.gen_widgets["max_new_tokens"].value() == 700 and d.gen_widgets["seed"].text() == "Random (-1)"
    d.mode_combo.setCurrentIndex(d.mode_combo.findData("reply"))
    assert d.gen_widgets["temperature"].value() == pytest.approx(1.5)
    # and they survive a new dialog
    d2 = make(qtbot, s, rk)
    assert d2.settings() == s
    d2.mode_combo.setCurrentIndex(d2.mode_combo.findData("chat"))
    d2.mode_reset.click()
    assert d2.settings().mode("chat") == Settings().mode("chat")
    assert d2.settings().mode("reply") == s.mode("reply")


def test_every_control_has_an_accessible_name_and_a_touch_size(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    d.resize(800, 480)
    d.show()
    qtbot.waitExposed(d)
    kinds = (QAbstractButton, QAbstractSpinBox, QComboBox, QTableView)
    # the controls the dialog made (not Qt's own parts: a tab bar's scroll arrows, a table's corner button)
    controls = [w for w in d.findChildren(QAbstractButton) + d.findChildren(QAbstractSpinBox)
                + d.findChildren(QComboBox) + d.findChildren(QTableView)
                if isinstance(w, kinds) and not isinstance(w.parent(), QTabBar)
                and type(w).__name__ != "QTableCornerButton" and not w.objectName().startswith("qt_")]
    assert len(controls) > 30
    cpus = d.cpu_table.model()  # each CPU's row, a tap target with its tick, is named too
    assert all(cpus.index(r, 0).data(Qt.AccessibleTextRole) for r in range(cpus.rowCount()))
    assert d.cpu_table.rowHeight(0) >= TOUCH_HEIGHT
    unnamed = [(type(w).__name__, getattr(w, "text", lambda: "")()) for w in controls if not w.accessibleName()]
    assert unnamed == []
    for w in controls:
        if isinstance(w, (QAbstractButton, QAbstractSpinBox, QComboBox)):
            assert w.minimumHeight() >= TOUCH_HEIGHT or w.height() >= TOUCH_HEIGHT, w.accessibleName()
    # usable at 800x480: the dialog fits, and the buttons are on screen
    assert d.width() <= 800 and d.height() <= 480
    ok = d.buttons.button(QDialogButtonBox.Ok)
    assert d.rect().contains(ok.geometry().translated(d.buttons.pos()))
    assert d.tabs.tabBar().height() >= TOUCH_HEIGHT


# ---- the model library -----------------------------------------------------------------------------------------


@pytest.mark.model
def test_model_table_lists_the_default_model_with_its_ram_at_the_context(qtbot, rk, library):
    path = model_or_skip("SmolLM2-135M-Instruct")
    d = make(qtbot, Settings(context_length=1024), rk)
    rows = {r["name"]: r for r in d.model_rows()}
    row = rows["SmolLM2-135M-Instruct"]
    assert Path(row["path"]) == path and row["error"] is None and row["current"]
    assert row["architecture"] == "llama" and row["quantization"] == "Q4_1"
    assert 130e6 < row["parameters"] < 140e6 and row["file_size"] == path.stat().st_size
    info = catalog.describe(path)
    assert row["ram_bytes"] == info.ram_bytes(1024, "mixed")
    small = row["ram_bytes"]
    d.tabs.setCurrentIndex(1)
    d.context_spin.setValue(2048)
    row = {r["name"]: r for r in d.model_rows()}["SmolLM2-135M-Instruct"]
    assert row["ram_bytes"] == small + 1024 * info.kv_bytes_per_token > small
    i = [r["name"] for r in d.model_rows()].index("SmolLM2-135M-Instruct")
    assert d.model_table.model().headerData(5, Qt.Horizontal) == "RAM at 2048 tokens"
    assert cell(d.model_table, i, 5).endswith("MiB")
    mixed = row["ram_bytes"]
    d.policy_combo.setCurrentIndex(d.policy_combo.findData("int4"))
    row = {r["name"]: r for r in d.model_rows()}["SmolLM2-135M-Instruct"]
    assert row["ram_bytes"] == info.ram_bytes(2048, "int4") < mixed


def test_a_corrupt_gguf_shows_the_loaders_message(qtbot, rk, library, tiny, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(tiny.read_bytes()[:-100])
    with pytest.raises(catalog.GGUFError) as loader:
        catalog.describe(bad)
    d = make(qtbot, Settings(), rk)
    assert d.open_model_file(bad) is None
    assert str(loader.value) in d.opened_label.text() and "broken.gguf" in d.opened_label.text()
    assert not d.opened_use.isEnabled() and not d.opened_import.isEnabled()
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + bytes(range(256)) * 3)
    assert d.open_model_file(garbage) is None and "garbage.gguf cannot be used" in d.opened_label.text()
    assert d.open_model_file(tmp_path / "missing.gguf") is None and "missing.gguf" in d.opened_label.text()
    assert d.settings() == Settings()  # nothing changed, nothing broke


def test_a_valid_gguf_can_be_used_or_imported(qtbot, rk, library, tiny):
    d = make(qtbot, Settings(), rk)
    info = d.open_model_file(tiny)
    assert info is not None and info.architecture == "llama"
    assert "tiny-llama.gguf" in d.opened_label.text() and "llama" in d.opened_label.text()
    assert d.opened_use.isEnabled() and d.opened_import.isEnabled()
    qtbot.mouseClick(d.opened_use, Qt.LeftButton)
    assert d.settings().model == str(tiny)

    job = d.import_opened_file()
    qtbot.waitUntil(lambda: job.isFinished() and d._job is None, timeout=30_000)
    stored = library / "tiny-llama.gguf"
    assert (job.path, job.error) == (str(stored), "") and stored.read_bytes() == tiny.read_bytes()
    qtbot.waitUntil(lambda: any(r["name"] == "tiny-llama" for r in d.model_rows()))
    row = next(r for r in d.model_rows() if r["name"] == "tiny-llama")
    assert row["source"] == "library" and row["architecture"] == "llama" and row["error"] is None
    assert row["ram_bytes"] == info.ram_bytes(4096, "mixed")

    # use it from the table, then remove it (after the inline confirmation)
    i = [r["name"] for r in d.model_rows()].index("tiny-llama")
    d.model_table.selectRow(i)
    assert d.remove_button.isEnabled()
    qtbot.mouseClick(d.use_button, Qt.LeftButton)
    assert d.settings().model == "tiny-llama"
    qtbot.mouseClick(d.remove_button, Qt.LeftButton)
    assert not d.confirm_panel.isHidden() and stored.exists()
    qtbot.mouseClick(d.confirm_no, Qt.LeftButton)
    assert stored.exists()
    qtbot.mouseClick(d.remove_button, Qt.LeftButton)
    qtbot.mouseClick(d.confirm_yes, Qt.LeftButton)
    assert not stored.exists() and all(r["name"] != "tiny-llama" for r in d.model_rows())
    assert d.settings().model == ""  # the model in use went away: back to the default


def test_a_damaged_library_file_is_listed_with_its_error(qtbot, rk, library, tiny):
    library.mkdir(parents=True)
    (library / "cut.gguf").write_bytes(tiny.read_bytes()[:-100])
    d = make(qtbot, Settings(), rk)
    row = next(r for r in d.model_rows() if r["name"] == "cut")
    with pytest.raises(catalog.GGUFError) as loader:
        catalog.describe(library / "cut.gguf")
    assert row["error"] == str(loader.value) and row["ram_bytes"] is None
    i = [r["name"] for r in d.model_rows()].index("cut")
    assert cell(d.model_table, i, 1) == str(loader.value)
    d.model_table.selectRow(i)
    assert not d.use_button.isEnabled() and d.remove_button.isEnabled()


@pytest.mark.model
def test_packaged_models_are_not_removable_here(qtbot, rk, library):
    model_or_skip("SmolLM2-135M-Instruct")
    d = make(qtbot, Settings(), rk)
    i = [r["name"] for r in d.model_rows()].index("SmolLM2-135M-Instruct")
    d.model_table.selectRow(i)
    assert d.use_button.isEnabled() and not d.remove_button.isEnabled()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Gated(_Quiet):
    """Sends the first 2 MiB, then holds the rest back until `release` is set: a download still running when the
    test cancels it, however fast or slow the machine."""

    release: threading.Event

    def copyfile(self, source, outputfile):
        try:
            outputfile.write(source.read(2 << 20))
            outputfile.flush()
            self.release.wait(60)
            shutil.copyfileobj(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away: that is the cancel


def _serve(root: Path, handler_class):
    def handler(*args, **kwargs):
        return handler_class(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def www(tmp_path, tiny):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(tiny, root / "tiny.gguf")
    servers = []

    def start(handler_class=_Quiet):
        httpd, base = _serve(root, handler_class)
        servers.append(httpd)
        return base

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _known(tiny: Path, base: str) -> catalog.KnownModel:
    return catalog.KnownModel("Tiny", "tiny.gguf", hashlib.sha256(tiny.read_bytes()).hexdigest(),
                              tiny.stat().st_size, "a tiny test model", urls=(f"{base}/tiny.gguf",))


def test_fetch_over_http_shows_progress_and_installs_the_model(qtbot, rk, library, tiny, www):
    known = _known(tiny, www())
    d = make(qtbot, Settings(), rk, model_catalog={"Tiny": known})
    assert d.fetch_combo.findData("Tiny") >= 0 and d.fetch_button.isEnabled()
    d.fetch_combo.setCurrentIndex(d.fetch_combo.findData("Tiny"))
    qtbot.mouseClick(d.fetch_button, Qt.LeftButton)
    job = d._job
    assert job is not None and d.progress.isVisibleTo(d) and not d.fetch_button.isEnabled()
    qtbot.waitUntil(lambda: job.isFinished() and d._job is None, timeout=60_000)
    assert (job.path, job.error) == (str(library / "tiny.gguf"), "")
    assert d.last_progress == (known.size, known.size, "download")
    assert d.progress.maximum() == known.size and d.progress.value() == known.size
    assert d.progress.isHidden() and "done" in d.model_status.text()
    row = next(r for r in d.model_rows() if Path(r["path"]) == library / "tiny.gguf")
    assert row["source"] == "library" and row["architecture"] == "llama" and row["error"] is None
    assert d.fetch_combo.findData("Tiny") < 0  # installed now, no longer offered
    assert catalog.find("Tiny") == library / "tiny.gguf"


def test_fetch_can_be_cancelled(qtbot, rk, library, tmp_path, www):
    big = tmp_path / "www" / "big.gguf"
    big.write_bytes(bytes(range(256)) * (16 << 12))  # 16 MiB
    gated = type("Gated", (_Gated,), {"release": threading.Event()})
    known = catalog.KnownModel("Big", "big.gguf", "0" * 64, big.stat().st_size, "test",
                               urls=(f"{www(gated)}/big.gguf",))
    d = make(qtbot, Settings(), rk, model_catalog={"Big": known})
    job = d.fetch_model("Big")
    received = []
    job.progressed.connect(lambda progress: received.append(progress[0]))  # (done, total, what)
    try:
        qtbot.waitUntil(lambda: d.last_progress is not None, timeout=30_000)  # the first MiB arrived
        assert 0 < d.progress.value() < d.progress.maximum() == known.size
        qtbot.mouseClick(d.cancel_job_button, Qt.LeftButton)
        assert d.progress.isHidden() and "cancelled" in d.model_status.text() and d.fetch_button.isEnabled()
    finally:
        gated.release.set()  # the rest comes now: the job stops at the next block it reads
    qtbot.waitUntil(job.isFinished, timeout=30_000)
    assert (job.path, job.error) == ("", "cancelled")
    assert max(received) <= 2 << 20  # nothing reported after the cancel: stopped early
    assert not (library / "big.gguf").exists() and not list(library.glob("**/*.partial"))
    assert all(r["name"] != "Big" for r in d.model_rows())


def test_on_this_machine_the_big_preset_ticks_the_recommended_cpus(qtbot, library):
    topo = read_topology()
    d = SettingsDialog(Settings())
    qtbot.addWidget(d)
    assert [r["id"] for r in d.cpu_rows()] == [c.id for c in topo.cpus]
    expected = list(placement.place(Settings(), topo).cpus)
    assert [r["id"] for r in d.cpu_rows() if r["checked"]] == expected
    assert d.settings() == Settings()


# ---- threads, pinning, the model in use, the theme of an open dialog (issue 14) ---------------------------------


def test_more_threads_than_cpus_are_clamped_naming_the_cpu_count(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    d.tabs.setCurrentIndex(1)
    d.threads_spin.setValue(99)
    assert d.error_label.isHidden()
    assert "threads = 99 is more than the 8 CPUs this process may use: using 8" in d.placement_label.text()
    with qtbot.waitSignal(d.settingsApplied) as applied:
        d.apply()
    assert applied.args[0].threads == 99  # kept as asked: a machine with more CPUs runs them all
    d.threads_spin.setValue(8)
    assert "more than" not in d.placement_label.text()


def test_pin_each_thread_cannot_stay_ticked_when_pinning_is_impossible(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    d.tabs.setCurrentIndex(1)
    assert d.strict_check.isChecked() and d.strict_check.isEnabled()
    select_preset = d.preset_combo.setCurrentIndex
    select_preset(d.preset_combo.findData("system"))  # the system places the threads
    assert not d.strict_check.isChecked() and not d.strict_check.isEnabled()
    assert d.pin_note.isVisibleTo(d) and "system" in d.pin_note.text()
    select_preset(d.preset_combo.findData("big"))
    assert d.strict_check.isChecked() and d.strict_check.isEnabled() and d.pin_note.isHidden()
    d.set_settings(Settings(cores="custom", custom_cpus=(0, 1), threads=3))  # more threads than chosen cores
    assert not d.strict_check.isChecked() and not d.strict_check.isEnabled()
    assert "3 threads" in d.pin_note.text() and "2 cores" in d.pin_note.text()
    assert "not pinned" in d.placement_label.text()
    d.threads_spin.setValue(2)
    assert d.strict_check.isChecked() and d.strict_check.isEnabled()
    assert d.settings().strict_pinning


def test_a_selected_model_is_not_called_the_model_in_use(qtbot, rk, library):
    d = make(qtbot, Settings(), rk)
    default = catalog.DEFAULT_MODEL
    assert "In use" in d.current_model_label.text() and default in d.current_model_label.text()
    d.use_model("Gemma-3-270M")
    text = d.current_model_label.text()
    assert "Selected: <b>Gemma-3-270M</b>" in text and f"in use now: <b>{default}</b>" in text
    assert "in use: <b>Gemma" not in text.lower()
    d.set_model_in_use("Gemma-3-270M")  # the window loaded it
    assert d.current_model_label.text().startswith("In use: <b>Gemma-3-270M</b>")
    d.set_model_in_use(None)
    assert "No model is loaded" in d.current_model_label.text()


def test_dark_theme_and_font_apply_fully_to_an_open_dialog(qtbot, rk, library):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication, QWidget

    from wren.gui.theme import apply_theme, dark_palette

    d = make(qtbot, Settings(), rk)
    d.show()
    try:
        for theme, size in (("dark", 16), ("light", 11)):
            apply_theme(theme, size)
            QApplication.processEvents()
            want = dark_palette() if theme == "dark" else QApplication.style().standardPalette()
            for w in [d] + d.findChildren(QWidget):
                assert w.font().pointSize() == size, (type(w).__name__, w.accessibleName())
                roles = (QPalette.Window, QPalette.Base) if "color:" in w.styleSheet() else \
                    (QPalette.Window, QPalette.WindowText, QPalette.Base, QPalette.Text)  # red error text stays red
                for role in roles:
                    group = w.palette().currentColorGroup()
                    assert w.palette().color(group, role) == want.color(group, role), \
                        (type(w).__name__, w.accessibleName(), role)
    finally:
        apply_theme("system", 0)
