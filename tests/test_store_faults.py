"""The conversation store under hard conditions: two first starts at once, a lock held by another program, a data
dir that cannot be written, a full disk, a database of a newer version, a damaged one."""
import multiprocessing
import os
import sqlite3

import pytest

from wren.engine import store as wstore
from wren.engine.store import SCHEMA_VERSION, Store, StoreError, open_history


def broken_files(folder):
    return sorted(p.name for p in folder.iterdir() if ".broken-" in p.name)


def _first_start(conn, barrier, name):
    """A process that starts Wren on the data dir it is sent, at the same moment as the other one (the barrier),
    and records a conversation; it answers what it found."""
    while (path := conn.recv()) is not None:
        barrier.wait()
        try:
            store, note = open_history(path)
            with store:
                store.new_conversation(name)
                conn.send((store.read_only, note))
        except Exception as e:  # noqa: BLE001 - reported to the test
            conn.send((f"{type(e).__name__}: {e}", ""))


def test_two_first_starts_never_move_a_healthy_database_aside(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    pipes, children = [], []
    for name in ("first", "second"):
        parent_end, child_end = ctx.Pipe()
        child = ctx.Process(target=_first_start, args=(child_end, barrier, name), daemon=True)
        child.start()
        pipes.append(parent_end)
        children.append(child)
    try:
        for round_ in range(40):
            folder = tmp_path / f"data{round_}"
            for conn in pipes:
                conn.send(folder / wstore.FILE_NAME)
            answers = [conn.recv() for conn in pipes]
            assert answers == [("", ""), ("", "")], f"round {round_}: {answers}"
            assert broken_files(folder) == []
            with Store(folder / wstore.FILE_NAME) as s:
                assert sorted(c.title for c in s.conversations()) == ["first", "second"]
    finally:
        for conn in pipes:
            conn.send(None)
        for child in children:
            child.join(30)


def test_a_lock_held_by_another_program_is_not_damage(tmp_path, monkeypatch):
    monkeypatch.setattr(wstore, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / wstore.FILE_NAME
    other = sqlite3.connect(path, isolation_level=None)  # a database another program is creating, its lock held
    other.execute("CREATE TABLE theirs (x)")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as err:
            Store(path)
        assert err.value.kind == "busy" and "locked" in str(err.value)
        store, note = open_history(path)
        with store:
            assert store.read_only and "locked" in store.read_only and note == store.read_only
            assert store.conversations() == []
        assert broken_files(tmp_path) == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("theirs",)]


def read_only_connections(monkeypatch):
    """Every connection the store opens is read-only (as in a read-only data dir, which root could still write)."""
    connect = wstore._connect
    monkeypatch.setattr(wstore, "_connect", lambda uri, timeout: connect(uri.replace("mode=rwc", "mode=ro"), timeout))


def test_a_read_only_data_dir_shows_the_history_read_only(tmp_path, monkeypatch):
    path = tmp_path / wstore.FILE_NAME
    with Store(path) as s:
        cid = s.new_conversation("kept before")
        s.add_message(cid, "user", "hello")
    before = path.read_bytes()
    read_only_connections(monkeypatch)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert err.value.kind == "unwritable" and "cannot be written" in str(err.value)
    store, note = open_history(path)
    with store:
        assert "cannot be written" in store.read_only and "read-only" in note
        (conv,) = store.conversations()
        assert conv.title == "kept before" and [m.content for m in store.messages(conv.id)] == ["hello"]
        store.new_conversation("not kept")  # the window keeps working; nothing reaches the file
    assert path.read_bytes() == before and broken_files(tmp_path) == []


def test_a_read_only_fresh_data_dir_starts_empty(tmp_path, monkeypatch):
    read_only_connections(monkeypatch)
    store, note = open_history(tmp_path / "data" / wstore.FILE_NAME)
    with store:
        assert store.read_only and store.conversations() == []
    assert "read-only" in note


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes a folder whatever its mode")
def test_a_folder_without_write_permission(tmp_path):
    path = tmp_path / wstore.FILE_NAME
    with Store(path) as s:
        s.new_conversation("kept before")
    os.chmod(tmp_path, 0o555)
    try:
        store, note = open_history(path)
        with store:
            assert [c.title for c in store.conversations()] == ["kept before"]
            assert store.read_only
    finally:
        os.chmod(tmp_path, 0o755)


def full_disk_connections(monkeypatch):
    """Every writable connection the store opens has a disk that holds no page more than the file has."""
    connect = wstore._connect

    def full(uri, timeout):
        db = connect(uri, timeout)
        if "mode=rwc" in uri:
            db.execute("PRAGMA max_page_count = 1")
        return db
    monkeypatch.setattr(wstore, "_connect", full)


def test_a_full_disk_at_the_first_start(tmp_path, monkeypatch):
    full_disk_connections(monkeypatch)
    path = tmp_path / wstore.FILE_NAME
    with pytest.raises(StoreError) as err:
        Store(path)
    assert err.value.kind == "unwritable" and "disk is full" in str(err.value)
    store, note = open_history(path)
    with store:
        assert "disk is full" in store.read_only and "read-only" in note
        assert store.conversations() == []


def test_a_full_disk_while_writing_names_the_cause(tmp_path):
    path = tmp_path / wstore.FILE_NAME
    with Store(path) as s:
        cid = s.new_conversation("chat")
        s.add_message(cid, "user", "kept")
        pages = s._db.execute("PRAGMA page_count").fetchone()[0]
        s._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError) as err:
            s.add_message(cid, "assistant", "x" * 100_000)
        assert err.value.kind == "unwritable"
        assert "disk is full" in str(err.value) and "rollback" not in str(err.value)
        with pytest.raises(StoreError, match="disk is full"):
            s.new_conversation("x" * 100_000)
        assert not s._db.in_transaction
        assert [m.content for m in s.messages(cid)] == ["kept"]
        s._db.execute("PRAGMA max_page_count = 1073741823")  # room again: the store writes again
        s.add_message(cid, "assistant", "room again")
    with Store(path) as s:
        assert [m.content for m in s.messages(cid)] == ["kept", "room again"]


def test_a_newer_schema_is_left_alone(tmp_path):
    path = tmp_path / wstore.FILE_NAME
    with Store(path) as s:
        s.new_conversation("from the newer version")
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.execute("PRAGMA journal_mode = DELETE")  # a journal the newer version may have chosen: kept too
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert err.value.kind == "newer"
    store, note = open_history(path)
    with store:
        assert "newer Wren" in note and "left as it is" in note
        assert store.read_only
    assert path.read_bytes() == before and broken_files(tmp_path) == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_only_a_failed_integrity_check_moves_a_database_aside(tmp_path):
    path = tmp_path / wstore.FILE_NAME
    path.write_bytes(b"these are not the pages you are looking for\n" * 200)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert err.value.kind == "damaged"
    store, note = open_history(path)
    with store:
        assert not store.read_only and store.conversations() == []
        store.new_conversation("fresh")
    (moved,) = broken_files(tmp_path)
    assert moved in note and "a new one started" in note
    assert (tmp_path / moved).read_bytes().startswith(b"these are not")
