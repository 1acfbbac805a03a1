"""Files git ignores that a task's tests need, copied from the person's checkout into each worktree the
night adds (`[night] worktree_files`), and never committed.

A worktree holds only what is committed. A test that imports a file generated at install (setuptools_scm's
`version.py`, a built extension module) fails in every night worktree whatever the model wrote, while it
passes in the person's checkout. They list such files; each is copied into every worktree.

Both ends are data someone else may have written, so both are guarded:

- **Read** from the person's checkout as a regular file with one name, every directory on the way opened
  without following a symlink: a symlink that a merged run committed (`src -> ~/.ssh`) cannot make the
  night read anything outside the checkout.
- **Written** into the task's tree, which earlier steps (a model) wrote, only where the tree has no entry
  (`O_CREAT|O_EXCL|O_NOFOLLOW`: the tree's own file, link or FIFO wins and is left alone) and through no
  symlinked directory (each opened with `O_NOFOLLOW`): a committed `src -> /home/me` cannot make the copy
  land outside the worktree.
- **Never staged**: what was copied is recorded in the worktree's admin dir (in the git dir, which the
  sandbox mounts read-only), and `worktree.stage_all` drops those paths from every step, even after the
  task un-ignored them (a listed file must never reach a run branch, which is pushed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pygit2

from pantheon_git.store.files import UnreadableFile, read_regular

# A listed file larger than this is not copied (a built extension is a few MiB).
COPY_LIMIT = 64 << 20
# In the worktree's admin dir (`.git/worktrees/<name>/`): removed with the worktree.
RECORD = "pantheon-worktree-files.json"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file inside a repository's tree, or None: relative, `/`-separated, no
    `..`, `.` or empty part, nothing in a `.git` (any letter case)."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return "not a relative path inside the repository"
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    if any(part.lower() == ".git" for part in parts):
        return "is inside a .git"
    return None


@contextmanager
def _directory(root: Path, parts: Sequence[str], *, create: bool) -> Iterator[int]:
    """An open descriptor of `root/parts…`, each part opened without following a symlink (made where
    missing, with `create`); OSError (ELOOP, ENOTDIR, ENOENT) where a part is a link, a file or absent."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def read_beneath(root: Path, path: str, limit: int = COPY_LIMIT) -> tuple[bytes, int]:
    """The bytes and permission bits of regular file `root/path`, reached through no symlink;
    UnreadableFile saying why not."""
    *folders, name = path.split("/")
    try:
        with _directory(root, folders, create=False) as parent:
            data = read_regular(name, limit, dir_fd=parent)
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except UnreadableFile:
        raise
    except OSError as exc:  # a directory on the way is a symlink (ELOOP), a file (ENOTDIR) or absent
        raise UnreadableFile(exc.errno, f"cannot open a directory on its path ({exc.strerror})") from None
    return data, mode & 0o755


def write_new_beneath(root: Path, path: str, data: bytes, mode: int = 0o644) -> None:
    """Create `root/path` holding `data`, only where no entry of that name exists, through no symlinked
    directory (missing directories are made); UnreadableFile saying why not."""
    *folders, name = path.split("/")
    try:
        with _directory(root, folders, create=True) as parent:
            fd = os.open(name, _CREATE_FLAGS, mode, dir_fd=parent)
    except FileExistsError:
        raise UnreadableFile("the task's tree has its own entry there; it is left as it is") from None
    except OSError as exc:
        raise UnreadableFile(exc.errno, f"cannot be written there ({exc.strerror})") from None
    try:
        os.set_blocking(fd, True)
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def copy_local_files(repo: pygit2.Repository, source: Path, paths: Sequence[str]) -> list[str]:
    """Copy each of `paths` from the checkout at `source` into the worktree `repo` opened, where the
    worktree has no entry of that name; record what was copied (see `local_paths`) and return it. A file
    that cannot be read or written as the module docstring says is skipped (`doctor` names the first kind)."""
    copied = []
    for path in paths:
        if path_problem(path) is not None:  # refused in config.toml already; the record is read back too
            continue
        try:
            data, mode = read_beneath(source, path)
            write_new_beneath(Path(repo.workdir), path, data, mode)
        except UnreadableFile:
            continue
        copied.append(path)
    record = {
        "source": os.fspath(source),
        "paths": list(paths),
        "copied": sorted(set(copied) | local_paths(repo)),
    }
    (Path(repo.path) / RECORD).write_text(json.dumps(record))
    return copied


def _record(repo: pygit2.Repository) -> dict[str, object]:
    try:
        loaded = json.loads((Path(repo.path) / RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def local_paths(repo: pygit2.Repository) -> frozenset[str]:
    """The paths copied into this worktree from the person's checkout: never staged, never a change."""
    copied = _record(repo).get("copied")
    return (
        frozenset(path for path in copied if isinstance(path, str))
        if isinstance(copied, list)
        else frozenset()
    )


def copy_again(repo: pygit2.Repository) -> None:
    """After a restore removed ignored or new files: copy the listed files again where they are gone."""
    record = _record(repo)
    source, paths = record.get("source"), record.get("paths")
    if isinstance(source, str) and isinstance(paths, list):
        with suppress(OSError):  # the record's own write
            copy_local_files(repo, Path(source), [path for path in paths if isinstance(path, str)])
