"""The small git layer: open the repository, run git, and move refs by compare-and-swap.

pygit2 does the object and ref work in-process (fast, no fork); the `git` command line is used only
where the user's own git behaviour matters (config semantics, push and fetch, worktrees).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pygit2

from pantheon_git.errors import ConflictError, PantheonError

# Every object pantheon links into a tree or commit was just written or read from this repository, so
# libgit2's re-check that it exists is pure cost: about 0.7 ms per commit in a repository with 10,000
# loose objects (bench/bench_bookkeeping.py). Process-wide, and only ever switched off here.
pygit2.settings.enable_strict_object_creation(False)

# libgit2's messages when another writer moved or held the ref between our read and our write.
_RACE_MARKERS = ("not the first parent", "does not match", "lock", "modified", "exists")


def open_repo(path: str | os.PathLike[str] | None = None) -> pygit2.Repository:
    """The repository containing `path` (default: the current directory), or a one-line refusal."""
    start = os.fspath(path) if path is not None else os.getcwd()
    found = pygit2.discover_repository(start)
    if found is None:
        raise PantheonError(f"not inside a git repository: {start} (cd into one, or run `git init`)")
    return pygit2.Repository(found)


def work_tree(repo: pygit2.Repository) -> Path:
    if repo.workdir is None:
        raise PantheonError(f"{repo.path}: a bare repository has no work tree for .pantheon/")
    return Path(repo.workdir)


def run_git(
    args: list[str],
    cwd: str | os.PathLike[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `git ARGS` in `cwd`; on failure (when `check`) raise with git's own last line of stderr."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
    )
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise PantheonError(f"git {args[0]}: {last}")
    return proc


def identity(repo: pygit2.Repository) -> tuple[str, str]:
    """(name, email) from git config, read once per repository object; a fixed local one if unset."""
    cached = _IDENTITIES.get(repo.path)
    if cached is None:
        try:
            sig = repo.default_signature
            cached = (sig.name, sig.email)
        except (KeyError, pygit2.GitError):
            cached = ("pantheon", "pantheon@localhost")  # cron jobs often run without user config
        _IDENTITIES[repo.path] = cached
    return cached


_IDENTITIES: dict[str, tuple[str, str]] = {}


def signature(repo: pygit2.Repository) -> pygit2.Signature:
    """A signature with the user's identity and the current time."""
    name, email = identity(repo)
    return pygit2.Signature(name, email)


def ref_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
    """The commit `ref` points at, or None when the ref does not exist."""
    found = repo.references.get(ref)
    if found is None:
        return None
    return found.peel(pygit2.Commit)


def is_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _RACE_MARKERS)


# Ref locks are held for microseconds; one this old was left by a killed process and would block every
# later writer of that ref forever (git never clears them itself).
STALE_LOCK_SECONDS = 30.0


def clear_stale_lock(repo: pygit2.Repository, ref: str, older_than: float = STALE_LOCK_SECONDS) -> bool:
    """Remove `ref`'s lock file if it is older than `older_than` seconds; True if one was removed."""
    common = Path(repo.path)
    if (common / "commondir").is_file():
        common = (common / (common / "commondir").read_text().strip()).resolve()
    lock = common / f"{ref}.lock"
    try:
        if time.time() - lock.stat().st_mtime >= older_than:
            lock.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


def backoff(attempt: int) -> None:
    """Jittered exponential sleep so racing writers spread out instead of colliding again."""
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2**attempt)))


def append_commit(
    repo: pygit2.Repository,
    ref: str,
    build: Callable[[pygit2.Commit | None], tuple[pygit2.Oid, str] | None],
    *,
    patience: float = 2 * STALE_LOCK_SECONDS,
) -> pygit2.Oid | None:
    """Append one commit to the chain at `ref` with a compare-and-swap, retrying lost races.

    `build(tip)` returns (tree id, message) for a commit whose only parent is `tip`, or None when there
    is nothing to write. It is called again after each lost race, so it must derive everything from
    `tip`. The ref moves only if it still points at `tip` (or, for a new chain, still does not exist:
    libgit2's own commit-and-update skips that check on creation, so the move goes through `set_ref`).
    """
    sig = signature(repo)
    deadline = time.monotonic() + patience  # long enough to outlast a stale lock, then clear it
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        tip = ref_commit(repo, ref)
        built = build(tip)
        if built is None:
            return None
        tree, message = built
        if tip is None:
            commit = repo.create_commit(None, sig, sig, message, tree, [])
            if set_ref(repo, ref, commit, None, message.splitlines()[0] if message else "pantheon"):
                return commit
        else:
            try:
                # libgit2 moves the ref under its lock only if it still points at `tip`: the CAS.
                return repo.create_commit(ref, sig, sig, message, tree, [tip.id])
            except (pygit2.GitError, OSError) as exc:  # a held ref lock surfaces as OSError
                if not is_race(exc):
                    raise
        clear_stale_lock(repo, ref)
        backoff(attempt)
    raise ConflictError(f"{ref}: lost {attempt} races with other writers in {patience:.0f} s; try again")


def set_ref(
    repo: pygit2.Repository, ref: str, new: pygit2.Oid, expected: pygit2.Oid | None, message: str
) -> bool:
    """Point `ref` at `new` only if it still points at `expected` (None: only if it does not exist).

    Returns False, writing nothing, when the ref holds anything else.
    """
    try:
        with repo.transaction() as txn:
            txn.lock_ref(ref)
            current = repo.references.get(ref)
            current_id = current.target if current is not None else None
            if current_id != expected:
                return False
            txn.set_target(ref, new, message=message)
    except (pygit2.GitError, OSError) as exc:
        if is_race(exc):
            clear_stale_lock(repo, ref)
            return False
        raise
    return True


def build_tree(
    repo: pygit2.Repository, base: pygit2.Tree | None, changes: Mapping[str, bytes | None]
) -> pygit2.Oid:
    """A tree equal to `base` with each path set to its bytes (a blob) or removed (None).

    Only the trees on the changed paths are rewritten; the rest are shared with `base`.
    """
    direct: dict[str, bytes | None] = {}
    nested: dict[str, dict[str, bytes | None]] = {}
    for path, data in changes.items():
        head, _, rest = path.strip("/").partition("/")
        if rest:
            nested.setdefault(head, {})[rest] = data
        else:
            direct[head] = data
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    for name, data in direct.items():
        if data is None:
            if base is not None and name in base:
                builder.remove(name)
        else:
            builder.insert(name, repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
    for name, sub_changes in nested.items():
        sub_base = None
        if base is not None and name in base:
            entry = base[name]
            if entry.type_str == "tree":
                sub_base = repo.get(entry.id)
        sub_tree_id = build_tree(repo, sub_base, sub_changes)
        if len(repo.get(sub_tree_id)) == 0:
            if base is not None and name in base:
                builder.remove(name)
        else:
            builder.insert(name, sub_tree_id, pygit2.GIT_FILEMODE_TREE)
    return builder.write()
