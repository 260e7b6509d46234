"""The optional Prometheus endpoint (metrics.listen): what the daemon counts while it serves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from sqlalchemy import func, select

from mailroom.config import MetricsEndpoint
from mailroom.intake import NEW_REQUEST, Outcome
from mailroom.store.db import Database
from mailroom.store.models import Message, Request
from mailroom.store.models import Outgoing as Queued

log = logging.getLogger(__name__)
# acknowledgment latency, arrival to sent: seconds when all is well, minutes to hours when not
LATENCY_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
BREACH = "%:escalation:%:due:%"  # the key of an escalation for a missed due time (jobs.py)


class Metrics:
    """The service's metrics, in a registry of their own (never the process-wide one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("mailroom_messages", "Inbound messages by outcome",
                                ["outcome"], registry=self.registry)
        self.requests = Counter("mailroom_requests", "New requests by department",
                                ["department"], registry=self.registry)
        self.ack_latency = Histogram(
            "mailroom_ack_latency_seconds", "From a request's arrival to its acknowledgment sent",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.breaches = Counter("mailroom_sla_breaches", "Due times missed (escalated), by "
                                "department", ["department"], registry=self.registry)
        self.outbox_depth = Gauge("mailroom_outbox_depth", "Mails waiting in the outbox",
                                  registry=self.registry)
        self.last_inbox_read = Gauge("mailroom_last_inbox_read_timestamp_seconds",
                                     "When the inbox was last read without a fault (Unix time)",
                                     registry=self.registry)
        self.breaches_seen = 0  # the outbox row up to which escalations were counted

    def took(self, db: Database, outcomes: Iterable[Outcome]) -> None:
        """Count a batch's outcomes, and its new requests by department."""
        new = []
        for outcome in outcomes:
            if not outcome.repeat:
                self.messages.labels(outcome=outcome.kind).inc()
                if outcome.kind == NEW_REQUEST and outcome.message_row:
                    new.append(outcome.message_row)
        if new:
            with db.transaction(durable=False) as session:
                for department in session.scalars(select(Request.department).join(
                        Message, Message.request_id == Request.id).where(Message.id.in_(new))):
                    self.requests.labels(department=department).inc()

    def acknowledged(self, latencies: Iterable[float]) -> None:
        for seconds in latencies:
            self.ack_latency.observe(max(seconds, 0.0))

    def inbox_read(self, at: datetime) -> None:
        self.last_inbox_read.set(at.timestamp())

    def start_counting_breaches(self, db: Database) -> None:
        """Escalations queued before now are not counted again."""
        with db.transaction(durable=False) as session:
            self.breaches_seen = int(session.scalar(select(func.max(Queued.id))) or 0)

    def swept(self, db: Database) -> None:
        """Count the escalations of missed due times queued since the last look."""
        with db.transaction(durable=False) as session:
            rows = session.execute(select(Queued.id, Queued.department).where(
                Queued.id > self.breaches_seen, Queued.key.like(BREACH))).all()
        for row_id, department in rows:
            self.breaches.labels(department=department).inc()
            self.breaches_seen = max(self.breaches_seen, row_id)


class Endpoint:
    """The HTTP server Prometheus scrapes, in a thread of its own; moved by a reload that
    changes metrics.listen, with the counts kept."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.listening: MetricsEndpoint | None = None
        self.server: WSGIServer | None = None
        self.thread: threading.Thread | None = None

    def listen(self, where: MetricsEndpoint | None) -> None:
        """Serve at `where` (None: nowhere). A port that cannot be had is logged as an error
        and the service goes on without metrics: a monitoring port never stops mail."""
        if where == self.listening:
            return
        self.stop()
        if where is None:
            return
        try:
            self.server, self.thread = start_http_server(where.port, where.host,
                                                         self.metrics.registry)
        except OSError as exc:
            log.error("metrics.listen %s:%d cannot be served (%s); running without metrics",
                      where.host, where.port, exc.strerror or exc)
            return
        self.listening = where
        log.info("metrics at http://%s:%d/metrics", where.host, self.port)

    @property
    def port(self) -> int:
        """The port served (the one the system chose, for port 0); 0 when none is."""
        return int(self.server.server_port) if self.server is not None else 0

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(5)
        self.server, self.thread, self.listening = None, None, None
