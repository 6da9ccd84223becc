"""Renders the app icon's PNG sizes from the scalable SVG (resources/icons/hicolor/scalable/apps/wren.svg) into the
hicolor tree beside it:

    QT_QPA_PLATFORM=offscreen python tools/icons.py

Run it again after editing the SVG, and commit the PNGs.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HICOLOR = Path(__file__).resolve().parent.parent / "resources" / "icons" / "hicolor"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def render(svg: Path, size: int) -> QImage:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format_ARGB32_Premultiplied)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # QPainter needs one
    svg = HICOLOR / "scalable" / "apps" / "wren.svg"
    for size in SIZES:
        out = HICOLOR / f"{size}x{size}" / "apps" / "wren.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not render(svg, size).save(str(out)):
            raise SystemExit(f"cannot write {out}")
        print(out.relative_to(HICOLOR.parent.parent.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
