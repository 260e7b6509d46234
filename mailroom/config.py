"""The config file: YAML in, frozen dataclasses out; every mistake is a file:line problem."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailroom import located
from mailroom.errors import ConfigError
from mailroom.located import REQUIRED, Mapping, Report, Section, Where
from mailroom.located import parse_duration as parse_duration
from mailroom.logs import FORMATS as LOG_FORMATS
from mailroom.sla import AROUND_THE_CLOCK, Calendar, Holidays, Span, around_the_clock, parse_hours

SECURITY_PORTS = {"imap": {"tls": 993, "starttls": 143, "none": 143},
                  "smtp": {"tls": 465, "starttls": 587, "none": 25}}
LANGUAGES = ("id", "en")
SECRET_KEYS = (("service", "secret"), ("inbox", "password"), ("outgoing", "password"))
SHOWN_TO_OTHERS = 0o077  # permission bits of the group and of everyone else
TRIAL_START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # a Monday: SLA targets are tried from it
MIN_SECRET_LENGTH = 32
log = logging.getLogger(__name__)


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
    unverified: str = "forward"  # an allowed domain failing DMARC: forward marked, or quarantine
    outsiders: str = "ignore"  # senders outside allowed_domains: ignore, refuse once a day, accept
    ack_limit: int = 10  # acknowledgments one sender gets an hour; past it, none (0: no limit)

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
    max_size: int = 25 * 1024**2  # larger messages are quarantined without being downloaded
    adopt: str = "record"  # mail from before the first start: record, process or skip
    adopt_age: timedelta | None = None  # mail older than this counts as from before, too
    alert_after: timedelta = timedelta(minutes=15)  # the inbox unreadable this long: tell admin


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
    calendar: Calendar = AROUND_THE_CLOCK


@dataclass(frozen=True)
class Survey:
    """When the satisfaction survey goes out, and how often one person may get one."""

    after: timedelta = timedelta(hours=1)  # working time after the resolution
    quiet: timedelta = timedelta(days=7)  # no second survey to one person within this


@dataclass(frozen=True)
class MetricsEndpoint:
    """Where the Prometheus endpoint listens (metrics.listen: HOST:PORT)."""

    host: str
    port: int


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
    calendars: dict[str, Calendar] = field(default_factory=dict)
    reminders: tuple[int, ...] = (50, 80)  # percent of a target's working time used
    survey: Survey = Survey()
    log_format: str = "text"  # logging.format: text, or json (one object a line)
    metrics: MetricsEndpoint | None = None  # metrics.listen; no endpoint unless given


DEFAULT_SLA = Sla(first_response=timedelta(hours=8), resolution=timedelta(days=3))
TOP_KEYS = ("service", "inbox", "outgoing", "database", "rules", "templates", "departments",
            "calendars", "reminders", "survey", "logging", "metrics")
SERVICE_KEYS = ("address", "name", "allowed_domains", "secret", "language", "timezone", "admin",
                "reply_address", "reopen_days", "require_authentication", "authserv_ids",
                "unverified", "outsiders", "ack_limit")
SERVER_KEYS = ("host", "port", "security", "username", "password", "timeout_seconds", "ca_file")
ANY_INBOX_KEYS = ("poll_seconds", "batch_size", "max_size", "adopt", "adopt_age", "alert_after")
INBOX_KEYS = ("kind", "folder", "processed_folder", "idle", *ANY_INBOX_KEYS, *SERVER_KEYS)
DEPARTMENT_KEYS = ("name", "address", "members", "manager", "sla", "calendar")
CALENDAR_KEYS = ("timezone", "hours", "holidays", "closed")
HOLIDAY_KEYS = ("country", "subdivision", "categories")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PATH = "a file or folder path"
SECRET = "env:NAME, file:PATH or the value itself"
LONG_SECRET = ("a random string of 32 characters or more, e.g. from `openssl rand -base64 33`, "
               "as " + SECRET)


def _path(base: Path) -> Callable[[Any], Path]:
    return lambda value: (base / located.text(value)).resolve()


def _secret(base: Path, least: int = 0) -> Callable[[Any], Secret]:
    def check(value: Any) -> Secret:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a password or secret is one line of text, not a list or "
                             "mapping")
        secret = Secret(_reveal(value.strip(), base))
        if len(secret.reveal()) < least:
            raise ValueError(f"the secret has {len(secret.reveal())} characters; it needs at "
                             f"least {least}")
        return secret
    return check


def _reveal(text: str, base: Path) -> str:
    if text.startswith("env:"):
        name = text[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    if text.startswith("file:"):
        return _read_secret(base / text[5:])
    return text


def _read_secret(path: Path) -> str:
    """The secret kept in the file at `path`: its text, stripped, of at most 64KB."""
    try:
        with path.open("rb") as kept:
            return kept.read(65536).decode("utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None


_days = located.whole(0, 3660, " days")


def _up_to_ten_years(value: Any) -> timedelta:
    return located.duration(value, timedelta(days=3660))


def _zone(value: Any) -> str:
    name = located.text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("unknown time zone") from None
    return name


def _service(s: Section, base: Path) -> Service:
    service = Service(
        address=s.address("address", REQUIRED),
        name=s.text("name", "Service Desk"),
        secret=s.get("secret", REQUIRED, _secret(base, MIN_SECRET_LENGTH), LONG_SECRET),
        language=s.choice("language", LANGUAGES, "id"),
        allowed_domains=tuple(d.lower() for d in s.texts(
            "allowed_domains", "a list of domains like contoh.co.id")),
        timezone=s.get("timezone", "Asia/Jakarta", _zone, "a time zone like Asia/Jakarta"),
        admin=s.address("admin", ""),
        reply_address=s.choice("reply_address", ("plus", "plain"), "plus"),
        reopen_days=s.get("reopen_days", 7, _days, "a whole number of days, 0 or more"),
        require_authentication=s.boolean("require_authentication", False),
        authserv_ids=tuple(name.lower() for name in s.texts(
            "authserv_ids", "a list of the authserv-ids of your own mail servers")),
        unverified=s.choice("unverified", ("forward", "quarantine"), "forward"),
        outsiders=s.choice("outsiders", ("ignore", "refuse", "accept"), "ignore"),
        ack_limit=s.count("ack_limit", 10, least=0),
    )
    if service.require_authentication and not service.authserv_ids:
        s.fail("require_authentication", "require_authentication needs service.authserv_ids",
               "add 'authserv_ids: [mx.contoh.co.id]', the name your mail server writes "
               "first in Authentication-Results headers")
    return service


def _server(s: Section, protocol: str, base: Path) -> Server:
    security = s.choice("security", ("tls", "starttls", "none"), "tls")
    return Server(
        host=s.text("host", REQUIRED),
        port=s.integer("port", SECURITY_PORTS[protocol][security]),
        security=security,
        username=s.text("username", ""),
        password=s.get("password", None, _secret(base), SECRET),
        timeout_seconds=s.number("timeout_seconds", 30.0),
        ca_file=s.get("ca_file", None, _path(base), PATH),
    )


def _maildir(s: Section, base: Path, more: tuple[str, ...] = ()) -> Any:
    s.unknown_keys(("kind", "path", *more), f"{s.what} (kind: maildir)")
    return s.get("path", REQUIRED, _path(base), PATH)


def _inbox(s: Section, base: Path) -> Inbox:
    kind = s.choice("kind", ("imap", "maildir"), REQUIRED)
    if kind == "maildir":
        return Inbox(kind=kind, path=_maildir(s, base, ANY_INBOX_KEYS), **_any_inbox(s))
    if kind != "imap":
        return Inbox(kind="")
    s.unknown_keys(INBOX_KEYS)
    return Inbox(
        kind=kind,
        server=_server(s, "imap", base),
        folder=s.text("folder", "INBOX"),
        processed_folder=s.text("processed_folder", "Processed"),
        idle=s.boolean("idle", True),
        **_any_inbox(s),
    )


def _any_inbox(s: Section) -> dict[str, Any]:
    """How often any inbox is looked at, in what batches, and how it treats oversized mail,
    mail from before the first start, and outages."""
    return {"poll_seconds": s.number("poll_seconds", Inbox.poll_seconds),
            "batch_size": s.count("batch_size", Inbox.batch_size),
            "max_size": s.size("max_size", Inbox.max_size),
            "adopt": s.choice("adopt", ("record", "process", "skip"), "record"),
            "adopt_age": s.get("adopt_age", None, _up_to_ten_years,
                               "a duration like 30d or 2w"),
            "alert_after": s.duration("alert_after", Inbox.alert_after)}


def _outgoing(s: Section, base: Path) -> Outgoing:
    kind = s.choice("kind", ("smtp", "maildir"), REQUIRED)
    if kind == "maildir":
        return Outgoing(kind=kind, path=_maildir(s, base))
    if kind != "smtp":
        return Outgoing(kind="")
    s.unknown_keys(("kind", *SERVER_KEYS))
    return Outgoing(kind=kind, server=_server(s, "smtp", base))


def _department(key: str, s: Section, calendars: dict[str, Calendar],
                zone: str) -> Department:
    sla = DEFAULT_SLA
    if "sla" in s.mapping:
        t = _section(s.mapping, "sla", s.report, ("first_response", "resolution"), f"{s.what}.sla")
        sla = Sla(t.duration("first_response", DEFAULT_SLA.first_response),
                  t.duration("resolution", DEFAULT_SLA.resolution))
    department = Department(
        key=key,
        name=s.text("name", key),
        address=s.address("address", REQUIRED),
        sla=sla,
        members=s.addresses("members"),
        manager=s.address("manager", ""),
        calendar=s.get("calendar", around_the_clock(zone), _known(calendars),
                       "the name of a calendar under 'calendars:'"),
    )
    for target in ("first_response", "resolution"):
        _falls_due(s, "sla", f"{s.what}.sla.{target}", department.calendar,
                   getattr(department.sla, target))
    return department


def _falls_due(s: Section, key: str, name: str, calendar: Calendar, wait: timedelta) -> None:
    """`wait` of working time must end within the days `calendar` can look ahead."""
    if calendar.hours is not None and not any(calendar.hours):
        return  # a calendar without working hours is reported as such
    try:
        calendar.add(TRIAL_START, wait)
    except (ValueError, OverflowError) as exc:
        s.fail(key, f"{name}: {exc}", "a shorter time, or a calendar with more working days")


def _known(calendars: dict[str, Calendar]) -> Callable[[Any], Calendar]:
    def check(value: Any) -> Calendar:
        name = located.text(value)
        if name not in calendars:
            close = located.did_you_mean(name, calendars)
            raise ValueError(f"unknown calendar {name!r}" + (f"; {close}" if close else ""))
        return calendars[name]
    return check


def _calendars(top: Mapping, report: Report, zone: str) -> dict[str, Calendar]:
    value = top.get("calendars")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        report.add(top.at("calendars"), "calendars must map a name to each calendar",
                   "e.g. jakarta: {timezone: Asia/Jakarta, hours: {mon-fri: '08:00-17:00'}}")
        return {}
    return {name: _calendar(name, _section(value, name, report, CALENDAR_KEYS,
                                           f"calendars.{name}"), zone) for name in value}


def _calendar(name: str, s: Section, zone: str) -> Calendar:
    holidays = None
    if "holidays" in s.mapping:
        holidays = _holidays(_section(s.mapping, "holidays", s.report, HOLIDAY_KEYS,
                                      f"{s.what}.holidays"))
    return Calendar(
        name=name,
        timezone=s.get("timezone", zone, _zone, "a time zone like Asia/Jakarta"),
        hours=_week(_section(s.mapping, "hours", s.report, (), f"{s.what}.hours")),
        holidays=holidays,
        closed=frozenset(s.get("closed", [], _dates, "a list of dates like [2026-12-24]")),
    )


def _week(s: Section) -> tuple[tuple[Span, ...], ...]:
    """The `hours:` mapping ('mon-thu': '08:00-12:00,13:00-17:00') as spans per weekday."""
    week: list[tuple[Span, ...] | None] = [None] * 7
    wrong = False
    for key in s.mapping:
        days = _weekdays(key)
        spans = s.get(key, None, parse_hours, "working hours like '08:00-12:00,13:00-17:00'")
        if days is None:
            s.fail(key, f"{s.what}: {key!r} is not a weekday or a range of them",
                   "use mon, tue, wed, thu, fri, sat, sun or a range like mon-fri")
        wrong = wrong or days is None or spans is None
        for day in days or ():
            if week[day] is not None:
                s.fail(key, f"{s.what}: {WEEKDAYS[day]} is given working hours twice")
            week[day] = spans or ()
    result = tuple(spans or () for spans in week)
    if not any(result) and not wrong:
        s.report.add(s.mapping.where, f"{s.what}: the calendar has no working hours",
                     "e.g. hours: {mon-fri: '08:00-17:00'}")
    return result


def _weekdays(key: str) -> list[int] | None:
    first, dash, last = str(key).strip().lower().partition("-")
    if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
        return None
    start, end = WEEKDAYS.index(first), WEEKDAYS.index(last if dash else first)
    return list(range(start, end + 1)) if start <= end else None


def _holidays(s: Section) -> Holidays | None:
    country = s.text("country", REQUIRED)
    if not country:
        return None
    wanted = Holidays(country.upper(), s.text("subdivision", "") or None,
                      tuple(s.texts("categories", "a list like [public, government]"))
                      or ("public",))
    try:
        wanted.table()
    except NotImplementedError as exc:
        key = "subdivision" if "subdiv" in str(exc).lower() else "country"
        s.fail(key, f"{s.what}.{key}: {exc}",
               "use the codes of the `holidays` package: a country like ID or NL, and only "
               "a subdivision the package lists for that country")
        return None
    except ValueError as exc:
        s.fail("categories", f"{s.what}.categories: {exc}", "e.g. [public, government]")
        return None
    return wanted


def _dates(value: Any) -> list[date]:
    if not isinstance(value, list):
        value = [value]
    found = []
    for item in value:
        if isinstance(item, date) and not isinstance(item, datetime):
            found.append(item)
            continue
        try:
            found.append(date.fromisoformat(located.text(item)))
        except ValueError:
            raise ValueError(f"{item!r} is not a date like 2026-12-24") from None
    return found


def _reminders(s: Section) -> tuple[int, ...]:
    return tuple(sorted(set(s.get("reminders", [50, 80], _percents,
                                  "a list of percentages like [50%, 80%]"))))


def _percents(value: Any) -> list[int]:
    if not isinstance(value, list):
        value = [value]
    found = []
    for item in value:
        number = str(item).strip().rstrip("%").strip()
        if isinstance(item, bool) or not number.isdecimal() or not 0 < int(number) < 100:
            raise ValueError(f"{item!r} is not a percentage between 1% and 99%")
        found.append(int(number))
    return found


def _survey(s: Section) -> Survey:
    return Survey(after=s.duration("after", Survey.after),
                  quiet=timedelta(days=s.get("quiet_days", 7, _days,
                                             "a whole number of days, 0 or more")))


def _log_format(top: Mapping, report: Report) -> str:
    """logging.format, optional: text (the default) or json."""
    if "logging" not in top:
        return "text"
    s = _section(top, "logging", report, ("format",))
    return str(s.choice("format", LOG_FORMATS, "text"))


def _metrics(top: Mapping, report: Report) -> MetricsEndpoint | None:
    """metrics.listen, optional: where the Prometheus endpoint listens; None for none."""
    if "metrics" not in top:
        return None
    s = _section(top, "metrics", report, ("listen",))
    listen: MetricsEndpoint | None = s.get("listen", REQUIRED, _endpoint,
                                           "HOST:PORT like 127.0.0.1:9464")
    return listen


def _endpoint(value: Any) -> MetricsEndpoint:
    host, colon, port = located.text(value).rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:9464
    if not colon or not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT with a port from 1 to 65535")
    return MetricsEndpoint(host, int(port))


def log_format(path: Path) -> str:
    """The log format the config at `path` names, read before the config is checked;
    "text" when it cannot be read or names none (its check reports why)."""
    try:
        top = located.load(Path(path))
    except ConfigError:
        return "text"
    section = top.get("logging") if isinstance(top, Mapping) else None
    form = section.get("format") if isinstance(section, Mapping) else None
    return form if form in LOG_FORMATS else "text"


def _section(parent: Mapping, key: str, report: Report, allowed: tuple[str, ...] = (),
             what: str = "") -> Section:
    """The mapping at `key`; if it is not one, that is reported once and its reads go nowhere."""
    what, value = what or key, parent.get(key)
    if isinstance(value, Mapping):
        if allowed:
            report.unknown_keys(value, allowed, what)
        return Section(value, what, report)
    if key in parent:
        report.add(parent.at(key), f"{what} must be a mapping of key: value")
    else:
        report.add(parent.where, f"missing section {what!r}", "see config/mailroom.example.yaml")
    return Section(Mapping.empty(parent.at(key)), what, Report())


def _departments(top: Mapping, report: Report, calendars: dict[str, Calendar],
                 zone: str) -> dict[str, Department]:
    value = top.get("departments")
    if not isinstance(value, Mapping) or not value:
        report.add(top.at("departments"), "departments must map a short key to each department",
                   "e.g. hr: {name: ..., address: ...}")
        return {}
    return {key: _department(key, _section(value, key, report, DEPARTMENT_KEYS,
                                           f"departments.{key}"), calendars, zone)
            for key in value}


def _database_url(s: Section, base: Path) -> str:
    """SQLite (a relative path is beside the config) or PostgreSQL (through psycopg)."""
    url: str = s.text("url", REQUIRED) or ""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:" and not url.startswith(prefix + "/"):
        url = prefix + str((base / url[len(prefix):]).resolve())
    scheme = url.partition("://")[0]
    if scheme in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + url.partition("://")[2]
    elif url and scheme not in ("sqlite", "postgresql+psycopg"):
        s.fail("url", f"database.url {scheme!r} is not a database mailroom works with",
               "sqlite:///mailroom.db, or postgresql://user:password@host/dbname")
    if url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
        s.fail("url", "database.url names PostgreSQL, and its driver psycopg is not installed",
               "pip install 'mailroom[postgres]'")
    return url


def load(path: Path) -> Config:
    """Read and check the config file at `path`; raise ConfigError listing every problem."""
    path = Path(path)
    top = located.require_mapping(located.load(path), Where(str(path), 1, 1), "the config")
    base, report = path.resolve().parent, Report()
    report.unknown_keys(top, TOP_KEYS, "the config")
    tops = Section(top, "the config", report)
    service = _service(_section(top, "service", report, SERVICE_KEYS), base)
    calendars = _calendars(top, report, service.timezone)
    survey = _section(top, "survey", report, ("after", "quiet_days")) if "survey" in top \
        else Section(Mapping.empty(top.where), "survey", report)  # optional, unlike the rest
    config = Config(
        path=path,
        service=service,
        inbox=_inbox(_section(top, "inbox", report), base),
        outgoing=_outgoing(_section(top, "outgoing", report), base),
        database_url=_database_url(_section(top, "database", report, ("url",)), base),
        rules_path=tops.get("rules", REQUIRED, _path(base), PATH),
        templates_path=tops.get("templates", REQUIRED, _path(base), PATH),
        departments=_departments(top, report, calendars, service.timezone),
        calendars=calendars,
        reminders=_reminders(Section(top, "", report)),
        survey=_survey(survey),
        log_format=_log_format(top, report),
        metrics=_metrics(top, report),
    )
    for calendar in {d.calendar.name: d.calendar for d in config.departments.values()}.values():
        _falls_due(survey, "after", "survey.after", calendar, config.survey.after)
    report.raise_if_any()
    warn_if_exposed(path, top)
    return config


def warn_if_exposed(path: Path, top: Mapping) -> bool:
    """Warn once when the file holds a plain password or secret that others may read."""
    plain = plain_secrets(top)
    try:
        exposed = bool(plain) and bool(path.stat().st_mode & SHOWN_TO_OTHERS)
    except OSError:
        return False
    if exposed:
        log.warning("%s: readable by others and holds a plain password (%s); chmod 600 it or "
                    "use env:/file:", path, ", ".join(plain))
    return exposed


def plain_secrets(top: Mapping) -> list[str]:
    """The keys holding a password or secret written into the file itself, not env: or file:."""
    found = []
    for section, key in SECRET_KEYS:
        values = top.get(section)
        value = values.get(key) if isinstance(values, Mapping) else None
        if isinstance(value, str) and not value.strip().startswith(("env:", "file:")):
            found.append(f"{section}.{key}")
    return found


def default_path() -> Path:
    """The config file named by MAILROOM_CONFIG, else /etc/mailroom/mailroom.yaml."""
    return Path(os.environ.get("MAILROOM_CONFIG", "/etc/mailroom/mailroom.yaml"))
