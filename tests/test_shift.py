"""The night's task loop: what counts against `max_tasks` when a night is shared between clones.

The flow here needs no model (acceptance, then a gate with min_approvals = 0): the runner's real
executors, real claims pushed to a real bare remote; which agent runs is not what is tested.
"""

from __future__ import annotations

from pathlib import Path

from pantheon_git.night.attempt import PlannedNode, TaskRun
from pantheon_git.night.executors import acceptance_executor, gate_executor
from pantheon_git.night.setup import NightSetup
from pantheon_git.night.shift import Skipped, run_tasks
from pantheon_git.queue.claims import claim
from pantheon_git.queue.status import Status, task_states
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.tools.builtin import unsandboxed
from tests.conftest import git
from tests.test_runner_claims import clones

NODES = [PlannedNode("test", "acceptance"), PlannedNode("gate", "gate", inputs=("test",))]
EXECUTORS = {
    "acceptance": acceptance_executor(unsandboxed),
    "gate": gate_executor(GatePolicy(min_approvals=0, require_fixed_check=False)),
}


def setup(max_tasks: int, remote: str | None) -> NightSetup:
    return NightSetup(
        policy={"local_only": True},
        remote=remote,
        max_tasks=max_tasks,
        claim_expiry_minutes=60,
        flow_for=lambda _name, _labels=(): (NODES, EXECUTORS),
    )


def queue_tasks(repo_dir: Path, count: int) -> list[str]:
    specs = [
        stamp(Spec(id=f"t{n}", title=f"task {n}", acceptance=["true"]), author="a <a@b>", base="main")
        for n in range(count)
    ]
    enqueue(open_repo(repo_dir), specs)
    return [spec.id or "" for spec in specs]


def test_tasks_claimed_elsewhere_do_not_count_against_max_tasks(repo_dir: Path, tmp_path: Path) -> None:
    mine, theirs = clones(tmp_path, repo_dir, 2)
    # This clone's runner signs with the key allowed on main (a clone does not copy the git dir's key).
    git(mine, "config", "pantheon.signingKey", str(repo_dir / ".git" / "pantheon" / "keys" / "runner"))
    queue_tasks(mine, 6)
    repo = open_repo(mine)
    order = [state.id for state in task_states(repo)]
    # The other clone holds the first three tasks in the night's order (a live claim, pushed).
    for task_id in order[:3]:
        assert claim(open_repo(theirs), theirs, task_id, "origin") is not None
    results = run_tasks(repo, mine, setup=setup(max_tasks=2, remote="origin"))
    ran = [result.task_id for result in results if isinstance(result, TaskRun)]
    skipped = [result.task_id for result in results if isinstance(result, Skipped)]
    assert skipped == order[:3]
    assert ran == order[3:5]  # two ran: the skipped ones did not use up the night's limit
    states = {state.id: state.status for state in task_states(repo)}
    assert [states[task_id] for task_id in order[3:5]] == [Status.PASSED, Status.PASSED]
    assert states[order[5]] == Status.QUEUED  # and the limit still holds
