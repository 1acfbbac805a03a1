"""`git pantheon sync`: exchange tasks, claims, run branches and notes with a remote, merging, never forcing.

Fetch brings the remote's pantheon refs into namespaces of their own (refs/pantheon-remotes/<remote>/,
refs/notes/remotes/<remote>/); then each kind is merged into the local refs by its own rule: notes by
`git notes merge` (votes with cat_sort_uniq; traces and payloads are keyed by object and keep ours on the
impossible clash), the queue by a union of both trees, claims and run branches by adopting the remote's
where we have none. A remote spec never replaces a local spec of the same id (not even by a
fast-forward): the local one stays, and the clash is reported as a conflict. Adopted run branches are
only read: whether they pass is decided by their signatures (queue/status.py), not by where they came
from. Then the merged refs are pushed without force: a race with another machine's push is reported, and
the next sync merges again. Trace notes and payloads are pushed only with `[sync] push_traces = true`:
they hold prompts and logs, which stay on the machine that ran them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pygit2

from pantheon_git.errors import warn_skipped
from pantheon_git.store.git import (
    GitCommandFailed,
    entries,
    fetch_refs,
    lookup,
    push_refs,
    ref_commit,
    run_git,
    set_ref,
    signature,
)
from pantheon_git.store.layout import (
    CLAIMS_PREFIX,
    EVALS_NOTES,
    LOG_NOTES,
    PAYLOADS_NOTES,
    RUN_BRANCH_PREFIX,
    TASKS_REF,
    TRACES_NOTES,
    VOTES_NOTES,
)

# Log lines are written once per step and then only appended to (later votes): union keeps both sides.
MERGE_STRATEGY = {
    VOTES_NOTES: "cat_sort_uniq",
    TRACES_NOTES: "ours",
    PAYLOADS_NOTES: "ours",
    LOG_NOTES: "union",
}


Progress = Callable[[str], None]  # one line of git's progress at a time


@dataclass(slots=True)
class SyncReport:
    fetched: bool = True
    merged: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    pushed: bool = False
    push_error: str = ""


def _tracking(remote: str, ref: str) -> str:
    if ref.startswith("refs/notes/"):
        return f"refs/notes/remotes/{remote}/" + ref.removeprefix("refs/notes/")
    if ref.startswith(RUN_BRANCH_PREFIX):
        return f"refs/remotes/{remote}/" + ref.removeprefix("refs/heads/")
    return f"refs/pantheon-remotes/{remote}/" + ref.removeprefix("refs/pantheon/")


def fetch(root: Path, remote: str, on_progress: Progress | None = None) -> None:
    fetch_refs(
        root,
        remote,
        [
            f"+refs/pantheon/*:refs/pantheon-remotes/{remote}/*",
            f"refs/notes/pantheon/*:refs/notes/remotes/{remote}/pantheon/*",
            f"+refs/heads/pantheon/*:refs/remotes/{remote}/pantheon/*",
        ],
        on_progress=on_progress,
    )


def spec_conflicts(repo: pygit2.Repository, ours: pygit2.Tree, theirs: pygit2.Tree) -> list[str]:
    """Task ids whose spec differs between the two queue trees (same id, other content), sorted."""
    clashes = []
    for name, entry in entries(theirs):
        if entry.type_str != "blob" or not name.endswith(".toml") or name not in ours:
            continue
        if ours[name].id != entry.id:
            clashes.append(name.removesuffix(".toml"))
    return sorted(clashes)


def merge_queue(repo: pygit2.Repository, remote: str, conflicts: list[str] | None = None) -> str | None:
    """Make the local queue contain the remote's specs and cancellations too; None if nothing changed.

    A remote spec reusing a local id with other content is not taken (ours stays: the local task keeps
    its one spec, its one status, its one run); each such id is added to `conflicts` as a line.
    """
    theirs = ref_commit(repo, _tracking(remote, TASKS_REF))
    if theirs is None:
        return None
    ours = ref_commit(repo, TASKS_REF)
    if ours is None:
        return "adopted" if set_ref(repo, TASKS_REF, theirs.id, None, "pantheon: sync") else None
    if ours.id == theirs.id or repo.descendant_of(ours.id, theirs.id):
        return None
    clashes = spec_conflicts(repo, ours.tree, theirs.tree)
    if conflicts is not None:
        conflicts += [
            f"{TASKS_REF}: task {task_id}: {remote} has another spec with this id; kept ours"
            for task_id in clashes
        ]
    if not clashes and repo.descendant_of(theirs.id, ours.id):
        return "fast-forward" if set_ref(repo, TASKS_REF, theirs.id, ours.id, "pantheon: sync") else None

    sig = signature(repo)
    # A merge commit (two parents), so history shows where each machine's specs came from, and the next
    # sync sees the remote's tip as merged. Not store.git.append_commit: that appends one-parent commits,
    # and a sync that keeps losing races reports nothing merged rather than failing the whole sync.
    for _ in range(20):
        tip = ref_commit(repo, TASKS_REF)
        assert tip is not None
        tree = _union_tree(repo, tip.tree, theirs.tree)
        commit = repo.create_commit(
            None, sig, sig, f"sync: merge the queue of {remote}\n", tree, [tip.id, theirs.id]
        )
        if set_ref(repo, TASKS_REF, commit, tip.id, "pantheon: sync merge"):
            return "merged"
    return None


def _union_tree(repo: pygit2.Repository, ours: pygit2.Tree, theirs: pygit2.Tree) -> pygit2.Oid:
    """Every entry of either tree; subtrees united recursively; on a clash of files ours stays."""
    builder = repo.TreeBuilder(ours)
    for name, entry in entries(theirs):
        if name not in ours:
            builder.insert(name, entry.id, entry.filemode)
        elif entry.type_str == "tree" and ours[name].type_str == "tree" and ours[name].id != entry.id:
            mine, other = lookup(repo, ours[name].id, pygit2.Tree), lookup(repo, entry.id, pygit2.Tree)
            builder.insert(name, _union_tree(repo, mine, other), pygit2.GIT_FILEMODE_TREE)
    return builder.write()


def merge_notes(root: Path, repo: pygit2.Repository, remote: str) -> list[str]:
    merged = []
    for ref, strategy in MERGE_STRATEGY.items():
        theirs = _tracking(remote, ref)
        if ref_commit(repo, theirs) is None:  # absent, or no notes commit (named on stderr)
            continue
        before = repo.references.get(ref)
        try:
            run_git(
                [
                    "notes",
                    "--ref",
                    ref.removeprefix("refs/notes/"),
                    "merge",
                    "--quiet",
                    "-s",
                    strategy,
                    theirs,
                ],
                root,
            )
        except GitCommandFailed as failed:  # one notes ref that will not merge leaves the others to merge
            warn_skipped(f"{theirs}", f"not merged: {failed}")
            continue
        after = pygit2.Repository(repo.path).references.get(ref)
        if before is None or after is None or before.target != after.target:
            merged.append(ref)
    return merged


def adopt_remote_refs(repo: pygit2.Repository, remote: str) -> list[str]:
    """Claims and run branches the remote has and we do not (someone else's night) become ours to read."""
    adopted = []
    prefixes = {
        f"refs/pantheon-remotes/{remote}/claims/": CLAIMS_PREFIX,
        f"refs/remotes/{remote}/pantheon/": RUN_BRANCH_PREFIX,
    }
    for name in list(repo.references):
        for tracking, local_prefix in prefixes.items():
            if name.startswith(tracking):
                local = local_prefix + name.removeprefix(tracking)
                target = repo.references[name].target  # claims and runs are commits, never symbolic refs
                if not isinstance(target, pygit2.Oid) or not isinstance(repo.get(target), pygit2.Commit):
                    warn_skipped(name, "does not point at a commit; not adopted")
                    continue
                current = repo.references.get(local)
                if current is None:
                    if set_ref(repo, local, target, None, "pantheon: sync"):
                        adopted.append(local)
                elif (
                    local.startswith(CLAIMS_PREFIX)  # the remote decides claims (create-only pushes)
                    and isinstance(current.target, pygit2.Oid)  # a symbolic ref there is not ours
                    and current.target != target
                    and set_ref(repo, local, target, current.target, "pantheon: sync claim")
                ):
                    adopted.append(local)
    return adopted


def pushed_notes(push_traces: bool) -> tuple[str, ...]:
    """The notes refs a push carries: votes and evals always, traces and payloads only when asked."""
    return (VOTES_NOTES, EVALS_NOTES, *((TRACES_NOTES, PAYLOADS_NOTES) if push_traces else ()))


def push_refspecs(push_traces: bool) -> list[str]:
    """What `sync` pushes (and `init` configures for a plain `git push`): the queue, run branches, notes."""
    return [
        f"{TASKS_REF}:{TASKS_REF}",
        "refs/heads/pantheon/*:refs/heads/pantheon/*",
        # A pattern, not a name: a notes ref not written yet is skipped instead of failing the push.
        *(f"{ref}*:{ref}*" for ref in pushed_notes(push_traces)),
    ]


def push(root: Path, remote: str, *, push_traces: bool = False, on_progress: Progress | None = None) -> str:
    """Push without force; "" when everything arrived, else the refused refs, "; "-joined."""
    return "; ".join(push_refs(root, remote, push_refspecs(push_traces), on_progress=on_progress))


def sync(
    repo: pygit2.Repository,
    root: Path,
    remote: str,
    *,
    push_traces: bool = False,
    on_progress: Callable[[str, str], None] | None = None,
) -> SyncReport:
    """Fetch, merge, adopt, push; `on_progress(verb, line)` hears git's progress ("fetch", "receiving
    objects 45% (45/100)") where the caller shows it."""
    report = SyncReport()
    fetch(root, remote, None if on_progress is None else partial(on_progress, "fetch"))
    if (queue := merge_queue(repo, remote, report.conflicts)) is not None:
        report.merged.append(f"{TASKS_REF} ({queue})")
    report.merged += merge_notes(root, repo, remote)
    report.adopted = adopt_remote_refs(repo, remote)
    report.push_error = push(
        root,
        remote,
        push_traces=push_traces,
        on_progress=None if on_progress is None else partial(on_progress, "push"),
    )
    report.pushed = not report.push_error
    return report
