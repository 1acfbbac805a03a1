"""A task's status, derived from refs and notes (never stored, so no two writers fight over it).

queued    the spec is in refs/pantheon/tasks and nothing else happened
claimed   refs/pantheon/claims/<id> exists, no run branch yet
running   the newest run branch exists and has no outcome yet (or its runner was interrupted)
passed    the gate's newest counted vote on the run branch head approves, and every step commit of the
          run is signed by an allowed signer (votes count only when signed: store/votes.py) and bound
          to this branch's task, attempt and base (store/runs.py `misbound_steps`); the
          newest run, or an older one that passed beside it (`--jobs` runs attempts at once)
failed    the head is a failure artifact (trailer Pantheon-Outcome: failed) or the gate rejects
merged    a merge record is among the head's votes
cancelled a record under cancelled/ in the tasks tree (a merged task stays merged)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import pygit2

from pantheon_git.queue.tasks import BrokenSpec, cancelled_ids, queue_tree, read_queue
from pantheon_git.schema.spec import Spec
from pantheon_git.store.git import lookup
from pantheon_git.store.layout import CLAIMS_PREFIX, run_branch
from pantheon_git.store.runs import misbound_steps, parse_trailers, run_heads, taken_over, unverified_steps
from pantheon_git.store.signing import AllowedSigners, allowed_signers
from pantheon_git.store.votes import Vote, recorded_votes


class Status(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    MERGED = "merged"
    CANCELLED = "cancelled"


def run_outcome(trailers: dict[str, str], votes: Sequence[Vote]) -> Status:
    """What a run branch's head says about the run: merged, passed, failed or (still) running."""
    if any(vote.kind == "merge" for vote in votes):
        return Status.MERGED
    if trailers.get("Pantheon-Outcome") == "failed":
        return Status.FAILED
    gates = [vote for vote in votes if vote.kind == "gate"]
    if gates:
        return Status.PASSED if gates[-1].verdict == "approve" else Status.FAILED
    return Status.RUNNING


def checked_outcome(
    repo: pygit2.Repository, task_id: str, attempt: int, head: pygit2.Oid, signers: AllowedSigners
) -> tuple[Status, list[Vote]]:
    """A run's outcome from its counted votes; a pass whose steps are not all signed by an allowed
    signer (a run branch made or extended elsewhere) is a failure, never a pass."""
    if taken_over(repo, run_branch(task_id, attempt)):
        # A person committed on top of the night's steps (a morning fix): the night's run is over and
        # passed nothing (what the branch holds now was not all the night's, nor reviewed).
        return Status.FAILED, []
    recorded = recorded_votes(repo, head, signers)
    votes = [item.vote for item in recorded if item.counts]
    outcome = run_outcome(parse_trailers(lookup(repo, head, pygit2.Commit).message), votes)
    if outcome == Status.RUNNING and any(item.vote.kind == "gate" for item in recorded):
        # The gate did decide, but its vote does not verify (e.g. a repository without signing keys):
        # the run is over and did not pass; it must not look "running" night after night.
        outcome = Status.FAILED
    if outcome == Status.PASSED and unverified_steps(repo, run_branch(task_id, attempt), signers):
        outcome = Status.FAILED
    # A step counts only for the run it was signed for: a branch pointed at another task's (or
    # attempt's) signed steps, or a run recorded without the binding, never passes; nor does a branch
    # pointed at another task's merged run make this task merged (and never attempted again).
    if outcome in (Status.PASSED, Status.MERGED) and misbound_steps(
        repo, run_branch(task_id, attempt), with_base=outcome == Status.PASSED
    ):
        outcome = Status.FAILED
    return outcome, votes


def derive_status(*, cancelled: bool, claimed: bool, outcome: Status | None) -> Status:
    """Combine the facts about a task into its one status (pure: the precedence lives here)."""
    if outcome == Status.MERGED:
        return Status.MERGED
    if cancelled:
        return Status.CANCELLED
    if outcome is not None:
        return outcome
    return Status.CLAIMED if claimed else Status.QUEUED


@dataclass(slots=True)
class TaskState:
    spec: Spec
    status: Status
    attempts: dict[int, pygit2.Oid] = field(default_factory=dict)
    claimed: bool = False
    votes: list[Vote] = field(default_factory=list)
    decided: int | None = None  # the attempt the status describes (None: the newest)

    @property
    def id(self) -> str:
        assert self.spec.id is not None
        return self.spec.id

    @property
    def latest_attempt(self) -> int | None:
        """The attempt the status describes (what merge takes, what the report shows): the newest, or an
        older one that passed while newer ones ran beside it (`--jobs`) and did not."""
        if self.decided is not None:
            return self.decided
        return max(self.attempts) if self.attempts else None


def task_states(repo: pygit2.Repository) -> list[TaskState]:
    """Every queued spec with its derived status, highest priority first, then oldest first."""
    return queue_states(repo)[0]


def queue_states(repo: pygit2.Repository) -> tuple[list[TaskState], list[BrokenSpec]]:
    """`task_states`, and the specs too broken to have a status, from one read of the queue (reading a
    large queue's parsed-spec cache is most of what `list` costs)."""
    tree = queue_tree(repo)
    specs, broken = read_queue(repo, tree)
    cancelled = cancelled_ids(tree, repo)
    claims = {name.removeprefix(CLAIMS_PREFIX) for name in repo.references if name.startswith(CLAIMS_PREFIX)}
    heads = run_heads(repo)
    signers: dict[str | None, AllowedSigners] = {}
    states = []
    for spec in specs:
        assert spec.id is not None
        attempts = heads.get(spec.id, {})
        outcome = None
        votes: list[Vote] = []
        decided: int | None = None
        if attempts:
            if spec.base not in signers:
                signers[spec.base] = allowed_signers(repo, spec.base)
            decided = max(attempts)
            outcome, votes = checked_outcome(repo, spec.id, decided, attempts[decided], signers[spec.base])
            # Attempts of one task may run side by side (--jobs): a passed one is not hidden by a newer one
            # that failed or still runs. One at a time, the newest attempt is the only one that can pass.
            if outcome not in (Status.PASSED, Status.MERGED):
                for older in sorted(attempts, reverse=True)[1:]:
                    found = checked_outcome(repo, spec.id, older, attempts[older], signers[spec.base])
                    if found[0] in (Status.PASSED, Status.MERGED):
                        decided, (outcome, votes) = older, found
                        break
        status = derive_status(cancelled=spec.id in cancelled, claimed=spec.id in claims, outcome=outcome)
        state = TaskState(spec, status, dict(attempts), spec.id in claims, votes)
        if attempts and decided != max(attempts):
            state.decided = decided
        states.append(state)
    states.sort(
        # A synced spec may lack `created`: it sorts as the oldest instead of breaking the comparison.
        key=lambda state: (
            -state.spec.priority,
            state.spec.created.at.timestamp() if state.spec.created else 0.0,
            state.id,
        )
    )
    return states, broken
