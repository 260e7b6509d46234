"""`mailroom kb search`: the solutions of solved requests, found by the words of a question."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailroom import config as config_file
from mailroom import knowledge
from mailroom.cli.common import (
    EX_USAGE,
    config_path,
    cut,
    database,
    how_many,
    json_text,
    table,
    unknown_department,
    usage,
)
from mailroom.knowledge import Solved

NO_MATCH = 1  # as grep: a search that finds nothing is not an error, and a script can tell
SOLUTION_WIDTH = 60


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    summary = "the solutions of solved requests (#resolve texts)"
    group = commands.add_parser("kb", help=summary, description=summary)
    group.set_defaults(command=lambda args: usage(group))
    actions = group.add_subparsers(required=True, metavar="ACTION")
    summary = "solved requests like the words given, best first"
    searching = actions.add_parser(
        "search", help=summary, description=summary,
        epilog=f"Exit status: 0 when a solved request matches, {NO_MATCH} when none does.")
    searching.add_argument("words", help='what to look for, e.g. "slip gaji"')
    searching.add_argument("--department", metavar="KEY",
                           help="only this department's (default: every department's)")
    searching.add_argument("--limit", type=how_many, default=5,
                           help="at most this many, 1 or more (default 5)")
    searching.add_argument("--json", action="store_true", help="print a JSON list")
    searching.set_defaults(command=search)


def search(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    if unknown_department(args.department, config):
        return EX_USAGE
    db = database(config)
    try:
        with db.transaction(durable=False) as session:
            found = knowledge.similar(session, args.words, limit=args.limit,
                                      department=args.department)
    finally:
        db.close()
    if args.json:
        print(json_text([_solved(s, config) for s in found]))
    elif found:
        print(table(["reference", "department", "resolved", "subject", "solution"],
                    [_row(s, config) for s in found]))
    else:
        print("no solved request matches")
    return 0 if found else NO_MATCH


def _resolved(solved: Solved, config: config_file.Config) -> datetime:
    """When it was resolved, in its department's time zone (else the service's)."""
    department = config.departments.get(solved.department)
    zone: ZoneInfo = department.calendar.zone if department else config.service.zone
    return solved.resolved_at.astimezone(zone)


def _solved(solved: Solved, config: config_file.Config) -> dict[str, Any]:
    return {"reference": solved.reference, "department": solved.department,
            "subject": solved.subject, "solution": solved.solution,
            "resolved_at": _resolved(solved, config).isoformat()}


def _row(solved: Solved, config: config_file.Config) -> list[str]:
    return [solved.reference, solved.department, f"{_resolved(solved, config):%Y-%m-%d %H:%M}",
            cut(solved.subject, 40), cut(" ".join(solved.solution.split()), SOLUTION_WIDTH)]
