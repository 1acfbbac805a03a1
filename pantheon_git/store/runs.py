"""Run branches: one commit per flow step on refs/heads/pantheon/<task>/<attempt>, written without checkout.

A step commit's message is the step's summary followed by `Pantheon-*` trailers, so `git log` and
`git interpret-trailers --parse` read the run without pantheon installed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pygit2

from pantheon_git.errors import ConflictError, PantheonError
from pantheon_git.store.git import build_tree, clear_stale_lock, ref_commit, set_ref, signature
from pantheon_git.store.layout import RUN_BRANCH_PREFIX, parse_run_branch, run_branch
from pantheon_git.store.signing import AllowedSigners, Trust, create_commit, signing_key, verify_commit


@dataclass(frozen=True)
class Step:
    """What a step commit records about itself; every field becomes a trailer."""

    task: str
    step: str
    agent: str
    model: str
    summary: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def message(self) -> str:
        title, _, body = self.summary.strip().partition("\n")
        trailers = {
            "Pantheon-Task": self.task,
            "Pantheon-Step": self.step,
            "Pantheon-Agent": self.agent,
            "Pantheon-Model": self.model,
            **self.extra,
        }
        lines = [f"{key}: {' '.join(str(value).split())}" for key, value in trailers.items()]
        parts = [f"{self.step}: {title or '(no summary)'}"]
        if body.strip():
            parts.append(body.strip())
        parts.append("\n".join(lines))
        return "\n\n".join(parts) + "\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The trailers of a commit message (its last paragraph of `Key: value` lines)."""
    paragraphs = message.strip().split("\n\n")
    if len(paragraphs) < 2:
        return {}
    trailers: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or " " in key:
            return {}
        trailers[key] = value.strip()
    return trailers


def attempts(repo: pygit2.Repository, task_id: str) -> list[int]:
    """The attempt numbers that have a run branch for `task_id`, ascending."""
    return sorted(run_heads(repo).get(task_id, {}))


def run_heads(repo: pygit2.Repository) -> dict[str, dict[int, pygit2.Oid]]:
    """Every run branch: task id -> attempt -> head commit id."""
    heads: dict[str, dict[int, pygit2.Oid]] = {}
    for ref in repo.references.iterator():
        if not ref.name.startswith(RUN_BRANCH_PREFIX):
            continue
        parsed = parse_run_branch(ref.name)
        if parsed is not None:
            heads.setdefault(parsed[0], {})[parsed[1]] = ref.resolve().target
    return heads


def newest_run(repo: pygit2.Repository, task_id: str) -> tuple[int, pygit2.Oid] | None:
    """(attempt, head commit) of the task's newest run branch, or None if it never ran."""
    attempts = run_heads(repo).get(task_id)
    if not attempts:
        return None
    newest = max(attempts)
    return newest, attempts[newest]


def start_run_branch(repo: pygit2.Repository, task_id: str, attempt: int, base: pygit2.Oid) -> str:
    """Create the run branch for an attempt at commit `base`; refuse if it already exists."""
    ref = run_branch(task_id, attempt)
    message = f"pantheon: start {task_id} attempt {attempt}"
    if not set_ref(repo, ref, base, None, message) and not (
        clear_stale_lock(repo, ref, older_than=0) and set_ref(repo, ref, base, None, message)
    ):
        raise PantheonError(f"{ref}: already exists (attempt {attempt} of {task_id} was started before)")
    return ref


def make_step_commit(
    repo: pygit2.Repository,
    ref: str,
    step: Step,
    *,
    tree: pygit2.Oid | None = None,
    changes: Mapping[str, bytes | None] | None = None,
) -> tuple[pygit2.Oid, pygit2.Oid]:
    """Write a step commit on top of `ref`'s tip without moving the branch: (commit, parent).

    The tree is `tree` if given, else the tip's tree with `changes` applied in memory (no checkout);
    neither means an empty commit (a step that changed nothing still leaves its record). Writing the
    commit before publishing it lets the runner attach the trace note first, so a published step never
    lacks its note, whenever the process dies.
    """
    if tree is not None and changes:
        raise ValueError("give a tree or changes, not both")
    tip = ref_commit(repo, ref)
    if tip is None:
        raise PantheonError(f"{ref}: no such run branch (start it at its base first)")
    if tree is None:
        tree = build_tree(repo, tip.tree, changes) if changes else tip.tree_id
    sig = signature(repo)
    # Signed with the runner's key when one is configured: only a run whose every step verifies
    # against the base branch's allowed signers can pass (an unsigned run is kept, never merged).
    key = signing_key(repo)
    return create_commit(repo, sig, sig, step.message(), tree, [tip.id], key), tip.id


def publish_step(repo: pygit2.Repository, ref: str, commit: pygit2.Oid, parent: pygit2.Oid) -> None:
    """Move run branch `ref` from `parent` to `commit`; refuse if anyone else moved it meanwhile.

    Only the holder of the task's lock writes its run branch, so a lock file found on it was left by a
    runner killed mid-write: it is cleared and the move tried once more.
    """
    message = f"pantheon: step {str(commit)[:12]}"
    if set_ref(repo, ref, commit, parent, message):
        return
    if clear_stale_lock(repo, ref, older_than=0) and set_ref(repo, ref, commit, parent, message):
        return
    raise ConflictError(f"{ref}: moved by another writer while a step was being recorded")


def commit_step(
    repo: pygit2.Repository,
    ref: str,
    step: Step,
    *,
    tree: pygit2.Oid | None = None,
    changes: Mapping[str, bytes | None] | None = None,
) -> pygit2.Oid:
    """Write and publish a step commit in one go (for callers with no note to attach first)."""
    commit, parent = make_step_commit(repo, ref, step, tree=tree, changes=changes)
    publish_step(repo, ref, commit, parent)
    return commit


def recorded_steps(repo: pygit2.Repository, ref: str) -> list[tuple[str, pygit2.Commit]]:
    """The step commits on run branch `ref`, oldest first: (step name, commit).

    Walks first parents back to the base, i.e. the first commit without a `Pantheon-Step` trailer.
    """
    steps: list[tuple[str, pygit2.Commit]] = []
    commit = ref_commit(repo, ref)
    while commit is not None:
        name = parse_trailers(commit.message).get("Pantheon-Step")
        if not name:
            break
        steps.append((name, commit))
        commit = commit.parents[0] if commit.parents else None
    return steps[::-1]


def unverified_steps(
    repo: pygit2.Repository, ref: str, signers: AllowedSigners
) -> list[tuple[str, pygit2.Commit, Trust]]:
    """The step commits of run branch `ref` not signed by an allowed signer: (step, commit, why)."""
    found = []
    for name, commit in recorded_steps(repo, ref):
        trust, _ = verify_commit(repo, commit.id, signers)
        if trust != Trust.VERIFIED:
            found.append((name, commit, trust))
    return found


def worktree_tree(worktree: str | os.PathLike[str]) -> pygit2.Oid:
    """The tree of a worktree's current state: every file git does not ignore, staged as `git add -A`."""
    repo = pygit2.Repository(os.fspath(worktree))
    index = repo.index
    # libgit2's add_all stages new and changed files but keeps deleted ones: drop those first.
    root = repo.workdir
    for gone in [entry.path for entry in index if not os.path.lexists(os.path.join(root, entry.path))]:
        index.remove(gone)
    index.add_all()
    index.write()
    return index.write_tree()
