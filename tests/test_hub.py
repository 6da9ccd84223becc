"""Fetching and searching models on Hugging Face (wren.engine.library.hub), against a stand-in hub on 127.0.0.1
(tests/hubserver.py): huggingface_hub's real HTTP traffic, nothing sent anywhere else."""
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hubserver import HubServer

from wren.engine.library import catalog, hub

pytest.importorskip("gguf")
pytest.importorskip("huggingface_hub")

REPO = "wren-test/Tiny-GGUF"
FILE = "tiny-Q8_0.gguf"
JUNK = "wren-test/Junk-GGUF"


@pytest.fixture
def library(tmp_path, monkeypatch):
    """An empty library."""
    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WREN_MODELS_DIR", raising=False)
    return tmp_path / "data" / "models"


@pytest.fixture
def server(tiny, tmp_path, monkeypatch):
    """The stand-in hub, and huggingface_hub pointed at it and kept off the user's token and files. huggingface_hub
    reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, when first imported: its constants are set as well."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _detect_agent

    data = tiny.read_bytes()
    with HubServer(repos={REPO: {FILE: data, "sub/dir/tiny-IQ4_XS.gguf": data + b"\0" * 64, "README.md": b"# tiny\n"},
                          JUNK: {"junk-Q4_0.gguf": b"GGUF but not a model"}}) as s:
        monkeypatch.setenv("HF_ENDPOINT", s.endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", s.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            s.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        # the registry of coding agents that build_hf_headers asks the hub for: asked of no one
        monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY, raising=False)
        yield s
    # the calls the hub module makes (and, from a fresh process, huggingface_hub's question about coding agents)
    assert all(r.path.startswith(("/api/models", "/wren-test/", "/nobody/", "/cdn/", "/api/agent-harnesses"))
               for r in s.log)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kept(library: Path) -> list[Path]:
    return sorted(p for p in library.rglob("*") if p.is_file()) if library.exists() else []


@pytest.mark.parametrize("redirect", [True, False])
def test_fetch_downloads_checks_and_keeps_the_file(library, server, tiny, redirect):
    server.redirect = redirect
    seen, listed = [], []

    def progress(done, total, what):
        seen.append((done, total))
        listed.extend(m for m in catalog.installed() if m.source == "library")

    path = hub.fetch(f"hf:{REPO}/{FILE}", progress=progress)
    assert path == library / FILE and path.read_bytes() == tiny.read_bytes()
    assert seen and not listed  # while it downloads, the library does not list it
    assert kept(library) == [path]  # the staging folder is gone
    assert seen[-1] == (len(tiny.read_bytes()),) * 2
    assert [m.name for m in catalog.installed() if m.source == "library"] == ["tiny-Q8_0"]
    gets = server.requests("GET")
    if redirect:  # the LFS redirect was followed to the CDN, which sent the bytes
        assert [r.origin for r in gets] == ["cdn"] and gets[0].path == f"/cdn/{sha(tiny.read_bytes())}"
    else:
        assert [r.origin for r in gets] == ["hub"] and gets[0].path == f"/{REPO}/resolve/main/{FILE}"
    n = len(server.log)
    assert hub.fetch(f"hf:{REPO}/{FILE}") == path  # already there: asked about, not downloaded again
    assert not server.requests("GET")[len(gets):] and len(server.log) > n


def test_a_file_in_a_folder_at_a_revision(library, server):
    path = hub.fetch(f"hf:{REPO}@{'0123456789abcdef' * 2 + '01234567'}/sub/dir/tiny-IQ4_XS.gguf")
    assert path == library / "tiny-IQ4_XS.gguf" and kept(library) == [path]
    assert server.requests("HEAD")[0].path.startswith(f"/{REPO}/resolve/0123456789abcdef")


def test_a_dropped_connection_is_resumed_with_a_range_request(library, server, tiny, monkeypatch):
    from huggingface_hub import constants

    # chunks of 4 KiB as a real model has chunks of 10 MiB: only whole chunks are written before the drop
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    server.drop_once.add(FILE)
    path = hub.fetch(f"hf:{REPO}/{FILE}")
    data = tiny.read_bytes()
    assert path.read_bytes() == data
    first, second = server.requests("GET", "cdn")
    assert "Range" not in first.headers
    # the chunks written before the drop (half the file, to the chunk) are not asked for again
    assert second.headers["Range"] == f"bytes={len(data) // 2 // 4096 * 4096}-"


def test_a_wrong_hash_is_refused_and_nothing_is_left(library, server):
    server.lie_sha256.add(FILE)
    with pytest.raises(hub.HubError, match="sha256 .* expected 0{64}; it was not kept"):
        hub.fetch(f"hf:{REPO}/{FILE}")
    assert kept(library) == [] and catalog.installed() == [m for m in catalog.installed() if m.source != "library"]


def test_a_file_that_is_not_a_model_is_refused(library, server):
    with pytest.raises(hub.HubError, match="junk-Q4_0.gguf was not kept"):
        hub.fetch(f"hf:{JUNK}/junk-Q4_0.gguf")
    assert kept(library) == []


def test_the_catalogs_hash_is_checked_too(library, server, tiny, monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "Tiny", catalog.KnownModel("Tiny", FILE, "1" * 64, 1, "test"))
    with pytest.raises(hub.HubError, match="not the catalog's"):
        hub.fetch(f"hf:{REPO}/{FILE}")
    assert kept(library) == [] and not server.requests("GET")


def test_never_more_than_the_size_the_hub_reports(library, server):
    server.lie_size.add(FILE)
    with pytest.raises(hub.HubError, match="more than the .* bytes the hub reports"):
        hub.fetch(f"hf:{REPO}/{FILE}")
    assert kept(library) == []


def test_offline_finds_a_fetched_file_and_refuses_a_new_one(library, server, monkeypatch):
    path = hub.fetch(f"hf:{REPO}/{FILE}")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    n = len(server.log)
    assert hub.fetch(f"hf:{REPO}/{FILE}") == path
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE is set and tiny-IQ4_XS.gguf is not in the library"):
        hub.fetch(f"hf:{REPO}/sub/dir/tiny-IQ4_XS.gguf")
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE"):
        hub.search(REPO)
    assert len(server.log) == n  # offline means no request at all


def test_a_copy_in_huggingface_hubs_cache_is_taken(library, server, tiny):
    from huggingface_hub import hf_hub_download

    hf_hub_download(REPO, FILE)  # into huggingface_hub's own cache
    n = len(server.requests("GET"))
    path = hub.fetch(f"hf:{REPO}/{FILE}")
    assert path.read_bytes() == tiny.read_bytes() and len(server.requests("GET")) == n


def test_hf_token_is_sent_to_the_hub_only(library, server, monkeypatch):
    server.token = "hf_secret"
    with pytest.raises(hub.HubError, match="set HF_TOKEN"):
        hub.fetch(f"hf:{REPO}/{FILE}")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub.fetch(f"hf:{REPO}/{FILE}")
    assert all(r.headers.get("Authorization") == "Bearer hf_secret" for r in server.requests(origin="hub")[1:])
    assert server.requests(origin="cdn") and not any("Authorization" in r.headers
                                                     for r in server.requests(origin="cdn"))


def test_search_lists_a_repos_gguf_files_and_finds_repos(library, server, tiny):
    files = hub.search(REPO)
    n = len(tiny.read_bytes())
    assert sorted((f.path, f.size, f.quantization) for f in files) == [
        ("sub/dir/tiny-IQ4_XS.gguf", n + 64, "IQ4_XS"), (FILE, n, "Q8_0")]
    assert server.requests("GET")[-1].query.get("blobs") == "true"
    repos = hub.search("tiny")
    assert [r.repo for r in repos] == [REPO]
    assert server.requests("GET")[-1].query["search"] == "tiny" and server.requests("GET")[-1].query["filter"] == "gguf"
    assert hub.search("no-such-words") == []


@pytest.mark.parametrize("name,quant", [
    ("Qwen3-0.6B-Q4_K_M.gguf", "Q4_K_M"), ("model.Q8_0.gguf", "Q8_0"), ("Phi-4-mini-instruct-IQ4_XS.gguf", "IQ4_XS"),
    ("gemma-3-1b-it-f16.gguf", "F16"), ("SmolLM3-3B-BF16.gguf", "BF16"), ("llama_q4_0.gguf", "Q4_0"),
    ("Llama-3.2-1B-Instruct-UD-Q3_K_XL.gguf", "Q3_K_XL"), ("qwen2.5-coder.gguf", "")])
def test_quantization_from_the_file_name(name, quant):
    assert hub.quantization(name) == quant


def test_a_hub_out_of_reach_is_a_clear_error(library, server, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(hub.HubError, match=f"hf:{REPO}/{FILE}: cannot reach http://127.0.0.1:{port}"):
        hub.fetch(f"hf:{REPO}/{FILE}")
    assert kept(library) == []


def test_specs():
    assert hub.parse_spec("hf:a/b/c.gguf") == ("a/b", "c.gguf", None)
    assert hub.parse_spec("hf:a/b@v1/d/c.gguf") == ("a/b", "d/c.gguf", "v1")
    assert hub.parse_spec("hf:a/b/d/c.gguf@main") == ("a/b", "d/c.gguf", "main")
    for bad in ("hf:a/b", "hf:a/b/c.bin", "hf:a//c.gguf", "hf:a/b@/c.gguf"):
        with pytest.raises(hub.HubError, match="hf:OWNER/REPO/FILE.gguf"):
            hub.parse_spec(bad)


def test_the_command_line_end_to_end(library, server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(WREN_DATA_DIR=str(library.parent), HF_ENDPOINT=server.endpoint, HF_HOME=str(tmp_path / "hf-home"))

    def wren(*args, **extra):
        return subprocess.run([sys.executable, "-m", "wren.engine.cli", "models", *args], capture_output=True,
                              text=True, env=dict(env, **extra), timeout=300)

    got = wren("fetch", f"hf:{REPO}/{FILE}")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == str(library / FILE)
    listed = json.loads(wren("list", "--json").stdout)
    assert any(r["name"] == "tiny-Q8_0" and r["source"] == "library" for r in listed)
    found = wren("search", REPO)
    assert found.returncode == 0 and f"hf:{REPO}/{FILE}" in found.stdout and "Q8_0" in found.stdout
    assert [r["quantization"] for r in json.loads(wren("search", REPO, "--json").stdout)] == ["Q8_0", "IQ4_XS"]
    assert [r["repo"] for r in json.loads(wren("search", "tiny", "--json").stdout)] == [REPO]
    offline = wren("fetch", f"hf:{REPO}/sub/dir/tiny-IQ4_XS.gguf", HF_HUB_OFFLINE="1")
    assert offline.returncode == 1 and "HF_HUB_OFFLINE" in offline.stderr and "Traceback" not in offline.stderr
    assert wren("fetch", f"hf:{REPO}/{FILE}", HF_HUB_OFFLINE="1").returncode == 0
    bad = wren("fetch", "hf:nobody/nothing/x.gguf")
    assert bad.returncode == 1 and bad.stderr.startswith("wren: hf:nobody/nothing/x.gguf: no such repo")
