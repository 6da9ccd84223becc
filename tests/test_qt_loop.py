"""The window's event loop survives a long session: qasync runs every asyncio callback through a Python timerEvent,
and a PySide6 that mishandles those references aborts the interpreter after a few thousand (one per streamed
token). The loop runs in a subprocess, so that such an abort fails this test instead of the whole run."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

SCRIPT = """
import asyncio, sys, threading
import qasync
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
loop = qasync.QEventLoop(app)
asyncio.set_event_loop(loop)
seen = []
all_seen = asyncio.Event()
def add(i):
    seen.append(i)
    if len(seen) == 20000:
        all_seen.set()
async def main():
    def worker():  # events from another thread, as the engine sends them
        for i in range(5000):
            loop.call_soon_threadsafe(add, i)
    t = threading.Thread(target=worker)
    t.start()
    for i in range(15000):
        loop.call_soon(add, i)
        if i % 500 == 0:
            await asyncio.sleep(0)
    t.join()
    await all_seen.wait()
with loop:
    loop.run_until_complete(main())
print(len(seen))
"""


def test_twenty_thousand_callbacks_and_a_clean_exit():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "20000"
