"""The one git layer: pygit2 in-process for objects, refs and notes; GitPython for the git command line.

pygit2 does the object and ref work in-process (fast, no fork) and moves refs by compare-and-swap; the
`git` command line, through GitPython with a timeout and repository-configured programs disabled, is
used only where the user's own git behaviour matters (config semantics, push and fetch, worktrees,
merges). No other module runs `git` itself.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import pygit2

from pantheon_git.errors import ConflictError, PantheonError, warn_skipped
from pantheon_git.store.faults import Boundary, fault_point, ref_kind
from pantheon_git.store.redact import redact, redact_bytes

if TYPE_CHECKING:
    import git

# Every object pantheon links into a tree or commit was just written or read from this repository, so
# libgit2's re-check that it exists is pure cost: about 0.7 ms per commit in a repository with 10,000
# loose objects (bench/bench_bookkeeping.py). Process-wide, and only ever switched off here.
pygit2.settings.enable_strict_object_creation(False)


_HEX_DIGITS = frozenset("0123456789abcdef")


def parse_oid(text: str) -> pygit2.Oid | None:
    """The object id spelled by a full hex id (SHA-1 or SHA-256) from text outside the object store (JSON
    notes, a hook's stdin, a cache file), or None when it is not one.

    pygit2.Oid(hex=...) would pad a short or truncated id with zeros into another, valid-looking id. A
    SHA-256 id is None where this libgit2 is built without SHA-256 (it cannot open such a repository).
    """
    text = text.strip().lower()
    if len(text) not in (40, 64) or not set(text) <= _HEX_DIGITS:
        return None
    try:
        return pygit2.Oid(hex=text)
    except ValueError:
        return None


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


# Repository-configured programs that git would otherwise run on the runner's behalf: a task's files or
# a synced config must never get code run outside the sandbox through them (hooks at `worktree add`,
# fsmonitor and pagers at `diff`, an external diff driver, an ssh wrapper at push).
SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "diff.external=",
    "core.sshCommand=ssh",
    "protocol.ext.allow=never",
)
GIT_TIMEOUT_S = 120.0


class GitCommandFailed(PantheonError):
    """A git command exited non-zero, timed out or could not start; the message names it."""


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        return (self.stderr.strip().splitlines() or [f"exit {self.returncode}"])[-1]


def run_git(
    args: list[str],
    cwd: str | os.PathLike[str],
    *,
    check: bool = True,
    timeout_s: float = GIT_TIMEOUT_S,
    repo_programs: bool = False,
) -> GitResult:
    """Run `git ARGS` in `cwd` through GitPython, with repository-configured programs disabled and a
    timeout; on failure (when `check`) raise GitCommandFailed naming the command and git's last line.

    `repo_programs=True` keeps the repository's own hooks and programs: only for queries about them
    (where the hooks live), never for a command that could run one.

    With `fetch_refs` and `push_refs`, the only way this package runs the git command line: everything
    that must behave like the user's git (push, fetch, worktrees, merges, config) comes through here.
    """
    import git  # GitPython: imported here so commands that never reach the git CLI do not pay for it

    argv = ["git", "--no-pager"]
    for item in () if repo_programs else SAFE_CONFIG:
        argv += ["-c", item]
    argv += args
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GIT_PAGER": "cat"}
    try:
        status, stdout, stderr = git.Git(os.fspath(cwd)).execute(
            argv,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout_s,
            strip_newline_in_stdout=False,
            env=env,
            stdout_as_string=True,
        )
    except git.GitCommandError as exc:  # raised when the command timed out and was killed
        status, stdout, stderr = exc.status if isinstance(exc.status, int) else 124, "", str(exc.stderr)
        if "timeout" in str(exc).lower() or "kill" in str(exc).lower():
            stderr = f"timed out after {timeout_s:.0f} s"
    except (git.GitCommandNotFound, OSError) as exc:
        raise GitCommandFailed(f"git {args[0]}: could not run git ({exc}); install git") from None
    result = GitResult(int(status), str(stdout), str(stderr))
    if check and result.returncode != 0:
        raise GitCommandFailed(f"git {args[0]}: {result.last_error_line}")
    return result


# git's progress phases by GitPython's RemoteProgress op codes (COUNTING .. CHECKING_OUT), in git's words.
_PHASES = {4: "counting objects", 8: "compressing objects", 16: "writing objects", 32: "receiving objects",
           64: "resolving deltas", 128: "finding sources", 256: "checking out files"}  # fmt: skip
_STAGE_BITS = 3  # RemoteProgress.BEGIN | RemoteProgress.END: where in the phase, not which phase


def progress_line(op_code: int, done: float, total: float | None) -> str | None:
    """One progress line, "receiving objects 45% (45/100)", for a phase git reports; None for others."""
    phase = _PHASES.get(op_code & ~_STAGE_BITS)
    if phase is None:
        return None
    if not total:
        return f"{phase} ({int(done)})"
    return f"{phase} {int(100 * done / total)}% ({int(done)}/{int(total)})"


@contextmanager
def _remote(root: str | os.PathLike[str], name: str) -> Iterator[git.Remote]:
    """GitPython's Remote `name` of the repository at `root`, whose every git run has the same safe
    config, environment and logging as `run_git`'s; the repository is closed after the block."""
    import logging

    import git

    # GitPython logs a failed transfer's stderr as a warning; the GitCommandFailed raised says it once.
    logging.getLogger("git.remote").setLevel(logging.ERROR)
    with git.Repo(os.fspath(root)) as repo:
        repo.git.set_persistent_git_options(no_pager=True, c=list(SAFE_CONFIG))
        repo.git.update_environment(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", SSH_ASKPASS="", GIT_PAGER="cat")
        yield repo.remote(name)


def _progress(on_progress: Callable[[str], None] | None) -> git.RemoteProgress:
    import git

    class Progress(git.RemoteProgress):
        def update(self, op_code: int, cur_count: str | float, max_count: str | float | None = None,
                   message: str = "") -> None:  # fmt: skip
            line = progress_line(op_code, float(cur_count), float(max_count) if max_count else None)
            if line is not None and on_progress is not None:
                on_progress(line)

    return Progress()


def fetch_refs(
    root: str | os.PathLike[str],
    remote: str,
    refspecs: list[str],
    *,
    on_progress: Callable[[str], None] | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
) -> None:
    """`git fetch REMOTE REFSPECS` through GitPython's Remote, with git's progress lines passed to
    `on_progress` ("receiving objects 45% (45/100)"); GitCommandFailed naming git's last line on failure."""
    import git

    try:
        with _remote(root, remote) as origin:
            origin.fetch(refspecs, progress=_progress(on_progress), kill_after_timeout=timeout_s)
    except git.GitCommandError as exc:
        raise GitCommandFailed(f"git fetch: {_last_line(exc, timeout_s)}") from None
    except (ValueError, OSError) as exc:  # no such remote; git not installed
        raise GitCommandFailed(f"git fetch: {exc}") from None


def push_refs(
    root: str | os.PathLike[str],
    remote: str,
    refspecs: list[str],
    *,
    on_progress: Callable[[str], None] | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
) -> list[str]:
    """`git push REMOTE REFSPECS` (never forced) through GitPython's Remote, with progress as `fetch_refs`;
    the refs the remote refused, one line each ("refs/pantheon/tasks: rejected (fetch first)"), or
    [] when everything arrived."""
    import git

    try:
        with _remote(root, remote) as origin:
            pushed = origin.push(refspecs, progress=_progress(on_progress), kill_after_timeout=timeout_s)
    except git.GitCommandError as exc:  # nothing pushed: every line says why ("src refspec … does not match")
        return _error_lines(exc, timeout_s)
    except (ValueError, OSError) as exc:
        return [str(exc)]
    failed = (
        git.PushInfo.ERROR
        | git.PushInfo.REJECTED
        | git.PushInfo.REMOTE_REJECTED
        | git.PushInfo.REMOTE_FAILURE
    )
    refused = [f"{info.remote_ref_string}: {info.summary.strip()}" for info in pushed if info.flags & failed]
    if not refused and pushed.error is not None:  # git failed after some refs were written
        refused.append(_last_line(pushed.error, timeout_s))
    return refused


def _error_lines(exc: BaseException, timeout_s: float) -> list[str]:
    """git's error lines out of GitPython's exception (its stderr comes quoted, after "stderr: ")."""
    stderr = str(getattr(exc, "stderr", "") or exc).strip()
    if "timeout" in stderr.lower() or "kill" in stderr.lower():
        return [f"timed out after {timeout_s:.0f} s"]
    lines = [line.strip(" '\"\n").removeprefix("stderr: ").strip(" '\"") for line in stderr.splitlines()]
    return [line for line in lines if line] or [type(exc).__name__]


def _last_line(exc: BaseException, timeout_s: float) -> str:
    return _error_lines(exc, timeout_s)[-1]


def common_dir(git_dir: str | os.PathLike[str]) -> Path:
    """The main repository's git dir, also from a linked worktree's git dir (shared refs live there)."""
    path = Path(git_dir)
    pointer = path / "commondir"
    if pointer.is_file():
        path = (path / pointer.read_text().strip()).resolve()
    return path


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


ObjectT = TypeVar("ObjectT", pygit2.Commit, pygit2.Tree, pygit2.Blob)


def lookup(repo: pygit2.Repository, oid: pygit2.Oid, kind: type[ObjectT]) -> ObjectT:
    """The `kind` of object `oid` names; KeyError when this repository lacks it or holds another kind.

    pygit2 types `repo.get` as `Object | None`: this is the one checked narrowing of what it returns.
    """
    found = repo.get(oid)
    if not isinstance(found, kind):
        raise KeyError(f"{oid}: no {kind.__name__.lower()} of that id in {repo.path}")
    return found


def entries(tree: pygit2.Tree) -> Iterator[tuple[str, pygit2.Object]]:
    """(name, object) for each entry of `tree`: pygit2 types every object's name as optional, and an
    entry of a tree always has one."""
    for entry in tree:
        yield entry.name or "", entry


def ref_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
    """The commit `ref` points at, or None when the ref does not exist or holds no commit.

    Refs arrive from other machines (sync, fetch): one pointing at a blob or a tree is named on stderr
    and read as absent, so no reader crashes on it (writers refuse it: `append_commit`).
    """
    try:
        found = repo.references.get(ref)
        return found.peel(pygit2.Commit) if found is not None else None
    except (pygit2.GitError, ValueError, KeyError) as bad:
        warn_skipped(ref, f"does not point at a commit ({' '.join(str(bad).split())[:120]})")
        return None


# Ref locks are held for microseconds; one this old was left by a killed process and would block every
# later writer of that ref forever (git never clears them itself).
STALE_LOCK_SECONDS = 30.0


def clear_stale_lock(
    repo: pygit2.Repository,
    ref: str,
    older_than: float = STALE_LOCK_SECONDS,
    *,
    made_before: float | None = None,
) -> bool:
    """Remove `ref`'s lock file only if it is provably stale; True if one was removed.

    Provably stale: older than `older_than` seconds (no live writer holds a ref lock that long), or made
    before `made_before`, a time after which the caller knows every earlier writer of the ref is gone
    (it holds the one lock all of them held). A lock is never removed merely because it exists.
    """
    if older_than <= 0:
        raise ValueError("a lock's age bound must be positive: existing is no proof of being stale")
    lock = common_dir(repo.path) / f"{ref}.lock"
    try:
        made = lock.stat().st_mtime
        if time.time() - made >= older_than or (made_before is not None and made < made_before):
            lock.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


def backoff(attempt: int) -> None:
    """Jittered exponential sleep so racing writers spread out instead of colliding again."""
    # The exponent is capped: a writer waiting out a stale lock retries ~1000 times, and 2**1024 is
    # beyond a float.
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 16))))


def append_commit(
    repo: pygit2.Repository,
    ref: str,
    build: Callable[[pygit2.Commit | None], tuple[pygit2.Oid, str] | None],
    *,
    patience: float = 2 * STALE_LOCK_SECONDS,
    sign: Callable[[str], str] | None = None,
) -> pygit2.Oid | None:
    """Append one commit to the chain at `ref` with a compare-and-swap, retrying lost races.

    `build(tip)` returns (tree id, message) for a commit whose only parent is `tip`, or None when there
    is nothing to write. It is called again after each lost race, so it must derive everything from
    `tip`. The ref moves only if it still points at `tip` (or, for a new chain, still does not exist),
    under the ref's lock (`set_ref`): a race is decided from the ref's state, never from error wording.
    `sign(commit buffer)` returns the armored signature to put in the commit's gpgsig header.
    """
    sig = signature(repo)
    deadline = time.monotonic() + patience  # long enough to outlast a stale lock, then clear it
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        tip = ref_commit(repo, ref)
        if tip is None and repo.references.get(ref) is not None:
            # Never overwritten: what is there may be someone's data; a person decides what to do.
            raise PantheonError(
                f"{ref}: does not point at a commit; fix or delete it (`git update-ref -d {ref}`)"
            )
        built = build(tip)
        if built is None:
            return None
        tree, message = built
        message = redact(message)  # commit messages are published with their ref
        parent = None if tip is None else tip.id
        parents: list[pygit2.Oid | str] = [] if parent is None else [parent]
        if sign is None:
            commit = repo.create_commit(None, sig, sig, message, tree, parents)
        else:
            # pygit2 types the commit's text as an Oid; it is the text of the commit, a str.
            buffer = cast(str, repo.create_commit_string(sig, sig, message, tree, parents))
            signed = sign(buffer)
            fault_point(Boundary.SIGNED, ref_kind(ref))
            commit = repo.create_commit_with_signature(buffer, signed)
        if set_ref(repo, ref, commit, parent, message.splitlines()[0] or "pantheon"):
            return commit
        clear_stale_lock(repo, ref)
        backoff(attempt)
    raise ConflictError(f"{ref}: lost {attempt} races with other writers in {patience:.0f} s; try again")


def set_ref(
    repo: pygit2.Repository, ref: str, new: pygit2.Oid, expected: pygit2.Oid | None, message: str
) -> bool:
    """Point `ref` at `new` only if it still points at `expected` (None: only if it does not exist).

    Returns False, writing nothing, when the ref holds anything else.
    """
    with repo.transaction() as txn:
        try:
            txn.lock_ref(ref)
        except (pygit2.GitError, OSError):  # another writer holds the ref's lock right now
            clear_stale_lock(repo, ref)
            return False
        fault_point(Boundary.REF_LOCKED, ref_kind(ref))  # a kill here leaves the ref's lock file behind
        current = repo.references.get(ref)
        if (current.target if current is not None else None) != expected:
            return False
        txn.set_target(ref, new, message=message)
    fault_point(Boundary.REF_MOVED, ref_kind(ref))
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
            # Specs, dataset rows, step files: whatever enters git here is published with its ref.
            builder.insert(name, repo.create_blob(redact_bytes(data)), pygit2.GIT_FILEMODE_BLOB)
    for name, sub_changes in nested.items():
        sub_base = None
        if base is not None and name in base:
            entry = base[name]
            if entry.type_str == "tree":
                sub_base = lookup(repo, entry.id, pygit2.Tree)
        sub_tree_id = build_tree(repo, sub_base, sub_changes)
        if len(lookup(repo, sub_tree_id, pygit2.Tree)) == 0:
            if base is not None and name in base:
                builder.remove(name)
        else:
            builder.insert(name, sub_tree_id, pygit2.GIT_FILEMODE_TREE)
    return builder.write()
