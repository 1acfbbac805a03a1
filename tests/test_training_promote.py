"""Adapter promotion: only a better one moves refs/pantheon/adapters/<agent>; rollback; the runner uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.adapters import promoted_adapter
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import EVALS_NOTES
from pantheon_git.store.notes import read_note
from pantheon_git.training.promote import Evaluation, promote, rollback
from tests.conftest import git


def test_only_a_better_adapter_is_promoted_and_rollback_restores(repo_dir: Path, tmp_path: Path) -> None:
    repo = open_repo(repo_dir)
    adapter = tmp_path / "a.gguf"
    adapter.write_bytes(b"GGUF adapter v1")
    tasks = ["t1", "t2"]
    base = Evaluation("base", tasks, passed=["t1"])
    with pytest.raises(
        PantheonError, match=r"not promoted: it passed 1/2 held-out tasks, the current base passed 1/2"
    ):
        promote(repo, "implementer", adapter, Evaluation("a", tasks, passed=["t2"]), base)
    assert repo.references.get("refs/pantheon/adapters/implementer") is None
    first = promote(repo, "implementer", adapter, Evaluation("a", tasks, passed=["t1", "t2"]), base)
    assert "promote implementer@1: 2/2 held-out tasks (was 1/2)" in repo.get(first).message
    assert read_note(repo, EVALS_NOTES, first) is not None
    served = promoted_adapter(repo, "implementer")
    assert served is not None and served.read_bytes() == b"GGUF adapter v1"
    back = rollback(repo, "implementer")
    assert promoted_adapter(repo, "implementer") is None  # back to the base model
    assert git(repo_dir, "rev-list", "--count", "refs/pantheon/adapters/implementer").strip() == "2"
    assert repo.get(back).message.startswith("rollback implementer: back to the base model")
    with pytest.raises(PantheonError, match="same, non-empty held-out tasks"):
        promote(repo, "implementer", adapter, Evaluation("a", ["t1"], passed=["t1"]), base)
