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
from tests.conftest import git, pantheon


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


def test_a_second_rollback_goes_one_version_further_back(repo_dir: Path, tmp_path: Path) -> None:
    repo = open_repo(repo_dir)
    tasks = ["t1", "t2", "t3"]
    blobs = []
    for number in (1, 2):
        adapter = tmp_path / f"v{number}.gguf"
        adapter.write_bytes(f"GGUF adapter v{number}".encode())
        blobs.append(adapter)
    promote(repo, "implementer", blobs[0], Evaluation("v1", tasks, ["t1", "t2"]), Evaluation("base", tasks))
    second = promote(
        repo, "implementer", blobs[1], Evaluation("v2", tasks, tasks), Evaluation("v1", tasks, ["t1", "t2"])
    )
    assert repo.get(second).message.startswith("promote implementer@2:")
    served = promoted_adapter(repo, "implementer")
    assert served is not None and served.read_bytes() == b"GGUF adapter v2"

    # Through the CLI, as the README documents it.
    first_back = pantheon(repo_dir, "train", "rollback", "--agent", "implementer")
    assert first_back.returncode == 0, first_back.stderr
    assert "back to promote implementer@1 (undoes promote implementer@2)" in first_back.stdout
    served = promoted_adapter(repo, "implementer")
    assert served is not None and served.read_bytes() == b"GGUF adapter v1"

    second_back = pantheon(repo_dir, "train", "rollback", "--agent", "implementer")
    assert second_back.returncode == 0, second_back.stderr
    assert promoted_adapter(repo, "implementer") is None  # not v2 again: the base model
    assert "back to the base model (undoes promote implementer@1)" in second_back.stdout

    nothing = pantheon(repo_dir, "train", "rollback", "--agent", "implementer")
    assert nothing.returncode == 2
    assert "no promoted adapter in force, nothing to roll back" in nothing.stderr
    assert git(repo_dir, "rev-list", "--count", "refs/pantheon/adapters/implementer").strip() == "4"

    # Versions count promotions, not rollbacks.
    third = promote(repo, "implementer", blobs[1], Evaluation("v2", tasks, tasks), Evaluation("base", tasks))
    assert repo.get(third).message.startswith("promote implementer@3:")


def test_promote_through_the_cli_checks_its_arguments_first(repo_dir: Path) -> None:
    missing = pantheon(repo_dir, "train", "promote", "--agent", "implementer")
    assert missing.returncode == 2
    assert "promote: give --adapter PATH" in missing.stderr
    absent = pantheon(repo_dir, "train", "promote", "--agent", "implementer", "--adapter", "no.gguf")
    assert absent.returncode == 2
    assert "--adapter: no.gguf: no such file" in absent.stderr
    assert repo_dir.joinpath(".git", "refs", "pantheon").exists() is False
