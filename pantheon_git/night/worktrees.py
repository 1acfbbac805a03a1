"""Task worktrees: each attempt runs in its own `git worktree`, kept under the git dir, removed after.

Through the git command line, because worktree bookkeeping must match what the user's git expects
(`git worktree list`, prune, locks); `run_git` keeps the repository's hooks (a `post-checkout` hook at
`worktree add`) and fsmonitor from running, and `--end-of-options` keeps paths and branches data. The
files themselves are checked out by libgit2 (store/worktree.py), which runs no filter or submodule.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2

from pantheon_git.schema.config import load_config
from pantheon_git.store.git import run_git
from pantheon_git.store.local_files import copy_local_files
from pantheon_git.store.locks import pantheon_dir, task_lock
from pantheon_git.store.worktree import checkout_worktree, open_worktree


def worktree_path(git_dir: str, task_id: str, attempt: int) -> Path:
    return pantheon_dir(git_dir) / "worktrees" / f"{task_id}-{attempt}"


# `git worktree add/remove/prune` edit one shared list under the git dir: the jobs of a night (threads)
# take turns, so one job's prune never meets another's half-added worktree.
_WORKTREES = threading.RLock()


def add_worktree(repo_root: Path, path: Path, branch: str) -> Path:
    """Check `branch` out at `path`, clearing what a killed run may have left there first."""
    with _WORKTREES:
        return _add_worktree(repo_root, path, branch)


def _add_worktree(repo_root: Path, path: Path, branch: str) -> Path:
    # A runner killed inside `git worktree add` leaves the entry locked ("initializing") and the branch
    # marked as checked out there; unlock, remove, prune, and let a doubled --force override the rest.
    # That lock is provably stale, not merely present: the path is this task attempt's own and the caller
    # holds the task's flock, which every earlier user of the path held until it died or finished.
    run_git(["worktree", "unlock", "--end-of-options", str(path)], repo_root, check=False)
    remove_worktree(repo_root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_git(
        [
            "worktree",
            "add",
            "--quiet",
            "--force",
            "--force",
            # The files come from libgit2 below: git's checkout would run the smudge filters that the
            # tree's `.gitattributes` (written by a run) name from the user's config (git-lfs fetching
            # over the network, say), and with `submodule.recurse` clone the tree's `.gitmodules` URLs.
            "--no-checkout",
            "--end-of-options",  # a path or branch taken from data is never an option
            str(path),
            branch.removeprefix("refs/heads/"),
        ],
        repo_root,
    )
    checkout_worktree(path)
    # Ignored files the tests need, as the person's checkout lists them (a run's copy of config.toml is
    # never read): copied in, never committed.
    listed = load_config(repo_root).night.worktree_files
    if listed:
        copy_local_files(open_worktree(path), repo_root, listed)
    return path


def remove_worktree(repo_root: Path, path: Path) -> None:
    """Remove the worktree (its branch stays); tolerate one that git no longer knows."""
    with _WORKTREES:
        _remove_worktree(repo_root, path)


def _remove_worktree(repo_root: Path, path: Path) -> None:
    run_git(
        ["worktree", "remove", "--force", "--force", "--end-of-options", str(path)], repo_root, check=False
    )
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    run_git(["worktree", "prune"], repo_root, check=False)


@contextmanager
def scratch_worktree(repo: pygit2.Repository, root: Path, commit: pygit2.Oid, label: str) -> Iterator[Path]:
    """A throw-away worktree at `commit` on a temporary branch `pantheon-<label>`; both removed after.

    For work that must not touch a run branch: replaying a step, evaluating an adapter on a task.
    """
    branch = f"refs/heads/pantheon-{label}"
    repo.references.create(branch, commit, force=True)
    with tempfile.TemporaryDirectory(prefix="pantheon-scratch-") as scratch:
        workdir = Path(scratch) / "wt"
        try:
            yield add_worktree(root, workdir, branch)
        finally:
            remove_worktree(root, workdir)
            repo.references.delete(branch)


def sweep_worktrees(repo: pygit2.Repository, repo_root: Path) -> list[Path]:
    """Remove task worktrees a killed runner left behind: those whose task no live runner holds (its
    flock is free). A finished task is never resumed, so nothing else would ever remove them."""
    folder = pantheon_dir(repo.path) / "worktrees"
    swept = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        task_id, _, attempt = path.name.rpartition("-")
        if not task_id or not attempt.isdigit():
            continue
        with task_lock(repo.path, task_id) as free:
            if free:
                remove_worktree(repo_root, path)
                swept.append(path)
    return swept
