"""Git notes written in-process: git's 2/38 fan-out, a compare-and-swap on the notes ref, any reader.

libgit2's own note writer force-moves the notes ref (a concurrent writer's note is lost) and never adds
fan-out levels (a large flat tree is slow to read). Here each write rewrites only the trees on the path
to one note and appends a commit to the notes ref with `append_commit`'s CAS, so concurrent writers are
safe and the result is what plain `git notes --ref … show` and `git log --notes=…` read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pygit2

from pantheon_git.errors import warn_skipped
from pantheon_git.store.git import append_commit, entries, lookup, parse_oid, ref_commit
from pantheon_git.store.redact import redact_bytes

# Given the current note (None if absent), return the new one (None removes it).
NoteUpdate = Callable[[bytes | None], bytes | None]

_HEX = frozenset("0123456789abcdef")
# No note pantheon writes comes near this (payloads are blobs of their own); a bigger one arrived from
# elsewhere and is skipped rather than read into memory and parsed.
MAX_NOTE_BYTES = 8 << 20


def _is_hex(name: str) -> bool:
    return bool(name) and set(name) <= _HEX


def _locate(repo: pygit2.Repository, root: pygit2.Tree, hexid: str) -> tuple[list[str], pygit2.Oid | None]:
    """Follow git's fan-out to where `hexid`'s note is, or would go: (dir names, blob id or None).

    Readers must accept any fan-out (git flattens small notes trees and deepens large ones); a new note
    goes one level below the deepest existing fan-out directory on its path, at least 2/38.
    """
    dirs: list[str] = []
    tree = root
    rest = hexid
    while True:
        if rest in tree:
            return dirs, tree[rest].id
        prefix = rest[:2]
        if len(rest) > 2 and prefix in tree and tree[prefix].type_str == "tree":
            dirs.append(prefix)
            tree = lookup(repo, tree[prefix].id, pygit2.Tree)
            rest = rest[2:]
            continue
        if not dirs:
            dirs.append(prefix)
        return dirs, None


def note_blob(repo: pygit2.Repository, root: pygit2.Tree, target: pygit2.Oid) -> pygit2.Oid | None:
    """The blob id of `target`'s note in a notes tree `root` (any fan-out), or None."""
    return _locate(repo, root, str(target))[1]


def note_data(repo: pygit2.Repository, blob_id: pygit2.Oid | None, where: str) -> bytes | None:
    """The bytes of note blob `blob_id`, or None (named on stderr) when it is no blob or is too large:
    notes arrive from other machines, so their shape is checked before anything reads them."""
    if blob_id is None:
        return None
    found = repo.get(blob_id)
    if not isinstance(found, pygit2.Blob):
        warn_skipped(f"{where} {blob_id}", "not a blob")
        return None
    if found.size > MAX_NOTE_BYTES:
        warn_skipped(f"{where} {blob_id}", f"{found.size} bytes, over {MAX_NOTE_BYTES}")
        return None
    return found.data


def json_object(data: bytes | None, where: str) -> dict[str, Any] | None:
    """`data` (a note, a payload, a manifest) parsed as one JSON object, or None, named on stderr, when it
    is not one: not UTF-8, not JSON, nested too deep, or a JSON value of another kind."""
    if data is None:
        return None
    try:
        value = json.loads(data)  # bytes: JSON's own encoding detection; bad UTF-8 is a ValueError
    except (ValueError, RecursionError) as bad:
        warn_skipped(where, f"not JSON ({' '.join(str(bad).split())[:80]})")
        return None
    if not isinstance(value, dict):
        warn_skipped(where, f"a JSON {type(value).__name__}, not an object")
        return None
    return value


def read_note(repo: pygit2.Repository, notes_ref: str, target: pygit2.Oid) -> bytes | None:
    """The note `notes_ref` holds for object `target`, or None (also for a note that is not a blob)."""
    tip = ref_commit(repo, notes_ref)
    if tip is None:
        return None
    _, blob_id = _locate(repo, tip.tree, str(target))
    return note_data(repo, blob_id, f"{notes_ref}:{target}")


def iter_notes(repo: pygit2.Repository, notes_ref: str) -> Iterator[tuple[pygit2.Oid, pygit2.Oid]]:
    """Every (annotated object id, note blob id) in a notes ref, whatever its fan-out."""
    tip = ref_commit(repo, notes_ref)
    if tip is None:
        return
    yield from iter_tree_notes(repo, tip.tree)


def iter_tree_notes(repo: pygit2.Repository, root: pygit2.Tree) -> Iterator[tuple[pygit2.Oid, pygit2.Oid]]:
    """Every (annotated object id, note blob id) in one notes tree, whatever its fan-out."""
    stack: list[tuple[str, pygit2.Tree]] = [("", root)]
    while stack:
        prefix, tree = stack.pop()
        for entry_name, entry in entries(tree):
            name = prefix + entry_name
            if not _is_hex(entry_name):
                continue  # git keeps non-note entries; they are not ours to read
            if entry.type_str == "tree" and len(entry_name) == 2 and len(name) < 40:
                stack.append((name, lookup(repo, entry.id, pygit2.Tree)))
            elif entry.type_str == "blob" and (target := parse_oid(name)) is not None:
                yield target, entry.id


def changed_notes(
    repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree
) -> Iterator[tuple[pygit2.Oid, pygit2.Oid]]:
    """(annotated object id, new note blob id) for each note added or changed from `old` to `new`."""
    if old is None:
        yield from iter_tree_notes(repo, new)
        return
    for delta in old.diff_to_tree(new).deltas:
        if delta.status_char() in ("A", "M"):
            target = parse_oid(delta.new_file.path.replace("/", ""))
            if target is not None:
                yield target, delta.new_file.id


def _write_note(
    repo: pygit2.Repository, root: pygit2.Tree | None, hexid: str, blob: pygit2.Oid | None
) -> pygit2.Oid:
    """A new root tree with `hexid`'s note set to `blob` (None: removed); touches one path only."""
    if root is None:
        root = lookup(repo, repo.TreeBuilder().write(), pygit2.Tree)
    dirs, existing = _locate(repo, root, hexid)
    if existing is None and blob is None:
        return root.id
    trees: list[pygit2.Tree | None] = [root]
    for name in dirs:
        current = trees[-1]
        inside = current is not None and name in current
        trees.append(lookup(repo, current[name].id, pygit2.Tree) if current is not None and inside else None)
    leaf_name = hexid[2 * len(dirs) :]
    child: tuple[str, pygit2.Oid | None, int] = (leaf_name, blob, pygit2.GIT_FILEMODE_BLOB)
    for depth in range(len(dirs), -1, -1):
        tree = trees[depth]
        builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
        name, oid, mode = child
        if oid is None:
            if tree is not None and name in tree:
                builder.remove(name)
        else:
            builder.insert(name, oid, mode)
        written = builder.write()
        empty = len(builder) == 0
        if depth == 0:
            return written
        child = (dirs[depth - 1], None if empty else written, pygit2.GIT_FILEMODE_TREE)
    raise AssertionError("unreachable")


def update_notes(
    repo: pygit2.Repository,
    notes_ref: str,
    updates: Mapping[pygit2.Oid, NoteUpdate],
    message: str,
    *,
    redacted: bool = False,
    sign: Callable[[str], str] | None = None,
) -> pygit2.Oid | None:
    """Apply `updates` (object id -> note update) as one notes commit, CAS-safe against other writers.

    Each update sees the note as it is on the tip being built on, so after a lost race it is re-applied
    to the winner's notes and nothing either writer added is lost. Returns the notes commit, or None
    when no note changed. Every note is redacted of secrets unless its writer says it did that already
    (`redacted`: traces and votes redact their structured values, before JSON escaping). With `sign`,
    the notes commit is signed (what makes a vote count).
    """

    def build(tip: pygit2.Commit | None) -> tuple[pygit2.Oid, str] | None:
        root = tip.tree if tip is not None else None
        changed = False
        for target, update in updates.items():
            hexid = str(target)
            old = None
            if root is not None:
                _, old_id = _locate(repo, root, hexid)
                # A note that is no blob (or too large) is replaced by the update, never read.
                old = note_data(repo, old_id, f"{notes_ref}:{hexid}")
            new = update(old)
            if new is not None and not redacted:
                new = redact_bytes(new)  # every note is pushed with its ref: no secret may be in one
            if new == old:
                continue
            blob = repo.create_blob(new) if new is not None else None
            root = lookup(repo, _write_note(repo, root, hexid, blob), pygit2.Tree)
            changed = True
        if not changed or root is None:
            return None
        return root.id, message

    return append_commit(repo, notes_ref, build, sign=sign)


def replace_with(data: bytes) -> NoteUpdate:
    """An update that sets the note to `data` whatever it was."""
    return lambda _old: data


def set_note(
    repo: pygit2.Repository,
    notes_ref: str,
    target: pygit2.Oid,
    data: bytes,
    message: str,
    *,
    redacted: bool = False,
) -> None:
    """Attach `data` as the note on `target`, replacing any note it had."""
    update_notes(repo, notes_ref, {target: replace_with(data)}, message, redacted=redacted)


def append_note_lines(
    repo: pygit2.Repository,
    notes_ref: str,
    target: pygit2.Oid,
    lines: list[str],
    message: str,
    *,
    redacted: bool = False,
    sign: Callable[[str], str] | None = None,
) -> pygit2.Oid | None:
    """Append lines to `target`'s note, skipping lines already there (as cat_sort_uniq would); returns
    the notes commit that added them (None if all were there)."""

    def update(old: bytes | None) -> bytes | None:
        # Lines already there are kept byte for byte, whatever their encoding (another machine's lines
        # are not ours to repair; surrogateescape round-trips bytes that are not UTF-8).
        existing = old.decode(errors="surrogateescape").splitlines() if old else []
        known = set(existing)
        fresh = [line for line in lines if line not in known]
        if not fresh:
            return old
        return ("\n".join(existing + fresh) + "\n").encode(errors="surrogateescape")

    return update_notes(repo, notes_ref, {target: update}, message, redacted=redacted, sign=sign)
