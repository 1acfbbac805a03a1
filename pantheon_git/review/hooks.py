"""Git hooks: the pre-push guard of protected branches, and installing it into a repository."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.queue.status import Status, checked_outcome
from pantheon_git.queue.tasks import cancelled_ids, queue_tree
from pantheon_git.review.trust import person_approved, trust_edits, trust_paths_at, wait_reason
from pantheon_git.store.git import lookup, parse_oid, run_git
from pantheon_git.store.runs import parse_trailers, run_heads
from pantheon_git.store.signing import (
    ALLOWED_SIGNERS,
    AllowedSigners,
    allowed_signers,
    allowed_signers_at,
    touches_allowed_signers,
    trusted_tip,
)

ZERO = "0" * 40
MARK = "pantheon-git pre-push hook"


def hooks_source() -> Path:
    packaged = Path(__file__).resolve().parents[1] / "_hooks"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "hooks"


def protected_branches(repo: pygit2.Repository, configured: list[str]) -> set[str]:
    if configured:
        return {f"refs/heads/{name}" for name in configured}
    origin_head = repo.references.get("refs/remotes/origin/HEAD")
    if origin_head is not None and origin_head.type == pygit2.enums.ReferenceType.SYMBOLIC:
        return {"refs/heads/" + str(origin_head.target).removeprefix("refs/remotes/origin/")}
    return {ref for ref in ("refs/heads/main", "refs/heads/master") if ref in repo.references} or {
        "refs/heads/main"
    }


def ungated_commits(
    repo: pygit2.Repository, root: Path, local: pygit2.Oid, remote: pygit2.Oid | None
) -> list[str]:
    """Run-branch commits about to be pushed whose run did not pass its gate: 'commit (task): why'.

    Passing means a counted (signed, allowed) gate approval and every step signed by an allowed signer
    of the protected branch as the remote has it (the local branch may just have merged a run that edits
    them), so a run branch and notes from another machine cannot vouch for themselves. Commits that are
    only on the remote's run branches are not taken as already reviewed, and a run commit that edits
    .pantheon/allowed_signers is refused: people change who may vote, runs do not. A run commit that
    changes a trust path (review/trust.py, the list as the remote has it) needs a person's signed
    approval of its run, and a cancelled task's commits never go out. `remote` is None
    when the remote has no such branch yet."""
    if remote is None:
        exclude = ["--not", "--exclude=*/pantheon/*", "--remotes"]
        runs = _Runs(repo, allowed_signers(repo), trust_paths_at(repo, trusted_tip(repo)))
    else:
        exclude = [f"^{remote}"]
        # As the remote has them: the signers and the trust paths.
        runs = _Runs(repo, allowed_signers_at(repo, remote), trust_paths_at(repo, remote))
    cancelled = cancelled_ids(queue_tree(repo), repo)
    problems = []
    for commit_id in _pushed(root, local, exclude):
        commit = lookup(repo, commit_id, pygit2.Commit)
        trailers = parse_trailers(commit.message)
        task = trailers.get("Pantheon-Task")
        if not task:
            continue
        if touches_allowed_signers(commit):
            why: str | None = f"a run commit changes {ALLOWED_SIGNERS}"
        elif task in cancelled:  # a cancelled task's work never goes out, however it got onto the branch
            why = "the task is cancelled; its work is not to merge"
        else:
            why = runs.refusal(commit, task, trailers.get("Pantheon-Attempt", ""))
        if why is not None:
            problems.append(f"{str(commit_id)[:12]} (task {task}): {why}")
    return problems


def _pushed(root: Path, local: pygit2.Oid, exclude: list[str]) -> list[pygit2.Oid]:
    """The commits a push of `local` carries (rev-list, less `exclude`); fails closed."""
    proc = run_git(["rev-list", "--end-of-options", str(local), *exclude], root, check=False)
    if proc.returncode != 0:
        # Fail closed: an empty listing would let every commit through (say, the remote's tip is a commit
        # this clone has not fetched).
        reason = (proc.stderr.strip().splitlines() or ["rev-list failed"])[-1]
        raise PantheonError(f"cannot tell which commits this push carries ({reason}); fetch, then push again")
    listing = [parse_oid(line) for line in proc.stdout.split()]
    if any(commit_id is None for commit_id in listing):
        raise PantheonError("cannot read rev-list's listing of this push: refusing rather than guessing")
    return [commit_id for commit_id in listing if commit_id is not None]


class _Runs:
    """Each run's verdict, head and people's approval, looked up once per (task, attempt) a push names."""

    def __init__(self, repo: pygit2.Repository, signers: AllowedSigners, patterns: tuple[str, ...]) -> None:
        self.repo, self.signers, self.patterns = repo, signers, patterns
        self.heads = run_heads(repo)
        self.verdicts: dict[tuple[str, str], tuple[Status, pygit2.Oid | None]] = {}
        self.approved: dict[tuple[str, str], bool] = {}

    def refusal(self, commit: pygit2.Commit, task: str, attempt: str) -> str | None:
        """Why this run commit may not go out (None: it may)."""
        key = (task, attempt)
        if key not in self.verdicts:
            attempts = self.heads.get(task, {})
            number = int(attempt) if attempt.isdigit() else (max(attempts) if attempts else None)
            head = attempts.get(number) if number is not None else None
            verdict = Status.RUNNING
            if head is not None and number is not None:
                verdict = checked_outcome(self.repo, task, number, head, self.signers)[0]
            self.verdicts[key] = verdict, head
        verdict, head = self.verdicts[key]
        if verdict not in (Status.PASSED, Status.MERGED):
            return f"its run is {verdict.value}, not gated"
        if head is not None and head != commit.id and not self.repo.descendant_of(head, commit.id):
            # Its trailers name a run that passed, but the run is not this commit: a gate's approval
            # vouches for the commits of its own run only (one made elsewhere may copy any trailers).
            return f"not a commit of its run {task}/{attempt or '?'}"
        # What decides (config, flows, agents, hooks, CI) changes only with a person's signed approval.
        edits = trust_edits([commit], self.patterns)
        if not edits:
            return None
        if key not in self.approved:
            self.approved[key] = head is not None and person_approved(self.repo, head, self.signers)
        return None if self.approved[key] else f"waits: {wait_reason(task, edits)}"


def pre_push(repo: pygit2.Repository, root: Path, lines: Iterable[str], protected: set[str]) -> list[str]:
    """Refusals for the refs git is about to push (stdin of the pre-push hook)."""
    refusals = []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        unreadable = f"cannot read git's ref line {line.strip()[:80]!r}: refusing rather than guessing"
        if len(parts) != 4:
            refusals.append(unreadable)
            continue
        _local_ref, local_sha, remote_ref, remote_sha = parts
        if local_sha == ZERO or remote_ref not in protected:
            continue
        local = parse_oid(local_sha)
        remote = None if remote_sha == ZERO else parse_oid(remote_sha)  # all zeros: a new branch there
        if local is None or (remote is None and remote_sha != ZERO):
            refusals.append(unreadable)
            continue
        for problem in ungated_commits(repo, root, local, remote):
            refusals.append(f"{remote_ref.removeprefix('refs/heads/')}: {problem}")
    return refusals


def _pre_push_path(repo: pygit2.Repository) -> Path:
    """Where git looks for this repository's pre-push hook (core.hooksPath honoured, as git does)."""
    top = Path(repo.workdir or repo.path)
    hooks_dir = Path(run_git(["rev-parse", "--git-path", "hooks"], top, repo_programs=True).stdout.strip())
    return (hooks_dir if hooks_dir.is_absolute() else top / hooks_dir) / "pre-push"


def install(repo: pygit2.Repository, force: bool = False) -> Path:
    target = _pre_push_path(repo)
    hooks_dir = target.parent
    if target.exists() and MARK not in target.read_text(errors="replace") and not force:
        raise PantheonError(f"{target}: a pre-push hook of your own is there; chain ours from it, or --force")
    text = (hooks_source() / "pre-push").read_text()
    text = text.replace("${PANTHEON_PYTHON:-python3}", "${PANTHEON_PYTHON:-" + sys.executable + "}")
    hooks_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chmod(target, 0o755)
    return target


def uninstall(repo: pygit2.Repository) -> Path | None:
    target = _pre_push_path(repo)
    if target.exists() and MARK in target.read_text(errors="replace"):
        target.unlink()
        return target
    return None
