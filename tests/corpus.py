"""The shared problem-mail corpus (../shared/corpus): every message file, and Zammad's oracles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

# Named by MAILROOM_CORPUS (as .ci/run does), the corpus is required; else an optional extra.
REQUIRED = bool(os.environ.get("MAILROOM_CORPUS"))
ROOT = Path(os.environ.get("MAILROOM_CORPUS") or
            Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")
needed = pytest.mark.skipif(not REQUIRED and not ROOT.is_dir(),
                            reason=f"no problem-mail corpus at {ROOT} (MAILROOM_CORPUS names it)")
NOT_MAIL = {".yml", ".md", ".json"}


def files() -> list[Path]:
    """Every message file of the corpus, sorted; empty when the corpus is not beside the repo."""
    if not ROOT.is_dir():
        return []
    return sorted(p for p in ROOT.rglob("*")
                  if p.is_file() and p.suffix not in NOT_MAIL and p.name != "SHA256SUMS")


def zammad_expectation(box: Path) -> dict[str, Any]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor(
        "!ruby/", lambda loader, suffix, node: loader.construct_mapping(node, deep=True))
    with box.with_suffix(".yml").open(encoding="utf-8") as stream:
        return yaml.load(stream, Loader=Loader)
