"""Screenshots of the real window with real model output, for the README: run under a real X server,

    xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb python tools/screenshots.py [--model NAME]
    xvfb-run -a -s "-screen 0 800x480x24" env QT_QPA_PLATFORM=xcb python tools/screenshots.py --layout

It opens the window as `wren` does (sized to the screen), asks each mode something with the chosen model (the default
model unless told otherwise), and saves one PNG per mode plus the core picker of the settings dialog. With --layout it
checks the layout instead, at 16 pt in the light and the dark theme, on whatever screen Xvfb has: the empty chat, a
chat answer under a system prompt, a summary, a refined email (Undo), the Recent menu of the email mode (dark only)
and the Settings pages, saved as {theme}-{width}x{height}-{what}.png.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import qasync
from PySide6.QtWidgets import QApplication

from wren.engine.settings import Settings
from wren.gui.main_window import MainWindow, apply_theme
from wren.engine.store import Store

DOC = """The town library will close for renovation from March 3 to June 28. During the closure, books can be
returned at the community centre on Elm Street, which will also host a small lending desk on weekdays from 10 to 4.

The children's reading club moves to the community centre as well and meets on Saturdays at 11. Late fees are waived
for the whole period. The renovation adds a new study room with forty seats, accessible entrances and a cafe.

Volunteers are needed to help move the collection in the last week of February; please sign up at the front desk by
February 15. The library thanks everyone for their patience and looks forward to reopening in the summer."""


async def wait_idle(w: MainWindow) -> None:
    await asyncio.sleep(0.1)
    while w.busy:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def shoot(w: MainWindow, app: QApplication, out: Path) -> None:
    assert await w.load_engine(), w.banner.text()
    w.settings = w.engine.settings = Settings(context_length=2048).with_mode("chat", temperature=0.2, seed=7)

    w.new_chat()
    await w._chat_turn("What are three good habits for learning a new language? Keep it short.")
    await wait_idle(w)
    w.grab().save(str(out / "chat.png"))

    w.show_mode("email")
    w.email.points.setPlainText("the quarterly report will be two days late; the new numbers arrive on Wednesday; "
                                "apologise and offer a short call")
    w.email.to.setText("my manager")
    w.email.tone.setCurrentText("Formal")
    w.email.length.setCurrentText("Short")
    await w._draft(w.email.request())
    await wait_idle(w)
    w.grab().save(str(out / "email.png"))

    w.show_mode("reply")
    w.reply.message.setPlainText("Hi! A few of us are going for pizza after work on Friday around 7. Want to join?")
    await w._replies(w.reply.message.toPlainText())
    await wait_idle(w)
    w.grab().save(str(out / "reply.png"))

    w.show_mode("summarize")
    w.summarize.text.setPlainText(DOC)
    w.summarize.style.setCurrentIndex(1)  # key points
    w.summarize.length.setCurrentText("Short")
    await asyncio.sleep(0.6)  # the input size label
    await w._summarize(DOC, "key_points", "short")
    await wait_idle(w)
    w.grab().save(str(out / "summarize.png"))

    w.open_settings()
    dialog = w.settings_dialog
    dialog.tabs.setCurrentIndex(1)
    await asyncio.sleep(0.5)
    dialog.grab().save(str(out / "core-picker.png"))
    dialog.close()
    await w.shutdown()


async def shoot_layout(w: MainWindow, app: QApplication, out: Path) -> None:
    """The light and the dark theme at 16 pt: what a small screen and a large font must survive."""
    geometry = app.primaryScreen().availableGeometry()
    screen = f"{geometry.width()}x{geometry.height()}"
    assert await w.load_engine(), w.banner.text()
    for theme in ("light", "dark"):
        w.settings = w.engine.settings = Settings(context_length=2048, theme=theme, font_size=16).with_mode(
            "chat", temperature=0.2, seed=7)
        apply_theme(theme, 16)
        name = f"{theme}-{screen}"
        w.new_chat()
        w.show_mode("chat")
        await asyncio.sleep(0.3)
        w.grab().save(str(out / f"{name}-first-run.png"))
        w.set_system_prompt("You are a patient writing coach. Answer briefly and kindly.")
        await w._chat_turn("Give me one tip for writing clear emails, in two sentences.")
        await wait_idle(w)
        w.grab().save(str(out / f"{name}-chat.png"))
        w.show_mode("summarize")
        w.summarize.text.setPlainText(DOC)
        await w._summarize(DOC, "tldr", "short")
        await wait_idle(w)
        w.grab().save(str(out / f"{name}-summarize.png"))
        w.show_mode("email")
        w.email.points.setPlainText("thank the team for finishing the release on time; drinks on Friday at 5")
        w.email.length.setCurrentText("Short")
        w.email._draft()
        await wait_idle(w)
        w.email.refine.menu().actions()[0].trigger()  # Shorter
        await wait_idle(w)
        w.grab().save(str(out / f"{name}-email.png"))
        if theme == "dark":  # the second email: the menu lists both
            button, menu = w.history.button, w.history.menu  # opened as a click opens it, without waiting on it
            menu.popup(button.mapToGlobal(button.rect().bottomLeft()))
            await asyncio.sleep(0.5)
            shown = w.frameGeometry().united(menu.geometry())
            app.primaryScreen().grabWindow(0).copy(shown).save(str(out / f"{name}-recent.png"))
            menu.close()
        w.open_settings()
        dialog = w.settings_dialog
        for i, page in ((0, "model"), (3, "appearance")):
            dialog.tabs.setCurrentIndex(i)
            await asyncio.sleep(0.5)
            dialog.grab().save(str(out / f"{name}-settings-{page}.png"))
        dialog.close()
    await w.shutdown()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="docs/screenshots")
    p.add_argument("--model", default="")
    p.add_argument("--layout", action="store_true", help="light and dark at 16 pt, named by the screen's size")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    app.setStyle("Fusion")
    import tempfile

    if args.layout:
        apply_theme("light", 16)
    store = Store(Path(tempfile.mkdtemp(prefix="wren-shots-")) / "wren.sqlite3")
    w = MainWindow(Settings(model=args.model, context_length=2048), store)
    w.show()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete((shoot_layout if args.layout else shoot)(w, app, out))
    store.close()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
