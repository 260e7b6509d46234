"""Shared fixtures: real Dovecot IMAP and aiosmtpd SMTP servers on 127.0.0.1 (tests/servers.py);
the database every installation gets: SQLite, or PostgreSQL with `--database postgresql`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailroom.store.db import Database, Instance
from tests import sites
from tests.servers import Dovecot, FreezingProxy, SilentListener, SmtpCapture

BACKENDS = ("sqlite", "postgresql")
FIGURES: list[str] = []  # what tests measured, shown at the end of the run


def report_figure(line: str) -> None:
    """Show a measured figure (a failover time) in the run's summary."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in FIGURES:
        terminalreporter.write_line(f"measured: {line}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database", choices=BACKENDS,
                     default=os.environ.get("MAILROOM_TEST_DATABASE", "sqlite"),
                     help="the database of every test installation (default: sqlite, or "
                          "$MAILROOM_TEST_DATABASE); postgresql starts a private cluster")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_database: touches no database (run on SQLite only)")
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself (its file, its lock)")
    config.addinivalue_line("markers", "postgresql_only: about PostgreSQL itself (instances)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each backend runs the tests that have a database, and those about it alone; tests
    without a database run once, on the SQLite pass."""
    backend = config.getoption("--database")
    other = {"sqlite": ("postgresql_only",),
             "postgresql": ("no_database", "sqlite_only")}[backend]
    kept = [item for item in items if not any(item.get_closest_marker(m) for m in other)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def database_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """In PostgreSQL mode, one private cluster for the whole run; every installation gets a
    database of its own in it (tests.sites.database_url)."""
    backend = request.config.getoption("--database")
    if backend == "sqlite":
        yield backend
        return
    from tests.postgres import Postgres  # psycopg: only the PostgreSQL pass needs it
    with Postgres() as cluster:
        sites.use_postgres(cluster)
        try:
            yield backend
        finally:
            sites.use_postgres(None)


@pytest.fixture(autouse=True)
def database_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked no_database that makes an installation fails: it would be left out of
    the PostgreSQL pass."""
    sites.forbid_database(request.node.get_closest_marker("no_database") is not None)
    yield
    sites.forbid_database(False)


@pytest.fixture(autouse=True)
def databases_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every database a test opened is closed at its end, with the instance locks taken on
    it: a PostgreSQL connection left open would warn in a later test, and hold its locks."""
    opened: list[Database] = []
    instances: list[Instance] = []
    open_database = Database.__init__

    def opening(self: Database, *args: Any, **kwargs: Any) -> None:
        open_database(self, *args, **kwargs)
        opened.append(self)

    def recorded(take: Callable[[Database], Instance]) -> Callable[[Database], Instance]:
        def taking(self: Database) -> Instance:
            instances.append(taken := take(self))
            return taken
        return taking

    monkeypatch.setattr(Database, "__init__", opening)
    monkeypatch.setattr(Database, "instance", recorded(Database.instance))
    monkeypatch.setattr(Database, "passing", recorded(Database.passing))
    yield
    for instance in instances:
        instance.release()
    for db in opened:
        db.close()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A started Dovecot with default options (plain IMAP, IDLE and MOVE offered)."""
    with Dovecot() as server:
        yield server


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    """make(idle=, move=, uidplus=, tls=, starttls=) -> a started Dovecot, stopped at teardown."""
    made: list[Dovecot] = []

    def make(**options: bool) -> Dovecot:
        server = Dovecot(**options)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def proxy(dovecot: Dovecot) -> Iterator[FreezingProxy]:
    """A FreezingProxy in front of the `dovecot` fixture, forwarding until frozen."""
    with FreezingProxy(dovecot.port) as running:
        yield running


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    """A port that takes TCP connections and never greets."""
    with SilentListener() as listener:
        yield listener


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    """A started SmtpCapture: plain SMTP, no AUTH, accepts everything until fail_with is set."""
    with SmtpCapture() as capture:
        yield capture
