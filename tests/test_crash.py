"""The daemon killed at random points records, acknowledges and sends each mail exactly once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.crash import Crashes, Letter, check, deliver, install, letters, run_trial
from mailroom.clock import Clock
from mailroom.daemon import Daemon

QUICK = Crashes(max_delay=1.0, early_share=0.2, max_kills=2)


@pytest.mark.parametrize("seed", [11, 12])
def test_a_daemon_killed_at_random_points_doubles_and_loses_nothing(tmp_path: Path,
                                                                     seed: int) -> None:
    trial = run_trial(tmp_path, 60, seed, QUICK)
    found = trial.findings
    assert trial.kills >= 1
    assert (found.duplicates, found.lost, found.unexpected) == ([], [], [])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Letter]]:
    """An inbox of 12 mails drained once by the daemon, without a crash."""
    folder = tmp_path_factory.mktemp("served")
    mails = letters(12, seed=1)
    daemon = Daemon(install(folder), Clock())
    deliver(folder, mails)  # after the first start: mail to answer, not to adopt
    daemon.run_once()
    daemon.close()
    return folder, mails


@pytest.fixture
def site(served: tuple[Path, list[Letter]], tmp_path: Path) -> Path:
    """A copy of the served installation, its config pointing into the copy."""
    copy = tmp_path / "site"
    shutil.copytree(served[0], copy)
    install(copy)
    return copy


def test_a_run_without_a_crash_is_clean(served: tuple[Path, list[Letter]]) -> None:
    folder, mails = served
    assert {m.kind for m in mails} == {"new", "reply", "auto"}
    assert check(folder, mails).clean


def test_an_acknowledgment_written_twice_is_a_duplicate(
        site: Path, served: tuple[Path, list[Letter]]) -> None:
    ack = next(p for p in (site / "outbox" / "new").iterdir() if b".ack." in p.read_bytes())
    shutil.copy(ack, ack.with_name(ack.name + ".again"))  # sent again, as after a kill
    found = check(site, served[1])
    assert len(found.duplicates) == 2  # the mail written twice, its request acknowledged twice
    assert any("acks written" in d for d in found.duplicates) and not found.lost


def test_a_mail_taken_twice_is_a_duplicate(site: Path, served: tuple[Path, list[Letter]]) -> None:
    again = served[1][0]
    deliver(site, [Letter("999999.again", again.message_id, again.kind, again.raw)])
    daemon = Daemon(site / "mailroom.yaml", Clock())
    daemon.run_once()
    daemon.close()
    found = check(site, served[1])
    assert [d.partition(":")[0] for d in found.duplicates] == [
        f"{again.message_id} recorded 2 times"]


def test_a_mail_never_taken_is_lost(site: Path, served: tuple[Path, list[Letter]]) -> None:
    unread = letters(13, seed=1)[-1]
    deliver(site, [unread])
    found = check(site, [*served[1], unread])
    assert unread.kind == "new"
    requests = sum(m.kind == "new" for m in served[1])
    assert sorted(found.lost) == [
        f"{unread.key} {unread.message_id} ({unread.kind}): no outcome",
        f"{unread.key} {unread.message_id}: not in Processed",
        f"{unread.key}: still in the inbox",
        f"{requests} requests for {requests + 1} new request mails"]
    assert not found.duplicates
