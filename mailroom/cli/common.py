"""What the `mailroom` commands share: the config and database they work on, the clock, tables."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from mailroom import clock as clocks
from mailroom import config as config_file
from mailroom.errors import ConfigError, Problem
from mailroom.store.db import Database
from mailroom.store.models import Request

EX_USAGE, EX_SOFTWARE, EX_TEMPFAIL, EX_CONFIG = 64, 70, 75, 78
T = TypeVar("T")
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but \t and \n, DEL, C1
C1_ESCAPED = {code: f"\\u{code:04x}" for code in range(0x7f, 0xa0)}


def command(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
            name: str, handler: Callable[[argparse.Namespace], int],
            summary: str) -> argparse.ArgumentParser:
    """A command (or an action of a group) that `handler` carries out."""
    sub: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=summary)
    sub.set_defaults(command=handler)
    return sub


def config_path(args: argparse.Namespace) -> Path:
    return args.config or config_file.default_path()


def env_clock(running: bool = False) -> clocks.Clock:
    """The clock MAILROOM_NOW sets; a malformed value is an admin's mistake (exit 78)."""
    try:
        return clocks.from_environment(running)
    except ValueError as exc:
        raise ConfigError([Problem("MAILROOM_NOW", 0, 0, str(exc),
                                   "ISO 8601 with a UTC offset, e.g. 2026-11-23T09:00+07:00")]
                          ) from None


_opened: list[Database] = []  # closed when the command ends (close_databases)


def database(config: config_file.Config) -> Database:
    """The database, its schema brought up to date when it is the embedded SQLite (a server
    database must be at the newest schema: OldSchema if not)."""
    db = Database(config.database_url)
    _opened.append(db)
    if db.is_sqlite:
        db.upgrade()
    else:
        db.check_schema()
    return db


def close_databases() -> None:
    """Close what the command opened: a server's connections end at once."""
    while _opened:
        _opened.pop().close()


def zone_of(request: Request, config: config_file.Config) -> ZoneInfo:
    """Where a request's times are read: its department's calendar, else the service's zone."""
    department = config.departments.get(request.department)
    return department.calendar.zone if department else config.service.zone


def usage(parser: argparse.ArgumentParser) -> int:
    """A command group given no action: its help, and the exit status of a usage error."""
    parser.print_help()
    return 2


def printable(text: str) -> str:
    """`text` without control characters but newline and tab: what a requester wrote cannot
    drive the terminal it is shown on (escape sequences, a title, a link, a cleared screen)."""
    return CONTROLS.sub("", text)


def json_text(value: Any) -> str:
    """`value` as indented JSON in plain UTF-8; control characters escaped (json escapes C0,
    this C1 and DEL too), so printed JSON drives no terminal either."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(C1_ESCAPED)


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """The rows under their headers: on a terminal a rich table in colour; piped or written
    to a file, plain text with whole lines (for grep and scripts)."""
    console = Console()
    shown = [[printable(str(cell)) for cell in row] for row in rows]
    return framed(console, headers, shown) if console.is_terminal else plain(headers, shown)


def framed(console: Console, headers: list[str], rows: list[list[str]]) -> str:
    """A rich table as `console` shows it, cells taken as written (no markup)."""
    grid = Table(box=box.SIMPLE_HEAD, header_style="bold cyan", row_styles=["", "dim"],
                 show_edge=False, pad_edge=False)
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(str(cell)) for cell in row))
    with console.capture() as shown:
        console.print(grid)
    return shown.get().rstrip("\n")


def plain(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table with columns as wide as their widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def progress(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """`items` as they are taken, with a progress bar on stderr when it is a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield from items
        return
    shared = Console().is_terminal  # standard output on the same screen: printed above the bar
    with Progress(console=console, transient=True, redirect_stdout=shared) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)


LONGEST_SPAN = timedelta(days=100 * 366)  # --since reaches back a century at most


def span(text: str) -> timedelta:
    """An argparse type for --since: a duration like 30d or 12w, more than none, at most a
    century (a longer one would reach before the calendar begins)."""
    duration = config_file.parse_duration(text)
    if duration is None or duration <= timedelta(0) or duration > LONGEST_SPAN:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 30d or 12w (more than 0, at most 36600d)")
    return duration


def how_many(text: str) -> int:
    """An argparse type for --limit: a whole number, 1 or more."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return number


def unknown_department(key: str | None, config: config_file.Config) -> bool:
    """Whether --department names no configured department; if so, said on stderr with the
    departments there are."""
    if key is None or key in config.departments:
        return False
    print(f"mailroom: unknown department {key!r}; the departments are "
          f"{', '.join(config.departments)}", file=sys.stderr)
    return True
