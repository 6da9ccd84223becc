"""Flags that mean the same for every command: --ctx takes a context length in the range the settings take, is
refused outside it (with the range), and is never cut silently to what the model holds."""
from __future__ import annotations

import argparse

from wren.engine.settings import CONTEXT_RANGE


def context_length(text: str) -> int:
    """--ctx's value (argparse type): a whole number of tokens in CONTEXT_RANGE."""
    low, high = CONTEXT_RANGE
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number of tokens, {low} to {high}, not {text!r}") from None
    if not low <= n <= high:
        raise argparse.ArgumentTypeError(f"{n} is out of range: {low} to {high} tokens")
    return n


def add_context_flag(parser: argparse.ArgumentParser, default: str) -> None:
    low, high = CONTEXT_RANGE
    parser.add_argument("--ctx", type=context_length, metavar="TOKENS",
                        help=f"context length, {low} to {high} tokens and at most what the model holds "
                             f"(default: {default})")


def check_model_context(settings) -> None:
    """ValueError when the context asked for is more than the model holds (before it is loaded)."""
    from wren.engine.library import catalog
    from wren.engine.runtime.loader import resolve_model_path

    path = resolve_model_path(settings.model or None)
    most = catalog.describe(path).context_length
    if settings.context_length > most:
        low = CONTEXT_RANGE[0]
        raise ValueError(f"--ctx {settings.context_length} is more than {path.name} holds: {low} to {most} tokens")
