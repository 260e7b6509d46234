"""Log lines as text or JSON, each line about a request carrying its reference."""

from __future__ import annotations

import io
import json
import logging
import mailbox
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailroom import config as config_file
from mailroom import intake, logs
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.errors import ConfigError
from tests.sites import request_mail, site
from tests.test_daemon_maildir import sent

NOW = "2026-11-23T09:00+07:00"
OUT_OF_OFFICE = {"subject": "Out of office", "body": "Saya sedang cuti.",
                 "sender": "Citra <citra@contoh.co.id>", "Auto_Submitted": "auto-replied"}


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the logger `mailroom.test` writes in JSON lines."""
    written = io.StringIO()
    handler = logs.handler("json", written)
    logger = logging.getLogger("mailroom.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield written
    logger.removeHandler(handler)


def parsed(written: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in written.getvalue().splitlines()]


# -- the formats --------------------------------------------------------------------------------

def test_a_json_line_has_time_level_logger_message_and_the_request(
        lines: io.StringIO) -> None:
    log = logging.getLogger("mailroom.test")
    before = datetime.now(UTC)
    with logs.about("REQ-000007"):
        log.info("taken by %s", "rina")
    log.warning("the inbox is slow")
    about, other = parsed(lines)
    assert {k: v for k, v in about.items() if k != "at"} == {
        "level": "INFO", "logger": "mailroom.test", "message": "taken by rina",
        "reference": "REQ-000007"}
    assert other == {"at": other["at"], "level": "WARNING", "logger": "mailroom.test",
                     "message": "the inbox is slow"}
    at = datetime.fromisoformat(about["at"])
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((at - before).total_seconds()) < 5


def test_a_line_naming_a_request_concerns_it_and_a_traceback_is_kept(
        lines: io.StringIO) -> None:
    log = logging.getLogger("mailroom.test")
    log.info("inbox 12: reply REQ-000003 by signed reply address")
    try:
        1 / 0  # noqa: B018 - the fault whose traceback the line carries
    except ZeroDivisionError:
        log.exception("sending failed")
    named, failed = parsed(lines)
    assert named["reference"] == "REQ-000003"
    assert "reference" not in failed
    assert failed["message"] == "sending failed"
    assert failed["exc"].startswith("Traceback") and "ZeroDivisionError" in failed["exc"]


def test_a_text_line_ends_with_the_reference_of_its_request() -> None:
    written = io.StringIO()
    handler = logs.handler("text", written)
    log = logging.getLogger("mailroom.test.text")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logs.about("REQ-000123"):
            log.info("ack sent")
        log.info("outbox: 2 sent")
    finally:
        log.removeHandler(handler)
    about, other = written.getvalue().splitlines()
    assert about.endswith(" INFO mailroom.test.text: ack sent [REQ-000123]")
    assert other.endswith(" INFO mailroom.test.text: outbox: 2 sent")


def test_the_request_at_hand_is_restored_on_the_way_out() -> None:
    with logs.about("REQ-000001"):
        with logs.about():
            assert logs.current() == ""
            logs.concerns("REQ-000002")
            assert logs.current() == "REQ-000002"
        assert logs.current() == "REQ-000001"
    logs.concerns("REQ-000003")  # outside any `about`: it would outlive its work
    assert logs.current() == ""


# -- where requests are handled -------------------------------------------------------------------

def test_intake_and_outbox_log_with_the_request_at_hand(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    config = site(tmp_path)
    box = mailbox.Maildir(tmp_path / "inbox", create=True)
    box.add(request_mail())
    box.add(request_mail(**OUT_OF_OFFICE))
    recorded: list[str] = []
    record = intake._record
    monkeypatch.setattr(intake, "_record", lambda session, message: (
        recorded.append(logs.current()), record(session, message))[1])
    seen: list[tuple[str, str]] = []
    spy = logging.Handler()
    spy.emit = lambda r: seen.append((r.name, logs.current()))  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    logging.getLogger().addHandler(spy)
    try:
        run_once(config, datetime.fromisoformat(NOW))
    finally:
        logging.getLogger().removeHandler(spy)
    assert sorted(recorded) == ["", "REQ-000001"]  # the out-of-office concerns no request
    assert [at for name, at in seen if name == "mailroom.outbox"] == ["REQ-000001"] * 2
    assert logs.current() == ""


def run_once(config: Path, now: datetime) -> None:
    daemon = Daemon(config, Clock(now))
    daemon.run_once()
    daemon.close()


def mailroom_run(config: Path) -> list[str]:
    """`mailroom run --once` as a process: its standard error, line by line."""
    env = {**os.environ, "MAILROOM_NOW": NOW}
    done = subprocess.run([sys.executable, "-m", "mailroom", "--config", str(config), "run",
                           "--once"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_run_once_writes_json_lines_with_the_reference_of_each_request(tmp_path: Path) -> None:
    config = site(tmp_path)
    config.write_text(config.read_text() + "logging: {format: json}\n")
    box = mailbox.Maildir(tmp_path / "inbox", create=True)
    box.add(request_mail())
    box.add(request_mail(**OUT_OF_OFFICE))
    written = [json.loads(line) for line in mailroom_run(config)]
    assert all({"at", "level", "logger", "message"} <= set(line) for line in written)
    about = [line for line in written if line.get("reference")]
    assert {line["reference"] for line in about} == {"REQ-000001"}
    messages = [line["message"] for line in about]
    assert "REQ-000001 ack sent to budi@contoh.co.id" in messages
    assert "REQ-000001 forward sent to hr@contoh.co.id" in messages
    assert any("new_request REQ-000001" in m for m in messages)
    ignored = [line for line in written if "ignored Auto-Submitted" in line["message"]]
    assert len(ignored) == 1 and "reference" not in ignored[0]
    assert written[0]["level"] == "WARNING" and "MAILROOM_NOW" in written[0]["message"]
    assert len(sent(config)) == 2


def test_run_once_writes_text_lines_by_default(tmp_path: Path) -> None:
    config = site(tmp_path)
    mailbox.Maildir(tmp_path / "inbox", create=True).add(request_mail())
    written = mailroom_run(config)
    assert any(line.endswith(" INFO mailroom.outbox: REQ-000001 ack sent to budi@contoh.co.id "
                             "[REQ-000001]") for line in written), written
    assert not any(line.startswith("{") for line in written)


# -- the config -----------------------------------------------------------------------------------

def test_logging_format_is_read_and_checked(tmp_path: Path) -> None:
    config = site(tmp_path)
    base = config.read_text()
    assert config_file.load(config).log_format == "text"
    config.write_text(base + "logging:\n  format: json\n")
    assert config_file.load(config).log_format == "json"
    assert config_file.log_format(config) == "json"
    line = base.count("\n") + 2
    config.write_text(base + "logging:\n  format: xml\n  level: debug\n")
    with pytest.raises(ConfigError) as caught:
        config_file.load(config)
    problems = str(caught.value).splitlines()
    assert any(p.startswith(f"{config}:{line}:") and "logging.format" in p
               and "one of text, json" in p for p in problems), problems
    assert any(p.startswith(f"{config}:{line + 1}:") and "unknown key 'level'" in p
               for p in problems), problems
    assert config_file.log_format(config) == "text"  # its check says why
    assert config_file.log_format(tmp_path / "missing.yaml") == "text"
