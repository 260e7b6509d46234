"""The `mailroom` command: run, ingest, demo, check, rules, sla, requests, db."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailroom import clock as clocks
from mailroom import config as config_file
from mailroom import located, rules, sla
from mailroom.compose import template_sets
from mailroom.daemon import Daemon, Settings, known
from mailroom.errors import ConfigError, MessageError, TransientError
from mailroom.intake import Intake, Outcome, arrival
from mailroom.parse import parse
from mailroom.sources.maildir import MaildirSource
from mailroom.sources.stdin import read_item
from mailroom.store.db import Database
from mailroom.store.models import Request

EX_TEMPFAIL, EX_CONFIG = 75, 78
log = logging.getLogger("mailroom")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.command(args)
        return result
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_TEMPFAIL if args.command is ingest else EX_CONFIG
    except ValueError as exc:  # e.g. a malformed MAILROOM_NOW
        print(f"mailroom: {exc}", file=sys.stderr)
        return EX_CONFIG
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailroom", description=__doc__)
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $MAILROOM_CONFIG, else "
                        "/etc/mailroom/mailroom.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run_cmd = _command(commands, "run", run, "serve the inbox until stopped")
    run_cmd.add_argument("--once", action="store_true", help="drain the inbox once and exit")
    _command(commands, "ingest", ingest, "take one message on standard input (MTA pipe)")
    _command(commands, "demo", demo, "seed the demo inbox, run once, show what happened")
    _command(commands, "check", check, "check config, rules and templates")
    listing = _command(commands, "requests", list_requests, "list requests")
    listing.add_argument("--limit", type=int, default=50)
    _rules_commands(commands)
    _sla_commands(commands)
    db = _command(commands, "db", lambda a: _help(db), "database maintenance")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    _command(db_commands, "upgrade", db_upgrade, "bring the schema up to date")
    return parser


def _command(commands: argparse._SubParsersAction, name: str,  # type: ignore[type-arg]
             handler: Callable[[argparse.Namespace], int], summary: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=summary)
    sub.set_defaults(command=handler)
    return sub


def _rules_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = _command(commands, "rules", lambda a: _help(group), "check and explain routing rules")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    checking = _command(actions, "check", rules_check, "check a rules file")
    checking.add_argument("file", nargs="?", type=Path, help="rules file (default: the config's)")
    testing = _command(actions, "test", rules_test, "explain where messages would be routed")
    testing.add_argument("messages", nargs="+", type=Path, metavar="MSG.eml")
    testing.add_argument("--rules", type=Path, help="rules file (default: the config's)")
    testing.add_argument("--json", action="store_true", help="print a JSON list")
    replay = _command(actions, "replay", rules_replay,
                      "show where stored requests would go with the given rules")
    replay.add_argument("--rules", type=Path, help="candidate rules file (default: the config's)")
    replay.add_argument("--since", default="30d", help="how far back, e.g. 7d, 12w (default 30d)")


def _sla_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = _command(commands, "sla", lambda a: _help(group), "business-time due dates")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    preview = _command(actions, "preview", sla_preview,
                       "the due times a request arriving at a given time would get")
    preview.add_argument("--department", required=True, help="department key, e.g. hr")
    preview.add_argument("--at", help="arrival, in the department's local time, e.g. "
                         "'2026-12-24 16:30' (default: now)")
    preview.add_argument("--json", action="store_true",
                         help="print {first_response_due, resolution_due} in ISO 8601")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _config_path(args: argparse.Namespace) -> Path:
    return args.config or config_file.default_path()


def run(args: argparse.Namespace) -> int:
    clock = clocks.from_environment(running=not args.once)
    if clock.fixed:
        log.warning("MAILROOM_NOW fixes the clock at %s: this run shows what a run then would "
                    "do and send", clock.now().isoformat())
    daemon = Daemon(_config_path(args), clock)
    if args.once:
        daemon.run_once()
        daemon.close()
    else:
        daemon.serve()
    return 0


def ingest(args: argparse.Namespace) -> int:
    """Exit 0 once the message has a recorded outcome, 75 (try again later) otherwise."""
    clock = clocks.from_environment()
    item = read_item(sys.stdin.buffer, arrived=clock.now())  # the MTA's hand-over
    try:
        settings = Settings.load(_config_path(args))
        db = _database(settings.config)
        outcome = Intake(settings.config, settings.ruleset, db, clock).process(item)
    except TransientError as exc:
        print(f"mailroom: {exc}; the MTA should try again later", file=sys.stderr)
        return EX_TEMPFAIL
    except Exception as exc:  # an MTA must hear "try later", never lose the message
        log.exception("ingest failed")
        print(f"mailroom: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    log.info("stdin: %s", outcome)
    return 0


def check(args: argparse.Namespace) -> int:
    settings = Settings.load(_config_path(args))
    print(f"{settings.config.path}: ok ({len(settings.config.departments)} departments)")
    print(f"{settings.config.rules_path}: ok ({len(settings.ruleset.rules)} rules, "
          f"version {settings.ruleset.version})")
    print(f"{settings.config.templates_path}: ok")
    return 0


def rules_check(args: argparse.Namespace) -> int:
    config = config_file.load(_config_path(args))
    path = args.file or config.rules_path
    try:
        ruleset = rules.load(path, known(config, template_sets(config.templates_path)))
    except ConfigError as exc:
        print(exc)
        return 1
    print(f"{path}: ok, {len(ruleset.rules)} rules and a fallback (version {ruleset.version})")
    return 0


def _ruleset(args: argparse.Namespace) -> tuple[config_file.Config, rules.RuleSet]:
    config = config_file.load(_config_path(args))
    path = args.rules or config.rules_path
    return config, rules.load(path, known(config, template_sets(config.templates_path)))


def rules_test(args: argparse.Namespace) -> int:
    config, ruleset = _ruleset(args)
    now = clocks.from_environment().now()
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
    config = config_file.load(_config_path(args))
    department = config.departments.get(args.department)
    if department is None:
        print(f"mailroom: unknown department {args.department!r}; "
              f"{located.did_you_mean(args.department, config.departments)}", file=sys.stderr)
        return 2
    calendar = department.calendar
    try:
        arrival = _local_moment(args.at, calendar.zone) if args.at else \
            clocks.from_environment().now()
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
    since = clocks.from_environment().now() - span
    db = _database(config)
    with db.transaction() as session:
        changes = [_replayed(request, ruleset, config) for request in session.scalars(
            select(Request).where(Request.created_at >= since).order_by(Request.id))]
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


def _database(config: config_file.Config) -> Database:
    """The database, its schema brought up to date when it is the embedded SQLite."""
    db = Database(config.database_url)
    if db.is_sqlite:
        db.upgrade()
    return db


def db_upgrade(args: argparse.Namespace) -> int:
    Database(config_file.load(_config_path(args)).database_url).upgrade()
    print("database schema is up to date")
    return 0


def list_requests(args: argparse.Namespace) -> int:
    config = config_file.load(_config_path(args))
    db = _database(config)
    with db.transaction() as session:
        found = session.scalars(select(Request).order_by(Request.id.desc()).limit(args.limit))
        rows = [_request_row(r, config) for r in found]
    print(table(["reference", "requester", "subject", "department", "rule", "status", "assignee",
                 "due", "transfers"], rows))
    return 0


def _zone_of(request: Request, config: config_file.Config) -> ZoneInfo:
    """Where a request's times are read: its department's calendar, else the service's zone."""
    department = config.departments.get(request.department)
    return department.calendar.zone if department else config.service.zone


def _request_row(request: Request, config: config_file.Config) -> list[str]:
    due = sla.local_time(request.due_at, _zone_of(request, config), "en")
    return [request.reference, request.requester, _cut(request.subject, 40), request.department,
            f"{request.rule} @{request.rules_version}", request.status, request.assignee or "-",
            due, str(request.transfers)]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table with columns as wide as their widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def demo(args: argparse.Namespace) -> int:
    """Reset the demo's var/, seed its inbox with the sample mails, run once and report."""
    logging.getLogger().setLevel(logging.WARNING)
    path = args.config or Path("config/demo.yaml")
    config = config_file.load(path)
    if config.inbox.kind != "maildir" or config.outgoing.kind != "maildir":
        print("mailroom demo needs a config with Maildir inbox and outgoing", file=sys.stderr)
        return EX_CONFIG
    _reset_demo(config)
    seeded = _seed(config, path.parent / "demo-mail")
    daemon = Daemon(path, clocks.from_environment())
    outcomes = daemon.run_once()
    daemon.close()
    print(f"{seeded} sample mails in {config.inbox.path}\n")
    print(_demo_table(daemon, outcomes))
    print(f"\nAcknowledgments and forwards: {config.outgoing.path}/new/ (.eml files)")
    return 0


def _reset_demo(config: config_file.Config) -> None:
    for folder in (config.inbox.path, config.outgoing.path):
        if folder is not None and folder.exists():
            shutil.rmtree(folder)
    if config.database_url.startswith("sqlite:///"):
        database = Path(config.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)


def _seed(config: config_file.Config, folder: Path) -> int:
    assert config.inbox.path is not None
    inbox = MaildirSource(config.inbox.path)
    mails = sorted(folder.glob("*.eml"))
    for mail in mails:
        inbox.box.add(mail.read_bytes())
    return len(mails)


def _demo_table(daemon: Daemon, outcomes: list[Outcome]) -> str:
    config = daemon.settings.config
    rows = []
    with daemon.db.transaction() as session:
        for outcome in outcomes:
            request = session.scalars(select(Request).where(
                Request.messages.any(id=outcome.message_row))).first()
            if request is None:
                rows.append(["-", "", "", outcome.kind, outcome.reason, ""])
                continue
            due = sla.local_time(request.first_response_due_at, _zone_of(request, config), "en")
            rows.append([request.reference, request.requester, _cut(request.subject, 38),
                         request.department, f"{request.rule} @{request.rules_version}", due])
    return table(["reference", "requester", "subject", "department", "rule", "first reply by"],
                 rows)
