"""Opening the database, bringing its schema up to date, and one transaction at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """An engine plus a session factory for one database URL, and a second engine whose commits
    do not wait for the disk, for work a power cut may undo without harm."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        in_memory = self.is_sqlite and make_url(url).database in (None, "", ":memory:")
        self.light = self.engine if in_memory else _engine(url, durable=False)
        self.light_sessions = sessionmaker(self.light, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[Session]:
        """A session whose work is committed together at the end, or not at all.

        Not `durable`: the commit returns before it is on disk, so a power cut (not a crash of
        the process) may take it back, until the next durable commit writes it down too. For
        marks whose loss repeats work rather than loses it: a mail marked sent, then sent again.
        Such a transaction takes no lock until it writes.
        """
        with self.session(durable) as session, session.begin():
            yield session

    def session(self, durable: bool = True) -> Session:
        """A session for several transactions, each ended by its commit() (see transaction)."""
        return (self.sessions if durable else self.light_sessions)()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (safe to run every start; a schema that is
        up to date is only looked at)."""
        config = _alembic_config(self.engine)
        if self._revision() != ScriptDirectory.from_config(config).get_current_head():
            command.upgrade(config, "head")

    def _revision(self) -> str | None:
        """The migration the schema is at; None for a new database."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.scalar(text("SELECT version_num FROM alembic_version"))

    def lock(self) -> InstanceLock:
        """The lock one running instance holds; LockedError if another holds it."""
        return InstanceLock(self)

    def close(self) -> None:
        self.light.dispose()
        self.engine.dispose()


class LockedError(Exception):
    """Raised when another mailroom instance already works on this database."""


class InstanceLock:
    """One instance at a time on a database: SQLite by a lock file beside it (released by
    the kernel when the process dies, even by SIGKILL); a server database by an advisory
    lock held on a connection of its own."""

    ADVISORY_KEY = 0x6D61696C726F6F6D  # "mailroom"

    def __init__(self, db: Database) -> None:
        self.file: TextIO | None = None
        self.connection: Connection | None = None
        if db.is_sqlite:
            self._lock_file(_lock_path(db.url))
        else:
            self._lock_advisory(db.engine)

    def _lock_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip() or "unknown"
            stream.close()
            raise LockedError(f"another mailroom instance ({holder}) holds {path}") from None
        stream.seek(0)
        stream.truncate()
        stream.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        stream.flush()
        self.file = stream

    def _lock_advisory(self, engine: Engine) -> None:
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": self.ADVISORY_KEY}).scalar()
        if not taken:
            connection.close()
            raise LockedError("another mailroom instance holds this database's advisory lock")
        self.connection = connection

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
        if self.connection is not None:
            with contextlib.suppress(Exception):  # a lost session has lost the lock, too
                self.connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                        {"key": self.ADVISORY_KEY})
            self.connection.close()
            self.connection = None


def _lock_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        return Path(tempfile.gettempdir()) / f"mailroom-{os.getpid()}.lock"
    return Path(database).with_name(Path(database).name + ".lock")


def _engine(url: str, durable: bool = True) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True)
        if not durable:
            event.listen(engine, "begin", _quick_commit)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", partial(_sqlite_pragmas, durable=durable))
    event.listen(engine, "begin", _sqlite_begin if durable else _sqlite_begin_deferred)
    return engine


def _quick_commit(connection: Connection) -> None:
    """PostgreSQL: this transaction's commit does not wait for the disk."""
    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _sqlite_pragmas(connection: Any, _record: Any, durable: bool) -> None:
    """WAL, with every commit on disk before it returns (unless not `durable`): a message is
    moved out of the inbox only after its outcome is committed, and a power loss must not
    take that commit back.

    The driver's own transaction handling is turned off (SQLAlchemy begins each transaction
    itself, below), so that savepoints work: one message of a batch can fail alone.
    """
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """Take the write lock at the start (waiting up to the timeout for another writer): a
    transaction that read first would otherwise fail, not wait, if another wrote meanwhile."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection: Connection) -> None:
    """The light engine's transactions take no lock until they write; each that writes is
    begun afresh for it (see Outbox), so it waits for the lock instead of failing."""
    connection.exec_driver_sql("BEGIN")


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config
