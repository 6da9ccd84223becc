"""Settings: defaults, TOML round trip, clear errors for wrong values, a broken file kept aside (where the threads
run: test_placement.py)."""
import pytest

from wren.engine import settings as S


def test_defaults_are_valid_and_round_trip(tmp_path):
    s = S.Settings().validated()
    path = S.save(s, tmp_path / "settings.toml")
    assert S.load(path).settings == s
    assert S.load(path).problem is None
    changed = S.Settings(model="Gemma-3-270M", threads=3, cores="custom", custom_cpus=(4, 5, 6),
                         strict_pinning=False, weight_policy="int4", context_length=2048, batch_size=64,
                         theme="dark", font_size=12).with_mode("reply", temperature=0.9, seed=42)
    S.save(changed, path)
    again = S.load(path)
    assert again.problem is None
    assert again.settings == changed
    assert again.settings.mode("reply").params().seed == 42
    assert again.settings.mode("chat").params().seed is None  # -1: a new seed each time


def test_strings_with_quotes_and_newlines_survive(tmp_path):
    s = S.Settings(model='/models/a "quoted"\\path\nwith newline.gguf')
    path = S.save(s, tmp_path / "s.toml")
    assert S.load(path).settings.model == s.model


@pytest.mark.parametrize("text, key", [
    ("threads = -1", "threads"),
    ("threads = 'four'", "threads"),
    ("cores = 'fastest'", "cores"),
    ("cores = 'custom'", "custom_cpus"),
    ("custom_cpus = [1, 1]", "custom_cpus"),
    ("weight_policy = 'int2'", "weight_policy"),
    ("context_length = 16", "context_length"),
    ("strict_pinning = 1", "strict_pinning"),
    ("colour = 'blue'", "colour"),
    ("[sampling.chat]\ntemperature = -2.0", "sampling.chat"),
    ("[sampling.chat]\ntopk = 3", "sampling.chat.topk"),
    ("[sampling.poetry]\ntemperature = 1.0", "poetry"),
    ("threads = [", "TOML"),
])
def test_wrong_values_name_the_setting(text, key):
    with pytest.raises(S.SettingsError, match=key.replace(".", r"\.")):
        S.parse(text)


def test_broken_file_is_kept_aside_and_defaults_used(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("threads = 'many'\n")
    result = S.load(path)
    assert result.settings == S.Settings()
    assert "threads" in result.problem
    assert not path.exists()
    assert (tmp_path / "settings.toml.bad").read_text() == "threads = 'many'\n"


def test_thread_limit_is_the_native_pools():
    from wren.engine.runtime import native

    assert S.Settings(threads=native.MAX_THREADS).validated()
    with pytest.raises(S.SettingsError, match=f"0 \\(one per selected core\\) to {native.MAX_THREADS}"):
        S.Settings(threads=native.MAX_THREADS + 1).validated()


def test_bad_values_fall_back_one_by_one_and_are_all_named(tmp_path):
    path = tmp_path / "settings.toml"
    text = ("threads = 'many'\ntheme = 'dark'\nfont_size = 16\ncores = 'fastest'\ncolour = 'blue'\n"
            "context_length = 2048\n[sampling.chat]\ntemperature = -2.0\nseed = 7\n")
    path.write_text(text)
    result = S.load(path)
    s = result.settings
    # every valid setting is kept, each bad one is its default
    assert (s.theme, s.font_size, s.context_length) == ("dark", 16, 2048)
    assert (s.threads, s.cores) == (S.Settings().threads, S.Settings().cores)
    assert s.mode("chat").seed == 7 and s.mode("chat").temperature == S.MODE_DEFAULTS["chat"].temperature
    for named in ("threads = 'many'", "cores = 'fastest'", "colour", "sampling.chat.temperature = -2.0"):
        assert named in result.problem
    assert "setting theme" not in result.problem and "setting font_size" not in result.problem
    assert (tmp_path / "settings.toml.bad").read_text() == text  # the file is kept aside, as it was


def test_custom_cores_without_cpus_fall_back_to_the_default_preset(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("cores = 'custom'\ntheme = 'light'\n")
    result = S.load(path)
    assert result.settings.cores == "big" and result.settings.theme == "light"
    assert "custom_cpus" in result.problem


def test_a_byte_that_is_not_utf8_keeps_the_file_aside_and_the_valid_keys(tmp_path):
    path = tmp_path / "settings.toml"
    raw = b'threads = 2\ntheme = "d\xffark"\nfont_size = 12\n'
    path.write_bytes(raw)
    loaded = S.load(path)
    assert (loaded.settings.threads, loaded.settings.font_size, loaded.settings.theme) == (2, 12, "system")
    assert "line 2 is not UTF-8" in loaded.problem and "settings.toml.bad" in loaded.problem
    assert (tmp_path / "settings.toml.bad").read_bytes() == raw
    S.save(loaded.settings, path)  # the next save writes a good file; the broken one stays kept
    assert S.load(path) == S.LoadResult(loaded.settings)
    assert (tmp_path / "settings.toml.bad").read_bytes() == raw


def test_lines_that_are_not_toml_are_left_out_and_the_others_kept(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("threads = 2\nthis is not toml\nfont_size = 12\n[sampling.chat]\ntemperature = 0.9\n")
    loaded = S.load(path)
    assert (loaded.settings.threads, loaded.settings.font_size) == (2, 12)
    assert loaded.settings.mode("chat").temperature == 0.9
    assert "line 2 is not valid TOML" in loaded.problem


def test_a_file_broken_after_loading_is_kept_aside_before_a_save(tmp_path):
    path = tmp_path / "settings.toml"
    S.save(S.Settings(threads=2), path)
    (tmp_path / "settings.toml.bad").write_text("kept from before\n")
    path.write_bytes(b"threads = 3\n\xfe\xfe\n")  # edited by hand while the window was open
    S.save(S.Settings(threads=4), path)
    assert S.load(path).settings.threads == 4
    assert (tmp_path / "settings.toml.bad").read_text() == "kept from before\n"
    assert (tmp_path / "settings.toml.bad-2").read_bytes() == b"threads = 3\n\xfe\xfe\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_broken_file_that_cannot_be_kept_aside_is_not_overwritten(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    path.write_bytes(b"threads = \xff\n")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(S.os, "replace", refuse)
    loaded = S.load(path)
    assert "kept as" not in loaded.problem
    with pytest.raises(OSError, match="cannot be kept aside .*it was not overwritten"):
        S.save(S.Settings(threads=2), path)
    assert path.read_bytes() == b"threads = \xff\n"
