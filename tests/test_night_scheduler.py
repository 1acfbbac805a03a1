"""One scheduler for every `--jobs`: the attempts a night runs are chosen by one function
(`attempt.choose_attempts`, under the task's lock), so one job and two resume a killed night alike.

Model-free: two runner-side nodes, the second failing, so every attempt ends (failed) without a gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygit2
import pytest

from pantheon_git.night import shift
from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, TaskRun, run_attempt
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.setup import NightSetup
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo

NODES = [PlannedNode("first", "ok"), PlannedNode("last", "no", inputs=("first",))]


def _ok(_context: NodeContext) -> NodeResult:
    return NodeResult(summary="ok")


def _no(_context: NodeContext) -> NodeResult:
    return NodeResult(summary="failed: no", ok=False, error="no")


EXECUTORS = {"ok": _ok, "no": _no}


def _killed_with_two_attempts_in_flight(repo_dir: Path) -> pygit2.Repository:
    """A task whose attempts 1 and 2 each published their first step, then lost their runner."""
    spec = Spec(id="k1", title="killed", acceptance=["true"], limits={"samples": 2})
    spec = stamp(spec, author="a <a@b>", base="main")
    repo = open_repo(repo_dir)
    enqueue(repo, [spec])
    for number in (1, 2):
        alive = iter([True, False])  # the claim holds for the first node, then is gone
        cut = run_attempt(
            repo,
            repo_dir,
            TaskPlan(spec, NODES, EXECUTORS),
            Attempt(number, resume=False),
            policy={},
            keep_alive=lambda alive=alive: next(alive),
        )
        assert (cut.outcome, cut.steps) == ("skipped", ["first"])
    return repo


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_job_and_two_resume_every_attempt_a_killed_night_left(
    repo_dir: Path, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _killed_with_two_attempts_in_flight(repo_dir)
    chosen: list[list[Attempt]] = []
    real = shift.choose_attempts

    def spy(*args: Any, **kwargs: Any) -> list[Attempt]:
        chosen.append(real(*args, **kwargs))
        return chosen[-1]

    monkeypatch.setattr(shift, "choose_attempts", spy)
    setup = NightSetup(
        policy={},
        remote=None,
        max_tasks=5,
        claim_expiry_minutes=60,
        flow_for=lambda _name, _labels=(): (NODES, EXECUTORS),
    )
    events: list[dict[str, Any]] = []
    results = shift.run_tasks(repo, repo_dir, setup=setup, jobs=jobs, on_event=events.append)
    # Chosen once, under the task's lock: both unfinished attempts resumed (one job used to resume only
    # the newest, and the older one was never finished).
    assert chosen == [[Attempt(1, resume=True), Attempt(2, resume=True)]]
    assert [(event["attempt"], event["resume"]) for event in events if event["event"] == "task"] in (
        [(1, True), (2, True)],
        [(2, True), (1, True)],  # two jobs: started at once
    )
    runs = [(run.attempt, run.outcome, run.steps) for run in results if isinstance(run, TaskRun)]
    assert runs == [(1, "failed", ["first", "last"]), (2, "failed", ["first", "last"])]
    # One job tags nothing; more tag each node and step event with its job.
    tags = {event.get("job") for event in events if event["event"] in ("node", "step")}
    assert tags == ({None} if jobs == 1 else {"k1#1", "k1#2"})
    assert shift.choose_attempts is spy and not hasattr(shift, "run_concurrently")
