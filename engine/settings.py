"""Settings: a typed model, saved as TOML in the platformdirs config dir.

Every field is checked when settings are loaded or changed; wrong values raise SettingsError naming each key and
what it accepts. A settings file with values that cannot be used is kept aside (settings.toml.bad), each such value
has its default and the others are kept, so a broken file never stops the app and is never silently lost.

Where the threads run follows from these settings and the CPU topology: engine/runtime/placement.py.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from wren.engine.runtime.model import DEFAULT_BATCH, POLICIES
from wren.engine.runtime.native import MAX_THREADS
from wren.engine.runtime.sampling import SamplingParams

CORE_PRESETS = ("big", "all", "system", "custom")
THEMES = ("system", "light", "dark")
MODES = ("chat", "email", "reply", "summarize")
CONTEXT_RANGE = (128, 1 << 20)  # tokens


class SettingsError(ValueError):
    """A setting has a value it cannot take."""


@dataclass(frozen=True)
class ModeSampling:
    """Sampling defaults of one mode (product.md, "Generation")."""
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0  # off, as llama.cpp's default: a penalty on the prompt's words pushes a small
    # model away from the very words of the question
    seed: int = -1  # -1: a new seed each time
    max_new_tokens: int = 512

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                              repeat_penalty=self.repeat_penalty, seed=None if self.seed < 0 else self.seed)


MODE_DEFAULTS = {
    "chat": ModeSampling(temperature=0.3),
    "email": ModeSampling(temperature=0.4, max_new_tokens=640),
    "reply": ModeSampling(temperature=0.5, max_new_tokens=120),
    "summarize": ModeSampling(temperature=0.2, repeat_penalty=1.05, max_new_tokens=400),
}


@dataclass(frozen=True)
class Settings:
    model: str = ""  # a GGUF path or a known model's name; "" is the default model
    threads: int = 0  # 0: one per selected core
    cores: str = "big"  # big | all | system | custom
    custom_cpus: tuple[int, ...] = ()  # with cores = "custom"
    strict_pinning: bool = True  # each thread pinned alone to one core
    weight_policy: str = "mixed"
    context_length: int = 4096
    batch_size: int = DEFAULT_BATCH
    theme: str = "system"
    font_size: int = 0  # 0: the system's
    enter_sends: bool = False  # Enter sends a chat message (Shift+Enter: a new line); otherwise Ctrl+Enter does
    engine_url: str = ""  # an OpenAI-compatible server that answers instead of this computer ("": this computer)
    engine_key: str = ""  # its API key (sent as Authorization: Bearer), "" for none
    sampling: dict[str, ModeSampling] = field(default_factory=lambda: dict(MODE_DEFAULTS))

    def problems(self) -> list[tuple[str, str]]:
        """Every value it cannot take, as (key, message): the key is a field's name or sampling.<mode>.<field>."""
        out: list[tuple[str, str]] = []

        def bad(key: str, what: str, shown: str | None = None) -> None:
            out.append((key, f"setting {shown or key} = {getattr(self, shown or key, None)!r} is not valid: {what}"))

        if not isinstance(self.model, str):
            bad("model", "a file path or a model name")
        if not isinstance(self.threads, int) or not 0 <= self.threads <= MAX_THREADS:
            bad("threads", f"0 (one per selected core) to {MAX_THREADS}")
        if self.cores not in CORE_PRESETS:
            bad("cores", "one of " + ", ".join(CORE_PRESETS))
        elif self.cores == "custom" and not self.custom_cpus:
            bad("cores", "with cores = 'custom', a list of one or more CPU numbers", shown="custom_cpus")
        if any(not isinstance(c, int) or c < 0 for c in self.custom_cpus) or \
                len(set(self.custom_cpus)) != len(self.custom_cpus):
            bad("custom_cpus", "distinct CPU numbers, 0 or more")
        if not isinstance(self.strict_pinning, bool):
            bad("strict_pinning", "true or false")
        if self.weight_policy not in POLICIES:
            bad("weight_policy", "one of " + ", ".join(POLICIES))
        if not isinstance(self.context_length, int) or \
                not CONTEXT_RANGE[0] <= self.context_length <= CONTEXT_RANGE[1]:
            bad("context_length", f"{CONTEXT_RANGE[0]} to {CONTEXT_RANGE[1]} tokens")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 4096:
            bad("batch_size", "1 to 4096 tokens")
        if self.theme not in THEMES:
            bad("theme", "one of " + ", ".join(THEMES))
        if not isinstance(self.font_size, int) or not (self.font_size == 0 or 6 <= self.font_size <= 72):
            bad("font_size", "0 (the system's) or 6 to 72")
        if not isinstance(self.engine_url, str) or (self.engine_url and not _is_server_url(self.engine_url)):
            bad("engine_url", "empty (this computer) or a server's address, http://host:port")
        if not isinstance(self.engine_key, str) or any(c.isspace() or not c.isprintable() for c in self.engine_key):
            bad("engine_key", "empty or a key without spaces")
        for mode in MODES:
            m = self.sampling.get(mode)
            if not isinstance(m, ModeSampling):
                out.append((f"sampling.{mode}", f"setting sampling.{mode} is missing"))
                continue
            for f in fields(ModeSampling):
                key, value = f"sampling.{mode}.{f.name}", getattr(m, f.name)
                if f.name == "max_new_tokens":
                    what = "" if isinstance(value, int) and 1 <= value <= 1 << 16 else "1 to 65536"
                else:
                    try:
                        replace(MODE_DEFAULTS[mode], **{f.name: value}).params().validated()
                        what = ""
                    except (ValueError, TypeError) as e:
                        found = re.search(r"\(([^()]*)\)$", str(e))
                        what = found.group(1) if found else str(e)
                if what:
                    out.append((key, f"setting {key} = {value!r} is not valid: {what}"))
        return out

    def validated(self) -> "Settings":
        """Itself, or SettingsError naming every value it cannot take."""
        problems = self.problems()
        if problems:
            raise SettingsError("; ".join(message for _, message in problems))
        return self

    def mode(self, name: str) -> ModeSampling:
        return self.sampling.get(name, MODE_DEFAULTS.get(name, ModeSampling()))

    def with_mode(self, name: str, **changes) -> "Settings":
        sampling = dict(self.sampling)
        sampling[name] = replace(self.mode(name), **changes)
        return replace(self, sampling=sampling)


def _is_server_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query and not parts.fragment \
        and url.strip() == url


# ---- TOML ------------------------------------------------------------------------------------------------------


def config_dir() -> Path:
    env = os.environ.get("WREN_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("wren", appauthor=False))


def settings_path() -> Path:
    return config_dir() / "settings.toml"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SettingsError(f"cannot save the number {v}")
        return repr(v)
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise SettingsError(f"cannot save a {type(v).__name__} in TOML")


def to_toml(s: Settings) -> str:
    lines = ["# Wren settings. Edit here or in the window's Settings dialog.", ""]
    for f in fields(Settings):
        if f.name == "sampling":
            continue
        lines.append(f"{f.name} = {_toml_value(getattr(s, f.name))}")
    for mode in MODES:
        lines += ["", f"[sampling.{mode}]"]
        for k, v in asdict(s.mode(mode)).items():
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"setting {name} = {value!r} is not valid: true or false")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"setting {name} = {value!r} is not valid: a number")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"setting {name} = {value!r} is not valid: a whole number")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"setting {name} = {value!r} is not valid: text")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in value):
            raise SettingsError(f"setting {name} = {value!r} is not valid: a list of whole numbers")
        return tuple(value)
    raise SettingsError(f"setting {name}: unsupported")


def _read(data: dict) -> tuple[Settings, list[str]]:
    """Settings from parsed TOML, each value that cannot be used replaced by its default, and what each such value
    was; unknown keys are problems too (a typo should not pass unnoticed)."""
    base = Settings()
    kwargs: dict[str, Any] = {}
    problems: list[str] = []
    known = {f.name for f in fields(Settings)}
    for key, value in data.items():
        if key not in known:
            problems.append(f"unknown setting {key!r} (known: {', '.join(sorted(known))})")
        elif key == "sampling":
            if not isinstance(value, dict):
                problems.append("setting sampling must be a table of modes")
                continue
            sampling = dict(base.sampling)
            for mode, table in value.items():
                if mode not in MODES or not isinstance(table, dict):
                    problems.append(f"unknown sampling mode {mode!r} (modes: {', '.join(MODES)})")
                    continue
                current = asdict(sampling[mode])
                for k, v in table.items():
                    if k not in current:
                        problems.append(f"unknown setting sampling.{mode}.{k} (known: {', '.join(current)})")
                        continue
                    try:
                        current[k] = _coerce(f"sampling.{mode}.{k}", v, current[k])
                    except SettingsError as e:
                        problems.append(str(e))
                sampling[mode] = ModeSampling(**current)
            kwargs["sampling"] = sampling
        else:
            try:
                kwargs[key] = _coerce(key, value, getattr(base, key))
            except SettingsError as e:
                problems.append(str(e))
    s = Settings(**kwargs)
    while bad := s.problems():  # a reset can make another value wrong (custom cores without their CPUs)
        problems += [message for _, message in bad]
        sampling, resets = dict(s.sampling), {}
        for key, _ in bad:
            if key.startswith("sampling."):
                _, mode, name = key.split(".")
                sampling[mode] = replace(sampling[mode], **{name: getattr(MODE_DEFAULTS[mode], name)})
            else:
                resets[key] = getattr(base, key)
        s = replace(s, sampling=sampling, **resets)
    return s, problems


def from_dict(data: dict) -> Settings:
    """Settings from parsed TOML; SettingsError names every value that cannot be used, unknown keys included."""
    s, problems = _read(data)
    if problems:
        raise SettingsError("; ".join(problems))
    return s


def _toml(text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"the settings file is not valid TOML: {e}") from None


def _salvage(text: str) -> tuple[dict, list[str]]:
    """What can be read of a settings file's text: the lines TOML cannot read (or that hold bytes that were not
    UTF-8, here U+FFFD) are left out one by one, so that every valid setting is kept; and what was left out."""
    lines = text.split("\n")
    problems = [f"line {n + 1} is not UTF-8 text and was left out" for n, line in enumerate(lines) if "\ufffd" in line]
    lines = ["" if "\ufffd" in line else line for line in lines]
    while True:
        try:
            return tomllib.loads("\n".join(lines)), problems
        except tomllib.TOMLDecodeError as e:
            found = re.search(r"line (\d+)", str(e))
            n = int(found.group(1)) - 1 if found else -1
            if not 0 <= n < len(lines) or not lines[n]:  # nothing more to leave out
                return {}, problems + [f"the settings file is not valid TOML: {e}"]
            problems.append(f"line {n + 1} is not valid TOML and was left out ({e})")
            lines[n] = ""


def _keep_aside(path: Path) -> Path:
    """Rename a settings file that could not be used to settings.toml.bad (.bad-2, ... when one was kept before)."""
    bad = path.with_name(path.name + ".bad")
    n = 1
    while bad.exists():
        n += 1
        bad = path.with_name(f"{path.name}.bad-{n}")
    os.replace(path, bad)
    return bad


def parse(text: str) -> Settings:
    return from_dict(_toml(text))


@dataclass
class LoadResult:
    settings: Settings
    problem: str | None = None  # why the file was not used, when it was not


def _read_file(path: Path) -> tuple[Settings, list[str]]:
    """The settings a file holds, each value that cannot be used its default, and what could not be used (a line
    that is not UTF-8 or not TOML, a wrong value, an unknown key). FileNotFoundError when there is none."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    data, problems = _salvage(text)
    settings, wrong = _read(data)
    return settings, problems + wrong


def load(path: Path | None = None) -> LoadResult:
    """The saved settings, or the defaults when there is no file. Each value that cannot be used is replaced by its
    default (the others are kept, also from a file that is not all UTF-8 or TOML) and named in `problem`; such a file
    is renamed to settings.toml.bad (kept, never deleted), and the next save writes a good one."""
    path = path or settings_path()
    try:
        settings, problems = _read_file(path)
    except FileNotFoundError:
        return LoadResult(Settings())
    except OSError as e:
        return LoadResult(Settings(), f"cannot read {path}: {e}; every setting has its default")
    if not problems:
        return LoadResult(settings)
    what = (f"{len(problems)} value{'s' if len(problems) > 1 else ''} could not be used and "
            f"{'have their defaults' if len(problems) > 1 else 'has its default'}: " + "; ".join(problems))
    try:
        kept = f"; the file was kept as {_keep_aside(path)}"
    except OSError:
        kept = ""
    return LoadResult(settings, f"{path}: {what}{kept}")


def save(s: Settings, path: Path | None = None) -> Path:
    """Write atomically (a temporary file renamed over the old one). A file there that cannot be used (edited by
    hand since it was loaded) is kept aside as settings.toml.bad first; when it cannot be, OSError and nothing is
    written."""
    path = path or settings_path()
    text = to_toml(s.validated())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        broken = bool(_read_file(path)[1])
    except FileNotFoundError:
        broken = False
    except OSError:
        broken = True
    if broken:
        try:
            _keep_aside(path)
        except OSError as e:
            raise OSError(e.errno, f"{path} cannot be used and cannot be kept aside ({e.strerror}); it was not "
                                   "overwritten") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
