"""`git pantheon night` and `git pantheon run`: the night's one scheduler, for every `--jobs`.

Night mode is entered before anything runs: non-local runtimes are refused, cloud credentials are
scrubbed, egress is blocked. A task that cannot run is reported and the night goes on with the next:
a broken spec in the queue or a bad flow fails that task only, with its one-line reason.

The picked tasks are opened in priority order by the scheduler (the calling thread): a task's flow
planned, its flock taken, its claim held (or an expired one taken over), its attempts chosen
(`attempt.choose_attempts`, from refs and notes under that lock). A free job slot goes to the next
attempt of the earliest task that still has one; once an attempt of a task passes, no more of its
attempts start (those in flight finish and keep their traces, as failed attempts always do). The task's
flock and claim are held until its last attempt ends; heartbeats of one claim take turns.

`--jobs 1` is one worker: the calling thread runs each attempt, so a task's attempts run one after
another and the next task opens when they are done. With more, each attempt runs on a worker thread
with its own `pygit2.Repository` (a Repository object is not thread-safe) in its own worktree; ref moves
are CAS (store/git.py), so the jobs' step commits and notes never overwrite each other. Model calls go
to the runtime pool (runtime/llama.py): with jobs every in-process model is the batched engine
(night/setup.py), so the jobs' completions are decoded together on one model load. Events are the same
for every `--jobs`, emitted whole (never interleaved); above one job, node and step events are tagged
with their job.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.night.attempt import (
    Attempt,
    RunOutcome,
    TaskPlan,
    TaskRun,
    choose_attempts,
    passed_attempt,
    run_attempt,
)
from pantheon_git.night.setup import NightSetup, prepare_night
from pantheon_git.night.worktrees import sweep_worktrees
from pantheon_git.queue.claims import Claim, ClaimPushFailed, claim, heartbeat, read_claim, take_over
from pantheon_git.queue.status import Status, TaskState, task_states
from pantheon_git.queue.tasks import cancelled_ids, queue_tree, read_queue
from pantheon_git.schema.spec import Spec
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.locks import task_lock

# Statuses the night picks up: new work, work an interrupted runner left, and failed work with attempts
# left (choose_attempts decides whether any are).
RUNNABLE = frozenset({Status.QUEUED, Status.CLAIMED, Status.RUNNING, Status.FAILED})

Event = dict[str, Any]
EventSink = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class Skipped:
    task_id: str
    reason: str


@dataclass(slots=True, frozen=True)
class Refused:
    """A task that failed before any attempt: its spec or its flow is invalid (one line saying why)."""

    task_id: str
    reason: str


Result = TaskRun | Skipped | Refused


def refused_by(task_id: str, crash: Exception) -> Refused:
    """A task failed by an exception: our own errors say their line, anything else is a crash."""
    reason = str(crash) if isinstance(crash, PantheonError) else f"crashed: {crash!r}"
    return Refused(task_id, reason.splitlines()[0] if reason else repr(crash))


def done_event(run: TaskRun) -> Event:
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
    applied to the tasks that actually run (`run_picked`), or a shared night would leave work undone.
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


def samples_for(spec: Spec, setup: NightSetup) -> int:
    """Best-of-N: the spec's `limits.samples`, else the config's `[night] samples`."""
    return spec.limits.samples or setup.samples


def nothing_to_attempt(repo: pygit2.Repository, spec: Spec, samples: int) -> str:
    """Why a picked task gets no attempt now: one passed (maybe since the night picked it), or none left."""
    passed = passed_attempt(repo, spec)
    if passed is not None:
        return f"attempt {passed} passed the gate; not attempted again"
    return f"all {max(spec.limits.max_attempts, samples)} attempts used"


def run_tasks(
    repo: pygit2.Repository,
    root: Path,
    ids: Sequence[str] | None = None,
    *,
    on_event: EventSink = lambda _event: None,
    setup: NightSetup | None = None,
    take_over_expired: bool = False,
    jobs: int | None = None,
) -> list[Result]:
    """Run the picked tasks with up to `jobs` attempts in flight; returns what happened to each.

    Broken specs in the queue are reported as failed first (they cannot be picked: nothing about them
    can be trusted); then each picked task runs, and whatever goes wrong with one is that task's failure.
    `jobs` defaults to the setup's (`--jobs`).
    """
    setup = setup or prepare_night(repo, root, jobs or 1)
    jobs = setup.jobs if jobs is None else jobs
    if jobs < 1:
        raise PantheonError(f"--jobs: {jobs}: must be at least 1")
    sweep_worktrees(repo, root)  # what runners killed earlier left checked out
    on_event({"event": "night", "claims": setup.policy.get("claims", "claims local only")})
    results: list[Result] = []
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
    picked = pick_tasks(task_states(repo), picked_ids or None)
    return results + run_picked(
        repo,
        root,
        picked,
        setup=setup,
        on_event=on_event,
        take_over_expired=take_over_expired,
        jobs=jobs,
        max_tasks=None if ids else setup.max_tasks,  # named tasks are not bounded
    )


def run_picked(
    repo: pygit2.Repository,
    root: Path,
    picked: Sequence[TaskState],
    *,
    setup: NightSetup,
    on_event: EventSink = lambda _event: None,
    take_over_expired: bool = False,
    jobs: int = 1,
    max_tasks: int | None = None,
) -> list[Result]:
    """Run `picked` in order with up to `jobs` attempts in flight (see the module docstring); returns what
    happened to each task in the order picked, its attempts in order. `max_tasks` bounds the tasks that
    run an attempt: a task skipped for another runner's claim does not count."""
    night = _Night(repo, root, setup, _Events(on_event, tag_jobs=jobs > 1), take_over_expired)
    return _Scheduler(night, jobs=jobs, max_tasks=max_tasks).run(picked)


@dataclass(frozen=True, slots=True)
class _Night:
    """What every task of one night shares."""

    repo: pygit2.Repository  # the scheduler's: opening tasks (workers open their own)
    root: Path
    setup: NightSetup
    events: _Events
    take_over_expired: bool


class _Events:
    """The night's event sink made safe for jobs: one event at a time; with `tag_jobs`, node and step
    events say which attempt they belong to."""

    def __init__(self, sink: EventSink, *, tag_jobs: bool) -> None:
        self.sink = sink
        self.tag_jobs = tag_jobs
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.sink(event)

    def for_attempt(self, task_id: str, attempt: int) -> EventSink:
        if not self.tag_jobs:
            return self

        def emit(event: Event) -> None:
            if event.get("event") in ("node", "step"):
                event = {**event, "job": f"{task_id}#{attempt}"}
            self(event)

        return emit


@dataclass(slots=True)
class _OpenTask:
    """A task whose flock and claim this night holds, and the attempts it still may start."""

    plan: TaskPlan
    held: Claim
    locked: ExitStack  # the task's flock: released when its last attempt ends
    chosen: deque[Attempt]
    in_flight: int = 0
    passed: bool = False
    stopped: bool = False  # claim lost, or a refusal: start nothing more
    results: dict[int, Result] = field(default_factory=dict)
    heartbeat_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def task_id(self) -> str:
        return self.plan.spec.id or ""

    def startable(self) -> bool:
        return bool(self.chosen) and not (self.passed or self.stopped)

    def ran(self) -> bool:
        """Whether an attempt of it is running or ran: what a night's `max_tasks` counts."""
        return self.in_flight > 0 or any(isinstance(result, TaskRun) for result in self.results.values())


@contextmanager
def _workers(jobs: int) -> Iterator[Callable[[Callable[[], None]], object]]:
    """How an attempt is started: one job is the calling thread itself (so a BaseException, Ctrl-C say,
    stops the night at once), more are a pool of `jobs` threads."""
    if jobs == 1:
        yield lambda work: work()
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pantheon-job") as pool:
        yield pool.submit


class _Scheduler:
    """The picked tasks opened one by one, their chosen attempts given to `jobs` workers."""

    def __init__(self, night: _Night, *, jobs: int, max_tasks: int | None) -> None:
        self.night = night
        self.jobs = jobs
        self.max_tasks = max_tasks
        self.state = threading.Lock()  # guards every _OpenTask's counters and results
        self.free = threading.Semaphore(jobs)
        self.opened: list[_OpenTask] = []
        # Every task tried, in the order picked: opened, or what it ended in before any attempt.
        self.tried: list[_OpenTask | list[Result]] = []

    def run(self, picked: Sequence[TaskState]) -> list[Result]:
        pending = iter(picked)
        try:
            with _workers(self.jobs) as start:
                while True:
                    self.free.acquire()
                    task = self._startable() or self._open_next(pending)
                    if task is None:
                        self.free.release()
                        break
                    with self.state:
                        attempt = task.chosen.popleft()
                        task.in_flight += 1
                    start(functools.partial(self._work, task, attempt))
        finally:
            for task in self.opened:  # its last attempts never started (one passed), or the night died
                task.locked.close()
        results: list[Result] = []
        for tried in self.tried:
            if isinstance(tried, _OpenTask):
                results += [tried.results[number] for number in sorted(tried.results)]
            else:
                results += tried
        return results

    def _startable(self) -> _OpenTask | None:
        with self.state:
            return next((task for task in self.opened if task.startable()), None)

    def _open_next(self, pending: Iterator[TaskState]) -> _OpenTask | None:
        """Open the next picked task that has attempts to run (others end with their reason)."""
        events = self.night.events
        for state in pending:
            with self.state:
                ran = sum(task.ran() for task in self.opened)
            if self.max_tasks is not None and ran >= self.max_tasks:
                return None
            try:
                opened = _open(self.night, state)
            except Exception as crash:  # bad input in one task fails that task, never the night
                refused = refused_by(state.id, crash)
                events({"event": "failed", "task": state.id, "reason": refused.reason})
                opened = [refused]
            self.tried.append(opened)
            if isinstance(opened, _OpenTask):
                self.opened.append(opened)
                return opened
        return None

    def _work(self, task: _OpenTask, attempt: Attempt) -> None:
        """Run one attempt of an open task, on a worker; whatever it ends in is that task's result."""
        night, events, task_id = self.night, self.night.events, task.task_id
        try:
            own = pygit2.Repository(night.repo.path)  # this thread's own: Repository objects are not shared

            def keep_alive() -> bool:
                with task.heartbeat_lock:  # one claim, renewed by every attempt: one renewal at a time
                    renewed = heartbeat(own, night.root, task.held, night.setup.remote)
                    if renewed is None:
                        return False
                    task.held = renewed
                    return True

            events(
                {
                    "event": "task",
                    "task": task_id,
                    "attempt": attempt.number,
                    "resume": attempt.resume,
                    "title": task.plan.spec.title,
                }
            )
            run = run_attempt(
                own,
                night.root,
                task.plan,
                attempt,
                policy=night.setup.policy,
                on_event=events.for_attempt(task_id, attempt.number),
                keep_alive=keep_alive,
                sample_temperature=night.setup.sample_temperature,
            )
        except PantheonError as refused:  # e.g. its base branch is gone: this task only
            events({"event": "skipped", "task": task_id, "reason": str(refused)})
            self._ended(task, attempt, Skipped(task_id, str(refused)), stop=True)
        except Exception as crash:  # one attempt's crash fails that task, never the night
            failed = refused_by(task_id, crash)
            events({"event": "failed", "task": task_id, "reason": failed.reason})
            self._ended(task, attempt, failed, stop=True)
        else:
            events(done_event(run))
            self._ended(task, attempt, run, stop=run.outcome == RunOutcome.SKIPPED)
        finally:
            with self.state:
                task.in_flight -= 1
                done = task.in_flight == 0 and not task.startable()
            if done:
                task.locked.close()
            self.free.release()

    def _ended(self, task: _OpenTask, attempt: Attempt, result: Result, *, stop: bool) -> None:
        with self.state:
            task.results[attempt.number] = result
            task.passed = task.passed or (isinstance(result, TaskRun) and result.passed)
            task.stopped = task.stopped or stop


def _open(night: _Night, state: TaskState) -> _OpenTask | list[Result]:
    """The task's flow planned, its flock and claim taken and its attempts chosen; or why not."""
    repo, setup, events = night.repo, night.setup, night.events
    spec, task_id = state.spec, state.id
    try:
        nodes, executors = setup.flow_for(spec.flow, tuple(spec.labels))
    except PantheonError as refused:  # a bad flow, agent or models.toml: this task failed, not the night
        events({"event": "failed", "task": task_id, "reason": str(refused)})
        return [Refused(task_id, str(refused))]
    stack = ExitStack()
    try:
        if not stack.enter_context(task_lock(repo.path, task_id)):
            stack.close()
            return [Skipped(task_id, "another runner on this machine has it")]
        held, reason = _hold_claim(night, task_id)
        if held is None:
            events({"event": "skipped", "task": task_id, "reason": reason})
            stack.close()
            return [Skipped(task_id, reason)]
        samples = samples_for(spec, setup)
        chosen = choose_attempts(repo, spec, samples)  # under the task's lock, from refs and notes now
        if not chosen:
            stack.close()
            return [Skipped(task_id, nothing_to_attempt(repo, spec, samples))]
    except BaseException:
        stack.close()
        raise
    return _OpenTask(TaskPlan(spec, nodes, executors), held, stack, deque(chosen))


def _hold_claim(night: _Night, task_id: str) -> tuple[Claim | None, str]:
    """The task's claim: taken now, or another runner's expired one taken over (if asked); else why not."""
    try:
        held = claim(night.repo, night.root, task_id, night.setup.remote)
    except ClaimPushFailed as failed:  # not another runner's claim: say what did happen
        return None, str(failed)
    if held is not None:
        return held, ""
    return take_over_expired_claim(night.repo, night.root, task_id, night.setup, night.take_over_expired)
