"""Conversations and messages, and the results of the other modes (drafts, replies, summaries), in SQLite (stdlib
sqlite3, WAL journal) in the data dir.

Every write is committed at once: a message when it is added, a partial answer at each `update_message`, so a crash
or a `kill -9` loses at most the text produced since the last update. Synchronous mode is NORMAL, which in WAL mode
keeps every commit across a crash of the process (a power cut may lose the last commits, never the file).

The schema version is the database's `PRAGMA user_version`; opening a file of an older version migrates it, a file of
a newer version is refused and left as it is. `Store(path)` raises StoreError naming the path and what went wrong, its
`kind` saying what to do: "damaged" (a full integrity check failed: `Store.move_aside` keeps it and a fresh one can be
created), "newer", "busy" (another program holds the lock for longer than the busy timeout: never damage) or
"unwritable" (a read-only data dir, a full disk). `open_history` does that: it never moves a database that passes
the integrity check, and where the history cannot be written it gives a read-only store (an in-memory copy of what
could be read; `read_only` says why) so that the app starts and shows the history. A write that fails (a full disk)
raises StoreError naming the cause.

A Store is used from the Qt main thread only: its connection refuses calls from any other thread.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from wren.engine.settings import MODES
from wren.engine.library import catalog

FILE_NAME = "wren.sqlite3"
ROLES = ("system", "user", "assistant")
SCHEMA_VERSION = 3
HISTORY_MODES = ("email", "reply", "summarize")  # the modes whose results are kept (a chat is a conversation)

# _MIGRATIONS[n] takes a database from version n - 1 to version n
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE conversations (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               title TEXT NOT NULL,
               mode TEXT NOT NULL,
               system TEXT NOT NULL DEFAULT '',
               created REAL NOT NULL,
               updated REAL NOT NULL)""",
        """CREATE TABLE messages (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
               role TEXT NOT NULL,
               content TEXT NOT NULL,
               complete INTEGER NOT NULL,
               created REAL NOT NULL,
               stats TEXT)""",
        "CREATE INDEX messages_by_conversation ON messages(conversation, id)",
        "CREATE INDEX conversations_by_updated ON conversations(updated)",
    ),
    # how many of a chat's first messages the model no longer sees (the conversation outgrew the context)
    2: ("ALTER TABLE conversations ADD COLUMN first_kept INTEGER NOT NULL DEFAULT 0",),
    # the results of the other modes (drafts, replies, summaries): what was asked and what came back, as JSON
    3: (
        """CREATE TABLE history (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               mode TEXT NOT NULL,
               title TEXT NOT NULL,
               input TEXT NOT NULL,
               output TEXT NOT NULL,
               created REAL NOT NULL,
               updated REAL NOT NULL)""",
        "CREATE INDEX history_by_mode ON history(mode, updated)",
    ),
}


BUSY_TIMEOUT = 30.0  # seconds another program's lock is waited for (sqlite's busy timeout, and retries of what
# sqlite reports busy at once: a journal-mode change or a WAL recovery under way in another process)

# sqlite's primary result codes
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _CANTOPEN, _FULL, _PERM, _NOTADB = 5, 6, 8, 10, 11, 14, 13, 3, 26
_CODES_BY_TEXT = (("locked", _BUSY), ("busy", _BUSY), ("disk is full", _FULL), ("readonly", _READONLY),
                  ("unable to open", _CANTOPEN), ("not a database", _NOTADB), ("malformed", _CORRUPT),
                  ("disk i/o", _IOERR))


class StoreError(Exception):
    """The database cannot be used or written; `kind` ("damaged", "newer", "busy", "unwritable" or "unusable") says
    what can be done: only a "damaged" one may be moved aside."""

    def __init__(self, path: Path, reason: str, kind: str = "unusable"):
        self.path = Path(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"{self.path}: {reason}")


def _code(e: BaseException) -> int:
    """sqlite's primary result code of an error (from its text before Python 3.11)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(e).lower()
    return next((c for needle, c in _CODES_BY_TEXT if needle in text), 0)


def _cause(e: BaseException) -> tuple[str, str]:
    """(kind, reason) of an sqlite or OS error met while opening or writing the database."""
    code = _code(e) if isinstance(e, sqlite3.Error) else 0
    if code == _FULL or getattr(e, "errno", None) == 28:
        return "unwritable", f"the disk is full ({e})"
    if code in (_BUSY, _LOCKED):
        return "busy", f"another program keeps the database locked ({e})"
    if code in (_READONLY, _CANTOPEN, _PERM) or isinstance(e, PermissionError) or getattr(e, "errno", None) == 30:
        return "unwritable", f"the data folder cannot be written ({e})"
    if code in (_CORRUPT, _NOTADB):
        return "damaged", f"not a usable database ({e})"
    if code == _IOERR or isinstance(e, OSError):
        return "unwritable", f"the disk refused a write ({e})"
    return "unusable", f"not a usable database ({e})"


@dataclass
class Conversation:
    id: int
    title: str
    mode: str  # one of MODES
    system: str  # system prompt ("" for none)
    created: float  # seconds since the epoch
    updated: float  # creation or last message added
    first_kept: int = 0  # the first message (not counting system ones) still sent to the model


@dataclass
class Message:
    id: int
    conversation: int
    role: str  # one of ROLES
    content: str
    complete: bool  # False for an answer that was stopped or is still streaming
    created: float
    stats: dict | None  # generation figures of an answer (ttft, tok/s, ...)


@dataclass
class HistoryItem:
    id: int
    mode: str  # one of HISTORY_MODES
    title: str
    input: dict  # what the mode was asked (an email's points, tone, ...; the message; the text)
    output: dict  # what came back (the email and its earlier versions; the replies; the summary)
    created: float
    updated: float  # creation or last change of the output (a refinement)


_CONVERSATION_COLUMNS = "id, title, mode, system, created, updated, first_kept"
_HISTORY_COLUMNS = "id, mode, title, input, output, created, updated"


def default_path() -> Path:
    return catalog.data_dir() / FILE_NAME


def _fold(text: str | None) -> str:
    return text.casefold() if text else ""


def _connect(uri: str, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back what is left of a transaction: sqlite rolls back by itself after some errors (a full disk), and the
    error that caused it is the one to report, not "cannot rollback"."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def damaged(path: Path) -> bool:
    """Whether the database at path fails a full integrity check (read-only; a lock held by another program, or a
    file that cannot be read, is not damage)."""
    try:
        db = _connect(f"file:{quote(str(path))}?mode=ro", BUSY_TIMEOUT)
    except sqlite3.Error:
        return False
    try:
        return [row[0] for row in db.execute("PRAGMA integrity_check")] != ["ok"]
    except sqlite3.Error as e:
        return _code(e) in (_CORRUPT, _NOTADB)
    finally:
        db.close()


def open_history(path: Path | None = None) -> tuple[Store, str]:
    """The conversations database for the window and `wren chat`, and a note for the user ("" when all is well). A
    damaged one is moved aside (kept) and a fresh one started; one that cannot be written (a read-only data dir, a
    full disk), is locked by another program or is of a newer version is left as it is and shown read-only (the
    store's `read_only` says why)."""
    path = Path(path) if path is not None else default_path()
    try:
        return Store(path), ""
    except StoreError as e:
        error = e
    if error.kind == "damaged":
        try:
            moved = Store.move_aside(error.path)
            return Store(path), f"{error}. It was kept as {moved} and a new one started."
        except OSError as e:
            error = StoreError(path, f"{error.reason}, and it cannot be moved aside ({e})", "unwritable")
        except StoreError as e:
            error = e
    reason = f"{error}. The history is shown read-only: what is added now is not kept."
    return Store.read_only_copy(path, reason), reason


class Store:
    """The conversations database. Main thread only."""

    def __init__(self, path: Path | None = None, busy_timeout: float | None = None):
        self.path = Path(path) if path is not None else default_path()
        self.read_only = ""  # why the history cannot be saved ("" when it is)
        self._db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(self.path, *reversed(_cause(e))) from e
        busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                self._db = _connect(f"file:{quote(str(self.path))}?mode=rwc", busy_timeout)
                self._setup()
                break
            except sqlite3.Error as e:
                self.close()
                kind, reason = _cause(e)
                if kind == "busy" and time.monotonic() < deadline:
                    time.sleep(0.01)  # what sqlite reports busy without waiting
                    continue
                if kind == "damaged" and not damaged(self.path):
                    kind = "unusable"
                raise StoreError(self.path, reason, kind) from e
            except StoreError:
                self.close()
                raise
        self._db.create_function("wren_fold", 1, _fold, deterministic=True)

    @classmethod
    def read_only_copy(cls, path: Path, reason: str) -> Store:
        """A store in memory holding what can be read of the database at path (nothing when it cannot be read or is
        of a newer version), its `read_only` the reason given: the history is shown, and what is added to it is not
        kept."""
        store = cls.__new__(cls)
        store.path, store.read_only = Path(path), reason
        store._db = sqlite3.connect(":memory:", isolation_level=None)
        # read-only, then without locks or the WAL where even the lock file cannot be made (a read-only folder)
        for query in ("mode=ro", "mode=ro&immutable=1"):
            try:
                source = _connect(f"file:{quote(str(path))}?{query}", 1.0)
            except sqlite3.Error:
                continue
            try:
                if source.execute("PRAGMA user_version").fetchone()[0] <= SCHEMA_VERSION:
                    source.backup(store._db)
                break
            except sqlite3.Error:
                store._db.close()
                store._db = sqlite3.connect(":memory:", isolation_level=None)
            finally:
                source.close()
        store._migrate()
        store._db.create_function("wren_fold", 1, _fold, deterministic=True)
        return store

    def _setup(self) -> None:
        db = self._db
        self._check_version(db.execute("PRAGMA user_version").fetchone()[0])  # before anything could change it
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(self.path, f"cannot use the WAL journal (journal mode stays {mode})")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            kind = "damaged" if damaged(self.path) else "unusable"
            raise StoreError(self.path, "the database is damaged: " + "; ".join(map(str, problems[:3])), kind)
        self._migrate()

    def _migrate(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        self._check_version(version)
        if version == SCHEMA_VERSION:
            # a write that changes nothing: a read-only file or a full disk is found now, not at the first message
            db.execute(f"PRAGMA user_version = {version}")
            return
        # Another process (a second window, a command) may be creating the same database right now: the version is
        # read again under the write lock, so each migration runs once whoever gets there first.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(self.path, f"schema version {version} was written by a newer Wren "
                                        f"(this one reads up to {SCHEMA_VERSION}); it is left as it is", "newer")

    # ---- lifetime ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def move_aside(path: Path) -> Path:
        """Rename a broken database (and its -wal/-shm files) to `<name>.broken-<timestamp>`; return the new path."""
        path = Path(path)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"{path.name}.broken-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.broken-{stamp}-{n}")
        os.replace(path, target)
        # a WAL left beside the old file would be replayed into a fresh database of the same name
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
        return target

    # ---- conversations ----------------------------------------------------------------------------------------
    def new_conversation(self, title: str = "New chat", mode: str = "chat", system: str = "") -> int:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        now = time.time()
        with self._writing() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, mode, system, created, updated) VALUES (?, ?, ?, ?, ?)",
                (title, mode, system, now, now))
        return cur.lastrowid

    def conversation(self, cid: int) -> Conversation:
        row = self._db.execute(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise KeyError(f"no conversation {cid}")
        return Conversation(*row)

    def conversations(self, search: str = "") -> list[Conversation]:
        """Most recently updated first; `search` keeps those whose title or a message contains it (any case)."""
        sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c"
        args: tuple = ()
        needle = _fold(search.strip())
        if needle:
            sql += (" WHERE instr(wren_fold(c.title), ?) > 0 OR EXISTS (SELECT 1 FROM messages m"
                    " WHERE m.conversation = c.id AND instr(wren_fold(m.content), ?) > 0)")
            args = (needle, needle)
        sql += " ORDER BY c.updated DESC, c.id DESC"
        return [Conversation(*row) for row in self._db.execute(sql, args)]

    def rename(self, cid: int, title: str) -> None:
        self._update_one("UPDATE conversations SET title = ? WHERE id = ?", (title, cid), f"no conversation {cid}")

    def set_system(self, cid: int, system: str) -> None:
        self._update_one("UPDATE conversations SET system = ? WHERE id = ?", (system, cid), f"no conversation {cid}")

    def set_first_kept(self, cid: int, first_kept: int) -> None:
        """Record that the model no longer sees the conversation's first `first_kept` messages."""
        if not isinstance(first_kept, int) or first_kept < 0:
            raise ValueError(f"first_kept must be a count of messages, not {first_kept!r}")
        self._update_one("UPDATE conversations SET first_kept = ? WHERE id = ?", (first_kept, cid),
                         f"no conversation {cid}")

    def delete(self, cid: int) -> None:
        """Delete a conversation and its messages."""
        self._update_one("DELETE FROM conversations WHERE id = ?", (cid,), f"no conversation {cid}")

    # ---- messages ---------------------------------------------------------------------------------------------
    def messages(self, cid: int) -> list[Message]:
        rows = self._db.execute(
            "SELECT id, conversation, role, content, complete, created, stats FROM messages"
            " WHERE conversation = ? ORDER BY id", (cid,))
        return [Message(mid, conv, role, content, bool(complete), created, json.loads(stats) if stats else None)
                for mid, conv, role, content, complete, created, stats in rows]

    def add_message(self, cid: int, role: str, content: str, complete: bool = True,
                    stats: dict | None = None) -> int:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        now = time.time()
        stats_json = json.dumps(stats, default=str) if stats is not None else None
        with self._writing(transaction=True) as db:
            cur = db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, cid))
            if cur.rowcount != 1:
                raise KeyError(f"no conversation {cid}")
            cur = db.execute(
                "INSERT INTO messages (conversation, role, content, complete, created, stats)"
                " VALUES (?, ?, ?, ?, ?, ?)", (cid, role, content, int(complete), now, stats_json))
        return cur.lastrowid

    def update_message(self, mid: int, content: str, complete: bool = False, stats: dict | None = None) -> None:
        """Replace a message's text (a streaming answer so far); `stats=None` keeps the stats it has."""
        stats_json = json.dumps(stats, default=str) if stats is not None else None
        self._update_one("UPDATE messages SET content = ?, complete = ?, stats = coalesce(?, stats) WHERE id = ?",
                         (content, int(complete), stats_json, mid), f"no message {mid}")

    def delete_messages_from(self, cid: int, mid: int) -> None:
        """Delete message `mid` of conversation `cid` and every later message of it."""
        with self._writing(transaction=True) as db:
            if db.execute("SELECT 1 FROM messages WHERE id = ? AND conversation = ?", (mid, cid)).fetchone() is None:
                raise KeyError(f"no message {mid} in conversation {cid}")
            db.execute("DELETE FROM messages WHERE conversation = ? AND id >= ?", (cid, mid))

    # ---- the other modes' history ----------------------------------------------------------------------------
    def add_history(self, mode: str, title: str, asked: dict, gave: dict) -> int:
        """Keep what a mode was asked and what it gave; the item's id."""
        if mode not in HISTORY_MODES:
            raise ValueError(f"mode must be one of {', '.join(HISTORY_MODES)}, not {mode!r}")
        now = time.time()
        cur = self._db.execute("INSERT INTO history (mode, title, input, output, created, updated)"
                               " VALUES (?, ?, ?, ?, ?, ?)", (mode, title, json.dumps(asked), json.dumps(gave),
                                                              now, now))
        return cur.lastrowid

    def update_history(self, hid: int, output: dict) -> None:
        """Replace what an item's mode gave (a refined email)."""
        self._update_one("UPDATE history SET output = ?, updated = ? WHERE id = ?",
                         (json.dumps(output), time.time(), hid), f"no history item {hid}")

    def history(self, mode: str, limit: int = 50) -> list[HistoryItem]:
        """The mode's items, most recently changed first."""
        rows = self._db.execute(f"SELECT {_HISTORY_COLUMNS} FROM history WHERE mode = ?"
                                " ORDER BY updated DESC, id DESC LIMIT ?", (mode, limit))
        return [self._history_item(row) for row in rows]

    def history_item(self, hid: int) -> HistoryItem:
        row = self._db.execute(f"SELECT {_HISTORY_COLUMNS} FROM history WHERE id = ?", (hid,)).fetchone()
        if row is None:
            raise KeyError(f"no history item {hid}")
        return self._history_item(row)

    def delete_history(self, mode: str) -> None:
        """Forget every item of a mode."""
        self._db.execute("DELETE FROM history WHERE mode = ?", (mode,))

    @staticmethod
    def _history_item(row: tuple) -> HistoryItem:
        hid, mode, title, asked, gave, created, updated = row
        return HistoryItem(hid, mode, title, json.loads(asked), json.loads(gave), created, updated)

    # ---- export -----------------------------------------------------------------------------------------------
    def export_markdown(self, cid: int) -> str:
        """The conversation as Markdown: the title as heading, then each message under its role."""
        conv = self.conversation(cid)
        title = " ".join(conv.title.split()) or "Untitled"
        day = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.created))
        parts = [f"# {title}", f"*{conv.mode.capitalize()} · {day}*"]
        if conv.system.strip():
            parts += ["## System prompt", conv.system.strip()]
        for m in self.messages(cid):
            heading = f"## {m.role.capitalize()}"
            if not m.complete:
                heading += " (incomplete)"
            parts += [heading, m.content.strip() or "*(empty)*"]
        return "\n\n".join(parts) + "\n"

    # ---- helpers ----------------------------------------------------------------------------------------------
    @contextmanager
    def _writing(self, transaction: bool = False):
        """The connection for a write, in a transaction when asked (rolled back on any error); an sqlite error (a
        full disk, a read-only file, a lock never released) becomes a StoreError naming its cause."""
        try:
            if transaction:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                if transaction:
                    self._db.execute("COMMIT")
            except BaseException:
                _rollback(self._db)
                raise
        except sqlite3.OperationalError as e:
            kind, reason = _cause(e)
            raise StoreError(self.path, f"cannot save to the history: {reason}", kind) from e

    def _update_one(self, sql: str, args: tuple, missing: str) -> None:
        # one statement in autocommit mode: committed when it returns
        with self._writing() as db:
            if db.execute(sql, args).rowcount != 1:
                raise KeyError(missing)
