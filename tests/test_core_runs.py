"""Run branches: step commits from in-memory trees or a worktree, trailers, CAS, and derived status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.queue.status import Status, derive_status, task_states
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.runs import (
    Step,
    attempts,
    commit_step,
    parse_trailers,
    start_run_branch,
    worktree_tree,
)
from pantheon_git.store.votes import Vote, append_votes
from tests.conftest import git, pantheon


def step(name: str, summary: str = "did it", task: str = "t1", **extra: str) -> Step:
    return Step(
        task=task, step=name, agent="implementer", model="gemma3-270m@abc123", summary=summary, extra=extra
    )


def test_in_memory_step_commits_and_trailers(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    base = repo.head.target
    ref = start_run_branch(repo, "t1", 1, base)
    first = commit_step(
        repo, ref, step("implement", "add hello\n\nlonger body"), changes={"src/hello.txt": b"hi\n"}
    )
    second = commit_step(repo, ref, step("review-a"))  # nothing changed: still a commit
    assert git(repo_dir, "show", "pantheon/t1/1~1:src/hello.txt") == "hi\n"
    assert git(repo_dir, "rev-parse", "pantheon/t1/1^{tree}") == git(
        repo_dir, "rev-parse", "pantheon/t1/1~1^{tree}"
    )
    assert git(repo_dir, "rev-list", "--count", f"{base}..pantheon/t1/1").strip() == "2"
    parsed = git(
        repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", str(first)
    ).strip()
    # git's own trailer parser reads the one folded line; every step binds its task, attempt and base.
    assert parsed == f"implement task=t1 attempt=1 base={base}"
    message = repo.get(first).message
    # The subject and the trailer line only: the summary's further lines are the trace note's.
    assert message == f"implement: add hello\n\nPantheon-Step: implement task=t1 attempt=1 base={base}\n"
    assert parse_trailers(message) == {
        "Pantheon-Task": "t1",
        "Pantheon-Step": "implement",
        "Pantheon-Attempt": "1",
        "Pantheon-Base": str(base),
    }
    assert str(second) == git(repo_dir, "rev-parse", "pantheon/t1/1").strip()
    # The branch was never checked out: the user's work tree is untouched.
    assert not (repo_dir / "src").exists() and git(repo_dir, "status", "--porcelain") == ""


def test_folded_fields_read_back_as_the_trailers_they_stand_for(repo_dir: Path) -> None:
    extra = {"Pantheon-Attempt": "2", "Pantheon-Base": "ab" * 20, "Pantheon-Outcome": "failed"}
    extra |= {"Pantheon-Log": "FAILED · implementer · 1.0 s", "Pantheon-Error": "tests\ncrashed"}
    message = step("implement", "broke it", **extra).message()
    assert message == (
        f"implement: broke it\n\nPantheon-Step: implement task=t1 attempt=2 base={'ab' * 20} outcome=failed\n"
        "Pantheon-Log: FAILED · implementer · 1.0 s\nPantheon-Error: tests crashed\n"
    )
    assert parse_trailers(message) == {
        "Pantheon-Step": "implement",
        "Pantheon-Task": "t1",
        "Pantheon-Attempt": "2",
        "Pantheon-Base": "ab" * 20,
        "Pantheon-Outcome": "failed",
        "Pantheon-Log": "FAILED · implementer · 1.0 s",
        "Pantheon-Error": "tests crashed",
    }
    # git reads it as three trailers; a run recorded with one trailer a field still parses the same.
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True
    )
    assert [line.split(": ")[0] for line in parsed.stdout.splitlines()] == [
        "Pantheon-Step",
        "Pantheon-Log",
        "Pantheon-Error",
    ]
    old = "implement: x\n\nPantheon-Task: t1\nPantheon-Step: implement\n"
    old += "Pantheon-Attempt: 2\nPantheon-Outcome: failed\n"
    assert parse_trailers(old) == {
        "Pantheon-Task": "t1",
        "Pantheon-Step": "implement",
        "Pantheon-Attempt": "2",
        "Pantheon-Outcome": "failed",
    }
    # The baseline's summary already names its step: the subject does not repeat it.
    assert step("baseline", "baseline: 0/1 checks pass").message().startswith("baseline: 0/1 checks pass\n\n")


def test_run_branch_is_create_only(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    start_run_branch(repo, "t1", 1, repo.head.target)
    with pytest.raises(PantheonError, match="already exists"):
        start_run_branch(repo, "t1", 1, repo.head.target)
    start_run_branch(repo, "t1", 2, repo.head.target)
    assert attempts(repo, "t1") == [1, 2]


def test_step_from_a_worktree_state(repo_dir: Path, tmp_path: Path) -> None:
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    wt = tmp_path / "wt"
    git(repo_dir, "worktree", "add", "-q", str(wt), "pantheon/t1/1")
    (wt / "new.txt").write_text("new\n")
    (wt / "README.md").unlink()
    (wt / ".gitignore").write_text("*.log\n")
    (wt / "noise.log").write_text("ignored\n")
    commit = commit_step(repo, ref, step("implement"), tree=worktree_tree(wt))
    files = git(repo_dir, "ls-tree", "-r", "--name-only", str(commit)).split()
    assert files == [".gitignore", ".pantheon/allowed_signers", "new.txt"]
    # The worktree's branch moved with the commit and its index matches: nothing left to commit.
    assert git(wt, "status", "--porcelain") == ""


def test_status_is_derived_from_refs_and_notes(repo_dir: Path) -> None:
    assert derive_status(cancelled=False, claimed=False, outcome=None) is Status.QUEUED
    assert derive_status(cancelled=True, claimed=True, outcome=Status.MERGED) is Status.MERGED
    assert derive_status(cancelled=True, claimed=False, outcome=Status.PASSED) is Status.CANCELLED

    repo = open_repo(repo_dir)
    specs = [
        stamp(Spec(id=f"t{i}", title=f"task {i}", acceptance=["true"]), author="a <a@b>", base="main")
        for i in range(1, 6)
    ]
    enqueue(repo, specs)
    base = repo.head.target
    repo.references.create(claim_ref("t2"), base)
    running = start_run_branch(repo, "t3", 1, base)
    commit_step(repo, running, step("plan", task="t3"))  # a step is bound to its branch's task
    failed = start_run_branch(repo, "t4", 1, base)
    commit_step(repo, failed, step("implement", "error", task="t4", **{"Pantheon-Outcome": "failed"}))
    passed = start_run_branch(repo, "t5", 1, base)
    head = commit_step(repo, passed, step("gate", task="t5"))
    append_votes(repo, head, [Vote(kind="gate", voter="gate", verdict="approve")])
    statuses = {state.id: state.status.value for state in task_states(repo)}
    assert statuses == {"t1": "queued", "t2": "claimed", "t3": "running", "t4": "failed", "t5": "passed"}
    append_votes(repo, head, [Vote(kind="merge", voter="merge", verdict="approve")])
    rows = json.loads(pantheon(repo_dir, "list", "--json", "--status", "merged").stdout)
    assert [row["id"] for row in rows] == ["t5"] and rows[0]["attempts"] == [1]
