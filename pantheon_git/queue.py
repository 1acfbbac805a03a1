"""The queue: refs/pantheon/tasks is a commit chain whose tree holds one TOML file per spec.

`git log -p refs/pantheon/tasks` is the queue's history. Every change appends one commit with a
compare-and-swap on the ref, so concurrent `queue` and `cancel` calls never lose each other's work.
Cancellation is a record under cancelled/ in the same tree, never an edit of the spec.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime

import pygit2
import tomli_w

from pantheon_git.errors import PantheonError
from pantheon_git.git import append_commit, build_tree, ref_commit
from pantheon_git.layout import CANCELLED_DIR, TASKS_REF, spec_path
from pantheon_git.spec import Spec, validate_spec


def queue_tree(repo: pygit2.Repository) -> pygit2.Tree | None:
    tip = ref_commit(repo, TASKS_REF)
    return tip.tree if tip is not None else None


def load_specs(repo: pygit2.Repository, tree: pygit2.Tree | None = None) -> list[Spec]:
    """Every spec in the queue (cancelled ones included), in tree order."""
    tree = tree if tree is not None else queue_tree(repo)
    if tree is None:
        return []
    specs = []
    for entry in tree:
        if entry.type_str == "blob" and entry.name.endswith(".toml"):
            text = repo.get(entry.id).data.decode()
            specs.append(validate_spec(tomllib.loads(text), f"{TASKS_REF}:{entry.name}", text))
    return specs


def cancelled_ids(tree: pygit2.Tree | None, repo: pygit2.Repository) -> set[str]:
    if tree is None or CANCELLED_DIR not in tree:
        return set()
    return {entry.name.removesuffix(".toml") for entry in repo.get(tree[CANCELLED_DIR].id)}


def resolve_id(repo: pygit2.Repository, given: str, tree: pygit2.Tree | None = None) -> str:
    """A full task id from an id or a unique prefix of one, like git's abbreviated commit ids."""
    tree = tree if tree is not None else queue_tree(repo)
    names = [entry.name.removesuffix(".toml") for entry in tree or [] if entry.name.endswith(".toml")]
    if given in names:
        return given
    matches = [name for name in names if name.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PantheonError(f"task {given}: no such task in {TASKS_REF} (see `git pantheon list`)")
    raise PantheonError(f"task {given}: ambiguous, matches {', '.join(sorted(matches)[:5])}")


def enqueue(repo: pygit2.Repository, specs: Sequence[Spec]) -> pygit2.Oid:
    """Add fully stamped specs to the queue as one commit: all of them, or none on any duplicate id."""
    ids = [spec.id for spec in specs]
    if any(task_id is None for task_id in ids):
        raise ValueError("specs must be stamped (have ids) before they are queued")
    duplicates = sorted({task_id for task_id in ids if ids.count(task_id) > 1})
    if duplicates:
        raise PantheonError(f"id {duplicates[0]}: given to more than one spec in this call")
    files = {spec_path(spec.id): spec.to_toml().encode() for spec in specs if spec.id}
    if len(specs) == 1:
        message = f"queue {specs[0].id}: {specs[0].title}\n"
    else:
        listing = "\n".join(f"- {spec.id}: {spec.title}" for spec in specs)
        message = f"queue {len(specs)} specs\n\n{listing}\n"

    def build(tip: pygit2.Commit | None) -> tuple[pygit2.Oid, str]:
        tree = tip.tree if tip is not None else None
        if tree is not None:
            for path in files:
                if path in tree:
                    raise PantheonError(f"id {path.removesuffix('.toml')}: already queued (ids are unique)")
        return build_tree(repo, tree, files), message

    commit = append_commit(repo, TASKS_REF, build)
    assert commit is not None
    return commit


def cancel(repo: pygit2.Repository, task_id: str, *, by: str, reason: str = "") -> pygit2.Oid:
    """Record that a task is cancelled (the spec stays, so history and reports keep it)."""
    record = tomli_w.dumps({"by": by, "at": datetime.now(UTC).replace(microsecond=0), "reason": reason})
    path = f"{CANCELLED_DIR}/{task_id}.toml"

    def build(tip: pygit2.Commit | None) -> tuple[pygit2.Oid, str]:
        tree = tip.tree if tip is not None else None
        if tree is None or spec_path(task_id) not in tree:
            raise PantheonError(f"task {task_id}: no such task in {TASKS_REF}")
        if task_id in cancelled_ids(tree, repo):
            raise PantheonError(f"task {task_id}: already cancelled")
        message = f"cancel {task_id}" + (f": {reason}" if reason else "") + "\n"
        return build_tree(repo, tree, {path: record.encode()}), message

    commit = append_commit(repo, TASKS_REF, build)
    assert commit is not None
    return commit
