"""Trust paths: a run that changes what decides (the gate's config, flows, agents the runner imports,
allowed signers, git's hooks and attributes, submodules, pre-commit, CI) waits for a person.

Such a run may pass its gate like any other, but `merge` holds it and the pre-push guard refuses it
until a person (an allowed signer that is not a runner's key) signs an approval of the run's head with
`git pantheon vote ID approve`. The list is `[trust] paths` of `.pantheon/config.toml` as committed on
the base branch (for the pre-push guard: as the remote has it), never as a run has it, and `.pantheon/`
is held whatever the list says.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable
from pathlib import Path

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.schema.config import ALWAYS_TRUSTED, CONFIG_SOURCE, DEFAULT_TRUST_PATHS, parse_config
from pantheon_git.store.layout import parse_run_branch
from pantheon_git.store.runs import recorded_steps
from pantheon_git.store.signing import (
    RUNNER_PRINCIPAL_PREFIX,
    AllowedSigners,
    allowed_signers_at,
    runner_key_path,
    trusted_tip,
)
from pantheon_git.store.votes import Verdict, VoteKind, recorded_votes

PERSON_PREFIX = "person:"  # the voter name `git pantheon vote` writes


def trust_paths_at(repo: pygit2.Repository, commit: pygit2.Oid | None) -> tuple[str, ...]:
    """`[trust] paths` as committed in `commit` (the defaults where it has no config, or a broken one:
    a config nobody can read narrows nothing), with `.pantheon/` always among them."""
    paths: list[str] = list(DEFAULT_TRUST_PATHS)
    found = repo.get(commit) if commit is not None else None  # None: an object this clone lacks
    try:
        tree = found.peel(pygit2.Tree) if found is not None else None
        blob = repo.get(tree[CONFIG_SOURCE].id) if tree is not None else None
    except (KeyError, ValueError, pygit2.GitError):
        blob = None
    if isinstance(blob, pygit2.Blob):
        with contextlib.suppress(PantheonError, UnicodeDecodeError):
            paths = parse_config(blob.data.decode("utf-8")).trust.paths
    return tuple(dict.fromkeys([ALWAYS_TRUSTED, *paths]))


def matches(path: str, pattern: str) -> bool:
    """Whether repository path `path` falls under trust pattern `pattern` (pure; see TrustConfig)."""
    parts = path.lower().split("/")
    directory = pattern.endswith("/")
    core = pattern.lower().rstrip("/")
    if "/" not in pattern:  # a bare name: any file or directory of that name, at any depth
        return any(fnmatch.fnmatchcase(part, core) for part in parts)
    wanted = core.split("/")
    if len(parts) < len(wanted) or (not directory and len(parts) != len(wanted)):
        return False
    return all(fnmatch.fnmatchcase(part, want) for part, want in zip(parts, wanted, strict=False))


def changed_paths(commit: pygit2.Commit) -> set[str]:
    """Every path `commit` adds, deletes, modifies or changes the mode of, against its first parent
    (a tree-to-tree diff: no filter, no configured program runs)."""
    parent = commit.parents[0].tree if commit.parents else None
    diff = parent.diff_to_tree(commit.tree) if parent is not None else commit.tree.diff_to_tree(swap=True)
    found: set[str] = set()
    for delta in diff.deltas:
        found.update(path for path in (delta.old_file.path, delta.new_file.path) if path)
    return found


def trust_edits(commits: Iterable[pygit2.Commit], patterns: Iterable[str]) -> list[str]:
    """The paths under a trust pattern that `commits` change, sorted."""
    held = tuple(patterns)
    return sorted(
        {path for commit in commits for path in changed_paths(commit) if any(matches(path, p) for p in held)}
    )


def _runner_principals(repo: pygit2.Repository, signers: AllowedSigners) -> set[str]:
    """Principals that are runner machines: named so by `init --signing-key`, or holding this machine's
    runner key whatever its line calls it (only the key pantheon signs with unattended)."""
    found = {
        principal for principal in signers.keys.values() if principal.startswith(RUNNER_PRINCIPAL_PREFIX)
    }
    candidates = [runner_key_path(repo)]
    try:
        configured = str(repo.config["pantheon.signingKey"]).strip()
    except (KeyError, pygit2.GitError):
        configured = ""
    if configured and not configured.startswith(("key::", "ssh-")):
        candidates.append(Path(configured).expanduser())
    for key in candidates:
        try:
            public = key.with_name(key.name + ".pub").read_text().split()
        except OSError:
            continue
        if len(public) >= 2 and (public[0], public[1]) in signers.keys:
            found.add(signers.keys[(public[0], public[1])])
    return found


def person_approved(repo: pygit2.Repository, head: pygit2.Oid, signers: AllowedSigners) -> bool:
    """Whether the newest counted vote of a person on `head` approves: a `person:` vote whose notes
    commit is signed by an allowed signer that is not a runner (a runner's key signs the night's record;
    what it signs calling itself a person is still the runner's)."""
    runners = _runner_principals(repo, signers)
    verdict = None
    for item in recorded_votes(repo, head, signers):
        vote = item.vote
        if not item.counts or vote.kind != VoteKind.VOTE or not vote.voter.startswith(PERSON_PREFIX):
            continue
        if item.signer is None or item.signer in runners:
            continue
        verdict = vote.verdict  # in signed order: the newest person's word stands
    return verdict == Verdict.APPROVE


def wait_reason(task_id: str, paths: list[str]) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"touches {shown} — needs a person's signed approval: git pantheon vote {task_id} approve -m WHY"


def brought_in(repo: pygit2.Repository, head: pygit2.Oid, tip: pygit2.Oid) -> list[pygit2.Commit]:
    """Every commit a merge of `head` into a branch at `tip` brings in: the run's steps and whatever
    else its branch carries below them that the branch does not have yet."""
    walker = repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(tip)
    return list(walker)


def run_waits(repo: pygit2.Repository, ref: str, base: str | None) -> str | None:
    """Why the run on branch `ref` (of a task on branch `base`) may not merge unattended, or None: it
    changes trust paths of the base branch's config and no person approved its head."""
    parsed = parse_run_branch(ref)
    steps = recorded_steps(repo, ref)
    if parsed is None or not steps:
        return None
    tip = trusted_tip(repo, base)
    # Each commit on its own, not the net diff: the pre-push guard judges commit by commit too, and an
    # edit undone by a later step is still one a person should see. With no trusted branch at all (the
    # merge refuses then anyway) the steps alone, not the whole history.
    commits = brought_in(repo, steps[-1][1].id, tip) if tip is not None else [c for _, c in steps]
    edits = trust_edits(commits, trust_paths_at(repo, tip))
    if not edits:
        return None
    signers = allowed_signers_at(repo, tip) if tip is not None else AllowedSigners("")
    if person_approved(repo, steps[-1][1].id, signers):
        return None
    return wait_reason(parsed[0], edits)
