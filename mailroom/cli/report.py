"""`mailroom report`: the figures of a period as rich tables, CSV or HTML, to stdout or a file."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailroom import config as config_file
from mailroom import reports
from mailroom.cli.common import (
    EX_USAGE,
    config_path,
    database,
    env_clock,
    printable,
    progress,
    span,
    unknown_department,
)
from mailroom.reports import DepartmentFigures, Group, Report, Times

DASH = "\u2013"
FIRST_YEAR, LAST_YEAR = 1900, 9998  # --until: times a century back and any zone can reach
WIDTH = 100  # columns of the text report when it is not shown on a terminal
LONG = 2000  # requests from which the departments' figures show a progress bar
CSV_COLUMNS = ("department", "name", "requests", "open", "first_response_count",
               "median_first_response_h", "p90_first_response_h", "first_response_met_pct",
               "median_resolution_h", "p90_resolution_h", "resolution_met_pct", "sla_met_pct",
               "csat_avg", "ratings", "transfers_out", "transfers_in")


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    summary = "figures of a period: volume, response times, SLA, satisfaction, topics, fairness"
    command = commands.add_parser("report", help=summary, description=summary)
    command.set_defaults(command=report)
    command.add_argument("--since", metavar="SPAN", type=span, default="30d",
                         help="how far back from the end, e.g. 7d, 12w (default 30d)")
    command.add_argument("--until", help="the end, not included: a date (its midnight, so "
                         "2026-12-01 ends with 30 November) or an ISO 8601 time, in the "
                         "service's zone unless it has an offset (default: now)")
    command.add_argument("--department", help="one department's key (default: all)")
    command.add_argument("--format", choices=("text", "html", "csv"), default="text")
    command.add_argument("--out", type=Path, help="write to FILE instead of standard output")


def report(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    if unknown_department(args.department, config):
        return EX_USAGE
    period = _period(args, config.service.zone)
    if period is None:
        return EX_USAGE
    figures = _figures(config, *period, args.department)
    terminal = Console(highlight=False)
    if args.format == "text" and args.out is None and terminal.is_terminal:
        text(figures, terminal)  # in colour, as wide as the terminal
        return 0
    return _written(RENDER[args.format](figures), args)


def _period(args: argparse.Namespace, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """[since, until) from --since and --until; None, said on stderr, when --until is
    malformed or out of range."""
    try:
        until = moment(args.until, zone) if args.until else env_clock().now()
    except ValueError:
        print(f"mailroom: --until {args.until!r} is not a date or time like 2026-11-30 or "
              "2026-11-30T17:00+07:00", file=sys.stderr)
        return None
    if not FIRST_YEAR <= until.year <= LAST_YEAR:
        print(f"mailroom: --until {args.until!r} is out of range: a date or time from "
              f"{FIRST_YEAR} to {LAST_YEAR}", file=sys.stderr)
        return None
    since: timedelta = args.since
    return until - since, until


def moment(text: str, zone: ZoneInfo) -> datetime:
    """'2026-11-30' (its midnight) or an ISO 8601 time, in `zone` unless it has an offset."""
    parsed = datetime.fromisoformat(text.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _figures(config: config_file.Config, since: datetime, until: datetime,
             department: str | None) -> Report:
    """The report, read in one session; a progress bar over the departments when long."""
    db = database(config)
    try:
        with db.transaction() as session:
            period = reports.load(session, since, until, department)
    finally:
        db.close()
    keys = reports.department_keys(period, config)
    if len(period.cases) >= LONG:
        return reports.assemble(period, config, progress(keys, len(keys), "departments"))
    return reports.assemble(period, config, keys)


def _written(output: str, args: argparse.Namespace) -> int:
    if args.out is None:
        sys.stdout.write(output)
        return 0
    args.out.write_text(output, encoding="utf-8")
    print(f"report written to {args.out}")
    return 0


# -- text ------------------------------------------------------------------------------------------

def text(report: Report, console: Console | None = None) -> str:
    """The report as rich tables: on `console` when given (a terminal shows colour), else as
    plain text WIDTH columns wide."""
    target = console or Console(file=io.StringIO(), width=WIDTH, color_system=None,
                                highlight=False)
    for section in SECTIONS:
        for part in section(report):
            target.print(part)
            target.print()
    return target.file.getvalue() if console is None else ""  # type: ignore[attr-defined]


def _header(report: Report) -> list[object]:
    about = f", department {report.departments[0].key}" if len(report.departments) == 1 else ""
    return [f"[bold]mailroom report[/bold] {period(report)} ({report.zone}){about}\n"
            f"{report.total.requests} requests created in the period, "
            f"{report.total.still_open} still open at its end"]


def period(report: Report) -> str:
    """The period in the report's zone: its first and last day when it is whole days (the
    end, a midnight, is not part of it), else its start and end times."""
    days = reports.whole_days(report)
    if days is not None:
        first, last = days
        return str(first) if first == last else f"{first} {DASH} {last}"
    zone = ZoneInfo(report.zone)
    since, until = report.since.astimezone(zone), report.until.astimezone(zone)
    return f"{since:%Y-%m-%d %H:%M} {DASH} {until:%Y-%m-%d %H:%M}"


def _table(title: str, headers: list[str], rows: list[list[str]],
           words: tuple[int, ...] = (0,)) -> Table:
    """A table whose columns `words` hold words (left) and the rest figures (right)."""
    table = Table(title=title, title_justify="left", title_style="bold")
    for number, header in enumerate(headers):
        table.add_column(header, justify="left" if number in words else "right",
                         no_wrap=number == 0, overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))  # as written, never markup
    return table


def _all(report: Report) -> list[DepartmentFigures]:
    return [*report.departments, report.total] if len(report.departments) > 1 \
        else list(report.departments)


def _label(figures: DepartmentFigures) -> str:
    return figures.key or "all"


def _volume(report: Report) -> list[object]:
    rows = [[_label(f), str(f.requests), str(f.still_open), _top_categories(f.categories)]
            for f in _all(report)]
    return [_table("Volume", ["department", "requests", "open", "top categories"], rows,
                   words=(0, 3))]


def _top_categories(categories: dict[str, int], top: int = 3) -> str:
    return ", ".join(f"{name or '(none)'} {n}" for name, n in list(categories.items())[:top])


def _response_times(report: Report) -> list[object]:
    rows = [[_label(f), *_times(f.first_response), *_times(f.resolution)]
            for f in _all(report)]
    headers = ["department", "answered", "first", "target", "met", "resolved", "resolution",
               "target", "met"]
    return [_table("Response times (working hours: median / p90)", headers, rows)]


def _times(times: Times) -> list[str]:
    return [str(times.count), f"{hours(times.median_h)} / {hours(times.p90_h)}",
            hours(times.target_h), percent(times.met_pct)]


def _compliance(report: Report) -> list[object]:
    rows = [[_label(f), percent(f.sla_met_pct)] for f in _all(report)]
    return [_table("SLA compliance", ["department", "SLA met"], rows)]


def _satisfaction(report: Report) -> list[object]:
    rows = [[_label(f), str(sum(f.ratings.values())), average(f.csat_avg),
             *(str(f.ratings.get(score, 0)) for score in range(1, 6))] for f in _all(report)]
    parts: list[object] = [_table("Satisfaction", ["department", "ratings", "average", "1", "2",
                                                   "3", "4", "5"], rows)]
    low = [[r.reference, str(r.rating), r.comment or "-"] for r in report.total.low_ratings]
    if low:
        parts.append(_table("Low ratings", ["reference", "rating", "comment"], low,
                            words=(0, 2)))
    return parts


def _transfers(report: Report) -> list[object]:
    if not report.transfers:
        return ["[bold]Transfers[/bold]: none in the period"]
    senders = sorted({a for a, _ in report.transfers})
    receivers = sorted({b for _, b in report.transfers})
    rows = [[a, *(str(report.transfers.get((a, b), 0)) for b in receivers)] for a in senders]
    return [_table("Transfers", ["from \\ to", *receivers], rows)]


def _topics(report: Report) -> list[object]:
    rows = [[f.key, t.phrase, str(t.count), ", ".join(t.references)]
            for f in report.departments for t in f.topics]
    if not rows:
        return ["[bold]Recurring topics[/bold]: none in two requests or more"]
    return [_table("Recurring topics", ["department", "phrase", "requests", "examples"], rows,
                   words=(0, 1, 3))]


def _fairness(report: Report) -> list[object]:
    headers = ["group", "requests", "answered", "first", "target", "met"]
    return [_table("Fairness by requester (department or domain)", headers,
                   _group_rows(report.by_requester)),
            _table("Fairness by priority", headers,
                   _group_rows(report.by_priority))]


def _group_rows(groups: tuple[Group, ...]) -> list[list[str]]:
    return [[g.name, str(g.requests), *_times(g.first_response)] for g in groups]


SECTIONS: tuple[Callable[[Report], list[object]], ...] = (
    _header, _volume, _response_times, _compliance, _satisfaction, _transfers, _topics,
    _fairness)


def hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def average(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# -- csv and html ----------------------------------------------------------------------------------

def csv_text(report: Report) -> str:
    """One row per department (not the total), CSV_COLUMNS; an empty cell for no value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for figures in report.departments:
        writer.writerow(_csv_row(figures, report.transfers))
    return out.getvalue()


def _csv_row(f: DepartmentFigures, transfers: dict[tuple[str, str], int]) -> list[str]:
    first, resolution = f.first_response, f.resolution
    return [f.key, f.name, str(f.requests), str(f.still_open), str(first.count),
            _number(first.median_h), _number(first.p90_h), _number(first.met_pct),
            _number(resolution.median_h), _number(resolution.p90_h),
            _number(resolution.met_pct), _number(f.sla_met_pct), _number(f.csat_avg, 2),
            str(sum(f.ratings.values())),
            str(sum(n for (a, _), n in transfers.items() if a == f.key)),
            str(sum(n for (_, b), n in transfers.items() if b == f.key))]


def _number(value: float | None, decimals: int = 1) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def _html(report: Report) -> str:
    from mailroom.report_html import html

    return html(report)


RENDER: dict[str, Callable[[Report], str]] = {
    "text": text, "csv": csv_text, "html": _html}

