"""A mailroom installation in a temporary folder: config, rules, templates; mails to feed it."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.postgres import Postgres

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

_postgres: Postgres | None = None  # the PostgreSQL pass's cluster (conftest)
_forbidden = False  # the running test is marked no_database


def use_postgres(cluster: Postgres | None) -> None:
    """Give every installation from now on a database in `cluster` (None: SQLite files); the
    cluster's template is migrated to the newest schema first, once."""
    global _postgres
    if cluster is not None:
        from mailroom.store.db import Database
        from tests.postgres import TEMPLATE
        cluster.execute(f'CREATE DATABASE "{TEMPLATE}"')
        template = Database(cluster.url(TEMPLATE))
        template.upgrade()
        template.close()
    _postgres = cluster


def postgres() -> Postgres:
    """The PostgreSQL pass's cluster."""
    assert _postgres is not None, "only in the PostgreSQL pass (--database postgresql)"
    return _postgres


def forbid_database(forbidden: bool) -> None:
    global _forbidden
    _forbidden = forbidden


def database_url(folder: Path, migrated: bool = True) -> str:
    """A database of its own for an installation in `folder`: a SQLite file there, or a new
    PostgreSQL database (at the newest schema, or empty if not `migrated`)."""
    if _forbidden:
        raise AssertionError("a test marked no_database made a database: unmark it")
    if _postgres is None:
        return f"sqlite:///{folder / 'mailroom.db'}"
    from tests.postgres import TEMPLATE
    return _postgres.create(TEMPLATE if migrated else "template0")


def _database(folder: Path) -> str:
    """What an installation's config names: on SQLite, a file beside it."""
    url = database_url(folder)
    return url if _postgres is not None else "sqlite:///mailroom.db"


def break_database(config: Path) -> str:
    """Make an installation's database impossible to open: a folder where the SQLite file
    would be, or a PostgreSQL port nobody listens on. What the driver's error then says."""
    if _postgres is None:
        (config.parent / "blocked.db").mkdir()
        config.write_text(config.read_text().replace("sqlite:///mailroom.db",
                                                     "sqlite:///blocked.db"))
        return "unable to open"
    from tests.servers import free_port
    url = database_of(config)
    config.write_text(config.read_text().replace(
        url, url.replace(f":{_postgres.port}/", f":{free_port()}/")))
    return "connection"


def database_of(config: Path) -> str:
    """The database URL an installation's config names."""
    from mailroom import config as config_file
    return config_file.load(config).database_url


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
        database: {{url: "{_database(folder)}"}}
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
