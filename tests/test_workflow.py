"""The workflow's pure parts: reading #commands, and whose Authentication-Results count."""

from __future__ import annotations

import pytest

from mailroom import guard
from mailroom.parse import Inbound
from mailroom.workflow import Command, split_commands

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


def test_commands_at_the_top_are_read_with_their_arguments_and_the_text_below() -> None:
    commands, text = split_commands(
        "\n#Assign agus\n#priority  high\n\n#transfer finance tagihan vendor\n\nHalo Pak,\n"
        "#bukan perintah karena di bawah teks")
    assert commands == [Command("assign", "agus", "#Assign agus"),
                        Command("priority", "high", "#priority  high"),
                        Command("transfer", "finance tagihan vendor",
                                "#transfer finance tagihan vendor")]
    assert text == "Halo Pak,\n#bukan perintah karena di bawah teks"


@pytest.mark.parametrize(("alias", "name"), [
    ("selesai", "resolve"), ("alihkan", "transfer"), ("tunggu", "waiting"), ("catatan", "note"),
    ("tugaskan", "assign"), ("bantuan", "help"), ("tutup", "close"), ("buka", "reopen"),
    ("prioritas", "priority")])
def test_indonesian_aliases(alias: str, name: str) -> None:
    assert split_commands(f"#{alias}")[0][0].name == name


def test_a_hash_before_a_number_or_inside_text_is_no_command() -> None:
    assert split_commands("#1 prioritas saya: laptop") == ([], "#1 prioritas saya: laptop")
    assert split_commands("Tolong cek #resolve") == ([], "Tolong cek #resolve")


def test_an_unknown_word_after_a_hash_is_a_command_to_refuse() -> None:
    (command,), text = split_commands("#resolv done")
    assert (command.name, command.argument, text) == ("resolv", "done", "")


def authentication(*results: str) -> Inbound:
    return Inbound(message_id="<x@y>", sender="agus@it.contoh.co.id",
                   headers={"authentication-results": results})


@pytest.mark.parametrize(("results", "passes"), [
    (("mx.contoh.co.id; dkim=pass (2048-bit key) header.d=contoh.co.id header.s=s1",), True),
    (("mx.contoh.co.id 1; spf=pass smtp.mailfrom=agus@it.contoh.co.id",), True),
    (("MX.contoh.co.id; dkim=pass header.d=it.contoh.co.id",), True),
    (("mx.contoh.co.id; dkim=pass header.d=evil.example",), False),  # not the sender's domain
    (("mx.contoh.co.id; dkim=fail header.d=contoh.co.id; spf=neutral",), False),
    (("mx.evil.example; dkim=pass header.d=contoh.co.id",), False),  # not our server
    (("mx.contoh.co.id; none",), False),
    ((), False),
])
def test_only_our_servers_pass_for_the_senders_domain_counts(
        results: tuple[str, ...], passes: bool) -> None:
    assert guard.authenticated(authentication(*results), ("mx.contoh.co.id",)) is passes


def test_a_pass_written_below_our_servers_header_by_the_sender_does_not_count() -> None:
    forged = authentication(
        "mx.contoh.co.id; dkim=fail header.d=contoh.co.id; spf=fail",  # ours, on top
        "mx.contoh.co.id; dkim=pass header.d=contoh.co.id")  # written by the sender
    assert guard.authenticated(forged, ("mx.contoh.co.id",)) is False
