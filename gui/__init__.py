"""Wren's user interface (PySide6 + qasync)."""
