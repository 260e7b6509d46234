"""Threading: which request a message continues, and who may join one by which key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mailroom import config as config_file
from mailroom import thread
from mailroom.config import Config
from mailroom.errors import ConfigError
from mailroom.parse import Inbound, parse
from mailroom.store.db import Database
from mailroom.store.models import Message, Request
from tests.sites import request_mail, site

NOW = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_file.load(site(tmp_path))


@pytest.fixture
def session(config: Config) -> Iterator[Session]:
    db = Database(config.database_url)
    db.upgrade()
    with db.transaction() as session:
        session.add_all([_request("budi@contoh.co.id", "hr", cc=["ani@contoh.co.id"]),
                         _request("sari@contoh.co.id", "it")])
        session.flush()
        session.add(Message(request_id=1, direction="in", message_id="<original@mail.contoh>",
                            outcome="new_request", created_at=NOW))
        yield session
    db.close()


def _request(requester: str, department: str, cc: list[str] | None = None) -> Request:
    return Request(subject="Slip gaji", requester=requester, language="id",
                   department=department, cc=cc or [], created_at=NOW,
                   first_response_due_at=NOW, due_at=NOW)


def mail(sender: str = "Budi <budi@contoh.co.id>", **headers: str) -> Inbound:
    return parse(request_mail(subject=headers.pop("subject", "Tambahan"), sender=sender,
                              **headers))


def test_the_signed_reply_address_matches_whatever_the_case(
        session: Session, config: Config) -> None:
    address = thread.reply_address("REQ-000001", config.service)
    assert address.startswith("layanan+REQ-000001.")
    # parse lowercases recipients; no In-Reply-To, no subject tag, not even the requester
    found = thread.find(session, mail(sender="tamu@contoh.co.id", To=address.upper()), config)
    assert (found.request and found.request.id, found.by) == (1, thread.ADDRESS)
    assert found.trusted


def test_a_forged_or_borrowed_token_matches_nothing(session: Session, config: Config) -> None:
    token = thread.token("REQ-000002", config.service)
    forged = f"layanan+REQ-000001.{token}@contoh.co.id"  # REQ-000002's token on REQ-000001
    found = thread.find(session, mail(sender="tamu@contoh.co.id", To=forged), config)
    assert found.request is None and found.mentioned is None


def test_the_token_has_at_least_80_bits_from_a_key_derived_for_its_purpose(
        config: Config) -> None:
    token = thread.token("REQ-000001", config.service)
    assert len(token) * 4 >= 80
    secret = config.service.secret.reveal().encode()
    plain = hmac.new(secret, b"REQ-000001", hashlib.sha256).hexdigest()
    assert not plain.startswith(token)  # not the secret used directly
    signed_id = thread.message_id("REQ-000001", "ack", config.service)
    assert token not in signed_id  # another purpose, another key


def test_a_secret_shorter_than_32_characters_is_refused_with_file_and_line(
        tmp_path: Path) -> None:
    path = site(tmp_path)
    path.write_text(path.read_text().replace("test-secret-of-thirty-two-characters", "pendek"))
    with pytest.raises(ConfigError) as caught:
        config_file.load(path)
    assert str(caught.value).startswith(f"{path}:2:44: service.secret: the secret has 6 ")
    assert "needs at least 32" in str(caught.value)


def test_our_message_ids_are_unguessable_and_verified(config: Config) -> None:
    first = thread.message_id("REQ-000001", "ack", config.service)
    second = thread.message_id("REQ-000001", "ack", config.service)
    assert first != second
    assert thread.our_reference(first, config.service) == "REQ-000001"
    assert thread.our_reference(first.upper(), config.service) == "REQ-000001"
    tampered = first.replace("REQ-000001", "REQ-000002")
    assert thread.our_reference(tampered, config.service) is None
    assert thread.our_reference("<REQ-000001.ack.1@contoh.co.id>", config.service) is None


def test_a_colleague_naming_someone_elses_mail_opens_a_new_request_that_mentions_it(
        session: Session, config: Config) -> None:
    ours = thread.message_id("REQ-000001", "ack", config.service)
    stranger = mail(sender="Tono <tono@contoh.co.id>", subject="VPN mati", In_Reply_To=ours)
    found = thread.find(session, stranger, config)
    assert found.request is None
    assert found.mentioned is not None and found.mentioned.id == 1


def test_the_requester_naming_our_mail_joins_by_it(session: Session, config: Config) -> None:
    ours = thread.message_id("REQ-000001", "ack", config.service)
    found = thread.find(session, mail(In_Reply_To=ours, subject="Re: lain"), config)
    assert (found.request and found.request.id, found.by) == (1, thread.OUR_MESSAGE)


def test_a_reply_all_to_the_original_mail_joins_its_request(
        session: Session, config: Config) -> None:
    reply_all = mail(sender="Ani <ani@contoh.co.id>", In_Reply_To="<original@mail.contoh>",
                     References="<original@mail.contoh>", subject="Re: Slip gaji")
    found = thread.find(session, reply_all, config)
    assert (found.request and found.request.id, found.by) == (1, thread.THEIR_MESSAGE)
    assert thread.role(found.request, "ani@contoh.co.id", config) == thread.CC


def test_the_subject_tag_joins_the_requester_and_the_departments_staff_only(
        session: Session, config: Config) -> None:
    tagged = {"subject": "Re: [REQ-000001] Slip gaji"}
    by_requester = thread.find(session, mail(**tagged), config)
    by_staff = thread.find(session, mail(sender="rina@contoh.co.id", **tagged), config)
    by_stranger = thread.find(session, mail(sender="tono@contoh.co.id", **tagged), config)
    assert by_requester.request is not None and by_requester.by == thread.SUBJECT
    assert by_staff.request is not None and not by_staff.trusted
    assert by_stranger.request is None and by_stranger.mentioned is not None


def test_the_signed_address_comes_before_a_reference_and_a_tag(
        session: Session, config: Config) -> None:
    address = thread.reply_address("REQ-000002", config.service)
    ours = thread.message_id("REQ-000001", "ack", config.service)
    message = mail(To=address, In_Reply_To=ours, subject="Re: [REQ-000001] x")
    found = thread.find(session, message, config)
    assert found.request is not None and found.request.id == 2


def test_a_tag_with_a_huge_number_is_no_tag(session: Session, config: Config) -> None:
    found = thread.find(session, mail(subject="Re: [REQ-12345678901234567890] x"), config)
    assert found.request is None and found.mentioned is None


def test_plain_mode_replies_to_the_service_address_and_threads_by_message_id(
        session: Session, config: Config) -> None:
    plain = replace(config, service=replace(config.service, reply_address="plain"))
    assert thread.reply_address("REQ-000001", plain.service) == "layanan@contoh.co.id"
    ours = thread.message_id("REQ-000001", "relay", plain.service)
    found = thread.find(session, mail(To="layanan@contoh.co.id", In_Reply_To=ours), plain)
    assert found.request is not None and found.trusted


def test_every_message_id_we_make_is_known_as_ours_by_its_signature(config: Config) -> None:
    service = config.service
    made = [thread.message_id("REQ-000001", "ack", service),
            thread.department_message_id("hr", "digest", service),
            thread.service_message_id("refusal", service)]
    assert all(thread.ours(m, service) for m in made)
    other_secret = replace(service, secret=config_file.Secret("another secret " * 3))
    assert not any(thread.ours(m, other_secret) for m in made)  # the signature, not the shape
    body, _, rest = made[1].partition(".digest.")
    assert not thread.ours(f"{body}.digest.{rest.replace('hr', 'it', 1)}", service)  # altered
    # an employee's mail client uses the organisation's domain too: that is not ours
    assert not thread.ours("<CAF1234.5678@contoh.co.id>", service)
    assert not thread.ours(f"<x.{'0' * thread.SIGNATURE_LENGTH}@contoh.co.id>", service)
