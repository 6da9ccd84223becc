"""`wren` without a command: the window when a display can show it, else how to use the command line."""
from __future__ import annotations

import argparse
import os
import sys


CLI_HELP = """Wren's command line works without a window:
  wren info                         CPU features, chosen kernels, big/LITTLE layout
  wren chat                         chat in the terminal (Ctrl+C stops an answer)
  wren email --points TEXT          draft an email (--to, --thread FILE, --tone, --length)
  wren reply FILE                   three short replies to a message
  wren summarize FILE               summarize a text (--style, --length)
  wren models list                  installed and known models (fetch, import, remove)
  wren run --raw [--greedy] FILE    continue a text file with the default model (SmolLM2-135M)
  wren tokenize FILE                token ids of a text file
  wren bench [-m MODEL] [--compare]  prefill and decode speed, time to first token
  wren bench --kernels               kernel speed against this machine's memory bandwidth"""


def cmd_window(args: argparse.Namespace) -> int:
    if not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        print("No display found. " + CLI_HELP)
        return 0
    from wren.gui import display  # plain Python: looks at the system before Qt is started (Qt aborts on failure)

    choice = display.choose()
    if choice.platform is None:
        print(f"The window cannot start: {choice.problem}.\n" + CLI_HELP, file=sys.stderr)
        return 1
    os.environ["QT_QPA_PLATFORM"] = choice.platform
    from wren.gui.app import main as window_main

    return window_main(summarize_clipboard=args.summarize_clipboard)
