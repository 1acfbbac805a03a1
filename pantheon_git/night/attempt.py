"""One task, one attempt: check it out in a worktree, run its flow's nodes, record every step; and the
one rule of which attempts a night runs (`choose_attempts`; the scheduler, night/shift.py, holds the
task's lock and claim around them).

Every node ends in exactly one step commit on the run branch, published only after its trace note is
written (so no step ever lacks its note), and a failed node's commit is the failure artifact. A runner
killed at any point resumes from the last published step: completed nodes are read back from the run
branch and their outputs from their trace notes, so nothing runs twice and nothing is lost.

Two bounded loops sit on top of the flow's DAG. A failing acceptance node with `repairs` sends its checks'
output back to its `repair` node for another round: the steps `implement.repair1`, `test.repair1`, … are
scheduled from recorded outputs only, so a resumed runner schedules exactly the same rounds. And an
attempt after the first samples (its own seed, derived from the attempt number) so best-of-N draws differ.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeFailed, NodeResult
from pantheon_git.night.worktrees import add_worktree, remove_worktree, worktree_path
from pantheon_git.queue.status import Status, checked_outcome, run_outcome
from pantheon_git.schema.flow import GATE_AGENT
from pantheon_git.schema.spec import Spec
from pantheon_git.store.git import clear_stale_lock, lookup
from pantheon_git.store.layout import run_branch
from pantheon_git.store.locks import held_since
from pantheon_git.store.logview import LOG_TRAILER, count_tool_calls, step_log
from pantheon_git.store.runs import (
    Step,
    make_step_commit,
    misbound_steps,
    parse_trailers,
    publish_step,
    recorded_steps,
    run_heads,
    start_run_branch,
    taken_over,
    unverified_steps,
    worktree_tree,
)
from pantheon_git.store.signing import allowed_signers, signing_key
from pantheon_git.store.traces import read_trace, write_trace
from pantheon_git.store.votes import Vote, append_votes, read_votes, recorded_votes
from pantheon_git.store.worktree import remove_nested_repositories, restore_worktree, worktree_changed

LOG_TAIL_CHARS = 4000
REPAIR_MARK = ".repair"  # step ids of repair rounds: `<node>.repair<round>` (flow node ids have no dot)
FEEDBACK_CHARS = 1200  # of each failing check's output, sent back to the implementer
SEED_STRIDE = 1_000_003  # attempt N samples with seed + (N-1) * stride: far from any seed a flow sets
NO_CHANGE = "no change: the step left every file as it was"


class RunOutcome(StrEnum):
    """How an attempt ended for the runner (whether it passed is the gate's, in the votes)."""

    COMPLETED = "completed"  # every node ran (the gate may still have rejected)
    FAILED = "failed"  # a node failed after its retries
    SKIPPED = "skipped"  # the claim was lost mid-run


@dataclass(frozen=True, slots=True)
class PlannedNode:
    """A flow node as the runner needs it; built from the flow definition by the caller."""

    id: str
    agent: str
    inputs: tuple[str, ...] = ()
    retries: int = 0
    timeout_s: float = 20 * 60
    seed: int | None = None
    # Given upstream outputs, should this node run? (the flow's `when`; None: always)
    when: Callable[[Mapping[str, Any]], bool] | None = None
    temperature: float = 0.0
    repairs: int = 0  # rounds of repair when this (acceptance) node's checks fail
    repair: str | None = None  # the node that gets the failing output back
    require_change: bool = False  # an ok step that changed no file fails ("no change")
    extra_inputs: Mapping[str, Any] | None = None  # e.g. a repair round's feedback


@dataclass(slots=True)
class TaskRun:
    task_id: str
    attempt: int
    branch: str
    outcome: RunOutcome
    detail: str = ""
    steps: list[str] = field(default_factory=list)
    passed: bool = False  # the run branch's head carries an approving gate vote


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """A task as the runner runs it: its spec, its flow's nodes in order and each agent's executor."""

    spec: Spec
    nodes: Sequence[PlannedNode]
    executors: Mapping[str, NodeExecutor]


class Attempt(NamedTuple):
    """Which run of a task: its number (run branch `pantheon/<task>/<number>`), and whether it resumes
    a run a runner left unfinished or starts a new one. A tuple, so `(2, False)` reads as one."""

    number: int
    resume: bool


def choose_attempts(repo: pygit2.Repository, spec: Spec, samples: int = 1) -> list[Attempt]:
    """The attempts of `spec` a night may run now, in order: each unfinished run resumed (a night killed
    with several in flight left more than the newest), then new attempts while best-of-`samples` and
    `limits.max_attempts` allow; at most `samples`, and none once an attempt carries a counted gate
    approval. The one rule for every `--jobs`: the night's scheduler (night/shift.py) runs these.

    Decided from refs and notes as they are now, under the task's lock: the status a night picked the
    task by may be stale (another runner on this machine, say a night whose `git` was killed but not its
    runner, may have finished the task since).
    """
    assert spec.id is not None
    heads = run_heads(repo).get(spec.id, {})
    if passed_attempt(repo, spec, heads) is not None:
        return []  # picked as runnable, but passed since: never attempted again
    chosen = [Attempt(n, True) for n in sorted(heads) if not attempt_finished(repo, spec, n, heads[n])]
    limit = max(spec.limits.max_attempts, samples)
    number = max(heads, default=0) + 1
    while len(chosen) < samples and number <= limit:
        chosen.append(Attempt(number, False))
        number += 1
    return chosen[:samples]


def choose_attempt(repo: pygit2.Repository, spec: Spec, samples: int = 1) -> Attempt | None:
    """The next attempt of `spec` (the first `choose_attempts` gives), or None when it passed or its
    attempts are used up."""
    chosen = choose_attempts(repo, spec, samples)
    return chosen[0] if chosen else None


def passed_attempt(
    repo: pygit2.Repository, spec: Spec, attempts: Mapping[int, pygit2.Oid] | None = None
) -> int | None:
    """The first attempt of `spec` that passed the gate (or was merged) as `git pantheon list` reads it,
    or None: once there is one, the task is never attempted again (`attempts`: its run heads, if read).

    A counted gate approval is the pass; steps not signed by an allowed signer, or signed for another
    run (queue/status.py `checked_outcome`), pass nothing, so a branch made elsewhere blocks no task.
    """
    assert spec.id is not None
    heads = run_heads(repo).get(spec.id, {}) if attempts is None else attempts
    signers = allowed_signers(repo, spec.base)
    for attempt in sorted(heads):
        outcome, _ = checked_outcome(repo, spec.id, attempt, heads[attempt], signers)
        if outcome in (Status.PASSED, Status.MERGED):
            return attempt
    return None


def attempt_finished(repo: pygit2.Repository, spec: Spec, attempt: int, head_id: pygit2.Oid) -> bool:
    """Whether run `attempt` of `spec` (its head `head_id`) is over: never to be resumed."""
    assert spec.id is not None
    if taken_over(repo, run_branch(spec.id, attempt)):
        return True  # a person committed on top of its steps: theirs now, never built upon by the night
    head = lookup(repo, head_id, pygit2.Commit)
    # Any gate or merge record ends a run, counted or not: an unverified gate vote cannot make a run
    # pass, but the run is over (re-running it would decide nothing new).
    signers = allowed_signers(repo, spec.base)
    finished = parse_trailers(head.message).get("Pantheon-Outcome") is not None or any(
        item.vote.kind in ("gate", "merge") for item in recorded_votes(repo, head.id, signers)
    )
    # A signing runner resumes only runs it can vouch for: an unfinished run branch with steps not
    # signed by an allowed signer (adopted from another machine) is never built upon; a new attempt starts.
    if not finished and signing_key(repo) is not None:
        finished = bool(unverified_steps(repo, run_branch(spec.id, attempt), signers))
    # Steps signed for another task or attempt (a branch pointed at them) are never built upon either.
    return finished or bool(misbound_steps(repo, run_branch(spec.id, attempt)))


def attempt_passed(repo: pygit2.Repository, ref: str) -> bool:
    """Whether the run branch's head passed the gate (what `git pantheon list` calls passed)."""
    steps = recorded_steps(repo, ref)
    if not steps:
        return False
    head = steps[-1][1]
    return run_outcome(parse_trailers(head.message), read_votes(repo, head.id)) == Status.PASSED


def node_sampling(node: PlannedNode, attempt: int, sample_temperature: float) -> tuple[int | None, float]:
    """(seed, temperature) of a node in an attempt: as the flow says in the first, sampled after it.

    A second greedy attempt would repeat the first token for token, so later attempts sample at the
    node's temperature (or `sample_temperature`) with a seed derived from the attempt number.
    """
    if attempt <= 1:
        return node.seed, node.temperature
    return (node.seed or 0) + SEED_STRIDE * (attempt - 1), node.temperature or sample_temperature


def retry_sampling(node: PlannedNode, number: int, sample_temperature: float) -> tuple[int | None, float]:
    """(seed, temperature) of try `number` of a node: a greedy retry would repeat the failed try exactly,
    so tries after the first sample, each with its own seed."""
    if number <= 1:
        return node.seed, node.temperature
    return (node.seed or 0) + number - 1, node.temperature or sample_temperature


def flow_node_id(step_id: str) -> str:
    """The flow node a step belongs to: `test.repair2` -> `test`."""
    return step_id.split(".", 1)[0]


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return "…" + cut[cut.find("\n") + 1 :] if "\n" in cut else "…" + cut


def repair_feedback(output: Mapping[str, Any], round_number: int) -> dict[str, Any]:
    """What a repair round tells the implementer: which checks failed and the tail of their output."""
    failed = [
        {
            "command": result.get("command"),
            "exit_code": result.get("exit_code"),
            "output": _tail(str(result.get("log_tail", "")).strip(), FEEDBACK_CHARS),
        }
        for result in output.get("results", [])
        if result.get("exit_code") != 0
    ]
    return {
        "round": round_number,
        "instruction": "The acceptance checks failed after your change. Fix the files so they pass.",
        "failed_checks": failed,
    }


def repair_steps(
    by_id: Mapping[str, PlannedNode], check: PlannedNode, output: Mapping[str, Any]
) -> list[PlannedNode]:
    """The next repair round's two steps after a failing check, or [] (passed, no repair, rounds used)."""
    if output.get("passed", True) or check.repair is None or check.repair not in by_id:
        return []
    round_number = int(check.id.rpartition(REPAIR_MARK)[2]) + 1 if REPAIR_MARK in check.id else 1
    if round_number > check.repairs:
        return []
    target = by_id[check.repair]
    fix = replace(
        target,
        id=f"{target.id}{REPAIR_MARK}{round_number}",
        when=None,
        extra_inputs={"repair": repair_feedback(output, round_number)},
    )
    again = replace(check, id=f"{flow_node_id(check.id)}{REPAIR_MARK}{round_number}", when=None)
    return [fix, again]


def _changed(worktree: Path) -> bool:
    """Whether the worktree differs from its last step commit (new files included)."""
    # libgit2, not `git status`: the git command line would run what a repository inside the tree
    # configures (a clean filter, fsmonitor), outside the sandbox.
    return worktree_changed(worktree)


def _base_commit(repo: pygit2.Repository, spec: Spec) -> pygit2.Oid:
    try:
        return repo.revparse_single(spec.base or "HEAD").peel(pygit2.Commit).id
    except (KeyError, ValueError, pygit2.GitError):
        raise PantheonError(f"task {spec.id}: base '{spec.base}' no longer resolves to a commit") from None


def recorded_base(repo: pygit2.Repository, ref: str) -> str:
    """The commit run branch `ref` started from: its first step's Pantheon-Base trailer, or (no step
    yet, or a run recorded before the trailer existed) the first step's parent, or the branch itself."""
    steps = recorded_steps(repo, ref)
    if steps:
        first = steps[0][1]
        recorded = parse_trailers(first.message).get("Pantheon-Base")
        if recorded:
            return recorded
        return str(first.parents[0].id) if first.parents else ""
    tip = repo.references.get(ref)
    return str(tip.peel(pygit2.Commit).id) if tip is not None else ""


def _restore(worktree: Path) -> None:
    """Put the worktree back to its last committed step (a failed try leaves no half-edits behind)."""
    restore_worktree(worktree)


# How long past a node's deadline the runner waits for the node's own work (building a prompt, reading
# the tree, a diff, a model call under way) before it fails the node as timed out and goes on.
OVERRUN_GRACE_S = 30.0


def _execute(executor: NodeExecutor, context: NodeContext) -> NodeResult:
    """The executor's result, bounded by the node's deadline, after refusing what it left in the tree.

    The executor runs in a worker thread: the sandbox times the commands out, but the runner's own work
    for the node must end too, so a worker still busy OVERRUN_GRACE_S past the deadline is told to stop
    (its `seconds_left()` is 0 from then on) and left behind, and the node fails as timed out.
    Nested repositories made during the node are removed before anything reads the tree, and fail it.
    """
    box: list[NodeResult] = []
    worker = threading.Thread(
        target=lambda: box.append(_call(executor, context)), name=f"node {context.node_id}", daemon=True
    )
    worker.start()
    worker.join(context.seconds_left() + OVERRUN_GRACE_S)
    if worker.is_alive():
        context.cancelled.set()
        error = f"timed out: the node's work was still running {OVERRUN_GRACE_S:.0f} s past its deadline"
        result = NodeResult(summary="timed out", ok=False, error=error)
    elif box:
        result = box[0]
    else:  # the worker died of a BaseException (SystemExit in an executor, say)
        result = NodeResult(summary="crashed", ok=False, error="the node's executor ended without a result")
    removed = remove_nested_repositories(context.worktree)
    if removed:
        error = "refused: git repositories inside the worktree (removed): " + ", ".join(removed[:5])
        result = replace(result, summary=f"failed: {error}", ok=False, error=error)
    return result


def _call(executor: NodeExecutor, context: NodeContext) -> NodeResult:
    try:
        return executor(context)
    except NodeFailed as failed:
        return NodeResult(summary=f"failed: {failed}", ok=False, error=str(failed), log_tail=failed.log_tail)
    except PantheonError as refused:
        return NodeResult(summary=f"failed: {refused}", ok=False, error=str(refused))
    except Exception as crash:  # any crash of a node fails the node, never the night
        tail = traceback.format_exc()[-LOG_TAIL_CHARS:]
        return NodeResult(summary=f"crashed: {crash!r}", ok=False, error=repr(crash), log_tail=tail)


@dataclass(frozen=True, slots=True)
class _Place:
    """What every step of one attempt shares: the task, its run branch and worktree, and how it samples."""

    repo: pygit2.Repository
    plan: TaskPlan
    attempt: int
    ref: str  # the run branch
    base: str  # the commit the run started from (its Pantheon-Base trailer)
    workdir: Path
    policy: Mapping[str, Any]  # the night's policy, recorded in each step's trace
    sample_temperature: float


@dataclass(frozen=True, slots=True)
class _Tried:
    """A node's result after its tries, the failed tries' records, and the last try's sampling."""

    result: NodeResult
    tries: list[dict[str, Any]] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)


def run_attempt(
    repo: pygit2.Repository,
    root: Path,
    plan: TaskPlan,
    attempt: Attempt,
    *,
    policy: Mapping[str, Any],
    on_event: Callable[[dict[str, Any]], None] = lambda _event: None,
    keep_alive: Callable[[], bool] = lambda: True,
    sample_temperature: float = 0.8,
) -> TaskRun:
    """Run (or resume) one attempt of `plan`'s task through its nodes, in order; see the module docstring.

    `keep_alive` renews the task's claim before each node (False: the claim is lost, the attempt stops);
    `policy` is recorded in every step's trace.
    """
    spec = plan.spec
    assert spec.id is not None
    ref = run_branch(spec.id, attempt.number)
    if not attempt.resume:
        start_run_branch(repo, spec.id, attempt.number, _base_commit(repo, spec))
    base = recorded_base(repo, ref)
    done = {name: commit for name, commit in recorded_steps(repo, ref)}
    outputs: dict[str, Any] = {}
    for name, commit in done.items():  # oldest first, so a repair round's output replaces its node's
        trace = read_trace(repo, commit.id) or {}
        outputs[name] = outputs[flow_node_id(name)] = trace.get("output", {})
    branch = ref.removeprefix("refs/heads/")
    run = TaskRun(spec.id, attempt.number, branch, RunOutcome.COMPLETED, steps=list(done))
    deadline = time.monotonic() + spec.limits.max_minutes * 60
    by_id = {node.id: node for node in plan.nodes}
    schedule = list(plan.nodes)
    # A runner killed while it held the branch's ref lock left the lock file; checking the worktree out
    # moves the branch (to where it is), so it would fail on it. Made before this runner took the task's
    # lock, it is provably stale.
    clear_stale_lock(repo, ref, made_before=held_since(repo.path, spec.id))
    workdir = add_worktree(root, worktree_path(repo.path, spec.id, attempt.number), ref)
    place = _Place(repo, plan, attempt.number, ref, base, workdir, policy, sample_temperature)
    try:
        index = 0
        while index < len(schedule):
            node = schedule[index]
            index += 1
            if node.id in done:
                if node.agent == GATE_AGENT and not _gate_recorded(repo, spec, done[node.id].id):
                    # Cut between the gate's published step and its vote: finish that step (the gate
                    # decides again, from the counted votes only); a new attempt would replace it.
                    _finish_gate(place, node, outputs)
                # Decided from the recorded output alone: a resumed runner schedules the same rounds.
                schedule[index:index] = repair_steps(by_id, node, outputs.get(node.id, {}))
                continue
            if not keep_alive():
                run.outcome, run.detail = RunOutcome.SKIPPED, "lost the task's claim to another runner"
                return run
            result = _step(place, node, outputs, deadline=deadline, on_event=on_event)
            outputs[node.id] = outputs[flow_node_id(node.id)] = result.output
            run.steps.append(node.id)
            if not result.ok:
                run.outcome, run.detail = RunOutcome.FAILED, f"{node.id}: {result.error}"
                return run
            schedule[index:index] = repair_steps(by_id, node, result.output)
        return run
    finally:
        remove_worktree(root, workdir)
        run.passed = attempt_passed(repo, ref)


def _step(
    place: _Place,
    node: PlannedNode,
    outputs: Mapping[str, Any],
    *,
    deadline: float,
    on_event: Callable[[dict[str, Any]], None],
) -> NodeResult:
    """Run one node of the attempt (unless its `when` is false) and record it as one step commit."""
    task_id = place.plan.spec.id or ""
    inputs = {name: outputs.get(name, {}) for name in node.inputs} | dict(node.extra_inputs or {})
    started = datetime.now(UTC)
    clock = time.monotonic()
    on_event(
        {"event": "node", "task": task_id, "attempt": place.attempt, "node": node.id, "agent": node.agent}
    )
    seed, temperature = node_sampling(node, place.attempt, place.sample_temperature)
    if node.when is not None and not node.when(outputs):
        tried = _Tried(NodeResult(summary="skipped (its `when` is false)", output={"skipped": True}))
    else:
        tried = _run_with_retries(
            place,
            replace(node, seed=seed, temperature=temperature),
            inputs,
            deadline=min(deadline, clock + node.timeout_s),
            upstream=outputs,
        )
    duration = time.monotonic() - clock
    commit = _record(place, node, tried, inputs=inputs, started=started, duration=duration)
    result = tried.result
    on_event(
        {
            "event": "step",
            "task": task_id,
            "node": node.id,
            "ok": result.ok,
            "seconds": round(duration, 3),
            "tokens": result.tokens,
            "commit": str(commit),
        }
    )
    return result


def _unrecorded_votes(
    repo: pygit2.Repository, spec: Spec, commit: pygit2.Oid, votes: Sequence[Vote]
) -> list[Vote]:
    """The `votes` not already counted on `commit` (same kind, voter and verdict).

    A step redone after a kill between its votes and its publication can be the very same commit (same
    tree and message within the same second, and an SSH signature is deterministic): its votes are on
    it already, and a second copy would make the step decide twice.
    """
    if not votes:
        return []
    signers = allowed_signers(repo, spec.base)
    counted = {
        (item.vote.kind, item.vote.voter, item.vote.verdict)
        for item in recorded_votes(repo, commit, signers)
        if item.counts
    }
    return [vote for vote in votes if (vote.kind, vote.voter, vote.verdict) not in counted]


def _gate_recorded(repo: pygit2.Repository, spec: Spec, commit: pygit2.Oid) -> bool:
    """Whether the gate's step `commit` carries its decision (a gate vote, counted or not)."""
    signers = allowed_signers(repo, spec.base)
    return any(item.vote.kind == "gate" for item in recorded_votes(repo, commit, signers))


def _finish_gate(place: _Place, node: PlannedNode, outputs: Mapping[str, Any]) -> None:
    """Record the vote of a published gate step that has none: the gate decides again and its vote goes
    on that same step commit, so the attempt ends as if it had never been cut (no step runs twice)."""
    steps = dict(recorded_steps(place.repo, place.ref))
    commit = steps[node.id].id
    inputs = {name: outputs.get(name, {}) for name in node.inputs}
    deadline = time.monotonic() + node.timeout_s
    tried = _run_with_retries(place, node, inputs, deadline=deadline, upstream=outputs)
    if tried.result.votes:
        append_votes(place.repo, commit, tried.result.votes)


def _run_with_retries(
    place: _Place,
    node: PlannedNode,
    inputs: dict[str, Any],
    *,
    deadline: float,
    upstream: Mapping[str, Any],
) -> _Tried:
    """The node run until a try succeeds or its retries are used (a failed try's edits are undone)."""
    repo, spec, workdir = place.repo, place.plan.spec, place.workdir
    executor = place.plan.executors.get(node.agent)
    if executor is None:
        error = f"agent {node.agent}: not available to the runner"
        return _Tried(NodeResult(summary=f"no executor for agent {node.agent}", ok=False, error=error))
    previous = tuple(
        vote
        for _, commit in recorded_steps(repo, place.ref)
        for vote in read_votes(repo, commit.id, base=spec.base)
    )
    tries: list[dict[str, Any]] = []
    result = NodeResult(summary="not run", ok=False, error="not run")
    for number in range(1, node.retries + 2):
        seed, temperature = retry_sampling(node, number, place.sample_temperature)
        sampling = {"seed": seed, "temperature": temperature}
        context = NodeContext(
            spec=spec,
            task_id=spec.id or "",
            attempt=place.attempt,
            node_id=node.id,
            agent=node.agent,
            worktree=workdir,
            inputs=inputs,
            deadline=deadline,
            seed=seed,
            run_ref=place.ref,
            previous_votes=previous,
            base=place.base,
            temperature=temperature,
            upstream=dict(upstream),
        )
        if context.seconds_left() <= 0:
            result = NodeResult(
                summary="timed out", ok=False, error=f"timed out after {node.timeout_s:.0f} s"
            )
            break
        result = _execute(executor, context)
        if result.ok and node.require_change and not _changed(workdir):
            result = replace(result, summary=f"failed: {NO_CHANGE}", ok=False, error=NO_CHANGE)
        if result.ok:
            break
        tries.append(
            {
                "try": number,
                "sampling": sampling,
                "error": result.error,
                "log_tail": result.log_tail[-LOG_TAIL_CHARS:],
                "trace": result.trace,
            }
        )
        if number <= node.retries:
            _restore(workdir)
    return _Tried(result, tries, sampling)


def _record(
    place: _Place,
    node: PlannedNode,
    tried: _Tried,
    *,
    inputs: dict[str, Any],
    started: datetime,
    duration: float,
) -> pygit2.Oid:
    """The node's step commit (the worktree as it is) and its trace note; then publish the branch."""
    repo, ref, spec, result = place.repo, place.ref, place.plan.spec, tried.result
    task_id = spec.id or ""
    trace: dict[str, Any] = {
        "summary": result.summary,
        "task": task_id,
        "attempt": place.attempt,
        "node": node.id,
        "agent": node.agent,
        "ok": result.ok,
        "model": result.model,
        "base": place.base,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "tokens": result.tokens,
        "sampling": dict(tried.sampling),
        "policy": dict(place.policy),
        "input": inputs,
        "output": result.output,
    }
    extra: dict[str, str] = {"Pantheon-Attempt": str(place.attempt)}
    if place.base and not recorded_steps(repo, ref):
        extra["Pantheon-Base"] = place.base  # on the run's first step: the commit it started from
    # What `git log` shows for the step, one line in the commit itself: no published step lacks it.
    extra[LOG_TRAILER] = step_log(trace, result.votes, count_tool_calls(result.trace))
    if not result.ok:
        extra["Pantheon-Outcome"] = "failed"
        extra["Pantheon-Error"] = (result.error or "failed").splitlines()[0][:200]
    step = Step(
        task=task_id, step=node.id, agent=node.agent, model=result.model, summary=result.summary, extra=extra
    )
    commit, parent = make_step_commit(repo, ref, step, tree=worktree_tree(place.workdir))
    if not result.ok:
        branch = ref.removeprefix("refs/heads/")
        trace["error"] = result.error
        trace["log_tail"] = result.log_tail[-LOG_TAIL_CHARS:]
        trace["inspect"] = [
            f"git log --notes=pantheon/traces {branch}",
            f"git show {commit}",
            f"git pantheon replay {str(commit)[:12]}",
        ]
    if tried.tries:
        trace["failed_tries"] = tried.tries
    if result.trace:
        trace["agent_trace"] = result.trace
    # The note keeps the summary; what the node was given and its turn-by-turn record go to one payload
    # blob each, so `git log --notes` stays readable.
    write_trace(repo, commit, trace, detail_keys=("input", "agent_trace"))
    fresh = _unrecorded_votes(repo, spec, commit, result.votes)
    if fresh:
        append_votes(repo, commit, fresh)
    publish_step(repo, ref, commit, parent)  # the worktree's HEAD follows: its index already matches
    return commit
