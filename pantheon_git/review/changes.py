"""The edge of the deterministic reviewers: a run's changes against its base commit, read with libgit2.

Like the model reviewer's diff (store/worktree.py), nothing the worktree configures runs (no filter,
textconv or external diff; no submodule entered), and the worktree's files are read only through the
one open (`read_regular`: regular files with one name, at most 1 MiB). What is read is then only data
for the pure reviewers of review/checks.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pygit2

from pantheon_git.review.checks import Change, ChangeKind
from pantheon_git.store.files import UnreadableFile, read_regular
from pantheon_git.store.worktree import open_worktree

_FLAGS = (
    pygit2.enums.DiffOption.INCLUDE_UNTRACKED
    | pygit2.enums.DiffOption.RECURSE_UNTRACKED_DIRS
    | pygit2.enums.DiffOption.SHOW_UNTRACKED_CONTENT
    | pygit2.enums.DiffOption.IGNORE_SUBMODULES
)
TEXT_LIMIT = 1 << 20


def _text(data: bytes | None) -> str | None:
    if data is None or len(data) > TEXT_LIMIT or b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def base_tree(repo: pygit2.Repository, base: str) -> pygit2.Tree | None:
    try:
        return repo.revparse_single(base).peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError):
        return None


def tree_paths(tree: pygit2.Tree | None) -> frozenset[str]:
    """Every file path of a tree (blobs at any depth)."""
    if tree is None:
        return frozenset()
    found: list[str] = []

    def walk(node: pygit2.Tree, prefix: str) -> None:
        for entry in node:
            if entry.type_str == "tree":
                walk(entry, f"{prefix}{entry.name}/")  # type: ignore[arg-type]
            elif entry.type_str == "blob":
                found.append(prefix + (entry.name or ""))

    walk(tree, "")
    return frozenset(found)


def blob_text(repo: pygit2.Repository, tree: pygit2.Tree | None, path: str) -> str | None:
    """A file's text in `tree` (None: absent, not a file, binary or over the limit)."""
    if tree is None:
        return None
    try:
        entry = tree[path]
    except (KeyError, ValueError):
        return None
    blob = repo.get(entry.id)
    return _text(blob.data) if isinstance(blob, pygit2.Blob) else None


def read_changes(worktree: str | os.PathLike[str], base: str) -> list[Change]:
    """Each file of the worktree that differs from `base` (new files included, ignored ones not)."""
    repo = open_worktree(worktree)
    tree = base_tree(repo, base)
    if tree is None:
        return []
    root = Path(worktree)
    changes = []
    for patch in tree.diff_to_workdir(_FLAGS):
        if patch is None:
            continue  # libgit2 makes no patch only for a delta the diff's own flags leave out
        delta = patch.delta
        if delta.status == pygit2.enums.DeltaStatus.DELETED:
            kind, path = ChangeKind.DELETED, delta.old_file.path
        elif delta.status in (pygit2.enums.DeltaStatus.ADDED, pygit2.enums.DeltaStatus.UNTRACKED):
            kind, path = ChangeKind.ADDED, delta.new_file.path
        else:
            kind, path = ChangeKind.MODIFIED, delta.new_file.path
        added_lines = set()
        added = removed = 0
        for hunk in patch.hunks:
            for line in hunk.lines:
                if line.origin == "+":
                    added += 1
                    added_lines.add(line.new_lineno)
                elif line.origin == "-":
                    removed += 1
        after = None
        if kind != ChangeKind.DELETED:
            try:
                after = _text(read_regular(root / path, TEXT_LIMIT))
            except (UnreadableFile, OSError):
                after = None
        changes.append(
            Change(
                path=path,
                kind=kind,
                added=added,
                removed=removed,
                added_lines=frozenset(added_lines),
                before=blob_text(repo, tree, path) if kind != ChangeKind.ADDED else None,
                after=after,
                binary=bool(delta.is_binary),
            )
        )
    return changes
