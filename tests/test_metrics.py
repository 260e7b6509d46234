"""The Prometheus endpoint (metrics.listen) of a running daemon, scraped over HTTP."""

from __future__ import annotations

import logging
import mailbox
import os
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailroom import config as config_file
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.errors import ConfigError
from mailroom.metrics import Metrics
from tests.servers import HOST, free_port, port_answers
from tests.sites import request_mail, site
from tests.test_daemon_imap import timers_every, wait_until

DEFAULT_PORT = 9464  # metrics.listen's port in the examples and in Prometheus' registry
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metered(folder: Path, port: int) -> Path:
    """An installation whose daemon serves metrics on `port` of 127.0.0.1."""
    config = site(folder)
    with config.open("a") as file:
        file.write(f"metrics: {{listen: '{HOST}:{port}'}}\n")
    return config


def deliver(config: Path, *raws: bytes) -> None:
    box = mailbox.Maildir(config.parent / "inbox", create=True)
    for raw in raws:
        box.add(raw)


@contextmanager
def serving(config: Path, clock: Clock | None = None) -> Iterator[Daemon]:
    """A daemon running its loop in a thread, stopped (and its endpoint closed) after."""
    daemon = Daemon(config, clock or Clock())
    runner = threading.Thread(target=daemon.run_forever, daemon=True)
    runner.start()
    try:
        wait_until(lambda: daemon.endpoint is not None, 10, "the endpoint set up")
        yield daemon
    finally:
        daemon.shutdown()
        runner.join(30)
        assert not runner.is_alive(), "the daemon did not stop"


def counted(daemon: Daemon, name: str, **labels: str) -> float:
    """A sample as the daemon holds it (to wait on), not as scraped."""
    assert daemon.endpoint is not None
    return daemon.endpoint.metrics.registry.get_sample_value(name, labels) or 0.0


def scrape(port: int) -> dict[str, float]:
    """One scrape of /metrics: each sample by its name and labels as written."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found and not line.startswith("#"):
            key = found["name"] + (f"{{{found['labels']}}}" if found["labels"] else "")
            samples[key] = float(found["value"])
    return samples


def test_a_running_daemon_serves_its_counts_and_keeps_them_across_a_reload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timers_every(monkeypatch, 0.5)
    port = free_port()
    config = metered(tmp_path, port)
    deliver(config, request_mail(), request_mail(subject="Laptop tidak bisa menyala",
                                                 body="Laptop saya mati total sejak pagi."))
    with serving(config) as daemon:
        wait_until(lambda: counted(daemon, "mailroom_ack_latency_seconds_count") == 2, 20,
                   "two acknowledgments sent")
        wait_until(lambda: counted(daemon, "mailroom_outbox_depth") == 0
                   and daemon.vitals.beaten > 0, 20, "a heartbeat after the flush")
        scraped = scrape(port)
        assert scraped['mailroom_messages_total{outcome="new_request"}'] == 2
        assert scraped['mailroom_requests_total{department="hr"}'] == 1
        assert scraped['mailroom_requests_total{department="it"}'] == 1
        assert scraped["mailroom_ack_latency_seconds_count"] == 2
        assert 0 <= scraped["mailroom_ack_latency_seconds_sum"] < 60
        assert scraped["mailroom_outbox_depth"] == 0
        read_at = scraped["mailroom_last_inbox_read_timestamp_seconds"]
        assert abs(read_at - datetime.now(UTC).timestamp()) < 60
        loaded = daemon.vitals.rules_loaded_at
        daemon.reload_requested = True  # as SIGHUP does
        daemon.wake.set()
        wait_until(lambda: daemon.vitals.rules_loaded_at != loaded, 20, "the reload done")
        again = scrape(port)
    assert again['mailroom_messages_total{outcome="new_request"}'] == 2
    assert again["mailroom_ack_latency_seconds_count"] == 2
    with pytest.raises(OSError):  # closed when the daemon stopped
        scrape(port)


def test_a_missed_due_time_counts_as_a_breach_of_its_department(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    config = metered(tmp_path, port)
    deliver(config, request_mail())
    opened = Daemon(config, Clock())
    opened.run_once()  # hr: a first response is due within 4 hours
    opened.close()
    timers_every(monkeypatch, 0.5)
    with serving(config, Clock(datetime.now(UTC) + timedelta(days=1), running=True)) as daemon:
        wait_until(lambda: counted(daemon, "mailroom_sla_breaches_total", department="hr") > 0,
                   20, "the escalation counted")
        scraped = scrape(port)
    breaches = {k: v for k, v in scraped.items() if k.startswith("mailroom_sla_breaches_total")}
    assert breaches == {'mailroom_sla_breaches_total{department="hr"}': 1}
    assert 'mailroom_messages_total{outcome="new_request"}' not in scraped  # before it started


def test_a_port_in_use_is_logged_and_mail_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    timers_every(monkeypatch, 0.5)
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = metered(tmp_path, port)
        deliver(config, request_mail())
        with caplog.at_level(logging.ERROR, "mailroom.metrics"), serving(config) as daemon:
            wait_until(lambda: len(list((tmp_path / "outbox" / "new").iterdir())) == 2, 20,
                       "the ack and the forward sent")
            assert daemon.endpoint is not None and daemon.endpoint.listening is None
    assert f"metrics.listen {HOST}:{port} cannot be served" in caplog.text
    assert "running without metrics" in caplog.text


def listening() -> set[int]:
    """The TCP sockets (by inode) this process listens on, as the kernel lists them."""
    links = (_link(fd) for fd in Path("/proc/self/fd").iterdir())
    mine = {int(link[len("socket:["):-1]) for link in links if link.startswith("socket:[")}
    listens: set[int] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        rows = [line.split() for line in table.read_text().splitlines()[1:]] \
            if table.exists() else []
        listens |= {int(row[9]) for row in rows if row[3] == "0A"}  # TCP_LISTEN
    return mine & listens


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed since the folder was read
        return ""


def test_without_metrics_listen_nothing_listens(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    timers_every(monkeypatch, 0.5)
    config = site(tmp_path)
    deliver(config, request_mail())
    assert config_file.load(config).metrics is None
    before, default_taken = listening(), port_answers(DEFAULT_PORT)
    with serving(config) as daemon:
        wait_until(lambda: len(list((tmp_path / "outbox" / "new").iterdir())) == 2, 20,
                   "the ack and the forward sent")
        assert listening() == before  # no socket of this process listens anywhere new
        assert port_answers(DEFAULT_PORT) == default_taken  # refused, unless another had it
        assert daemon.endpoint is not None and daemon.endpoint.port == 0


@pytest.mark.parametrize(("listen", "problem"), [
    ("'127.0.0.1'", "metrics.listen: '127.0.0.1' is not HOST:PORT with a port from 1 to 65535"),
    ("'127.0.0.1:70000'", "metrics.listen: '127.0.0.1:70000' is not HOST:PORT"),
    ("':9464'", "metrics.listen: ':9464' is not HOST:PORT"),
    ("[a, b]", "metrics.listen: expected HOST:PORT like 127.0.0.1:9464, got a list"),
])
def test_a_wrong_listen_is_a_file_line_error(tmp_path: Path, listen: str, problem: str) -> None:
    config = site(tmp_path)
    lines = len(config.read_text().splitlines())
    with config.open("a") as file:
        file.write(f"metrics:\n  listen: {listen}\n")
    with pytest.raises(ConfigError) as caught:
        config_file.load(config)
    assert str(caught.value).startswith(f"{config}:{lines + 2}:3: {problem}")


def test_an_unknown_key_under_metrics_is_a_file_line_error(tmp_path: Path) -> None:
    config = site(tmp_path)
    lines = len(config.read_text().splitlines())
    with config.open("a") as file:
        file.write("metrics:\n  listen: 127.0.0.1:9464\n  lisen: 127.0.0.1:9465\n")
    with pytest.raises(ConfigError) as caught:
        config_file.load(config)
    assert str(caught.value).startswith(
        f"{config}:{lines + 3}:3: unknown key 'lisen' in metrics")


def test_ipv6_listen_and_each_daemon_its_own_registry(tmp_path: Path) -> None:
    config = site(tmp_path)
    with config.open("a") as file:
        file.write("metrics: {listen: '[::1]:9464'}\n")
    listen = config_file.load(config).metrics
    assert listen is not None and (listen.host, listen.port) == ("::1", 9464)
    first, second = Metrics(), Metrics()  # no clash in the process-wide registry
    first.messages.labels(outcome="ignored").inc()
    assert second.registry.get_sample_value("mailroom_messages_total",
                                            {"outcome": "ignored"}) is None
