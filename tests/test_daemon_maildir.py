"""The whole flow on the embedded default: Maildir in, SQLite, Maildir out; the guarantees."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.intake import IGNORED, NEW_REQUEST, QUARANTINED, REPLY, Outcome
from mailroom.store.models import Event, Message, Outgoing, Request
from tests import corpus
from tests.sites import request_mail, site


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return site(tmp_path)


def deliver(config: Path, *raws: bytes) -> None:
    box = mailbox.Maildir(config.parent / "inbox", create=True)
    for raw in raws:
        box.add(raw)


def sent(config: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(config.parent / "outbox", create=True)
    found = [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)
             for k in sorted(box.keys(), key=_written)]
    return [m for m in found if isinstance(m, EmailMessage)]


def take(daemon: Daemon) -> list[Outcome]:
    """Record and move what waits, sending nothing yet (a drain sends after each batch)."""
    items = list(daemon.source.fetch())
    outcomes = daemon.intake.process_all(items)
    daemon.source.done(items)
    return outcomes


def _written(key: str) -> tuple[int, int, int]:
    """When a Maildir file was written, from its name: seconds, microseconds, counter."""
    match = re.match(r"(\d+)\.M(\d+)P\d+Q(\d+)", key)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else (0, 0, 0)


def run(config: Path) -> Daemon:
    daemon = Daemon(config, Clock())
    daemon.run_once()
    daemon.close()
    return daemon


def count(daemon: Daemon, model: type, *where: object) -> int:
    with daemon.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_a_request_is_recorded_acknowledged_and_forwarded(config: Path) -> None:
    deliver(config, request_mail())
    daemon = run(config)
    ack, forward = sorted(sent(config), key=lambda m: m["To"] != "budi@contoh.co.id")
    assert ack["To"] == "budi@contoh.co.id" and forward["To"] == "hr@contoh.co.id"
    assert ack["Subject"] == "[REQ-000001] Diterima: Slip gaji bulan Oktober belum diterima"
    assert "Human Resources" in ack.get_body(("plain",)).get_content()
    assert ack["Auto-Submitted"] == "auto-replied" and ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Reply-To"].startswith("layanan+REQ-000001.")
    forward_text = forward.get_body(("plain",)).get_content()
    assert forward_text.count("slip gaji saya belum diterima") == 1
    assert '"salary and payroll" (versi aturan ' in forward_text
    with daemon.db.transaction() as session:
        request = session.scalars(select(Request)).one()
        assert (request.department, request.rule, request.priority) == (
            "hr", "salary and payroll", "high")
        assert [e.kind for e in request.events] == ["opened", "routed", "mail sent", "mail sent"]
    assert not list(mailbox.Maildir(config.parent / "inbox").keys())
    assert len(mailbox.Maildir(config.parent / "inbox").get_folder("Processed")) == 1


def test_two_runs_over_the_same_mailbox_send_nothing_twice(config: Path) -> None:
    raw = request_mail()
    deliver(config, raw)
    run(config)
    deliver(config, raw)  # the same message again (a second copy, same Message-ID)
    daemon = run(config)
    assert len(sent(config)) == 2
    assert count(daemon, Message, Message.outcome == IGNORED) == 1


def test_a_crash_between_commit_and_move_repeats_nothing_visible(config: Path) -> None:
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    item = next(iter(daemon.source.fetch()))
    daemon.intake.process(item)  # committed; then "crash" before the message is moved
    daemon.close()
    daemon = run(config)
    assert len(sent(config)) == 2
    assert count(daemon, Message) == 1 and count(daemon, Request) == 1


def test_an_auto_reply_is_recorded_and_never_answered(config: Path) -> None:
    deliver(config, request_mail(subject="Out of office", Auto_Submitted="auto-replied"))
    daemon = run(config)
    assert sent(config) == []
    with daemon.db.transaction() as session:
        message = session.scalars(select(Message)).one()
        assert (message.outcome, message.reason) == (IGNORED, "Auto-Submitted: auto-replied")


def test_english_request_gets_an_english_acknowledgment(config: Path) -> None:
    deliver(config, request_mail(subject="My laptop will not start",
                                 body="Hello, my laptop will not start since this morning. "
                                      "Could you please help?"))
    run(config)
    ack = next(m for m in sent(config) if m["To"] == "budi@contoh.co.id")
    assert ack["Subject"] == "[REQ-000001] Received: My laptop will not start"
    assert "IT Support" in ack.get_body(("plain",)).get_content()


def test_a_reply_to_the_acknowledgment_joins_its_request(config: Path) -> None:
    deliver(config, request_mail())
    run(config)
    ack = next(m for m in sent(config) if m["To"] == "budi@contoh.co.id")
    deliver(config, request_mail(subject=f"Re: {ack['Subject']}", body="Ini tambahannya.",
                                 In_Reply_To=ack["Message-ID"], To=ack["Reply-To"]))
    daemon = run(config)
    update = sent(config)[-1]  # no new acknowledgment: the addition goes to the department
    assert update["To"] == "hr@contoh.co.id" and "Ini tambahannya." in str(
        update.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert count(daemon, Request) == 1
    assert count(daemon, Message, Message.outcome == REPLY) == 1
    assert count(daemon, Event, Event.kind == "message") == 1


def test_garbage_is_quarantined_with_its_bytes_kept(config: Path) -> None:
    deliver(config, b"\x00\x01 not a mail at all")
    daemon = run(config)
    with daemon.db.transaction() as session:
        message = session.scalars(select(Message)).one()
        assert message.outcome == QUARANTINED and message.raw == b"\x00\x01 not a mail at all"


def test_an_internal_error_quarantines_the_message_and_the_loop_goes_on(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailroom import guard

    calls = []

    def broken(inbound: object, service: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return guard.Verdict(True)

    monkeypatch.setattr(guard, "check", broken)
    deliver(config, request_mail(subject="first"), request_mail(subject="second"))
    daemon = run(config)
    assert count(daemon, Message, Message.outcome == QUARANTINED,
                 Message.reason == "internal error: RuntimeError: a bug") == 1
    assert count(daemon, Request) == 1


def test_a_rule_may_ignore_with_a_reason(config: Path) -> None:
    rules = config.parent / "rules.yaml"
    rules.write_text(rules.read_text().replace(
        "rules:\n", "rules:\n  - name: newsletters\n    if: {subject: [newsletter]}\n"
                    "    then: {ignore: internal newsletter}\n", 1))
    deliver(config, request_mail(subject="Newsletter November"))
    daemon = run(config)
    assert sent(config) == []
    assert count(daemon, Message, Message.reason == "rule 'newsletters': internal newsletter") == 1


@corpus.needed
def test_every_corpus_message_ends_in_exactly_one_outcome(tmp_path: Path) -> None:
    config = site(tmp_path, allowed="[]")
    files = corpus.files()
    assert len(files) > 500
    deliver(config, *(p.read_bytes() for p in files))
    daemon = run(config)
    assert count(daemon, Message) == len(files)
    kinds = {kind for kind in (NEW_REQUEST, IGNORED, QUARANTINED)
             if count(daemon, Message, Message.outcome == kind)}
    assert kinds == {NEW_REQUEST, IGNORED, QUARANTINED}
    assert count(daemon, Outgoing, Outgoing.status != "sent") == 0
    assert not list(mailbox.Maildir(config.parent / "inbox").keys())


def test_reload_keeps_the_last_good_rules(config: Path) -> None:
    daemon = Daemon(config, Clock())
    good = daemon.settings.ruleset.version
    rules = config.parent / "rules.yaml"
    rules.write_text(rules.read_text().replace("department: hr", "department: hrd", 1))
    assert daemon.reload() is False
    assert daemon.settings.ruleset.version == good
    rules.write_text(rules.read_text().replace("department: hrd", "department: finance", 1))
    assert daemon.reload() is True
    assert daemon.settings.ruleset.version != good
    deliver(config, request_mail())
    daemon.run_once()
    daemon.close()
    assert any(m["To"] == "finance@contoh.co.id" for m in sent(config))


def test_a_broken_edit_is_mailed_to_the_admin_once_and_a_saved_file_reloads(
        config: Path) -> None:
    config.write_text(config.read_text().replace(
        "language: id}", "language: id, admin: admin@contoh.co.id}"))
    daemon = Daemon(config, Clock())
    rules = config.parent / "rules.yaml"
    good = rules.read_text()
    rules.write_text(good.replace("department: hr", "department: hrd", 1))
    daemon._rules_changed()  # what the scheduler runs every few seconds
    assert daemon.reload_requested
    assert daemon.reload() is False and daemon.reload() is False
    notices = [m for m in sent(config) if m["To"] == "admin@contoh.co.id"]
    assert len(notices) == 1
    assert "unknown department 'hrd'" in notices[0].get_content()
    assert notices[0]["Subject"].startswith(f"[mailroom] changes not loaded: {rules}:")
    rules.write_text(good)
    assert daemon.reload() is True
    daemon.close()


def test_a_template_that_fails_on_real_data_holds_the_mail_and_the_rest_goes_out(
        config: Path) -> None:
    deliver(config, request_mail())
    daemon = Daemon(config, Clock())
    # a mistake the sample values at load time cannot reveal: only real requests have this tag
    broken = config.parent / "templates" / "id" / "forward.j2"
    broken.write_text(broken.read_text().replace(
        "{% block text %}", "{% block text %}{{ request.subject.missing_attribute.x }}", 1))
    daemon.settings.composer.envs[""].cache.clear()  # so the edited file is read anew
    take(daemon)
    result = daemon.flush()
    daemon.close()
    assert (result.sent, result.held, result.failed) == (1, 1, 0)
    with daemon.db.transaction() as session:
        held = session.scalars(select(Outgoing).where(Outgoing.status == "pending")).one()
        assert held.template == "forward" and "id/forward.j2" in held.last_error


def test_listing_requests_on_a_new_database_needs_no_migration_step(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mailroom.cli import main

    assert main(["--config", str(config), "requests"]) == 0
    assert "reference" in capsys.readouterr().out


def test_the_sla_clock_starts_at_the_files_delivery_not_at_its_reading(config: Path) -> None:
    deliver(config, request_mail())
    (delivered,) = (config.parent / "inbox" / "new").iterdir()
    two_hours_ago = time.time() - 2 * 3600
    os.utime(delivered, (two_hours_ago, two_hours_ago))
    daemon = run(config)
    with daemon.db.transaction() as session:
        request = session.scalars(select(Request)).one()
        assert abs(request.received_at.timestamp() - two_hours_ago) < 1
        assert request.created_at - request.received_at > timedelta(hours=1, minutes=59)
