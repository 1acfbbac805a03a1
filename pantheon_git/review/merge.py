"""Merge what passed: a passing run branch goes into its base, fast-forward when possible, else a merge
commit built in memory; a conflict aborts with nothing written. The merge is recorded as a vote."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pygit2

from pantheon_git.queue.status import Status, TaskState
from pantheon_git.review.trust import run_waits
from pantheon_git.store.git import lookup, ref_commit, run_git, set_ref, signature
from pantheon_git.store.layout import run_branch
from pantheon_git.store.runs import recorded_steps
from pantheon_git.store.signing import ALLOWED_SIGNERS, touches_allowed_signers
from pantheon_git.store.votes import Verdict, Vote, VoteKind, append_votes


class MergeResult(StrEnum):
    MERGED = "merged"
    FAST_FORWARD = "fast-forward"
    WOULD_MERGE = "would-merge"
    REFUSED = "refused"
    CONFLICT = "conflict"
    WAITS = "waits"  # passed, but changes trust paths: needs a person's signed approval (review/trust.py)


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    task_id: str
    result: MergeResult
    detail: str


def refusal(state: TaskState) -> str | None:
    """Why a task may not merge, or None (pure)."""
    if state.status == Status.PASSED:
        return None
    if state.status == Status.RUNNING:
        return "not reviewed: its run has no gate verdict yet"
    if state.status in (Status.QUEUED, Status.CLAIMED):
        return "has not run yet"
    return f"is {state.status.value}"


def _undo(
    repo: pygit2.Repository, root: Path, base_ref: str, old: pygit2.Oid, new: pygit2.Oid, checked_out: bool
) -> bool:
    """Put `base_ref` back from `new` to `old` (and the checkout with it); False if it moved on since."""
    if not checked_out:
        return set_ref(repo, base_ref, old, new, "pantheon: merge undone (its record failed)")
    if repo.references[base_ref].target != new:
        return False
    # --keep moves the branch and the files git merge just changed; it refuses to touch local edits.
    return run_git(["reset", "--quiet", "--keep", str(old)], root, check=False).returncode == 0


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A task's passing run branch and the base branch it merges into."""

    task_id: str
    head: pygit2.Commit  # the run branch's tip
    run_ref: str  # refs/heads/pantheon/<task>/<attempt>
    base: str

    @property
    def branch(self) -> str:
        return self.run_ref.removeprefix("refs/heads/")

    @property
    def base_ref(self) -> str:
        return f"refs/heads/{self.base}"


def merge_task(repo: pygit2.Repository, root: Path, state: TaskState, *, dry_run: bool) -> MergeOutcome:
    """Merge the task's latest attempt into its base if it passed and changes nothing that decides;
    nothing is written when it is refused, conflicts, or `dry_run`."""
    reason = refusal(state)
    if reason is not None:
        return MergeOutcome(state.id, MergeResult.REFUSED, reason)
    attempt = state.latest_attempt
    assert attempt is not None
    merging = _Candidate(
        task_id=state.id,
        head=lookup(repo, state.attempts[attempt], pygit2.Commit),
        run_ref=run_branch(state.id, attempt),
        base=state.spec.base or "main",
    )
    held = _held_back(repo, merging)
    if held is not None:
        return held
    base_tip = ref_commit(repo, merging.base_ref)
    if base_tip is None:
        return MergeOutcome(state.id, MergeResult.REFUSED, f"base {merging.base} is not a branch here")
    head, branch, base = merging.head, merging.branch, merging.base
    if head.id == base_tip.id or repo.descendant_of(base_tip.id, head.id):
        # Already in its base (an earlier merge killed before its record, or a person's `git merge`):
        # nothing to merge again, only the record to catch up, so the base moves with a record at most once.
        if dry_run:
            return MergeOutcome(state.id, MergeResult.WOULD_MERGE, f"{branch} is in {base}: would record it")
        same = base_tip.id
        return _record(repo, root, merging, old=same, new=same, checked_out=False, ff=head.id == same)
    fast_forward = repo.descendant_of(head.id, base_tip.id)
    if not fast_forward:
        index = repo.merge_commits(base_tip, head)
        if index.conflicts is not None:
            paths = sorted(
                {entry.path for entry in (c[1] or c[0] for c in index.conflicts) if entry is not None}
            )
            return MergeOutcome(
                state.id, MergeResult.CONFLICT, f"conflicts with {base} in {', '.join(paths)}; nothing merged"
            )
    if dry_run:
        return MergeOutcome(
            state.id,
            MergeResult.WOULD_MERGE,
            f"{branch} into {base}" + (" (fast-forward)" if fast_forward else ""),
        )
    moved = _move_base(repo, root, merging, base_tip, fast_forward=fast_forward)
    if isinstance(moved, MergeOutcome):
        return moved
    new, checked_out = moved
    return _record(repo, root, merging, old=base_tip.id, new=new, checked_out=checked_out, ff=fast_forward)


def _held_back(repo: pygit2.Repository, merging: _Candidate) -> MergeOutcome | None:
    """Why a passing run still may not merge unattended, or None."""
    # Who may vote is changed by people on the base branch, never by a run (a model's edit or a pushed
    # branch would otherwise make its own signer trusted once merged).
    steps = recorded_steps(repo, merging.run_ref)
    edits = [step for step, commit in steps if touches_allowed_signers(commit)]
    if edits:
        return MergeOutcome(
            merging.task_id,
            MergeResult.REFUSED,
            f"step {edits[0]} changes {ALLOWED_SIGNERS}; change it by hand",
        )
    # A run that changes what decides (config, flows, agents, hooks, CI) is never merged unattended.
    waits = run_waits(repo, merging.run_ref, merging.base)
    return None if waits is None else MergeOutcome(merging.task_id, MergeResult.WAITS, waits)


def _move_base(
    repo: pygit2.Repository, root: Path, merging: _Candidate, base_tip: pygit2.Commit, *, fast_forward: bool
) -> tuple[pygit2.Oid, bool] | MergeOutcome:
    """Move the base to the merge: (its new tip, whether it is checked out here), or why it did not."""
    head, branch, base, base_ref = merging.head, merging.branch, merging.base, merging.base_ref
    checked_out = not repo.head_is_detached and not repo.head_is_unborn and repo.head.name == base_ref
    if checked_out:
        # The user's checkout must follow: let git move the branch and the work tree together.
        if run_git(["status", "--porcelain", "--untracked-files=no"], root).stdout.strip():
            return MergeOutcome(
                merging.task_id, MergeResult.REFUSED, f"{base} is checked out with uncommitted changes"
            )
        mode = (
            ["--ff-only"] if fast_forward else ["--no-ff", "--no-edit", "-m", f"Merge {branch} into {base}"]
        )
        proc = run_git(["merge", "--quiet", *mode, "--end-of-options", branch], root, check=False)
        if proc.returncode != 0:
            run_git(["merge", "--abort"], root, check=False)
            return MergeOutcome(
                merging.task_id, MergeResult.CONFLICT, f"git merge failed: {proc.stderr.strip()[:200]}"
            )
        return repo.references[base_ref].peel(pygit2.Commit).id, True
    if fast_forward:
        new = head.id
    else:
        tree = repo.merge_commits(base_tip, head).write_tree(repo)
        sig = signature(repo)
        new = repo.create_commit(
            None, sig, sig, f"Merge {branch} into {base}\n", tree, [base_tip.id, head.id]
        )
    if not set_ref(repo, base_ref, new, base_tip.id, f"pantheon: merge {branch}"):
        return MergeOutcome(
            merging.task_id, MergeResult.REFUSED, f"{base} moved while merging; run merge again"
        )
    return new, False


def _record(
    repo: pygit2.Repository,
    root: Path,
    merging: _Candidate,
    *,
    old: pygit2.Oid,
    new: pygit2.Oid,
    checked_out: bool,
    ff: bool,
) -> MergeOutcome:
    """Record the merge of the run branch into its base (now at `new`, from `old`): a merge and its
    record are one step, so when the record cannot be written the base (and its checkout) goes back to
    `old`."""
    base = merging.base
    record = Vote(
        kind=VoteKind.MERGE,
        voter="merge",
        verdict=Verdict.APPROVE,
        evidence={"into": base, "commit": str(new), "fast_forward": ff},
    )
    try:
        append_votes(repo, merging.head.id, [record])
    except Exception as failed:  # no record, so no merge
        if new == old:
            after = f"{base} unchanged"
        elif _undo(repo, root, merging.base_ref, old, new, checked_out):
            after = f"{base} put back at {str(old)[:12]}"
        else:
            after = f"{base} moved on meanwhile (run merge again to record it)"
        why = " ".join(str(failed).split()) or type(failed).__name__
        return MergeOutcome(
            merging.task_id, MergeResult.REFUSED, f"recording the merge failed ({why}); {after}"
        )
    return MergeOutcome(
        merging.task_id,
        MergeResult.FAST_FORWARD if ff else MergeResult.MERGED,
        f"{merging.branch} into {base} at {str(new)[:12]}",
    )
