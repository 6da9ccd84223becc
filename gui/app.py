"""`wren` with a display: the window on qasync's event loop (`QT_QPA_PLATFORM=offscreen wren` runs it headless)."""
from __future__ import annotations

import asyncio
import signal
import sys


def open_store():
    """The conversation database; a damaged one is moved aside (kept) and a fresh one started, with a note."""
    from wren.engine.store import Store, StoreError

    try:
        return Store(), None
    except StoreError as e:
        moved = Store.move_aside(e.path) if getattr(e, "path", None) else None
        note = f"{e}. It was kept as {moved} and a new one started." if moved else str(e)
        return Store(), note


def main(argv: list[str] | None = None) -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from wren.engine import settings as wsettings
    from wren.gui.main_window import MainWindow
    from wren.gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setApplicationName("Wren")
    app.setDesktopFileName("wren")
    app.setStyle("Fusion")
    loaded = wsettings.load()
    store, store_note = open_store()
    apply_theme(loaded.settings.theme, loaded.settings.font_size)
    window = MainWindow(loaded.settings, store, settings_path=wsettings.settings_path())
    if loaded.problem:
        window.settings_banner.show_problem(loaded.problem)
    if store_note:
        window.show_error(store_note)
    window.show()

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
        loop.run_until_complete(closed.wait())
        loop.run_until_complete(window.shutdown())
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
