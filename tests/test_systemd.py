"""The systemd unit verifies, and the daemon pings its watchdog only while its loop turns."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.clock import Clock
from mailroom.daemon import Daemon
from tests.sites import site

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "mailroom.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    unit = tmp_path / "mailroom.service"  # the same unit, with a program that exists here
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/mailroom", shutil.which("true")
                                             or "/bin/true"))
    checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "mailroom.service" not in checked.stderr, checked.stderr  # no unknown key, no typo


def test_the_unit_asks_for_a_watchdog_and_notifications() -> None:
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify"
    assert settings["WatchdogSec"].endswith("s") and int(settings["WatchdogSec"][:-1]) >= 60


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = Path("/tmp") / f"mailroom-notify-{tmp_path.name[-20:]}"  # short: AF_UNIX paths are
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield listener
    listener.close()
    path.unlink(missing_ok=True)


def heard(listener: socket.socket, seconds: float) -> list[str]:
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            found.append(listener.recv(256).decode())
    return found


def test_the_watchdog_hears_the_loop_turn_and_stops_hearing_it_when_stuck(
        tmp_path: Path, notify_socket: socket.socket) -> None:
    daemon = Daemon(site(tmp_path), Clock())
    stuck, release = threading.Event(), threading.Event()
    waited = daemon.source.wait

    def wait(seconds: float, stop: threading.Event) -> None:  # the loop can hang here for real
        if stuck.is_set():
            release.wait(30)
        waited(min(seconds, 0.3), stop)

    daemon.source.wait = wait  # type: ignore[method-assign]
    runner = threading.Thread(target=daemon.run_forever)
    runner.start()
    try:
        turning = heard(notify_socket, 3.0)
        assert "READY=1" in turning and turning.count("WATCHDOG=1") >= 2, turning
        stuck.set()
        heard(notify_socket, 1.5)  # the turn in progress may still ping once
        assert "WATCHDOG=1" not in heard(notify_socket, 2.5)
        release.set()
        stuck.clear()
        assert "WATCHDOG=1" in heard(notify_socket, 3.0)
    finally:
        release.set()
        daemon.shutdown()
        runner.join(30)
    assert not runner.is_alive()
