"""The queue: refs/pantheon/tasks is a commit chain whose tree holds one TOML file per spec.

`git log -p refs/pantheon/tasks` is the queue's history. Every change appends one commit with a
compare-and-swap on the ref, so concurrent `queue` and `cancel` calls never lose each other's work.
Cancellation is a record under cancelled/ in the same tree, never an edit of the spec. An id names one
task forever: queueing refuses an id that is queued, or that already has run branches or a claim (from
an old queue or another machine), so a new spec never inherits another task's runs or status.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
import tomli_w

from pantheon_git import __version__
from pantheon_git.errors import PantheonError, shown, warn_skipped
from pantheon_git.schema.document import parse_toml
from pantheon_git.schema.spec import Spec, validate_spec
from pantheon_git.store.git import append_commit, build_tree, entries, lookup, ref_commit
from pantheon_git.store.layout import CANCELLED_DIR, TASKS_REF, claim_ref, spec_path
from pantheon_git.store.runs import newest_run, run_heads

if TYPE_CHECKING:
    from pydantic import TypeAdapter

# A spec is a page of TOML; a bigger blob in the queue came from elsewhere and is not parsed.
MAX_SPEC_BYTES = 1 << 20


def queue_tree(repo: pygit2.Repository) -> pygit2.Tree | None:
    tip = ref_commit(repo, TASKS_REF)
    return tip.tree if tip is not None else None


@dataclass(slots=True, frozen=True)
class BrokenSpec:
    """A spec file in the queue that is not a valid spec (a hand-pushed or synced blob): why, in one line."""

    task_id: str  # from its file name: the only name it has
    reason: str  # `refs/pantheon/tasks:NAME.toml:line: field: reason`


def parse_queued_spec(data: bytes, name: str) -> Spec:
    """The spec stored as `name` in the queue tree, or PantheonError in one line.

    A queued spec's id must be set and match its file name: the queue, claims and run branches are keyed
    by it, and a synced blob may lack it.
    """
    source = f"{TASKS_REF}:{shown(name)}"
    if len(data) > MAX_SPEC_BYTES:
        raise PantheonError(f"{source}: {len(data)} bytes, over {MAX_SPEC_BYTES} (not a spec)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PantheonError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = parse_toml(text, source)
    except RecursionError:  # tomllib recurses per nesting level: a synced blob can go deeper
        raise PantheonError(f"{source}: invalid TOML: nested too deeply") from None
    spec = validate_spec(document, source, text)
    expected = name.removesuffix(".toml")
    if spec.id is None:
        raise PantheonError(f"{source}: id: required field is missing (a queued spec needs its id)")
    if spec.id != expected:
        raise PantheonError(f"{source}: id: '{spec.id}' does not match its file name '{expected}'")
    return spec


def read_queue(
    repo: pygit2.Repository, tree: pygit2.Tree | None = None
) -> tuple[list[Spec], list[BrokenSpec]]:
    """Every valid spec in the queue (cancelled ones included) in tree order, and the broken ones.

    One broken spec never hides the others: it is reported with its reason and skipped. Parsing TOML is
    the slow part of listing a large queue (about 0.4 ms a spec), and a spec blob never changes, so
    parsed specs are cached by blob id in the git dir; only new blobs are parsed.
    """
    tree = tree if tree is not None else queue_tree(repo)
    if tree is None:
        return [], []
    blobs = [
        (name, str(entry.id))  # hex: the cache's key
        for name, entry in entries(tree)
        if name.endswith(".toml") and entry.type_str == "blob"
    ]
    # A spec's name that is a directory (or a submodule) in a synced queue is a broken spec, named.
    broken = [
        BrokenSpec(name.removesuffix(".toml"), f"{TASKS_REF}:{shown(name)}: not a file")
        for name, entry in entries(tree)
        if name.endswith(".toml") and entry.type_str != "blob"
    ]
    cache_file = Path(repo.path) / "pantheon" / "cache" / f"specs-{__version__}.json"
    cache = _read_cache(cache_file)
    specs = []
    fresh = False
    for name, blob_id in blobs:
        spec = cache.get(blob_id)
        if spec is None:
            try:
                spec = parse_queued_spec(lookup(repo, pygit2.Oid(hex=blob_id), pygit2.Blob).data, name)
            except PantheonError as refused:
                broken.append(BrokenSpec(name.removesuffix(".toml"), str(refused)))
                continue
            cache[blob_id] = spec
            fresh = True
        specs.append(spec)
    if fresh:
        _write_cache(cache_file, {blob_id: cache[blob_id] for _, blob_id in blobs if blob_id in cache})
    return specs, broken


def load_specs(repo: pygit2.Repository, tree: pygit2.Tree | None = None) -> list[Spec]:
    """Every valid spec in the queue (cancelled ones included), in tree order; see `read_queue`."""
    return read_queue(repo, tree)[0]


@functools.cache
def _cache_type() -> TypeAdapter[dict[str, Spec]]:
    from pydantic import TypeAdapter  # only listing reads the cache; `queue` starts faster without it

    return TypeAdapter(dict[str, Spec])


def _read_cache(path: Path) -> dict[str, Spec]:
    try:
        return _cache_type().validate_json(path.read_bytes())
    except (OSError, ValueError):
        return {}  # missing, or written by another version: rebuilt from the blobs


def _write_cache(path: Path, specs: dict[str, Spec]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_cache_type().dump_json(specs, exclude_none=True))
        os.replace(tmp, path)  # readers see the old cache or the new one, never half of one
    except OSError:
        pass  # a cache that cannot be written only costs speed


def cancelled_ids(tree: pygit2.Tree | None, repo: pygit2.Repository) -> set[str]:
    if tree is None or CANCELLED_DIR not in tree:
        return set()
    if tree[CANCELLED_DIR].type_str != "tree":  # a synced queue may hold anything under that name
        warn_skipped(f"{TASKS_REF}:{CANCELLED_DIR}", "not a directory of cancellation records")
        return set()
    return {
        name.removesuffix(".toml") for name, _ in entries(lookup(repo, tree[CANCELLED_DIR].id, pygit2.Tree))
    }


def resolve_id(repo: pygit2.Repository, given: str, tree: pygit2.Tree | None = None) -> str:
    """A full task id from an id or a unique prefix of one, like git's abbreviated commit ids."""
    tree = tree if tree is not None else queue_tree(repo)
    listed = entries(tree) if tree is not None else iter(())
    names = [name.removesuffix(".toml") for name, _ in listed if name.endswith(".toml")]
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
    ids = [spec.id for spec in specs if spec.id is not None]
    if len(ids) < len(specs):
        raise ValueError("specs must be stamped (have ids) before they are queued")
    duplicates = sorted({task_id for task_id in ids if ids.count(task_id) > 1})
    if duplicates:
        raise PantheonError(f"id {duplicates[0]}: given to more than one spec in this call")
    heads = run_heads(repo)
    for task_id in ids:
        if task_id in heads or claim_ref(task_id) in repo.references:
            raise PantheonError(f"id {task_id}: already has runs or a claim here (ids are unique)")
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


def resolve_newest_run(repo: pygit2.Repository, given: str, purpose: str) -> tuple[str, int, pygit2.Oid]:
    """(task id, attempt, head) of the newest run of the task `given` names; refused if it has none yet
    (`purpose` says what the run was wanted for: "to vote on", "for the gate to judge")."""
    task_id = resolve_id(repo, given)
    run = newest_run(repo, task_id)
    if run is None:
        raise PantheonError(f"task {task_id}: has no run {purpose} yet")
    attempt, head = run
    return task_id, attempt, head
