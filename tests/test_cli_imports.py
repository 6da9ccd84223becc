"""The console entry point leaves the GUI package (wren.gui, PySide6, qasync) alone until the window is asked for:
each command that needs no window runs in a fresh interpreter, which then lists what it imported."""
import json
import os
import subprocess
import sys

SCRIPT = """
import contextlib, io, json, sys
from wren.engine import cli

def gui_modules():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "qasync")
                  or m == "wren.gui" or m.startswith("wren.gui."))

seen = {}
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # --help
            code = e.code
    seen[" ".join(argv) or "(no command)"] = {"code": code, "gui": gui_modules(), "stderr": err.getvalue()[-500:]}
import wren.gui.conversation_model  # the check itself: a GUI import shows in the list
seen["(control)"] = {"code": 0, "gui": gui_modules(), "stderr": ""}
print(json.dumps(seen))
"""

COMMANDS = [
    ["--help"],
    ["info"],
    ["models", "list", "--json"],
    ["chat", "-t", "zero"],  # the chat and mode commands import the assistant; a bad flag stops them before a load
    ["email", "--points", "x", "-t", "zero"],
    ["reply", "-t", "zero"],
    ["summarize", "/nonexistent/text.txt"],
    [],  # the window without a display: the hint
]


def test_commands_without_a_window_import_no_gui():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(COMMANDS)], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    control = seen.pop("(control)")
    assert "PySide6" in control["gui"] and "wren.gui" in control["gui"]
    assert len(seen) == len(COMMANDS)
    for command, result in seen.items():
        assert result["gui"] == [], f"wren {command} imported {result['gui']}"
    assert seen["--help"]["code"] == 0 and seen["info"]["code"] == 0 and seen["(no command)"]["code"] == 0
    for command in ("chat -t zero", "email --points x -t zero", "reply -t zero", "summarize /nonexistent/text.txt"):
        assert seen[command]["code"] == 1 and seen[command]["stderr"].startswith("wren: "), seen[command]
