"""Wren on the desktop: the desktop file and AppStream metainfo pass their validators, `wren --install-desktop` puts
them and the icons in XDG_DATA_HOME, a second start is handed to the running window, and the window and Settings open
within a small screen with no control's text cut off at a large font."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QFont, QScreen
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QWidget

from wren.engine import cli
from wren.engine.settings import Settings
from wren.engine.store import Store
from wren.gui import desktop
from wren.gui.status import ElidedLabel

pytestmark = pytest.mark.gui

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
METAINFO = RESOURCES / f"{desktop.APP_ID}.metainfo.xml"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def validator(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install appstream desktop-file-utils; scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def desktop_file_validate(path: Path) -> None:
    proc = subprocess.run([validator("desktop-file-validate"), str(path)], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_desktop_file_validates_without_a_remark():
    desktop_file_validate(RESOURCES / "wren.desktop")


def test_metainfo_validates_without_a_remark():
    proc = subprocess.run([validator("appstreamcli"), "validate", "--no-net", "--pedantic", str(METAINFO)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert proc.stdout.strip() == "✔ Validation was successful.", proc.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_install_desktop_writes_into_xdg_data_home(tmp_path, monkeypatch, capsys):
    home = tmp_path / "data home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "bin with space" / "wren")])
    assert cli.main(["--install-desktop"]) == 0
    written = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert all(p.is_file() and home in p.parents for p in written)
    launcher = home / "applications" / "wren.desktop"
    text = launcher.read_text()
    assert "Exec=wren" not in text and "Exec=" in text and "--summarize-clipboard" in text
    desktop_file_validate(launcher)
    assert (home / "metainfo" / METAINFO.name).read_bytes() == METAINFO.read_bytes()
    assert (home / "icons/hicolor/scalable/apps/wren.svg").is_file()
    for size in ICON_SIZES:
        assert png_size(home / f"icons/hicolor/{size}x{size}/apps/wren.png") == (size, size)


def test_exec_arguments_are_quoted_as_the_desktop_spec_asks():
    assert desktop._exec_arg("/usr/bin/wren") == "/usr/bin/wren"
    assert desktop._exec_arg("/home/a b/wren") == '"/home/a b/wren"'
    assert desktop._exec_arg('/x/$"100%') == '"/x/\\\\$\\\\"100%%"'


# ---- one window per user ---------------------------------------------------------------------------------------


@pytest.fixture
def runtime_dir(tmp_path_factory, monkeypatch):
    d = Path(tmp_path_factory.mktemp("run"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    return d


class FakeWindow(QWidget):
    loading = False

    def __init__(self):
        super().__init__()
        self.summarized = 0

    def summarize_clipboard(self):
        self.summarized += 1


def test_a_second_start_is_handed_to_the_running_window(qtbot, runtime_dir):
    from wren.gui.app import serve_later_starts

    assert not desktop.forward("raise")  # nobody listens yet
    window = FakeWindow()
    qtbot.addWidget(window)
    server = serve_later_starts(window)
    assert server is not None and server.name.startswith(str(runtime_dir))
    results = []

    def second_start(*args):  # what a second `wren` does, in its own process
        env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime_dir))
        code = "import sys; from wren.engine.cli import main; sys.exit(main(sys.argv[1:]))"
        results.append(subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True))

    t = threading.Thread(target=second_start)
    t.start()
    qtbot.waitUntil(lambda: bool(results), timeout=30000)
    t.join()
    assert results[0].returncode == 0 and "already open" in results[0].stderr
    assert window.isVisible() and window.summarized == 0
    t = threading.Thread(target=second_start, args=("--summarize-clipboard",))
    t.start()
    qtbot.waitUntil(lambda: window.summarized == 1, timeout=30000)
    t.join()
    assert results[1].returncode == 0
    server.close()
    assert not desktop.forward("raise")


def test_each_data_dir_has_its_own_window(runtime_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "a"))
    a = desktop.server_name()
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "b"))
    assert desktop.server_name() != a and desktop.server_name().startswith(str(runtime_dir))
    monkeypatch.delenv("WREN_DATA_DIR")
    assert desktop.server_name() == str(runtime_dir / f"wren-{os.getuid()}.socket")


def test_an_unknown_command_is_refused(qtbot, runtime_dir):
    handled = []
    server = desktop.InstanceServer(handled.append)
    results = []
    t = threading.Thread(target=lambda: results.append(desktop.forward("format-disk")))
    t.start()
    qtbot.waitUntil(lambda: bool(results), timeout=30000)
    t.join()
    assert results == [False] and handled == []
    server.close()


# ---- small screens and large fonts -----------------------------------------------------------------------------


def test_the_size_fits_the_available_area():
    frame = 2 * desktop.BORDER, desktop.TITLE_BAR + desktop.BORDER
    assert desktop.fitted(1100, 720, QRect(0, 0, 1920, 1080)) == ((1920 - 1100 - frame[0]) // 2,
                                                                   (1080 - 720 - frame[1]) // 2, 1100, 720)
    x, y, w, h = desktop.fitted(1100, 720, QRect(0, 24, 800, 456))
    assert (x, y, w + frame[0], h + frame[1]) == (0, 24, 800, 456)


def test_a_long_status_ends_in_an_ellipsis_and_says_the_rest_in_its_tooltip(qtbot):
    label = ElidedLabel("TTFT 7020 ms · prefill 30 tok/s · decode 20 tok/s")
    qtbot.addWidget(label)
    label.resize(label.minimumSizeHint().width(), label.sizeHint().height())
    label.show()
    qtbot.waitExposed(label)
    assert label.shown().endswith("…") and label.toolTip() == label.text()
    label.resize(label.sizeHint())
    assert label.shown() == label.text() and label.toolTip() == ""


def clipped_controls(top: QWidget) -> list[str]:
    """Visible buttons, check boxes and one-line labels whose text needs more width than they have (labels that end
    their text in "…", with the whole of it as tooltip, excepted)."""
    out = []
    for w in top.findChildren(QWidget):
        if not w.isVisibleTo(top) or not isinstance(w, (QAbstractButton, QLabel)) or isinstance(w, ElidedLabel):
            continue
        if isinstance(w, QLabel) and (w.wordWrap() or not w.text() or "<" in w.text()):
            continue
        if w.sizeHint().width() > w.width():
            text = w.text() if hasattr(w, "text") else ""
            out.append(f"{type(w).__name__} {text!r}: needs {w.sizeHint().width()}, has {w.width()}")
    return out


@pytest.fixture(params=[(800, 480), (1280, 800)], ids=["800x480", "1280x800"])
def screen(request, monkeypatch, qapp):
    """A screen of this size (its whole area available) and a 16 pt font."""
    monkeypatch.setattr(QScreen, "availableGeometry", lambda self: QRect(0, 0, *request.param))
    font = QFont(qapp.font())
    qapp.setFont(QFont(font.family(), 16))
    yield request.param
    qapp.setFont(font)


def test_the_window_opens_within_the_screen_with_nothing_cut_off(qtbot, tmp_path, screen):
    from wren.gui.main_window import MainWindow

    store = Store(tmp_path / "wren.sqlite3")
    w = MainWindow(Settings(), store)
    qtbot.addWidget(w)
    width, height = screen
    assert w.width() <= width - 2 * desktop.BORDER and w.height() <= height - desktop.TITLE_BAR
    w.show()
    qtbot.waitExposed(w)
    for mode in w.views:
        w.show_mode(mode)
        QApplication.processEvents()
        assert w.frameGeometry().right() < width and w.frameGeometry().bottom() < height
        assert clipped_controls(w) == [], f"{mode}: {clipped_controls(w)}"
    w.close()
    store.close()


def test_settings_open_within_the_screen_with_nothing_cut_off(qtbot, screen):
    from wren.gui.settings.dialog import SettingsDialog

    d = SettingsDialog(Settings())
    qtbot.addWidget(d)
    width, height = screen
    assert d.width() <= width - 2 * desktop.BORDER and d.height() <= height - desktop.TITLE_BAR
    d.show()
    qtbot.waitExposed(d)
    for i in range(d.tabs.count()):
        d.tabs.setCurrentIndex(i)
        QApplication.processEvents()
        assert d.frameGeometry().right() < width and d.frameGeometry().bottom() < height
        assert clipped_controls(d) == [], d.tabs.tabText(i)


# ---- first run -------------------------------------------------------------------------------------------------


class StubEngine:
    model_name = "SmolLM2-135M-Instruct"
    cpus = (0,)
    threads = 1
    pinned = False
    threads_note = ""


def test_an_empty_chat_says_what_each_mode_does_and_which_model_is_in_use(qtbot, tmp_path, monkeypatch):
    from wren.engine.assistant import MODE_LABELS
    from wren.engine.library import catalog
    from wren.gui.main_window import MainWindow

    store = Store(tmp_path / "wren.sqlite3")
    w = MainWindow(Settings(), store)
    qtbot.addWidget(w)
    text = w.chat.transcript.toPlainText()
    assert all(label in text for label in MODE_LABELS.values()) and "No model is loaded" in text
    assert "Ctrl+Enter sends" in text

    monkeypatch.setattr(catalog, "available_memory", lambda: 16 << 30)
    w.engine = StubEngine()
    w._show_engine()
    text = w.chat.transcript.toPlainText()
    assert "The model in use is SmolLM2-135M-Instruct" in text
    assert "Qwen2.5-Coder-1.5B-Instruct gives much better answers" in text  # memory allows the capable model
    monkeypatch.setattr(catalog, "available_memory", lambda: 300 << 20)
    w._show_engine()
    assert "much better" not in w.chat.transcript.toPlainText()

    w.chat.set_messages([{"id": 1, "role": "user", "content": "hello there", "complete": True}])
    QApplication.processEvents()
    assert "Wren runs on this computer" not in w.chat.transcript.toPlainText()
    w.chat.set_messages([])
    qtbot.waitUntil(lambda: "Wren runs on this computer" in w.chat.transcript.toPlainText())
    w.engine = None
    store.close()


def test_enter_sends_when_the_setting_says_so(qtbot):
    from PySide6.QtCore import Qt

    from wren.gui.empty_state import EnterSends
    from wren.gui.chat_view import ChatView

    chat = ChatView()
    qtbot.addWidget(chat)
    enabled = [False]
    EnterSends(chat, lambda: enabled[0])
    sent = []
    chat.sendRequested.connect(lambda text, edited: sent.append(text))
    qtbot.keyClicks(chat.input, "one")
    qtbot.keyClick(chat.input, Qt.Key_Return)  # off: a new line
    assert sent == [] and chat.input.toPlainText() == "one\n"
    enabled[0] = True
    qtbot.keyClicks(chat.input, "two")
    qtbot.keyClick(chat.input, Qt.Key_Return, Qt.ShiftModifier)  # Shift+Enter: a new line
    qtbot.keyClicks(chat.input, "three")
    qtbot.keyClick(chat.input, Qt.Key_Return)
    assert sent == ["one\ntwo\nthree"]  # the window clears the input once it accepts the message


def test_the_enter_setting_round_trips_through_the_dialog_and_the_file(qtbot, tmp_path):
    from wren.engine import settings as wsettings
    from wren.gui.settings.dialog import SettingsDialog

    d = SettingsDialog(Settings(enter_sends=True))
    qtbot.addWidget(d)
    assert d.enter_check.isChecked() and d.settings().enter_sends
    d.enter_check.setChecked(False)
    assert not d.settings().enter_sends
    path = tmp_path / "settings.toml"
    wsettings.save(Settings(enter_sends=True), path)
    assert wsettings.load(path).settings.enter_sends
