"""Which adapter the runtime serves: the one promoted on refs/pantheon/adapters/<agent>, cached as a file."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2

from pantheon_git.runtime.bundled import cache_dir
from pantheon_git.store.git import ref_commit
from pantheon_git.store.layout import ADAPTERS_PREFIX


def promoted_adapter(repo: pygit2.Repository, agent: str) -> Path | None:
    """The promoted adapter of `agent` as a file in the cache (None: the base model runs)."""
    tip = ref_commit(repo, ADAPTERS_PREFIX + agent)
    if tip is None or "adapter.gguf" not in tip.tree:
        return None
    blob = tip.tree["adapter.gguf"]
    path = cache_dir() / "adapters" / f"{blob.id}.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(repo.get(blob.id).data)
        os.replace(tmp, path)
    return path
