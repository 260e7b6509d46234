"""The `mailroom` command as admins and MTAs use it: real processes, real signals, exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.cli import main
from tests.sites import request_mail, site

ROOT = Path(__file__).resolve().parent.parent


def mailroom(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mailroom", *args], input=stdin,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


def test_ingest_records_the_message_and_exits_0(tmp_path: Path) -> None:
    config = site(tmp_path)
    result = mailroom("--config", str(config), "ingest", stdin=request_mail())
    assert result.returncode == 0, result.stderr
    assert b"new_request REQ-000001" in result.stderr
    again = mailroom("--config", str(config), "ingest", stdin=request_mail(message_id="<x@y>"))
    assert again.returncode == 0 and b"REQ-000002" in again.stderr


def test_ingest_answers_75_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    config = site(tmp_path)
    (tmp_path / "mailroom.db").mkdir()  # a folder where the database file should be
    result = mailroom("--config", str(config), "ingest", stdin=request_mail())
    assert result.returncode == 75


def test_ingest_answers_75_on_a_broken_config(tmp_path: Path) -> None:
    config = site(tmp_path)
    config.write_text(config.read_text().replace("rules: rules.yaml", "rulez: rules.yaml"))
    result = mailroom("--config", str(config), "ingest", stdin=request_mail())
    assert result.returncode == 75 and b"unknown key 'rulez'" in result.stderr


def test_run_stops_cleanly_on_sigterm_and_reloads_on_sighup(tmp_path: Path) -> None:
    config = site(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(30)
        process = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "--config", str(config), "run"],
            stderr=subprocess.PIPE, env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")})
        try:
            assert notify.recv(64) == b"READY=1"  # what systemd waits for (Type=notify)
            process.send_signal(signal.SIGHUP)
            assert notify.recv(64) == b"RELOADING=1"
            assert notify.recv(64) == b"READY=1"
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 0
    log = err.decode()
    assert "reloaded" in log and "then stopping" in log


def test_rules_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    assert main(["--config", str(config), "rules", "check"]) == 0
    broken = ROOT / "tests" / "data" / "rules-mistakes" / "unknown-department.yaml"
    assert main(["--config", str(config), "rules", "check", str(broken)]) == 1
    assert f"{broken}:5:12: unknown department 'hrd'" in capsys.readouterr().out


def test_rules_test_explains_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    mail = tmp_path / "vpn.eml"
    mail.write_bytes(request_mail(subject="VPN tidak bisa connect", body="VPN mati."))
    assert main(["--config", str(config), "rules", "test", "--json", str(mail)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert {k: result[k] for k in ("file", "rule", "department", "priority", "category", "tags")
            } == {"file": str(mail), "rule": "devices and network", "department": "it",
                  "priority": "normal", "category": "", "tags": []}
    assert result["trace"][-1] == {"rule": "devices and network", "matched": True,
                                   "why": "yes: text has any of 'laptop', 'komputer', "
                                          "'computer', 'printer', 'VPN', 'wifi', 'internet', "
                                          "'email'"}
    assert all(not step["matched"] for step in result["trace"][:-1])


def test_rules_test_text_names_the_deciding_rule(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    mail = tmp_path / "kantin.eml"
    mail.write_bytes(request_mail(subject="Jam buka kantin", body="Kapan kantin buka?"))
    assert main(["--config", str(config), "rules", "test", str(mail)]) == 0
    out = capsys.readouterr().out
    assert "rule 'fallback'" in out and "department triage" in out
    assert "no rule matched: the fallback decides" in out


def test_rules_replay_shows_what_an_edit_would_move(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    for subject in ("Lupa kata sandi", "Slip gaji", "Laptop rusak"):
        assert mailroom("--config", str(config), "ingest",
                        stdin=request_mail(subject=subject, body="Mohon bantuan.")).returncode == 0
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text((tmp_path / "rules.yaml").read_text().replace(
        "then: {department: it, priority: high}", "then: {department: hr, priority: high}"))
    assert main(["--config", str(config), "rules", "replay", "--rules", str(candidate)]) == 0
    out = capsys.readouterr().out
    assert "3 requests in the last 30d" in out and "1 would go elsewhere" in out
    assert "REQ-000001  it   accounts and passwords  hr" in out
    assert "hr   hr        1" in out and "it   hr        1" in out and "it   it        1" in out


def test_requests_lists_rule_and_rules_version(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    assert mailroom("--config", str(config), "ingest", stdin=request_mail()).returncode == 0
    assert main(["--config", str(config), "requests"]) == 0
    out = capsys.readouterr().out
    assert "REQ-000001" in out and "salary and payroll @" in out


def test_sla_preview_gives_the_due_times_of_an_arrival(capsys: pytest.CaptureFixture[str]) -> None:
    demo = str(ROOT / "config" / "demo.yaml")
    assert main(["--config", demo, "sla", "preview", "--department", "hr",
                 "--at", "2026-12-24 16:30", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "first_response_due": "2026-12-28T12:00:00+07:00",  # 24 Dec cuti bersama, 25 Christmas
        "resolution_due": "2027-01-04T08:00:00+07:00"}  # 31 Dec closed, 1 Jan New Year
    assert main(["--config", demo, "sla", "preview", "--department", "hr",
                 "--at", "2026-12-24 16:30"]) == 0
    text = capsys.readouterr().out
    assert "Christmas Joint Holiday" in text and "Monday, 28 December 2026 at 12:00 WIB" in text
    assert main(["--config", demo, "sla", "preview", "--department", "hrd"]) == 2
    assert "did you mean 'hr'?" in capsys.readouterr().err


def test_run_once_at_a_later_now_sends_what_would_be_due_then(tmp_path: Path) -> None:
    config = site(tmp_path)
    arrival = {"MAILROOM_NOW": "2026-11-23T09:15+07:00"}
    assert mailroom("--config", str(config), "ingest", stdin=request_mail(
        subject="Laptop mati", body="Laptop saya tidak bisa menyala."), env=arrival
                    ).returncode == 0
    later = mailroom("--config", str(config), "run", "--once",
                     env={"MAILROOM_NOW": "2026-11-23T12:00+07:00"})
    assert later.returncode == 0, later.stderr
    assert b"fixes the clock at 2026-11-23T05:00:00+00:00" in later.stderr
    subjects = [line for mail in (tmp_path / "outbox" / "new").iterdir()
                for line in mail.read_text().splitlines() if line.startswith("Subject:")]
    assert len(subjects) == 4  # the acknowledgment, the forward, a delay notice, an escalation
    assert sum("keterlambatan" in s.lower() for s in subjects) == 1
