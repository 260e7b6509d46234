"""Shared fixtures: real Dovecot IMAP and aiosmtpd SMTP servers on 127.0.0.1 (tests/servers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.servers import Dovecot, FreezingProxy, SilentListener, SmtpCapture


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
