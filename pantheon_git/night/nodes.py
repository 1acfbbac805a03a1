"""What a flow node gets and gives back: the contract between the runner and every node executor.

An executor is a plain callable `NodeContext -> NodeResult`; agents on a model, the acceptance checks
and the gate are all executors, so the runner's loop does not care which kind a node is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pantheon_git.schema.spec import Spec
from pantheon_git.store.votes import Vote


@dataclass(frozen=True, slots=True)
class NodeContext:
    spec: Spec
    task_id: str
    attempt: int
    node_id: str
    agent: str
    worktree: Path
    inputs: dict[str, Any]  # upstream node id -> that node's output
    deadline: float  # time.monotonic() by which the node must be done
    seed: int | None = None
    run_ref: str = ""
    previous_votes: tuple[Vote, ...] = ()  # votes already on this run branch (for the gate)
    # The commit the run started from, resolved once when the attempt began: what reviewers diff against
    # (the spec's base branch may have moved overnight; a detached base has no name at all).
    base: str = ""
    temperature: float = 0.0  # 0: greedy; above 0 the node samples with `seed`
    # Every output recorded so far on this run branch (step id -> output), e.g. the `baseline` checks.
    upstream: dict[str, Any] = field(default_factory=dict)
    # Set by the runner when it stops waiting for the node (past its deadline): the executor's work,
    # left behind in its thread, sees no time left and ends at its next check.
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def seconds_left(self) -> float:
        if self.cancelled.is_set():
            return 0.0
        return max(0.0, self.deadline - time.monotonic())


@dataclass(slots=True)
class NodeResult:
    summary: str
    output: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    error: str | None = None
    log_tail: str = ""
    model: str = "-"  # for the trace and the Pantheon-Log line: name@sha256-prefix[+adapter]
    trace: dict[str, Any] = field(default_factory=dict)  # the executor's own record (turns, calls, …)
    votes: list[Vote] = field(default_factory=list)  # votes to append on this step's commit
    tokens: dict[str, int] = field(default_factory=dict)  # {"in": n, "out": n}


NodeExecutor = Callable[[NodeContext], NodeResult]


class NodeFailed(Exception):
    """An executor's way to fail with a log tail, instead of returning ok=False."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail
