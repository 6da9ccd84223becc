"""The conversation store (SQLite) and the sidebar's list model over it."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from wren.gui.conversation_model import ConversationListModel
from wren.engine.store import SCHEMA_VERSION, Store, StoreError


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "wren.sqlite3") as s:
        yield s


def test_default_path_is_in_the_data_dir():
    with Store() as s:
        assert s.path.parent == Path(os.environ["WREN_DATA_DIR"])
        assert s.path.name == "wren.sqlite3"
        assert s.path.is_file()


def test_conversation_and_messages_round_trip(tmp_path):
    path = tmp_path / "wren.sqlite3"
    stats = {"ttft_seconds": 0.12, "decode_tok_s": 41.5, "finish_reason": "stop"}
    with Store(path) as s:
        cid = s.new_conversation("Rivers", mode="chat", system="You are concise.")
        m1 = s.add_message(cid, "user", "Name three rivers.")
        m2 = s.add_message(cid, "assistant", "The Nile, the Amazon, the Yangtze.", stats=stats)
    with Store(path) as s:
        conv = s.conversation(cid)
        assert (conv.id, conv.title, conv.mode, conv.system) == (cid, "Rivers", "chat", "You are concise.")
        assert conv.created <= conv.updated
        msgs = s.messages(cid)
        assert [(m.id, m.conversation, m.role, m.content) for m in msgs] == [
            (m1, cid, "user", "Name three rivers."), (m2, cid, "assistant", "The Nile, the Amazon, the Yangtze.")]
        assert [m.complete for m in msgs] == [True, True]
        assert msgs[0].stats is None and msgs[1].stats == stats
        assert msgs[0].created <= msgs[1].created


def test_partial_answer_updates(store):
    cid = store.new_conversation()
    mid = store.add_message(cid, "assistant", "", complete=False)
    store.update_message(mid, "The Nile")
    assert store.messages(cid)[0].content == "The Nile" and store.messages(cid)[0].complete is False
    store.update_message(mid, "The Nile, the Amazon.", complete=True, stats={"decode_tok_s": 30.0})
    store.update_message(mid, "The Nile, the Amazon!", complete=True)  # stats=None keeps the stats
    (m,) = store.messages(cid)
    assert (m.content, m.complete, m.stats) == ("The Nile, the Amazon!", True, {"decode_tok_s": 30.0})
    with pytest.raises(KeyError):
        store.update_message(mid + 100, "x")


def test_wrong_mode_role_or_conversation_is_refused(store):
    with pytest.raises(ValueError, match="mode"):
        store.new_conversation(mode="poetry")
    cid = store.new_conversation()
    with pytest.raises(ValueError, match="role"):
        store.add_message(cid, "robot", "hi")
    with pytest.raises(KeyError):
        store.add_message(cid + 1, "user", "hi")
    with pytest.raises(KeyError):
        store.conversation(cid + 1)
    assert store.messages(cid) == []


def test_order_is_most_recently_updated_first(store):
    a = store.new_conversation("a")
    b = store.new_conversation("b")
    c = store.new_conversation("c", mode="email")
    assert [x.id for x in store.conversations()] == [c, b, a]
    store.add_message(a, "user", "hello")
    assert [x.id for x in store.conversations()] == [a, c, b]
    store.add_message(b, "user", "hello")
    assert [x.id for x in store.conversations()] == [b, a, c]


def test_search_over_titles_and_message_text(store):
    rivers = store.new_conversation("Rivers")
    store.add_message(rivers, "user", "Name three rivers.")
    store.add_message(rivers, "assistant", "The NILE, the Amazon, the Yangtze.")
    school = store.new_conversation("Letter")
    store.add_message(school, "user", "Write to the ÉCOLE about 50% off")
    store.new_conversation("Nile cruise")
    titles = lambda q: sorted(x.title for x in store.conversations(q))
    assert titles("nile") == ["Nile cruise", "Rivers"]
    assert titles("amazon") == ["Rivers"]
    assert titles("école") == ["Letter"]
    assert titles("50%") == ["Letter"]  # no LIKE wildcards
    assert titles("_") == []
    assert titles("volga") == []
    assert titles("") == titles("  ") == ["Letter", "Nile cruise", "Rivers"]


def test_rename_set_system_and_delete(store):
    a = store.new_conversation("a")
    b = store.new_conversation("b")
    store.add_message(a, "user", "one")
    store.add_message(b, "user", "two")
    store.rename(a, "Renamed")
    store.set_system(a, "Answer in French.")
    assert (store.conversation(a).title, store.conversation(a).system) == ("Renamed", "Answer in French.")
    store.delete(a)
    assert [x.id for x in store.conversations()] == [b]
    assert store.messages(a) == []
    assert [m.content for m in store.messages(b)] == ["two"]
    # the messages went with the conversation, not just out of view
    n = sqlite3.connect(store.path).execute("SELECT count(*) FROM messages WHERE conversation = ?", (a,)).fetchone()
    assert n == (0,)
    for call in (lambda: store.rename(a, "x"), lambda: store.set_system(a, "x"), lambda: store.delete(a)):
        with pytest.raises(KeyError):
            call()


def test_delete_messages_from(store):
    cid = store.new_conversation()
    other = store.new_conversation()
    ids = [store.add_message(cid, role, text) for role, text in
           [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]]
    keep = store.add_message(other, "user", "elsewhere")
    store.delete_messages_from(cid, ids[2])
    assert [m.content for m in store.messages(cid)] == ["q1", "a1"]
    store.delete_messages_from(cid, ids[1])
    assert [m.content for m in store.messages(cid)] == ["q1"]
    with pytest.raises(KeyError):
        store.delete_messages_from(cid, keep)  # a message of another conversation
    assert [m.id for m in store.messages(other)] == [keep]
    new = store.add_message(cid, "assistant", "a1 again")
    assert new > ids[-1]  # ids are never reused
    assert [m.content for m in store.messages(cid)] == ["q1", "a1 again"]


def test_export_markdown(store):
    cid = store.new_conversation("Rivers of Africa", system="You are concise.")
    store.add_message(cid, "user", "Name three rivers.")
    store.add_message(cid, "assistant", "The Nile, the Congo, the Niger.")
    store.add_message(cid, "user", "And one more?")
    store.add_message(cid, "assistant", "The Zam", complete=False)
    md = store.export_markdown(cid)
    lines = md.splitlines()
    assert lines[0] == "# Rivers of Africa"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## System prompt", "## User", "## Assistant", "## User", "## Assistant (incomplete)"]
    order = [md.index(t) for t in ("You are concise.", "Name three rivers.", "The Nile, the Congo", "And one more?",
                                   "The Zam")]
    assert order == sorted(order)
    assert md.index("## Assistant (incomplete)") < md.index("The Zam")


def test_wal_journal(store):
    store.new_conversation()
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_write_is_committed_at_once(store):
    """Another connection sees each write as soon as the call returns."""
    cid = store.new_conversation("seen")
    mid = store.add_message(cid, "assistant", "par", complete=False)
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("SELECT title FROM conversations").fetchall() == [("seen",)]
        store.update_message(mid, "partial answer")
        assert other.execute("SELECT content, complete FROM messages").fetchall() == [("partial answer", 0)]
    finally:
        other.close()


KILLED_WRITER = textwrap.dedent("""
    import sys
    from wren.engine.store import Store
    s = Store(sys.argv[1])
    cid = s.new_conversation("Killed mid-answer")
    s.add_message(cid, "user", "Name three rivers.")
    mid = s.add_message(cid, "assistant", "", complete=False)
    text = ""
    for word in ["The", " Nile,", " the", " Amazon"]:
        text += word
        s.update_message(mid, text)
    print("ready", cid, mid, flush=True)
    sys.stdin.read()  # until killed (or until the test's end of the pipe closes)
""")


def test_partial_answer_survives_kill_9(tmp_path):
    path = tmp_path / "wren.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line[0] == "ready", line
        cid, mid = int(line[1]), int(line[2])
        assert path.with_name("wren.sqlite3-wal").stat().st_size > 0  # the writes are in the WAL, not yet merged
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stdin.close()
    with Store(path) as s:
        assert [c.title for c in s.conversations()] == ["Killed mid-answer"]
        msgs = s.messages(cid)
        assert [(m.role, m.content, m.complete) for m in msgs] == [
            ("user", "Name three rivers.", True), ("assistant", "The Nile, the Amazon", False)]
        assert msgs[1].id == mid


def test_not_a_database_is_a_clear_error_and_can_be_moved_aside(tmp_path):
    path = tmp_path / "wren.sqlite3"
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(path) in str(err.value)
    assert err.value.path == path
    moved = Store.move_aside(err.value.path)
    assert moved.parent == tmp_path and moved.name.startswith("wren.sqlite3.broken-")
    assert moved.read_bytes().startswith(b"these are not")
    assert not path.exists()
    with Store(path) as s:
        assert s.conversations() == []
        s.new_conversation("fresh")
        assert [c.title for c in s.conversations()] == ["fresh"]
    # a second broken file the same second gets a name of its own
    path2 = tmp_path / "other.sqlite3"
    path2.write_bytes(b"x" * 4096)
    first = Store.move_aside(path2)
    path2.write_bytes(b"y" * 4096)
    second = Store.move_aside(path2)
    assert first != second and first.read_bytes() != second.read_bytes()


def test_damaged_database_is_a_store_error(tmp_path):
    path = tmp_path / "wren.sqlite3"
    with Store(path) as s:
        cid = s.new_conversation("long")
        for i in range(200):
            s.add_message(cid, "user", f"message {i} " * 50)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * page_size
    for p in range(1, len(data) // page_size):  # every page but the header's
        data[p * page_size:p * page_size + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged|not a usable") as err:
        Store(path)
    assert str(path) in str(err.value)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "wren.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_first_kept_round_trip(tmp_path):
    path = tmp_path / "wren.sqlite3"
    with Store(path) as s:
        cid = s.new_conversation("Long chat")
        assert s.conversation(cid).first_kept == 0
        s.set_first_kept(cid, 6)
        with pytest.raises(ValueError, match="first_kept"):
            s.set_first_kept(cid, -1)
        with pytest.raises(KeyError):
            s.set_first_kept(cid + 1, 2)
    with Store(path) as s:
        assert s.conversation(cid).first_kept == 6 and s.conversations()[0].first_kept == 6


def test_a_version_1_database_is_migrated(tmp_path):
    # a database as the first schema wrote it, with a conversation in it
    from wren.engine.store import _MIGRATIONS
    path = tmp_path / "wren.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in _MIGRATIONS[1]:
            db.execute(statement)
        db.execute("INSERT INTO conversations (title, mode, system, created, updated) VALUES ('old', 'chat', '', 1, 1)")
        db.execute("INSERT INTO messages (conversation, role, content, complete, created) VALUES (1, 'user', 'hi', 1, 1)")
        db.execute("PRAGMA user_version = 1")
    with Store(path) as s:
        (conv,) = s.conversations()
        assert (conv.title, conv.first_kept) == ("old", 0)
        assert [m.content for m in s.messages(conv.id)] == ["hi"]
        s.set_first_kept(conv.id, 1)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    with Store(path) as s:
        assert s.conversation(conv.id).first_kept == 1


def test_two_openers_of_a_new_database_migrate_it_once(tmp_path, monkeypatch):
    # One process creates the database while another opens it: the second read the old version before the first
    # committed and must not run the migration again ("table conversations already exists").
    from wren.engine.store import _MIGRATIONS
    path = tmp_path / "wren.sqlite3"
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("PRAGMA journal_mode=WAL")
    first.execute("BEGIN IMMEDIATE")
    for statement in _MIGRATIONS[1]:
        first.execute(statement)
    result = {}
    waiting = threading.Event()  # the second opener has read version 0 and asks for the write lock
    connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        # called as a statement starts, before it waits for a lock
        db.set_trace_callback(lambda sql: sql.startswith("BEGIN IMMEDIATE") and waiting.set())
        return db
    monkeypatch.setattr(sqlite3, "connect", traced_connect)

    def second():
        try:
            with Store(path) as s:
                result["conversations"] = s.conversations()
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = e

    t = threading.Thread(target=second)
    t.start()
    assert waiting.wait(60)
    for target in range(2, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[target]:
            first.execute(statement)
    first.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    first.execute("INSERT INTO conversations (title, mode, system, created, updated) "
                  "VALUES ('first', 'chat', '', 0, 0)")
    first.execute("COMMIT")
    first.close()
    t.join(30)
    assert "error" not in result, result.get("error")
    assert [c.title for c in result["conversations"]] == ["first"]


def test_store_refuses_other_threads(store):
    errors = []

    def use():
        try:
            store.conversations()
        except sqlite3.ProgrammingError as e:
            errors.append(e)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert len(errors) == 1


# ---- the list model -------------------------------------------------------------------------------------------
def titles_of(model):
    return [model.data(model.index(r, 0)) for r in range(model.rowCount())]


def test_list_model(store, qtmodeltester):
    model = ConversationListModel(store)
    qtmodeltester.check(model)
    assert model.rowCount() == 0

    a = store.new_conversation("Rivers")
    b = store.new_conversation("Invoice", mode="email")
    model.refresh()
    qtmodeltester.check(model)
    assert titles_of(model) == ["Invoice", "Rivers"]
    assert [model.conversation_id(r) for r in range(2)] == [b, a]
    assert (model.row_of(a), model.row_of(b), model.row_of(b + 100)) == (1, 0, -1)
    index = model.index(0, 0)
    assert model.data(index, ConversationListModel.IdRole) == b
    assert model.data(index, ConversationListModel.ModeRole) == "email"
    assert ConversationListModel.IdRole == Qt.UserRole + 1 and ConversationListModel.ModeRole == Qt.UserRole + 2
    tip = model.data(index, Qt.ToolTipRole)
    assert "Draft email" in tip and time.strftime("%Y-%m-%d") in tip
    assert model.flags(index) & Qt.ItemIsEditable

    store.add_message(a, "user", "Name three rivers.")
    store.rename(b, "Invoice for March")
    model.refresh()
    qtmodeltester.check(model)
    assert titles_of(model) == ["Rivers", "Invoice for March"]

    model.refresh("three rivers")
    assert titles_of(model) == ["Rivers"] and model.search == "three rivers"
    model.refresh()

    store.delete(a)
    model.refresh()
    qtmodeltester.check(model)
    assert titles_of(model) == ["Invoice for March"]
    assert model.row_of(a) == -1


def test_list_model_edit_renames(store, qtmodeltester, qtbot):
    cid = store.new_conversation("New chat")
    store.new_conversation("Other")
    model = ConversationListModel(store)
    index = model.index(model.row_of(cid), 0)
    assert model.data(index, Qt.EditRole) == "New chat"
    with qtbot.waitSignal(model.dataChanged, timeout=1000) as changed:
        assert model.setData(index, "  Trip   to Lisbon ", Qt.EditRole)
    assert changed.args[0].row() == index.row()
    assert store.conversation(cid).title == "Trip to Lisbon"
    assert model.data(index) == "Trip to Lisbon"
    assert not model.setData(index, "   ", Qt.EditRole)  # an empty title is refused
    assert not model.setData(index, "Ignored", Qt.DisplayRole)
    assert store.conversation(cid).title == "Trip to Lisbon"
    qtmodeltester.check(model)


# ---- the other modes' history (schema 3) --------------------------------------------------------------------------
def test_a_version_2_database_is_migrated_to_keep_the_other_modes_history(tmp_path):
    from wren.engine.store import _MIGRATIONS
    path = tmp_path / "wren.sqlite3"
    with sqlite3.connect(path) as db:
        for version in (1, 2):
            for statement in _MIGRATIONS[version]:
                db.execute(statement)
        db.execute("INSERT INTO conversations (title, mode, system, created, updated) VALUES ('old', 'chat', "
                   "'Be brief.', 1, 1)")
        db.execute("PRAGMA user_version = 2")
    with Store(path) as s:
        (conv,) = s.conversations()
        assert (conv.title, conv.system) == ("old", "Be brief.")
        hid = s.add_history("email", "Lunch", {"points": "noon"}, {"versions": [["Lunch", "Hi"]], "current": 0})
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
    with Store(path) as s:
        item = s.history_item(hid)
        assert (item.mode, item.title, item.input) == ("email", "Lunch", {"points": "noon"})
        assert item.output == {"versions": [["Lunch", "Hi"]], "current": 0}


def test_history_per_mode_most_recent_first(store):
    a = store.add_history("email", "Lunch", {"points": "noon"}, {"versions": [["Lunch", "Hi"]], "current": 0})
    b = store.add_history("summarize", "Report", {"text": "long"}, {"summary": "short"})
    c = store.add_history("email", "Invoice", {"points": "pay"}, {"versions": [["Invoice", "Please"]], "current": 0})
    assert [h.id for h in store.history("email")] == [c, a]
    assert [h.id for h in store.history("summarize")] == [b] and store.history("reply") == []
    store.update_history(a, {"versions": [["Lunch", "Hi"], ["Lunch", "Hey"]], "current": 1})  # a refinement
    assert [h.id for h in store.history("email")] == [a, c]
    assert store.history_item(a).output["current"] == 1
    assert [h.id for h in store.history("email", limit=1)] == [a]
    store.delete_history("email")
    assert store.history("email") == [] and [h.id for h in store.history("summarize")] == [b]
    with pytest.raises(ValueError):
        store.add_history("chat", "x", {}, {})
    with pytest.raises(KeyError):
        store.history_item(a)
    with pytest.raises(KeyError):
        store.update_history(a, {})
