"""Wren on the desktop: installing its desktop file, icons and AppStream metainfo into the user's XDG data dir, one
window per user (a second `wren` hands its request to the first and ends), and a size that fits the screen.

The running window listens on a local socket (QLocalServer) named per user; a second `wren` connects with plain
Python sockets, so forwarding needs no display, and sends one line: "raise" or "summarize-clipboard".
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

APP_ID = "io.github.wren_assistant.wren"  # the AppStream component; the desktop file and icon are named "wren"
COMMANDS = ("raise", "summarize-clipboard")


# ---- installing ------------------------------------------------------------------------------------------------


def data_home() -> Path:
    env = os.environ.get("XDG_DATA_HOME")
    return Path(env) if env and os.path.isabs(env) else Path.home() / ".local" / "share"


def _exec_arg(arg: str) -> str:
    """One argument of a desktop file's Exec key: quoted when it holds a reserved character (the spec's rules, then
    the string escaping of the key's value)."""
    if re.fullmatch(r"[A-Za-z0-9/._+,:=@-]+", arg):
        return arg
    quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return quoted.replace("\\", "\\\\").replace("%", "%%")


def wren_command() -> list[str]:
    """How the installed launcher starts this Wren: its `wren` script when there is one, else the interpreter."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "wren" and script.is_file():
        return [str(script.resolve())]
    found = shutil.which("wren")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "wren.engine.cli"]


def install(home: Path | None = None, command: list[str] | None = None) -> list[Path]:
    """Install the desktop file (its Exec lines pointing at this Wren), the icons and the metainfo under the XDG data
    dir; returns the files written. Refreshes the desktop and icon caches when their tools are present."""
    home = home or data_home()
    source = resources.files("wren.resources")
    exec_line = " ".join(_exec_arg(a) for a in (command or wren_command()))
    written = []

    def put(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)

    desktop = source.joinpath("wren.desktop").read_text(encoding="utf-8")
    desktop = re.sub(r"^Exec=wren\b", lambda m: "Exec=" + exec_line, desktop, flags=re.M)
    put(home / "applications" / "wren.desktop", desktop.encode("utf-8"))
    put(home / "metainfo" / f"{APP_ID}.metainfo.xml", source.joinpath(f"{APP_ID}.metainfo.xml").read_bytes())
    icons = source.joinpath("icons", "hicolor")
    for size_dir in sorted(icons.iterdir(), key=lambda p: p.name):
        for icon in size_dir.joinpath("apps").iterdir():
            put(home / "icons" / "hicolor" / size_dir.name / "apps" / icon.name, icon.read_bytes())
    for tool, target in (("update-desktop-database", home / "applications"),
                         ("gtk-update-icon-cache", home / "icons" / "hicolor")):
        if shutil.which(tool):
            args = [tool, "-q", str(target)] if tool == "update-desktop-database" else [tool, "-q", "-t", str(target)]
            subprocess.run(args, capture_output=True)
    return written


# ---- one window per user ---------------------------------------------------------------------------------------


def server_name() -> str:
    """The local socket's path, one per user and data dir (WREN_DATA_DIR: another store of conversations, another
    window), in the user's runtime dir, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isdir(runtime) else Path(tempfile.gettempdir())
    data = os.environ.get("WREN_DATA_DIR")
    tag = "-" + hashlib.sha256(os.path.abspath(data).encode()).hexdigest()[:12] if data else ""
    return str(base / f"wren-{os.getuid()}{tag}.socket")


def forward(command: str, name: str | None = None) -> bool:
    """Hand a command to the running window; False when none is running."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(name or server_name())
            s.sendall(command.encode("ascii") + b"\n")
            return s.recv(16).startswith(b"ok")
        except OSError:
            return False


class InstanceServer(QObject):
    """Listens for the commands of later `wren` starts and hands each to `handle(command)`; OSError when it cannot."""

    def __init__(self, handle, name: str | None = None, parent=None):
        super().__init__(parent)
        self.handle = handle
        self.server = QLocalServer(self)
        self.name = name or server_name()
        self.connections = []  # kept until the next connection: a socket is never freed inside its own signal
        QLocalServer.removeServer(self.name)  # a socket file left by a window that crashed
        if not self.server.listen(self.name):
            raise OSError(f"cannot listen on {self.name}: {self.server.errorString()}")
        self.server.newConnection.connect(self._accept)

    def _accept(self) -> None:
        self.connections = [c for c in self.connections if c.state() != QLocalSocket.UnconnectedState]
        while (conn := self.server.nextPendingConnection()) is not None:
            self.connections.append(conn)
            conn.readyRead.connect(self._ready)
            self._read(conn)

    def _ready(self) -> None:
        self._read(self.sender())

    def _read(self, conn) -> None:
        while conn.canReadLine():
            command = bytes(conn.readLine()).decode("ascii", "replace").strip()
            conn.write(b"ok\n" if command in COMMANDS else b"unknown\n")
            conn.flush()
            if command in COMMANDS:
                self.handle(command)

    def close(self) -> None:
        self.server.close()


# ---- the window ------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident memory (the status bar shows it)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


TITLE_BAR = 32  # what a window manager's frame may take above the window
BORDER = 4  # and on each other side


def fitted(width: int, height: int, available) -> tuple[int, int, int, int]:
    """(x, y, width, height): the preferred size shrunk so that the window and its frame fit the available screen
    area (a QRect), the frame's position centering it there."""
    w = min(width, available.width() - 2 * BORDER)
    h = min(height, available.height() - TITLE_BAR - BORDER)
    x = available.x() + (available.width() - w - 2 * BORDER) // 2
    y = available.y() + (available.height() - h - TITLE_BAR - BORDER) // 2
    return x, y, w, h


def fit_to_screen(widget, width: int, height: int) -> None:
    """Size a top-level widget to (width, height), or less where its screen's available area is smaller."""
    screen = widget.screen()
    if screen is None:
        widget.resize(width, height)
        return
    x, y, w, h = fitted(width, height, screen.availableGeometry())
    widget.resize(max(w, widget.minimumWidth()), max(h, widget.minimumHeight()))
    widget.move(x, y)
