"""The `mailroom` command: run, ingest, demo, check, rules, requests, db."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import select

from mailroom import clock as clocks
from mailroom import config as config_file
from mailroom import rules, sla
from mailroom.compose import template_sets
from mailroom.daemon import Daemon, Settings, known
from mailroom.errors import ConfigError, TransientError
from mailroom.intake import Intake, Outcome
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


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _config_path(args: argparse.Namespace) -> Path:
    return args.config or config_file.default_path()


def _daemon(args: argparse.Namespace) -> Daemon:
    return Daemon(_config_path(args), clocks.from_environment())


def run(args: argparse.Namespace) -> int:
    daemon = _daemon(args)
    if args.once:
        daemon.run_once()
        daemon.close()
    else:
        daemon.serve()
    return 0


def ingest(args: argparse.Namespace) -> int:
    """Exit 0 once the message has a recorded outcome, 75 (try again later) otherwise."""
    item = read_item(sys.stdin.buffer)
    try:
        settings = Settings.load(_config_path(args))
        db = Database(settings.config.database_url)
        if db.is_sqlite:
            db.upgrade()
        outcome = Intake(settings.config, settings.ruleset, db, clocks.from_environment()
                         ).process(item)
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


def db_upgrade(args: argparse.Namespace) -> int:
    Database(config_file.load(_config_path(args)).database_url).upgrade()
    print("database schema is up to date")
    return 0


def list_requests(args: argparse.Namespace) -> int:
    config = config_file.load(_config_path(args))
    db = Database(config.database_url)
    with db.transaction() as session:
        found = session.scalars(select(Request).order_by(Request.id.desc()).limit(args.limit))
        rows = [_request_row(r, config) for r in found]
    print(table(["reference", "requester", "subject", "department", "rule", "status", "due"],
                rows))
    return 0


def _request_row(request: Request, config: config_file.Config) -> list[str]:
    due = sla.local_time(request.due_at, config.service.zone, "en")
    return [request.reference, request.requester, _cut(request.subject, 40), request.department,
            f"{request.rule} @{request.rules_version}", request.status, due]


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
            due = sla.local_time(request.first_response_due_at, config.service.zone, "en")
            rows.append([request.reference, request.requester, _cut(request.subject, 38),
                         request.department, request.rule, due])
    return table(["reference", "requester", "subject", "department", "rule", "first reply by"],
                 rows)
