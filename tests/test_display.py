"""The window on real display servers: X11 (Xvfb, the xcb platform) and Wayland (weston's headless backend), started
the way a user starts Wren (`wren` with DISPLAY or WAYLAND_DISPLAY set), and a clear message, not Qt's abort, when
the display is unusable. The offscreen platform the other GUI tests use hides missing system libraries."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from wren.gui import display

pytestmark = pytest.mark.gui

IN_CI = bool(os.environ.get("CI"))

# runs `wren` (no arguments: the window) and reports once the main window is exposed on the display server
PROBE = textwrap.dedent("""
    import json, os, sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from wren.gui import main_window

    shown = main_window.MainWindow.show
    report = {}

    def show(self):
        shown(self)
        timer = QTimer(self)
        def check():
            handle = self.windowHandle()
            if "platform" not in report:
                if handle is None or not handle.isExposed():
                    return
                image = self.grab().toImage()
                colours = {image.pixel(x, y) for x in range(0, image.width(), 23) for y in range(0, image.height(), 23)}
                report.update(platform=QApplication.platformName(), desktop_file=QApplication.desktopFileName(),
                              title=self.windowTitle(), colours=len(colours))
                if not os.environ.get("PROBE_CHAT"):
                    return finish()
            if "asked" not in report:  # once the default model is loaded, a chat turn as a user sends it
                if self.banner.isVisible() and self.banner.text():
                    report["error"] = self.banner.text()
                    return finish()
                if self.engine is None or self.loading:
                    return
                self.chat.input.setPlainText("Say hello in one short sentence.")
                self.chat.send.click()
                report["asked"] = True
                return
            if not self.busy:
                answers = [m["content"] for m in self.chat.messages if m["role"] == "assistant"]
                report["answer"] = answers[-1] if answers else ""
                report["error"] = self.banner.text() if self.banner.isVisible() else ""
                finish()
        def finish():
            timer.stop()
            print(json.dumps(report), flush=True)
            self.close()  # the last window: the app quits and shuts the engine down
        timer.timeout.connect(check)
        timer.start(20)

    main_window.MainWindow.show = show
    from wren.engine.cli import main
    sys.exit(main([]))
""")



def tool_or_skip(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} missing: scripts/test.sh installs it")
        pytest.skip(f"{name} not installed")
    return path


def session_env(**display_vars) -> dict:
    """This process's environment with only the given display variables (no QT_QPA_PLATFORM: Wren chooses)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    return dict(env, **display_vars)


def run_probe(env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_debian_package_names_follow_the_policy():
    assert display.debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert display.debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert display.debian_package("libdbus-1.so.3") == "libdbus-1-3"
    assert display.debian_package("libEGL.so.1") == "libegl1"


def test_missing_libraries_are_named_with_their_packages(monkeypatch):
    monkeypatch.setattr(display, "missing_libraries", lambda p: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    choice = display.choose({"DISPLAY": ":0"})
    assert choice.platform is None
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in choice.problem


def test_the_users_platform_choice_is_kept():
    assert display.choose({"QT_QPA_PLATFORM": "offscreen"}).platform == "offscreen"
    assert display.choose({}).platform is None


def test_the_platform_plugins_load_on_this_system():
    """What Qt's xcb and wayland plugins link against is installed (scripts/setup.sh)."""
    for platform in ("xcb", "wayland"):
        missing = display.missing_libraries(platform)
        if missing and not IN_CI:
            pytest.skip(f"{platform}: missing {missing}; scripts/setup.sh installs them when run as root")
        assert missing == [], platform


def test_a_display_that_does_not_answer_is_a_clear_message():
    env = session_env(DISPLAY=":98765")
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "The window cannot start: the X display ':98765' does not answer" in proc.stderr
    assert "wren chat" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.model  # the window answers a chat turn with the default model
def test_the_window_opens_on_an_x_display_and_answers(tmp_path):
    """As CI runs it, set up only by scripts/test.sh: the default model answers a turn; the window closes cleanly."""
    xvfb = tool_or_skip("Xvfb")
    if display.missing_libraries("xcb"):
        pytest.skip("the xcb plugin's libraries are missing")
    read, write = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as ready:  # Xvfb writes its display number once it accepts clients
            number = ready.readline().strip()
        assert number, "Xvfb did not start"
        report = run_probe(session_env(DISPLAY=f":{number}", PROBE_CHAT="1"))
    finally:
        server.terminate()
        server.wait()
    assert report["platform"] == "xcb" and report["desktop_file"] == "wren" and "Wren" in report["title"]
    assert report["colours"] > 3  # drawn, not a blank surface
    assert not report["error"] and report["answer"].strip()  # the default model answered a chat turn


def test_the_window_opens_on_a_wayland_compositor(tmp_path):
    weston = tool_or_skip("weston")
    if display.missing_libraries("wayland"):
        pytest.skip("the wayland plugin's libraries are missing")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env = session_env(XDG_RUNTIME_DIR=str(runtime), WAYLAND_DISPLAY="wren-test")
    server = subprocess.Popen([weston, "--backend=headless-backend.so", "--socket=wren-test", "--idle-time=0",
                               "--width=1280", "--height=800"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # bounded wait for the compositor to accept clients (a hang guard)
        while not display._connects("wayland", env):
            assert server.poll() is None and time.monotonic() < deadline, "weston did not start"
            time.sleep(0.05)
        report = run_probe(env)
    finally:
        server.terminate()
        server.wait()
    assert report["platform"] == "wayland" and report["desktop_file"] == "wren" and "Wren" in report["title"]
    assert report["colours"] > 3
