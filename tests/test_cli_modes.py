"""The assistant modes from the command line, with the real default model: JSON shapes scripts rely on, stdin input,
the memory check and bad files as clear errors, and the model library commands."""
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import model_or_skip
from test_cli import wren

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def smollm2():
    return str(model_or_skip("SmolLM2-135M-Instruct"))


def run_json(*args, stdin=None, env=None):
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "wren.engine.cli", *args, "--json"], input=stdin,
                          capture_output=True, text=True, timeout=600, env=full_env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_email_json(smollm2, tmp_path):
    thread = tmp_path / "thread.txt"
    thread.write_text("Hi, can we move our call? Friday does not work for me. Sam")
    proc = run_json("email", "-m", smollm2, "-t", "1", "--points", "Thursday 10am works; send the agenda",
                    "--to", "Sam, a colleague", "--thread", str(thread), "--tone", "friendly", "--length", "short")
    out = json.loads(proc.stdout)
    assert set(out) == {"subject", "body"} and out["subject"].strip() and out["body"].strip()


def test_reply_json_from_stdin(smollm2):
    proc = run_json("reply", "-m", smollm2, "-", stdin="Could you join the design review on Monday at 2pm?")
    out = json.loads(proc.stdout)
    assert set(out) == {"replies"} and len(out["replies"]) == 3
    assert len({r.lower() for r in out["replies"]}) == 3 and all(r.strip() for r in out["replies"])


def test_reply_no_reply_needed(smollm2, tmp_path):
    msg = tmp_path / "notice.eml"
    msg.write_text("Your statement is ready. This is an automated message, please do not reply to this email.")
    assert json.loads(run_json("reply", "-m", smollm2, str(msg)).stdout) == {"no_reply_needed": True}


def test_summarize_json(smollm2, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("The library opens a new reading room on Monday. It has forty seats, quiet hours every morning, "
                   "and power outlets at every desk. Members can book a seat online for up to three hours.\n\n"
                   "The old reading room closes for repairs until the end of the year.")
    out = json.loads(run_json("summarize", "-m", smollm2, str(doc), "--style", "key-points",
                              "--length", "short").stdout)
    assert set(out) == {"summary"} and out["summary"].strip()
    assert all(line.startswith("- ") for line in out["summary"].splitlines())  # key points: bullet lines


def test_chat_reads_turns_from_stdin_and_keeps_them_in_the_history(smollm2, tmp_path):
    from wren.engine.store import Store
    data = {"WREN_DATA_DIR": str(tmp_path / "data")}
    proc = run_json("chat", "-m", smollm2, stdin="What is 2 + 2?\nAnd 3 + 3?\n", env=data)
    turns = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(turns) == 2 and all(t["reply"] for t in turns)
    assert turns[1]["cached_tokens"] > 0 and turns[1]["cached_tokens"] < turns[1]["prompt_tokens"]
    with Store(tmp_path / "data" / "wren.sqlite3") as store:  # the window's history
        (conv,) = store.conversations()
        assert conv.title == "What is 2 + 2?"
        assert [(m.role, m.content) for m in store.messages(conv.id)] == [
            ("user", "What is 2 + 2?"), ("assistant", turns[0]["reply"]),
            ("user", "And 3 + 3?"), ("assistant", turns[1]["reply"])]
    run_json("chat", "-m", smollm2, "--no-save", stdin="Hello\n", env=data)
    with Store(tmp_path / "data" / "wren.sqlite3") as store:
        assert len(store.conversations()) == 1


def test_ctrl_c_stops_the_answer_not_the_program(smollm2):
    proc = subprocess.Popen([sys.executable, "-m", "wren.engine.cli", "chat", "-m", smollm2],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"Write a very long story about a dragon, at least a thousand words.\n")
    proc.stdin.flush()
    first = proc.stdout.read(1)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(b"Say OK.\n", timeout=300)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    answers = [a for a in (first + out).decode().split("\n") if a.strip()]
    assert len(answers) >= 2  # the stopped story, then the answer to the next message


def test_memory_check_and_corrupt_model_are_clear_errors(smollm2, tmp_path):
    proc = wren("email", "-m", smollm2, "--points", "x", env={"WREN_MEMORY_AVAILABLE": str(50 << 20)})
    assert proc.returncode == 1 and "GiB is available" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(open(smollm2, "rb").read(1 << 20))
    for cmd in (["summarize", "-m", str(bad), str(bad)], ["email", "-m", str(bad), "--points", "x"]):
        proc = wren(*cmd)
        assert proc.returncode == 1 and "broken.gguf" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_mode_options_are_clear_errors(smollm2):
    proc = wren("email", "-m", smollm2, "--points", "x", "--tone", "sarcastic")
    assert proc.returncode == 1 and "tone" in proc.stderr and "Traceback" not in proc.stderr
    proc = wren("chat", "-m", smollm2, "-t", "zero")
    assert proc.returncode == 1 and "-t" in proc.stderr


def test_models_list_json(smollm2):
    rows = json.loads(run_json("models", "list").stdout)
    names = {r["name"]: r for r in rows}
    assert set(names) >= {"SmolLM2-135M-Instruct", "Gemma-3-270M", "Qwen2.5-Coder-1.5B-Instruct"}
    assert names["SmolLM2-135M-Instruct"]["installed"]
    proc = wren("models", "remove", "no-such-model")
    assert proc.returncode == 1 and "no installed model" in proc.stderr


@pytest.mark.model
def test_summarize_output_is_the_summary_alone_and_long_jobs_show_progress(smollm2, tmp_path):
    """stdout holds the summary only (no progress line over it); stderr, not a terminal here, says how a long job
    (a text cut into parts) gets on, line by line."""
    doc = tmp_path / "long.txt"
    doc.write_text("\n\n".join(f"Section {i}. The team met on day {i} and agreed on step {i} of the plan. "
                               f"Each member will report on it within {i + 2} days." for i in range(60)))
    proc = wren("summarize", "-m", smollm2, "-t", "1", "--ctx", "512", "--style", "tldr", str(doc))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout and "summarizing" not in proc.stdout and "%" not in proc.stdout
    assert proc.stdout.strip() and len(proc.stdout.strip().splitlines()) == 1
    assert "\r" not in proc.stderr  # not a terminal: no redrawn line
    assert "summarizing" in proc.stderr and "parts" in proc.stderr


@pytest.mark.model
def test_chat_commands_are_handled_locally(smollm2):
    proc = wren("chat", "-m", smollm2, "--no-save", "--json", stdin="/help\n/new\n/nonsense\n/quit\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""  # nothing was sent to the model
    for cmd in ("/help", "/new", "/regen", "/quit"):
        assert cmd in proc.stderr
    assert "new conversation" in proc.stderr.lower()
    assert "unknown command /nonsense" in proc.stderr
