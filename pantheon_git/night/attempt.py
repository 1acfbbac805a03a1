"""One task, one attempt: claim it, check it out in a worktree, run its flow's nodes, record every step.

Every node ends in exactly one step commit on the run branch, published only after its trace note is
written (so no step ever lacks its note), and a failed node's commit is the failure artifact. A runner
killed at any point resumes from the last published step: completed nodes are read back from the run
branch and their outputs from their trace notes, so nothing runs twice and nothing is lost.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeFailed, NodeResult
from pantheon_git.night.worktrees import add_worktree, remove_worktree, worktree_path
from pantheon_git.schema.spec import Spec
from pantheon_git.store.git import run_git
from pantheon_git.store.layout import run_branch
from pantheon_git.store.runs import (
    Step,
    make_step_commit,
    parse_trailers,
    publish_step,
    recorded_steps,
    run_heads,
    start_run_branch,
    unverified_steps,
    worktree_tree,
)
from pantheon_git.store.signing import allowed_signers, signing_key
from pantheon_git.store.traces import read_trace, write_trace
from pantheon_git.store.votes import append_votes, read_votes

LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
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


@dataclass
class TaskRun:
    task_id: str
    attempt: int
    branch: str
    outcome: str  # "completed", "failed", "skipped"
    detail: str = ""
    steps: list[str] = field(default_factory=list)


def choose_attempt(repo: pygit2.Repository, spec: Spec) -> tuple[int, bool] | None:
    """(attempt, resume?) for the next run of `spec`, or None when its attempts are used up.

    The newest attempt is resumed if it has no outcome yet (its runner was interrupted); after a
    finished one a new attempt starts while `limits.max_attempts` allows.
    """
    assert spec.id is not None
    attempts = run_heads(repo).get(spec.id, {})
    if not attempts:
        return 1, False
    newest = max(attempts)
    head = repo.get(attempts[newest])
    finished = parse_trailers(head.message).get("Pantheon-Outcome") is not None or any(
        vote.kind in ("gate", "merge") for vote in read_votes(repo, head.id, base=spec.base)
    )
    # A signing runner resumes only runs it can vouch for: an unfinished run branch with steps not
    # signed by an allowed signer (adopted from another machine) is never built upon; a new attempt starts.
    if not finished and signing_key(repo) is not None:
        finished = bool(unverified_steps(repo, run_branch(spec.id, newest), allowed_signers(repo, spec.base)))
    if not finished:
        return newest, True
    if newest >= spec.limits.max_attempts:
        return None
    return newest + 1, False


def _base_commit(repo: pygit2.Repository, spec: Spec) -> pygit2.Oid:
    try:
        return repo.revparse_single(spec.base or "HEAD").peel(pygit2.Commit).id
    except (KeyError, ValueError, pygit2.GitError):
        raise PantheonError(f"task {spec.id}: base '{spec.base}' no longer resolves to a commit") from None


def _restore(worktree: Path) -> None:
    """Put the worktree back to its last committed step (a failed try leaves no half-edits behind)."""
    run_git(["reset", "--quiet", "--hard"], worktree, check=False)
    run_git(["clean", "-q", "-fd"], worktree, check=False)


def _execute(executor: NodeExecutor, context: NodeContext) -> NodeResult:
    try:
        return executor(context)
    except NodeFailed as failed:
        return NodeResult(summary=f"failed: {failed}", ok=False, error=str(failed), log_tail=failed.log_tail)
    except PantheonError as refused:
        return NodeResult(summary=f"failed: {refused}", ok=False, error=str(refused))
    except Exception as crash:  # any crash of a node fails the node, never the night
        tail = traceback.format_exc()[-LOG_TAIL_CHARS:]
        return NodeResult(summary=f"crashed: {crash!r}", ok=False, error=repr(crash), log_tail=tail)


def run_attempt(
    repo: pygit2.Repository,
    root: Path,
    spec: Spec,
    nodes: Sequence[PlannedNode],
    executors: Mapping[str, NodeExecutor],
    *,
    attempt: int,
    resume: bool,
    policy: Mapping[str, Any],
    on_event: Callable[[dict[str, Any]], None] = lambda _event: None,
    keep_alive: Callable[[], bool] = lambda: True,
) -> TaskRun:
    """Run (or resume) one attempt of `spec` through `nodes`, in order; see the module docstring."""
    assert spec.id is not None
    task_id = spec.id
    ref = run_branch(task_id, attempt)
    branch = ref.removeprefix("refs/heads/")
    if not resume:
        start_run_branch(repo, task_id, attempt, _base_commit(repo, spec))
    done = {name: commit for name, commit in recorded_steps(repo, ref)}
    outputs: dict[str, Any] = {}
    for name, commit in done.items():
        trace = read_trace(repo, commit.id) or {}
        outputs[name] = trace.get("output", {})
    run = TaskRun(task_id, attempt, branch, "completed", steps=list(done))
    deadline_all = time.monotonic() + spec.limits.max_minutes * 60
    workdir = add_worktree(root, worktree_path(repo.path, task_id, attempt), ref)
    try:
        for node in nodes:
            if node.id in done:
                continue
            if not keep_alive():
                run.outcome, run.detail = "skipped", "lost the task's claim to another runner"
                return run
            inputs = {name: outputs.get(name, {}) for name in node.inputs}
            started = datetime.now(UTC)
            clock = time.monotonic()
            on_event(
                {"event": "node", "task": task_id, "attempt": attempt, "node": node.id, "agent": node.agent}
            )
            if node.when is not None and not node.when(outputs):
                result = NodeResult(summary="skipped (its `when` is false)", output={"skipped": True})
                tries: list[dict[str, Any]] = []
            else:
                result, tries = _run_with_retries(
                    repo,
                    spec,
                    node,
                    executors,
                    workdir,
                    inputs,
                    attempt,
                    ref,
                    min(deadline_all, clock + node.timeout_s),
                )
            duration = time.monotonic() - clock
            commit = _record(
                repo, ref, spec, node, workdir, result, tries, inputs, attempt, policy, started, duration
            )
            outputs[node.id] = result.output
            run.steps.append(node.id)
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
            if not result.ok:
                run.outcome, run.detail = "failed", f"{node.id}: {result.error}"
                return run
        return run
    finally:
        remove_worktree(root, workdir)


def _run_with_retries(
    repo: pygit2.Repository,
    spec: Spec,
    node: PlannedNode,
    executors: Mapping[str, NodeExecutor],
    workdir: Path,
    inputs: dict[str, Any],
    attempt: int,
    ref: str,
    deadline: float,
) -> tuple[NodeResult, list[dict[str, Any]]]:
    executor = executors.get(node.agent)
    if executor is None:
        return NodeResult(
            summary=f"no executor for agent {node.agent}",
            ok=False,
            error=f"agent {node.agent}: not available to the runner",
        ), []
    previous = tuple(
        vote
        for _, commit in recorded_steps(repo, ref)
        for vote in read_votes(repo, commit.id, base=spec.base)
    )
    tries: list[dict[str, Any]] = []
    result = NodeResult(summary="not run", ok=False, error="not run")
    for number in range(1, node.retries + 2):
        context = NodeContext(
            spec=spec,
            task_id=spec.id or "",
            attempt=attempt,
            node_id=node.id,
            agent=node.agent,
            worktree=workdir,
            inputs=inputs,
            deadline=deadline,
            seed=node.seed,
            run_ref=ref,
            previous_votes=previous,
        )
        if context.seconds_left() <= 0:
            result = NodeResult(
                summary="timed out", ok=False, error=f"timed out after {node.timeout_s:.0f} s"
            )
            break
        result = _execute(executors[node.agent], context)
        if result.ok:
            break
        tries.append(
            {
                "try": number,
                "error": result.error,
                "log_tail": result.log_tail[-LOG_TAIL_CHARS:],
                "trace": result.trace,
            }
        )
        if number <= node.retries:
            _restore(workdir)
    return result, tries


def _record(
    repo: pygit2.Repository,
    ref: str,
    spec: Spec,
    node: PlannedNode,
    workdir: Path,
    result: NodeResult,
    tries: list[dict[str, Any]],
    inputs: dict[str, Any],
    attempt: int,
    policy: Mapping[str, Any],
    started: datetime,
    duration: float,
) -> pygit2.Oid:
    """The node's step commit (the worktree as it is) and its trace note; then publish the branch."""
    task_id = spec.id or ""
    extra: dict[str, str] = {"Pantheon-Attempt": str(attempt)}
    if not result.ok:
        extra["Pantheon-Outcome"] = "failed"
        extra["Pantheon-Error"] = (result.error or "failed").splitlines()[0][:200]
    step = Step(
        task=task_id, step=node.id, agent=node.agent, model=result.model, summary=result.summary, extra=extra
    )
    commit, parent = make_step_commit(repo, ref, step, tree=worktree_tree(workdir))
    trace: dict[str, Any] = {
        "summary": result.summary,
        "task": task_id,
        "attempt": attempt,
        "node": node.id,
        "agent": node.agent,
        "ok": result.ok,
        "model": result.model,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "tokens": result.tokens,
        "policy": dict(policy),
        "input": inputs,
        "output": result.output,
    }
    if not result.ok:
        branch = ref.removeprefix("refs/heads/")
        trace["error"] = result.error
        trace["log_tail"] = result.log_tail[-LOG_TAIL_CHARS:]
        trace["inspect"] = [
            f"git log --notes=pantheon/traces {branch}",
            f"git show {commit}",
            f"git pantheon replay {str(commit)[:12]}",
        ]
    if tries:
        trace["failed_tries"] = tries
    if result.trace:
        trace["agent_trace"] = result.trace
    # The note keeps the summary; what the node was given and its turn-by-turn record go to one payload
    # blob each, so `git log --notes` stays readable.
    write_trace(repo, commit, trace, detail_keys=("input", "agent_trace"))
    if result.votes:
        append_votes(repo, commit, result.votes)
    publish_step(repo, ref, commit, parent)  # the worktree's HEAD follows: its index already matches
    return commit
