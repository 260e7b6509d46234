"""Quote stripping, HTML to text and language detection: each its own module, each its tests."""

from __future__ import annotations

import pytest

from mailroom import language
from mailroom.htmltext import html_to_text
from mailroom.quotes import new_text

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


@pytest.mark.parametrize(("text", "expected"), [
    ("Selamat pagi, slip gaji saya bulan ini belum diterima. Mohon bantuannya, terima kasih.",
     "id"),
    ("Hello, my laptop will not start since this morning. Could you please help?", "en"),
    ("Laptop", "id"),  # nothing to tell from: the service default
])
def test_language_detection(text: str, expected: str) -> None:
    assert language.detect(text, default="id") == expected


def test_html_lists_tables_and_links_survive() -> None:
    html = ('<div>Silakan ikuti <a href="https://kb.contoh.co.id/vpn">panduan VPN</a>.</div>'
            "<table><tr><td>Server</td><td>vpn.contoh.co.id</td></tr>"
            "<tr><td>Port</td><td>443</td></tr></table><ul><li>satu</li><li>dua</li></ul>"
            "<script>alert(1)</script><style>p{color:red}</style>")
    text = html_to_text(html)
    assert "[panduan VPN](https://kb.contoh.co.id/vpn)" in text
    assert any(line.split() == ["Server", "vpn.contoh.co.id"] for line in text.splitlines())
    assert any(line.split() == ["Port", "443"] for line in text.splitlines())
    assert "* satu" in text and "* dua" in text
    assert "alert" not in text and "color" not in text


def test_a_link_whose_text_is_its_address_is_written_once() -> None:
    assert html_to_text('<a href="https://x.example/">https://x.example/</a>') == (
        "https://x.example/")


def test_broken_html_gives_text_not_an_error() -> None:
    assert "halo" in html_to_text("<<<div>halo</p></td>&bogus;")


@pytest.mark.parametrize("header", [
    "On Mon, Nov 23, 2026 at 9:15 AM Budi <budi@contoh.co.id> wrote:",
    "On Mon, Nov 23, 2026 at 9:15 AM Layanan Internal <\nlayanan+REQ-000001.abc@contoh.co.id> "
    "wrote:",
    "Pada Sen, 23 Nov 2026 pukul 09.15 Budi <budi@contoh.co.id> menulis:",
    "Pada tanggal Sen, 23 Nov 2026 pukul 09.15 Budi Santoso <budi@contoh.co.id>\nmenulis:",
    "From: Budi <budi@contoh.co.id>\nSent: Monday, November 23, 2026 9:15 AM",
    "________________________________\nDari: Budi <budi@contoh.co.id>\nDikirim: Senin, 23 "
    "November 2026 09.15",
    "-----Pesan Asli-----\nDari: Budi",
    "-----Original Message-----\nFrom: Budi",
    "Am 23.11.2026 um 09:15 schrieb Budi <budi@contoh.co.id>:",
])
def test_history_under_a_reply_header_is_cut(header: str) -> None:
    text = f"Sudah kami kirim ulang.\n\n{header}\n> slip gaji saya belum diterima\nbaris lain"
    assert new_text(text) == "Sudah kami kirim ulang."


@pytest.mark.parametrize("signature", [
    "-- \nAgus Wijaya\nIT Support", "Dikirim dari iPhone saya", "Sent from my iPhone",
    "Get Outlook for Android"])
def test_a_signature_is_cut(signature: str) -> None:
    assert new_text(f"Baik, besok saya cek.\n\n{signature}") == "Baik, besok saya cek."


def test_quoted_lines_without_a_header_are_cut_but_lists_are_kept() -> None:
    text = "Sudah beres.\n- langkah satu\n- langkah dua\n> kutipan lama"
    assert new_text(text) == "Sudah beres.\n- langkah satu\n- langkah dua"


@pytest.mark.parametrize("marker", [
    "---------- Forwarded message ---------", "---------- Pesan terusan ---------",
    "-------- Forwarded Message --------", "Begin forwarded message:"])
def test_forwarded_content_is_content(marker: str) -> None:
    text = (f"Mohon dibantu pembayarannya.\n\n{marker}\nFrom: Sinar Jaya <t@sinarjaya.co.id>\n"
            "Date: Mon, 23 Nov 2026\nSubject: Tagihan\n\nTagihan faktur 1102 jatuh tempo.")
    kept = new_text(text, "Fwd: Tagihan")
    assert kept.startswith("Mohon dibantu pembayarannya.\n\n" + marker)
    assert kept.endswith("Tagihan faktur 1102 jatuh tempo.")


def test_an_outlook_forward_is_content_under_an_fw_subject_and_history_otherwise() -> None:
    text = ("Please pay this one.\n\nFrom: Vendor <billing@vendor.example>\nSent: Monday, "
            "November 23, 2026 9:15 AM\nSubject: Invoice INV-1102 overdue\n\nInvoice overdue.")
    assert new_text(text, "FW: Invoice INV-1102 overdue").endswith("Invoice overdue.")
    assert new_text(text, "RE: Invoice INV-1102 overdue") == "Please pay this one."


def test_a_reply_above_a_forward_keeps_only_the_reply() -> None:
    text = ("Thanks, paid.\n\nOn Mon, Nov 23, 2026 at 9:15 AM Budi <b@contoh.co.id> wrote:\n"
            "> ---------- Forwarded message ---------\n> invoice text")
    assert new_text(text, "Re: Fwd: invoice") == "Thanks, paid."


def test_a_reply_written_under_the_quote_keeps_the_unquoted_lines() -> None:
    text = ("On 23/11/2026 09.15, Agus Wijaya wrote:\n> Bisa datang jam 13.00?\n\n"
            "Saya baru bisa jam 14.00, Pak.\n> Bawa juga chargernya.\nBaik, saya bawa.\n\n"
            "-- \nBudi")
    assert new_text(text) == "Saya baru bisa jam 14.00, Pak.\nBaik, saya bawa."


@pytest.mark.parametrize("top", ["", "Sent from my iPhone", "-- \nAgus"])
@pytest.mark.parametrize("header", [
    "From: Layanan <layanan@contoh.co.id>\nSent: Monday, November 23, 2026 9:15 AM",
    "Dari: Layanan <layanan@contoh.co.id>\nDikirim: Senin, 23 November 2026 09.15",
    "-----Pesan Asli-----", "-----Original Message-----",
    "On Mon, Nov 23, 2026 at 9:15 AM Layanan <layanan@contoh.co.id> wrote:"])
def test_nothing_above_an_unmarked_quote_is_nothing_new(top: str, header: str) -> None:
    text = f"{top}\n\n{header}\nTo: IT\n\nPermintaan baru. Catatan internal: jangan dibayar."
    assert new_text(text) == ""
