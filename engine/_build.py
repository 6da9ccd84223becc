"""cffi build of the native core: csrc/ compiled into wren.engine._native, with csrc/wren.h as the cdef.

Run by setuptools through `cffi_modules`; `python engine/_build.py` builds in place for development.
"""
import os
import platform
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
    """csrc/cflags (the C harness, tests/c/build.sh, reads the same file), then WREN_CFLAGS: tests and CI may add
    flags (e.g. sanitizers); a portable build never uses -march=native."""
    text = "\n".join(line.split("#", 1)[0] for line in (CSRC / "cflags").read_text().splitlines())
    return text.split() + os.environ.get("WREN_CFLAGS", "").split()


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
