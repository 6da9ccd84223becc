"""cffi build of the native core: csrc/ compiled into wren.engine._native, with csrc/wren.h as the cdef.

Run by setuptools through `cffi_modules`; `python engine/_build.py` builds in place for development.
"""
import os
import platform
import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"


def cdef_text(header: Path) -> str:
    """wren.h without its preprocessor lines: cffi parses declarations, not directives."""
    lines = [line for line in header.read_text().splitlines() if not line.lstrip().startswith("#")]
    return "\n".join(lines)


def sources() -> list[str]:
    """Every C file of the core; the SIMD files compile to nothing on the other architecture."""
    files = sorted(CSRC.glob("*.c")) + sorted((CSRC / "arch").rglob("*.c"))
    return [str(f.relative_to(ROOT)) for f in files]


def compile_args() -> list[str]:
    # -fno-wrapv: Python's own CFLAGS carry -fwrapv (CPython relies on it; this C does not, and the C harness
    # builds without it); with it, GCC keeps 32-bit index arithmetic in the kernels' loops (0.9 M more guest
    # instructions per prompt token on SmolLM2 under qemu, docs/arm-cost.md)
    # -ffp-contract=off: a multiply and an add stay two roundings unless the source asks for a fused one (fmaf or
    # an intrinsic); the forward pass reproduces llama.cpp's float steps bit for bit, on every architecture
    args = ["-O3", "-std=gnu11", "-fno-strict-aliasing", "-fno-wrapv", "-ffp-contract=off", "-Wall",
            "-Wno-unused-function"]
    # Tests and CI may add flags (e.g. sanitizers); a portable build never uses -march=native.
    args += re.split(r"\s+", os.environ.get("WREN_CFLAGS", "").strip()) if os.environ.get("WREN_CFLAGS") else []
    return args


ffibuilder = FFI()
ffibuilder.cdef(cdef_text(CSRC / "wren.h"))
ffibuilder.set_source(
    "wren.engine._native",
    '#include "wren.h"',
    sources=sources(),
    include_dirs=[str(CSRC.relative_to(ROOT))],
    extra_compile_args=compile_args(),
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    os.chdir(ROOT)
    print(platform.machine(), sources())
    ffibuilder.compile(verbose=True)
