"""The config file: YAML in, frozen dataclasses out; every mistake is a file:line problem."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailroom import located
from mailroom.errors import ConfigError, Problem
from mailroom.located import Mapping, Where

SECURITY_PORTS = {"imap": {"tls": 993, "starttls": 143, "none": 143},
                  "smtp": {"tls": 465, "starttls": 587, "none": 25}}
LANGUAGES = ("id", "en")
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
MIN_SECRET_LENGTH = 32
DURATION = re.compile(r"^\s*(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")


class Secret:
    """A password or key; never shown in logs, reprs or errors."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    __str__ = __repr__


@dataclass(frozen=True)
class Service:
    address: str
    name: str
    secret: Secret
    language: str = "id"
    allowed_domains: tuple[str, ...] = ()
    timezone: str = "Asia/Jakarta"
    admin: str = ""
    reply_address: str = "plus"  # plus: layanan+REQ-000123.<token>@...; plain: the address itself
    reopen_days: int = 7
    require_authentication: bool = False
    authserv_ids: tuple[str, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Server:
    """Where an IMAP or SMTP server is and how to log in to it."""

    host: str
    port: int
    security: str = "tls"
    username: str = ""
    password: Secret | None = None
    timeout_seconds: float = 30.0
    ca_file: Path | None = None


@dataclass(frozen=True)
class Inbox:
    kind: str
    path: Path | None = None
    server: Server | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    idle: bool = True
    poll_seconds: float = 60.0
    batch_size: int = 50


@dataclass(frozen=True)
class Outgoing:
    kind: str
    path: Path | None = None
    server: Server | None = None


@dataclass(frozen=True)
class Sla:
    first_response: timedelta
    resolution: timedelta


@dataclass(frozen=True)
class Department:
    key: str
    name: str
    address: str
    sla: Sla
    members: tuple[str, ...] = ()
    manager: str = ""


@dataclass(frozen=True)
class Config:
    path: Path
    service: Service
    inbox: Inbox
    outgoing: Outgoing
    database_url: str
    rules_path: Path
    templates_path: Path
    departments: dict[str, Department] = field(default_factory=dict)


DEFAULT_SLA = Sla(first_response=timedelta(hours=8), resolution=timedelta(days=3))
TOP_KEYS = ("service", "inbox", "outgoing", "database", "rules", "templates", "departments")


def parse_duration(text: str) -> timedelta | None:
    """'4h', '3d', '1d 4h', '30m', '2w' as a timedelta; None if not such a duration."""
    match = DURATION.match(str(text))
    if not match or not any(match.groups()):
        return None
    weeks, days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)


REQUIRED: Any = object()


class Reader:
    """Reads one mapping of the config, collecting problems instead of stopping at the first."""

    def __init__(self, mapping: Mapping, what: str, allowed: tuple[str, ...], base: Path,
                 quiet: bool = False) -> None:
        self.mapping, self.what, self.base, self.quiet = mapping, what, base, quiet
        self.problems: list[Problem] = located.check_keys(mapping, allowed, what)

    def at(self, key: str) -> Where:
        return self.mapping.at(key)

    def fail(self, key: str, message: str, hint: str = "") -> None:
        if not self.quiet:  # a missing section is one problem, not one per key
            self.problems.append(self.at(key).problem(message, hint))

    def get(self, key: str, default: Any, check: Callable[[Any], Any], expect: str) -> Any:
        if key not in self.mapping or self.mapping[key] is None:
            if default is REQUIRED:
                self.fail(key, f"{self.what} needs {key!r}", f"add '{key}: {expect}'")
            return None if default is REQUIRED else default
        value = self.mapping[key]
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            if str(exc):
                self.fail(key, f"{self.what}.{key}: {exc}", f"expected {expect}")
            else:
                self.fail(key, f"{self.what}.{key}: expected {expect}, got "
                          f"{located.kind_of(value)}")
            return None if default is REQUIRED else default

    def text(self, key: str, default: Any = "") -> Any:
        return self.get(key, default, _text, "text")

    def address(self, key: str, default: Any = "") -> Any:
        return self.get(key, default, _address, "an email address like name@example.org")

    def addresses(self, key: str) -> tuple[str, ...]:
        return tuple(self.get(key, [], _addresses, "a list of email addresses"))

    def number(self, key: str, default: float) -> Any:
        return self.get(key, default, _positive, "a positive number")

    def integer(self, key: str, default: Any) -> Any:
        return self.get(key, default, _port, "a whole number from 1 to 65535")

    def boolean(self, key: str, default: bool) -> Any:
        return self.get(key, default, _boolean, "true or false")

    def choice(self, key: str, options: tuple[str, ...], default: Any) -> Any:
        return self.get(key, default, _one_of(options), "one of " + ", ".join(options))

    def path(self, key: str, default: Any = REQUIRED) -> Any:
        return self.get(key, default, lambda v: (self.base / _text(v)).resolve(),
                        "a file or folder path")

    def secret(self, key: str, default: Any = None) -> Any:
        return self.get(key, default, lambda v: _secret(v, self.base),
                        "env:NAME, file:PATH or the value itself")

    def duration(self, key: str, default: timedelta) -> Any:
        return self.get(key, default, _duration, "a duration like 30m, 4h, 3d or 1d 4h")


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise TypeError("")
    return str(value)


def _address(value: Any) -> str:
    text = _text(value).strip().lower()
    if not ADDRESS.match(text):
        raise ValueError("not an email address")
    return text


def _addresses(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise TypeError("")
    return [_address(v) for v in value]


def _positive(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError("")
    return float(value)


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError("")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("")
    return value


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value)
        if text not in options:
            close = located.did_you_mean(text, options)
            raise ValueError(f"unknown value {text!r}" + (f"; {close}" if "mean" in close else ""))
        return text
    return check


def _duration(value: Any) -> timedelta:
    result = parse_duration(_text(value))
    if result is None or result <= timedelta(0):
        raise ValueError("")
    return result


def _long_secret(value: Any, base: Path) -> Secret:
    secret = _secret(value, base)
    if len(secret.reveal()) < MIN_SECRET_LENGTH:
        raise ValueError(f"the secret has {len(secret.reveal())} characters; it needs at least "
                         f"{MIN_SECRET_LENGTH}")
    return secret


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("")
    return value


def _secret(value: Any, base: Path) -> Secret:
    text = _text(value)
    if text.startswith("env:"):
        name = text[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return Secret(os.environ[name])
    if text.startswith("file:"):
        path = base / text[5:]
        try:
            return Secret(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return Secret(text)


def _zone(value: Any) -> str:
    try:
        ZoneInfo(_text(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone") from None
    return str(value)


def _service(r: Reader) -> Service:
    service = Service(
        address=r.address("address", REQUIRED),
        name=r.text("name", "Service Desk"),
        secret=r.get("secret", REQUIRED, lambda v: _long_secret(v, r.base),
                     "a random string of 32 characters or more, e.g. from `openssl rand "
                     "-base64 33`, as env:NAME, file:PATH or the value itself"),
        language=r.choice("language", LANGUAGES, "id"),
        allowed_domains=tuple(d.lower() for d in r.get(
            "allowed_domains", [], _text_list, "a list of domains like contoh.co.id")),
        timezone=r.get("timezone", "Asia/Jakarta", _zone, "a time zone like Asia/Jakarta"),
        admin=r.address("admin", ""),
        reply_address=r.choice("reply_address", ("plus", "plain"), "plus"),
        reopen_days=r.get("reopen_days", 7, _days, "a whole number of days, 0 or more"),
        require_authentication=r.boolean("require_authentication", False),
        authserv_ids=tuple(name.lower() for name in r.get(
            "authserv_ids", [], _text_list, "a list of the authserv-ids of your own mail servers")),
    )
    if service.require_authentication and not service.authserv_ids:
        r.fail("require_authentication", "require_authentication needs service.authserv_ids",
               "add 'authserv_ids: [mx.contoh.co.id]', the name your mail server writes "
               "first in Authentication-Results headers")
    return service


def _text_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise TypeError("")
    return [_text(v) for v in value]


SERVER_KEYS = ("host", "port", "security", "username", "password", "timeout_seconds", "ca_file")


def _server(r: Reader, protocol: str) -> Server:
    security = r.choice("security", ("tls", "starttls", "none"), "tls")
    return Server(
        host=r.text("host", REQUIRED),
        port=r.integer("port", SECURITY_PORTS[protocol][security]),
        security=security,
        username=r.text("username", ""),
        password=r.secret("password", None),
        timeout_seconds=r.number("timeout_seconds", 30.0),
        ca_file=r.path("ca_file", None),
    )


INBOX_KEYS = ("kind", "folder", "processed_folder", "idle", "poll_seconds", "batch_size",
              *SERVER_KEYS)


def _inbox(r: Reader) -> Inbox:
    kind = r.choice("kind", ("imap", "maildir"), REQUIRED)
    if kind == "maildir":
        r.problems += located.check_keys(r.mapping, ("kind", "path"), "inbox (kind: maildir)")
        return Inbox(kind=kind, path=r.path("path"))
    r.problems += located.check_keys(r.mapping, INBOX_KEYS, "inbox")
    return Inbox(
        kind="imap",
        server=_server(r, "imap"),
        folder=r.text("folder", "INBOX"),
        processed_folder=r.text("processed_folder", "Processed"),
        idle=r.boolean("idle", True),
        poll_seconds=r.number("poll_seconds", 60.0),
        batch_size=int(r.number("batch_size", 50)),
    )


def _outgoing(r: Reader) -> Outgoing:
    kind = r.choice("kind", ("smtp", "maildir"), REQUIRED)
    if kind == "maildir":
        r.problems += located.check_keys(r.mapping, ("kind", "path"), "outgoing (kind: maildir)")
        return Outgoing(kind=kind, path=r.path("path"))
    r.problems += located.check_keys(r.mapping, ("kind", *SERVER_KEYS), "outgoing")
    return Outgoing(kind="smtp", server=_server(r, "smtp"))


def _department(key: str, r: Reader) -> Department:
    sla = DEFAULT_SLA
    if "sla" in r.mapping:
        s = _section(r.mapping, "sla", f"departments.{key}.sla",
                     ("first_response", "resolution"), r.base, r.problems)
        sla = Sla(s.duration("first_response", DEFAULT_SLA.first_response),
                  s.duration("resolution", DEFAULT_SLA.resolution))
        r.problems += s.problems
    return Department(
        key=key,
        name=r.text("name", key),
        address=r.address("address", REQUIRED),
        sla=sla,
        members=r.addresses("members"),
        manager=r.address("manager", ""),
    )


def _section(parent: Mapping, key: str, what: str, allowed: tuple[str, ...], base: Path,
             problems: list[Problem]) -> Reader:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        if key in parent:
            problems.append(parent.at(key).problem(f"{what} must be a mapping of key: value"))
        else:
            problems.append(parent.where.problem(f"missing section {what!r}",
                                                 "see config/mailroom.example.yaml"))
        value = Mapping()
        value.where, value.key_where = parent.at(key), {}
        return Reader(value, what, allowed, base, quiet=True)
    return Reader(value, what, allowed, base)


def _departments(top: Mapping, base: Path, problems: list[Problem]) -> dict[str, Department]:
    value = top.get("departments")
    if not isinstance(value, Mapping) or not value:
        problems.append(top.at("departments").problem(
            "departments must map a short key to each department",
            "e.g. hr: {name: ..., address: ...}"))
        return {}
    result = {}
    for key in value:
        r = _section(value, key, f"departments.{key}",
                     ("name", "address", "members", "manager", "sla"), base, problems)
        result[key] = _department(key, r)
        problems += r.problems
    return result


def _database_url(r: Reader) -> str:
    url: str = r.text("url", REQUIRED) or ""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:" and not url.startswith(prefix + "/"):
        url = prefix + str((r.base / url[len(prefix):]).resolve())
    return url


def load(path: Path) -> Config:
    """Read and check the config file at `path`; raise ConfigError listing every problem."""
    path = Path(path)
    top = located.require_mapping(located.load(path), located.Where(str(path), 1, 1), "the config")
    base = path.resolve().parent
    problems = located.check_keys(top, TOP_KEYS, "the config")
    sections = {
        "service": ("address", "name", "allowed_domains", "secret", "language", "timezone",
                    "admin", "reply_address", "reopen_days", "require_authentication",
                    "authserv_ids"),
        "inbox": (*INBOX_KEYS, "path"),
        "outgoing": ("kind", "path", *SERVER_KEYS),
        "database": ("url",),
    }
    readers = {name: _section(top, name, name, keys, base, problems)
               for name, keys in sections.items()}
    for name in ("inbox", "outgoing"):  # their keys depend on their kind
        readers[name].problems = []
    tops = Reader(top, "the config", TOP_KEYS, base)
    config = Config(
        path=path,
        service=_service(readers["service"]),
        inbox=_inbox(readers["inbox"]),
        outgoing=_outgoing(readers["outgoing"]),
        database_url=_database_url(readers["database"]),
        rules_path=tops.path("rules"),
        templates_path=tops.path("templates"),
        departments=_departments(top, base, problems),
    )
    for reader in [*readers.values(), tops]:
        problems += reader.problems
    if problems:
        raise ConfigError(sorted(set(problems), key=lambda p: (p.line, p.col)))
    return config


def default_path() -> Path:
    """The config file named by MAILROOM_CONFIG, else /etc/mailroom/mailroom.yaml."""
    return Path(os.environ.get("MAILROOM_CONFIG", "/etc/mailroom/mailroom.yaml"))
