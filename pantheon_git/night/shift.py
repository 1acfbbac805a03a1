"""`git pantheon night` and `git pantheon run`: pick tasks, enter night mode, run each one's attempt.

Night mode is entered before anything runs: non-local runtimes are refused, cloud credentials are
scrubbed, egress is blocked. A task that cannot run is reported and the night goes on with the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.night.attempt import PlannedNode, TaskRun, choose_attempt, run_attempt
from pantheon_git.night.nodes import NodeExecutor
from pantheon_git.night.setup import NightSetup, prepare_night
from pantheon_git.queue.claims import Claim, claim, heartbeat, read_claim, take_over
from pantheon_git.queue.status import Status, TaskState, task_states
from pantheon_git.schema.spec import Spec
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.locks import task_lock

# Statuses the night picks up: new work, work an interrupted runner left, and failed work with attempts
# left (choose_attempt decides whether any are).
RUNNABLE = frozenset({Status.QUEUED, Status.CLAIMED, Status.RUNNING, Status.FAILED})


@dataclass(frozen=True)
class Skipped:
    task_id: str
    reason: str


def pick_tasks(states: Sequence[TaskState], ids: Sequence[str] | None, limit: int) -> list[TaskState]:
    """The tasks to run, in order (pure): the named ones, or every runnable one by priority."""
    if ids:
        by_id = {state.id: state for state in states}
        picked = []
        for task_id in ids:
            state = by_id.get(task_id)
            if state is None:
                raise PantheonError(f"task {task_id}: no such task (see `git pantheon list`)")
            if state.status not in RUNNABLE:
                raise PantheonError(f"task {task_id}: is {state.status.value}, nothing to run")
            picked.append(state)
        return picked
    return [state for state in states if state.status in RUNNABLE][:limit]


def _take_over(
    repo: pygit2.Repository, root: Path, task_id: str, setup: NightSetup, allowed: bool
) -> tuple[Claim | None, str]:
    """Take over another runner's claim if it expired and the user asked to; else why not."""
    seen = read_claim(repo, claim_ref(task_id))
    if seen is None:
        return None, "claimed by another runner"
    expiry = timedelta(minutes=setup.claim_expiry_minutes)
    age = int((datetime.now(UTC) - seen.heartbeat).total_seconds() // 60)
    if not seen.expired(expiry):
        return None, f"claimed by {seen.owner} (heartbeat {age} min ago; it expires after {expiry})"
    if not allowed:
        return None, (
            f"claimed by {seen.owner}, expired (no heartbeat for {age} min): take it over with "
            f"`git pantheon run {task_id} --take-over`"
        )
    taken = take_over(repo, root, seen, setup.remote)
    return taken, "" if taken is not None else "another runner took it over first"


def run_tasks(
    repo: pygit2.Repository,
    root: Path,
    ids: Sequence[str] | None = None,
    *,
    on_event: Callable[[dict[str, Any]], None] = lambda _event: None,
    setup: NightSetup | None = None,
    take_over_expired: bool = False,
) -> list[TaskRun | Skipped]:
    """Run the picked tasks one after another; returns what happened to each."""
    setup = setup or prepare_night(repo, root)
    results: list[TaskRun | Skipped] = []
    for state in pick_tasks(task_states(repo), ids, setup.max_tasks):
        spec = state.spec
        task_id = state.id
        try:
            nodes, executors = setup.flow_for(spec.flow)
        except PantheonError as refused:
            results.append(Skipped(task_id, str(refused)))
            on_event({"event": "skipped", "task": task_id, "reason": str(refused)})
            continue
        with task_lock(repo.path, task_id) as locked:
            if not locked:
                results.append(Skipped(task_id, "another runner on this machine has it"))
                continue
            held = claim(repo, root, task_id, setup.remote)
            if held is None:
                held, reason = _take_over(repo, root, task_id, setup, take_over_expired)
                if held is None:
                    results.append(Skipped(task_id, reason))
                    on_event({"event": "skipped", "task": task_id, "reason": reason})
                    continue
            results += _best_of(repo, root, spec, nodes, executors, setup, held, on_event)
    return results


def samples_for(spec: Spec, setup: NightSetup) -> int:
    """Best-of-N: the spec's `limits.samples`, else the config's `[night] samples`."""
    return spec.limits.samples or setup.samples


def _best_of(
    repo: pygit2.Repository,
    root: Path,
    spec: Spec,
    nodes: list[PlannedNode],
    executors: dict[str, NodeExecutor],
    setup: NightSetup,
    held: Claim,
    on_event: Callable[[dict[str, Any]], None],
) -> list[TaskRun | Skipped]:
    """Up to N attempts of one task (each its own run branch and seed), stopping at the first that passes
    the gate; every attempt's steps and traces stay (failed ones are training negatives)."""
    task_id = spec.id or ""
    samples = samples_for(spec, setup)
    claim_state = {"held": held}

    def keep_alive(claim_state: dict[str, Any] = claim_state) -> bool:
        renewed = heartbeat(repo, root, claim_state["held"], setup.remote)
        if renewed is None:
            return False
        claim_state["held"] = renewed
        return True

    runs: list[TaskRun | Skipped] = []
    for _ in range(samples):
        choice = choose_attempt(repo, spec, samples)
        if choice is None:
            if not runs:
                limit = max(spec.limits.max_attempts, samples)
                runs.append(Skipped(task_id, f"all {limit} attempts used"))
            break
        attempt, resume = choice
        on_event(
            {"event": "task", "task": task_id, "attempt": attempt, "resume": resume, "title": spec.title}
        )
        try:
            run = run_attempt(
                repo,
                root,
                spec,
                nodes,
                executors,
                attempt=attempt,
                resume=resume,
                policy=setup.policy,
                on_event=on_event,
                keep_alive=keep_alive,
                sample_temperature=setup.sample_temperature,
            )
        except PantheonError as refused:  # e.g. its base branch is gone: this task only, not the night
            runs.append(Skipped(task_id, str(refused)))
            on_event({"event": "skipped", "task": task_id, "reason": str(refused)})
            break
        runs.append(run)
        on_event(
            {
                "event": "done",
                "task": task_id,
                "attempt": attempt,
                "outcome": run.outcome,
                "detail": run.detail,
                "branch": run.branch,
                "passed": run.passed,
            }
        )
        if run.passed or run.outcome == "skipped":
            break
    return runs
