"""Realistic request mail for benchmarks: a deterministic mix of requests, replies and robots.

Run: .venv/bin/python benchmarks/mailgen.py --count 200 --seed 1 --out /tmp/letters
writes 000000.eml, 000001.eml, ... for eyeballing. From code: `letters(count, seed)`.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from html import escape
from pathlib import Path

DOMAIN = "contoh.co.id"
SERVICE = "layanan@contoh.co.id"
SERVICE_NAME = "Layanan Internal"
JAKARTA = timezone(timedelta(hours=7))
FIRST_NAMES = ("Budi", "Siti", "Agus", "Dewi", "Rina", "Joko", "Putri", "Hendra", "Maya",
               "Wahyu", "Andi", "Fitri", "Rudi", "Nur", "Yusuf", "Indah", "Bayu", "Ratna",
               "Dimas", "Lestari", "Arif", "Wulan", "Fajar", "Sri", "Teguh", "Ayu", "Rizky",
               "Novi", "Hadi", "Tari")
LAST_NAMES = ("Santoso", "Rahayu", "Wijaya", "Lestari", "Saputra", "Kusuma", "Hidayat",
              "Pratama", "Nugroho", "Siregar", "Harahap", "Simanjuntak", "Setiawan", "Gunawan",
              "Wibowo", "Susanto", "Purba", "Nasution", "Utomo", "Hakim", "Permata",
              "Sembiring", "Tanjung", "Marpaung", "Chandra")
PROBE_FIRST_NAMES = ("Bambang", "Citra", "Eko", "Galih", "Hana", "Irfan", "Kartika", "Lukman",
                     "Mega", "Nanda", "Oki", "Sekar")
PROBE_LAST_NAMES = ("Anggraini", "Basuki", "Darmawan", "Effendi", "Fauzi", "Halim", "Irawan",
                    "Kurniawan", "Maharani", "Purnomo")
DIVISIONS = ("Divisi Pemasaran", "Divisi Penjualan", "Divisi Produksi", "Divisi Logistik",
             "Divisi Hukum", "Sales Operations", "Marketing", "Procurement")
CLIENTS = ("Mozilla Thunderbird 115.5.0", "Microsoft Outlook 16.0", "Apple Mail (2.3774)",
           "Roundcube Webmail/1.6.5", "K-9 Mail for Android", "")
MONTHS = {"id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
                 "September", "Oktober", "November", "Desember"),
          "en": ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December")}
DAYS = {"id": ("Sen", "Sel", "Rab", "Kam", "Jum", "Sab", "Min"),
        "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}
GREETINGS = {"id": ("Selamat pagi Bapak/Ibu,", "Dengan hormat,", "Halo tim Layanan,",
                    "Selamat siang,"),
             "en": ("Good morning,", "Hello,", "Dear Service Desk,", "Hi team,")}
CLOSINGS = {"id": ("Terima kasih atas bantuannya.", "Mohon bantuannya, terima kasih.",
                   "Atas perhatiannya saya ucapkan terima kasih."),
            "en": ("Thank you for your help.", "Many thanks in advance.",
                   "Thanks, looking forward to your reply.")}
SIGN_OFFS = {"id": ("Salam,", "Hormat saya,", "Terima kasih,"),
             "en": ("Best regards,", "Kind regards,", "Thanks,")}
FOLLOW_UPS = {"id": ("Mohon info perkembangannya, apakah sudah ada kabar?",
                     "Saya lampirkan keterangan tambahan: kejadiannya masih sama hari ini.",
                     "Maaf mengganggu lagi, permintaan ini cukup mendesak bagi saya."),
              "en": ("Any news on this? I have not heard back yet.",
                     "Some more detail: it still happens today, same as before.",
                     "Sorry to chase, this is getting urgent for me.")}
AWAY = {"id": ("Saya sedang cuti sampai {date} dengan akses terbatas.",
               "Terima kasih atas pesan Anda. Saya sedang dinas luar kota hingga {date}."),
        "en": ("I am out of the office until {date} with limited access to mail.",
               "Thank you for your message. I am travelling until {date}.")}
AWAY_SUBJECTS = {"id": "Otomatis: {subject}", "en": "Out of Office: {subject}"}
ROOMS = ("Ruang Rapat Melati", "Ruang Rapat Anggrek", "Ruang Rapat Lt. 5", "Ruang Rapat Kenanga")
TOPICS_TEXT = """\
hr|id|Slip gaji bulan {month} belum diterima|Sampai hari ini saya belum menerima slip gaji \
bulan {month}, padahal rekan satu tim sudah menerimanya. Mohon dikirimkan kembali.
hr|id|Pengajuan cuti tahunan {day} {month}|Saya ingin mengajukan cuti tahunan selama {n} hari \
mulai tanggal {day} {month}. Sisa cuti saya masih cukup. Mohon diproses.
hr|id|Kartu BPJS Kesehatan anak saya|Anak saya belum terdaftar di BPJS Kesehatan. Dokumen \
akta kelahiran sudah saya siapkan. Apa saja yang perlu saya kirimkan?
hr|id|Perhitungan lembur bulan {month}|Lembur saya selama {n} jam di bulan {month} belum masuk \
perhitungan gaji. Mohon dicek kembali.
hr|en|Payslip for {month} missing|I have not received my salary slip for {month} yet, while \
my colleagues have. Could you please send it again?
hr|en|Annual leave request from {day} {month}|I would like to take {n} days of annual leave \
starting {day} {month}. My manager has agreed. Please process it.
hr|en|Sick leave certificate|I was ill for {n} days last week and have a doctor's \
certificate. How do I submit it for my sick leave?
finance|id|Reimbursement perjalanan dinas ke {city}|Saya ingin mengajukan reimbursement \
biaya perjalanan dinas ke {city} sebesar Rp {amount}. Kuitansi terlampir.
finance|id|Klaim biaya pengobatan|Mohon informasi proses klaim penggantian biaya pengobatan \
sebesar Rp {amount}. Berkas asli akan saya serahkan minggu ini.
finance|id|Tagihan vendor belum dibayar|Vendor katering menanyakan tagihan nomor INV-{number} \
sebesar Rp {amount} yang belum dibayar. Mohon dicek statusnya.
finance|en|Expense claim for the {city} trip|Please find my expense claim for the trip to \
{city}, Rp {amount} in total. Receipts are attached or will follow.
finance|en|Invoice {number} from our supplier|Our supplier is asking about invoice {number} \
of Rp {amount}, which is now overdue. Could you tell me when it will be paid?
finance|en|Cash advance for the {month} event|I need a cash advance of Rp {amount} for the \
event in {month}. What is the procedure?
it|id|Laptop sangat lambat|Laptop kantor saya sangat lambat sejak pembaruan minggu lalu, \
membuka aplikasi saja butuh beberapa menit. Mohon dicek.
it|id|Tidak bisa terhubung ke VPN|Sejak pagi saya tidak bisa terhubung ke VPN dari rumah, \
muncul pesan koneksi gagal. Pekerjaan saya tertunda.
it|id|Lupa kata sandi|Saya lupa kata sandi untuk masuk ke komputer kantor dan sudah mencoba \
tiga kali. Mohon direset.
it|id|Printer lantai {n} tidak berfungsi|Printer di lantai {n} tidak bisa mencetak sejak \
kemarin, lampu indikatornya berkedip merah.
it|en|Laptop will not start|My laptop does not start any more: the screen stays black after \
the logo. I have a presentation on {day} {month}.
it|en|Cannot connect to the VPN|I cannot connect to the VPN from home since this morning; \
it says the connection failed.
it|en|Password reset please|I forgot my password after the holidays and my account is now \
locked. Could you reset it?
ga|id|Pemesanan {room} tanggal {day} {month}|Mohon bantuan memesan {room} untuk tanggal \
{day} {month} pukul 10.00 sampai 12.00 untuk {n} orang.
ga|id|AC di lantai {n} tidak dingin|AC di ruangan lantai {n} tidak dingin sejak kemarin \
sehingga ruangan sangat panas. Mohon segera diperbaiki.
ga|id|Permintaan ATK|Tim kami membutuhkan ATK: kertas, map, dan pulpen untuk bulan {month}.
ga|en|Meeting room booking for {day} {month}|Could you book a meeting room for {n} people on \
{day} {month}, 14:00 to 16:00?
ga|en|Air conditioning on floor {n}|The AC on floor {n} has been leaking water since \
yesterday. Could someone have a look?
ga|en|Lights in the pantry|Two lights in the pantry on floor {n} are broken.
triage|id|Pertanyaan soal parkir motor|Apakah karyawan baru mendapat kartu parkir motor? \
Saya mulai bekerja tanggal {day} {month}.
triage|en|Question about the new office|When do we move to the new office, and where can I \
find the floor plan?
"""
CITIES = ("Surabaya", "Medan", "Makassar", "Bandung", "Denpasar", "Balikpapan")
KINDS = (("plain", 45), ("html", 10), ("alternative", 15), ("attachments", 10), ("reply", 12),
         ("auto", 5), ("bounce", 3))
ATTACHMENTS = (("application/pdf", "kuitansi_{n}.pdf", b"%PDF-1.4\n"),
               ("image/png", "screenshot_{n}.png", b"\x89PNG\r\n\x1a\n"),
               ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "rekap_{month}.xlsx", b"PK\x03\x04"))


@dataclass(frozen=True)
class Topic:
    """A kind of request: the department the example rules should pick, its words."""

    department: str
    language: str
    subject: str
    body: str


@dataclass(frozen=True)
class Person:
    name: str
    address: str
    language: str
    division: str
    client: str

    @property
    def mailbox(self) -> str:
        return formataddr((self.name, self.address))


@dataclass(frozen=True)
class Letter:
    """One generated mail: what kind it is, who wrote it, its Message-ID, and its bytes."""

    index: int
    kind: str
    message_id: str
    sender: Person
    subject: str
    department: str  # the department its topic belongs to ('' for robots)
    text: str
    date: datetime
    raw: bytes = field(repr=False)


TOPICS = tuple(Topic(*line.split("|")) for line in TOPICS_TEXT.splitlines())


def people(first_names: tuple[str, ...], last_names: tuple[str, ...],
           rng: random.Random) -> list[Person]:
    """Everyone of these names, each with a language, a division and a mail client."""
    found = []
    for first in first_names:
        for last in last_names:
            address = f"{first.lower()}.{last.lower()}@{DOMAIN}"
            found.append(Person(f"{first} {last}", address, rng.choice(("id", "en")),
                                rng.choice(DIVISIONS), rng.choice(CLIENTS)))
    return found


class Generator:
    """Writes letters in order; remembers each sender's requests so replies can quote them."""

    def __init__(self, seed: int, staff: list[Person] | None = None, prefix: str = "bench",
                 in_turn: bool = False) -> None:
        self.seed, self.prefix = seed, prefix
        self.in_turn = in_turn  # requests from each of `staff` in turn, not at random
        self.rng = random.Random(seed)
        self.staff = staff or people(FIRST_NAMES, LAST_NAMES, self.rng)
        self.clock = datetime(2026, 1, 5, 1, 0, tzinfo=UTC) + timedelta(days=seed % 300)
        self.sent: dict[str, list[Letter]] = {}
        self.index = 0

    def next(self, kind: str | None = None) -> Letter:
        kind = kind or self.rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        self.clock += timedelta(seconds=self.rng.randint(20, 600))
        message_id = f"<{self.prefix}.{self.seed}.{self.index:06d}@mail.{DOMAIN}>"
        if kind == "reply" and not self.sent:
            kind = "plain"
        maker = {"reply": self.reply, "auto": self.away, "bounce": self.bounce}.get(
            kind, self.request)
        letter = maker(kind, message_id)
        self.index += 1
        if letter.kind in ("plain", "html", "alternative", "attachments"):
            self.sent.setdefault(letter.sender.address, []).append(letter)
        return letter

    # -- requests --------------------------------------------------------------------------

    def request(self, kind: str, message_id: str) -> Letter:
        if self.in_turn:
            person = self.staff[self.index % len(self.staff)]
        else:
            person = self.rng.choice(self.staff)
        language = person.language if self.rng.random() < 0.85 else _other(person.language)
        topic = self.rng.choice([t for t in TOPICS if t.language == language])
        values = self.values(language)
        subject = topic.subject.format(**values)
        text = self.letter_text(person, language, topic.body.format(**values))
        message = self.headed(person, subject, message_id)
        self.fill(message, kind, text, values)
        if message.is_multipart():  # the email package would draw a random one
            message.set_boundary(f"=_{self.seed}.{self.index}.{self.rng.getrandbits(48):012x}")
        return Letter(self.index, kind, message_id, person, subject, topic.department, text,
                      self.clock, message.as_bytes())

    def values(self, language: str) -> dict[str, str]:
        """What fills a topic's blanks: a month in `language`, a day, an amount, a room..."""
        rng = self.rng
        return {"month": rng.choice(MONTHS[language]), "day": str(rng.randint(1, 28)),
                "n": str(rng.randint(2, 9)), "city": rng.choice(CITIES),
                "amount": f"{rng.randint(150, 9800) * 1000:,}".replace(",", "."),
                "number": f"{rng.randint(2026000, 2026999)}", "room": rng.choice(ROOMS)}

    def letter_text(self, person: Person, language: str, body: str) -> str:
        rng = self.rng
        return (f"{rng.choice(GREETINGS[language])}\n\n{body}\n\n"
                f"{rng.choice(CLOSINGS[language])}\n\n{rng.choice(SIGN_OFFS[language])}\n"
                f"{person.name}\n{person.division}\nExt. {rng.randint(1000, 4999)}\n")

    def fill(self, message: EmailMessage, kind: str, text: str, values: dict[str, str]) -> None:
        """The body in the shape of `kind`: text, HTML, both, or text with attachments."""
        if kind == "html":
            message.set_content(_html(text), subtype="html")
            return
        message.set_content(text)
        if kind == "alternative":
            message.add_alternative(_html(text), subtype="html")
        elif kind == "attachments":
            for _ in range(self.rng.randint(1, 2)):
                self.attach(message, values)

    def attach(self, message: EmailMessage, values: dict[str, str]) -> None:
        content_type, name, magic = self.rng.choice(ATTACHMENTS)
        payload = magic + self.rng.randbytes(self.rng.randint(2048, 30720) - len(magic))
        maintype, subtype = content_type.split("/")
        message.add_attachment(payload, maintype=maintype, subtype=subtype,
                               filename=name.format(**values).lower())

    # -- replies and robots ----------------------------------------------------------------

    def reply(self, kind: str, message_id: str) -> Letter:
        """A requester's follow-up to one of their earlier requests, quoting it."""
        original = self.rng.choice(self.sent[self.rng.choice(sorted(self.sent))])
        person, language = original.sender, _language_of(original)
        words = self.rng.choice(FOLLOW_UPS[language])
        quoted = "\n".join(("> " + line).rstrip() for line in original.text.splitlines())
        text = (f"{words}\n\n{person.name}\n\n{_attribution(original, language)}\n{quoted}\n")
        subject = "Re: " + original.subject
        message = self.headed(person, subject, message_id)
        message["In-Reply-To"] = original.message_id
        message["References"] = original.message_id
        message.set_content(text)
        return Letter(self.index, kind, message_id, person, subject, original.department, text,
                      self.clock, message.as_bytes())

    def away(self, kind: str, message_id: str) -> Letter:
        """An out-of-office answer from an employee's mailbox."""
        person = self.rng.choice(self.staff)
        language = person.language
        until = (self.clock + timedelta(days=self.rng.randint(2, 14))).astimezone(JAKARTA)
        date = f"{until.day} {MONTHS[language][until.month - 1]} {until.year}"
        text = self.rng.choice(AWAY[language]).format(date=date) + f"\n\n{person.name}\n"
        about = f"[REQ-{self.rng.randint(1, 999):06d}] Permintaan Anda telah diterima"
        subject = AWAY_SUBJECTS[language].format(subject=about)
        message = self.headed(person, subject, message_id)
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
        message.set_content(text)
        return Letter(self.index, kind, message_id, person, subject, "", text, self.clock,
                      message.as_bytes())

    def bounce(self, kind: str, message_id: str) -> Letter:
        """A DSN from the mail server: a mail of ours to a gone address came back."""
        gone = self.rng.choice(self.staff)
        raw = _dsn(self.clock, message_id, gone.address, self.rng.randint(1, 999)).encode()
        robot = Person("Mail Delivery System", f"MAILER-DAEMON@mx.{DOMAIN}", "en", "", "")
        return Letter(self.index, kind, message_id, robot, "Undelivered Mail Returned to Sender",
                      "", "", self.clock, raw)

    # -- headers ---------------------------------------------------------------------------

    def headed(self, person: Person, subject: str, message_id: str) -> EmailMessage:
        """A message with the headers a mail client and two servers on the way would add."""
        message = EmailMessage()
        local = self.clock.astimezone(JAKARTA)
        host = ".".join(str(self.rng.randint(2, 254)) for _ in range(3))
        host = f"10.{host}"
        queue_ids = [f"{self.rng.getrandbits(40):010X}" for _ in range(2)]
        stamp = format_datetime(local + timedelta(seconds=2))
        message["Received"] = (f"from mail.{DOMAIN} (mail.{DOMAIN} [10.0.0.5]) by mx.{DOMAIN} "
                               f"(Postfix) with ESMTPS id {queue_ids[0]} for <{SERVICE}>; "
                               f"{stamp}")
        message["Received"] = (f"from [{host}] (unknown [{host}]) by mail.{DOMAIN} (Postfix) "
                               f"with ESMTPSA id {queue_ids[1]}; {format_datetime(local)}")
        message["From"] = person.mailbox
        message["To"] = formataddr((SERVICE_NAME, SERVICE))
        message["Subject"] = subject
        message["Date"] = format_datetime(local)
        message["Message-ID"] = message_id
        if person.client.startswith(("Microsoft", "Apple")):
            message["X-Mailer"] = person.client
        elif person.client:
            message["User-Agent"] = person.client
        return message


def letters(count: int, seed: int) -> list[bytes]:
    """`count` mails in inbox order, the same for the same seed."""
    return [letter.raw for letter in generate(count, seed)]


def generate(count: int, seed: int) -> list[Letter]:
    """`count` letters (requests, replies, out-of-office answers, bounces) in inbox order."""
    generator = Generator(seed)
    return [generator.next() for _ in range(count)]


def probes(count: int, seed: int) -> list[Letter]:
    """Plain new requests, each from someone the letters of `generate` never come from."""
    rng = random.Random(seed)
    staff = people(PROBE_FIRST_NAMES, PROBE_LAST_NAMES, rng)
    rng.shuffle(staff)
    generator = Generator(seed, staff, prefix="probe", in_turn=True)
    return [generator.next("plain") for _ in range(count)]


def _other(language: str) -> str:
    return "en" if language == "id" else "id"


def _language_of(letter: Letter) -> str:
    greeting = letter.text.split("\n", 1)[0]
    return "id" if greeting in GREETINGS["id"] else "en"


def _attribution(original: Letter, language: str) -> str:
    """The line a mail client writes above the quote: 'On ... wrote:' or 'Pada ... menulis:'."""
    local = original.date.astimezone(JAKARTA)
    day = DAYS[language][local.weekday()]
    month = MONTHS[language][local.month - 1][:3]
    who = f"{original.sender.name} <{original.sender.address}>"
    if language == "id":
        return (f"Pada {day}, {local.day} {month} {local.year} pukul {local:%H.%M}, {who} "
                f"menulis:")
    return f"On {day}, {local.day} {month} {local.year} at {local:%H:%M}, {who} wrote:"


def _html(text: str) -> str:
    """The HTML a webmail client makes of `text`: one div per line, escaped."""
    lines = "".join(f"<div>{escape(line) or '<br>'}</div>\n" for line in text.splitlines())
    return (f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            f'</head>\n<body><div dir="ltr">\n{lines}</div></body></html>\n')


def _dsn(when: datetime, message_id: str, gone: str, number: int) -> str:
    """A Postfix-shaped multipart/report DSN returning the headers of one of our mails."""
    stamp = format_datetime(when.astimezone(JAKARTA))
    boundary = f"{message_id.strip('<>').split('@')[0]}/mx.{DOMAIN}"
    return f"""\
Received: by mx.{DOMAIN} (Postfix)
\tid 4Q{number:06d}X; {stamp}
Date: {stamp}
From: MAILER-DAEMON@mx.{DOMAIN} (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {SERVICE}
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.{DOMAIN}.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{gone}>: host mail.{DOMAIN}[10.0.0.5] said: 550 5.1.1 <{gone}>:
    Recipient address rejected: User unknown in virtual mailbox table

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.{DOMAIN}
X-Postfix-Queue-ID: 4Q{number:06d}X
Arrival-Date: {stamp}

Final-Recipient: rfc822; {gone}
Original-Recipient: rfc822;{gone}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.{DOMAIN}
Diagnostic-Code: smtp; 550 5.1.1 <{gone}>: Recipient address rejected: User
    unknown in virtual mailbox table

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: {SERVICE_NAME} <{SERVICE}>
To: {gone}
Subject: [REQ-{number:06d}] Permintaan Anda telah diterima
Date: {stamp}
Message-ID: <REQ-{number:06d}.ack.{number:012x}@{DOMAIN}>
Auto-Submitted: auto-replied

--{boundary}--
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for index, raw in enumerate(letters(args.count, args.seed)):
        (args.out / f"{index:06d}.eml").write_bytes(raw)
    print(f"{args.count} letters written to {args.out}")


if __name__ == "__main__":
    main()
