"""The `mailroom` command: run, ingest, demo, check, rules, sla, requests, quarantine, outbox, ...

Each group of commands that reads the database for people has a module here; this one parses
the command line and holds the commands of the running service."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import undefer

from mailroom import clock as clocks
from mailroom import config as config_file
from mailroom import located, logs, rules, sla
from mailroom.cli.common import (
    EX_CONFIG,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_USAGE,
    close_databases,
    command,
    config_path,
    cut,
    database,
    env_clock,
    json_text,
    printable,
    progress,
    table,
    usage,
)
from mailroom.compose import template_sets
from mailroom.daemon import Daemon, Settings, known
from mailroom.errors import ConfigError, MessageError, TransientError
from mailroom.intake import QUARANTINED, Intake, Outcome, arrival
from mailroom.outbox import Outbox, transport_for
from mailroom.parse import Inbound, parse
from mailroom.sources.stdin import read_item
from mailroom.store.db import Database, LockedError, OldSchema
from mailroom.store.models import Event, Message, Request
from mailroom.store.models import Outgoing as Queued

log = logging.getLogger("mailroom")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(config_file.log_format(config_path(args)),
                   logging.DEBUG if args.verbose else logging.INFO)
    try:
        result: int = args.command(args)
        return result
    except OldSchema as exc:  # the admin upgrades the schema first: no restart helps (78)
        print(f"mailroom: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if args.command is ingest else EX_CONFIG
    except ConfigError as exc:  # an admin's mistake: systemd must not restart (78)
        print(exc, file=sys.stderr)
        return EX_TEMPFAIL if args.command is ingest else EX_CONFIG
    except LockedError as exc:  # another instance is at work: try again when it has stopped
        print(f"mailroom: {exc}; it does this work already", file=sys.stderr)
        return EX_TEMPFAIL
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # a fault or a bug: systemd restarts the service (70)
        log.error("unexpected error", exc_info=exc)
        print(f"mailroom: {type(exc).__name__}: {next(iter(str(exc).splitlines()), '')}",
              file=sys.stderr)
        return EX_TEMPFAIL if args.command is ingest else EX_SOFTWARE
    finally:
        close_databases()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailroom", description=__doc__)
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $MAILROOM_CONFIG, else "
                        "/etc/mailroom/mailroom.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run_cmd = command(commands, "run", run, "serve the inbox until stopped")
    run_cmd.add_argument("--once", action="store_true", help="drain the inbox once and exit")
    command(commands, "ingest", ingest, "take one message on standard input (MTA pipe)")
    from mailroom.cli import demo
    demo.add_commands(commands)
    command(commands, "check", check, "check config, rules and templates")
    from mailroom.cli import history
    history.add_commands(commands)
    _rules_commands(commands)
    _sla_commands(commands)
    _quarantine_commands(commands)
    _outbox_commands(commands)
    from mailroom.cli import report
    report.add_commands(commands)
    from mailroom.cli import kb
    kb.add_commands(commands)
    from mailroom.cli import status
    status.add_commands(commands)
    db = command(commands, "db", lambda a: usage(db), "database maintenance")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    command(db_commands, "upgrade", db_upgrade, "bring the schema up to date")
    return parser


def _rules_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = command(commands, "rules", lambda a: usage(group), "check and explain routing rules")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    checking = command(actions, "check", rules_check, "check a rules file")
    checking.add_argument("file", nargs="?", type=Path, help="rules file (default: the config's)")
    testing = command(actions, "test", rules_test, "explain where messages would be routed")
    testing.add_argument("messages", nargs="+", type=Path, metavar="MSG.eml")
    testing.add_argument("--rules", type=Path, help="rules file (default: the config's)")
    testing.add_argument("--json", action="store_true", help="print a JSON list")
    replay = command(actions, "replay", rules_replay,
                      "show where stored requests would go with the given rules")
    replay.add_argument("--rules", type=Path, help="candidate rules file (default: the config's)")
    replay.add_argument("--since", default="30d", help="how far back, e.g. 7d, 12w (default 30d)")


def _sla_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = command(commands, "sla", lambda a: usage(group), "business-time due dates")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    preview = command(actions, "preview", sla_preview,
                       "the due times a request arriving at a given time would get")
    preview.add_argument("--department", required=True, help="department key, e.g. hr")
    preview.add_argument("--at", help="arrival, in the department's local time, e.g. "
                         "'2026-12-24 16:30' (default: now)")
    preview.add_argument("--json", action="store_true",
                         help="print {first_response_due, resolution_due} in ISO 8601")


def _quarantine_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = command(commands, "quarantine", lambda a: usage(group),
                     "messages that could not be handled")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    listing = command(actions, "list", quarantine_list, "quarantined messages, newest first")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    showing = command(actions, "show", quarantine_show,
                       "one quarantined message: its headers, reason and size")
    showing.add_argument("id", type=int, metavar="ID")
    showing.add_argument("--raw", action="store_true",
                         help="write only its raw bytes to standard output")
    releasing = command(actions, "release", quarantine_release,
                         "take quarantined messages through intake again, after a fix")
    releasing.add_argument("ids", type=int, nargs="*", metavar="ID")
    releasing.add_argument("--all", action="store_true",
                           help="every quarantined message, oldest first")


def _outbox_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = command(commands, "outbox", lambda a: usage(group), "mail not sent yet or failed")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    listing = command(actions, "list", outbox_list, "pending and failed mail")
    listing.add_argument("--failed", action="store_true", help="only the failed mail")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    retrying = command(actions, "retry", outbox_retry,
                        "send a failed or pending mail with the next outbox round")
    retrying.add_argument("id", type=int, metavar="ID")


def run(args: argparse.Namespace) -> int:
    clock = env_clock(running=not args.once)
    if clock.fixed:
        log.warning("MAILROOM_NOW fixes the clock at %s: this run shows what a run then would "
                    "do and send", clock.now().isoformat())
    daemon = Daemon(config_path(args), clock)
    if not args.once:
        daemon.serve()
        return 0
    try:
        daemon.run_once()
        waiting = daemon.outbox.waiting()
    finally:
        daemon.close()
    return _unsent(waiting)


def _unsent(waiting: int) -> int:
    """0 when the outbox is empty; else 75, with a line saying how many mails wait."""
    if not waiting:
        return 0
    print(f"mailroom: {waiting} mail{'s' * (waiting != 1)} could not be sent yet and wait in "
          "the outbox (`mailroom outbox list` says why); `mailroom run` or the next "
          "`run --once` sends them", file=sys.stderr)
    return EX_TEMPFAIL


def ingest(args: argparse.Namespace) -> int:
    """Exit 0 once the message has a recorded outcome, 75 (try again later) otherwise; then
    send what it caused (mail the server defers is left to the running service)."""
    clock = env_clock()
    item = read_item(sys.stdin.buffer, arrived=clock.now())  # the MTA's hand-over
    try:
        settings = Settings.load(config_path(args))
        db = database(settings.config)
        outcome = Intake(settings.config, settings.ruleset, db, clock).process(item)
    except TransientError as exc:
        print(f"mailroom: {exc}; the MTA should try again later", file=sys.stderr)
        return EX_TEMPFAIL
    except Exception as exc:  # an MTA must hear "try later", never lose the message
        log.exception("ingest failed")
        print(f"mailroom: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    log.info("stdin: %s", outcome)
    _send_now(settings, db, clock, outcome)
    return 0


def _send_now(settings: Settings, db: Database, clock: clocks.Clock, outcome: Outcome) -> None:
    """Send the mail the message caused; any failure leaves it to the running service."""
    config = settings.config
    instance = None
    try:
        instance = db.passing()
        outbox = Outbox(db, config, settings.composer, transport_for(config.outgoing), clock,
                        instance)
        result = outbox.flush(about=outcome.message_row)
    except Exception as exc:  # the message is recorded: the MTA must not deliver it again
        log.warning("sending after ingest failed; the running service sends it: %s", exc)
        return
    finally:
        if instance is not None:
            instance.release()
    if result.deferred or result.held:
        log.warning("%d mails wait in the outbox; the running service sends them",
                    result.deferred + result.held)


def check(args: argparse.Namespace) -> int:
    settings = Settings.load(config_path(args))
    print(f"{settings.config.path}: ok ({len(settings.config.departments)} departments)")
    print(f"{settings.config.rules_path}: ok ({len(settings.ruleset.rules)} rules, "
          f"version {settings.ruleset.version})")
    print(f"{settings.config.templates_path}: ok")
    return 0


def rules_check(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    path = args.file or config.rules_path
    try:
        ruleset = rules.load(path, known(config, template_sets(config.templates_path)))
    except ConfigError as exc:
        print(exc)
        return 1
    print(f"{path}: ok, {len(ruleset.rules)} rules and a fallback (version {ruleset.version})")
    return 0


def _ruleset(args: argparse.Namespace) -> tuple[config_file.Config, rules.RuleSet]:
    config = config_file.load(config_path(args))
    path = args.rules or config.rules_path
    return config, rules.load(path, known(config, template_sets(config.templates_path)))


def rules_test(args: argparse.Namespace) -> int:
    config, ruleset = _ruleset(args)
    now = env_clock().now()
    results = []
    for path in args.messages:
        try:
            inbound = parse(path.read_bytes(), config.service.language)
        except (OSError, MessageError) as exc:
            print(f"{path}: cannot read as mail: {exc}", file=sys.stderr)
            return 1
        results.append(explained(path, rules.route(ruleset, inbound, arrival(inbound, now),
                                                   explain=True)))
    print(json.dumps(results, indent=2, ensure_ascii=False) if args.json
          else "\n\n".join(_explanation(r, ruleset) for r in results))
    return 0


def sla_preview(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    department = config.departments.get(args.department)
    if department is None:
        print(f"mailroom: unknown department {args.department!r}; "
              f"{located.did_you_mean(args.department, config.departments)}", file=sys.stderr)
        return 2
    calendar = department.calendar
    try:
        arrival = _local_moment(args.at, calendar.zone) if args.at else \
            env_clock().now()
    except ValueError:
        print(f"mailroom: --at {args.at!r} is not a time like '2026-12-24 16:30'",
              file=sys.stderr)
        return 2
    due = sla.due_times(calendar, arrival, department.sla.first_response,
                        department.sla.resolution)
    if args.json:
        print(json.dumps({"first_response_due": due.first_response.astimezone(
            calendar.zone).isoformat(), "resolution_due": due.resolution.astimezone(
            calendar.zone).isoformat()}))
        return 0
    print(sla_explained(department, arrival, due))
    return 0


def _local_moment(text: str, zone: ZoneInfo) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def sla_explained(department: config_file.Department, arrival: datetime, due: sla.Due) -> str:
    """The preview as an admin reads it: arrival, when the clock starts, each due time."""
    calendar, zone = department.calendar, department.calendar.zone
    working = not calendar.always
    opening = calendar.next_opening(arrival)
    local = arrival.astimezone(zone).date()
    closed = calendar.holiday(local) or ("" if calendar.works_on(local) else "no working hours")
    lines = [f"{department.key} ({department.name}), calendar {calendar.name} "
             f"({calendar.timezone})",
             f"  arrives         {sla.local_time(arrival, zone, 'en')}"]
    if opening != arrival:
        why = f" ({closed})" if closed else ""
        lines.append(f"  clock starts    {sla.local_time(opening, zone, 'en')}: out of hours{why}")
    for what, target, moment in (
            ("first response", department.sla.first_response, due.first_response),
            ("resolution", department.sla.resolution, due.resolution)):
        lines.append(f"  {what:<15} {sla.local_time(moment, zone, 'en')}"
                     f"  ({sla.in_words(target, 'en', working)})")
    return "\n".join(lines)


def explained(path: Path, route: rules.Route) -> dict[str, object]:
    """One `rules test` result as plain data (the --json format)."""
    return {
        "file": str(path), "rule": route.rule, "department": route.department,
        "priority": route.priority, "category": route.category, "tags": list(route.tags),
        "watchers": list(route.watchers), "ignore": route.ignore,
        "rules_version": route.rules_version,
        "trace": [{"rule": s.rule, "matched": s.matched, "why": s.why} for s in route.trace],
    }


def _explanation(result: dict[str, Any], ruleset: rules.RuleSet) -> str:
    decision = (f"ignored: {result['ignore']}" if result["ignore"] else
                f"department {result['department']}, priority {result['priority']}, "
                f"category {result['category'] or '-'}, tags {', '.join(result['tags']) or '-'}")
    lines = [f"{result['file']}", f"  rule {result['rule']!r} ({ruleset.path} @{ruleset.version})",
             f"  {decision}"]
    if result["watchers"]:
        lines.append(f"  cc {', '.join(result['watchers'])}")
    lines += [f"    {'yes' if s['matched'] else 'no ':3}  {s['rule']}: {s['why'][4:].lstrip()}"
              for s in result["trace"]]
    if result["rule"] == "fallback":
        lines.append("    no rule matched: the fallback decides")
    return "\n".join(lines)


def rules_replay(args: argparse.Namespace) -> int:
    config, ruleset = _ruleset(args)
    span = config_file.parse_duration(args.since)
    if span is None:
        print(f"mailroom: --since {args.since!r} is not a duration like 30d", file=sys.stderr)
        return 2
    since = env_clock().now() - span
    replayed = select(Request).where(Request.created_at >= since)
    with database(config).transaction() as session:
        total = session.scalar(select(func.count()).select_from(replayed.subquery())) or 0
        changes = [_replayed(request, ruleset, config) for request in progress(
            session.scalars(replayed.order_by(Request.id)), total, "replaying the rules")]
    print(replay_report(changes, ruleset, args.since))
    return 0


def _replayed(request: Request, ruleset: rules.RuleSet, config: config_file.Config
              ) -> tuple[str, str, str, str, str]:
    first = request.messages[0] if request.messages else None
    inbound = parse(first.raw, config.service.language) if first and first.raw else None
    route = rules.route(ruleset, inbound, request.received_at) if inbound else None
    now = ("(ignored)" if route and route.ignore else route.department) if route else "?"
    return (request.reference, request.department, now, request.rule,
            route.rule if route else "(no stored message)")


def replay_report(changes: list[tuple[str, str, str, str, str]], ruleset: rules.RuleSet,
                  since: str) -> str:
    """Counts by old -> new department, then each request that would move."""
    moved = [c for c in changes if c[1] != c[2]]
    counts: dict[tuple[str, str], int] = {}
    for change in changes:
        counts[(change[1], change[2])] = counts.get((change[1], change[2]), 0) + 1
    lines = [f"{len(changes)} requests in the last {since}, replayed with {ruleset.path} "
             f"@{ruleset.version}: {len(moved)} would go elsewhere", "",
             table(["was", "would be", "requests"],
                   [[a, b, str(n)] for (a, b), n in sorted(counts.items())])]
    if moved:
        lines += ["", table(["reference", "was", "rule", "would be", "rule"],
                            [[r, a, ra, b, rb] for r, a, b, ra, rb in moved])]
    return "\n".join(lines)


def db_upgrade(args: argparse.Namespace) -> int:
    db = Database(config_file.load(config_path(args)).database_url)
    try:
        db.upgrade()
    finally:
        db.close()
    print("database schema is up to date")
    return 0


def quarantine_list(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    zone = config.service.zone
    with database(config).transaction() as session:
        found = list(session.scalars(select(Message).options(undefer(Message.raw)).where(
            Message.direction == "in", Message.outcome == QUARANTINED)
            .order_by(Message.created_at.desc(), Message.id.desc())))
        if args.json:
            print(json_text([quarantined(m, zone) for m in found]))
            return 0
        rows = [_quarantine_row(m, zone) for m in found]
    print(table(["id", "when", "sender", "subject", "reason"], rows))
    return 0


def _quarantine_row(message: Message, zone: ZoneInfo) -> list[str]:
    sender, subject = _sender_and_subject(message)
    return [str(message.id), sla.local_time(message.created_at, zone, "en"), sender or "-",
            cut(subject, 40), cut(message.reason, 60)]


def quarantined(message: Message, zone: ZoneInfo) -> dict[str, Any]:
    """One `quarantine list` entry as plain data (the --json format); times in `zone`."""
    sender, subject = _sender_and_subject(message)
    return {"id": message.id, "quarantined_at": message.created_at.astimezone(zone).isoformat(),
            "sender": sender, "subject": subject, "reason": message.reason,
            "size": len(message.raw or b"")}


def _sender_and_subject(message: Message) -> tuple[str, str]:
    """As recorded, else as far as its raw bytes tell (an internal error records neither)."""
    if message.sender or message.subject:
        return message.sender, message.subject
    inbound = readable(message.raw or b"")
    return (inbound.sender, inbound.subject) if inbound else ("", "")


def readable(raw: bytes) -> Inbound | None:
    """The message as intake reads it, or None when it cannot be read."""
    try:
        return parse(raw)
    except Exception:  # not mail, or what quarantined it: it is listed all the same
        return None


def quarantine_show(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    with database(config).transaction() as session:
        message = session.get(Message, args.id)
        if message is None or message.outcome != QUARANTINED:
            print(_not_quarantined(message, args.id), file=sys.stderr)
            return 1
        raw = message.raw or b""
        report = quarantine_report(message, raw, config.service.zone)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
    else:
        print(report)
    return 0


def _not_quarantined(message: Message | None, message_row: int) -> str:
    if message is None or message.direction != "in":
        return f"mailroom: no inbound message #{message_row}"
    now = " ".join(p for p in (message.outcome, message.request.reference if message.request
                               else "", message.reason) if p)
    return f"mailroom: message #{message_row} is not quarantined; its outcome is {now}"


def quarantine_report(message: Message, raw: bytes, zone: ZoneInfo) -> str:
    """What an admin needs to judge a quarantined message, before its raw bytes."""
    lines = [f"message #{message.id}, quarantined {sla.local_time(message.created_at, zone, 'en')}",
             f"  reason      {message.reason}", f"  size        {len(raw)} bytes"]
    if message.mailbox:
        lines.append(f"  source      {message.mailbox} {message.uid or ''}".rstrip())
    inbound = readable(raw)
    if inbound is None:
        return "\n".join([*lines, "  headers     none readable as mail"])
    for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID"):
        if inbound.header(name):
            lines.append(f"  {name + ':':<11} {inbound.header(name)}")
    return printable("\n".join(lines))  # what the sender wrote drives no terminal


def quarantine_release(args: argparse.Namespace) -> int:
    """Release each message named (or all); 1 if any was not quarantined or still is."""
    if bool(args.ids) == args.all:
        print("mailroom: name the messages to release (ID ...) or give --all", file=sys.stderr)
        return EX_USAGE
    settings = Settings.load(config_path(args))
    db = database(settings.config)
    intake = Intake(settings.config, settings.ruleset, db, env_clock())
    message_rows = args.ids or _quarantined_rows(db)
    released = [_release(intake, db, row) for row in progress(
        message_rows, len(message_rows), "releasing quarantined messages")]
    return 0 if all(released) else 1


def _quarantined_rows(db: Database) -> list[int]:
    with db.transaction() as session:
        return list(session.scalars(select(Message.id).where(
            Message.direction == "in", Message.outcome == QUARANTINED).order_by(Message.id)))


def _release(intake: Intake, db: Database, message_row: int) -> bool:
    """Take one quarantined message through intake again; whether it left the quarantine."""
    with db.transaction() as session:
        message = session.get(Message, message_row)
        if message is None or message.outcome != QUARANTINED:
            print(_not_quarantined(message, message_row), file=sys.stderr)
            return False
    try:
        outcome = intake.release(message_row)
    except (LookupError, ValueError) as exc:  # gone or released meanwhile
        print(f"mailroom: {exc}", file=sys.stderr)
        return False
    moved = f" (recorded as message #{outcome.message_row})" \
        if outcome.message_row not in (0, message_row) else ""
    print(f"message #{message_row}: {outcome}{moved}")
    if outcome.kind == QUARANTINED:
        print(f"mailroom: message #{message_row} is still quarantined", file=sys.stderr)
        return False
    return True


def outbox_list(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    zone = config.service.zone
    statuses = ("failed",) if args.failed else ("pending", "failed")
    with database(config).transaction() as session:
        found = list(session.scalars(select(Queued).where(Queued.status.in_(statuses))
                                     .order_by(Queued.id)))
        if args.json:
            print(json_text([queued(q, zone) for q in found]))
            return 0
        rows = [_outbox_row(q, zone) for q in found]
    print(table(["id", "status", "template", "request", "to", "attempts", "next attempt",
                 "last error"], rows))
    return 0


def _outbox_row(row: Queued, zone: ZoneInfo) -> list[str]:
    due = sla.local_time(row.next_attempt_at, zone, "en") if row.status == "pending" else "-"
    return [str(row.id), row.status, row.template, row.request.reference if row.request else "-",
            cut(", ".join(row.recipients), 40), str(row.attempts), due,
            cut(row.last_error, 60) or "-"]


def queued(row: Queued, zone: ZoneInfo) -> dict[str, Any]:
    """One `outbox list` entry as plain data (the --json format); times in `zone`."""
    waiting = row.status == "pending"
    return {"id": row.id, "status": row.status, "template": row.template,
            "request": row.request.reference if row.request else "", "to": list(row.recipients),
            "cc": list(row.cc), "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at.astimezone(zone).isoformat() if waiting
            else None, "last_error": row.last_error}


def outbox_retry(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    now = env_clock().now()
    with database(config).transaction() as session:
        row = session.get(Queued, args.id)
        if row is None or row.status == "sent":
            print(_not_retried(row, args.id, config.service.zone), file=sys.stderr)
            return 1
        retry(row, now)
        about = f"{row.template} to {', '.join(row.recipients)}"
    print(f"outbox mail #{args.id} ({about}) is pending again: it goes with the next outbox "
          "round")
    return 0


def _not_retried(row: Queued | None, row_id: int, zone: ZoneInfo) -> str:
    if row is None:
        return f"mailroom: no outbox mail #{row_id}"
    when = sla.local_time(row.sent_at, zone, "en") if row.sent_at else "already"
    return f"mailroom: outbox mail #{row_id} was sent {when}; there is nothing to retry"


def retry(row: Queued, now: datetime) -> None:
    """Make a failed or pending mail due now, its attempts kept, and note it on its request."""
    was = row.status
    row.status, row.next_attempt_at = "pending", now
    if row.request is not None:
        row.request.events.append(Event(
            at=now, kind="mail retried by admin", actor="admin",
            detail={"outbox": row.id, "template": row.template, "was": was,
                    "attempts": row.attempts, "last_error": row.last_error}))

