"""Knowledge from solved requests: kept at #resolve, offered in forwards, searched by the admin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text

from mailroom import config, knowledge
from mailroom.cli import main
from mailroom.store import search
from mailroom.store.db import Database, _alembic_config
from mailroom.store.models import Message, Request
from mailroom.words import stem
from tests import sites
from tests.servers import Dovecot, SmtpCapture
from tests.sites import request_mail
from tests.test_conversation import AGUS, BUDI, IT, RINA, Desk, staff_command, text_of
from tests.test_daemon_imap import imap_site

SITI = "Siti Aminah <siti@contoh.co.id>"
SERVICE_DESK = "servicedesk@contoh.co.id"
BATTERY = "Baterai laptop diganti dan adaptor charger yang rusak sudah ditukar."
PAPER_JAM = "Kertas yang tersangkut di printer dikeluarkan, roller printer dibersihkan."
PRINTER = {"subject": "Printer lantai 2 macet",
           "body": "Printer di lantai 2 macet terus, kertasnya tersangkut di dalam."}
PRINTER_AGAIN = {"subject": "Printer macet lagi", "sender": SITI,
                 "body": "Printer lantai 2 macet, kertas tersangkut. Laptop saya juga tidak "
                         "bisa mencetak."}
ARCHIVE_KEY = {"subject": "Kunci lemari arsip hilang", "sender": SITI,
               "body": "Kunci lemari arsip bagian keuangan hilang sejak kemarin."}
OVERTIME_LAPTOP = {"subject": "Laptop lembur tidak bisa menyala", "sender": SITI,
                   "body": "Laptop untuk lembur akhir pekan tidak bisa menyala."}  # payroll: hr
SPARE = "Laptop cadangan dipinjamkan untuk lembur."
ROOM = {"subject": "Pemesanan ruang rapat lantai 3", "sender": SITI,
        "body": "Mohon pemesanan ruang rapat lantai 3 untuk rapat direksi."}
CAR = {"subject": "Pemesanan mobil dinas", "sender": SITI,
       "body": "Mohon pemesanan mobil dinas ke bandara untuk tamu."}
PAPER = {"subject": "Printer paper jam", "body": "The printer on the second floor has a paper jam."}
PAPERS = {"subject": "Printers keep jamming papers",
          "body": "Both printers near the computer room keep jamming papers."}
HR, GA = "hr@contoh.co.id", "ga@contoh.co.id"
SIMILAR = "Permintaan serupa yang sudah diselesaikan:"
HOSTILE = 'e-mail rock\'n\'roll NEAR( "printer" AND * -macet ^col: OR ) NOT "'
# the operators, quotes and escapes of a PostgreSQL tsquery, between and inside words
TSQUERY = "printer & !macet | (laptop:*) rock'n'roll's :A \\ 'kertas' \\'lantai' & !|"
NOTHING = (1, "no solved request matches\n")  # exit status 1, as grep


@pytest.fixture
def desk(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> Iterator[Desk]:
    path = imap_site(tmp_path, dovecot, smtp)
    path.write_text(path.read_text().replace(
        "it: {name: IT Support, address: it@contoh.co.id,",
        "it: {name: IT Support, address: it@contoh.co.id, members: [agus@contoh.co.id],"))
    yield Desk(path, dovecot, smtp)


def solve_two(desk: Desk) -> None:
    """REQ-000001 (a laptop that does not start) and REQ-000002 (a paper jam), both resolved."""
    staff_command(desk, f"#resolve {BATTERY}")
    _, forward = desk.open(**PRINTER)
    desk.reply(forward, AGUS, f"#selesai {PAPER_JAM}")


def kb_search(desk: Desk, capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str]:
    status = main(["--config", str(desk.config), "kb", "search", *words])
    return status, capsys.readouterr().out


@contextmanager
def database_of(desk: Desk) -> Iterator[Database]:
    db = Database(sites.database_of(desk.config))
    try:
        yield db
    finally:
        db.close()


def found_by(desk: Desk, about: str, exclude: int | None = None,
             department: str | None = None) -> list[str]:
    """The references the knowledge index offers for `about`, best first."""
    with database_of(desk) as db, db.transaction() as session:
        return [s.reference for s in knowledge.similar(session, about, 3, exclude, department)]


def indexed_requests(connection: Connection) -> list[int]:
    """The ids of the requests the knowledge table holds, on either database."""
    number = "rowid" if connection.dialect.name == "sqlite" else "request_id"
    return list(connection.scalars(text(f"SELECT {number} FROM knowledge ORDER BY 1")))


def it_zone(desk: Desk) -> ZoneInfo:
    return config.load(desk.config).departments["it"].calendar.zone


def solve_for_hr(desk: Desk) -> None:
    """A laptop for overtime (payroll words: Human Resources has it), resolved."""
    desk.deliver(request_mail(**OVERTIME_LAPTOP))
    desk.reply(desk.last_to(HR), RINA, f"#resolve {SPARE}")


def offered(forward: EmailMessage) -> str:
    """The similar solved requests a forward lists; "" when it lists none."""
    words = text_of(forward)
    return words.split(SIMILAR)[1] if SIMILAR in words else ""


# -- the forward --------------------------------------------------------------------------

def test_a_new_requests_forward_lists_the_most_similar_solved_request_first(
        desk: Desk) -> None:
    solve_two(desk)
    _, forward = desk.open(**PRINTER_AGAIN)
    ack = desk.last_to("siti@contoh.co.id")
    words = text_of(forward)
    assert "Permintaan serupa yang sudah diselesaikan:" in words
    listed = words.split("Permintaan serupa yang sudah diselesaikan:")[1]
    assert "REQ-000002" in listed  # a paper jam in the printer of the second floor
    assert "REQ-000001" not in listed  # only "laptop" in common: chance, not likeness
    assert "REQ-000003" not in listed
    assert "Solusi: Kertas yang tersangkut di printer dikeluarkan" in listed
    assert "Printer lantai 2 macet" in listed  # the solved request's subject
    html = forward.get_body(("html",))
    assert html is not None and "Permintaan serupa yang sudah diselesaikan" in html.get_content()
    assert "REQ-000002" in html.get_content()
    assert "REQ-000003" in ack["Subject"]
    assert "REQ-000002" not in text_of(ack) and "serupa" not in text_of(ack)


def test_an_unrelated_requests_forward_lists_none(desk: Desk) -> None:
    solve_two(desk)
    desk.deliver(request_mail(**ARCHIVE_KEY))
    forward = desk.last_to(SERVICE_DESK)  # no rule knows archive keys: the triage desk has it
    words = text_of(forward)
    assert "REQ-000003" in forward["Subject"] and "Kunci lemari arsip" in words
    assert "serupa" not in words and "REQ-000001" not in words and "REQ-000002" not in words
    html = forward.get_body(("html",))
    assert html is not None and "serupa" not in html.get_content()


def test_an_english_speaking_service_forwards_them_in_english(desk: Desk) -> None:
    desk.config.write_text(desk.config.read_text().replace("language: id", "language: en"))
    solve_two(desk)
    _, forward = desk.open(**PRINTER_AGAIN)
    listed = text_of(forward).split("Similar solved requests:")[1]
    assert "REQ-000002 (resolved Monday, 2 November 2026): Printer lantai 2 macet" in listed
    assert f"Solution: {PAPER_JAM}" in listed
    html = forward.get_body(("html",))
    assert html is not None and "Similar solved requests" in html.get_content()


def test_a_forward_lists_only_the_receiving_departments_solved_requests(desk: Desk) -> None:
    solve_for_hr(desk)
    assert (desk.request(1).department, desk.request(1).status) == ("hr", "resolved")
    _, forward = desk.open()  # REQ-000002, a laptop for IT: "laptop" and "menyala" in common
    assert "REQ-000002" in forward["Subject"]
    assert offered(forward) == "" and "REQ-000001" not in text_of(forward)
    desk.deliver(request_mail(subject="Laptop lembur masih tidak menyala", sender=SITI,
                              body="Laptop lembur saya juga tidak menyala."))
    forward = desk.last_to(HR)
    assert "REQ-000003" in forward["Subject"]
    assert "REQ-000001" in offered(forward) and SPARE in offered(forward)


def test_one_suffixed_word_in_common_is_not_alike(desk: Desk) -> None:
    """ "pemesanan" is also sought as "pemesan": still one word, and one is chance."""
    desk.deliver(request_mail(**ROOM))
    desk.reply(desk.last_to(GA), GA, "#resolve Ruang rapat lantai 3 sudah dipesan.")
    desk.deliver(request_mail(**CAR))
    forward = desk.last_to(GA)
    assert "REQ-000002" in forward["Subject"] and offered(forward) == ""
    about = f"{CAR['subject']}\n{CAR['body']}"
    assert found_by(desk, about) == ["REQ-000001"]  # found, and not offered


def test_english_plurals_and_singulars_are_the_same_words(desk: Desk) -> None:
    _, forward = desk.open(**PAPER)
    desk.reply(forward, AGUS, "#resolve Jammed sheet removed and the rollers cleaned.")
    _, forward = desk.open(**PAPERS)
    assert "REQ-000002" in forward["Subject"]
    assert "REQ-000001 (selesai Senin, 2 November 2026): Printer paper jam" in offered(forward)


def test_a_long_solution_is_cut_in_the_forward(desk: Desk) -> None:
    long = "Printer dibongkar dan diperiksa. " + "Roller dibersihkan satu per satu. " * 20
    _, forward = desk.open(**PRINTER)
    desk.reply(forward, AGUS, f"#resolve {long}")
    _, forward = desk.open(**PRINTER_AGAIN)
    listed = text_of(forward).split("Permintaan serupa yang sudah diselesaikan:")[1]
    (shown,) = [line for line in listed.splitlines() if "Solusi:" in line]
    assert shown.endswith("…") and 250 < len(shown.split("Solusi: ")[1]) <= 305
    assert desk.request(1).solution == long.strip()  # all of it is kept


# -- kb search ----------------------------------------------------------------------------

def test_kb_search_shows_a_table_of_solved_requests(
        desk: Desk, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: one line a row
    solve_two(desk)
    status, out = kb_search(desk, capsys, "printer macet")
    assert status == 0
    (header,) = [line for line in out.splitlines() if "reference" in line]
    assert [w for w in header.split() if w.isalpha()] == [
        "reference", "department", "resolved", "subject", "solution"]
    (row,) = [line for line in out.splitlines() if "REQ-" in line]
    assert "REQ-000002" in row and " it " in row and "Printer lantai 2 macet" in row
    assert "Kertas yang tersangkut di printer dikeluarkan, roller" in row
    assert f"{desk.now.astimezone(it_zone(desk)):%Y-%m-%d %H:%M}" in row


def test_kb_search_json_lists_reference_department_subject_solution_and_resolution(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    solve_two(desk)
    status, out = kb_search(desk, capsys, "laptop baterai", "--json")
    assert status == 0
    (solved,) = json.loads(out)
    assert set(solved) == {"reference", "department", "subject", "solution", "resolved_at"}
    assert (solved["reference"], solved["department"], solved["solution"]) == (
        "REQ-000001", "it", BATTERY)
    assert solved["subject"] == "Laptop tidak bisa menyala"
    resolved = datetime.fromisoformat(solved["resolved_at"])
    assert resolved == desk.now and resolved.utcoffset() == desk.now.astimezone(
        it_zone(desk)).utcoffset()


def test_kb_search_with_no_match_says_so_and_exits_1(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    solve_two(desk)
    assert kb_search(desk, capsys, "kunci lemari") == NOTHING
    status, out = kb_search(desk, capsys, "kunci lemari", "--json")
    assert (status, json.loads(out)) == (1, [])


def test_kb_search_limits_the_number_of_results(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    solve_two(desk)
    for limit, expected in (("5", ["REQ-000002", "REQ-000001"]), ("1", ["REQ-000002"])):
        status, out = kb_search(desk, capsys, "printer macet laptop", "--json", "--limit", limit)
        assert status == 0 and [s["reference"] for s in json.loads(out)] == expected


def test_hostile_text_never_breaks_the_search(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    solve_two(desk)
    status, out = kb_search(desk, capsys, HOSTILE, "--json")
    assert status == 0 and json.loads(out)[0]["reference"] == "REQ-000002"
    assert kb_search(desk, capsys, 'e-mail "rock\'n\'roll" * - ^ :') == NOTHING
    assert kb_search(desk, capsys, "and or not the yang") == NOTHING
    desk.open(subject=HOSTILE, body="e-mail rock'n'roll " + HOSTILE)
    forward = desk.last_to(IT)
    assert "REQ-000003" in forward["Subject"]
    assert "REQ-000002" in text_of(forward).split("Permintaan serupa")[1]


def test_kb_search_looks_in_one_department_when_asked(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    solve_two(desk)
    solve_for_hr(desk)  # REQ-000003
    for department, expected in (([], {"REQ-000001", "REQ-000003"}),
                                 (["--department", "hr"], {"REQ-000003"}),
                                 (["--department", "it"], {"REQ-000001"})):
        status, out = kb_search(desk, capsys, "laptop menyala", "--json", *department)
        assert status == 0 and {s["reference"] for s in json.loads(out)} == expected
    assert kb_search(desk, capsys, "printer", "--department", "hr") == NOTHING
    status = main(["--config", str(desk.config), "kb", "search", "laptop", "--department",
                   "legal"])
    out, err = capsys.readouterr()
    assert (status, out) == (64, "") and "unknown department 'legal'" in err


@pytest.mark.parametrize("limit", ["0", "-1", "two"])
def test_kb_search_limit_is_a_whole_number_of_one_or_more(
        capsys: pytest.CaptureFixture[str], limit: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["kb", "search", "printer", "--limit", limit])
    assert exit_.value.code == 2
    assert f"argument --limit: {limit!r} is not a whole number of 1 or more" in \
        capsys.readouterr().err


def test_the_index_ranks_excludes_and_keeps_to_a_department(desk: Desk) -> None:
    solve_two(desk)
    assert found_by(desk, "printer macet laptop") == ["REQ-000002", "REQ-000001"]
    assert found_by(desk, "printer macet laptop", exclude=2) == ["REQ-000001"]
    assert found_by(desk, "printer macet laptop", department="it") == [
        "REQ-000002", "REQ-000001"]
    assert found_by(desk, "printer macet laptop", department="hr") == []
    assert found_by(desk, HOSTILE) == ["REQ-000002"]
    assert found_by(desk, "kunci lemari") == []


def test_words_are_found_in_other_forms(desk: Desk) -> None:
    solve_two(desk)
    assert found_by(desk, "printers jammed") == ["REQ-000002"]  # English stems
    assert found_by(desk, "laptopnya") == ["REQ-000001"]  # an Indonesian suffix
    assert found_by(desk, "tersangkutnya") == ["REQ-000002"]
    assert found_by(desk, "kertasnya") == ["REQ-000002"]  # the first message's


def test_text_search_syntax_in_a_query_is_only_text(desk: Desk) -> None:
    solve_two(desk)
    assert found_by(desk, TSQUERY) == ["REQ-000002", "REQ-000001"]  # "laptop" for the second
    assert found_by(desk, "& | ! ( ) : * ' \\ <-> :* !'' '\\'") == []


# -- reopened and resolved again ----------------------------------------------------------

def test_a_request_resolved_again_is_found_by_its_new_solution_only(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    staff_command(desk, f"#resolve {BATTERY}")
    desk.reply(desk.last_to(BUDI), "Budi Santoso <budi@contoh.co.id>",
               "Maaf, laptopnya masih mati.")
    assert desk.request().status == "open"
    assert kb_search(desk, capsys, "baterai") == NOTHING  # not offered while open
    desk.reply(desk.last_to(IT), AGUS, "#resolve Motherboard laptop diganti oleh vendor.")
    status, out = kb_search(desk, capsys, "motherboard", "--json")
    assert status == 0 and json.loads(out)[0]["solution"] == \
        "Motherboard laptop diganti oleh vendor."
    assert kb_search(desk, capsys, "baterai adaptor") == NOTHING
    with database_of(desk) as db, db.engine.connect() as connection:
        assert indexed_requests(connection) == [1]


def test_a_request_resolved_again_without_a_solution_is_forgotten(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    staff_command(desk, f"#resolve {BATTERY}")
    with database_of(desk) as db, db.engine.connect() as connection:
        assert indexed_requests(connection) == [1]
    desk.reply(desk.last_to(BUDI), "Budi Santoso <budi@contoh.co.id>",
               "Maaf, laptopnya masih mati.")
    desk.reply(desk.last_to(IT), AGUS, "#resolve")
    assert (desk.request().status, desk.request().solution) == ("resolved", "")
    assert kb_search(desk, capsys, "baterai laptop") == NOTHING
    with database_of(desk) as db, db.engine.connect() as connection:
        assert indexed_requests(connection) == []


def test_a_request_never_resolved_is_not_known(
        desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    staff_command(desk, "#close")
    desk.open(**PRINTER)
    assert desk.request(1).status == "closed"
    assert kb_search(desk, capsys, "laptop menyala") == NOTHING
    assert kb_search(desk, capsys, "printer") == NOTHING
    assert found_by(desk, "laptop menyala printer") == []


# -- the migrations ------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_the_migration_indexes_requests_resolved_before_it(tmp_path: Path) -> None:
    """SQLite's FTS5 table (0006)."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    resolved = solved_before(db, "0005")
    assert_known(db, resolved)
    db.close()


@pytest.mark.postgresql_only
def test_the_postgresql_migration_indexes_requests_resolved_before_it(tmp_path: Path) -> None:
    """PostgreSQL's text-search table (0007), searched through a GIN index, gone when
    downgraded and filled again when upgraded."""
    db = Database(sites.database_url(tmp_path, migrated=False))
    resolved = solved_before(db, "0006")
    assert_known(db, resolved)
    with db.engine.connect() as connection:
        assert list(connection.scalars(text(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'knowledge' "
            "AND indexdef LIKE '%USING gin (document)'"))) != []
    command.downgrade(_alembic_config(db.engine), "0006")
    with db.engine.connect() as connection:
        assert not inspect(connection).has_table("knowledge")
    db.upgrade()
    assert_known(db, resolved)
    db.close()


def solved_before(db: Database, revision: str) -> datetime:
    """A request resolved and one still open, written at `revision`; then the newest schema.
    When the first was resolved."""
    command.upgrade(_alembic_config(db.engine), revision)
    resolved = datetime(2026, 10, 5, 3, 0, tzinfo=UTC)
    with db.transaction() as session:
        session.add_all([
            old_request("Slip gaji Oktober belum ada", "Slip gaji dikirim ulang lewat portal.",
                        resolved, "Slip gaji saya bulan Oktober belum masuk ke email."),
            old_request("Slip gaji November", "", None, "Slip gaji November belum terbit.")])
    db.upgrade()
    return resolved


def assert_known(db: Database, resolved: datetime) -> None:
    """The request of `solved_before` resolved is found by its subject and its first text."""
    with db.transaction() as session:
        found = knowledge.similar(session, "slip gaji")
        assert [(s.reference, s.solution, s.resolved_at) for s in found] == [
            ("REQ-000001", "Slip gaji dikirim ulang lewat portal.", resolved)]
        assert [s.reference for s in knowledge.similar(session, "email")] == ["REQ-000001"]


def old_request(subject: str, solution: str, resolved: datetime | None, body: str) -> Request:
    at = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
    request = Request(subject=subject, requester="budi@contoh.co.id", language="id",
                      department="hr", created_at=at, first_response_due_at=at, due_at=at,
                      resolved_at=resolved, solution=solution,
                      status="resolved" if resolved else "open")
    request.messages.append(Message(direction="in", message_id=f"<{subject}@contoh.co.id>",
                                    sender="budi@contoh.co.id", subject=subject, text=body,
                                    new_text=body, outcome="new_request", created_at=at))
    return request


# -- PostgreSQL's text search -------------------------------------------------------------

AWKWARD = ["it's", "a\\b", "\\", "'", "''", "x:*", "y:A", "&|!()", "<->", "e-mail", "kata"]


def reads(connection: Connection, vector: str, query: str = "") -> list[str]:
    """The lexemes of the tsvector `vector` (those matching the tsquery `query`, if given)."""
    found = connection.scalar(text(
        "SELECT tsvector_to_array(CAST(:vector AS tsvector)) "
        "WHERE :query = '' OR CAST(:vector AS tsvector) @@ CAST(:query AS tsquery)"),
        {"vector": vector, "query": query})
    return sorted(found or [])


@pytest.mark.postgresql_only
def test_postgresql_reads_each_lexeme_as_it_is_written(tmp_path: Path) -> None:
    db = Database(sites.database_url(tmp_path))
    with db.engine.connect() as connection:
        assert reads(connection, " ".join(search.quoted(w) for w in AWKWARD)) == sorted(
            AWKWARD)
        for word in AWKWARD:
            others = [search.quoted(w) for w in AWKWARD if w != word]
            assert reads(connection, " ".join(others), search.quoted(word)) == []
            assert reads(connection, search.quoted(word), search.quoted(word)) == [word]
    db.close()


@pytest.mark.postgresql_only
def test_a_document_past_postgresqls_limits_is_cut_not_refused(tmp_path: Path) -> None:
    """A lexeme over 2046 bytes, or a tsvector over 1 MB, is an error in PostgreSQL."""
    said = [f"kata{number:07d}" for number in range(70_000)]
    vector = search.document(f"Printer {'x' * 3000} macet", " ".join(said),
                                "Roller dibersihkan")
    db = Database(sites.database_url(tmp_path))
    with db.engine.connect() as connection:
        lexemes = set(reads(connection, vector))
        assert {"printer", "macet", "roller", stem("dibersihkan")} < lexemes
        assert "x" * 3000 not in lexemes and "kata0000000" in lexemes
        assert 50_000 < len(lexemes) < 70_000  # the first message cut, not the others
        assert sorted(connection.scalar(text(
            "SELECT tsvector_to_array(ts_filter(CAST(:vector AS tsvector), '{a}'))"),
            {"vector": vector})) == ["macet", "printer"]  # the subject weighs most
    db.close()
