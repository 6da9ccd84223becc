"""Handing an email to the desktop: whether a mail app takes mailto: links, and the email as a .eml message file."""
from __future__ import annotations

import email.message
import email.utils
import shutil
import subprocess
import sys


def app_available() -> bool:
    """Whether the desktop names a mail app for mailto: links (on Linux, asked of xdg-mime; elsewhere assumed)."""
    if not sys.platform.startswith("linux"):
        return True
    xdg = shutil.which("xdg-mime")
    if xdg is None:
        return False
    try:
        out = subprocess.run([xdg, "query", "default", "x-scheme-handler/mailto"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(out.stdout.strip())


def message_file(subject: str, body: str, to: str = "", thread: str = "") -> bytes:
    """The email as a message file: Date, Subject, and To and From where known (To: the recipient when it is an
    address; From: the address the message it answers (thread) was sent to)."""
    msg = email.message.EmailMessage()
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Subject"] = subject
    if "@" in to:
        msg["To"] = to
    me = email.message_from_string(thread.strip() + "\n").get("To", "")
    if "@" in me:
        msg["From"] = me
    msg.set_content(body)
    return bytes(msg)
