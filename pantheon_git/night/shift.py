"""`git pantheon night` and `git pantheon run`: pick tasks, enter night mode, run each one's attempt.

Night mode is entered before anything runs: non-local runtimes are refused, cloud credentials are
scrubbed, egress is blocked. A task that cannot run is reported and the night goes on with the next:
a broken spec in the queue or a bad flow fails that task only, with its one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.night.attempt import PlannedNode, TaskRun, choose_attempt, passed_attempt, run_attempt
from pantheon_git.night.nodes import NodeExecutor
from pantheon_git.night.setup import NightSetup, prepare_night
from pantheon_git.night.worktrees import sweep_worktrees
from pantheon_git.queue.claims import Claim, ClaimPushFailed, claim, heartbeat, read_claim, take_over
from pantheon_git.queue.status import Status, TaskState, task_states
from pantheon_git.queue.tasks import cancelled_ids, queue_tree, read_queue
from pantheon_git.schema.spec import Spec
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.locks import task_lock

# Statuses the night picks up: new work, work an interrupted runner left, and failed work with attempts
# left (choose_attempt decides whether any are).
RUNNABLE = frozenset({Status.QUEUED, Status.CLAIMED, Status.RUNNING, Status.FAILED})


@dataclass(frozen=True, slots=True)
class Skipped:
    task_id: str
    reason: str


@dataclass(slots=True, frozen=True)
class Refused:
    """A task that failed before any attempt: its spec or its flow is invalid (one line saying why)."""

    task_id: str
    reason: str


def refused_by(task_id: str, crash: Exception) -> Refused:
    """A task failed by an exception: our own errors say their line, anything else is a crash."""
    reason = str(crash) if isinstance(crash, PantheonError) else f"crashed: {crash!r}"
    return Refused(task_id, reason.splitlines()[0] if reason else repr(crash))


def done_event(run: TaskRun) -> dict[str, Any]:
    """What the progress line and `night --json` say when an attempt ends."""
    return {
        "event": "done",
        "task": run.task_id,
        "attempt": run.attempt,
        "outcome": run.outcome,
        "detail": run.detail,
        "branch": run.branch,
        "passed": run.passed,
    }


def pick_tasks(states: Sequence[TaskState], ids: Sequence[str] | None) -> list[TaskState]:
    """The tasks to try, in order (pure): the named ones, or every runnable one by priority.

    No night limit here: a task another runner holds is skipped without counting, so the limit is
    applied to the tasks that actually run (`run_tasks`), or a shared night would leave work undone.
    """
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
    return [state for state in states if state.status in RUNNABLE]


def take_over_expired_claim(
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
    try:
        taken = take_over(repo, root, seen, setup.remote)
    except ClaimPushFailed as failed:
        return None, str(failed)
    return taken, "" if taken is not None else "another runner took it over first"


def run_tasks(
    repo: pygit2.Repository,
    root: Path,
    ids: Sequence[str] | None = None,
    *,
    on_event: Callable[[dict[str, Any]], None] = lambda _event: None,
    setup: NightSetup | None = None,
    take_over_expired: bool = False,
    jobs: int | None = None,
) -> list[TaskRun | Skipped | Refused]:
    """Run the picked tasks one after another (or `jobs` attempts at once); returns what happened to each.

    Broken specs in the queue are reported as failed first (they cannot be picked: nothing about them
    can be trusted); then each picked task runs, and whatever goes wrong with one is that task's failure.
    `jobs` defaults to the setup's (`--jobs`); above 1 the attempts run as in `run_concurrently`.
    """
    setup = setup or prepare_night(repo, root, jobs or 1)
    jobs = setup.jobs if jobs is None else jobs
    if jobs < 1:
        raise PantheonError(f"--jobs: {jobs}: must be at least 1")
    sweep_worktrees(repo, root)  # what runners killed earlier left checked out
    on_event({"event": "night", "claims": setup.policy.get("claims", "claims local only")})
    results: list[TaskRun | Skipped | Refused] = []
    tree = queue_tree(repo)
    _specs, broken = read_queue(repo, tree)
    cancelled = cancelled_ids(tree, repo)
    broken = [bad for bad in broken if bad.task_id not in cancelled]
    for bad in broken:
        if ids is None or bad.task_id in ids:
            results.append(Refused(bad.task_id, bad.reason))
            on_event({"event": "failed", "task": bad.task_id, "reason": bad.reason})
    picked_ids = [task_id for task_id in ids or () if task_id not in {bad.task_id for bad in broken}]
    if ids and not picked_ids:
        return results
    if jobs > 1:
        from pantheon_git.night.jobs import run_concurrently

        picked = pick_tasks(task_states(repo), picked_ids or None)
        limit = None if ids else setup.max_tasks
        return results + run_concurrently(
            repo, root, picked, setup, on_event, take_over_expired, jobs=jobs, max_tasks=limit
        )
    ran = 0  # attempts started or resumed: what max_tasks bounds (named tasks are not bounded)
    for state in pick_tasks(task_states(repo), picked_ids or None):
        if not ids and ran >= setup.max_tasks:
            break
        try:
            outcome = _run_task(repo, root, state, setup, on_event, take_over_expired)
        except Exception as crash:  # bad input in one task fails that task, never the night
            refused = refused_by(state.id, crash)
            on_event({"event": "failed", "task": state.id, "reason": refused.reason})
            outcome = [refused]
        results += outcome
        # A task skipped for another runner's claim does not count against max_tasks.
        ran += any(isinstance(result, TaskRun) for result in outcome)
    return results


def _run_task(
    repo: pygit2.Repository,
    root: Path,
    state: TaskState,
    setup: NightSetup,
    on_event: Callable[[dict[str, Any]], None],
    take_over_expired: bool,
) -> list[TaskRun | Skipped | Refused]:
    """One picked task: its flow planned, its claim held, its attempts run (best-of-N); see `run_tasks`."""
    spec = state.spec
    task_id = state.id
    try:
        nodes, executors = setup.flow_for(spec.flow, tuple(spec.labels))
    except PantheonError as refused:  # a bad flow, agent or models.toml: this task failed, not the night
        on_event({"event": "failed", "task": task_id, "reason": str(refused)})
        return [Refused(task_id, str(refused))]
    with task_lock(repo.path, task_id) as locked:
        if not locked:
            return [Skipped(task_id, "another runner on this machine has it")]
        try:
            held = claim(repo, root, task_id, setup.remote)
        except ClaimPushFailed as failed:  # not another runner's claim: say what did happen
            on_event({"event": "skipped", "task": task_id, "reason": str(failed)})
            return [Skipped(task_id, str(failed))]
        if held is None:
            held, reason = take_over_expired_claim(repo, root, task_id, setup, take_over_expired)
            if held is None:
                on_event({"event": "skipped", "task": task_id, "reason": reason})
                return [Skipped(task_id, reason)]
        return _best_of(repo, root, spec, nodes, executors, setup, held, on_event)


def samples_for(spec: Spec, setup: NightSetup) -> int:
    """Best-of-N: the spec's `limits.samples`, else the config's `[night] samples`."""
    return spec.limits.samples or setup.samples


def nothing_to_attempt(repo: pygit2.Repository, spec: Spec, samples: int) -> str:
    """Why a picked task gets no attempt now: one passed (maybe since the night picked it), or none left."""
    passed = passed_attempt(repo, spec)
    if passed is not None:
        return f"attempt {passed} passed the gate; not attempted again"
    return f"all {max(spec.limits.max_attempts, samples)} attempts used"


def _best_of(
    repo: pygit2.Repository,
    root: Path,
    spec: Spec,
    nodes: list[PlannedNode],
    executors: dict[str, NodeExecutor],
    setup: NightSetup,
    held: Claim,
    on_event: Callable[[dict[str, Any]], None],
) -> list[TaskRun | Skipped | Refused]:
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

    runs: list[TaskRun | Skipped | Refused] = []
    for _ in range(samples):
        choice = choose_attempt(repo, spec, samples)
        if choice is None:
            if not runs:
                runs.append(Skipped(task_id, nothing_to_attempt(repo, spec, samples)))
            break
        attempt, resume = choice
        event = {"event": "task", "task": task_id, "attempt": attempt, "resume": resume, "title": spec.title}
        on_event(event)
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
            on_event({"event": "skipped", "task": task_id, "reason": str(refused)})
            runs.append(Skipped(task_id, str(refused)))
            break
        runs.append(run)
        on_event(done_event(run))
        if run.passed or run.outcome == "skipped":
            break
    return runs
