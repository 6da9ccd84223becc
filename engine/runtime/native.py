"""Python face of the native core (csrc/, built into wren.engine._native by cffi).

Arrays cross into C without copies (``ffi.from_buffer``); every C status turns into an exception whose message says
what was wrong. Long calls release the GIL, so a matmul on a worker thread does not freeze the window.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from wren.engine._native import ffi, lib
from wren.engine.runtime.formats import QK, Format

MAX_THREADS = lib.WREN_MAX_THREADS


class Variant(enum.IntEnum):
    REFERENCE = lib.WREN_REF
    AVX2 = lib.WREN_AVX2
    NEON = lib.WREN_NEON
    DOTPROD = lib.WREN_DOTPROD
    I8MM = lib.WREN_I8MM

    @property
    def label(self) -> str:
        return ffi.string(lib.wren_variant_name(self)).decode()

    @property
    def available(self) -> bool:
        return bool(lib.wren_variant_available(self))

    @property
    def rows(self) -> int:
        """Rows per packed tile."""
        return lib.wren_variant_rows(self)


# ---- errors ---------------------------------------------------------------------------------------------------


class NativeError(Exception):
    """A status code from the native core, with the call that returned it."""

    def __init__(self, status: int, context: str):
        self.status = status
        self.reason = ffi.string(lib.wren_strerror(status)).decode()
        super().__init__(f"{context}: {self.reason}")


class InvalidArgumentError(NativeError, ValueError):
    """A shape, buffer, alignment or format the kernels cannot take."""


class UnsupportedVariantError(NativeError):
    """A kernel variant this CPU (or this build) cannot run."""


class ThreadSettingsError(NativeError, ValueError):
    """Thread count or CPU list that cannot be honoured."""


class NativeMemoryError(NativeError, MemoryError):
    pass


class NativeSystemError(NativeError, OSError):
    pass


class AbortedError(NativeError):
    """A forward pass stopped early because its abort flag was set."""


_ERRORS = {
    lib.WREN_E_NULL: InvalidArgumentError,
    lib.WREN_E_SHAPE: InvalidArgumentError,
    lib.WREN_E_BUFFER: InvalidArgumentError,
    lib.WREN_E_ALIGN: InvalidArgumentError,
    lib.WREN_E_FORMAT: InvalidArgumentError,
    lib.WREN_E_VARIANT: UnsupportedVariantError,
    lib.WREN_E_THREADS: ThreadSettingsError,
    lib.WREN_E_CPU: ThreadSettingsError,
    lib.WREN_E_NOMEM: NativeMemoryError,
    lib.WREN_E_SYSTEM: NativeSystemError,
    lib.WREN_E_ABORTED: AbortedError,
}


def check(status: int, context: str) -> None:
    if status != lib.WREN_OK:
        raise _ERRORS.get(status, NativeError)(status, context)


# ---- CPU features and kernel choice ---------------------------------------------------------------------------


def cpu_features() -> list[str]:
    """Names of the SIMD features the core detected (cpuid + xgetbv, or HWCAP/HWCAP2)."""
    bits = lib.wren_cpu_features()
    names = []
    bit = 1
    while bit <= bits:
        if bits & bit:
            name = lib.wren_cpu_feature_name(bit)
            if name != ffi.NULL:
                names.append(ffi.string(name).decode())
        bit <<= 1
    return names


def chosen_variant(fmt: Format) -> Variant:
    """The variant weights of this format are packed for in this process."""
    return Variant(lib.wren_variant_chosen(Format(fmt)))


def forced_reference() -> bool:
    """True when WREN_KERNELS=reference made every format use the scalar reference."""
    return bool(lib.wren_kernels_forced_reference())


def available_variants() -> list[Variant]:
    return [v for v in Variant if v.available]


# ---- buffers ---------------------------------------------------------------------------------------------------


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    """An uninitialised uint8 array whose data starts on an `align`-byte boundary."""
    raw = np.empty(nbytes + align, dtype=np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset : offset + nbytes]


def _float_rows(x, k_multiple: bool = True) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected a non-empty 2-D array of floats, got shape {np.shape(x)}")
    if k_multiple and arr.shape[1] % QK:
        raise ValueError(f"the row length {arr.shape[1]} is not a multiple of {QK}")
    return arr


# ---- weight formats ---------------------------------------------------------------------------------------------


def quantize(fmt: Format, x) -> np.ndarray:
    """Reference quantization of (n, k) floats into plain (GGUF-identical) blocks: uint8 of shape (n, row bytes)."""
    fmt = Format(fmt)
    rows = _float_rows(x)
    n, k = rows.shape
    out = np.empty((n, fmt.plain_bytes(1, k)), dtype=np.uint8)
    check(
        lib.wren_quantize(fmt, ffi.from_buffer("float[]", rows), n, k, ffi.from_buffer(out), out.nbytes),
        f"quantize {fmt.label} {n}x{k}",
    )
    return out


def dequantize(fmt: Format, blocks, n: int, k: int) -> np.ndarray:
    """Plain blocks back to (n, k) float32."""
    fmt = Format(fmt)
    src = np.ascontiguousarray(blocks, dtype=np.uint8)
    out = np.empty((n, k), dtype=np.float32)
    check(
        lib.wren_dequantize(fmt, ffi.from_buffer(src), src.nbytes, n, k, ffi.from_buffer("float[]", out), out.size),
        f"dequantize {fmt.label} {n}x{k}",
    )
    return out


class PackedWeights:
    """An (n, k) weight matrix in the tile layout of one kernel variant, ready for matmul."""

    def __init__(self, fmt: Format, plain, n: int, k: int, variant: Variant | None = None):
        self.format = Format(fmt)
        self.variant = Variant(chosen_variant(self.format) if variant is None else variant)
        self.n, self.k = int(n), int(k)
        src = np.ascontiguousarray(plain, dtype=np.uint8)
        nbytes = lib.wren_packed_bytes(self.variant, self.format, self.n, self.k)
        if nbytes == 0:
            status = lib.WREN_E_VARIANT if not self.variant.available else lib.WREN_E_SHAPE
            raise _ERRORS[status](status, f"pack {self.format.label} {n}x{k} for {self.variant.label}")
        self.data = aligned_empty(nbytes)
        check(
            lib.wren_repack(self.variant, self.format, ffi.from_buffer(src), src.nbytes, self.n, self.k,
                            ffi.from_buffer(self.data), nbytes),
            f"pack {self.format.label} {n}x{k} for {self.variant.label}",
        )
        self.struct = ffi.new("wren_weights *")
        self.struct.format = self.format
        self.struct.variant = self.variant
        self.struct.n = self.n
        self.struct.k = self.k
        self.struct.act_group = self.format.info.act_group  # the loader may ask for 256 where llama.cpp would
        self._data_ptr = ffi.from_buffer(self.data)
        self.struct.data = self._data_ptr
        self.struct.bytes = nbytes

    def copy(self) -> "PackedWeights":
        """The same matrix in a buffer of its own (benchmarks cycle copies to stream from memory)."""
        c = object.__new__(PackedWeights)
        c.format, c.variant, c.n, c.k = self.format, self.variant, self.n, self.k
        c.data = aligned_empty(self.nbytes)
        c.data[:] = self.data
        c._data_ptr = ffi.from_buffer(c.data)
        c.struct = ffi.new("wren_weights *", self.struct[0])
        c.struct.data = c._data_ptr
        return c

    @classmethod
    def from_floats(cls, fmt: Format, x, variant: Variant | None = None) -> "PackedWeights":
        rows = _float_rows(x)
        return cls(fmt, quantize(fmt, rows), rows.shape[0], rows.shape[1], variant)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def unpack(self) -> np.ndarray:
        """Back to plain blocks (n, row bytes)."""
        out = np.empty((self.n, self.format.plain_bytes(1, self.k)), dtype=np.uint8)
        check(
            lib.wren_unpack(self.variant, self.format, self._data_ptr, self.nbytes, self.n, self.k,
                            ffi.from_buffer(out), out.nbytes),
            "unpack",
        )
        return out


class Activations:
    """Rows of activations quantized to int8 blocks of 32 (scale and block sum per block); scale_group=256 shares
    one fp32 scale between the 8 blocks of every 256 values (llama.cpp's Q8_K, for K-quant matrices)."""

    def __init__(self, x, variant: Variant = Variant.REFERENCE, scale_group: int = QK):
        rows = _float_rows(x)
        self.m, self.k = rows.shape
        nbytes = lib.wren_act_bytes(self.m, self.k)
        if nbytes == 0:
            raise InvalidArgumentError(lib.WREN_E_SHAPE, f"activations {self.m}x{self.k}")
        self._buf = aligned_empty(nbytes)
        self.struct = ffi.new("wren_act *")
        check(lib.wren_act_init(self.struct, ffi.from_buffer(self._buf), nbytes, self.m, self.k), "activations")
        if scale_group == 256:
            check(lib.wren_quantize_act_k(ffi.from_buffer("float[]", rows), rows.size, self.struct),
                  "quantize activations with scales per 256 values")
        elif scale_group == QK:
            check(
                lib.wren_quantize_act(Variant(variant), ffi.from_buffer("float[]", rows), rows.size, self.struct),
                f"quantize activations with {Variant(variant).label}",
            )
        else:
            raise InvalidArgumentError(lib.WREN_E_SHAPE, f"activation scale group {scale_group}: 32 or 256")

    def _view(self, ptr, dtype, count) -> np.ndarray:
        return np.frombuffer(ffi.buffer(ptr, count * np.dtype(dtype).itemsize), dtype=dtype)

    @property
    def q(self) -> np.ndarray:
        return self._view(self.struct.q, np.int8, self.m * self.k).reshape(self.m, self.k)

    @property
    def d(self) -> np.ndarray:
        return self._view(self.struct.d, np.float32, self.m * self.k // QK).reshape(self.m, -1)

    @property
    def sum(self) -> np.ndarray:
        return self._view(self.struct.sum, np.int32, self.m * self.k // QK).reshape(self.m, -1)

    @property
    def s(self) -> np.ndarray:
        """Q4_1's min term per block: llama.cpp's Q8_1 s, fp16(max|x| / 127 * sum) (d * sum for shared scales)."""
        return self._view(self.struct.s, np.float32, self.m * self.k // QK).reshape(self.m, -1)


def random_super_blocks(fmt: Format, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n x k weights of a K-quant format as random super-blocks (any quants and scales a file may hold) with
    moderate fp16 scales, for tests and benchmarks: floats are never quantized to these formats."""
    fmt = Format(fmt)
    if fmt.info.quantizes or k % fmt.block_weights:
        raise ValueError(f"{fmt.label}: {k} is not a whole number of super-blocks")
    nb = k // fmt.block_weights
    blocks = rng.integers(0, 256, size=(n, nb, fmt.block_bytes), dtype=np.uint8)
    d = (1e-3 + 1e-2 * rng.random((n, nb))).astype(np.float16).view(np.uint8).reshape(n, nb, 2)
    if fmt == Format.Q4_K:
        blocks[:, :, 0:2] = d
        blocks[:, :, 2:4] = (1e-3 * rng.random((n, nb))).astype(np.float16).view(np.uint8).reshape(n, nb, 2)
    else:
        blocks[:, :, 208:210] = d
    return blocks.reshape(n, -1)


def matmul(w: PackedWeights, a: Activations, pool: "Pool | None" = None, out: np.ndarray | None = None) -> np.ndarray:
    """y (m, n) = a . W^T, on the pool's threads (or the calling thread)."""
    y = np.empty((a.m, w.n), dtype=np.float32) if out is None else out
    if y.dtype != np.float32 or not y.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array")
    check(
        lib.wren_matmul(_pool_ptr(pool), w.struct, a.struct, ffi.from_buffer("float[]", y), y.size),
        f"matmul {w.format.label} {w.n}x{w.k} by {a.m} rows",
    )
    return y


# ---- thread pool -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSettings:
    """Where a pool's threads run (engine/runtime/placement.py makes them from the settings and the topology)."""
    threads: int
    cpus: tuple[int, ...] | None = None  # None: any CPU this process may use
    strict: bool = False  # pin worker i alone to cpus[i]
    spin_us: int = 200
    note: str = field(default="", compare=False)  # why it differs from what the settings asked (threads clamped)

    def start(self) -> "Pool":
        """A pool with these settings."""
        return Pool(self.threads, self.cpus, self.strict, self.spin_us, self.note)


class Pool:
    """Persistent worker threads, optionally pinned; close() (or `with`) tears them down."""

    def __init__(self, threads: int, cpus: Iterable[int] | None = None, strict: bool = False, spin_us: int = 200,
                 note: str = ""):
        cpu_list = None if cpus is None else tuple(int(c) for c in cpus)
        self.settings = PoolSettings(int(threads), cpu_list, bool(strict), int(spin_us), note)
        params = ffi.new("wren_pool_params *")
        params.n_threads = self.settings.threads
        keep = None
        if cpu_list is not None:
            if not cpu_list:
                raise ThreadSettingsError(lib.WREN_E_CPU, "the CPU list is empty")
            keep = ffi.new("int32_t[]", list(cpu_list))
            params.cpus = keep
            params.n_cpus = len(cpu_list)
        params.strict = 1 if strict else 0
        params.spin_us = self.settings.spin_us
        out = ffi.new("wren_pool **")
        status = lib.wren_pool_create(params, out)
        if status != lib.WREN_OK:
            detail = f"threads={threads}, cpus={list(cpu_list) if cpu_list else 'any'}, strict={bool(strict)}"
            raise _ERRORS.get(status, NativeError)(status, f"cannot start the thread pool ({detail})")
        self._ptr = ffi.gc(out[0], lib.wren_pool_destroy)

    @property
    def threads(self) -> int:
        return self.settings.threads

    def close(self) -> None:
        """Stop and join the workers now (idempotent)."""
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            ffi.release(ptr)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def ptr(self):
        if self._ptr is None:
            raise ValueError("the thread pool is closed")
        return self._ptr

    def thread_ids(self) -> list[int]:
        """Kernel thread ids of the workers (to read /proc/self/task/TID)."""
        out = ffi.new("int32_t[]", self.threads)
        check(lib.wren_pool_thread_ids(self.ptr, out, self.threads), "thread ids")
        return list(out)

    def probe_cpus(self) -> list[int]:
        """The CPU each worker runs on right now (sched_getcpu inside a job)."""
        out = ffi.new("int32_t[]", self.threads)
        check(lib.wren_pool_probe_cpus(self.ptr, out, self.threads), "probe CPUs")
        return list(out)

    def barrier_sleepers(self) -> int:
        """Runs one barrier that worker 0 enters only once every other worker sleeps in it (their spinning and
        yielding is bounded); how many slept: threads - 1."""
        out = ffi.new("int32_t *")
        check(lib.wren_pool_probe_sleep(self.ptr, out), "probe sleep")
        return int(out[0])

    def chunk_counts(self, n_chunks: int, work: int, costs: Sequence[int] | None = None) -> list[int]:
        """Run n_chunks chunks of `work` steps of busy work each, worker i repeating a chunk's work costs[i] times
        (a core that many times slower); how many chunks each worker took."""
        out = ffi.new("int64_t[]", self.threads)
        if costs is not None and len(costs) != self.threads:
            raise ValueError(f"{len(costs)} costs for {self.threads} workers")
        c_costs = ffi.NULL if costs is None else ffi.new("int32_t[]", [int(c) for c in costs])
        check(lib.wren_pool_chunk_counts(self.ptr, n_chunks, work, c_costs, out, self.threads), "chunk counts")
        return list(out)


def _pool_ptr(pool: Pool | None):
    return ffi.NULL if pool is None else pool.ptr


# ---- benchmarks ------------------------------------------------------------------------------------------------


def bench_read(buf: np.ndarray, iters: int, pool: Pool | None = None) -> float:
    """Seconds to read every byte of buf `iters` times on the pool."""
    ns = ffi.new("double *")
    checksum = ffi.new("uint64_t *")
    check(lib.wren_bench_read(_pool_ptr(pool), ffi.from_buffer(buf), buf.nbytes, iters, ns, checksum), "bench read")
    return ns[0] * 1e-9


def bench_matmul(weights: Sequence[PackedWeights], a: Activations, iters: int, pool: Pool | None = None) -> float:
    """Seconds for `iters` products, cycling through `weights` (copies that together exceed the caches)."""
    ws = ffi.new("wren_weights[]", len(weights))
    for i, w in enumerate(weights):
        ws[i] = w.struct[0]
    y = np.empty((a.m, weights[0].n), dtype=np.float32)
    ns = ffi.new("double *")
    check(
        lib.wren_bench_matmul(_pool_ptr(pool), ws, len(weights), a.struct, ffi.from_buffer("float[]", y), y.size,
                              iters, ns),
        "bench matmul",
    )
    return ns[0] * 1e-9
