"""What the window says outside the mode views: the banner of problems above them, and the status bar's figures
(how the engine runs, how fast the last answer came)."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton


class Banner(QFrame):
    """The problems the user should know about, one line each, each under what it is about ("model": loading the
    model, "job": the last thing asked, or another note), so that each clears when its own problem is gone; the
    close button dismisses them all."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.problems: dict[str, str] = {}
        # colours through the palette, not a style sheet: a style sheet would keep the font it was polished with
        # when the font size setting changes
        palette = self.palette()
        for role, colour in ((QPalette.Window, "#fdecea"), (QPalette.WindowText, "#611a15"),
                             (QPalette.ButtonText, "#611a15"), (QPalette.Button, "#fdecea")):
            palette.setColor(role, QColor(colour))
        self.setPalette(palette)
        self.setAutoFillBackground(True)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setAccessibleName("Message")
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setAccessibleName("Dismiss the message")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(lambda: self.clear())
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.close_button, 0, Qt.AlignTop)
        self.setVisible(False)

    def text(self) -> str:
        return self.label.text()

    def show_problem(self, about: str, text: str) -> None:
        """Show text as the problem with `about`; an empty text clears it."""
        if text:
            self.problems[about] = text
        else:
            self.problems.pop(about, None)
        self._show()

    def clear(self, *abouts: str) -> None:
        """Clear the problems with these (all when none is named)."""
        for about in abouts or list(self.problems):
            self.problems.pop(about, None)
        self._show()

    def _show(self) -> None:
        self.label.setText("\n".join(self.problems.values()))
        self.setVisible(bool(self.problems))


class ElidedLabel(QLabel):
    """A one-line label that may be narrower than its text: the text ends in "…" and the whole of it is the tooltip
    (the status bar of a small screen)."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(self.fontMetrics().horizontalAdvance("…") * 4, super().minimumSizeHint().height())

    def shown(self) -> str:
        return self.fontMetrics().elidedText(self.text(), Qt.ElideRight, self.contentsRect().width())

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self.setToolTip(text if self.shown() != text else "")

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self.setToolTip(self.text() if self.shown() != self.text() else "")

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        shown = self.shown()
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.contentsRect(), int(self.alignment() | Qt.AlignVCenter), shown)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def engine_text(threads: int, cpus, pinned: bool, note: str = "") -> str:
    """Where the engine runs: "4 threads on CPUs 0,1,2,3, pinned", and why not as set where it is not (note)."""
    where = f"CPUs {','.join(map(str, cpus))}" if cpus else "any CPU"
    text = f"{plural(threads, 'thread')} on {where}{', pinned' if pinned else ''}"
    return f"{text} ({note})" if note else text


def speed_text(st) -> str:
    """The figures of one answer that mean something for it (st: the engine's Stats): no time to first token when
    none came, no prefill rate when (almost) nothing was prefilled or the prefill was stopped, no decode rate for
    fewer than two tokens; "prompt cached" where the cache held (almost) all of the prompt."""
    parts = []
    if st.generated_tokens:
        parts.append(f"TTFT {1000 * st.ttft_seconds:.0f} ms")
        if st.prefilled_tokens >= 2 and st.prefill_seconds > 0:
            parts.append(f"prefill {st.prefill_tokens_per_s:.0f} tok/s")
        elif st.cached_tokens:
            parts.append("prompt cached")
        if st.generated_tokens >= 2 and st.decode_tokens_per_s > 0:
            parts.append(f"decode {st.decode_tokens_per_s:.0f} tok/s")
    if st.finish_reason == "cancelled":
        parts.append("stopped" if parts else "Stopped before the first token")
    elif st.finish_reason == "repetition":
        parts.append("stopped: the answer was repeating itself")
    return " · ".join(parts)
