"""Ref lock files are removed only when provably stale, never because they exist (attacks on a scratch repo).

A lock file on a ref means a writer is moving it right now, or was killed while doing so. Removing a live
writer's lock lets two writers interleave; these tests plant lock files as such a writer would.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pantheon_git.errors import ConflictError
from pantheon_git.queue.claims import claim
from pantheon_git.store.git import clear_stale_lock, common_dir, open_repo
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.locks import task_lock
from pantheon_git.store.runs import Step, make_step_commit, publish_step, start_run_branch
from tests.conftest import git


def planted_lock(repo_dir: Path, ref: str, age_s: float) -> Path:
    lock = common_dir(open_repo(repo_dir).path) / f"{ref}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    made = time.time() - age_s
    os.utime(lock, (made, made))
    return lock


def test_a_live_writers_lock_on_a_run_branch_is_left_alone(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    commit, parent = make_step_commit(repo, ref, Step("t1", "plan", "planner", "m", "planned"))
    lock = planted_lock(repo_dir, ref, age_s=0.0)  # another writer is moving the branch right now
    with pytest.raises(ConflictError, match="moved by another writer"):
        publish_step(repo, ref, commit, parent)
    assert lock.exists()
    assert git(repo_dir, "rev-parse", "pantheon/t1/1").strip() == str(parent)


def test_a_lock_left_before_this_runner_took_the_task_is_cleared(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    commit, parent = make_step_commit(repo, ref, Step("t1", "plan", "planner", "m", "planned"))
    lock = planted_lock(repo_dir, ref, age_s=2.0)  # a runner killed mid-write, two seconds ago
    with task_lock(repo.path, "t1") as locked:
        assert locked
        publish_step(repo, ref, commit, parent)  # every earlier holder of the task's lock is gone
    assert not lock.exists()
    assert git(repo_dir, "rev-parse", "pantheon/t1/1").strip() == str(commit)


def test_only_age_or_proof_clears_a_lock(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    fresh = planted_lock(repo_dir, "refs/notes/pantheon/votes", age_s=1.0)
    assert not clear_stale_lock(repo, "refs/notes/pantheon/votes") and fresh.exists()
    with pytest.raises(ValueError, match="positive"):
        clear_stale_lock(repo, "refs/notes/pantheon/votes", older_than=0)
    old = planted_lock(repo_dir, "refs/notes/pantheon/votes", age_s=120.0)
    assert clear_stale_lock(repo, "refs/notes/pantheon/votes") and not old.exists()


def test_a_claim_lock_left_by_a_killed_runner_does_not_block_its_task(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    assert claim(repo, repo_dir, "t1", None) is not None
    lock = planted_lock(repo_dir, claim_ref("t1"), age_s=2.0)  # killed while renewing the claim
    assert claim(repo, repo_dir, "t1", None) is None and lock.exists()  # without proof: left alone
    with task_lock(repo.path, "t1") as locked:
        assert locked
        resumed = claim(repo, repo_dir, "t1", None)
    assert resumed is not None and not lock.exists()


def test_a_resumed_attempt_checks_out_past_a_lock_its_killed_runner_left(repo_dir: Path) -> None:
    """SIGKILL between a runner writing `<branch>.lock` and renaming it leaves the lock file; the next
    night's checkout moves the branch (to where it is) and must not fail on it, nor wait 30 s."""
    from pantheon_git.night.attempt import PlannedNode, TaskPlan, choose_attempt, run_attempt
    from pantheon_git.night.nodes import NodeContext, NodeResult
    from tests.test_runner_task import queued

    spec = queued(repo_dir)
    repo = open_repo(repo_dir)

    def write(context: NodeContext) -> NodeResult:
        (context.worktree / "a.txt").write_text("a\n")
        return NodeResult(summary="wrote a.txt", output={})

    plan = TaskPlan(spec, [PlannedNode("write", "writer")], {"writer": write})
    ref = start_run_branch(repo, "t1", 1, repo.head.target)  # the killed night's attempt, no step yet
    lock = planted_lock(repo_dir, ref, age_s=2.0)
    with task_lock(repo.path, "t1") as locked:
        assert locked
        attempt = choose_attempt(repo, spec)
        assert attempt is not None and (attempt.number, attempt.resume) == (1, True)
        run = run_attempt(repo, repo_dir, plan, attempt, policy={})
    assert str(run.outcome) == "completed" and run.steps == ["write"]
    assert not lock.exists()
    assert git(repo_dir, "show", "pantheon/t1/1:a.txt") == "a\n"
