"""The runner's own reads of, and git work on, a task's worktree: nothing the tree configures runs, and
nothing but a regular file is read.

A worktree is written by models and by acceptance checks (in the sandbox), so it is data. The runner
reads it outside the sandbox, and there two things must never happen:

- **A program the tree configures runs.** The git command line honours the config of any repository it
  meets: a directory a check turned into a repository of its own (`git init sub`, or a `.git` file
  pointing anywhere), once staged as a gitlink, makes the runner's next `git status`/`git diff` run that
  repository's clean filter, fsmonitor or hooks as the runner's user, with the network and the signing key
  in reach (`-c` overrides do not reach an inner repository's config). So everything here is libgit2
  (pygit2), which runs no filter driver, fsmonitor or hook at all, never recurses into submodules, and
  every nested repository is removed before anything reads the tree (`open_worktree`).
- **A read blocks or balloons.** A FIFO (`mkfifo notes.py` survives `git clean`) would block an open
  forever, a device or a link to one reads without end: every read goes through `files.read_regular`.

Files the person listed in `[night] worktree_files` (local_files.py) are never staged and never count as
a change.
"""

from __future__ import annotations

import os
import shutil
import stat
from contextlib import suppress
from pathlib import Path

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.store.files import UnreadableFile, read_regular
from pantheon_git.store.local_files import copy_again, local_paths


def nested_repositories(worktree: str | os.PathLike[str]) -> list[str]:
    """Every `.git` below the worktree's own (directory, file or link, any letter case), relative paths.

    Each makes its directory a repository of its own to git (a gitdir file may point anywhere), whose
    config, hooks and attributes the tree's author chose. Walked without following a link, and a `.git`
    is never entered: nothing in it is read.
    """
    root = os.fspath(worktree)
    found: list[str] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if entry.name.lower() == ".git":
                if directory != root:
                    found.append(os.path.relpath(entry.path, root))
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
    return sorted(found)


def remove_nested_repositories(worktree: str | os.PathLike[str]) -> list[str]:
    """Remove every nested repository's `.git` (see `nested_repositories`); the paths removed.

    Removed, not merely skipped: left in place, a later `git` of anyone (a person's `git status` in the
    morning, a resumed night's checkout) would meet the config it carries. The directory's files stay,
    plain files of the task's tree.
    """
    root = Path(worktree)
    removed = nested_repositories(root)
    for relative in removed:
        path = root / relative
        try:
            if stat.S_ISDIR(path.lstat().st_mode):
                shutil.rmtree(path)  # fd-based on Linux: never follows a link out of the tree
            else:
                path.unlink()
        except FileNotFoundError:
            continue
    return removed


def _check_pointer(root: Path) -> bool:
    """A linked worktree's `.git` must be a plain pointer file naming a git dir outside the tree.

    The sandbox keeps it read-only, and the model's tools refuse `.git`; this is the runner's own check
    that no other path pointed it at a git dir the tree's author wrote. A `.git` directory is a main
    checkout: the user's own repository (tests and day-mode callers stage there). True for a linked
    worktree (the runner's), False for a main checkout.
    """
    dot_git = root / ".git"
    try:
        info = dot_git.lstat()
    except FileNotFoundError:
        raise PantheonError(f"{root}: not a git worktree (no .git)") from None
    if stat.S_ISDIR(info.st_mode):
        return False
    try:
        text = read_regular(dot_git, 4096).decode("utf-8", "replace").strip()
    except UnreadableFile as refused:
        raise PantheonError(f"{dot_git}: {refused.strerror or refused}") from None
    if not text.startswith("gitdir:") or "\n" in text:
        raise PantheonError(f"{dot_git}: not a gitdir pointer")
    target = (root / text.removeprefix("gitdir:").strip()).resolve()
    real_root = root.resolve()
    if target == real_root or real_root in target.parents:
        raise PantheonError(f"{dot_git}: points at a git dir inside the worktree ({target})")
    return True


def open_worktree(worktree: str | os.PathLike[str]) -> pygit2.Repository:
    """The worktree's repository for libgit2 work, after its nested repositories are removed.

    Opened exactly there (no search upward), its `.git` pointer checked first. In a main checkout (a
    person's own, never a night's) nothing is removed: libgit2 runs nothing there either.
    """
    root = Path(worktree)
    if _check_pointer(root):
        remove_nested_repositories(root)
    return pygit2.Repository(os.fspath(root), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)


# Changes `git status --porcelain` would list: staged or not, new files included (ignored ones not).
_CHANGED = (
    pygit2.GIT_STATUS_INDEX_NEW
    | pygit2.GIT_STATUS_INDEX_MODIFIED
    | pygit2.GIT_STATUS_INDEX_DELETED
    | pygit2.GIT_STATUS_INDEX_RENAMED
    | pygit2.GIT_STATUS_INDEX_TYPECHANGE
    | pygit2.GIT_STATUS_WT_NEW
    | pygit2.GIT_STATUS_WT_MODIFIED
    | pygit2.GIT_STATUS_WT_DELETED
    | pygit2.GIT_STATUS_WT_RENAMED
    | pygit2.GIT_STATUS_WT_TYPECHANGE
)


def worktree_changed(worktree: str | os.PathLike[str]) -> bool:
    """Whether the worktree differs from its HEAD (new files included), as `git status --porcelain`."""
    repo = open_worktree(worktree)
    local = local_paths(repo)
    status = repo.status(untracked_files="all")
    return any(flags & _CHANGED for path, flags in status.items() if path not in local)


def stage_all(repo: pygit2.Repository) -> pygit2.Oid:
    """Stage the worktree as `git add -A` does and return the index's tree (libgit2: no filter runs).

    The files copied in from the person's checkout (`local_files`) are left out, whatever `.gitignore`
    now says: the tree's author may have un-ignored them.
    """
    index = repo.index
    # libgit2's add_all stages new and changed files but keeps deleted ones: drop those first.
    root = repo.workdir
    for gone in [entry.path for entry in index if not os.path.lexists(os.path.join(root, entry.path))]:
        index.remove(gone)
    index.add_all()
    head = repo.head.peel(pygit2.Commit).tree if not repo.head_is_unborn else None
    for path in local_paths(repo):
        if path in index and (head is None or path not in head):
            index.remove(path)
    index.write()
    tree: pygit2.Oid = index.write_tree()  # pygit2's Index is untyped
    return tree


def _remove(path: Path) -> None:
    try:
        if stat.S_ISDIR(path.lstat().st_mode):
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _sweep(root: Path, keep: set[Path]) -> None:
    """Remove FIFOs, sockets and devices anywhere in the tree (git sees none of them, so `git clean`
    kept them) and directories left empty, as `git clean -d` does; `keep` directories stay."""
    own = root / ".git"
    for directory, dirs, files in os.walk(root, topdown=False):  # never follows a linked directory
        here = Path(directory)
        if here == own or own in here.parents:
            continue
        for name in files:
            path = here / name
            with suppress(OSError):
                mode = path.lstat().st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
                    path.unlink()
        for name in dirs:
            path = here / name
            if path not in keep and path != own:
                with suppress(OSError):  # not empty (or a link): stays
                    path.rmdir()


def restore_worktree(worktree: str | os.PathLike[str], *, ignored: bool = False) -> None:
    """Put the worktree back to its HEAD: `git reset --hard` and `git clean -fd` (`-fdx` with `ignored`),
    and FIFOs, sockets and devices removed too; then the files of `[night] worktree_files` copied in
    again where they are gone. libgit2 only: no filter, hook or submodule runs."""
    root = Path(worktree)
    repo = open_worktree(root)
    repo.reset(repo.head.target, pygit2.enums.ResetMode.HARD)
    for path, flags in repo.status(untracked_files="all", ignored=ignored).items():
        if flags & (pygit2.GIT_STATUS_WT_NEW | (pygit2.GIT_STATUS_IGNORED if ignored else 0)):
            _remove(root / path.rstrip("/"))
    # A submodule's directory is empty in a night's worktree (nothing clones it): whatever a check put
    # there is invisible to libgit2's status, so `clean` would never see it. Emptied, the directory kept.
    gitlinks = {root / entry.path for entry in repo.index if entry.mode == pygit2.GIT_FILEMODE_COMMIT}
    for folder in gitlinks:
        if folder.is_dir() and not folder.is_symlink():
            for child in list(folder.iterdir()):
                _remove(child)
    _sweep(root, gitlinks)
    copy_again(repo)  # the listed files of the person's checkout, removed above with the ignored ones


def checkout_worktree(worktree: str | os.PathLike[str]) -> None:
    """Fill a worktree added with `git worktree add --no-checkout` with its HEAD's files and index."""
    repo = open_worktree(worktree)
    repo.reset(repo.head.target, pygit2.enums.ResetMode.HARD)


def head_tree(worktree: str | os.PathLike[str]) -> pygit2.Oid:
    """The tree id of the worktree's HEAD commit."""
    return open_worktree(worktree).head.peel(pygit2.Commit).tree_id


_DIFF_FLAGS = (
    pygit2.enums.DiffOption.INCLUDE_UNTRACKED
    | pygit2.enums.DiffOption.RECURSE_UNTRACKED_DIRS
    | pygit2.enums.DiffOption.SHOW_UNTRACKED_CONTENT
    | pygit2.enums.DiffOption.IGNORE_SUBMODULES
)


def worktree_diff(worktree: str | os.PathLike[str], base: str) -> str:
    """`git diff --stat -p BASE` of the worktree, new files included, as text ("" if `base` does not
    resolve). libgit2 only: no external diff, textconv or filter driver runs, no submodule is entered.
    The copied files of `[night] worktree_files` are left out: they are never part of the change."""
    repo = open_worktree(worktree)
    try:
        tree = repo.revparse_single(base).peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError):
        return ""
    diff = tree.diff_to_workdir(_DIFF_FLAGS)
    local = local_paths(repo)
    if local and any(patch.delta.new_file.path in local for patch in diff if patch is not None):
        kept = [
            patch.text or "" for patch in diff if patch is not None and patch.delta.new_file.path not in local
        ]
        diff = pygit2.Diff.parse_diff("".join(kept))
    if not len(diff):
        return ""
    stats = diff.stats.format(
        pygit2.enums.DiffStatsFormat.FULL | pygit2.enums.DiffStatsFormat.INCLUDE_SUMMARY, 80
    )
    return f"{stats}\n{diff.patch or ''}"


def tracked_files(worktree: str | os.PathLike[str]) -> list[str] | None:
    """The worktree's tracked regular files that are still there, from its index (libgit2: no walk of
    the tree, nothing it configures runs), in index order; None where the folder is no repository (or
    one open_worktree refuses)."""
    try:
        repo = open_worktree(worktree)
    except (pygit2.GitError, PantheonError):
        return None
    regular = (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE)
    root = Path(worktree)
    return [
        entry.path for entry in repo.index if entry.mode in regular and os.path.lexists(root / entry.path)
    ]
