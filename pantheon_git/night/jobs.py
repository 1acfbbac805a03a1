"""`--jobs N`: up to N attempts of the night's tasks in flight at once, sharing one model per entry.

The picked tasks are opened in priority order by one scheduler (this thread): a task's flow planned, its
flock taken, its claim held, its attempts chosen up front (distinct numbers: every unfinished one is
resumed, then new ones up to best-of-N). Each attempt runs on a worker thread with its own
`pygit2.Repository` (a Repository object is not thread-safe) in its own worktree; ref moves are CAS
(store/git.py), so the jobs' step commits and notes never overwrite each other. A free job slot goes to
the next attempt of the earliest task that still has one; once an attempt of a task passes, no more of
its attempts start (those in flight finish and keep their traces, as failed attempts always do). The
task's flock and claim are held until its last attempt ends; heartbeats of one claim take turns.

Model calls go to the runtime pool (runtime/llama.py): with jobs every in-process model is the batched
engine (night/setup.py), so the jobs' completions are decoded together on one model load. Events are
the same as with one job, emitted whole (never interleaved), node and step events tagged with their job.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.night.attempt import (
    PlannedNode,
    RunOutcome,
    TaskRun,
    attempt_finished,
    passed_attempt,
    run_attempt,
)
from pantheon_git.night.nodes import NodeExecutor
from pantheon_git.night.setup import NightSetup
from pantheon_git.night.shift import (
    Refused,
    Skipped,
    done_event,
    nothing_to_attempt,
    refused_by,
    samples_for,
    take_over_expired_claim,
)
from pantheon_git.queue.claims import Claim, ClaimPushFailed, claim, heartbeat
from pantheon_git.queue.status import TaskState
from pantheon_git.schema.spec import Spec
from pantheon_git.store.locks import task_lock
from pantheon_git.store.runs import run_heads

Result = TaskRun | Skipped | Refused


def plan_attempts(repo: pygit2.Repository, spec: Spec, samples: int) -> list[tuple[int, bool]]:
    """(attempt, resume?) of every attempt this night may run of `spec`, in order: each unfinished run
    resumed (a night killed with several in flight left more than the newest), then new attempts while
    best-of-`samples` and `limits.max_attempts` allow; none once an attempt carries a counted gate
    approval. One at a time, `choose_attempt` gives the same."""
    assert spec.id is not None
    heads = run_heads(repo).get(spec.id, {})
    if passed_attempt(repo, spec, heads) is not None:
        return []  # picked as runnable, but another runner passed it since: never attempted again
    planned = [(n, True) for n in sorted(heads) if not attempt_finished(repo, spec, n, heads[n])]
    limit = max(spec.limits.max_attempts, samples)
    number = max(heads, default=0) + 1
    while len(planned) < samples and number <= limit:
        planned.append((number, False))
        number += 1
    return planned[:samples]


@dataclass(slots=True)
class _OpenTask:
    """A task whose flock and claim this night holds, and the attempts it still may start."""

    spec: Spec
    nodes: list[PlannedNode]
    executors: dict[str, NodeExecutor]
    held: Claim
    locked: ExitStack  # the task's flock: released when its last attempt ends
    planned: deque[tuple[int, bool]]
    in_flight: int = 0
    passed: bool = False
    stopped: bool = False  # claim lost, or a refusal: start nothing more
    results: dict[int, Result] = field(default_factory=dict)
    heartbeat_lock: threading.Lock = field(default_factory=threading.Lock)

    def startable(self) -> bool:
        return bool(self.planned) and not (self.passed or self.stopped)


class _Events:
    """The night's event sink made safe for jobs: one event at a time, node and step events tagged."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.sink(event)

    def for_attempt(self, task_id: str, attempt: int) -> Callable[[dict[str, Any]], None]:
        def emit(event: dict[str, Any]) -> None:
            if event.get("event") in ("node", "step"):
                event = {**event, "job": f"{task_id}#{attempt}"}
            self(event)

        return emit


def run_concurrently(
    repo: pygit2.Repository,
    root: Path,
    picked: list[TaskState],
    setup: NightSetup,
    on_event: Callable[[dict[str, Any]], None],
    take_over_expired: bool,
    *,
    jobs: int,
    max_tasks: int | None,
) -> list[Result]:
    """Run the picked tasks with up to `jobs` attempts in flight (see the module docstring); returns what
    happened to each task, in the order the tasks were picked, attempts in order."""
    events = _Events(on_event)
    order: list[str] = []
    outcomes: dict[str, list[Result]] = {}  # tasks that ended before any attempt
    opened: list[_OpenTask] = []
    state_lock = threading.Condition()
    free = threading.Semaphore(jobs)
    pending = iter(picked)
    started = 0  # tasks with attempts to run: what max_tasks bounds

    def finish_attempt(task: _OpenTask) -> None:
        with state_lock:
            task.in_flight -= 1
            done = task.in_flight == 0 and not task.startable()
        if done:
            task.locked.close()
        free.release()

    def work(task: _OpenTask, attempt: int, resume: bool) -> None:
        task_id = task.spec.id or ""
        try:
            own = pygit2.Repository(repo.path)  # this thread's own: Repository objects are not shared

            def keep_alive() -> bool:
                with task.heartbeat_lock:  # one claim, renewed by every attempt: one renewal at a time
                    renewed = heartbeat(own, root, task.held, setup.remote)
                    if renewed is None:
                        return False
                    task.held = renewed
                    return True

            events(
                {
                    "event": "task",
                    "task": task_id,
                    "attempt": attempt,
                    "resume": resume,
                    "title": task.spec.title,
                }
            )
            try:
                run = run_attempt(
                    own,
                    root,
                    task.spec,
                    task.nodes,
                    task.executors,
                    attempt=attempt,
                    resume=resume,
                    policy=setup.policy,
                    on_event=events.for_attempt(task_id, attempt),
                    keep_alive=keep_alive,
                    sample_temperature=setup.sample_temperature,
                )
            except PantheonError as refused:  # e.g. its base branch is gone: this task only
                events({"event": "skipped", "task": task_id, "reason": str(refused)})
                with state_lock:
                    task.results[attempt] = Skipped(task_id, str(refused))
                    task.stopped = True
                return
            events(done_event(run))
            with state_lock:
                task.results[attempt] = run
                task.passed = task.passed or run.passed
                task.stopped = task.stopped or run.outcome == RunOutcome.SKIPPED
        except Exception as crash:  # one attempt's crash fails that task, never the night
            refused = refused_by(task_id, crash)
            events({"event": "failed", "task": task_id, "reason": refused.reason})
            with state_lock:
                task.results[attempt] = refused
                task.stopped = True
        finally:
            finish_attempt(task)

    def open_next() -> _OpenTask | None:
        """Open the next picked task that has attempts to run (others end with their reason)."""
        nonlocal started
        for state in pending:
            if max_tasks is not None and started >= max_tasks:
                return None
            order.append(state.id)
            try:
                task = _open(repo, root, state, setup, events, take_over_expired)
            except Exception as crash:  # bad input in one task fails that task, never the night
                refused = refused_by(state.id, crash)
                events({"event": "failed", "task": state.id, "reason": refused.reason})
                outcomes[state.id] = [refused]
                continue
            if isinstance(task, list):
                outcomes[state.id] = task
                continue
            started += 1
            opened.append(task)
            return task
        return None

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pantheon-job") as pool:
        while True:
            free.acquire()
            with state_lock:
                task = next((candidate for candidate in opened if candidate.startable()), None)
            if task is None:
                task = open_next()
            if task is None:
                free.release()
                break
            with state_lock:
                attempt, resume = task.planned.popleft()
                task.in_flight += 1
            pool.submit(work, task, attempt, resume)
    for task in opened:  # a task whose last attempts were never started (one passed): its lock too
        task.locked.close()
    results: list[Result] = []
    by_id = {task.spec.id: task for task in opened}
    for task_id in order:
        if task_id in outcomes:
            results += outcomes[task_id]
        else:
            task = by_id[task_id]
            results += [task.results[number] for number in sorted(task.results)]
    return results


def _open(
    repo: pygit2.Repository,
    root: Path,
    state: TaskState,
    setup: NightSetup,
    on_event: Callable[[dict[str, Any]], None],
    take_over_expired: bool,
) -> _OpenTask | list[Result]:
    """The task's flow planned, its flock and claim taken and its attempts chosen; or why not (as
    `_run_task` says it with one job)."""
    spec = state.spec
    task_id = state.id
    try:
        nodes, executors = setup.flow_for(spec.flow, tuple(spec.labels))
    except PantheonError as refused:
        on_event({"event": "failed", "task": task_id, "reason": str(refused)})
        return [Refused(task_id, str(refused))]
    stack = ExitStack()
    try:
        if not stack.enter_context(task_lock(repo.path, task_id)):
            stack.close()
            return [Skipped(task_id, "another runner on this machine has it")]
        try:
            held = claim(repo, root, task_id, setup.remote)
        except ClaimPushFailed as failed:
            on_event({"event": "skipped", "task": task_id, "reason": str(failed)})
            stack.close()
            return [Skipped(task_id, str(failed))]
        if held is None:
            held, reason = take_over_expired_claim(repo, root, task_id, setup, take_over_expired)
            if held is None:
                on_event({"event": "skipped", "task": task_id, "reason": reason})
                stack.close()
                return [Skipped(task_id, reason)]
        samples = samples_for(spec, setup)
        planned = plan_attempts(repo, spec, samples)
        if not planned:
            stack.close()
            return [Skipped(task_id, nothing_to_attempt(repo, spec, samples))]
    except BaseException:
        stack.close()
        raise
    return _OpenTask(spec, nodes, executors, held, stack, deque(planned))
