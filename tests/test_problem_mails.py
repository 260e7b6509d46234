"""Problem mail through the real intake: one outcome each, the one expected, no robot answered."""

from __future__ import annotations

import email
import email.policy
import importlib.util
import mailbox
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.errors import MessageError
from mailroom.intake import Outcome
from mailroom.parse import parse
from mailroom.sources import Item
from mailroom.store.models import Message, Outgoing, Request
from tests.sites import site

FOLDER = Path(__file__).resolve().parent / "data" / "problem-mails"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load(
    (FOLDER / "expected.yaml").read_text(encoding="utf-8"))
NAMES = sorted(EXPECTED)
ROBOTS = ("bounce", "auto-reply")
MAILBOX = "INBOX"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
HOSTILE_HEADERS = [n for n in NAMES if n.startswith(("ew-", "header-8bit", "attachment-"))
                   and EXPECTED[n]["outcome"] == "new_request"]


def named(kind: str | None = None, key: str | None = None) -> list[str]:
    """The fixtures of one kind, or those whose expectation has `key`."""
    return [n for n in NAMES if (kind is None or EXPECTED[n]["kind"] == kind)
            and (key is None or key in EXPECTED[n])]


def raw(name: str) -> bytes:
    return (FOLDER / name).read_bytes()


@dataclass(frozen=True)
class Intaken:
    """What one intake of every fixture recorded and queued."""

    outcomes: dict[str, Outcome]
    rows: dict[str | None, int]  # recorded inbound messages per fixture (its uid)
    acknowledged: frozenset[str | None]  # fixtures whose message queued an acknowledgment
    addressed: tuple[str, ...]  # everyone a queued mail is for, and every copied colleague


@pytest.fixture(scope="module")
def intaken(tmp_path_factory: pytest.TempPathFactory) -> Intaken:
    daemon = Daemon(site(tmp_path_factory.mktemp("desk")), Clock(NOW))
    outcomes = {name: daemon.intake.process(Item(raw(name), MAILBOX, 1, name)) for name in NAMES}
    with daemon.db.transaction() as session:
        rows = {uid: count for uid, count in session.execute(
            select(Message.uid, func.count()).where(Message.direction == "in")
            .group_by(Message.uid))}
        acknowledged = frozenset(session.scalars(
            select(Message.uid).join(Outgoing, Outgoing.inbound_id == Message.id)
            .where(Outgoing.template == "ack")))
        addressed = tuple(a for mail in session.scalars(select(Outgoing))
                          for a in (*mail.recipients, *mail.cc)) + tuple(
            a for request in session.scalars(select(Request)) for a in request.cc)
    daemon.close()
    return Intaken(outcomes, rows, acknowledged, addressed)


def sent(folder: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(folder, create=True)
    found = [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)
             for k in sorted(box.keys())]
    return [m for m in found if isinstance(m, EmailMessage)]


def inside(address: str) -> bool:
    """Whether `address` is in the organisation's domain or one of its subdomains."""
    domain = address.lower().rpartition("@")[2]
    return domain == "contoh.co.id" or domain.endswith(".contoh.co.id")


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FOLDER.glob("*.eml")) == NAMES


def test_the_committed_fixtures_are_what_make_py_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("problem_mails_make", FOLDER / "make.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    written = make.write_all(tmp_path)
    assert sorted(p.name for p in written) == NAMES
    assert [n for n in NAMES if (tmp_path / n).read_bytes() != raw(n)] == []


@pytest.mark.parametrize("name", NAMES)
def test_intake_records_the_expected_outcome(intaken: Intaken, name: str) -> None:
    expected, outcome = EXPECTED[name], intaken.outcomes[name]
    assert (outcome.kind, outcome.repeat) == (expected["outcome"], False), outcome.reason
    assert expected.get("reason", "") in outcome.reason.lower()


def test_every_message_has_exactly_one_recorded_outcome(intaken: Intaken) -> None:
    assert intaken.rows == dict.fromkeys(NAMES, 1)


@pytest.mark.parametrize("name", [n for n in NAMES if EXPECTED[n]["kind"] in ROBOTS])
def test_no_robot_is_acknowledged(intaken: Intaken, name: str) -> None:
    assert name not in intaken.acknowledged
    sender = parse(raw(name)).sender
    assert not sender or sender not in intaken.addressed


def test_every_new_request_is_acknowledged(intaken: Intaken) -> None:
    opened = {n for n, outcome in intaken.outcomes.items() if outcome.kind == "new_request"}
    assert opened and opened <= intaken.acknowledged


def test_mail_is_queued_only_for_the_organisation(intaken: Intaken) -> None:
    assert intaken.addressed and [a for a in intaken.addressed if not inside(a)] == []


def test_hostile_headers_compose_into_mail_for_the_organisation_only(tmp_path: Path) -> None:
    daemon = Daemon(site(tmp_path), Clock(NOW))
    for name in HOSTILE_HEADERS:
        daemon.intake.process(Item(raw(name), MAILBOX, 1, name))
    flushed = daemon.flush()
    daemon.close()
    mails = sent(tmp_path / "outbox")
    assert (flushed.held, flushed.failed) == (0, 0)
    assert flushed.sent == len(mails) >= len(HOSTILE_HEADERS)
    addresses = [a for m in mails
                 for _, a in getaddresses([str(m[h]) for h in ("To", "Cc", "Bcc") if m[h]])]
    assert [a for a in addresses if not inside(a)] == []
    assert [m["Subject"] for m in mails if m["Bcc"] or m["X-Injected"]] == []


@pytest.mark.parametrize("name", NAMES)
def test_parse_never_raises_except_for_non_mail(name: str) -> None:
    if EXPECTED[name]["kind"] == "not-mail":
        with pytest.raises(MessageError):
            parse(raw(name))
    else:
        assert parse(raw(name)).message_id


@pytest.mark.parametrize("name", named(key="subject"))
def test_subjects_read_as_their_sender_wrote_them(name: str) -> None:
    assert parse(raw(name)).subject == EXPECTED[name]["subject"]


@pytest.mark.parametrize("name", named(key="recipients"))
def test_encoded_words_hide_no_recipients(name: str) -> None:
    inbound = parse(raw(name))
    assert list(inbound.to + inbound.cc) == EXPECTED[name]["recipients"]
