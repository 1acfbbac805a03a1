"""Confine tool paths to the worktree: every file tool reads, writes and walks only through here.

Absolute paths, `..`, `.git` (at any depth) and symlinks that lead out are refused; so are hard links (a
regular file with more than one name may be the other name of a file outside), FIFOs, sockets and
devices. Files are read through the runner's one worktree open (`store.worktree.read_regular`) and
written with O_NOFOLLOW|O_NONBLOCK, both checked again on the open descriptor, so neither a symlink
swapped in nor a FIFO (which would block an open forever) gets past, and walks never follow a symlink out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from pantheon_git.store.files import UnreadableFile, read_regular, refusal


class ToolError(Exception):
    """A refusal or failure a tool reports back to the model (the model may retry)."""


_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NAME_MAX_BYTES = 255  # one path component, as Linux and macOS allow


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def confined(worktree: Path, given: str, *, for_write: bool = False) -> Path:
    """The real path of `given` inside `worktree`, or ToolError saying why it is not allowed.

    With `for_write`, an existing target must also be a regular file with one name (no hard link, FIFO,
    socket or device), and no directory on the way may be a symlink leading out.
    """
    if not given or given.strip() != given:
        raise ToolError(f"path {given!r}: give a relative path inside the repository")
    pure = PurePosixPath(given)
    if pure.is_absolute() or given.startswith("~"):
        raise ToolError(
            f"path {given}: absolute paths are not allowed; use a path relative to the repository"
        )
    if ".." in pure.parts:
        raise ToolError(f"path {given}: '..' is not allowed; stay inside the repository")
    if any(part.lower() == ".git" for part in pure.parts):
        # Anywhere, not only at the top: `sub/.git/config` written by a model would make `sub` a
        # repository of its own, whose config names programs for the runner's git to run.
        raise ToolError(f"path {given}: the .git directory is off limits (at any depth)")
    if "\x00" in given or any(len(part.encode()) > NAME_MAX_BYTES for part in pure.parts):
        # The OS would raise, not answer (a model writing random bytes into a path crashed a run).
        raise ToolError(
            f"path {given!r}: not a file name (a NUL byte, or a name over {NAME_MAX_BYTES} bytes)"
        )
    root = worktree.resolve()
    target = (root / pure).resolve()  # follows symlinks, so a link pointing outside is caught here
    if not _inside(root, target):
        raise ToolError(f"path {given}: leads outside the repository (through a symlink)")
    if target.relative_to(root).parts[:1] == (".git",):
        raise ToolError(f"path {given}: the .git directory is off limits")
    if for_write:
        try:
            info = target.lstat()
        except FileNotFoundError:
            return target
        why = None if stat.S_ISDIR(info.st_mode) else refusal(info)
        if why is not None:
            raise ToolError(f"path {given}: {why}")
    return target


def read_text(path: Path, shown: str, limit: int | None = None, *, errors: str = "replace") -> str:
    """A regular file's text, through the runner's one worktree open (`store.worktree.read_regular`: no
    link followed, no blocking, at most its cap); `limit` cuts what is returned, never the check.

    `errors="strict"` raises UnicodeDecodeError for a file that is not UTF-8 (search skips those)."""
    try:
        data = read_regular(path)
    except UnreadableFile as refused:
        raise ToolError(f"{shown}: {refused.strerror or refused}") from None
    return (data if limit is None else data[:limit]).decode("utf-8", errors=errors)


def write_text(path: Path, shown: str, content: str) -> None:
    """Replace a regular file's content (creating it), never through a link, a FIFO or a device.

    Opened without O_TRUNC: the descriptor is checked first, and only a plain file with one name is cut.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _OPEN_FLAGS, 0o644)
    except OSError as exc:  # ELOOP: a symlink; ENXIO: a FIFO nobody reads
        raise ToolError(f"{shown}: cannot write ({exc.strerror})") from None
    try:
        why = refusal(os.fstat(fd))
        if why is not None:
            raise ToolError(f"{shown}: {why}")
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
        data = content.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def walk_files(worktree: Path, start: Path) -> Iterator[Path]:
    """Regular files under `start` (paths relative to the worktree, sorted per directory), never through
    a symlink that leads out and never `.git`; hard links, FIFOs, sockets and devices are skipped."""
    root = worktree.resolve()
    for directory, dirs, files in os.walk(start, followlinks=False):  # a linked dir is listed, not entered
        dirs[:] = sorted(d for d in dirs if d.lower() != ".git")
        for name in sorted(files):
            if name.lower() == ".git":  # a linked worktree's pointer to its repository
                continue
            path = Path(directory, name)
            try:
                real = path.resolve(strict=True)
                info = real.stat()
            except (OSError, RuntimeError):  # a dangling or looping link
                continue
            if not _inside(root, real) or refusal(info) is not None:
                continue
            yield path.relative_to(root)
