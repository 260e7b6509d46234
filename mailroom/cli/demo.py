"""`mailroom demo`: a week of the service played on a local Maildir, to see what it does."""

from __future__ import annotations

import argparse
import email
import logging
import mailbox
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.engine import make_url

from mailroom import config as config_file
from mailroom import sla, thread
from mailroom.cli.common import EX_USAGE, cut, env_clock, table
from mailroom.clock import Clock
from mailroom.daemon import Daemon
from mailroom.store.models import Message, Outgoing, Request

SOURCE_TREE = Path(__file__).resolve().parents[2]  # config/ and var/ of a checkout
TICK = timedelta(minutes=15)  # how often the daemon looks while the office is open
DAY_STARTS, DAY_ENDS = time(7, 30), time(17, 30)
WEEK = 5


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    summary = "play a week of the service on the demo's own inbox and show what happened"
    command = commands.add_parser("demo", help=summary, description=summary)
    command.set_defaults(command=demo)


def demo(args: argparse.Namespace) -> int:
    """Reset the demo's folder, play the week of demo-mail/week.yaml, report what happened."""
    logging.getLogger().setLevel(logging.WARNING)
    path = args.config or Path("config/demo.yaml")
    config = config_file.load(path)
    refusal = demo_refusal(config)
    if refusal:
        print(f"mailroom demo: {refusal}", file=sys.stderr)
        return EX_USAGE
    _reset_demo(config)
    week = Week(config, path.parent / "demo-mail", last_monday(env_clock().now(), config))
    daemon = Daemon(path, week.clock)
    try:
        week.play(daemon)
        print(_summary(daemon, week))
    finally:
        daemon.close()
    mailroom = f"{_program()} --config {path}"
    print(f"\nEvery mail it sent: {config.outgoing.path}/new/ (.eml files). See how the service "
          f"did:\n  {mailroom} report --format html --out report.html\n"
          f"and open report.html in a browser; `{mailroom} requests list` and "
          "`requests show REQ-000009` tell the story of each request (docs/operations.md).")
    return 0


def _program() -> str:
    """How the admin ran mailroom (.venv/bin/mailroom after `make demo`), to repeat it."""
    return sys.argv[0] if Path(sys.argv[0]).name == "mailroom" else "mailroom"


def last_monday(now: datetime, config: config_file.Config) -> date:
    """Day 0 of the demo's week: the Monday of the week before `now`, so all of it is past."""
    today = now.astimezone(config.service.zone).date()
    return today - timedelta(days=today.weekday() + 7)


@dataclass(frozen=True)
class Step:
    """One mail reaching the demo inbox: a new request, or a reply about one."""

    at: datetime
    request: str  # the name of the sample it is about, e.g. 01-slip-gaji
    what: dict[str, Any]


class StoryClock(Clock):
    """A clock the demo moves on."""

    def move_to(self, moment: datetime) -> None:
        self._at = moment


class Week:
    """The demo's week: its steps in time order, the inbox they go to, the daemon that runs."""

    def __init__(self, config: config_file.Config, folder: Path, monday: date) -> None:
        self.config, self.folder, self.monday = config, folder, monday
        assert config.inbox.path is not None
        config.inbox.path.parent.mkdir(parents=True, exist_ok=True)
        self.inbox = mailbox.Maildir(config.inbox.path, create=True)
        self.steps = self._steps()
        self.clock = StoryClock(self.steps[0].at if self.steps else self._moment(0, "08:00"))
        self.skipped: list[str] = []
        self.replies = 0

    def _moment(self, day: int, at: str) -> datetime:
        hour, minute = (int(part) for part in at.split(":"))
        local = datetime.combine(self.monday + timedelta(days=day), time(hour, minute),
                                 self.config.service.zone)
        return local.astimezone(self.config.service.zone)

    def _steps(self) -> list[Step]:
        story = self.folder / "week.yaml"
        written = yaml.safe_load(story.read_text()) if story.exists() else []
        steps = [Step(self._moment(s["day"], s["at"]), s["request"], s) for s in written]
        named = {s.request for s in steps if s.what.get("arrives")}
        steps += [Step(self._moment(0, "08:00"), mail.stem, {"arrives": True})
                  for mail in sorted(self.folder.glob("*.eml")) if mail.stem not in named]
        return sorted(steps, key=lambda s: s.at)

    def play(self, daemon: Daemon) -> None:
        """Run the daemon through the week, each step's mail delivered at its moment."""
        for moment in self._moments():
            self.clock.move_to(moment)
            for step in (s for s in self.steps if s.at == moment):
                self._deliver(daemon, step)
            daemon.run_once()

    def _moments(self) -> Iterator[datetime]:
        ticks = {self._moment(day, "00:00").replace(hour=t.hour, minute=t.minute)
                 for day in range(WEEK) for t in _ticks()}
        yield from sorted(ticks | {s.at for s in self.steps})

    def _deliver(self, daemon: Daemon, step: Step) -> None:
        mail = self._mail(daemon, step)
        if mail is None:
            self.skipped.append(f"{step.request} {sorted(step.what)}")
            return
        mail["Date"] = format_datetime(step.at)
        name = self.inbox.add(mail.as_bytes())
        arrived = step.at.timestamp()
        os.utime(Path(self.inbox._path) / "new" / name, (arrived, arrived))  # type: ignore[attr-defined]

    def _mail(self, daemon: Daemon, step: Step) -> EmailMessage | None:
        if step.what.get("arrives"):
            return self._request(step)
        with daemon.db.transaction() as session:
            request = session.scalars(select(Request).join(Request.messages).where(
                Message.message_id == _message_id(step.request))).first()
            if request is None:
                return None
            return self._reply(session, request, step.what)

    def _request(self, step: Step) -> EmailMessage:
        sample = self.folder / f"{step.request}.eml"
        if not sample.exists():
            return _written(step)
        message = email.message_from_bytes(sample.read_bytes(), policy=policy.default)
        del message["Date"]
        return message  # type: ignore[return-value]

    def _reply(self, session: Any, request: Request, what: dict[str, Any]) -> EmailMessage | None:
        if "staff" in what:
            sender, text = what["staff"], what["text"]
            department = self.config.departments[request.department]
            answered = _latest(session, request, lambda r: department.address in r.recipients)
        else:
            sender = request.requester
            text = what.get("rating") or what.get("requester") or what.get("autoreply", "")
            survey = "rating" in what
            answered = _latest(session, request, lambda r: request.requester in r.recipients
                               and (r.template == "survey") == survey)
        if answered is None:
            return None
        mail = EmailMessage()
        mail["From"], mail["Subject"] = sender, f"Re: {request.subject} [{request.reference}]"
        mail["To"] = thread.reply_address(request.reference, self.config.service)
        mail["In-Reply-To"] = mail["References"] = answered.message_id
        self.replies += 1
        mail["Message-ID"] = f"<demo-reply-{self.replies}@mail.contoh.co.id>"
        if "autoreply" in what:
            mail["Auto-Submitted"] = "auto-replied"
        mail.set_content(text)
        return mail


def _ticks() -> Iterator[time]:
    moment = datetime.combine(date.min, DAY_STARTS)
    while moment.time() <= DAY_ENDS:
        yield moment.time()
        moment += TICK


def _message_id(request: str) -> str:
    return f"<demo-{request}@mail.contoh.co.id>"


def _written(step: Step) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["Subject"] = step.what["from"], step.what["subject"]
    message["To"] = "Layanan Internal <layanan@contoh.co.id>"
    message["Message-ID"] = _message_id(step.request)
    message.set_content(step.what["text"])
    return message


def _latest(session: Any, request: Request, wanted: Any) -> Outgoing | None:
    rows = session.scalars(select(Outgoing).where(Outgoing.request_id == request.id)
                           .order_by(Outgoing.id.desc()))
    return next((row for row in rows if wanted(row)), None)


def _summary(daemon: Daemon, week: Week) -> str:
    config = daemon.settings.config
    with daemon.db.transaction() as session:
        requests = list(session.scalars(select(Request).order_by(Request.id)))
        rows = [_row(request, config) for request in requests]
        sent = session.query(Outgoing).filter(Outgoing.status == "sent").count()
    first, last = week.monday, week.monday + timedelta(days=WEEK - 1)
    lines = [f"A week of the service, {sla.local_date(first, 'en')} to "
             f"{sla.local_date(last, 'en')}: {len(requests)} requests, {sent} mails sent.\n",
             table(["reference", "requester", "subject", "department", "status",
                    "first response", "rating"], rows)]
    lines += [f"(a step of the story found nothing to answer: {s})" for s in week.skipped]
    return "\n".join(lines)


def _row(request: Request, config: config_file.Config) -> list[str]:
    seconds = request.first_response_seconds
    took = "-" if seconds is None else sla.in_words(timedelta(seconds=seconds), "en", working=True)
    return [request.reference, request.requester, cut(request.subject, 36), request.department,
            request.status, took, str(request.rating or "-")]


def demo_folder(config_path: Path) -> Path:
    """The one folder a demo may reset: var/ of the source tree for the shipped
    config/demo.yaml, else the folder named `demo` beside the config file."""
    path = config_path.resolve()
    return SOURCE_TREE / "var" if path == SOURCE_TREE / "config" / "demo.yaml" \
        else path.parent / "demo"


def demo_refusal(config: config_file.Config) -> str:
    """Why `demo` must not run with `config`, or '' when all it resets is in its own folder."""
    if config.inbox.kind != "maildir" or config.outgoing.kind != "maildir":
        return "it needs a config with a Maildir inbox and outgoing"
    folder = demo_folder(config.path)
    outside = [what for what, place in _demo_places(config).items()
               if place is None or not _strictly_inside(place, folder)]
    if not outside:
        return ""
    return (f"{config.path} is not a demo config: the demo deletes its inbox, outbox and "
            f"database, so they must all be in {folder}/, and its {_listed(outside)} "
            f"{'is' if len(outside) == 1 else 'are'} not; nothing was changed")


def _listed(names: list[str]) -> str:
    """'inbox', 'inbox and outbox', 'inbox, outbox and database'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _demo_places(config: config_file.Config) -> dict[str, Path | None]:
    return {"inbox": config.inbox.path, "outbox": config.outgoing.path,
            "database": _sqlite_file(config.database_url)}


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for any other database or one in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _strictly_inside(place: Path, folder: Path) -> bool:
    """Whether `place`, its links followed, lies below `folder` (and is not `folder` itself)."""
    place, folder = place.resolve(), folder.resolve()
    return place != folder and place.is_relative_to(folder)


def _reset_demo(config: config_file.Config) -> None:
    """Delete the demo's inbox, outbox and database; demo_refusal has kept them in its folder."""
    for folder in (config.inbox.path, config.outgoing.path):
        if folder is not None and folder.exists():
            shutil.rmtree(folder)
    database = _sqlite_file(config.database_url)
    if database is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
