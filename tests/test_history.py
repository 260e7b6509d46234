"""`mailroom requests list | show`, `messages list`, tables and progress bars, on real intake."""

from __future__ import annotations

import io
import json
import mailbox
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from rich.console import Console

from mailroom import guard
from mailroom.cli import main
from mailroom.cli.common import framed, table
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from tests.sites import request_mail, site
from tests.test_daemon_maildir import sent

WIB = timezone(timedelta(hours=7))
HEADERS = ["reference", "requester", "subject", "department", "rule", "status", "assignee",
           "due", "transfers"]
AMSTERDAM = """\
calendars:
  amsterdam: {timezone: Europe/Amsterdam, hours: {mon-fri: "09:00-17:00"}}
"""
SOLUTION = "Slip gaji sudah dikirim ulang ke email Bapak."
LATER = "2026-11-25T09:00+07:00"  # Wednesday: IT's one day has passed, Finance's three not


def wib(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=WIB)


def deliver(config: Path, raw: bytes, now: datetime) -> None:
    """The mail reaches the Maildir inbox at `now`; one daemon round takes it and sends."""
    box = mailbox.Maildir(config.parent / "inbox", create=True)
    path = config.parent / "inbox" / "new" / box.add(raw)
    os.utime(path, (now.timestamp(), now.timestamp()))
    daemon = Daemon(config, Clock(now))
    daemon.run_once()
    daemon.close()


def reply_to(forward: EmailMessage, sender: str, body: str) -> bytes:
    return request_mail(subject=f"Re: {forward['Subject']}", body=body, sender=sender,
                        To=forward["Reply-To"], In_Reply_To=forward["Message-ID"],
                        References=forward["Message-ID"])


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Monday 23 November: Budi's payslip (HR, resolved by Rina's #resolve at 10:00), Ani's
    laptop (IT), an out-of-office reply (ignored), Dewi's claim (Finance, in Amsterdam)."""
    config = site(tmp_path_factory.mktemp("office"))
    text = config.read_text().replace("finance: {name: Finance,",
                                      "finance: {calendar: amsterdam, name: Finance,")
    config.write_text(text.replace("departments:\n", AMSTERDAM + "departments:\n"))
    deliver(config, request_mail(), wib(23, 9))
    deliver(config, request_mail(subject="Laptop tidak bisa menyala", body="Laptop saya mati.",
                                 sender="Ani <ani@contoh.co.id>"), wib(23, 9, 5))
    deliver(config, request_mail(subject="Out of office", body="Saya sedang cuti.",
                                 sender="Citra <citra@contoh.co.id>",
                                 Auto_Submitted="auto-replied"), wib(23, 9, 10))
    forward = next(m for m in sent(config) if m["To"] == "hr@contoh.co.id")
    deliver(config, reply_to(forward, "Rina <rina@contoh.co.id>",
                             f"#resolve {SOLUTION}\n\nSalam, Rina"), wib(23, 10))
    deliver(config, request_mail(subject="Klaim reimbursement perjalanan dinas",
                                 body="Mohon klaim saya diproses.",
                                 sender="Dewi <dewi@contoh.co.id>"), wib(23, 10, 30))
    return config


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["--config", str(config), *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def cells(row: str) -> list[str]:
    """The cells of a plain table's row (columns are two spaces apart at least)."""
    return re.split(r"\s{2,}", row.strip())


def listed(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    status, out, _ = run(config, capsys, "requests", "list", "--json", *args)
    assert status == 0
    return [r["reference"] for r in json.loads(out)]


@pytest.fixture(autouse=True)
def now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILROOM_NOW", LATER)


# -- requests list ----------------------------------------------------------------------------

def test_requests_list_shows_the_newest_first_with_rule_status_and_due_time(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(office, capsys, "requests", "list")
    assert status == 0
    header, rule, *rows = out.splitlines()
    assert header.split() == HEADERS and set(rule.replace(" ", "")) == {"-"}
    cells = [row.split("  ") for row in rows]
    assert [[c.strip() for c in row if c.strip()][:4] for row in cells] == [
        ["REQ-000003", "dewi@contoh.co.id", "Klaim reimbursement perjalanan dinas", "finance"],
        ["REQ-000002", "ani@contoh.co.id", "Laptop tidak bisa menyala", "it"],
        ["REQ-000001", "budi@contoh.co.id", "Slip gaji bulan Oktober belum diterima", "hr"]]
    assert "reimbursements and advances @" in rows[0] and " open " in rows[0]
    assert "salary and payroll @" in rows[2] and " resolved " in rows[2]
    assert "Tuesday, 24 November 2026 at 09:05 WIB" in rows[1]  # IT: one day
    assert "Thursday, 26 November 2026 at 09:00 CET" in rows[0]  # Finance, in Amsterdam


def test_requests_alone_is_requests_list(office: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    alone = run(office, capsys, "requests")
    assert alone == run(office, capsys, "requests", "list") and alone[1].count("REQ-") == 3


def test_requests_list_in_json_has_times_in_the_departments_zone(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(office, capsys, "requests", "list", "--json")
    assert status == 0
    finance, it, hr = json.loads(out)
    assert hr == {
        "reference": "REQ-000001", "department": "hr", "status": "resolved",
        "priority": "high", "category": "", "requester": "budi@contoh.co.id",
        "subject": "Slip gaji bulan Oktober belum diterima", "assignee": "",
        "rule": "salary and payroll", "created_at": "2026-11-23T09:00:00+07:00",
        "received_at": "2026-11-23T09:00:00+07:00",
        "first_response_due_at": "2026-11-23T13:00:00+07:00",  # 4h around the clock
        "due_at": "2026-11-26T09:00:00+07:00",  # 3d
        "first_response_at": "2026-11-23T10:00:00+07:00",
        "resolved_at": "2026-11-23T10:00:00+07:00", "transfers": 0, "rating": None}
    assert (it["priority"], it["first_response_due_at"], it["first_response_at"]) == (
        "normal", "2026-11-23T11:05:00+07:00", None)
    assert (finance["created_at"], finance["first_response_due_at"], finance["due_at"]) == (
        "2026-11-23T04:30:00+01:00",  # 10:30 in Jakarta; the clock starts at 09:00 there
        "2026-11-23T17:00:00+01:00", "2026-11-26T09:00:00+01:00")


def test_requests_list_filters(office: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert listed(office, capsys, "--department", "hr") == ["REQ-000001"]
    assert listed(office, capsys, "--status", "open") == ["REQ-000003", "REQ-000002"]
    assert listed(office, capsys, "--status", "resolved") == ["REQ-000001"]
    assert listed(office, capsys, "--overdue") == ["REQ-000003", "REQ-000002"]
    assert listed(office, capsys, "--limit", "1") == ["REQ-000003"]
    monkeypatch.setenv("MAILROOM_NOW", "2026-11-23T10:45+07:00")
    assert listed(office, capsys, "--since", "1h") == ["REQ-000003"]
    assert listed(office, capsys, "--since", "2h") == ["REQ-000003", "REQ-000002",
                                                       "REQ-000001"]
    assert listed(office, capsys, "--overdue") == []  # nothing is late yet


def test_a_missed_first_response_is_overdue_before_the_resolution_is(
        office: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILROOM_NOW", "2026-11-23T11:30+07:00")  # IT's 2h passed at 11:05
    assert listed(office, capsys, "--overdue") == ["REQ-000002"]
    status, out, _ = run(office, capsys, "requests", "list", "--overdue")
    assert status == 0 and [cells(row)[0] for row in out.splitlines()[2:]] == ["REQ-000002"]


@pytest.fixture
def waiting(tmp_path: Path) -> Path:
    """Two HR requests Rina waits on: Budi's since 10:00 Monday, before anything was due;
    Ani's since 10:00 Thursday, an hour after its resolution was due (09:05)."""
    config = site(tmp_path)
    deliver(config, request_mail(), wib(23, 9))
    deliver(config, request_mail(subject="Cuti tahunan Desember", body="Saya ingin cuti.",
                                 sender="Ani <ani@contoh.co.id>"), wib(23, 9, 5))
    forwards = {m["Subject"]: m for m in sent(config) if m["To"] == "hr@contoh.co.id"}
    slip, leave = (next(m for t, m in forwards.items() if subject in t)
                   for subject in ("Slip gaji", "Cuti"))
    rina = "Rina <rina@contoh.co.id>"
    deliver(config, reply_to(slip, rina, "#waiting nomor karyawan Bapak"), wib(23, 10))
    deliver(config, reply_to(leave, rina, "Baik, kami cek dulu."), wib(23, 10))
    deliver(config, reply_to(leave, rina, "#waiting tanggal cuti yang pasti"), wib(26, 10))
    return config


def test_a_waiting_request_is_overdue_only_if_it_was_late_when_it_began_to_wait(
        waiting: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert listed(waiting, capsys, "--status", "waiting") == ["REQ-000002", "REQ-000001"]
    monkeypatch.setenv("MAILROOM_NOW", "2026-11-27T09:00+07:00")  # both due times are past
    assert listed(waiting, capsys, "--overdue") == ["REQ-000002"]


@pytest.mark.parametrize("command", [("requests", "list"), ("messages", "list")])
@pytest.mark.parametrize("since", ["0d", "1000000d"])
def test_since_nothing_or_beyond_a_century_is_refused_by_the_parser(
        office: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, str],
        since: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(office), *command, "--since", since])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"argument --since: {since!r} is not a duration like 30d or 12w (more than 0, at " \
        "most 36600d)" in err
    assert "Traceback" not in err


def test_an_unknown_department_is_a_usage_error_naming_the_departments(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(office, capsys, "requests", "list", "--department", "sales") == (
        64, "", "mailroom: unknown department 'sales'; the departments are hr, finance, it, "
                "ga, triage\n")


# -- requests show ----------------------------------------------------------------------------

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # any but newline and tab


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A request whose subject and text carry terminal escapes: colour, a window title (OSC,
    ended by BEL), a cleared screen, a C1 control sequence introducer."""
    config = site(tmp_path)
    deliver(config, request_mail(subject="Printer \x1b[31mmacet\x9b",
                                 body="Printer macet.\x1b]0;pwned\x07\n\x1b[2JLantai 3 "
                                      "\x9b31mselesai"), wib(23, 9))
    return config


def test_requests_show_prints_no_control_characters_from_a_requesters_mail(
        hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(hostile, capsys, "requests", "show", "REQ-000001")
    assert status == 0 and not CONTROL.search(out)
    assert "  Printer [31mmacet" in out.splitlines()[0]
    assert "      Printer macet.]0;pwned" in out and "      [2JLantai 3 31mselesai" in out


def test_json_keeps_the_text_whole_with_its_control_characters_escaped(
        hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(hostile, capsys, "requests", "show", "REQ-000001", "--json")
    assert status == 0 and not CONTROL.search(out)
    assert "\\u001b]0;pwned\\u0007" in out and "\\u009b31m" in out
    assert json.loads(out)["history"][0]["text"] == (
        "Printer macet.\x1b]0;pwned\x07\n\x1b[2JLantai 3 \x9b31mselesai")


def test_a_table_prints_no_control_characters_piped_or_on_a_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cell = "Printer\x1b]8;;http://x.example/\x1b\\ macet\r\x9b2J\x07"  # a link, a CR, CSI
    shown = "Printer]8;;http://x.example/\\ macet2J"
    assert table(["subject"], [[cell]]).splitlines() == ["subject", "-" * len(shown), shown]
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich takes standard output for a terminal
    coloured = table(["subject"], [[cell]])
    assert "\x1b[1;36msubject" in coloured and shown in coloured  # rich's own colours stay
    assert not CONTROL.search(re.sub(r"\x1b\[[0-9;]*m", "", coloured))


def test_requests_show_tells_the_whole_story_in_order(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(office, capsys, "requests", "show", "REQ-000001")
    assert status == 0
    header, story = out.split("\nhistory\n")
    assert header.splitlines() == [
        "REQ-000001  Slip gaji bulan Oktober belum diterima",
        "  requester       Budi Santoso <budi@contoh.co.id>",
        "  department      hr (Human Resources)",
        "  status          resolved, priority high, assignee -",
        "  received        Monday, 23 November 2026 at 09:00 WIB",
        "  first response  due Monday, 23 November 2026 at 13:00 WIB; given Monday, "
        "23 November 2026 at 10:00 WIB",
        "  resolution      due Thursday, 26 November 2026 at 09:00 WIB; resolved Monday, "
        "23 November 2026 at 10:00 WIB",
        f"  solution        {SOLUTION}"]
    nine, ten = (f"  Monday, 23 November 2026 at {hour} WIB  " for hour in ("09:00", "10:00"))
    assert story.splitlines() == [
        f"{nine}message in (requester)  budi@contoh.co.id",
        "      Selamat pagi, slip gaji saya belum diterima. Mohon bantuannya.",
        f"{nine}routed  mailroom", "      to hr by rule 'salary and payroll', priority high",
        f"{nine}mail sent  mailroom", "      ack to budi@contoh.co.id",
        f"{nine}mail sent  mailroom", "      forward to hr@contoh.co.id",
        f"{ten}message in (staff)  rina@contoh.co.id",
        f"      #resolve {SOLUTION}", "      Salam, Rina",
        f"{ten}resolved  rina@contoh.co.id", f"      {SOLUTION}",
        f"{ten}first response  mailroom",
        f"{ten}mail sent  mailroom", "      relay to budi@contoh.co.id"]


def test_requests_show_in_json(office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(office, capsys, "requests", "show", "1", "--json")
    shown = json.loads(out)
    assert status == 0 and set(shown) == {"request", "history"}
    request = shown["request"]
    assert (request["reference"], request["solution"], request["requester_name"]) == (
        "REQ-000001", SOLUTION, "Budi Santoso")
    steps = [(s["at"], s["kind"], s["actor"]) for s in shown["history"]]
    assert steps == [("2026-11-23T09:00:00+07:00", "message", "budi@contoh.co.id"),
                     ("2026-11-23T09:00:00+07:00", "routed", "mailroom"),
                     ("2026-11-23T09:00:00+07:00", "mail sent", "mailroom"),
                     ("2026-11-23T09:00:00+07:00", "mail sent", "mailroom"),
                     ("2026-11-23T10:00:00+07:00", "message", "rina@contoh.co.id"),
                     ("2026-11-23T10:00:00+07:00", "resolved", "rina@contoh.co.id"),
                     ("2026-11-23T10:00:00+07:00", "first response", "mailroom"),
                     ("2026-11-23T10:00:00+07:00", "mail sent", "mailroom")]
    staff = shown["history"][4]
    assert staff["text"] == f"#resolve {SOLUTION}\n\nSalam, Rina"
    assert {k: staff["detail"][k] for k in ("direction", "role", "outcome")} == {
        "direction": "in", "role": "staff", "outcome": "reply"}
    assert shown["history"][5]["detail"] == {"solution": SOLUTION}
    assert shown["history"][7]["detail"] == {"template": "relay", "to": ["budi@contoh.co.id"]}


def test_requests_show_of_an_unknown_or_malformed_reference(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(office, capsys, "requests", "show", "REQ-000999") == (
        1, "", "mailroom: no request REQ-000999\n")
    assert run(office, capsys, "requests", "show", "42") == (1, "", "mailroom: no request "
                                                                    "REQ-000042\n")
    assert run(office, capsys, "requests", "show", "slip") == (
        64, "", "mailroom: 'slip' is not a reference like REQ-000123\n")


# -- messages list ----------------------------------------------------------------------------

def test_messages_list_gives_each_outcome_and_its_request(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(office, capsys, "messages", "list")
    header, _, *rows = out.splitlines()
    assert status == 0
    assert header.split() == ["id", "received", "sender", "subject", "outcome", "reason",
                              "request"]
    assert [row.split()[0] for row in rows] == ["5", "4", "3", "2", "1"]
    assert cells(rows[1]) == ["4", "Monday, 23 November 2026 at 10:00 WIB", "rina@contoh.co.id",
                              "Re: [REQ-000001] Permintaan baru (tingg…", "reply",
                              "by signed reply address", "REQ-000001"]
    assert cells(rows[2])[2:] == ["citra@contoh.co.id", "Out of office", "ignored",
                                  "Auto-Submitted: auto-replied", "-"]
    assert cells(rows[4])[4:] == ["new_request", "rule 'salary and payroll'", "REQ-000001"]


def test_messages_list_ignored_in_text_and_json(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(office, capsys, "messages", "list", "--ignored")
    assert status == 0 and [r.split()[0] for r in out.splitlines()[2:]] == ["3"]
    status, out, _ = run(office, capsys, "messages", "list", "--ignored", "--json")
    assert json.loads(out) == [{"id": 3, "received_at": "2026-11-23T09:10:00+07:00",
                                "sender": "citra@contoh.co.id", "subject": "Out of office",
                                "outcome": "ignored", "reason": "Auto-Submitted: auto-replied",
                                "reference": None}]
    status, out, _ = run(office, capsys, "messages", "list", "--json", "--limit", "2")
    assert [(m["id"], m["outcome"], m["reference"]) for m in json.loads(out)] == [
        (5, "new_request", "REQ-000003"), (4, "reply", "REQ-000001")]


def test_a_malformed_since_is_refused_by_the_parser(
        office: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(office), "messages", "list", "--since", "lately"])
    assert exit_.value.code == 2
    assert "argument --since: 'lately' is not a duration like 30d" in capsys.readouterr().err


# -- tables and progress bars on a terminal ---------------------------------------------------

def test_a_table_is_coloured_on_a_terminal_and_plain_when_piped(
        office: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    piped = run(office, capsys, "requests", "list")[1]
    assert "\x1b[" not in piped
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich takes standard output for a terminal
    monkeypatch.setenv("COLUMNS", "250")
    coloured = run(office, capsys, "requests", "list")[1]
    assert "\x1b[1;36mreference" in coloured  # a bold cyan header
    for reference in ("REQ-000001", "REQ-000002", "REQ-000003"):
        assert reference in coloured


def test_a_framed_table_keeps_cells_as_written() -> None:
    console = Console(force_terminal=True, color_system=None, width=60)
    shown = framed(console, ["reference", "subject"], [["REQ-000001", "[bold]gaji[/bold]"]])
    assert shown.splitlines()[0].split() == ["reference", "subject"]
    assert shown.splitlines()[2].split() == ["REQ-000001", "[bold]gaji[/bold]"]


class Screen(io.StringIO):
    """Standard error as a terminal: what rich shows there is kept."""

    def isatty(self) -> bool:
        return True


def quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two requests quarantined by a bug in guard, then the fix."""
    config = site(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(guard, "check", lambda inbound, service: 1 / 0)
        deliver(config, request_mail(subject="Laptop rusak", body="Laptop mati."), wib(23, 9))
        deliver(config, request_mail(subject="Cuti tahunan", body="Saya ingin cuti."),
                wib(23, 9, 30))
    return config


def test_quarantine_release_takes_several_or_all_with_a_progress_bar(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = quarantined(tmp_path, monkeypatch)
    assert run(config, capsys, "quarantine", "release") == (
        64, "", "mailroom: name the messages to release (ID ...) or give --all\n")
    status, out, err = run(config, capsys, "quarantine", "release", "2", "9")
    assert status == 1 and out.startswith("message #2: new_request REQ-000001 rule 'leave ")
    assert err == "mailroom: no inbound message #9\n"
    screen = Screen()
    monkeypatch.setattr(sys, "stderr", screen)  # standard error on a terminal, the rest piped
    status, out, _ = run(config, capsys, "quarantine", "release", "--all")
    assert status == 0 and out.startswith("message #1: new_request REQ-000002 rule 'devices ")
    assert "releasing quarantined messages" in screen.getvalue()
    assert run(config, capsys, "quarantine", "list", "--json")[1] == "[]\n"


def test_rules_replay_shows_a_progress_bar_on_a_terminal(
        office: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, err = run(office, capsys, "rules", "replay")
    assert status == 0 and "3 requests in the last 30d" in out and err == ""
    monkeypatch.setenv("FORCE_COLOR", "1")
    status, out, err = run(office, capsys, "rules", "replay")
    assert status == 0 and "3 requests in the last 30d" in out
    assert "replaying the rules" in err
