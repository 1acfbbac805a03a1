"""Per-task locks for runners on one machine: an flock on a file in the git dir.

The kernel drops an flock when its process dies, SIGKILL included, so a killed runner never leaves a
stale lock behind and the next night can resume the task at once.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pantheon_git.store.git import common_dir


def pantheon_dir(git_dir: str | os.PathLike[str]) -> Path:
    """<common git dir>/pantheon: logs, locks, reports, caches and worktrees (shared by worktrees)."""
    return common_dir(git_dir) / "pantheon"


# (common git dir, task id) -> when this process took the task's lock. Only the holder writes the task's
# run branch, so a ref lock file made before that moment was left by an earlier holder, now gone.
_ACQUIRED: dict[tuple[str, str], float] = {}
# Filesystem timestamps come from a coarser clock than time.time(): a lock must predate the lock taken by
# this much to count as an earlier holder's.
CLOCK_MARGIN_S = 0.05


def held_since(git_dir: str | os.PathLike[str], task_id: str) -> float | None:
    """When this process took `task_id`'s lock (minus the clock margin), or None if it does not hold it."""
    since = _ACQUIRED.get((str(common_dir(git_dir)), task_id))
    return None if since is None else since - CLOCK_MARGIN_S


@contextmanager
def task_lock(git_dir: str | os.PathLike[str], task_id: str) -> Iterator[bool]:
    """Hold the task's lock for the block; yields False (holding nothing) if another runner has it."""
    directory = pantheon_dir(git_dir) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{task_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        key = (str(common_dir(git_dir)), task_id)
        _ACQUIRED[key] = time.time()
        try:
            yield True
        finally:
            _ACQUIRED.pop(key, None)
    finally:
        os.close(fd)  # closing drops the lock
