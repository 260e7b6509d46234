"""The `mailroom` command as admins and MTAs use it: real processes, real signals, exit codes."""

from __future__ import annotations

import json
import mailbox
import os
import shutil
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailroom import config as config_file
from mailroom import guard
from mailroom.cli import main
from mailroom.cli.demo import demo_folder, demo_refusal
from mailroom.store.db import Database
from mailroom.store.models import Event, Message, Outgoing, Request
from tests.servers import SmtpCapture
from tests.sites import break_database, database_of, request_mail, site

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
    break_database(config)
    result = mailroom("--config", str(config), "ingest", stdin=request_mail())
    assert result.returncode == 75


def test_ingest_answers_75_on_a_broken_config(tmp_path: Path) -> None:
    config = site(tmp_path)
    config.write_text(config.read_text().replace("rules: rules.yaml", "rulez: rules.yaml"))
    result = mailroom("--config", str(config), "ingest", stdin=request_mail())
    assert result.returncode == 75 and b"unknown key 'rulez'" in result.stderr


def state(notify: socket.socket) -> bytes:
    """The next state the service tells systemd, past the watchdog's pings."""
    while (told := notify.recv(64)) == b"WATCHDOG=1":
        pass
    return told


def test_run_stops_cleanly_on_sigterm_and_reloads_on_sighup(tmp_path: Path) -> None:
    config = site(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(30)
        process = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "--config", str(config), "run"],
            stderr=subprocess.PIPE, env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")})
        try:
            assert state(notify) == b"READY=1"  # what systemd waits for (Type=notify)
            process.send_signal(signal.SIGHUP)
            assert state(notify) == b"RELOADING=1"
            assert state(notify) == b"READY=1"
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


def test_an_unexpected_error_exits_70_with_one_line_and_the_traceback_in_the_log(
        tmp_path: Path) -> None:
    config = site(tmp_path)
    cause = break_database(config)
    result = mailroom("--config", str(config), "requests")
    assert result.returncode == 70  # EX_SOFTWARE: systemd restarts the service
    err = result.stderr.decode().splitlines()
    assert "Traceback (most recent call last):" in err
    assert err[-1].startswith("mailroom: OperationalError: ") and cause in err[-1]


def test_only_a_config_that_cannot_start_exits_78(tmp_path: Path) -> None:
    config = site(tmp_path)
    bad_now = mailroom("--config", str(config), "run", "--once",
                       env={"MAILROOM_NOW": "2026-11-23 09:00"})
    assert bad_now.returncode == 78
    assert bad_now.stderr.decode().startswith("MAILROOM_NOW: MAILROOM_NOW='2026-11-23 09:00' "
                                              "needs a UTC offset")
    config.write_text(config.read_text().replace("rules: rules.yaml", "rulez: rules.yaml"))
    broken = mailroom("--config", str(config), "run", "--once")
    assert broken.returncode == 78 and b"unknown key 'rulez'" in broken.stderr
    assert b"Traceback" not in bad_now.stderr + broken.stderr


# the demo: it deletes what its config names, so only inside its own folder


def demo_site(folder: Path, samples: int = 3, story: bool = False) -> Path:
    """config/demo.yaml as a copy keeps it: its inbox, outbox and database in demo/ beside it."""
    text = (ROOT / "config" / "demo.yaml").read_text().replace("../var/", "demo/")
    text = text.replace("rules: rules.example.yaml",
                        f"rules: {ROOT / 'config' / 'rules.example.yaml'}")
    text = text.replace("templates: ../templates/emails",
                        f"templates: {ROOT / 'templates' / 'emails'}")
    (folder / "demo-mail").mkdir()
    for mail in sorted((ROOT / "config" / "demo-mail").glob("*.eml"))[:samples]:
        shutil.copy(mail, folder / "demo-mail")
    if story:
        shutil.copy(ROOT / "config" / "demo-mail" / "week.yaml", folder / "demo-mail")
    config = folder / "demo.yaml"
    config.write_text(text)
    return config


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_demo_refuses_a_working_config_and_leaves_its_mail_and_database_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    shutil.copytree(ROOT / "config" / "demo-mail", tmp_path / "demo-mail")
    box = mailbox.Maildir(tmp_path / "inbox", create=True)
    box.add(request_mail())
    assert main(["--config", str(config), "run", "--once"]) == 0
    box.add(request_mail(subject="Laptop rusak", message_id="<waiting@contoh.co.id>"))
    before = files_under(tmp_path)
    assert any(k.startswith("outbox/new/") for k in before)
    assert ("mailroom.db" in before) == database_of(config).startswith("sqlite")
    capsys.readouterr()
    assert main(["--config", str(config), "demo"]) == 64
    err = capsys.readouterr().err
    assert f"{config} is not a demo config" in err and f"{tmp_path / 'demo'}/" in err
    assert "its inbox, outbox and database are not; nothing was changed" in err
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(("place", "edit", "outside"), [
    ("inbox", ("path: demo/inbox", "path: inbox"), "inbox"),
    ("outbox", ("path: demo/outbox", "path: demo"), "outbox"),  # the demo folder itself
    ("database", ("sqlite:///demo/mailroom.db", "sqlite:///var/mailroom.db"), "database"),
    ("database", ("sqlite:///demo/mailroom.db", "postgresql://mailroom@db/mailroom"), "database"),
    ("database", ("sqlite:///demo/mailroom.db", "sqlite:///:memory:"), "database"),
    ("inbox", ("path: demo/inbox", "path: demo/../inbox"), "inbox"),
])
def test_demo_refuses_when_one_place_is_outside_its_folder(
        tmp_path: Path, place: str, edit: tuple[str, str], outside: str) -> None:
    config = demo_site(tmp_path, samples=0)
    config.write_text(config.read_text().replace(*edit))
    refusal = demo_refusal(config_file.load(config))
    assert refusal.endswith(f"and its {outside} is not; nothing was changed")


def test_demo_follows_links_out_of_its_folder(tmp_path: Path) -> None:
    config = demo_site(tmp_path, samples=0)
    (tmp_path / "production-inbox").mkdir()
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "inbox").symlink_to(tmp_path / "production-inbox")
    assert demo_refusal(config_file.load(config)).endswith("its inbox is not; nothing was changed")


def test_a_demo_folder_that_is_a_link_is_still_the_demo_folder(tmp_path: Path) -> None:
    config = demo_site(tmp_path, samples=0)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "demo").symlink_to(tmp_path / "elsewhere")
    assert demo_refusal(config_file.load(config)) == ""


def test_demo_resets_and_fills_only_its_own_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = demo_site(tmp_path)
    (tmp_path / "demo").mkdir()
    stale = mailbox.Maildir(tmp_path / "demo" / "outbox", create=True).add(b"Subject: stale\n\n")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "mailroom.db").write_bytes(b"someone else's database")
    (tmp_path / "notes.txt").write_text("kept")
    assert main(["--config", str(config), "demo"]) == 0
    assert main(["--config", str(config), "demo"]) == 0  # a second run starts afresh
    out = capsys.readouterr().out.split("sample mails")[-1]
    assert "REQ-000003" in out and "REQ-000004" not in out
    sent = mailbox.Maildir(tmp_path / "demo" / "outbox", create=False)
    assert stale not in sent
    assert {mail["X-Mailroom-Reference"] for mail in sent} == {  # None: a daily digest
        "REQ-000001", "REQ-000002", "REQ-000003", None}
    assert (tmp_path / "var" / "mailroom.db").read_bytes() == b"someone else's database"
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_the_demo_plays_its_week_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILROOM_NOW", "2026-12-02T10:00+07:00")  # day 0 is Monday 23 November
    config = demo_site(tmp_path, samples=16, story=True)
    assert main(["--config", str(config), "demo"]) == 0
    out = capsys.readouterr().out
    assert "Monday, 23 November 2026 to Friday, 27 November 2026: 19 requests" in out
    assert "found nothing to answer" not in out  # every reply of the story reached its request
    assert f"mailroom --config {config} report --format html" in out
    db = Database(f"sqlite:///{tmp_path / 'demo' / 'mailroom.db'}")
    with db.transaction() as session:
        requests = {r.reference: r for r in session.scalars(select(Request))}
    assert {ref: r.rating for ref, r in requests.items() if r.rating} == {
        "REQ-000001": 5, "REQ-000003": 4, "REQ-000008": 2, "REQ-000009": 4, "REQ-000010": 5,
        "REQ-000011": 4, "REQ-000012": 5, "REQ-000017": 5, "REQ-000018": 1}
    assert [r.reference for r in requests.values() if r.status == "open"] == [
        "REQ-000002", "REQ-000014", "REQ-000015", "REQ-000019"]
    assert requests["REQ-000005"].status == "waiting"
    assert (requests["REQ-000016"].department, requests["REQ-000016"].transfers) == ("ga", 1)
    assert requests["REQ-000017"].received_at == datetime(2026, 11, 25, 2, 12, tzinfo=UTC)
    with db.transaction() as session:
        ignored = [(m.sender, m.reason) for m in session.scalars(
            select(Message).where(Message.outcome == "ignored"))]
    db.close()
    assert ignored == [("agus.prasetyo@contoh.co.id", "Auto-Submitted: auto-replied")]


def test_the_shipped_demo_config_keeps_to_var_of_the_source_tree() -> None:
    shipped = ROOT / "config" / "demo.yaml"
    assert demo_folder(shipped) == ROOT / "var"
    assert demo_refusal(config_file.load(shipped)) == ""
    assert demo_folder(Path("/etc/mailroom/demo.yaml")) == Path("/etc/mailroom/demo")


# quarantine: messages that could not be handled, shown and released after a fix

NINE, TEN = "2026-11-23T09:00+07:00", "2026-11-23T10:00+07:00"
GARBAGE = b"\x00\x01 not a mail at all"


def deliver(config: Path, *raws: bytes) -> None:
    box = mailbox.Maildir(config.parent / "inbox", create=True)
    for raw in raws:
        box.add(raw)


def run_at(config: Path, now: str, monkeypatch: pytest.MonkeyPatch, status: int = 0) -> None:
    monkeypatch.setenv("MAILROOM_NOW", now)
    assert main(["--config", str(config), "run", "--once"]) == status


def database(config: Path) -> Database:
    return Database(database_of(config))


@pytest.fixture
def quarantine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site with garbage quarantined at 09:00, a request at 10:00, then a bug's victim."""
    config = site(tmp_path)
    deliver(config, GARBAGE)
    run_at(config, NINE, monkeypatch)
    deliver(config, request_mail())
    run_at(config, TEN, monkeypatch)
    with monkeypatch.context() as patch:  # a bug in guard, until the fix
        patch.setattr(guard, "check", lambda inbound, service: 1 / 0)
        deliver(config, request_mail(subject="Laptop rusak", body="Laptop mati total."))
        run_at(config, "2026-11-23T11:30+07:00", monkeypatch)
    return config


def test_quarantine_list_shows_the_newest_first_in_the_service_zone(
        quarantine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--config", str(quarantine), "quarantine", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "when", "sender", "subject", "reason"]
    assert lines[2].startswith("3   Monday, 23 November 2026 at 11:30 WIB  budi@contoh.co.id  "
                               "Laptop rusak  internal error: ZeroDivisionError: division by")
    assert lines[3].startswith("1   Monday, 23 November 2026 at 09:00 WIB  -")
    assert lines[3].endswith("no mail headers found") and len(lines) == 4


def test_quarantine_list_in_json(quarantine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--config", str(quarantine), "quarantine", "list", "--json"]) == 0
    newest, oldest = json.loads(capsys.readouterr().out)
    assert oldest == {"id": 1, "quarantined_at": "2026-11-23T09:00:00+07:00", "sender": "",
                      "subject": "", "reason": "no mail headers found", "size": len(GARBAGE)}
    assert {k: newest[k] for k in ("id", "quarantined_at", "sender", "subject")} == {
        "id": 3, "quarantined_at": "2026-11-23T11:30:00+07:00", "sender": "budi@contoh.co.id",
        "subject": "Laptop rusak"}


def test_quarantine_show_gives_headers_reason_size_and_the_raw_bytes(
        quarantine: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with database(quarantine).transaction() as session:
        raw = session.get(Message, 3).raw  # type: ignore[union-attr]
    capsysbinary.readouterr()
    assert main(["--config", str(quarantine), "quarantine", "show", "3"]) == 0
    shown = capsysbinary.readouterr().out.decode()
    assert shown.startswith("message #3, quarantined Monday, 23 November 2026 at 11:30 WIB\n")
    assert "  reason      internal error: ZeroDivisionError: division by zero\n" in shown
    assert f"  size        {len(raw or b'')} bytes\n" in shown
    assert "  From:       Budi Santoso <budi@contoh.co.id>\n" in shown
    assert "  Subject:    Laptop rusak\n" in shown
    assert main(["--config", str(quarantine), "quarantine", "show", "3", "--raw"]) == 0
    assert capsysbinary.readouterr().out == raw
    assert main(["--config", str(quarantine), "quarantine", "show", "1"]) == 0
    assert "  headers     none readable as mail" in capsysbinary.readouterr().out.decode()


def test_quarantine_show_never_passes_the_senders_control_characters_to_the_terminal(
        quarantine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with database(quarantine).transaction() as session:
        message = session.get(Message, 3)
        assert message is not None and message.raw is not None
        message.raw = message.raw.replace(  # an encoded word that sets the title, clears
            b"Subject: Laptop rusak", b"Subject: =?utf-8?q?Laptop=1B]0;owned=07=1B[2J_rusak?=")
    capsys.readouterr()
    assert main(["--config", str(quarantine), "quarantine", "show", "3"]) == 0
    shown = capsys.readouterr().out
    assert "  Subject:    Laptop]0;owned[2J rusak\n" in shown
    assert "\x1b" not in shown and "\x07" not in shown


def test_quarantine_show_and_release_refuse_unknown_and_handled_messages(
        quarantine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for action in ("show", "release"):
        assert main(["--config", str(quarantine), "quarantine", action, "99"]) == 1
        assert capsys.readouterr().err == "mailroom: no inbound message #99\n"
        assert main(["--config", str(quarantine), "quarantine", action, "2"]) == 1
        assert capsys.readouterr().err == ("mailroom: message #2 is not quarantined; its "
                                           "outcome is new_request REQ-000001 rule 'salary and "
                                           "payroll'\n")


def test_quarantine_release_takes_the_message_through_intake_again(
        quarantine: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    deliver(quarantine, request_mail(subject="Cuti tahunan", body="Saya ingin mengajukan cuti."))
    run_at(quarantine, "2026-11-23T12:00+07:00", monkeypatch)  # REQ-000002, after the fix
    capsys.readouterr()
    assert main(["--config", str(quarantine), "quarantine", "release", "3"]) == 0
    with database(quarantine).transaction() as session:
        released = session.scalars(select(Message).where(Message.subject == "Laptop rusak")).one()
        assert released.outcome == "new_request"
        assert released.request is not None and released.request.department == "it"
        row = released.id
    moved = f" (recorded as message #{row})" if row != 3 else ""
    assert capsys.readouterr().out == ("message #3: new_request REQ-000003 rule 'devices and "
                                       f"network'{moved}\n")
    assert main(["--config", str(quarantine), "quarantine", "list", "--json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == [1]


def test_releasing_what_still_cannot_be_read_keeps_it_quarantined(
        quarantine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--config", str(quarantine), "quarantine", "release", "1"]) == 1
    with database(quarantine).transaction() as session:
        row = session.scalars(select(Message.id).where(Message.raw == GARBAGE)).one()
    moved = f" (recorded as message #{row})" if row != 1 else ""
    captured = capsys.readouterr()
    assert captured.out == f"message #1: quarantined no mail headers found{moved}\n"
    assert captured.err == "mailroom: message #1 is still quarantined\n"


# the outbox: mail that has not left, and a retry once the cause is fixed


def smtp_site(folder: Path, smtp: SmtpCapture) -> Path:
    return site(folder, outgoing=f"{{kind: smtp, host: {smtp.host}, port: {smtp.port}, "
                                 "security: none}")


def outbox_rows(config: Path) -> dict[int, Outgoing]:
    with database(config).transaction() as session:
        return {row.id: row for row in session.scalars(select(Outgoing))}


def events(config: Path, kind: str) -> list[Event]:
    with database(config).transaction() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind)))


@pytest.fixture
def refused(tmp_path: Path, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A request whose acknowledgment and forward the server refused for good at 09:00."""
    config = smtp_site(tmp_path, smtp)
    smtp.fail_with = "550 5.1.1 mailbox unavailable"
    deliver(config, request_mail())
    run_at(config, NINE, monkeypatch)
    assert {row.status for row in outbox_rows(config).values()} == {"failed"}
    return config


def test_outbox_list_shows_failed_mail(refused: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--config", str(refused), "outbox", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "status", "template", "request", "to", "attempts", "next",
                                "attempt", "last", "error"]
    assert lines[2].split()[:7] == ["1", "failed", "ack", "REQ-000001", "budi@contoh.co.id",
                                    "1", "-"]
    assert lines[3].split()[:7] == ["2", "failed", "forward", "REQ-000001", "hr@contoh.co.id",
                                    "1", "-"]
    assert all("refused after DATA: 550 5.1.1" in line for line in lines[2:]) and len(lines) == 4


def test_outbox_retry_makes_a_failed_mail_due_now_and_it_is_sent(
        refused: Path, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAILROOM_NOW", TEN)
    capsys.readouterr()
    assert main(["--config", str(refused), "outbox", "retry", "2"]) == 0
    assert capsys.readouterr().out == ("outbox mail #2 (forward to hr@contoh.co.id) is pending "
                                       "again: it goes with the next outbox round\n")
    row = outbox_rows(refused)[2]
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == datetime.fromisoformat(TEN)
    (event,) = events(refused, "mail retried by admin")
    assert (event.request_id, event.actor) == (row.request_id, "admin")
    assert event.detail["outbox"] == 2 and event.detail["was"] == "failed"
    smtp.fail_with = None
    run_at(refused, TEN, monkeypatch)
    assert [m.rcpt_tos for m in smtp.messages] == [["hr@contoh.co.id"]]
    assert outbox_rows(refused)[2].status == "sent" and outbox_rows(refused)[1].status == "failed"


def test_outbox_list_failed_and_json(refused: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAILROOM_NOW", TEN)
    assert main(["--config", str(refused), "outbox", "retry", "1"]) == 0
    capsys.readouterr()
    assert main(["--config", str(refused), "outbox", "list", "--json"]) == 0
    pending, failed = json.loads(capsys.readouterr().out)
    assert pending == {"id": 1, "status": "pending", "template": "ack", "request": "REQ-000001",
                       "to": ["budi@contoh.co.id"], "cc": [], "attempts": 1,
                       "next_attempt_at": "2026-11-23T10:00:00+07:00",
                       "last_error": pending["last_error"]}
    assert "550" in pending["last_error"]
    assert (failed["id"], failed["status"], failed["next_attempt_at"]) == (2, "failed", None)
    assert main(["--config", str(refused), "outbox", "list", "--failed", "--json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == [2]
    assert main(["--config", str(refused), "outbox", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:12] == ["1", "pending", "ack", "REQ-000001", "budi@contoh.co.id",
                                     "1", "Monday,", "23", "November", "2026", "at", "10:00"]
    assert lines[3].split()[:7] == ["2", "failed", "forward", "REQ-000001", "hr@contoh.co.id",
                                    "1", "-"]


def test_outbox_retry_brings_a_deferred_mail_forward(
        tmp_path: Path, smtp: SmtpCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    config = smtp_site(tmp_path, smtp)
    smtp.fail_with = "451 4.3.0 try again later"
    deliver(config, request_mail())
    run_at(config, NINE, monkeypatch, status=75)  # both mails wait
    deferred = outbox_rows(config)[1]
    assert deferred.status == "pending" and deferred.next_attempt_at > datetime.fromisoformat(NINE)
    assert main(["--config", str(config), "outbox", "retry", "1"]) == 0
    row = outbox_rows(config)[1]
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending", 1, datetime.fromisoformat(NINE))
    assert events(config, "mail retried by admin")[0].detail["was"] == "pending"


def test_outbox_retry_refuses_sent_and_unknown_mail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    deliver(config, request_mail())
    run_at(config, NINE, monkeypatch)
    capsys.readouterr()
    assert main(["--config", str(config), "outbox", "retry", "1"]) == 1
    assert capsys.readouterr().err == ("mailroom: outbox mail #1 was sent Monday, 23 November "
                                       "2026 at 09:00 WIB; there is nothing to retry\n")
    assert outbox_rows(config)[1].status == "sent" and not events(config, "mail retried by admin")
    assert main(["--config", str(config), "outbox", "retry", "7"]) == 1
    assert capsys.readouterr().err == "mailroom: no outbox mail #7\n"
