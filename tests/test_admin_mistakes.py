"""Hostile values anywhere in the shipped config and rules: a load, or file:line problems only."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom import config, rules
from mailroom.errors import ConfigError
from mailroom.parse import Attachment, Inbound

ROOT = Path(__file__).parent.parent
CONFIGS = (ROOT / "config" / "demo.yaml", ROOT / "config" / "mailroom.example.yaml")
ENVIRONMENT = ("MAILROOM_SECRET", "MAILROOM_IMAP_PASSWORD", "MAILROOM_SMTP_PASSWORD")
EVERY_CONDITION = """
rules:
  - name: every field
    if:
      from: {glob: '*@vendor.example'}
      from_domain: [vendor.example]
      to: [layanan+it@contoh.co.id]
      cc: {regex: '^joko@'}
      delivered_to: {equals: hr@contoh.co.id}
      subject: {any: [gaji], whole_words: false}
      body: {all: [laptop, rusak]}
      header: {X-Priority: {equals: '1'}, List-Id: {exists: false}, Keywords: [urgent]}
      attachments: {content_type: [application/pdf], filename: '*.pdf'}
      language: [id, en]
      sender_in: [finance]
      received: {weekdays: [mon, tue], hours: '17:00-07:00'}
      size: {over: 5KB, under: 25MB}
      any: [{text: [vpn]}, {not: {language: [en]}}]
    then: {department: it, priority: urgent, category: access, tags: [vip], cc: [a@contoh.co.id],
           sla: {first_response: 1h, resolution: 2d}, templates: vip}
  - name: watched
    if: {from: [direktur@contoh.co.id]}
    then: {tags: [direksi], cc: [sekretariat@contoh.co.id]}
    continue: true
  - name: noise
    if: {header: {List-Id: {exists: true}}}
    then: {ignore: newsletter}
fallback: {department: triage, priority: low}
"""
RAW = {  # YAML that a dumper never writes, placed as it is where a value was
    "RAW_DEEP_LIST": "[" * 600 + "]" * 600,
    "RAW_DEEP_MAP": "{a: " * 600 + "1" + "}" * 600,
    "RAW_BAD_DATE": "2026-12-32",
    "RAW_BAD_TIME": "2026-02-28 25:61:00",
    "RAW_OCTAL": "0123",
    "RAW_SEXAGESIMAL": "12:30:45",
    "RAW_INFINITY": ".inf",
    "RAW_NAN": ".nan",
    "RAW_HEX": "0x7fffffffffffffffffffffffffff",
    "RAW_BINARY": "!!binary 'not base64!'",
    "RAW_PYTHON": "!!python/name:os.system",
    "RAW_ALIAS": "*nowhere",
    "RAW_HUGE_DIGITS": "9" * 5000,
}
WORDS = ("", " ", "25:99", "17:00-07:60", "24:30-08:00", "99999999999d", "99999999999w 9d",
         "0m", "-4h", "1e400", "9" * 400 + "GB", "99999999999GB", "-1", "0.5", "true", "null",
         "env:MAILROOM_NOT_SET_ANYWHERE", "file:/nonexistent/secret", "file:.", "file:",
         "env:", "a\x00b", "x" * 300, "A/" * 200, "../../../etc/passwd", "Ωmega ünïcode 😀",
         "\u202e\ufeff", "(a+)+$", "[", "(?<=x)y", "*", "mon-sun", "sun-mon", "fri", "ID",
         "XX", "Asia/Jakarta", "hr", "triage", "vip", "plus", "imap", "maildir", "smtp",
         "layanan@contoh.co.id", "08:00-12:00,11:00-17:00", "24:00-24:00", "50%", "100%")
REMOVED = object()  # the key is left out
HOSTILE = st.one_of(
    st.just(REMOVED),
    st.sampled_from(WORDS),
    st.sampled_from(tuple(RAW)),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from((0, -1, 1, 2**31, 2**63, 10**100, -(10**100))),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    st.text(max_size=40),
    st.recursive(st.sampled_from(("", "x", 0, -1, 0.5, None, True, "25:99")),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.sampled_from(("a", "hours", "mon", "1", "")), inner,
                                   max_size=3), max_leaves=8),
)

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


def key_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a parsed document where a value sits, containers included."""
    if path:
        yield path
    children = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from key_paths(child, (*path, key))


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of `document` with `value` at `path`, or without that key if it is REMOVED."""
    copy = dict(document) if isinstance(document, dict) else list(document)
    head, rest = path[0], path[1:]
    if rest:
        copy[head] = replaced(copy[head], rest, value)
    elif value is REMOVED:
        del copy[head]
    else:
        copy[head] = value
    return copy


def dumped(document: Any) -> str:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1000)
    for marker, raw in RAW.items():
        text = text.replace(marker, raw)
    return text


def loads_or_names_lines(load: Callable[[], Any]) -> Any:
    """What `load` returns; when it refuses, every problem must say where it is."""
    try:
        return load()
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without problems"
        assert all(p.line > 0 and p.col > 0 for p in exc.problems), str(exc)
        return None


def documents(paths: tuple[Path, ...] | list[Path]) -> list[Any]:
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in paths]


def rules_documents() -> list[Any]:
    examples = (ROOT / "docs" / "rules.md").read_text().split("```yaml\n")[1:]
    written = [yaml.safe_load(block.split("```", 1)[0]) for block in examples]
    shipped = documents([ROOT / "config" / "rules.example.yaml"])
    return [d for d in shipped + written + [yaml.safe_load(EVERY_CONDITION)]
            if isinstance(d, dict) and "fallback" in d]


CONFIG_DOCUMENTS = documents(CONFIGS)
RULES_DOCUMENTS = rules_documents()


def edits(sources: list[Any]) -> st.SearchStrategy[tuple[Any, tuple[Any, ...], Any]]:
    """(document, key path, hostile value) over every key path of every document."""
    return st.sampled_from(sources).flatmap(lambda document: st.tuples(
        st.just(document), st.sampled_from(list(key_paths(document))), HOSTILE))


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as name:
        for variable in ENVIRONMENT:
            patch.setenv(variable, f"value-of-{variable}-long-enough-for-a-secret")
        patch.delenv("MAILROOM_NOT_SET_ANYWHERE", raising=False)
        yield Path(name)


@pytest.fixture(scope="module")
def known() -> rules.Known:
    loaded = config.load(ROOT / "config" / "demo.yaml")
    members = {key: frozenset({d.address, *d.members}) for key, d in loaded.departments.items()}
    return rules.Known(members, frozenset({"vip"}), loaded.service.timezone)


HUNT = settings(max_examples=int(os.environ.get("MAILROOM_HUNT_EXAMPLES", "100")),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


@HUNT
@given(edit=edits(CONFIG_DOCUMENTS))
def test_a_hostile_value_anywhere_in_the_config_is_a_located_problem(
        edit: tuple[Any, tuple[Any, ...], Any], folder: Path) -> None:
    document, path, value = edit
    target = folder / "mailroom.yaml"
    target.write_text(dumped(replaced(document, path, value)), encoding="utf-8")
    loads_or_names_lines(lambda: config.load(target))


@HUNT
@given(edit=edits(RULES_DOCUMENTS))
def test_a_hostile_value_anywhere_in_the_rules_is_a_located_problem_or_routes(
        edit: tuple[Any, tuple[Any, ...], Any], folder: Path, known: rules.Known) -> None:
    document, path, value = edit
    target = folder / "rules.yaml"
    target.write_text(dumped(replaced(document, path, value)), encoding="utf-8")
    ruleset = loads_or_names_lines(lambda: rules.load(target, known))
    if ruleset is not None:
        route = rules.route(ruleset, SAMPLE, datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
                            explain=True)
        assert route.ignore is not None or route.department in known.departments


SAMPLE = Inbound(message_id="<m@x>", sender="direktur@contoh.co.id",
                 subject="Gaji: laptop rusak, server down", text="vpn laptop rusak",
                 new_text="vpn laptop rusak", language="id", size=6000,
                 to=("layanan+it@contoh.co.id",), headers={"x-priority": ("1",)},
                 attachments=(Attachment("a.pdf", "application/pdf", 9),))

PLAIN = ("service:\n  address: layanan@contoh.co.id\n  secret: {secret}\n"
         "inbox: {{kind: imap, host: imap.contoh.co.id, username: u, password: {password}}}\n"
         "outgoing: {{kind: maildir, path: outbox}}\ndatabase: {{url: 'sqlite:///x.db'}}\n"
         "rules: rules.yaml\ntemplates: templates\n"
         "departments: {{hr: {{address: hr@contoh.co.id}}}}\n")
LONG_SECRET = "plain-secret-of-more-than-thirty-two-characters"


def written(tmp_path: Path, mode: int, secret: str = LONG_SECRET,
            password: str = "env:MAILROOM_IMAP_PASSWORD") -> Path:
    path = tmp_path / "mailroom.yaml"
    path.write_text(PLAIN.format(secret=secret, password=password))
    path.chmod(mode)
    return path


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_plain_secret_in_a_file_others_may_read_draws_one_warning(
        mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MAILROOM_IMAP_PASSWORD", "from-the-environment")
    path = written(tmp_path, mode, password="hunter2-in-plain")
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        config.load(path)
    assert warnings_of(caplog) == [
        f"{path}: readable by others and holds a plain password (service.secret, "
        "inbox.password); chmod 600 it or use env:/file:"]


@pytest.mark.parametrize(("mode", "secret"), [
    (0o600, LONG_SECRET), (0o400, LONG_SECRET), (0o644, "env:MAILROOM_SECRET"),
    (0o644, "file:secret.txt"), (0o644, "' env:MAILROOM_SECRET'")])
def test_no_warning_for_a_private_file_or_a_secret_kept_elsewhere(
        mode: int, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MAILROOM_SECRET", LONG_SECRET)
    monkeypatch.setenv("MAILROOM_IMAP_PASSWORD", "from-the-environment")
    (tmp_path / "secret.txt").write_text(LONG_SECRET)
    path = written(tmp_path, mode, secret)
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        config.load(path)
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(("secret", "password", "hidden"), [
    ("short-hunter2", "env:MAILROOM_IMAP_PASSWORD", "hunter2"),
    ("'20261345'", "env:MAILROOM_IMAP_PASSWORD", "20261345"),
    ("2026-13-45", "env:MAILROOM_IMAP_PASSWORD", "2026-13-45"),
    (LONG_SECRET, "[hunter2, x]", "hunter2"),
    (LONG_SECRET, "{hunter2: x}", "hunter2"),
    ("[hunter2-hunter2-hunter2-hunter2-hunter2]", "env:MAILROOM_IMAP_PASSWORD", "hunter2"),
])
def test_an_error_about_a_secret_never_shows_it(
        secret: str, password: str, hidden: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MAILROOM_IMAP_PASSWORD", "from-the-environment")
    path = written(tmp_path, 0o600, secret, password)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problems and all(p.line > 0 for p in caught.value.problems)
    shown = str(caught.value) + repr(caught.value.problems) + caplog.text
    assert hidden.lower() not in shown.lower(), shown


@pytest.mark.parametrize("password", ["0123", "12:30:45", "2026-13-45", "1234.5678", "1e3",
                                      "true", "0x1F", "-.inf"])
def test_a_password_is_read_as_written_not_as_the_number_or_date_yaml_sees(
        password: str, tmp_path: Path) -> None:
    loaded = config.load(written(tmp_path, 0o600, password=password))
    assert loaded.inbox.server is not None and loaded.inbox.server.password is not None
    assert loaded.inbox.server.password.reveal() == password


def test_a_secret_hides_itself_however_it_is_shown() -> None:
    secret = config.Secret("hunter2-hunter2")
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", format(secret, ""),
             str([secret]), str({"password": secret}), logging.makeLogRecord(
                 {"msg": "%s %r", "args": (secret, secret)}).getMessage()]
    assert all("hunter2" not in text for text in shown), shown
    assert secret.reveal() == "hunter2-hunter2"


@pytest.mark.parametrize("nested", ["[" * 990 + "]" * 990, "{a: " * 990 + "1" + "}" * 990])
def test_nesting_as_deep_as_yaml_allows_is_a_located_problem(nested: str,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - {nested}\nfallback: {{department: triage}}\n")
    with pytest.raises(ConfigError) as caught:
        rules.load(path, rules.Known({"triage": frozenset()}))
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (2, "lists or mappings nested more than 50 deep")]
