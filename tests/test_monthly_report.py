"""The monthly report: mailed on the first working day from opening, to each department's manager
(their department) and to the admin (all), once, with the whole HTML report attached."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.store.models import Outgoing
from tests.servers import Dovecot, SmtpCapture
from tests.test_conversation import AGUS, BUDI, IT, RINA, text_of
from tests.test_promises import JOKO, Office, wib
from tests.test_report_html import tables
from tests.test_reports import HR, configured, opened

ADMIN = "admin@contoh.co.id"


@dataclass
class Morning:
    """The office after the morning of 1 December, and what was queued before it opened."""

    office: Office
    before_opening: int


@pytest.fixture(scope="module")
def december(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Morning]:
    """tests/test_reports.py's installation with an admin; IT has a manager (Joko), and so has
    General Affairs (open around the clock, without a request in November); HR and Finance
    have none. November's requests, and the daemon run through 1 December, a Tuesday: before
    opening, at 08:00, later, and after a restart."""
    with Dovecot() as dovecot, SmtpCapture() as smtp:
        config = with_admin(configured(tmp_path_factory.mktemp("monthly"), dovecot, smtp))
        config.write_text(config.read_text().replace(
            "ga: {name: General Affairs,", "ga: {manager: umum@contoh.co.id, "
            "name: General Affairs,"))
        office = Office(config, dovecot, smtp, now=wib(2026, 10, 30, 10, 0))
        november(office)
        office.at(wib(2026, 12, 1, 7, 0)).run()
        office.at(wib(2026, 12, 1, 7, 55)).run()
        before_opening = len(novembers(office))
        for hour, minute in ((8, 0), (8, 10), (10, 0)):
            office.at(wib(2026, 12, 1, hour, minute)).run()
        yield Morning(office, before_opening)


def with_admin(config: Path) -> Path:
    config.write_text(config.read_text().replace("language: id}",
                                                 f"language: id, admin: {ADMIN}}}"))
    return config


def november(office: Office) -> None:
    """One IT request late in October; two for IT and one for HR in November."""
    opened(office, wib(2026, 10, 30, 10, 0), BUDI, "Laptop tidak bisa menyala",
           "Laptop saya mati total.", IT)  # REQ-000001, the month before
    laptop = opened(office, wib(2026, 11, 23, 9, 0), BUDI, "Laptop tidak bisa menyala",
                    "Laptop saya tidak mau menyala sejak pagi.", IT)  # REQ-000002
    office.at(wib(2026, 11, 23, 9, 30)).reply(laptop, AGUS, "Kami cek, Pak.")
    office.at(wib(2026, 11, 23, 11, 0)).reply(laptop, AGUS, "#resolve Baterai diganti.")
    printer = opened(office, wib(2026, 11, 24, 10, 0), RINA, "Printer tidak bisa menyala",
                     "Printer di lantai 2 tidak bisa menyala.", IT)  # REQ-000003
    office.at(wib(2026, 11, 24, 11, 0)).reply(printer, AGUS, "Teknisi segera datang.")
    opened(office, wib(2026, 11, 25, 9, 0), BUDI, "Slip gaji November belum diterima",
           "Slip gaji saya belum diterima.", HR)  # REQ-000004


def novembers(office: Office) -> list[Outgoing]:
    """The reports of November queued (October's went out when the office ran in November)."""
    return [row for row in office.rows("report") if row.key and row.key.endswith(":2026-11")]


def reports_to(office: Office, address: str) -> list[EmailMessage]:
    return [m for m in office.digests_to(address)
            if "Laporan bulanan November" in str(m["Subject"])]


def attached(mail: EmailMessage) -> tuple[str, str, str]:
    [part] = list(mail.iter_attachments())
    assert isinstance(part, EmailMessage)
    return part.get_filename() or "", part.get_content_type(), part.get_content()


def test_managers_and_the_admin_get_last_months_report_once_from_opening(
        december: Morning) -> None:
    office = december.office
    assert december.before_opening == 0, "nothing before the departments open"
    assert sorted((r.key, *r.recipients) for r in novembers(office)) == [
        ("report:all:2026-11", ADMIN), ("report:it:2026-11", JOKO)]
    assert all(r.created_at == wib(2026, 12, 1, 8, 0) for r in novembers(office))
    [to_manager], [to_admin] = reports_to(office, JOKO), reports_to(office, ADMIN)
    assert to_manager["Subject"] == "Laporan bulanan November 2026: IT Support"
    assert to_admin["Subject"] == "Laporan bulanan November 2026: semua departemen"


def test_the_managers_mail_sums_up_their_department_and_attaches_its_report(
        december: Morning) -> None:
    [mail] = reports_to(december.office, JOKO)
    lines = text_of(mail).splitlines()
    assert "Permintaan: 2" in lines  # October's request is not November's
    assert "Selesai dalam batas waktu: 50,0%" in lines  # the printer is past its due time
    assert "Median tanggapan pertama: 45 menit kerja" in lines  # 30 and 60 minutes
    assert "Kepuasan (1 sampai 5): belum ada penilaian" in lines
    assert "* menyala (2 permintaan)" in lines
    filename, content_type, page = attached(mail)
    assert (filename, content_type) == ("report-2026-11.html", "text/html")
    assert page.isascii() and "1 November 2026 \N{EN DASH} 30 November 2026" in html.unescape(page)
    [volume] = tables(page, "volume")
    assert volume[1:] == [["IT Support", "2", "1", "hardware 2"], ["All", "2", "1", "hardware 2"]]


def test_the_admins_report_has_every_department(december: Morning) -> None:
    [mail] = reports_to(december.office, ADMIN)
    assert "Permintaan: 3" in text_of(mail).splitlines()
    [volume] = tables(attached(mail)[2], "volume")
    assert {row[0]: row[1] for row in volume[1:]} == {
        "Human Resources": "1", "Finance": "0", "IT Support": "2", "General Affairs": "0",
        "Service Desk": "0", "All": "3"}


def test_a_report_missed_on_the_first_working_day_goes_at_the_next_opening(
        tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> None:
    config = with_admin(configured(tmp_path, dovecot, smtp))
    office = Office(config, dovecot, smtp, now=wib(2026, 10, 30, 10, 0))
    november(office)  # down from 30 October to 23 November: October's went out that day
    assert sorted(row.key for row in office.rows("report")) == ["report:all:2026-10",
                                                                "report:it:2026-10"]
    office.at(wib(2026, 12, 2, 7, 30)).run()  # down all of 1 December; 2 December, not open yet
    assert novembers(office) == []
    office.at(wib(2026, 12, 2, 8, 0)).run()
    office.at(wib(2026, 12, 3, 8, 0)).run()
    assert sorted((r.key, r.created_at) for r in novembers(office)) == [
        ("report:all:2026-11", wib(2026, 12, 2, 8, 0)),
        ("report:it:2026-11", wib(2026, 12, 2, 8, 0))]
