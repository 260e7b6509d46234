"""The guard: robots, bounces, lists, loops and strangers are never answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom import config, guard
from mailroom.parse import Inbound, parse
from tests import corpus
from tests.sites import SECRET
from tests.test_problem_mails import EXPECTED, named, raw

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

SERVICE = config.Service(address="layanan@contoh.co.id", name="Layanan",
                         secret=config.Secret(SECRET), allowed_domains=("contoh.co.id",))
OPEN_SERVICE = config.Service(address="layanan@contoh.co.id", name="Layanan",
                              secret=config.Secret(SECRET))


def inbound(sender: str = "rina@contoh.co.id", **headers: str) -> Inbound:
    return Inbound(message_id="<m@x>", sender=sender,
                   headers={k.lower().replace("_", "-"): (v,) for k, v in headers.items()})


@pytest.mark.parametrize(("message", "reason"), [
    (inbound(Auto_Submitted="auto-replied"), "Auto-Submitted: auto-replied"),
    (inbound(Auto_Submitted="auto-generated; owner-email=x@y"), "Auto-Submitted: auto-generated"),
    (inbound(Precedence="bulk"), "Precedence: bulk"),
    (inbound(Precedence="junk"), "Precedence: junk"),
    (inbound(Precedence="list"), "Precedence: list"),
    (parse(b"From: MAILER-DAEMON@contoh.co.id\r\nSubject: hi\r\n\r\nhi\r\n"),
     "a bounce: delivery failed"),  # from MAILER-DAEMON, whatever its shape
    (inbound(List_Id="<berita.contoh.co.id>"), "from a mailing list (list-id)"),
    (inbound("layanan@contoh.co.id"), "sent by this service itself (a loop)"),
    (inbound("layanan+REQ-000001.abc@contoh.co.id"), "sent by this service itself (a loop)"),
    (inbound("x@gmail.com"), "sender domain 'gmail.com' is not among allowed_domains"),
    (inbound(""), "no sender address"),
    (inbound(Return_Path="<>"), "null return path (Return-Path: <>)"),
    (inbound(X_Autoreply="yes"), "auto-reply header x-autoreply"),
])
def test_robots_and_strangers_get_no_answer(message: Inbound, reason: str) -> None:
    verdict = guard.check(message, SERVICE)
    assert (verdict.answer, verdict.reason) == (False, reason)


@pytest.mark.parametrize("message", [
    inbound(), inbound(Auto_Submitted="no"), inbound("budi@it.contoh.co.id"),
    inbound(Precedence="first-class"),
])
def test_people_may_be_answered(message: Inbound) -> None:
    assert guard.check(message, SERVICE).answer


def test_without_allowed_domains_anyone_may_write() -> None:
    assert guard.check(inbound("x@gmail.com"), OPEN_SERVICE).answer


IGNORED = [n for n in named() if EXPECTED[n]["outcome"] == "ignored"]
ANSWERED = [n for n in named("request") if EXPECTED[n]["outcome"] == "new_request"]


@pytest.mark.parametrize("name", IGNORED)
def test_problem_mail_robots_and_strangers_get_no_answer(name: str) -> None:
    verdict = guard.check(parse(raw(name)), SERVICE)
    assert not verdict.answer
    assert EXPECTED[name]["reason"] in verdict.reason.lower()


@pytest.mark.parametrize("name", ANSWERED)
def test_problem_mail_from_people_may_be_answered(name: str) -> None:
    assert guard.check(parse(raw(name)), SERVICE) == guard.Verdict(True)


AUTOREPLIES = sorted(corpus.ROOT.glob("autoreplies/*.eml"))
BOUNCES = sorted(p for p in corpus.ROOT.glob("bounces/*.eml"))


@corpus.needed
@pytest.mark.parametrize("path", AUTOREPLIES, ids=lambda p: p.name)
def test_corpus_auto_replies_are_not_answered(path: Path) -> None:
    assert not guard.check(parse(path.read_bytes()), OPEN_SERVICE).answer


@corpus.needed
def test_nearly_all_corpus_bounces_are_not_answered() -> None:
    answered = [p.name for p in BOUNCES if guard.check(parse(p.read_bytes()), OPEN_SERVICE).answer]
    # a few bounces come from ordinary-looking addresses without Auto-Submitted; recognising
    # them by their report structure belongs to the hostile-mail stage
    assert len(BOUNCES) > 150
    assert len(answered) / len(BOUNCES) < 0.05, answered
