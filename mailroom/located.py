"""YAML that remembers where each value was written, so mistakes are reported as file:line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mailroom.errors import ConfigError, Problem

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: 5x faster


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
        return _convert(loader, node, file) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError([Problem(file, line, col, f"YAML syntax: {exc.problem}")]) from None
    finally:
        loader.dispose()


def _where(node: yaml.Node, file: str) -> Where:
    return Where(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(loader: Any, node: yaml.Node, file: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        return _mapping(loader, node, file)
    if isinstance(node, yaml.SequenceNode):
        items = Sequence(_convert(loader, item, file) for item in node.value)
        items.where, items.item_where = _where(node, file), [_where(i, file) for i in node.value]
        return items
    return loader.construct_object(node, deep=True)


def _mapping(loader: Any, node: yaml.MappingNode, file: str) -> Mapping:
    result = Mapping()
    result.where, result.key_where = _where(node, file), {}
    for key_node, value_node in node.value:
        key = str(loader.construct_object(key_node, deep=True))
        where = _where(key_node, file)
        if key in result:
            raise where.error(f"duplicate key {key!r}", "each key may appear once in a mapping")
        result[key] = _convert(loader, value_node, file)
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


def check_keys(mapping: Mapping, allowed: Iterable[str], what: str) -> list[Problem]:
    """Problems for each key of `mapping` that is not among `allowed`."""
    allowed = set(allowed)
    return [
        mapping.at(key).problem(f"unknown key {key!r} in {what}", did_you_mean(key, allowed))
        for key in mapping
        if key not in allowed
    ]


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

    def unknown_keys(self, mapping: Mapping, allowed: Iterable[str], what: str) -> None:
        self.problems += check_keys(mapping, allowed, what)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(sorted(self.problems, key=lambda p: (p.line, p.col)))
