"""PostgreSQL for the drain benchmark: a private cluster, its outbox rows, served instances."""

from __future__ import annotations

import collections
import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import psycopg

from tests.postgres import Postgres
from tests.servers import Captured
from tests.sites import database_of, use_postgres

SENT_LINE = re.compile(r"outbox: (\d+) sent")
HOLDING, STANDING_BY = "this instance holds the inbox now", "stands by"


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A private cluster with a migrated template: every installation made meanwhile gets a
    fresh database of its own, copied from the template."""
    with Postgres() as cluster:
        use_postgres(cluster)
        try:
            yield cluster
        finally:
            use_postgres(None)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def outbox_count(url: str, condition: str) -> int:
    """Rows of the outbox table of a PostgreSQL database that meet the SQL `condition`."""
    conninfo = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
    with psycopg.connect(conninfo) as connection:
        found = connection.execute(
            f"SELECT count(*) FROM outbox WHERE {condition}").fetchone()  # type: ignore[arg-type]
    return int(found[0]) if found else 0


def share_database(config: Path, url: str) -> None:
    """Point an installation's config at another installation's database."""
    config.write_text(config.read_text().replace(database_of(config), url))


def duplicates(captured: Iterable[Captured]) -> int:
    """Mails the capture server took more than once, by their Message-ID."""
    parser = BytesHeaderParser()
    taken = collections.Counter(str(parser.parsebytes(mail.data)["Message-ID"]).strip()
                                for mail in captured)
    return sum(count - 1 for count in taken.values())


def sent_in(log: str) -> int:
    """Mails an instance says it sent (its `outbox: N sent` lines)."""
    return sum(int(found) for found in SENT_LINE.findall(log))


@dataclass(frozen=True)
class Served:
    """A drain by `instances` served daemons on one database, from their start until the
    inbox was empty and every outbox row sent."""

    instances: int
    messages: int
    seconds: float
    delivered: int  # mails the capture server took
    duplicates: int  # of them, taken a second time or more (same Message-ID)
    leader_sent: int  # mails sent by the instance that held the inbox
    standby_sent: int  # mails sent by the instances that stood by
    peak_rss_kb: int  # of the largest instance

    @property
    def rate(self) -> float:
        return self.messages / self.seconds
