"""The runtime weight formats, as C's table has them (csrc/formats.h: one row per format).

Python keeps no sizes or lists of its own: `Format` has one member per row (named after the row's name), and each
member reads its row through `wren_format_describe`. The loader's tables (which GGUF type a format keeps as the file
has it, which one C turns straight into it) come from the same rows.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from wren.engine._native import ffi, lib
from wren.engine.runtime.gguffile import TYPE_BY_ID

QK = lib.WREN_QK  # weights per block of the plain formats, and values per activation block


@dataclass(frozen=True)
class FormatInfo:
    name: str  # "q4_0", ...
    block_weights: int  # weights per plain block: 32, or 256 for GGUF's K-quant super-blocks
    block_bytes: int  # bytes per plain block
    bits: int  # bits per quant
    tile_row_bytes: int  # bytes of one row in a packed tile of more than one row
    act_group: int  # values per activation scale it pairs with: 32 (256 also read) or 256 (required)
    file_type: str | None  # the GGUF tensor type whose blocks are its plain blocks
    convert_from: str | None  # the GGUF tensor type C turns straight into its blocks (no float pass)
    quantizes: bool  # quantize() makes it from floats; otherwise its blocks come from files only


def describe(index: int) -> FormatInfo:
    """Row `index` of C's table."""
    row = ffi.new("wren_format_info *")
    status = lib.wren_format_describe(index, row)
    if status != lib.WREN_OK:
        raise ValueError(f"format {index}: {ffi.string(lib.wren_strerror(status)).decode()}")

    def ggml_name(type_id: int) -> str | None:
        return None if type_id < 0 else TYPE_BY_ID[type_id][0]

    return FormatInfo(ffi.string(row.name).decode(), row.block_weights, row.block_bytes, row.bits,
                      row.tile_row_bytes, row.act_group, ggml_name(row.file_type), ggml_name(row.convert_from),
                      bool(row.quantizes))


ROWS = tuple(describe(i) for i in range(lib.WREN_N_FORMATS))


class _FormatBase(enum.IntEnum):
    """A runtime format: its value is C's wren_format, its properties the row's."""

    info = property(lambda self: ROWS[self])
    label = property(lambda self: self.info.name)
    block_bytes = property(lambda self: self.info.block_bytes)
    block_weights = property(lambda self: self.info.block_weights)
    super_block = property(lambda self: self.info.block_weights > QK)

    def plain_bytes(self, n: int, k: int) -> int:
        """Bytes of n rows of k weights as plain blocks."""
        return n * (k // self.block_weights) * self.block_bytes


Format = _FormatBase("Format", [(row.name.upper(), i) for i, row in enumerate(ROWS)], module=__name__)

# GGUF tensor type -> the format whose plain blocks are the file's own bytes
FILE_BLOCKS = {row.file_type: Format(i) for i, row in enumerate(ROWS) if row.file_type}
# GGUF tensor type -> the format C turns it straight into (wren_ggml_convert: exact, but for Q4_K's scales in fp16)
CONVERTS = {row.convert_from: Format(i) for i, row in enumerate(ROWS) if row.convert_from}
