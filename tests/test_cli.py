"""The command line as a user runs it: `wren info`, `wren bench --kernels`, `wren` without a display."""
import json
import os
import subprocess
import sys

import pytest

from wren.engine.runtime import native


def wren(*args, env=None, timeout=300, stdin=None):
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=stdin)
    return proc


def test_info_reports_features_kernels_and_topology():
    proc = wren("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fmt in native.Format:
        assert f"{fmt.label}: {native.chosen_variant(fmt).label}" in out
    assert "CPU features:" in out and "recommended for generation: CPUs" in out
    for feature in native.cpu_features():
        assert feature in out


def test_environment_forces_the_reference():
    proc = wren("info", env={"WREN_KERNELS": "reference"})
    assert proc.returncode == 0, proc.stderr
    for fmt in native.Format:
        assert f"{fmt.label}: reference" in proc.stdout
    assert "forces the scalar reference" in proc.stdout


def test_no_display_prints_the_cli_hint():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0 and "wren info" in proc.stdout and "Traceback" not in proc.stderr


def test_kernel_bench_prints_and_records(tmp_path):
    out_file = tmp_path / "bench.json"
    proc = wren("bench", "--kernels", "--quick", "-t", "1", "--formats", "q4_0", "--json", "-o", str(out_file))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["read_gbs"]["1"] > 0
    assert {(g["n"], g["k"]) for g in data["gemv"]} == {(576, 1536), (1536, 576)}
    assert all(g["gbs"] > 0 and g["format"] == "q4_0" for g in data["gemv"])
    assert all(g["gops"] > 0 for g in data["gemm"])
    assert json.loads(out_file.read_text()) == data


def test_bad_option_is_a_clear_error():
    proc = wren("bench", "--kernels", "--formats", "q9_9")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


# ---- with the default model ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    from conftest import model_or_skip

    return str(model_or_skip("SmolLM2-135M-Instruct"))


@pytest.mark.model
def test_tokenize_mirrors_llama_tokenize(smollm2, tmp_path):
    import conftest

    ref = json.loads(conftest.reference_file("SmolLM2-135M-Instruct.Q4_1").read_text())
    entry = next(e for e in ref["tokenize"] if e["text"] == "<|im_start|>user\nhi<|im_end|>")
    f = tmp_path / "t.txt"
    f.write_text(entry["text"], encoding="utf-8")
    for flags, key in (([], "ids_with_bos"), (["--no-bos"], "ids_no_bos"), (["--no-bos", "--special"], "ids_special")):
        proc = wren("tokenize", "-m", smollm2, *flags, str(f))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == entry[key]


@pytest.mark.model
def test_run_raw_greedy_streams_the_greedy_continuation(smollm2, tmp_path):
    """The streamed text is the model's greedy continuation (as the Python API computes it), with special tokens
    parsed and BOS added as llama.cpp does; it begins as llama.cpp's does (" Paris." - later tokens can part at
    near-ties, see test_forward)."""
    import conftest
    import numpy as np

    from wren.engine.runtime.model import Model
    from wren.engine.runtime.tokenizer import Tokenizer

    ref = json.loads(conftest.reference_file("SmolLM2-135M-Instruct.Q4_1").read_text())
    p = next(p for p in ref["prompts"] if p["text"] == "The capital of France is")
    f = tmp_path / "p.txt"
    f.write_text(p["text"], encoding="utf-8")
    proc = wren("run", "-m", smollm2, "--raw", "--greedy", "-n", "24", "-t", "2", str(f))
    assert proc.returncode == 0, proc.stderr
    m = Model(smollm2)
    tok = Tokenizer.from_gguf(m.gguf)
    ids = tok.encode(p["text"], add_special=True, parse_special=True)
    assert ids == p["ids"]
    ctx = m.context(64, 64, 1)
    logits, out = ctx.forward(ids, 0)[0], []
    for i in range(24):
        out.append(int(np.argmax(logits)))
        logits = ctx.forward([out[-1]], len(ids) + i)[0]
    assert proc.stdout.rstrip("\n") == tok.decode(out).rstrip("\n")
    assert proc.stdout.startswith(" Paris.") and p["greedy_text"].startswith(" Paris.")


@pytest.mark.model
def test_model_bench_reports_every_figure(smollm2):
    proc = wren("bench", "-m", smollm2, "-t", "1", "-p", "32", "-n", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    assert r["engine"] == "wren" and r["prompt_tokens"] == 32 and r["gen_tokens"] == 8
    assert r["prefill_tok_s"] > 0 and r["decode_tok_s"] > 0 and r["ttft_s"] > 0 and r["peak_rss_mib"] > 50


@pytest.mark.model
def test_run_and_bench_make_the_memory_check(smollm2, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("Hello", encoding="utf-8")
    for args in (("run", "-m", smollm2, "--raw", str(f)), ("bench", "-m", smollm2, "-p", "8", "-n", "2")):
        proc = wren(*args, env={"WREN_MEMORY_AVAILABLE": str(1 << 20)})
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "GiB is available" in proc.stderr


@pytest.mark.model
def test_wrong_flags_are_clear_errors(smollm2, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("Hello", encoding="utf-8")
    for args, what in ((("run", "-m", smollm2, "--raw", "--weights", "int2", str(f)), "weight_policy"),
                       (("run", "-m", smollm2, "--raw", "-t", "many", str(f)), "-t takes a number"),
                       (("bench", "-m", smollm2, "-t", "0x"), "-t takes a number"),
                       (("run", "-m", "no-such-model", "--raw", str(f)), "no model file or installed model")):
        proc = wren(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr and what in proc.stderr, proc.stderr


def test_corrupt_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(40))
    proc = wren("run", "-m", str(bad), "--raw", str(bad))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "bad.gguf" in proc.stderr


def test_chat_prompt_ctrl_c_clears_the_line_and_ctrl_d_quits(monkeypatch, capsys):
    """At `wren chat`'s prompt Ctrl+C throws away what was typed and asks again; only Ctrl+D (end of input) leaves."""
    from wren.engine.cli import chat as cli

    answers = iter([KeyboardInterrupt, "hello", EOFError])

    def fake_input(prompt=""):
        a = next(answers)
        if isinstance(a, type) and issubclass(a, BaseException):
            raise a
        return a

    monkeypatch.setattr("builtins.input", fake_input)
    assert cli.read_prompt("> ") == ""
    assert "Ctrl+D" in capsys.readouterr().err
    assert cli.read_prompt("> ") == "hello"
    assert cli.read_prompt("> ") is None


def test_chat_history_that_cannot_be_written_is_read_only_and_says_why(capsys, monkeypatch, tmp_path):
    """`wren chat` on a database of a newer version: the file is left alone, the chat runs, and it says why it is
    not kept."""
    import sqlite3

    from wren.engine.cli import chat as cli
    from wren.engine.store import SCHEMA_VERSION, Store, default_path

    monkeypatch.setenv("WREN_DATA_DIR", str(tmp_path))
    Store().close()
    with sqlite3.connect(default_path()) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = cli._open_history()
    try:
        assert "newer Wren" in store.read_only
        assert "newer Wren" in capsys.readouterr().err
        store.new_conversation("this one is not kept")
    finally:
        store.close()
    with sqlite3.connect(default_path()) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)


@pytest.mark.parametrize("command", [["run", "x.txt"], ["chat"], ["email", "--points", "x"], ["reply"],
                                     ["summarize"], ["serve"], ["bench"]])
@pytest.mark.parametrize("value", ["0", "10", "1e9", "1000000000", "-1"])
def test_ctx_out_of_range_is_refused_the_same_by_every_command(command, value, capsys):
    from wren.engine.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command[:1], "--ctx", value, *command[1:]])
    assert exit_.value.code == 2
    assert "--ctx" in (err := capsys.readouterr().err) and "128 to 1048576" in err


def test_ctx_above_what_the_model_holds_is_refused_not_cut(tiny, capsys):
    from wren.engine.cli import build_parser
    from wren.engine.cli.common import with_flags
    from wren.engine.library import catalog
    from wren.engine.settings import Settings

    most = catalog.describe(tiny).context_length
    args = build_parser().parse_args(["run", "-m", str(tiny), "--ctx", str(most), "x.txt"])
    assert with_flags(Settings(), args).context_length == most
    args = build_parser().parse_args(["run", "-m", str(tiny), "--ctx", str(most + 1), "x.txt"])
    with pytest.raises(ValueError, match=f"more than tiny-llama.gguf holds: 128 to {most} tokens"):
        with_flags(Settings(), args)
