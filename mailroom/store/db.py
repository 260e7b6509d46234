"""Opening the database, bringing its schema up to date, and one transaction at a time."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


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

    def instance(self) -> Instance:
        """This process as one instance working on the database: LockedError if it is a SQLite
        file another instance works on."""
        return FileLock(self.url) if self.is_sqlite else Presence(self.engine)

    def passing(self) -> Instance:
        """This process as a command that sends a few mails and ends (`ingest`): on SQLite it
        takes no lock (the service holds it); on a server database it is seen alive, so that
        its claims stay its own until it ends."""
        return Passing() if self.is_sqlite else Presence(self.engine)

    def check_schema(self) -> None:
        """OldSchema unless the schema is at the newest migration (a server database is never
        upgraded by itself: its admin runs `mailroom db upgrade`)."""
        script = ScriptDirectory.from_config(_alembic_config(self.engine))
        head, found = script.get_current_head(), self._revision()
        if found == head:
            return
        if found is not None and found not in {r.revision for r in script.walk_revisions()}:
            raise OldSchema(f"the database schema is at {found}, newer than this mailroom "
                            f"({head}): run the release that upgraded it")
        raise OldSchema(f"the database schema is at {found or 'nothing'}, this mailroom "
                        f"needs {head}: run `mailroom db upgrade` (once, from one host)")

    def close(self) -> None:
        self.light.dispose()
        self.engine.dispose()


class LockedError(Exception):
    """Raised when another mailroom instance already works on this SQLite database."""


class OldSchema(Exception):
    """Raised when a server database's schema is not this mailroom's: older, or newer."""


class Instance(Protocol):
    """One running mailroom on its database: whether it holds the inbox, whether it lives.

    Only the instance that holds the inbox reads it and runs the scheduled jobs; every
    instance sends mail from the outbox.
    """

    name: str  # what its outbox claims are marked with

    def lead(self) -> bool:
        """Take the inbox if no other instance holds it; whether this one holds it now."""

    def leads(self) -> bool:
        """Whether this instance still holds the inbox (asked of the server at most every
        CHECK_SECONDS): False as soon as its connection to the database is lost."""

    def lives(self) -> bool:
        """Whether its claims are still its own: False once the database may have given them
        to another instance."""

    def living(self) -> set[str] | None:
        """The names of the instances alive on the database; None: only this one can be."""

    def release(self) -> None: ...


class FileLock:
    """SQLite: one instance at a time, by a lock file beside the database (released by the
    kernel when the process dies, even by SIGKILL); it holds the inbox from the start."""

    def __init__(self, url: str) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.file: TextIO | None = _lock_file(_lock_path(url))

    def lead(self) -> bool:
        return self.file is not None

    leads = lives = lead

    def living(self) -> set[str] | None:
        return None

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


class Passing:
    """A command that sends a few mails and ends (`ingest`) on SQLite: it holds no lock, and
    claims under its host and pid (a claim on SQLite lasts Outbox.CLAIM)."""

    def __init__(self) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def lead(self) -> bool:
        return False

    leads = lead

    def lives(self) -> bool:
        return True

    def living(self) -> set[str] | None:
        return None

    def release(self) -> None:
        pass


def _lock_file(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.seek(0)
        holder = stream.read().strip() or "unknown"
        stream.close()
        raise LockedError(f"another mailroom instance ({holder}) holds {path}; on one SQLite "
                          "file only one can run (several need PostgreSQL)") from None
    stream.seek(0)
    stream.truncate()
    stream.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    stream.flush()
    return stream


class Presence:
    """PostgreSQL: an instance holds a connection of its own, and on it an advisory lock named
    after itself for as long as it lives (so others see it alive), and the inbox's advisory
    lock while it leads. When the process or its connection dies, the server frees both."""

    INBOX = 0x6D61696C726F6F6D  # "mailroom": the inbox's lock (the one earlier releases
    # took to run at all, so that an instance of one and of this exclude each other)
    NAMESPACE = 0x6D61696C  # "mail": the first key of each instance's own lock
    CHECK_SECONDS = 0.2  # how stale the answer of leads() and lives() may be

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.number, self.name = 0, ""
        self.connection: Connection | None = None
        self.leading = False
        self.checked = 0.0  # time.monotonic() of the last good answer from the server
        self._join()

    def _join(self) -> None:
        """Connect, and take a lock of a number nobody else has: each time under a new name,
        so that claims made under the old one are seen as those of an instance gone."""
        self.number = secrets.randbelow(2**31 - 1) + 1
        self.name = f"{socket.gethostname()}:{os.getpid()}:{self.number}"
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.execute(text("SELECT pg_advisory_lock(:space, :number)"),
                               {"space": self.NAMESPACE, "number": self.number})
        except BaseException:
            connection.close()
            raise
        self.connection, self.checked = connection, time.monotonic()

    def lead(self) -> bool:
        if self.leading:
            return self.leads()
        if self.connection is None and not self._rejoin():
            return False
        if not self.lives(force=True):
            return False
        self.leading = bool(self._ask(lambda c: c.execute(
            text("SELECT pg_try_advisory_lock(:inbox)"), {"inbox": self.INBOX}).scalar()))
        return self.leading

    def _rejoin(self) -> bool:
        """After a lost connection: join again, as a new instance, if the server answers."""
        try:
            self._join()
        except SQLAlchemyError as exc:
            log.warning("the database is still out of reach: %s", str(exc).splitlines()[0])
            return False
        return True

    def leads(self) -> bool:
        self.leading = self.leading and self.lives()
        return self.leading

    def lives(self, force: bool = False) -> bool:
        if force or time.monotonic() - self.checked >= self.CHECK_SECONDS:
            self._ask(lambda c: c.exec_driver_sql("SELECT 1"))
        return self.connection is not None

    def living(self) -> set[str] | None:
        """Read from the server's lock table: an instance's lock goes with its session."""
        rows = self._ask(lambda c: c.execute(text(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 2 AND classid = :space AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"space": self.NAMESPACE}).scalars().all())
        return None if rows is None else {str(number) for number in rows}

    def _ask(self, question: Callable[[Connection], Any]) -> Any:
        """Ask on our own connection; a failure means it is lost, and with it our locks."""
        if self.connection is None:
            return None
        try:
            answer = question(self.connection)
        except SQLAlchemyError as exc:
            log.error("lost the database connection that holds this instance's locks: %s",
                      str(exc).splitlines()[0])
            self._drop()
            return None
        self.checked = time.monotonic()
        return answer

    def _drop(self) -> None:
        self.leading = False
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.invalidate()
                self.connection.close()
            self.connection = None

    def release(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):  # a lost session has lost its locks, too
                self.connection.exec_driver_sql("SELECT pg_advisory_unlock_all()")
        self._drop()


# A connection that goes silent (a host gone, a network cut) fails within seconds on either
# side instead of hanging: mailroom gives up on it after about 4 s (its probes), the server
# after about 5 s (the probes each connection asks of it, KEEPALIVE), and then ends the
# session with its transaction, row locks and advisory locks. Only a direct connection gets
# the server's probes: a pooler between keeps the session open by its own settings.
SERVER_CONNECTION = {"application_name": "mailroom", "connect_timeout": 10, "keepalives": 1,
                     "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2,
                     "tcp_user_timeout": 4000}
KEEPALIVE = ("SET tcp_keepalives_idle = 2", "SET tcp_keepalives_interval = 1",
             "SET tcp_keepalives_count = 3", "SET tcp_user_timeout = 5000")


def _lock_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        return Path(tempfile.gettempdir()) / f"mailroom-{os.getpid()}.lock"
    return Path(database).with_name(Path(database).name + ".lock")


def _engine(url: str, durable: bool = True) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, connect_args=SERVER_CONNECTION)
        event.listen(engine, "connect", _probed)
        event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
        if not durable:
            event.listen(engine, "begin", _quick_commit)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", partial(_sqlite_pragmas, durable=durable))
    event.listen(engine, "begin", _sqlite_begin if durable else _sqlite_begin_deferred)
    return engine


def _probed(connection: Any, _record: Any) -> None:
    """Ask the server to probe this new connection (KEEPALIVE), for as long as it lasts."""
    with connection.cursor() as cursor:
        for setting in KEEPALIVE:
            cursor.execute(setting)
    connection.commit()


def _without_nul(_connection: Connection, _cursor: Any, statement: str, parameters: Any,
                 _context: Any, _many: bool) -> tuple[str, Any]:
    """PostgreSQL: text cannot hold a NUL character (SQLite's can). Mail may carry one, and it
    is never part of what anyone wrote: it is dropped, rather than the message refused."""
    return statement, _nul_free(parameters)


def _nul_free(value: Any) -> Any:
    """`value` (a string, or rows and lists of them) without NUL characters."""
    if isinstance(value, dict):
        return {key: _nul_free(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_nul_free(item) for item in value)
    return value.replace("\x00", "") if isinstance(value, str) else value


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
