"""GGUF reader: memory-mapped, and every count, length, offset and size checked against the file before use.

A truncated, corrupt or hostile file raises GGUFError naming the problem; nothing is allocated in proportion to a
number read from the file without first checking that the file is large enough to hold what the number claims.
"""
from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_STRING = 64 << 20  # no key or value string in a real model comes near this


class GGUFError(Exception):
    """The file is not a GGUF model Wren can read; the message says what is wrong with it."""


# ggml tensor types: name -> (id, weights per block, bytes per block)
TENSOR_TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36), "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110),
    "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "IQ2_XXS": (16, 256, 66), "IQ2_XS": (17, 256, 74), "IQ3_XXS": (18, 256, 98), "IQ1_S": (19, 256, 50),
    "IQ4_NL": (20, 32, 18), "IQ3_S": (21, 256, 110), "IQ2_S": (22, 256, 82), "IQ4_XS": (23, 256, 136),
    "I8": (24, 1, 1), "I16": (25, 1, 2), "I32": (26, 1, 4), "I64": (27, 1, 8), "F64": (28, 1, 8),
    "IQ1_M": (29, 256, 56), "BF16": (30, 1, 2), "TQ1_0": (34, 256, 54), "TQ2_0": (35, 256, 66),
    "MXFP4": (39, 32, 17),
}
TYPE_BY_ID = {tid: (name, bs, bb) for name, (tid, bs, bb) in TENSOR_TYPES.items()}
# what the converter can turn into runtime formats; any other type is refused by name
SUPPORTED_TYPES = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}

# metadata value types
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
               8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}


def short(text: str, limit: int = 80) -> str:
    """A key, name or value for a message: a hostile million-character string is cut."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def describe_value(value: Any) -> str:
    """What a metadata value is, for a message: its type and (cut short) contents."""
    if value is None:
        return "missing"
    if isinstance(value, (list, np.ndarray)):
        kind = "strings" if isinstance(value, list) else str(value.dtype)
        return f"an array of {len(value)} {kind}"
    if isinstance(value, str):
        return f"the string {short(repr(value))}"
    return f"{type(value).__name__} {short(repr(value))}"


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: shape[0] is the contiguous (row) dimension
    type_name: str
    offset: int  # absolute offset in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def rows(self) -> int:
        return self.n_elements // self.shape[0]


@dataclass
class GGUFFile:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: dict[str, TensorInfo]
    alignment: int
    data_offset: int
    file_size: int
    _map: mmap.mmap | None = field(default=None, repr=False)

    def tensor_bytes(self, name: str) -> np.ndarray:
        """The raw bytes of a tensor, a zero-copy uint8 view of the mapped file."""
        t = self.tensors[name]
        return np.frombuffer(self._map, dtype=np.uint8, count=t.nbytes, offset=t.offset)

    def tensor_array(self, name: str) -> np.ndarray:
        """F32 / F16 tensors as an array of their shape in row-major order (rows x shape[0])."""
        t = self.tensors[name]
        dtype = {"F32": "<f4", "F16": "<f2"}.get(t.type_name)
        if dtype is None:
            raise GGUFError(f"{self.path.name}: tensor '{name}' is {t.type_name}, not a float array")
        arr = np.frombuffer(self._map, dtype=dtype, count=t.n_elements, offset=t.offset)
        return arr.reshape(tuple(reversed(t.shape)))

    def release(self, name: str) -> None:
        """Drop a converted tensor's pages from this process's memory (they are re-read if touched again)."""
        t = self.tensors[name]
        page = mmap.PAGESIZE
        start = -(-t.offset // page) * page  # whole pages inside the tensor only: neighbours stay
        end = (t.offset + t.nbytes) // page * page
        if self._map is not None and end > start and hasattr(self._map, "madvise"):
            try:
                self._map.madvise(mmap.MADV_DONTNEED, start, end - start)
            except (OSError, ValueError):
                pass

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # views still alive keep the mapping; it closes when they go
            self._map = None

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Cursor:
    """Reads little-endian values from the mapped file, never past its end."""

    def __init__(self, buf, size: int, name: str):
        self.buf, self.size, self.pos, self.name = buf, size, 0, name

    def fail(self, what: str) -> GGUFError:
        return GGUFError(f"{self.name}: {what} (at byte {self.pos} of {self.size})")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated: {what} needs {n} bytes, {self.size - self.pos} remain")

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return self.unpack("<I", what)

    def u64(self, what: str) -> int:
        return self.unpack("<Q", what)

    def string(self, what: str) -> str:
        n = self.u64(f"length of {what}")
        if n > MAX_STRING:
            raise self.fail(f"{what} claims {n} bytes")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")

    def strings(self, count: int, what: str) -> list[str]:
        """An array of strings (a vocabulary: 262k of them), read in one tight loop."""
        buf, size, pos, out = self.buf, self.size, self.pos, []
        unpack_len = struct.Struct("<Q").unpack_from
        for i in range(count):
            if pos + 8 > size:
                self.pos = pos
                raise self.fail(f"truncated: length of {what}[{i}] needs 8 bytes, {size - pos} remain")
            (n,) = unpack_len(buf, pos)
            pos += 8
            if n > MAX_STRING or pos + n > size:
                self.pos = pos
                raise self.fail(f"truncated: {what}[{i}] claims {n} bytes, {size - pos} remain")
            out.append(str(buf[pos:pos + n], "utf-8", "replace"))
            pos += n
        self.pos = pos
        return out

    def value(self, vtype: int, what: str, depth: int = 0):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY:
            if depth > 0:
                raise self.fail(f"{what}: nested arrays are not supported")
            etype = self.u32(f"element type of {what}")
            count = self.u64(f"length of {what}")
            if etype in _NUMPY:
                width = np.dtype(_NUMPY[etype]).itemsize
                if count > (self.size - self.pos) // width:
                    raise self.fail(f"truncated: {what} claims {count} elements of {_TYPE_NAMES[etype]}")
                arr = np.frombuffer(self.buf, dtype=_NUMPY[etype], count=count, offset=self.pos).copy()
                self.pos += count * width
                return arr.astype(bool) if etype == 7 else arr
            if etype == _STRING:
                if count > (self.size - self.pos) // 8:  # each string has at least its 8-byte length
                    raise self.fail(f"truncated: {what} claims {count} strings")
                return self.strings(count, what)
            raise self.fail(f"{what}: unknown array element type {etype}")
        raise self.fail(f"{what}: unknown value type {vtype}")


def read(path: str | os.PathLike) -> GGUFFile:
    """Open and validate a GGUF file; raises GGUFError (or OSError for an unreadable path)."""
    path = Path(path)
    name = path.name
    # non-blocking: a FIFO (or a device) given as the model is refused, never waited on
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GGUFError(f"{name}: not a regular file (a model must be a GGUF file, not a directory, a pipe or "
                            "a device)")
        size = st.st_size
        if size < 24:
            raise GGUFError(f"{name}: not a GGUF file ({size} bytes is too small for the header)")
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        return _parse(path, mapped, size)
    except GGUFError:
        mapped.close()
        raise
    except (ValueError, OverflowError, struct.error, IndexError) as e:  # defence in depth: still our error
        mapped.close()
        raise GGUFError(f"{name}: malformed file ({e})") from None


def _parse(path: Path, buf: mmap.mmap, size: int) -> GGUFFile:
    c = _Cursor(buf, size, path.name)
    if bytes(buf[:4]) != MAGIC:
        raise GGUFError(f"{path.name}: not a GGUF file (magic {bytes(buf[:4])!r})")
    c.pos = 4
    version = c.u32("version")
    if version not in (2, 3):
        raise c.fail(f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors = c.u64("tensor count")
    n_kv = c.u64("metadata count")
    if n_kv > (size - c.pos) // 13:  # key length (8) + 1 byte of key + type (4) at the least
        raise c.fail(f"truncated: {n_kv} metadata entries cannot fit")
    if n_tensors > (size - c.pos) // 24:  # name length (8) + n_dims (4) + one dim (8) + type (4), at the least
        raise c.fail(f"truncated: {n_tensors} tensors cannot fit")

    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = c.string(f"metadata key {i}")
        vtype = c.u32(f"type of '{short(key)}'")
        if key in metadata:
            raise c.fail(f"duplicate metadata key '{short(key)}'")
        metadata[key] = c.value(vtype, f"'{short(key)}'")

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1) or alignment > 1 << 20:
        raise c.fail(f"general.alignment is {describe_value(alignment)}, not a power of two")

    infos = []
    names = set()
    for i in range(n_tensors):
        tname = c.string(f"name of tensor {i}")
        if tname in names:
            raise c.fail(f"duplicate tensor '{short(tname)}'")
        names.add(tname)
        n_dims = c.u32(f"dimension count of '{short(tname)}'")
        if not 1 <= n_dims <= MAX_DIMS:
            raise c.fail(f"tensor '{short(tname)}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        shape = tuple(c.u64(f"dimension {d} of '{short(tname)}'") for d in range(n_dims))
        type_id = c.u32(f"type of '{short(tname)}'")
        rel = c.u64(f"offset of '{short(tname)}'")
        infos.append((tname, shape, type_id, rel))

    data_offset = -(-c.pos // alignment) * alignment
    tensors: dict[str, TensorInfo] = {}
    spans = []
    for tname, shape, type_id, rel in infos:
        if type_id not in TYPE_BY_ID:
            raise GGUFError(f"{path.name}: tensor '{short(tname)}' has unknown type id {type_id}")
        type_name, block, block_bytes = TYPE_BY_ID[type_id]
        n = 1
        for d in shape:
            if d <= 0 or d > 1 << 40:
                raise GGUFError(f"{path.name}: tensor '{short(tname)}' has dimension {d} in shape {list(shape)}")
            n *= d
            if n > size * 256:  # more elements than any type could pack into this file
                raise GGUFError(f"{path.name}: tensor '{short(tname)}' shape {list(shape)} cannot fit in the file")
        if shape[0] % block:
            raise GGUFError(f"{path.name}: tensor '{short(tname)}' ({type_name}) has rows of {shape[0]} values, "
                            f"not a multiple of its block size {block}")
        nbytes = n // block * block_bytes
        if rel % alignment:
            raise GGUFError(f"{path.name}: tensor '{short(tname)}' offset {rel} is not aligned to {alignment}")
        start = data_offset + rel
        if start + nbytes > size:
            raise GGUFError(f"{path.name}: truncated: tensor '{short(tname)}' ends at byte {start + nbytes}, "
                            f"the file has {size}")
        tensors[tname] = TensorInfo(tname, shape, type_name, start, nbytes)
        spans.append((start, start + nbytes, tname))
    spans.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise GGUFError(f"{path.name}: tensors '{short(n0)}' and '{short(n1)}' overlap")
    return GGUFFile(path, version, metadata, tensors, alignment, data_offset, size, buf)


def check_supported(g: GGUFFile) -> None:
    """Refuse, by name, tensor types the converter cannot turn into runtime formats."""
    bad = sorted({t.type_name for t in g.tensors.values() if t.type_name not in SUPPORTED_TYPES})
    if bad:
        raise GGUFError(f"{g.path.name}: tensor type(s) {', '.join(bad)} are not supported "
                        f"(supported: {', '.join(sorted(SUPPORTED_TYPES))})")
