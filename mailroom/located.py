"""YAML that remembers where each value was written; its readers report mistakes as file:line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from mailroom.errors import ConfigError, Problem

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: 5x faster
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
DURATION = re.compile(r"^\s*(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")
LONGEST = timedelta(days=366)  # a longer target or wait is a slip of the keyboard
LARGEST = 1024**4  # bytes: 1TB
MOST = 1_000_000  # the largest whole number a count may be
DEEPEST = 50  # mappings and lists nested deeper than this are no config
NODES = 100_000  # values in one file, aliases expanded: more is an alias bomb, not config
HIDDEN_KEYS = ("password", "secret")  # their values are text as written, never shown
AS_WRITTEN = tuple(f"tag:yaml.org,2002:{t}" for t in ("int", "float", "bool", "timestamp"))
REQUIRED: Any = object()


class Where:
    """A place in a file an admin wrote."""

    __slots__ = ("col", "file", "line")

    def __init__(self, file: str, line: int, col: int) -> None:
        self.file, self.line, self.col = file, line, col

    def problem(self, message: str, hint: str = "") -> Problem:
        return Problem(self.file, self.line, self.col, message, hint)

    def error(self, message: str, hint: str = "") -> ConfigError:
        return ConfigError([self.problem(message, hint)])


class Mapping(dict[str, Any]):
    """A YAML mapping that knows where it and each of its keys were written."""

    where: Where
    key_where: dict[str, Where]

    @classmethod
    def empty(cls, where: Where) -> Mapping:
        mapping = cls()
        mapping.where, mapping.key_where = where, {}
        return mapping

    def at(self, key: str) -> Where:
        return self.key_where.get(key, self.where)


class Sequence(list[Any]):
    """A YAML sequence that knows where it and each of its items were written."""

    where: Where
    item_where: list[Where]

    def at(self, index: int) -> Where:
        return self.item_where[index] if index < len(self.item_where) else self.where


def load(path: Path) -> Any:
    """Parse one YAML file into Mapping/Sequence/scalars; syntax errors become ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), 0, 0, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), 0, 0, "not UTF-8 text")]) from None
    return loads(text, str(path))


def loads(text: str, file: str) -> Any:
    """Parse YAML text, naming `file` in errors."""
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        return _Converter(loader, file).value(node, 1) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError([Problem(file, line, col, f"YAML syntax: {exc.problem}")]) from None
    finally:
        loader.dispose()


def _where(node: yaml.Node, file: str) -> Where:
    return Where(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    """YAML nodes as Mapping/Sequence/scalars, refusing what no admin writes by hand."""

    def __init__(self, loader: Any, file: str) -> None:
        self.loader, self.file, self.left = loader, file, NODES

    def value(self, node: yaml.Node, depth: int, hidden: bool = False) -> Any:
        self._count(node, depth)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, depth)
        if isinstance(node, yaml.SequenceNode):
            items = Sequence(self.value(item, depth + 1, hidden) for item in node.value)
            items.where = _where(node, self.file)
            items.item_where = [_where(i, self.file) for i in node.value]
            return items
        return self.scalar(node, hidden)

    def _count(self, node: yaml.Node, depth: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise _where(node, self.file).error(
                f"more than {NODES} values", "is an alias (*name) repeated over and over?")
        if depth > DEEPEST:
            raise _where(node, self.file).error(
                f"lists or mappings nested more than {DEEPEST} deep",
                "close the brackets you opened")

    def scalar(self, node: yaml.Node, hidden: bool) -> Any:
        if hidden and node.tag in AS_WRITTEN:  # a password 0123 is '0123', not the number 83
            return node.value
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # an unquoted date that is none: 2026-12-32
            raise _where(node, self.file).error(f"{node.value!r} cannot be read: {exc}",
                                                "write a date as YYYY-MM-DD, a real day") from None

    def mapping(self, node: yaml.MappingNode, depth: int) -> Mapping:
        result = Mapping.empty(_where(node, self.file))
        for key_node, value_node in node.value:
            where = _where(key_node, self.file)
            if not isinstance(key_node, yaml.ScalarNode):
                raise where.error("a key must be a word, not a list or mapping",
                                  "write 'key: value'")
            key = str(self.scalar(key_node, False))
            if key in result:
                raise where.error(f"duplicate key {key!r}",
                                  "each key may appear once in a mapping")
            result[key] = self.value(value_node, depth + 1, key.lower() in HIDDEN_KEYS)
            result.key_where[key] = where
        return result


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A 'did you mean' hint naming the closest choice, or listing them all."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of: " + ", ".join(options) if options else ""


def require_mapping(value: Any, where: Where, what: str) -> Mapping:
    """`value` as a Mapping, or a ConfigError saying `what` should have been one."""
    if not isinstance(value, Mapping):
        raise where.error(f"{what} must be a mapping of key: value", f"got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    """How a wrong value is described to an admin: 'a list', "text 'abc'", ..."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text {value!r}"
    return f"{type(value).__name__} {value!r}"


class Report:
    """Collects the problems of one file while it is read, so all are shown at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: Where, message: str, hint: str = "") -> None:
        self.problems.append(where.problem(message, hint))

    def unknown_keys(self, mapping: Mapping, allowed: Collection[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(mapping.at(key), f"unknown key {key!r} in {what}",
                         did_you_mean(key, allowed))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(sorted(self.problems, key=lambda p: (p.line, p.col)))


class Section:
    """The keys of one mapping read as typed values; each mistake goes into `report`."""

    def __init__(self, mapping: Mapping, what: str, report: Report) -> None:
        self.mapping, self.what, self.report = mapping, what, report

    def fail(self, key: str, message: str, hint: str = "") -> None:
        self.report.add(self.mapping.at(key), message, hint)

    def unknown_keys(self, allowed: Collection[str], what: str = "") -> None:
        self.report.unknown_keys(self.mapping, allowed, what or self.what)

    def get(self, key: str, default: Any, check: Callable[[Any], Any], expect: str) -> Any:
        """The value at `key` as `check` returns it; else `default`, or None if REQUIRED."""
        value = self.mapping.get(key)
        if value is None and default is REQUIRED:
            self.fail(key, f"{self.what} needs {key!r}", f"add '{key}: {expect}'")
        if value is None:
            return None if default is REQUIRED else default
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            name = f"{self.what}.{key}" if self.what else key
            if str(exc):
                self.fail(key, f"{name}: {exc}", f"expected {expect}")
            else:
                self.fail(key, f"{name}: expected {expect}, got {kind_of(value)}")
            return None if default is REQUIRED else default

    def text(self, key: str, default: Any = "") -> Any:
        return self.get(key, default, text, "text")

    def address(self, key: str, default: Any = "") -> Any:
        return self.get(key, default, address, "an email address like name@example.org")

    def addresses(self, key: str) -> tuple[str, ...]:
        return tuple(self.get(key, [], addresses, "a list of email addresses"))

    def texts(self, key: str, expect: str) -> tuple[str, ...]:
        return tuple(self.get(key, [], texts, expect))

    def number(self, key: str, default: float, most: float = 86400.0) -> Any:
        return self.get(key, default, _positive(most), f"a positive number up to {most:g}")

    def integer(self, key: str, default: Any) -> Any:
        return self.get(key, default, _port, "a whole number from 1 to 65535")

    def count(self, key: str, default: int, least: int = 1) -> Any:
        return self.get(key, default, whole(least), f"a whole number, {least} or more")

    def size(self, key: str, default: int) -> Any:
        return self.get(key, default, size, "a size like 500KB or 25MB")

    def boolean(self, key: str, default: bool) -> Any:
        return self.get(key, default, _boolean, "true or false")

    def choice(self, key: str, options: tuple[str, ...], default: Any) -> Any:
        return self.get(key, default, _one_of(options), "one of " + ", ".join(options))

    def duration(self, key: str, default: Any) -> Any:
        return self.get(key, default, duration, "a duration like 30m, 4h, 3d or 1d 4h")


def parse_duration(text: str) -> timedelta | None:
    """'4h', '3d', '1d 4h', '30m', '2w' as a timedelta; None if not such a duration."""
    match = DURATION.match(str(text))
    if not match or not any(match.groups()):
        return None
    try:
        weeks, days, hours, minutes = (int(g or 0) for g in match.groups())
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    except (OverflowError, ValueError):  # more digits than any duration has
        return timedelta.max


def text(value: Any) -> str:
    """A word, sentence or number written as text, stripped; raises if it is not one."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise TypeError("")
    if not str(value).strip():
        raise ValueError("the text is empty")
    return str(value).strip()


def texts(value: Any) -> list[str]:
    return [text(v) for v in _items(value)]


def address(value: Any) -> str:
    found = text(value).lower()
    if not ADDRESS.match(found):
        raise ValueError(f"{found!r} is not an email address")
    return found


def addresses(value: Any) -> list[str]:
    return [address(v) for v in _items(value)]


def duration(value: Any, longest: timedelta = LONGEST) -> timedelta:
    """A duration as written ('4h', '1d 4h'), more than nothing and at most `longest`."""
    found = parse_duration(text(value))
    if found is None or found <= timedelta(0):
        raise ValueError("")
    if found > longest:
        raise ValueError(f"{text(value)!r} is longer than {longest.days} days")
    written = DURATION.match(text(value))
    assert written is not None
    if int(written.group(3) or 0) * 60 + int(written.group(4) or 0) >= 24 * 60:
        raise ValueError(f"{text(value)!r} holds a day or more in hours or minutes; a day ('d') "
                         "counts a working day where a calendar applies, so write days and "
                         "hours, e.g. 3d or 1d 4h")
    return found


def size(value: Any) -> int:
    """'500KB', '25MB', '1.5GB' or a number of bytes, as bytes."""
    match = SIZE.match(str(value))
    if isinstance(value, bool) or not match:
        raise ValueError("")
    found = float(match.group(1)) * SIZE_UNITS[(match.group(2) or "b").lower()]
    if found > LARGEST:
        raise ValueError(f"{str(value).strip()!r} is more than 1TB")
    return int(found)


def whole(least: int, most: int = MOST, unit: str = "") -> Callable[[Any], int]:
    """A check that a value is a whole number from `least` to `most` (of `unit`)."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError("")
        if value > most:
            raise ValueError(f"{value}{unit} is more than {most}")
        return value
    return check


def _positive(most: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
            raise ValueError("")
        return float(value)
    return check


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError("")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("")
    return value


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        chosen = text(value)
        if chosen not in options:
            close = did_you_mean(chosen, options)
            close = f"; {close}" if "mean" in close else ""
            raise ValueError(f"unknown value {chosen!r}{close}")
        return chosen
    return check


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise TypeError("")
    return value
