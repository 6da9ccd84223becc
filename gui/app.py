"""`wren` with a display: the window on qasync's event loop (`QT_QPA_PLATFORM=offscreen wren` runs it headless)."""
from __future__ import annotations

import asyncio
import signal
import sys


def window_icon():
    """The theme's wren icon (installed by `wren --install-desktop`), else the SVG shipped with Wren."""
    from importlib import resources

    from PySide6.QtGui import QIcon

    svg = resources.files("wren.resources").joinpath("icons", "hicolor", "scalable", "apps", "wren.svg")
    return QIcon.fromTheme("wren", QIcon(str(svg)))


def bring_forward(window) -> None:
    from PySide6.QtCore import Qt

    window.setWindowState(window.windowState() & ~Qt.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()


async def summarize_clipboard_when_ready(window) -> None:
    while window.loading:  # a model still loading: the summary waits for it
        await asyncio.sleep(0.1)
    window.summarize_clipboard()


def serve_later_starts(window):
    """One window per user: later `wren` starts raise this one (and may ask for the clipboard's summary)."""
    from wren.gui.desktop import InstanceServer

    def handle(command: str) -> None:
        bring_forward(window)
        if command == "summarize-clipboard" and not window.loading:
            window.summarize_clipboard()
        elif command == "summarize-clipboard":
            asyncio.ensure_future(summarize_clipboard_when_ready(window))
    try:
        return InstanceServer(handle, parent=window)
    except OSError as e:
        print(f"wren: {e}; a second `wren` will open a second window", file=sys.stderr)
        return None


def main(argv: list[str] | None = None, summarize_clipboard: bool = False) -> int:
    from wren.gui.desktop import forward

    if forward("summarize-clipboard" if summarize_clipboard else "raise"):
        print("Wren is already open: " + ("it summarizes the clipboard." if summarize_clipboard
                                          else "its window was brought forward."), file=sys.stderr)
        return 0

    import qasync
    from PySide6.QtWidgets import QApplication

    from wren.engine import settings as wsettings
    from wren.engine.store import open_history
    from wren.gui.main_window import MainWindow
    from wren.gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setApplicationName("Wren")
    app.setDesktopFileName("wren")
    app.setWindowIcon(window_icon())
    app.setStyle("Fusion")
    loaded = wsettings.load()
    store, store_note = open_history()
    apply_theme(loaded.settings.theme, loaded.settings.font_size)
    window = MainWindow(loaded.settings, store, settings_path=wsettings.settings_path())
    if loaded.problem:
        window.settings_banner.show_problem(loaded.problem)
    if store_note:
        window.show_error(store_note, about="history")
    window.show()
    server = serve_later_starts(window)

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl+C in the terminal, or a script ending a headless run
        try:
            loop.add_signal_handler(sig, app.quit)
        except (NotImplementedError, RuntimeError):
            pass
    with loop:
        loop.create_task(window.load_engine())
        if summarize_clipboard:
            loop.create_task(summarize_clipboard_when_ready(window))
        loop.run_until_complete(closed.wait())
        if server is not None:
            server.close()
        loop.run_until_complete(window.shutdown())
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
