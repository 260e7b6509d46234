"""Config loading: the example files load, and each kind of mistake names file, line and fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailroom import config, rules
from mailroom.errors import ConfigError, Problem
from mailroom.located import loads
from mailroom.rules.loader import build

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

ROOT = Path(__file__).parent.parent
MISTAKES = sorted((Path(__file__).parent / "data" / "config-mistakes").glob("*.yaml"))
UNKNOWN_KEY = Path(__file__).parent / "data" / "config-mistakes" / "unknown-key.yaml"
VALID = UNKNOWN_KEY.read_text().split("\n", 1)[1].replace(", pth: x", "")
RULE = ("rules: [{name: r, if: {}, then: {department: hr, sla: {first_response: 4h}}}]\n"
        "fallback: {department: triage}\n")


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", MISTAKES, ids=lambda p: p.stem)
def test_each_mistake_is_reported_with_file_and_line(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}:{expected(path)}")


def test_demo_config_loads_with_paths_relative_to_it() -> None:
    loaded = config.load(ROOT / "config" / "demo.yaml")
    assert loaded.inbox.path is not None
    assert loaded.inbox.path.resolve() == (ROOT / "var" / "inbox").resolve()
    assert loaded.database_url == f"sqlite:///{(ROOT / 'var' / 'mailroom.db').resolve()}"
    assert loaded.departments["it"].sla.first_response == timedelta(hours=2)
    assert set(loaded.departments) == {"hr", "finance", "it", "ga", "triage"}


def test_a_plain_postgresql_url_goes_through_psycopg(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.yaml"
    path.write_text(UNKNOWN_KEY.read_text().replace(", pth: x", "").replace(
        "sqlite:///x.db", "postgresql://mailroom@db.local/mailroom"))
    loaded = config.load(path)
    assert loaded.database_url == "postgresql+psycopg://mailroom@db.local/mailroom"


def test_example_config_loads_when_its_secrets_are_in_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAILROOM_SECRET", "MAILROOM_IMAP_PASSWORD", "MAILROOM_SMTP_PASSWORD"):
        monkeypatch.setenv(name, f"value-of-{name}-long-enough-for-a-secret")
    loaded = config.load(ROOT / "config" / "mailroom.example.yaml")
    assert loaded.inbox.server is not None and loaded.inbox.server.port == 993
    assert loaded.inbox.server.password is not None
    assert loaded.inbox.server.password.reveal().startswith("value-of-MAILROOM_IMAP_PASSWORD")
    assert "value-of" not in repr(loaded)


def test_secret_from_a_file_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("hunter2-hunter2-hunter2-hunter2-hunter2\n")
    path = tmp_path / "mailroom.yaml"
    path.write_text(VALID.replace("test-secret-of-thirty-two-characters", "file:secret.txt"))
    loaded = config.load(path)
    assert loaded.service.secret.reveal() == "hunter2-hunter2-hunter2-hunter2-hunter2"
    assert "hunter2" not in repr(loaded.service) and "hunter2" not in str(loaded)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(UNKNOWN_KEY.read_text().replace("language: id", "language: xx")
                    .replace("resolution: 3d", "resolution: never"))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert len(caught.value.problems) == 3


def problems_in(text: str, tmp_path: Path) -> list[Problem]:
    path = tmp_path / "mailroom.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    return caught.value.problems


@pytest.mark.parametrize("duration", ["soon", "0m", "4 hours", "5", "[4h]"])
def test_a_bad_duration_reads_the_same_in_a_department_and_in_a_rule(
        duration: str, tmp_path: Path) -> None:
    in_config = problems_in(VALID.replace("first_response: 4h", f"first_response: {duration}"),
                            tmp_path)
    rule = loads(RULE.replace("first_response: 4h", f"first_response: {duration}"), "rules.yaml")
    with pytest.raises(ConfigError) as in_rule:
        build(rule, "rules.yaml", "v1", rules.Known({"hr": frozenset(), "triage": frozenset()}))
    assert [(p.message.removeprefix("departments.hr."), p.hint) for p in in_config] == [
        (p.message.removeprefix("then."), p.hint) for p in in_rule.value.problems]


@pytest.mark.parametrize("inbox", [
    "inbox: {kind: maildri, path: inbox}", "inbox: {path: inbox}", "inbox: maildir", "",
    "inbox: {kind: maildir, path: inbox, pth: x}", "inbox: {kind: imap, host: h, port: 0}",
    "inbox: {kind: imap}", "inbox: {kind: imap, host: h, path: inbox}"])
def test_a_mistake_in_the_inbox_is_reported_once(inbox: str, tmp_path: Path) -> None:
    text = VALID.replace("inbox: {kind: maildir, path: inbox}", inbox)
    assert ["inbox" in p.message for p in problems_in(text, tmp_path)] == [True]


@pytest.mark.parametrize(("text", "minutes"), [
    ("30m", 30), ("4h", 240), ("3d", 4320), ("1d 4h", 1680), ("2w", 20160)])
def test_durations(text: str, minutes: int) -> None:
    assert config.parse_duration(text) == timedelta(minutes=minutes)


def test_a_bad_config_stops_the_command_with_file_and_line_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mailroom.cli import main

    path = tmp_path / "mailroom.yaml"
    path.write_text(UNKNOWN_KEY.read_text())
    assert main(["--config", str(path), "check"]) == 78
    err = capsys.readouterr().err
    assert f"{path}:2:37: unknown key 'pth' in inbox" in err
    assert "Traceback" not in err
