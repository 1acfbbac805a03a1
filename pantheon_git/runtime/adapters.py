"""Which adapter the runtime serves: the promoted one of refs/pantheon/adapters/<agent> or of a specialist
refs/pantheon/adapters/<agent>@<label>, chosen offline from the held-out scores recorded in git.

Routing reads only what is already committed: each adapter ref's tip (what a promotion or rollback left in
force) and the eval note of the promotion that put that tree there. For a task with labels, a candidate's
score is its held-out pass rate on the evaluated tasks sharing one of those labels (its overall rate when
it was evaluated on none of them); the best score serves, the general adapter on a tie. Never a fallback
to another model: a candidate is an adapter of the agent's own model, or the base model itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.runtime.bundled import cache_dir
from pantheon_git.store.git import ref_commit
from pantheon_git.store.layout import ADAPTERS_PREFIX, EVALS_NOTES
from pantheon_git.store.notes import json_object, read_note

LABEL_SEPARATOR = "@"


@dataclass(slots=True)
class Routed:
    ref: str  # "implementer" or "implementer@tests" (under refs/pantheon/adapters/)
    path: Path  # the adapter file in the cache
    score: float | None  # the held-out score that chose it (None: no eval recorded)


def _cached(repo: pygit2.Repository, name: str, blob: pygit2.Oid) -> Path:
    # The file name carries the ref, so the trace, the step's report line and the report say which one served.
    path = cache_dir() / "adapters" / f"{name.replace(LABEL_SEPARATOR, '.')}-{str(blob)[:16]}.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(repo[blob].read_raw())
        os.replace(tmp, path)
    return path


def promoted_adapter(repo: pygit2.Repository, agent: str) -> Path | None:
    """The promoted adapter of `agent` as a file in the cache (None: the base model runs)."""
    tip = ref_commit(repo, ADAPTERS_PREFIX + agent)
    if tip is None or "adapter.gguf" not in tip.tree or tip.tree["adapter.gguf"].type_str != "blob":
        return None
    return _cached(repo, agent, tip.tree["adapter.gguf"].id)


def recorded_eval(repo: pygit2.Repository, tip: pygit2.Commit) -> dict[str, Any] | None:
    """The eval note of the promotion whose tree is in force at `tip` (a rollback restores an older one)."""
    commit: pygit2.Commit | None = tip
    while commit is not None:
        if commit.tree_id == tip.tree_id and commit.message.startswith("promote "):
            # Eval notes arrive by sync: anything but a JSON object is named on stderr and read as none.
            return json_object(read_note(repo, EVALS_NOTES, commit.id), f"{EVALS_NOTES}:{commit.id}")
        commit = commit.parents[0] if commit.parents else None
    return None


def label_score(evaluation: dict[str, Any], labels: Sequence[str]) -> float | None:
    """The candidate's held-out pass rate on tasks sharing a label with `labels`, else overall."""
    candidate = evaluation.get("candidate") or {}
    if not isinstance(candidate, dict):
        return None
    details = candidate.get("details") or []
    wanted = set(labels)
    matching = [d for d in details if isinstance(d, dict) and wanted & set(d.get("labels") or [])]
    if matching:
        return sum(1 for d in matching if d.get("passed")) / len(matching)
    tasks = candidate.get("tasks") or []
    return len(candidate.get("passed") or []) / len(tasks) if tasks else None


def adapter_refs(repo: pygit2.Repository, agent: str) -> list[str]:
    """`agent` and its specialists `agent@label` that have an adapter ref, general first."""
    names = []
    for ref in repo.references:
        if not ref.startswith(ADAPTERS_PREFIX):
            continue
        name = ref.removeprefix(ADAPTERS_PREFIX)
        if name == agent or name.startswith(agent + LABEL_SEPARATOR):
            names.append(name)
    return sorted(names, key=lambda name: (name != agent, name))


def route_adapter(repo: pygit2.Repository, agent: str, labels: Sequence[str] = ()) -> Routed | None:
    """The adapter to serve `agent` on a task with `labels` (None: the base model)."""
    best: Routed | None = None
    for name in adapter_refs(repo, agent):
        if LABEL_SEPARATOR in name and name.split(LABEL_SEPARATOR, 1)[1] not in labels:
            continue  # a specialist serves only tasks with its label
        tip = ref_commit(repo, ADAPTERS_PREFIX + name)
        if tip is None or "adapter.gguf" not in tip.tree or tip.tree["adapter.gguf"].type_str != "blob":
            continue  # rolled back to the base model (or not an adapter file)
        evaluation = recorded_eval(repo, tip)
        score = label_score(evaluation, labels) if evaluation else None
        if best is None or (score is not None and (best.score is None or score > best.score)):
            best = Routed(name, _cached(repo, name, tip.tree["adapter.gguf"].id), score)
    return best
