"""Writing model files: two first uses of a chunked model at once, an import that meets a full disk, a download that
brings more than the catalog expects."""
import errno
import os
import hashlib
import io
import threading

import pytest

from wren.engine.library import catalog, pypi as pypi_models


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_two_first_uses_of_a_chunked_model_both_succeed(tmp_path, monkeypatch):
    data = bytes(range(256)) * 4096 * 3  # three blocks of the assembly's size
    parts = []
    for i, cut in enumerate(range(0, len(data), len(data) // 3)):
        part = tmp_path / f"m.part{i}"
        part.write_bytes(data[cut:cut + len(data) // 3])
        parts.append(part)
    model = pypi_models.PyPIModel("Tiny", "tiny.gguf", sha(data), len(data),
                                  tuple(("pkg", p.name) for p in parts), ("pkg",))
    monkeypatch.setattr(pypi_models, "part_paths", lambda m: parts)
    cache = tmp_path / "cache"
    # each waits for the other once it has written its first block: both are mid-assembly at the same time
    both_writing = threading.Barrier(2)
    results = {}

    def progress(done, total, what):
        if done == len(data) // 3:
            both_writing.wait(30)

    def first_use(n):
        try:
            results[n] = pypi_models.locate(model, cache, progress)
        except Exception as e:  # noqa: BLE001 - reported below
            results[n] = e

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {0: cache / "tiny.gguf", 1: cache / "tiny.gguf"}
    assert (cache / "tiny.gguf").read_bytes() == data
    assert [p.name for p in cache.iterdir()] == ["tiny.gguf"]  # no temporary file left


@pytest.fixture
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WREN_MODELS_DIR", raising=False)
    return tmp_path / "data" / "models"


class FullDisk(io.FileIO):
    """A file on a disk that holds `room` bytes."""
    room = 1 << 20

    def write(self, b):
        if self.tell() + len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(b)


def test_an_import_that_fills_the_disk_leaves_nothing_behind(library, tmp_path, monkeypatch):
    src = tmp_path / "big.gguf"
    src.write_bytes(b"\0" * (3 << 20))
    monkeypatch.setattr(catalog, "validate", lambda path: None)  # any file will do for the copy
    real_open = open

    def disk_open(path, mode="r", *args, **kwargs):
        return FullDisk(path, "wb") if mode == "wb" else real_open(path, mode, *args, **kwargs)
    monkeypatch.setattr(pypi_models, "open", disk_open, raising=False)
    with pytest.raises(catalog.CatalogError, match="No space left on device"):
        catalog.import_file(src)
    assert list(library.iterdir()) == []
    monkeypatch.setattr(FullDisk, "room", 1 << 30)  # room again: the next import goes through
    assert catalog.import_file(src).read_bytes() == src.read_bytes()
    assert [p.name for p in library.iterdir()] == ["big.gguf"]


class Response(io.BytesIO):
    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(length if length is not None else len(data))}
        self.read_bytes = 0

    def read(self, n=-1):
        block = super().read(n)
        self.read_bytes += len(block)
        return block


def test_a_download_stops_at_the_expected_size(library, monkeypatch):
    expected = b"GGUF" * 1000
    sent = []

    def urlopen(req, timeout):
        sent.append(Response(expected * 200, length=sent_length))
        return sent[-1]
    monkeypatch.setattr(catalog.urllib.request, "urlopen", urlopen)
    model = catalog.KnownModel("Tiny", "tiny.gguf", sha(expected), len(expected), "test", urls=("https://x/t.gguf",))
    sent_length = 0  # no length said: the bytes are counted as they come
    with pytest.raises(catalog.CatalogError, match=f"more than the expected {len(expected)} bytes"):
        catalog.fetch("Tiny", catalog={"Tiny": model})
    assert sent[-1].read_bytes <= len(expected) + (1 << 20)  # one block past the size at most, never written
    sent_length = 200 * len(expected)  # a length above the size: refused before anything is read
    with pytest.raises(catalog.CatalogError, match="announces"):
        catalog.fetch("Tiny", catalog={"Tiny": model})
    assert sent[-1].read_bytes == 0
    assert not library.exists() or list(library.iterdir()) == []


def test_what_a_killed_writer_left_is_removed_and_a_running_ones_kept(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "m.gguf"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".m.gguf.{int(gone.stdout)}-0123456789ab.partial"
    alive = tmp_path / f".m.gguf.{os.getppid()}-0123456789ab.partial"
    for p in (dead, alive):
        p.write_bytes(b"half a model")
    with pypi_models.new_file(target) as tmp:
        tmp.write_bytes(b"model")
        os.replace(tmp, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.gguf", alive.name])
