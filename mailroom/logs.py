"""Log lines as text or as JSON lines; a line about a request carries its reference."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TextIO

FORMATS = ("text", "json")
TEXT_LAYOUT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REFERENCE = re.compile(r"\bREQ-\d{6,}\b")  # a line naming a request concerns it

_reference: contextvars.ContextVar[str] = contextvars.ContextVar("reference", default="")
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("inside", default=False)
_installed: list[logging.Handler] = []  # the handler `configure` put on the root logger


@contextmanager
def about(reference: str = "") -> Iterator[None]:
    """Lines logged inside concern the request `reference` (or, until `concerns` names one,
    none); the request at hand before is restored on the way out."""
    token, inside = _reference.set(reference), _inside.set(True)
    try:
        yield
    finally:
        _reference.reset(token)
        _inside.reset(inside)


def concerns(reference: str) -> None:
    """From here to the end of the enclosing `about`, lines concern the request `reference`;
    outside any `about` nothing changes (so nothing outlives the work it was about)."""
    if _inside.get():
        _reference.set(reference)


def current() -> str:
    """The reference of the request at hand, "" for none."""
    return _reference.get()


class Reference(logging.Filter):
    """Puts the reference of the request a line concerns on its record (`record.reference`,
    "" for none): the request at hand, else the one the line names."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "reference", ""):
            named = REFERENCE.search(record.getMessage())
            record.reference = _reference.get() or (named.group() if named else "")
        return True


class TextLines(logging.Formatter):
    """The usual text line, then " [REQ-000123]" when it concerns a request."""

    def __init__(self) -> None:
        super().__init__(TEXT_LAYOUT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        reference = getattr(record, "reference", "")
        return super().formatMessage(record) + (f" [{reference}]" if reference else "")


class JsonLines(logging.Formatter):
    """One JSON object a line: at (UTC), level, logger, message; reference and exc when
    there are."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        reference = getattr(record, "reference", "")
        if reference:
            line["reference"] = reference
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


def handler(form: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing lines in `form` (text or json) to `stream` (default stderr)."""
    written = logging.StreamHandler(stream)
    written.setFormatter(JsonLines() if form == "json" else TextLines())
    written.addFilter(Reference())
    return written


def configure(form: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr in `form` at `level`, in place of what an earlier call set; a root logger
    that already has handlers of another owner (a test harness, an embedding program) is
    left as it is."""
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
    if root.handlers:
        return
    _installed.append(handler(form))
    root.addHandler(_installed[0])
    root.setLevel(level)
