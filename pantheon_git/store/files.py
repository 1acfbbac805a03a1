"""The runner's one way to read and rewrite a file that data wrote: a regular file with one name, opened
without following a final symlink or blocking, checked on the open descriptor, read up to a cap.

A worktree is written by models and by acceptance checks. A FIFO (`mkfifo notes.py` survives
`git clean`) would block an open forever, a device or a link to one reads without end, a hard link is the
same file under another name, maybe outside the repository.
"""

from __future__ import annotations

import os
import stat

# What the runner reads of one worktree file at most (prompts, outlines, redaction): larger files are
# refused, never read in part as if whole.
READ_LIMIT = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnreadableFile(OSError):
    """A worktree path the runner will not read: not a regular file, a hard link, too large, gone."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def refusal(info: os.stat_result) -> str | None:
    """Why a file with this stat may not be read or written from a worktree, or None if it may."""
    if not stat.S_ISREG(info.st_mode):
        return f"is {_kind(info.st_mode)}; only regular files are read and written"
    if info.st_nlink > 1:
        return "is a hard link (the same file has another name, maybe outside the repository)"
    return None


def read_regular(
    path: str | os.PathLike[str], limit: int = READ_LIMIT, *, dir_fd: int | None = None
) -> bytes:
    """The bytes of a regular file with one name, at most `limit` of them, or UnreadableFile saying why.

    The one open for every read the runner makes of a worktree: without following a final symlink, without
    blocking (a FIFO opens at once and is refused on the descriptor), checked on the open descriptor (so a
    file swapped after a check is still refused), never more than `limit` bytes read. With `dir_fd`, `path`
    is a name in that open directory.
    """
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:  # ELOOP: a symlink; ENXIO/ENOENT/EACCES: gone or not ours
        raise UnreadableFile(exc.errno, f"cannot open ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        why = refusal(info)
        if why is not None:
            raise UnreadableFile(why)
        if info.st_size > limit:
            raise UnreadableFile(f"is too large ({info.st_size} bytes; at most {limit} are read)")
        chunks, left = [], limit + 1  # one byte more than allowed: a file that grew is caught too
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise UnreadableFile(f"is too large (grew past {limit} bytes while read)")
        return data
    finally:
        os.close(fd)


def rewrite_regular(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the content of an existing regular file with one name, never through a link, FIFO or device."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(exc.errno, f"cannot write ({exc.strerror})") from None
    try:
        why = refusal(os.fstat(fd))
        if why is not None:
            raise UnreadableFile(why)
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
