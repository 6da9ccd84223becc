"""Which Qt platform the window can use here, decided before Qt starts.

Qt aborts the whole process (exit 134, `Could not load the Qt platform plugin "xcb"`) when a platform plugin's system
libraries are missing or the display cannot be opened, so Wren looks first: it asks the dynamic linker what each
plugin lacks (`ldd`), tries to connect to the X server or the Wayland compositor, and explains what to install when
neither works. Nothing here imports Qt.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Qt's platform plugin and what it loads itself at run time (dlopen, so ldd does not list it)
PLUGINS = {"wayland": ("libqwayland.so", ()), "xcb": ("libqxcb.so", ("libxcb-cursor.so.0",))}


@dataclass(frozen=True)
class Choice:
    platform: str | None  # the QT_QPA_PLATFORM to use, None when the window cannot start
    problem: str = ""     # why not, and what to install, for the user


def debian_package(soname: str) -> str:
    """The Debian package that ships a library, by the policy's naming rule: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0, libdbus-1.so.3 -> libdbus-1-3."""
    m = re.fullmatch(r"(.+?)\.so\.(\d+).*", soname)
    if not m:
        return soname
    name, major = m.group(1).lower(), m.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def plugin_path(platform: str) -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / PLUGINS[platform][0]
    return path if path.is_file() else None


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def missing_libraries(platform: str) -> list[str]:
    """The shared libraries the platform plugin needs and this system lacks (empty when it can load)."""
    path = plugin_path(platform)
    if path is None:
        return [PLUGINS[platform][0]]
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30).stdout
        missing = sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
    except (OSError, subprocess.SubprocessError):  # no ldd (not glibc): ask the loader itself, which names one
        try:
            ctypes.CDLL(str(path))
            missing = []
        except OSError as e:
            missing = re.findall(r"(lib[\w.+-]+\.so[\w.]*)", str(e))[:1] or [str(e)]
    return missing + [lib for lib in PLUGINS[platform][1] if not _loads(lib)]


def _connects(platform: str, env: dict) -> bool:
    """Whether the display server answers (Qt aborts when it does not)."""
    try:
        if platform == "xcb":
            xcb = ctypes.CDLL("libxcb.so.1")
            xcb.xcb_connect.restype = ctypes.c_void_p
            xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
            for f in ("xcb_connection_has_error", "xcb_disconnect"):
                getattr(xcb, f).argtypes = [ctypes.c_void_p]
            conn = xcb.xcb_connect(env.get("DISPLAY", "").encode(), None)
            ok = bool(conn) and xcb.xcb_connection_has_error(conn) == 0
            if conn:
                xcb.xcb_disconnect(conn)
            return ok
        wl = ctypes.CDLL("libwayland-client.so.0")
        wl.wl_display_connect.restype = ctypes.c_void_p
        wl.wl_display_connect.argtypes = [ctypes.c_char_p]
        wl.wl_display_disconnect.argtypes = [ctypes.c_void_p]
        name = env["WAYLAND_DISPLAY"]
        if not name.startswith("/"):  # relative to the runtime dir; an absolute path keeps libwayland quiet
            if not env.get("XDG_RUNTIME_DIR"):
                return False
            name = os.path.join(env["XDG_RUNTIME_DIR"], name)
        display = wl.wl_display_connect(name.encode())
        if display:
            wl.wl_display_disconnect(display)
        return bool(display)
    except (OSError, AttributeError):
        return False


def choose(env: dict | None = None) -> Choice:
    """The platform for the window: the user's QT_QPA_PLATFORM when set; else Wayland when a compositor answers, else
    X11; else None with the reason (missing packages named for apt)."""
    env = os.environ if env is None else env
    asked = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0]
    if asked and asked not in PLUGINS:  # offscreen, vnc, eglfs...: Qt's own business
        return Choice(asked)
    candidates = [asked] if asked else [p for p, var in (("wayland", "WAYLAND_DISPLAY"), ("xcb", "DISPLAY"))
                                        if env.get(var)]
    if not candidates:
        return Choice(None, "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set)")
    problems = []
    for platform in candidates:
        missing = missing_libraries(platform)
        if missing:
            packages = " ".join(sorted({debian_package(m) for m in missing}))
            problems.append(f"Qt's {platform} platform needs {', '.join(missing)} "
                            f"(on Debian/Ubuntu: sudo apt-get install {packages})")
        elif not _connects(platform, env):
            where = env.get("DISPLAY") if platform == "xcb" else env.get("WAYLAND_DISPLAY")
            problems.append(f"the {'X' if platform == 'xcb' else 'Wayland'} display {where!r} does not answer")
        else:
            return Choice(platform)
    return Choice(None, "; ".join(problems))
