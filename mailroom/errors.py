"""One exception family: admin mistakes apart from faults of one message or one server."""

from __future__ import annotations

from dataclasses import dataclass


class MailroomError(Exception):
    """Base of every error mailroom raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a file an admin wrote, with where it is and what would be right."""

    file: str
    line: int
    col: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.message}{hint}"


class ConfigError(MailroomError):
    """Raised when config, rules or templates written by an admin are wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class MessageError(MailroomError):
    """Raised when one inbound message cannot be processed; it is quarantined."""


class TransientError(MailroomError):
    """Raised when a server is unreachable or refuses for now; the work is retried later."""
