"""Writes the problem-mail fixtures (*.eml) beside this script, the same bytes every run."""

# After changing a fixture: python tests/data/problem-mails/make.py (stdlib only), then
# name the outcome intake must record for it in expected.yaml.

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOMAIN = "contoh.co.id"
SERVICE = "Layanan Internal <layanan@contoh.co.id>"
OUR_ACK = "<REQ-000001.ack.0a1b2c3d4e5f.0123456789abcdef0123@contoh.co.id>"
FIRST_SENT = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
FIRST_NAMES = ("Budi", "Rina", "Agus", "Dewi", "Joko", "Sari", "Wahyu", "Putri", "Hendra",
               "Maya", "Rudi", "Lestari", "Bayu", "Fitri", "Andi", "Nur", "Yanti", "Eko")
LAST_NAMES = ("Santoso", "Wulandari", "Pratama", "Hidayat", "Siregar", "Nasution")

Maker = Callable[["Fixture"], bytes]
MAKERS: dict[str, Maker] = {}


class Fixture:
    """What a fixture's maker needs: its name, its own sender, date and Message-ID."""

    def __init__(self, name: str, number: int) -> None:
        self.name, self.number = name, number
        self.slug = name.removesuffix(".eml")

    @property
    def person(self) -> str:
        first = FIRST_NAMES[self.number % len(FIRST_NAMES)]
        last = LAST_NAMES[self.number // len(FIRST_NAMES) % len(LAST_NAMES)]
        return f"{first} {last}"

    @property
    def address(self) -> str:
        return f"{self.person.lower().replace(' ', '.')}@{DOMAIN}"

    @property
    def sender(self) -> str:
        return f"{self.person} <{self.address}>"

    @property
    def date(self) -> str:
        return format_datetime(FIRST_SENT + timedelta(minutes=7 * self.number))

    @property
    def message_id(self) -> str:
        return f"<{self.slug}.{self.number:03d}@mail.{DOMAIN}>"


def fixture(name: str) -> Callable[[Maker], Maker]:
    """Register a maker of the fixture file `name`."""
    def register(maker: Maker) -> Maker:
        MAKERS[name] = maker
        return maker
    return register


# -- building blocks -------------------------------------------------------------------------

def raw(*lines: str | bytes, body: bytes | str = b"", crlf: bool = False) -> bytes:
    """A message from literal header lines and a body, with no encoder in between."""
    eol = b"\r\n" if crlf else b"\n"
    head = eol.join(line.encode("utf-8") if isinstance(line, str) else line for line in lines)
    text = body.encode("utf-8") if isinstance(body, str) else body
    return head + eol + eol + text.replace(b"\n", eol)


def plain_head(f: Fixture, subject: str | bytes, charset: str = "utf-8",
               encoding: str = "8bit") -> list[str | bytes]:
    """The header lines of an ordinary one-part mail from the fixture's sender."""
    subject_line = b"Subject: " + subject if isinstance(subject, bytes) else f"Subject: {subject}"
    return [f"From: {f.sender}", f"To: {SERVICE}", subject_line, f"Date: {f.date}",
            f"Message-ID: {f.message_id}", "MIME-Version: 1.0",
            f'Content-Type: text/plain; charset="{charset}"',
            f"Content-Transfer-Encoding: {encoding}"]


def mail(f: Fixture, subject: str, body: str, **headers: str) -> EmailMessage:
    """An ordinary mail as a client writes it; more parts may be added."""
    message = EmailMessage(policy=default)
    message["From"] = f.sender
    message["To"] = SERVICE
    message["Subject"] = subject
    message["Date"] = f.date
    message["Message-ID"] = f.message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def finished(message: EmailMessage, f: Fixture, crlf: bool = False) -> bytes:
    """The message's bytes with boundaries named after the fixture, so every run agrees."""
    for number, part in enumerate(message.walk()):
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_{f.slug}_{number}")
    return message.as_bytes(policy=SMTP if crlf else default)


def encoded_word(text: str, charset: str = "utf-8", letter: str = "B") -> str:
    """One RFC 2047 encoded-word, however long: no folding, as hostile senders write it."""
    data = text.encode(charset)
    if letter == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"={b:02X}"
                     for b in data)
    return f"=?{charset}?Q?{quoted}?="


def request_body(topic: str) -> str:
    return (f"Selamat pagi,\n\n{topic}\n\nMohon bantuannya. Terima kasih.\n\n"
            "Salam,\nKaryawan PT Contoh Indonesia\n")


# -- ordinary requests (the controls) --------------------------------------------------------

@fixture("control-id-payroll.eml")
def control_id_payroll(f: Fixture) -> bytes:
    return finished(mail(f, "Slip gaji bulan November belum diterima", request_body(
        "Slip gaji saya untuk bulan November belum saya terima sampai hari ini.")), f)


@fixture("control-en-laptop.eml")
def control_en_laptop(f: Fixture) -> bytes:
    return finished(mail(f, "My laptop will not start", (
        "Hello,\n\nMy laptop will not start since this morning; the power light blinks "
        "orange and the screen stays black.\nCould you please help?\n\nThank you,\n"
        f"{f.person}\n")), f, crlf=True)


@fixture("control-id-html-alternative.eml")
def control_id_html_alternative(f: Fixture) -> bytes:
    message = mail(f, "Pengajuan cuti tahunan", request_body(
        "Saya ingin mengajukan cuti tahunan tanggal 21 sampai 24 Desember 2026."))
    message.add_alternative(
        "<html><body><p>Selamat pagi,</p><p>Saya ingin mengajukan <b>cuti tahunan</b> "
        "tanggal 21 sampai 24 Desember 2026.</p><p>Terima kasih.</p></body></html>",
        subtype="html")
    return finished(message, f)


@fixture("control-en-attachment.eml")
def control_en_attachment(f: Fixture) -> bytes:
    message = mail(f, "Reimbursement for taxi receipts", (
        "Hello,\n\nPlease find attached my taxi receipts for the client visit on "
        "18 November. I would like to claim a reimbursement.\n\nRegards,\n"
        f"{f.person}\n"))
    message.add_attachment(b"%PDF-1.4\n% receipts\n" + bytes(range(256)) * 4,
                           maintype="application", subtype="pdf", filename="receipts.pdf")
    return finished(message, f)


@fixture("control-id-branch-office.eml")
def control_id_branch_office(f: Fixture) -> bytes:
    message = mail(f, "AC ruang rapat lantai 5 mati", request_body(
        "AC di ruang rapat lantai 5 kantor cabang mati sejak kemarin sore."))
    message.replace_header("From", f"{f.person} <{f.person.split()[0].lower()}@surabaya."
                                   f"{DOMAIN}>")
    return finished(message, f)


# -- broken and mislabelled charsets -----------------------------------------------------------

@fixture("charset-latin1-label-utf8-bytes.eml")
def charset_latin1_label_utf8_bytes(f: Fixture) -> bytes:
    body = request_body("Nama saya di slip gaji tertulis “José Müller”, seharusnya "
                        "“Jose Mueller” — mohon dikoreksi.")
    return raw(*plain_head(f, "Koreksi nama di slip gaji", charset="iso-8859-1"), body=body)


@fixture("charset-unknown-name.eml")
def charset_unknown_name(f: Fixture) -> bytes:
    body = request_body("Printer di lantai 3 tidak bisa mencetak, layarnya menampilkan "
                        "“paper jam” terus.")
    return raw(*plain_head(f, "Printer lantai 3 macet", charset="x-unknown-charset-2026"),
               body=body)


@fixture("charset-gb2312.eml")
def charset_gb2312(f: Fixture) -> bytes:
    subject = Header("打印机坏了 printer rusak", "gb2312").encode()
    body = ("您好，\n\n三楼的打印机坏了。Printer di lantai 3 rusak, tidak bisa mencetak.\n\n"  # noqa: RUF001
            "谢谢\n").encode("gb2312")
    return raw(*plain_head(f, subject, charset="gb2312"), body=body)


@fixture("charset-windows-1252.eml")
def charset_windows_1252(f: Fixture) -> bytes:
    text = request_body("Saya sudah membayar biaya hotel € 150 untuk “training” di Bandung; "
                        "mohon penggantian biaya… kuitansi menyusul.")
    quoted = "".join(c if c.isascii() and c != "=" else
                     "".join(f"={b:02X}" for b in c.encode("windows-1252")) for c in text)
    return raw(*plain_head(f, "Klaim biaya hotel training", charset="windows-1252",
                           encoding="quoted-printable"), body=quoted)


@fixture("charset-koi8-r.eml")
def charset_koi8_r(f: Fixture) -> bytes:
    subject = Header("Пароль не работает", "koi8-r").encode()
    body = ("Здравствуйте,\n\nмой пароль от почты не работает после смены.\n"  # noqa: RUF001
            "Password email saya tidak bisa dipakai.\n\nСпасибо\n").encode("koi8-r")  # noqa: RUF001
    return raw(*plain_head(f, subject, charset="koi8-r"), body=body)


@fixture("charset-ascii-label-utf8-bytes.eml")
def charset_ascii_label_utf8_bytes(f: Fixture) -> bytes:
    body = request_body("Kartu akses saya tidak terbaca di pintu lobi — dicoba 3 kali pagi ini.")
    return raw(*plain_head(f, "Kartu akses tidak terbaca", charset="us-ascii",
                           encoding="7bit"), body=body)


@fixture("header-8bit-utf8.eml")
def header_8bit_utf8(f: Fixture) -> bytes:
    head = plain_head(f, "Lampu ruang kerja mati — mohon segera diperbaiki ✓".encode())
    head[0] = f"From: {f.person} Ñoño <{f.address}>".encode()
    return raw(*head, body=request_body("Lampu di ruang kerja lantai 2 mati sejak pagi."))


@fixture("header-8bit-latin1.eml")
def header_8bit_latin1(f: Fixture) -> bytes:
    head = plain_head(f, "Reservasi ruang rapat untuk tamu dari Málaga".encode("latin-1"),
                      charset="iso-8859-1")
    head[0] = f"From: {f.person} Gonçalves <{f.address}>".encode("latin-1")
    body = request_body("Mohon reservasi ruang rapat untuk tamu dari Málaga, Kamis jam 10.")
    return raw(*head, body=body.encode("latin-1"))


@fixture("header-unknown-charset-encoded-word.eml")
def header_unknown_charset_encoded_word(f: Fixture) -> bytes:
    subject = (f"{encoded_word('Akun VPN terkunci', 'utf-8')} "
               "=?x-klingon?Q?tolong_dibuka?= =?utf-7?B?K0FPTS0gYW1hbg==?=")
    return raw(*plain_head(f, subject), body=request_body(
        "Akun VPN saya terkunci setelah salah memasukkan kata sandi tiga kali."))


# -- encoded-word abuse ------------------------------------------------------------------------

@fixture("ew-subject-crlf.eml")
def ew_subject_crlf(f: Fixture) -> bytes:
    subject = encoded_word("Laptop rusak\r\nBcc: spy@attacker.example\r\nX-Injected: yes",
                           letter="Q")
    return raw(*plain_head(f, subject), body=request_body("Laptop saya rusak, layarnya bergaris."))


@fixture("ew-from-name-crlf.eml")
def ew_from_name_crlf(f: Fixture) -> bytes:
    head = plain_head(f, "Kursi kerja patah")
    name = encoded_word(f"{f.person}\r\nBcc: spy@attacker.example\r\nX-Injected: yes")
    head[0] = f"From: {name} <{f.address}>"
    return raw(*head, body=request_body("Kursi kerja saya patah di bagian sandaran."))


@fixture("ew-to-hidden-comma.eml")
def ew_to_hidden_comma(f: Fixture) -> bytes:
    head = plain_head(f, "Tagihan vendor katering belum dibayar")
    hidden = encoded_word("Layanan, direktur@contoh.co.id, spy@attacker.example", letter="Q")
    head[1] = f"To: {hidden} <layanan@{DOMAIN}>"
    return raw(*head, body=request_body("Tagihan vendor katering bulan Oktober belum dibayar."))


@fixture("ew-cc-angle-brackets.eml")
def ew_cc_angle_brackets(f: Fixture) -> bytes:
    head = plain_head(f, "Izin sakit dua hari")
    hidden = encoded_word("Rina <direktur@contoh.co.id>")
    head.insert(2, f"Cc: {hidden} <rina.atasan@{DOMAIN}>")
    return raw(*head, body=request_body("Saya izin sakit dua hari, surat dokter terlampir "
                                        "menyusul."))


@fixture("ew-cc-hidden-list.eml")
def ew_cc_hidden_list(f: Fixture) -> bytes:
    head = plain_head(f, "Lembur akhir pekan tim gudang")
    hidden = encoded_word("semua@contoh.co.id, keuangan@contoh.co.id", letter="Q")
    head.insert(2, f"Cc: {hidden} <tim.gudang@{DOMAIN}>")
    return raw(*head, body=request_body("Mohon persetujuan lembur akhir pekan untuk tim gudang."))


@fixture("ew-overlong.eml")
def ew_overlong(f: Fixture) -> bytes:
    words = "Mohon bantuan akses folder bersama divisi pemasaran " * 60
    return raw(*plain_head(f, encoded_word(words.strip())), body=request_body(
        "Saya butuh akses ke folder bersama divisi pemasaran."))


@fixture("ew-malformed.eml")
def ew_malformed(f: Fixture) -> bytes:
    subject = ("=?utf-8?B?TW9ob24gZ2FudGkgbW91c2U?= =?utf-8?Q?unterminated_word "
               "=?utf-8?Z?YWJj?= =??Q?no_charset?= =?utf-8?B?!!notbase64!!?= mouse rusak")
    head = plain_head(f, subject)
    head[0] = f"From: =?utf-8?Q?{f.person.replace(' ', '_')}?= =?utf-8?B?x?= <{f.address}>"
    return raw(*head, body=request_body("Mouse saya rusak, mohon diganti."))


@fixture("ew-sender-spoof-display.eml")
def ew_sender_spoof_display(f: Fixture) -> bytes:
    head = plain_head(f, "Ganti rekening gaji saya")
    head[0] = f"From: {encoded_word(f.address, letter='Q')} <mallory@evil.example>"
    return raw(*head, body=request_body("Mohon gaji saya bulan ini ditransfer ke rekening baru."))


# -- missing and duplicate headers -------------------------------------------------------------

def without(head: list[str | bytes], *names: str) -> list[str | bytes]:
    """The header lines but those of the fields `names`."""
    prefixes = tuple(f"{name.lower()}:" for name in names)
    def named(line: str | bytes) -> bool:
        text = line.decode("latin-1") if isinstance(line, bytes) else line
        return text.lower().startswith(prefixes)
    return [line for line in head if not named(line)]


@fixture("missing-from.eml")
def missing_from(f: Fixture) -> bytes:
    return raw(*without(plain_head(f, "Air galon habis"), "From"), body=request_body(
        "Air galon di pantry lantai 4 habis."))


@fixture("missing-message-id.eml")
def missing_message_id(f: Fixture) -> bytes:
    return raw(*without(plain_head(f, "Pengajuan uang muka perjalanan dinas"), "Message-ID"),
               body=request_body("Saya mengajukan uang muka perjalanan dinas ke Medan."))


@fixture("missing-date.eml")
def missing_date(f: Fixture) -> bytes:
    return raw(*without(plain_head(f, "Wifi lantai 6 putus-putus"), "Date"), body=request_body(
        "Wifi di lantai 6 putus-putus sejak kemarin."))


@fixture("missing-subject.eml")
def missing_subject(f: Fixture) -> bytes:
    return raw(*without(plain_head(f, ""), "Subject"), body=request_body(
        "Kalender rapat saya tidak sinkron di ponsel."))


@fixture("duplicate-from.eml")
def duplicate_from(f: Fixture) -> bytes:
    head = plain_head(f, "Perubahan data rekening")
    head.insert(1, "From: Mallory <mallory@evil.example>")
    return raw(*head, body=request_body("Mohon data rekening saya diganti."))


@fixture("duplicate-subject.eml")
def duplicate_subject(f: Fixture) -> bytes:
    head = plain_head(f, "Proyektor ruang rapat B rusak")
    head.insert(3, "Subject: Abaikan permintaan sebelumnya")
    return raw(*head, body=request_body("Proyektor di ruang rapat B tidak menyala."))


@fixture("duplicate-message-id.eml")
def duplicate_message_id(f: Fixture) -> bytes:
    head = plain_head(f, "Kunci loker hilang")
    head.insert(5, f"Message-ID: <second.{f.slug}@mail.{DOMAIN}>")
    return raw(*head, body=request_body("Kunci loker saya hilang, mohon dibuatkan duplikat."))


@fixture("header-only.eml")
def header_only(f: Fixture) -> bytes:
    head = without(plain_head(f, "Printer lantai 2 kehabisan toner"), "Content-Transfer-Encoding")
    return b"\n".join(line if isinstance(line, bytes) else line.encode() for line in head) + b"\n"


@fixture("empty-body.eml")
def empty_body(f: Fixture) -> bytes:
    return raw(*plain_head(f, "Mohon dibuatkan kartu nama"))


# -- structure: nesting, attachments, sizes ---------------------------------------------------

@fixture("nested-rfc822-two-levels.eml")
def nested_rfc822_two_levels(f: Fixture) -> bytes:
    inner = mail(f, "Invoice INV-2026-118", "Dear Sir,\n\nPlease find invoice INV-2026-118.\n")
    inner.replace_header("From", "Vendor Katering <tagihan@katering.example>")
    inner.replace_header("Message-ID", f"<inner.{f.slug}@katering.example>")
    middle = mail(f, "Fwd: Invoice INV-2026-118", "Tolong diteruskan ke keuangan.\n")
    middle.replace_header("Message-ID", f"<middle.{f.slug}@mail.{DOMAIN}>")
    middle.add_attachment(inner)
    outer = mail(f, "Fwd: Fwd: Invoice INV-2026-118", request_body(
        "Tagihan vendor katering terlampir, mohon diproses pembayarannya."))
    outer.add_attachment(middle)
    return finished(outer, f)


@fixture("tnef-winmail-dat.eml")
def tnef_winmail_dat(f: Fixture) -> bytes:
    message = mail(f, "Formulir klaim kacamata", request_body(
        "Formulir klaim kacamata saya terlampir."), X_MS_Has_Attach="yes",
        X_MS_TNEF_Correlator="<00000000A1B2C3D4@contoh.co.id>")
    tnef = b"\x78\x9f\x3e\x22" + hashlib.sha256(b"winmail").digest() * 32
    message.add_attachment(tnef, maintype="application", subtype="ms-tnef",
                           filename="winmail.dat")
    return finished(message, f)


@fixture("attachment-filename-crlf.eml")
def attachment_filename_crlf(f: Fixture) -> bytes:
    evil = encoded_word("ktp.jpg\r\nContent-Type: text/html\r\n\r\n<script>x</script>.jpg")
    parts = [
        ('text/plain; charset="utf-8"', "", request_body(
            "Scan KTP saya untuk pendaftaran BPJS terlampir.")),
        ("image/jpeg", f'attachment; filename="{evil}"', "/9j/4CBub3QgcXVpdGUgYSBqcGVn"),
        ("application/pdf", "attachment;\n filename*=utf-8''kk%0D%0ABcc%3A%20spy%40attacker."
                            "example.pdf", "JVBERi0xLjQK"),
    ]
    return raw(*without(plain_head(f, "Scan KTP untuk BPJS"), "Content-Type",
                       "Content-Transfer-Encoding"),
               'Content-Type: multipart/mixed; boundary="b-ktp"', body=multipart("b-ktp", parts))


def multipart(boundary: str, parts: list[tuple[str, str, str]]) -> str:
    """A multipart body from (content type, disposition, body) triples, base64 when attached."""
    body = ""
    for content_type, disposition, text in parts:
        head = f"Content-Type: {content_type}\n"
        if disposition:
            head += f"Content-Disposition: {disposition}\nContent-Transfer-Encoding: base64\n"
        body += f"--{boundary}\n{head}\n{text}\n"
    return body + f"--{boundary}--\n"


@fixture("huge-received-headers.eml")
def huge_received_headers(f: Fixture) -> bytes:
    hops = [f"Received: from relay{n}.{DOMAIN} by relay{n + 1}.{DOMAIN}; {f.date}"
            for n in range(2000)]
    return raw(*hops, *plain_head(f, "Permintaan ATK: kertas A4"), body=request_body(
        "Mohon kiriman kertas A4 lima rim untuk lantai 3."))


@fixture("huge-header-block.eml")
def huge_header_block(f: Fixture) -> bytes:
    ids = [f"<{hashlib.sha256(str(n).encode()).hexdigest()[:24]}.{n}@mail.{DOMAIN}>"
           for n in range(4000)]
    references = "References: " + "\n ".join(ids)
    return raw(*plain_head(f, "Re: Re: Re: Lanjutan diskusi kendaraan dinas"), references,
               body=request_body("Mohon dijadwalkan mobil dinas untuk Jumat pagi."))


@fixture("long-line-body.eml")
def long_line_body(f: Fixture) -> bytes:
    line = "Mohon cek log server aplikasi absensi karena sering gagal login: " + \
           "ERR-0042;" * 20000
    return raw(*plain_head(f, "Aplikasi absensi gagal login"), body=line)


@fixture("broken-base64-body.eml")
def broken_base64_body(f: Fixture) -> bytes:
    encoded = base64.b64encode(request_body("Headset saya rusak.").encode()).decode()
    body = encoded[:40] + "!!@@##" + encoded[40:-3] + "\n"
    return raw(*plain_head(f, "Headset rusak", encoding="base64"), body=body)


@fixture("multipart-missing-boundary.eml")
def multipart_missing_boundary(f: Fixture) -> bytes:
    head = without(plain_head(f, "Monitor kedua tidak terdeteksi"), "Content-Type",
                   "Content-Transfer-Encoding")
    body = ("--somewhere\nContent-Type: text/plain\n\nMonitor kedua saya tidak terdeteksi.\n"
            "--somewhere--\n")
    return raw(*head, "Content-Type: multipart/mixed", body=body)


@fixture("multipart-unterminated.eml")
def multipart_unterminated(f: Fixture) -> bytes:
    head = without(plain_head(f, "Ganti baterai UPS"), "Content-Type",
                   "Content-Transfer-Encoding")
    body = ("--b1\nContent-Type: text/plain; charset=utf-8\n\nBaterai UPS di ruang server "
            "perlu diganti.\n--b1\nContent-Type: application/pdf; name=\"foto.pdf\"\n"
            "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK")
    return raw(*head, 'Content-Type: multipart/mixed; boundary="b1"', body=body)


@fixture("bare-cr-line-endings.eml")
def bare_cr_line_endings(f: Fixture) -> bytes:
    message = raw(*plain_head(f, "Pintu darurat lantai 7 macet"), body=request_body(
        "Pintu darurat di lantai 7 macet dan tidak bisa dibuka."))
    return message.replace(b"\n", b"\r")


@fixture("mbox-from-line.eml")
def mbox_from_line(f: Fixture) -> bytes:
    envelope = f"From {f.address} Mon Nov 23 09:00:00 2026".encode()
    return envelope + b"\n" + raw(*plain_head(f, "Toilet lantai 1 mampet"), body=request_body(
        "Toilet pria di lantai 1 mampet."))


# -- not mail at all ---------------------------------------------------------------------------

@fixture("not-mail-binary.eml")
def not_mail_binary(f: Fixture) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + hashlib.sha256(b"png").digest() * 8


@fixture("not-mail-empty.eml")
def not_mail_empty(f: Fixture) -> bytes:
    return b"\n\r\n  \n"


@fixture("not-mail-prose.eml")
def not_mail_prose(f: Fixture) -> bytes:
    return (b"Ini hanya catatan yang tersimpan di folder surat masuk\n"
            b"tanpa kepala surat apa pun\n")


# -- delivery status notifications (bounces) ---------------------------------------------------

def returned_headers(f: Fixture) -> str:
    """The header of our acknowledgment, as a bounce returns it."""
    return (f"Return-Path: <layanan@{DOMAIN}>\nFrom: {SERVICE}\n"
            "To: Andi Saputra <andi.saputra@contoh.co.id>\n"
            "Subject: [REQ-000001] Diterima: Slip gaji bulan November belum diterima\n"
            f"Date: Mon, 23 Nov 2026 08:00:00 +0700\nMessage-ID: {OUR_ACK}\n"
            "Auto-Submitted: auto-replied\nX-Auto-Response-Suppress: All\n")


def delivery_status(reporter: str, action: str = "failed", status: str = "5.1.1",
                    diagnostic: str = "smtp; 550 5.1.1 <andi.saputra@contoh.co.id>: "
                                      "Recipient address rejected: User unknown") -> str:
    return (f"Reporting-MTA: dns; {reporter}\nArrival-Date: Mon, 23 Nov 2026 08:00:01 +0700\n\n"
            "Final-Recipient: rfc822; andi.saputra@contoh.co.id\n"
            "Original-Recipient: rfc822;andi.saputra@contoh.co.id\n"
            f"Action: {action}\nStatus: {status}\nDiagnostic-Code: {diagnostic}\n")


def report(f: Fixture, head: list[str], notice: str, status: str, boundary: str,
           returned: str = "text/rfc822-headers") -> bytes:
    """A multipart/report (RFC 3462): notice, machine-readable status, the returned mail."""
    original = returned_headers(f)
    if returned == "message/rfc822":
        original += "\nSelamat pagi, permintaan Anda sudah kami terima.\n"
    parts = [("text/plain; charset=utf-8", notice), ("message/delivery-status", status),
             (returned, original)]
    body = "This is a MIME-encapsulated message.\n\n"
    for content_type, text in parts:
        body += f"--{boundary}\nContent-Type: {content_type}\n\n{text}\n"
    return raw(*head, "MIME-Version: 1.0",
               f'Content-Type: multipart/report; report-type=delivery-status;\n'
               f'\tboundary="{boundary}"', body=body + f"--{boundary}--\n")


def bounce_head(f: Fixture, sender: str, subject: str, *extra: str) -> list[str]:
    return ["Return-Path: <>", f"From: {sender}", f"To: layanan@{DOMAIN}",
            f"Subject: {subject}", f"Date: {f.date}", f"Message-ID: {f.message_id}", *extra]


POSTFIX_NOTICE = (
    "This is the mail system at host mx.contoh.co.id.\n\nI'm sorry to have to inform you "
    "that your message could not\nbe delivered to one or more recipients. It's attached "
    "below.\n\nFor further assistance, please send mail to postmaster.\n\n"
    "                   The mail system\n\n<andi.saputra@contoh.co.id>: host "
    "mail.contoh.co.id[10.0.0.25] said: 550\n    5.1.1 <andi.saputra@contoh.co.id>: "
    "Recipient address rejected: User unknown\n")


@fixture("dsn-postfix.eml")
def dsn_postfix(f: Fixture) -> bytes:
    head = bounce_head(f, f"MAILER-DAEMON@mx.{DOMAIN} (Mail Delivery System)",
                       "Undelivered Mail Returned to Sender", "Auto-Submitted: auto-replied")
    return report(f, head, POSTFIX_NOTICE, delivery_status(f"mx.{DOMAIN}"),
                  "4B7F21C0A5.1763859601/mx.contoh.co.id")


@fixture("dsn-postfix-delayed.eml")
def dsn_postfix_delayed(f: Fixture) -> bytes:
    head = bounce_head(f, f"MAILER-DAEMON@mx.{DOMAIN} (Mail Delivery System)",
                       "Delayed Mail (still being retried)", "Auto-Submitted: auto-replied")
    notice = ("This is the mail system at host mx.contoh.co.id.\n\n####################"
              "#########################################\n# THIS IS A WARNING ONLY.  YOU DO "
              "NOT NEED TO RESEND YOUR MESSAGE. #\n#############################################"
              "################\n\nYour message could not be delivered for more than 4 hour(s)."
              "\nIt will be retried until it is 5 day(s) old.\n")
    status = delivery_status(f"mx.{DOMAIN}", "delayed", "4.4.1",
                             "X-Postfix; connect to mail.contoh.co.id[10.0.0.25]:25: "
                             "Connection timed out")
    return report(f, head, notice, status, "9C1D33A0B2.1763874001/mx.contoh.co.id")


@fixture("dsn-exim.eml")
def dsn_exim(f: Fixture) -> bytes:
    head = bounce_head(f, f"Mail Delivery System <Mailer-Daemon@relay.{DOMAIN}>",
                       "Mail delivery failed: returning message to sender",
                       "Auto-Submitted: auto-replied",
                       "X-Failed-Recipients: andi.saputra@contoh.co.id")
    notice = ("This message was created automatically by mail delivery software.\n\n"
              "A message that you sent could not be delivered to one or more of its\n"
              "recipients. This is a permanent error. The following address(es) failed:\n\n"
              "  andi.saputra@contoh.co.id\n    host mail.contoh.co.id [10.0.0.25]\n"
              "    SMTP error from remote mail server after RCPT TO:<andi.saputra@contoh.co.id>:"
              "\n    550 5.1.1 User unknown\n")
    return report(f, head, notice, delivery_status(f"relay.{DOMAIN}"),
                  "1763859601-eximdsn-1804289383", returned="message/rfc822")


@fixture("dsn-exchange-ndr.eml")
def dsn_exchange_ndr(f: Fixture) -> bytes:
    head = bounce_head(
        f, f"Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{DOMAIN}>",
        "Undeliverable: [REQ-000001] Diterima: Slip gaji bulan November belum diterima",
        "Content-Language: en-US", "X-MS-Exchange-Message-Is-Ndr:",
        "X-MS-PublicTrafficType: Email", "X-MS-Exchange-Organization-AuthSource: "
        "EX01.corp.contoh.co.id", "X-MS-Exchange-Organization-AuthAs: Internal",
        "X-MS-Exchange-Organization-SCL: -1", "Thread-Topic: [REQ-000001] Diterima: Slip gaji "
        "bulan November belum diterima", "In-Reply-To: " + OUR_ACK, "References: " + OUR_ACK)
    notice = ("Your message to andi.saputra@contoh.co.id couldn't be delivered.\n\n"
              "andi.saputra wasn't found at contoh.co.id.\n\nLayanan      Office 365      "
              "andi.saputra\nAction Required                          Recipient\n\n"
              "Unknown To address\n\nDiagnostic information for administrators:\n\n"
              "Generating server: EX01.corp.contoh.co.id\n\nandi.saputra@contoh.co.id\n"
              "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
              "Recipient not found by SMTP address lookup'\n")
    status = delivery_status("EX01.corp.contoh.co.id", status="5.1.10",
                             diagnostic="smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
                                        "Recipient not found by SMTP address lookup")
    return report(f, head, notice, status, "_000_EX01corpcontohcoid_", returned="message/rfc822")


@fixture("dsn-gmail.eml")
def dsn_gmail(f: Fixture) -> bytes:
    head = bounce_head(f, "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                       "Delivery Status Notification (Failure)", "Auto-Submitted: auto-replied",
                       "X-Failed-Recipients: andi.saputra@contoh.co.id",
                       "References: " + OUR_ACK, "In-Reply-To: " + OUR_ACK)
    notice = ("** Address not found **\n\nYour message wasn't delivered to "
              "andi.saputra@contoh.co.id because the address couldn't be found, or is unable "
              "to receive mail.\n\nLearn more here: https://support.google.com/mail/?p="
              "NoSuchUser\n\nThe response from the remote server was:\n550 5.1.1 The email "
              "account that you tried to reach does not exist.\n")
    return report(f, head, notice, delivery_status("googlemail.com"),
                  "000000000000d2b3c405f1a7e9c1", returned="message/rfc822")


@fixture("dsn-unstructured-plain-text.eml")
def dsn_unstructured_plain_text(f: Fixture) -> bytes:
    head = bounce_head(f, f"MAILER-DAEMON@gw.{DOMAIN}", "Undelivered Mail Returned to Sender")
    body = (POSTFIX_NOTICE + "\n------ This is a copy of the message's headers. ------\n\n"
            + returned_headers(f))
    return raw(*head, "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii",
               body=body)


@fixture("dsn-qmail-bare-mailer-daemon.eml")
def dsn_qmail_bare_mailer_daemon(f: Fixture) -> bytes:
    head = bounce_head(f, "MAILER-DAEMON", "failure notice")
    body = ("Hi. This is the qmail-send program at mail2.contoh.co.id.\nI'm afraid I wasn't able "
            "to deliver your message to the following addresses.\nThis is a permanent error; "
            "I've given up. Sorry it didn't work out.\n\n<andi.saputra@contoh.co.id>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n\n--- Below this line is a copy "
            "of the message.\n\n" + returned_headers(f))
    return raw(*head, body=body)


@fixture("dsn-report-from-ordinary-sender.eml")
def dsn_report_from_ordinary_sender(f: Fixture) -> bytes:
    head = bounce_head(f, f"Relay Notifications <notifications@relay.{DOMAIN}>",
                       "Message delivery failed")
    head.remove("Return-Path: <>")
    head.insert(0, f"Return-Path: <notifications@relay.{DOMAIN}>")
    notice = ("Your message could not be delivered to andi.saputra@contoh.co.id.\n"
              "The recipient's mailbox does not exist.\n")
    return report(f, head, notice, delivery_status(f"relay.{DOMAIN}"), "relay-report-0001")


# -- out-of-office and other automatic replies -------------------------------------------------

def auto_reply(f: Fixture, subject: str, body: str, *extra: str) -> bytes:
    head = plain_head(f, subject)
    head[1] = f"To: layanan@{DOMAIN}"
    return raw(*head, f"In-Reply-To: {OUR_ACK}", f"References: {OUR_ACK}", *extra, body=body)


@fixture("autoreply-en-auto-submitted.eml")
def autoreply_en_auto_submitted(f: Fixture) -> bytes:
    return auto_reply(f, "Out of Office: [REQ-000001] Received: My laptop will not start",
                      "I am out of the office until 30 November with limited access to email.\n"
                      "For urgent matters please contact my colleague.\n",
                      "Auto-Submitted: auto-replied")


@fixture("autoreply-id-auto-submitted.eml")
def autoreply_id_auto_submitted(f: Fixture) -> bytes:
    return auto_reply(f, "Balasan Otomatis: [REQ-000001] Diterima: Slip gaji bulan November",
                      "Terima kasih atas email Anda. Saya sedang cuti sampai 30 November 2026 "
                      "dan akan membalas setelah kembali.\n", "Auto-Submitted: auto-replied")


@fixture("autoreply-id-vacation-auto-submitted.eml")
def autoreply_id_vacation_auto_submitted(f: Fixture) -> bytes:
    return auto_reply(f, "Sedang cuti", "Halo,\n\nSaya sedang cuti melahirkan sampai Januari "
                      "2027. Untuk keperluan mendesak silakan hubungi atasan saya.\n\nSalam\n",
                      "Auto-Submitted: auto-replied", "Precedence: auto_reply")


@fixture("autoreply-id-x-autoreply-only.eml")
def autoreply_id_x_autoreply_only(f: Fixture) -> bytes:
    return auto_reply(f, "Re: [REQ-000001] Diterima: Slip gaji bulan November belum diterima",
                      "Saya sedang cuti dan tidak dapat membaca email sampai Senin.\n",
                      "X-Autoreply: yes")


@fixture("autoreply-microsoft-en.eml")
def autoreply_microsoft_en(f: Fixture) -> bytes:
    return auto_reply(f, "Automatic reply: [REQ-000001] Received: My laptop will not start",
                      "Thank you for your message. I am on annual leave until 1 December.\n",
                      "X-Auto-Response-Suppress: All", "X-MS-Exchange-Inbox-Rules-Loop: "
                      f"{f.address}", "X-MS-Has-Attach:", "X-MS-TNEF-Correlator:",
                      "Thread-Topic: [REQ-000001] Received: My laptop will not start")


@fixture("autoreply-microsoft-id.eml")
def autoreply_microsoft_id(f: Fixture) -> bytes:
    return auto_reply(f, "Balasan Otomatis: [REQ-000001] Diterima: Slip gaji bulan November",
                      "Terima kasih. Saya sedang cuti hingga 2 Desember 2026.\n",
                      "X-Auto-Response-Suppress: All", "Auto-Submitted: auto-generated",
                      "X-MS-Exchange-Inbox-Rules-Loop: " + f.address)


@fixture("autoreply-en-subject-only.eml")
def autoreply_en_subject_only(f: Fixture) -> bytes:
    return auto_reply(f, "Out of office until Monday", "I am away until Monday and will reply "
                      "when I am back.\n")


def write_all(folder: Path = HERE) -> list[Path]:
    """Write every fixture into `folder`; return the paths written."""
    written = []
    for number, (name, maker) in enumerate(MAKERS.items()):
        path = folder / name
        path.write_bytes(maker(Fixture(name, number)))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(f"{path.name}: {path.stat().st_size} bytes")
