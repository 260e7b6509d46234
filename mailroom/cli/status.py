"""`mailroom status`: is the daemon alive, and what waits (inbox, outbox, quarantine, jobs)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from mailroom import config as config_file
from mailroom.cli.common import command, config_path, database, env_clock, table
from mailroom.heartbeat import Heartbeat, ScheduledJob, Status, Unreadable, status

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3  # as monitoring plugins (Nagios, Icinga) exit
DEFAULT_STALE = "3m"
CODES = (f"Exit status (as a monitoring plugin): {OK} the daemon is alive (beat within "
         f"--stale); {WARNING} it is, but another instance on this database is gone (no beat "
         f"within --stale, not stopped); {CRITICAL} it is alive but cannot read its inbox, "
         "the heartbeat of the instance holding the inbox is stale "
         f"(or dated more than --stale ahead: clock skew), it stopped, or it never ran on this "
         f"database; {UNKNOWN} the database or the heartbeat cannot be read; 78 the config is "
         "wrong.")
VERDICT = {"alive": "OK", "inbox down": "CRITICAL", "stale": "CRITICAL", "stopped": "CRITICAL",
           "never run": "CRITICAL"}
LIVING = ("alive", "inbox down")  # states in which the daemon runs


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    checking = command(commands, "status", show_status,
                       "whether the daemon is alive, and what waits in the inbox, outbox and "
                       "quarantine")
    checking.epilog = CODES
    checking.add_argument("--stale", default=DEFAULT_STALE, type=_duration,
                          help="a heartbeat older than this is stale, e.g. 5m "
                          f"(default {DEFAULT_STALE})")
    checking.add_argument("--json", action="store_true", help="print one JSON object")


def _duration(text: str) -> timedelta:
    span = config_file.parse_duration(text)
    if span is None or span <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 3m or 1h")
    return span


def show_status(args: argparse.Namespace) -> int:
    config = config_file.load(config_path(args))
    now = env_clock().now()
    try:
        seen = status(database(config), config, now)
    except SQLAlchemyError as exc:
        print(f"UNKNOWN: the database cannot be read: {exc.__class__.__name__}: "
              f"{str(exc).splitlines()[0]}")
        return UNKNOWN
    except Unreadable as exc:
        print(f"UNKNOWN: {exc}")
        return UNKNOWN
    state = seen.state(args.stale)
    zone = config.service.zone
    print(json.dumps(as_json(seen, state, args.stale, zone), indent=2) if args.json
          else report(seen, state, args.stale, zone))
    if state != "alive":
        return CRITICAL
    return WARNING if seen.others_gone(args.stale) else OK


def as_json(seen: Status, state: str, stale: timedelta, zone: ZoneInfo) -> dict[str, Any]:
    """The --json object; times ISO 8601 in `zone`, ages in seconds."""
    beat = seen.heartbeat
    age = seen.age
    return {
        "state": state, "alive": state in LIVING, "checked_at": _iso(seen.now, zone),
        "stale_after_seconds": int(stale.total_seconds()),
        "daemon": None if beat is None else {
            "host": beat.host, "pid": beat.pid, "started_at": _iso(beat.started_at, zone),
            "beat_at": _iso(beat.beat_at, zone),
            "beat_age_seconds": int(age.total_seconds()) if age is not None else None,
            "beat_ahead_seconds": int(seen.ahead.total_seconds()),
            "stopped_at": _iso(beat.stopped_at, zone)},
        "inbox": {"last_read": _iso(beat.last_inbox_read, zone) if beat else None,
                  "last_wake": _iso(beat.last_wake, zone) if beat else None,
                  "waiting": beat.waiting_in_inbox if beat else None,
                  "down_since": _iso(beat.inbox_down_since, zone) if beat else None},
        "outbox": {"pending": seen.outbox.pending, "held": seen.outbox.held,
                   "failed": seen.outbox.failed},
        "quarantined": seen.quarantined,
        "rules": {"version": beat.rules_version if beat else None,
                  "loaded_at": _iso(beat.rules_loaded_at, zone) if beat else None},
        "next_jobs": [{"name": j.name, "at": _iso(j.at, zone)} for j in next_jobs(seen)],
        "instances": [{"host": i.host, "pid": i.pid, "role": i.role,
                       "state": _instance_state(seen, i, stale),
                       "started_at": _iso(i.started_at, zone), "beat_at": _iso(i.beat_at, zone),
                       "stopped_at": _iso(i.stopped_at, zone)} for i in seen.instances],
    }


def _instance_state(seen: Status, beat: Heartbeat, stale: timedelta) -> str:
    """alive, stopped, or gone (no beat within `stale`)."""
    if beat.stopped_at is not None:
        return "stopped"
    return "gone" if seen.now - beat.beat_at > stale else "alive"


def next_jobs(seen: Status) -> list[ScheduledJob]:
    """What comes next, in time order: the running daemon's timers and what falls due."""
    timers = seen.heartbeat.next_jobs if seen.heartbeat else ()
    return sorted((*timers, *seen.coming), key=lambda job: job.at)


def report(seen: Status, state: str, stale: timedelta, zone: ZoneInfo) -> str:
    """A verdict line as monitoring plugins print it, then the figures as a table."""
    gone = seen.others_gone(stale) if state == "alive" else []
    word = "WARNING" if gone else VERDICT[state]
    verdict = f"{word}: {_daemon_line(seen, state, stale, zone)}"
    if gone:
        verdict += f"; {_count(len(gone), 'other instance')} gone"
    figures = table(['', 'at ' + _when(seen.now, zone)], _rows(seen, zone))
    if len(seen.instances) < 2:
        return f"{verdict}\n\n{figures}"
    rows = []
    for i in seen.instances:
        state = _instance_state(seen, i, stale)
        role = i.role if state == "alive" else f"was {i.role}"
        rows.append([f"{i.host} pid {i.pid}", role, state, _when(i.beat_at, zone, seen.now)])
    instances = table(["instance", "role", "state", "last beat"], rows)
    return f"{verdict}\n\n{figures}\n\n{instances}"


def _daemon_line(seen: Status, state: str, stale: timedelta, zone: ZoneInfo) -> str:
    beat = seen.heartbeat
    if beat is None:
        return "the daemon has never run on this database"
    where = f"on {beat.host}, pid {beat.pid}, up since {_when(beat.started_at, zone)}"
    if state == "stopped" and beat.stopped_at is not None:
        return f"the daemon is not running: it stopped {_when(beat.stopped_at, zone)}"
    ago = _ago(seen.age)
    if state == "stale" and seen.ahead > stale:
        return (f"clock skew: the last beat is dated {_ago(seen.ahead)} ahead of now "
                f"({_when(beat.beat_at, zone)}, {where}), stale when more than {_ago(stale)}")
    if state == "stale":
        return (f"the daemon is not running or is stuck: its last beat was {ago} ago "
                f"({_when(beat.beat_at, zone)}, {where}), stale after {_ago(stale)}")
    if state == "inbox down" and beat.inbox_down_since is not None:
        return (f"the daemon is alive; its inbox is unreachable since "
                f"{_when(beat.inbox_down_since, zone, seen.now)}: beat {ago} ago {where}")
    return f"the daemon is alive: beat {ago} ago {where}"


def _rows(seen: Status, zone: ZoneInfo) -> list[list[str]]:
    beat = seen.heartbeat or Heartbeat("", 0, seen.now, seen.now)
    known = seen.heartbeat is not None
    waiting = beat.waiting_in_inbox
    outbox = seen.outbox
    down = [["inbox down", _when(beat.inbox_down_since, zone, seen.now)]] \
        if beat.inbox_down_since else []
    coming = [_job(job, zone, seen.now) for job in next_jobs(seen)] or ["-"]
    return [
        ["inbox read", _when(beat.last_inbox_read, zone, seen.now)], *down,
        ["last wake", _when(beat.last_wake, zone, seen.now)],
        ["inbox backlog", "unknown" if waiting is None else _count(waiting, "message")],
        ["outbox", f"{outbox.pending} pending, {outbox.held} held, {outbox.failed} failed"],
        ["quarantine", _count(seen.quarantined, "message")],
        ["rules", f"version {beat.rules_version}, loaded {_when(beat.rules_loaded_at, zone)}"
         if known else "-"],
        *(["next jobs" if number == 0 else "", job] for number, job in enumerate(coming)),
    ]


def _job(job: ScheduledJob, zone: ZoneInfo, now: datetime) -> str:
    """'monthly report 2026-12-01 08:00:00 WIB (in 3 h 20 min)'."""
    return f"{job.name} {_when(job.at, zone)} (in {_ago(job.at - now)})"


def _when(moment: datetime | None, zone: ZoneInfo, now: datetime | None = None) -> str:
    """'2026-11-23 09:15:02 WIB', with how long ago when `now` is given; '-' for never."""
    if moment is None:
        return "-"
    local = moment.astimezone(zone)
    shown = f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
    return f"{shown} ({_ago(now - moment)} ago)" if now is not None else shown


def _ago(span: timedelta | None) -> str:
    seconds = max(int(span.total_seconds()), 0) if span is not None else 0
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None
