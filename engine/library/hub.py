"""Models from Hugging Face: `wren models fetch hf:OWNER/REPO/FILE.gguf[@REVISION]` and `wren models search`.

huggingface_hub does the transfer (hf_hub_download: the LFS redirect to the CDN, a dropped connection resumed with a
Range request) and honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE. The file is downloaded into a staging folder
inside the models dir (so nothing half-written or unchecked is ever a `*.gguf` of the library), never past the
size the hub reports, checked against the sha256 the hub reports for LFS files (and the catalog's, where the catalog
knows the file), validated as a model Wren can run, and only then moved into the library.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wren.engine.library import catalog
from wren.engine.library.catalog import CatalogError, Progress
from wren.engine.library.pypi import sha256_file
from wren.engine.runtime.gguffile import GGUFError

PREFIX = "hf:"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Za-z0-9]+)*|B?F16|F32)(?![A-Za-z0-9])", re.IGNORECASE)


class HubError(CatalogError):
    """Something Hugging Face (or the way to it) refused or failed; the message says what."""


@dataclass(frozen=True)
class HubFile:
    """A GGUF file of a repo."""
    repo: str
    path: str  # in the repo, maybe in a folder
    size: int | None
    quantization: str  # from the file name ("" when it names none)
    sha256: str | None


@dataclass(frozen=True)
class HubRepo:
    """A GGUF repo found by a search."""
    repo: str
    downloads: int | None
    likes: int | None


def quantization(file_name: str) -> str:
    """The quantization a GGUF's name says (Q4_K_M, Q8_0, IQ4_XS, F16 ...; "" when none)."""
    m = _QUANT.search(Path(file_name).stem)
    return m.group(1).upper() if m else ""


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """hf:OWNER/REPO/FILE.gguf (FILE may be in folders), with @REVISION after the repo or at the end: (repo, file,
    revision or None)."""
    rest = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    revision = None
    parts = rest.split("/")
    if len(parts) >= 2 and "@" in parts[1]:
        parts[1], revision = parts[1].split("@", 1)
    elif "@" in parts[-1]:
        parts[-1], revision = parts[-1].rsplit("@", 1)
    if len(parts) < 3 or not all(parts) or revision == "" or not parts[-1].lower().endswith(".gguf"):
        raise HubError(f"{spec!r} is not a Hugging Face file: write hf:OWNER/REPO/FILE.gguf (FILE may be in a "
                       "folder; @REVISION after the repo or at the end picks a branch, tag or commit)")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None  # read now (huggingface_hub reads it once, when imported)


def _hub_error(e: Exception, what: str) -> HubError:
    """huggingface_hub's and its HTTP client's errors as one clear HubError."""
    from huggingface_hub import constants, errors

    if isinstance(e, errors.OfflineModeIsEnabled) or (_offline() and isinstance(e, errors.LocalEntryNotFoundError)):
        return HubError(f"{what}: HF_HUB_OFFLINE is set, so Hugging Face is not asked; unset it to go online")
    if isinstance(e, errors.GatedRepoError):
        return HubError(f"{what}: the repo is gated; accept its terms on Hugging Face and set HF_TOKEN")
    if isinstance(e, errors.RepositoryNotFoundError):
        return HubError(f"{what}: no such repo (or it is private: set HF_TOKEN)")
    if isinstance(e, errors.RevisionNotFoundError):
        return HubError(f"{what}: no such revision")
    if isinstance(e, errors.RemoteEntryNotFoundError):
        return HubError(f"{what}: no such file in the repo")
    if isinstance(e, errors.HfHubHTTPError):
        return HubError(f"{what}: {str(e).splitlines()[0]}")
    if isinstance(e, errors.LocalEntryNotFoundError) or _from_http_client(e):
        return HubError(f"{what}: cannot reach {_endpoint() or constants.ENDPOINT} ({str(e).splitlines()[0]})")
    return HubError(f"{what}: {e}")


def _from_http_client(e: Exception) -> bool:
    return (type(e).__module__ or "").split(".")[0] in ("httpx", "httpx2")


def _calling(what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), a failure of the hub or of the way to it raised as a HubError."""
    try:
        return fn(*args, **kwargs)
    except HubError:
        raise
    except (OSError, ValueError) as e:  # huggingface_hub's errors are these
        raise _hub_error(e, what) from None
    except Exception as e:
        if _from_http_client(e):
            raise _hub_error(e, what) from None
        raise


# ---- search --------------------------------------------------------------------------------------------------------


def repo_files(repo: str, revision: str | None = None) -> list[HubFile]:
    """The GGUF files of a repo, with their sizes and sha256 (LFS)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint())
    info = _calling(repo, api.model_info, repo, revision=revision, files_metadata=True)
    out = []
    for s in info.siblings or ():
        if s.rfilename.lower().endswith(".gguf"):
            size = s.lfs.size if s.lfs is not None else s.size
            out.append(HubFile(repo, s.rfilename, size, quantization(s.rfilename),
                               s.lfs.sha256 if s.lfs is not None else None))
    return out


def search_repos(text: str, limit: int = 30) -> list[HubRepo]:
    """GGUF repos whose name matches text, most downloaded first."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint())
    found = _calling(f"search {text!r}", lambda: list(api.list_models(search=text, filter="gguf", sort="downloads",
                                                                      limit=limit)))
    return [HubRepo(m.id, m.downloads, m.likes) for m in found]


def search(text: str) -> list[HubFile] | list[HubRepo]:
    """OWNER/REPO (or hf:OWNER/REPO): the repo's GGUF files; anything else: GGUF repos matching it."""
    text = text.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    if not text:
        raise HubError("search for what? give words of a model's name, or OWNER/REPO for its files")
    if re.fullmatch(r"[\w.-]+/[\w.-]+(@\S+)?", text):
        repo, _, revision = text.partition("@")
        return repo_files(repo, revision or None)
    return search_repos(text)


# ---- fetch ---------------------------------------------------------------------------------------------------------


def _progress_class(cap: int, progress: Progress | None, name: str):
    """A tqdm stand-in for hf_hub_download: reports to `progress` and stops a transfer that goes past `cap` bytes."""

    class Bar:
        def __init__(self, *args, total=None, initial=0, **kwargs):
            self.n = initial

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n: int = 1) -> None:
            self.n += n
            if self.n > cap:
                raise HubError(f"{name}: the server sent more than the {cap} bytes the hub reports; not kept")
            if progress:
                progress(self.n, cap, "download")

        def close(self) -> None:
            pass

    return Bar


def fetch(spec: str, progress: Progress | None = None) -> Path:
    """Download hf:OWNER/REPO/FILE.gguf[@REVISION] into the library (checked: size, sha256, a model Wren can run);
    returns its path. A file already in the library is kept (offline: found by its name)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    repo, file, revision = parse_spec(spec)
    name = Path(file).name
    what = f"hf:{repo}/{file}" + (f"@{revision}" if revision else "")
    target = catalog.models_dir() / name
    if _offline():
        if target.is_file():
            return target
        raise HubError(f"{what}: HF_HUB_OFFLINE is set and {name} is not in the library ({target.parent}); unset "
                       "HF_HUB_OFFLINE to download it")
    meta = _calling(what, get_hf_file_metadata, hf_hub_url(repo, file, revision=revision, endpoint=_endpoint()),
                    endpoint=_endpoint())
    if meta.size is None:
        raise HubError(f"{what}: the hub reports no size for the file; not fetched")
    expected = {h for h in (meta.etag if meta.etag and _SHA256.fullmatch(meta.etag) else None,
                            getattr(catalog.known_by_file(name), "sha256", None)) if h}
    if not expected:
        raise HubError(f"{what}: the hub reports no sha256 for the file (not an LFS file) and the catalog does not "
                       "know it; not fetched")
    if len(expected) > 1:
        raise HubError(f"{what}: the hub's sha256 ({meta.etag}) is not the catalog's; not fetched")
    sha = expected.pop()
    if target.exists():
        if sha256_file(target) == sha:
            return target
        raise HubError(f"the library already has another {name}; remove it first (wren models remove {name})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wren-fetch-hf-", dir=target.parent) as staging:
        got = Path(_calling(what, hf_hub_download, repo, file, revision=revision, local_dir=staging,
                            endpoint=_endpoint(), tqdm_class=_progress_class(meta.size, progress, what)))
        size = got.stat().st_size
        if size != meta.size:
            raise HubError(f"{what}: {size} bytes arrived, the hub reports {meta.size}; not kept")
        digest = sha256_file(got)
        if digest != sha:
            raise HubError(f"{what}: the downloaded file has sha256 {digest}, expected {sha}; it was not kept")
        try:
            catalog.validate(got)
        except GGUFError as e:
            raise HubError(f"{what} was not kept: {e}") from None
        os.replace(got, target)
    return target


__all__ = ["HubError", "HubFile", "HubRepo", "PREFIX", "fetch", "parse_spec", "quantization", "repo_files", "search",
           "search_repos"]
