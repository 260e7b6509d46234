"""A mailroom installation in a temporary folder: config, rules, templates; mails to feed it."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-of-thirty-two-characters"
DEPARTMENTS = textwrap.dedent("""\
    departments:
      hr: {name: Human Resources, address: hr@contoh.co.id, members: [rina@contoh.co.id],
           sla: {first_response: 4h, resolution: 3d}}
      finance: {name: Finance, address: finance@contoh.co.id}
      it: {name: IT Support, address: it@contoh.co.id, sla: {first_response: 2h, resolution: 1d}}
      ga: {name: General Affairs, address: ga@contoh.co.id}
      triage: {name: Service Desk, address: servicedesk@contoh.co.id}
    """)


def site(folder: Path, inbox: str = "{kind: maildir, path: inbox}",
         outgoing: str = "{kind: maildir, path: outbox}", allowed: str = "[contoh.co.id]") -> Path:
    """Write a complete installation under `folder`; return its config path.

    Its inbox processes mail already waiting at the first start (`adopt: process`) unless
    `inbox` says otherwise: tests put mail in first, then start.
    """
    if "adopt" not in inbox:
        inbox = inbox.rstrip()[:-1] + ", adopt: process}"
    shutil.copytree(ROOT / "templates" / "emails", folder / "templates")
    shutil.copy(ROOT / "config" / "rules.example.yaml", folder / "rules.yaml")
    config = folder / "mailroom.yaml"
    config.write_text(textwrap.dedent(f"""\
        service: {{address: layanan@contoh.co.id, name: Layanan Internal,
                  allowed_domains: {allowed}, secret: {SECRET}, language: id}}
        inbox: {inbox}
        outgoing: {outgoing}
        database: {{url: "sqlite:///mailroom.db"}}
        rules: rules.yaml
        templates: templates
        """) + DEPARTMENTS)
    config.chmod(0o600)  # it holds the secret
    return config


def request_mail(subject: str = "Slip gaji bulan Oktober belum diterima",
                 body: str = "Selamat pagi, slip gaji saya belum diterima. Mohon bantuannya.",
                 sender: str = "Budi Santoso <budi@contoh.co.id>", **headers: Any) -> bytes:
    """A request as an employee's mail client would send it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = headers.pop("To", "Layanan Internal <layanan@contoh.co.id>")
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 11, 23, 2, 15, tzinfo=UTC))
    message["Message-ID"] = headers.pop("message_id", make_msgid(domain="mail.contoh.co.id"))
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()
