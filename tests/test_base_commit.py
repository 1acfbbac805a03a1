"""Reviewers see the right diff: the base is resolved to a commit when the run starts and recorded.

The base branch moves while the run is under way (someone pushes to main overnight); a detached base has
no branch name at all. The reviewer's executor here is the real diff it would be shown (`review_diff`);
which model reads that diff is not what is tested.
"""

from __future__ import annotations

import json
from pathlib import Path

from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, run_attempt
from pantheon_git.night.executors import review_diff
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from tests.conftest import git
from tests.test_runner_task import POLICY


def run_with_moving_base(repo_dir: Path, base: str) -> tuple[dict[str, str], str]:
    spec = stamp(Spec(id="t1", title="add a", acceptance=["true"]), author="a <a@b>", base=base)
    enqueue(open_repo(repo_dir), [spec])
    started_at = git(repo_dir, "rev-parse", "HEAD").strip()
    seen: dict[str, str] = {}

    def implement(context: NodeContext) -> NodeResult:
        (context.worktree / "a.txt").write_text("the change\n")
        # Meanwhile the base branch moves on: a commit the run knows nothing about.
        (repo_dir / "b.txt").write_text("someone else's work\n")
        git(repo_dir, "add", "b.txt")
        git(repo_dir, "commit", "-q", "-m", "unrelated work on main")
        return NodeResult(summary="wrote a.txt")

    def review(context: NodeContext) -> NodeResult:
        seen["base"] = context.base
        seen["diff"] = review_diff(context)
        return NodeResult(summary="reviewed")

    nodes = [PlannedNode("implement", "b"), PlannedNode("review", "c", inputs=("implement",))]
    run = run_attempt(
        open_repo(repo_dir),
        repo_dir,
        TaskPlan(spec, nodes, {"b": implement, "c": review}),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert run.outcome == "completed", run.detail
    return seen, started_at


def test_reviewers_diff_against_the_commit_the_run_started_from(repo_dir: Path) -> None:
    seen, started_at = run_with_moving_base(repo_dir, "main")
    assert seen["base"] == started_at
    assert "a.txt" in seen["diff"] and "b.txt" not in seen["diff"]
    first = git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", "pantheon/t1/1~1")
    assert f"base={started_at}" in first.split()  # folded into the first step's trailer line
    trace = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", "pantheon/t1/1"))
    assert trace["base"] == started_at


def test_a_detached_base_works(repo_dir: Path) -> None:
    sha = git(repo_dir, "rev-parse", "HEAD").strip()
    git(repo_dir, "checkout", "-q", "--detach", sha)
    git(repo_dir, "checkout", "-q", "main")
    seen, started_at = run_with_moving_base(repo_dir, sha)
    assert seen["base"] == sha == started_at
    assert "a.txt" in seen["diff"] and "b.txt" not in seen["diff"]
