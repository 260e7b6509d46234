"""Config loading: the example files load, and each kind of mistake names file, line and fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailroom import config
from mailroom.errors import ConfigError

ROOT = Path(__file__).parent.parent
MISTAKES = sorted((Path(__file__).parent / "data" / "config-mistakes").glob("*.yaml"))
UNKNOWN_KEY = Path(__file__).parent / "data" / "config-mistakes" / "unknown-key.yaml"


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
    text = (UNKNOWN_KEY.read_text().split("\n", 1)[1].replace(", pth: x", "")
            .replace("test-secret-of-thirty-two-characters", "file:secret.txt"))
    path = tmp_path / "mailroom.yaml"
    path.write_text(text)
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
