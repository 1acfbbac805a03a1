"""Per-task locks for runners on one machine: an flock on a file in the git dir.

The kernel drops an flock when its process dies, SIGKILL included, so a killed runner never leaves a
stale lock behind and the next night can resume the task at once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pantheon_git.store.git import common_dir


def pantheon_dir(git_dir: str | os.PathLike[str]) -> Path:
    """<common git dir>/pantheon: logs, locks, reports, caches and worktrees (shared by worktrees)."""
    return common_dir(git_dir) / "pantheon"


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
        yield True
    finally:
        os.close(fd)  # closing drops the lock
