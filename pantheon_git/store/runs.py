"""Run branches: one commit per flow step on refs/heads/pantheon/<task>/<attempt>, written without checkout.

A step commit's message is the step's one-line summary and its `Pantheon-*` trailers, so `git log` and
`git interpret-trailers --parse` read the run without pantheon installed, and a run's `git log` fits a
screen: the fields code reads back fold into one line, `Pantheon-Step: <node> task=<id> attempt=<n>`
(plus `base=<commit>` on a run's first step, `outcome=failed` on a failure, whose `Pantheon-Error`
trailer says why), and `Pantheon-Log` is the step's report line (store/logview.py). The agent, the model
and the summary's further lines are in the step's trace note.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pygit2

from pantheon_git.errors import ConflictError, PantheonError, shown, warn_skipped
from pantheon_git.store.files import UnreadableFile, read_regular, rewrite_regular
from pantheon_git.store.git import build_tree, clear_stale_lock, ref_commit, set_ref, signature
from pantheon_git.store.layout import RUN_BRANCH_PREFIX, parse_run_branch, run_branch
from pantheon_git.store.locks import held_since
from pantheon_git.store.redact import redact_all, redact_bytes
from pantheon_git.store.signing import AllowedSigners, Trust, create_commit, signing_key, verify_commit
from pantheon_git.store.worktree import open_worktree, stage_all

STEP_TRAILER = "Pantheon-Step"
# The fields folded into the Pantheon-Step line (`key=value` after the node), as the trailers code reads:
# one trailer line a step instead of one a field keeps `git log` of a run on one screen.
FOLDED = {
    "task": "Pantheon-Task",
    "attempt": "Pantheon-Attempt",
    "base": "Pantheon-Base",
    "outcome": "Pantheon-Outcome",
}
_FOLD_KEY = {trailer: key for key, trailer in FOLDED.items()}


@dataclass(frozen=True, slots=True)
class Step:
    """What a step commit records about itself.

    `extra` trailers named in FOLDED join the Pantheon-Step line; any other is a trailer line of its own.
    Agent and model are the caller's to record in the trace note (the message would only repeat them).
    """

    task: str
    step: str
    agent: str
    model: str
    summary: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def message(self) -> str:
        """Subject and trailers, secrets redacted (before whitespace is folded: rules see the lines)."""
        # One search for the summary and every trailer value (the summary first, as the map's key order).
        values = {"Pantheon-Task": self.task, **{key: str(value) for key, value in self.extra.items()}}
        cleaned = redact_all({"": self.summary, **values})
        # `git log` prints the message as it is: control characters in a summary, an error or a log line
        # (model output, a check's output) are escaped, so no step can drive its reader's terminal.
        title = shown(cleaned.pop("").strip().partition("\n")[0].strip()) or "(no summary)"
        folded = [self.step] + [
            f"{_FOLD_KEY[key]}={shown('-'.join(value.split()))}"
            for key, value in cleaned.items()
            if key in _FOLD_KEY
        ]
        lines = [f"{STEP_TRAILER}: {' '.join(folded)}"]
        lines += [
            f"{key}: {shown(' '.join(value.split()))}"
            for key, value in cleaned.items()
            if key not in _FOLD_KEY
        ]
        # The node names the subject once (the baseline's summary already starts with it).
        subject = title if title.startswith(f"{self.step}: ") else f"{self.step}: {title}"
        return f"{subject}\n\n" + "\n".join(lines) + "\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The trailers of a commit message (its last paragraph of `Key: value` lines).

    A folded Pantheon-Step line is read out into the trailers it stands for (Pantheon-Task, …), its
    value left as the node; a run recorded with one trailer a field reads the same.
    """
    paragraphs = message.strip().split("\n\n")
    if len(paragraphs) < 2:
        return {}
    trailers: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or " " in key:
            return {}
        trailers[key] = value.strip()
    node, *fields = trailers.get(STEP_TRAILER, "").split() or [""]
    if fields:
        trailers[STEP_TRAILER] = node
        for item in fields:
            key, sep, value = item.partition("=")
            if sep and key in FOLDED:
                trailers.setdefault(FOLDED[key], value)
    return trailers


def commit_message(commit: pygit2.Commit, where: str) -> str | None:
    """`commit`'s message, or None (named on stderr) when it cannot be read: pygit2 decodes a message
    with the encoding its header names, and a commit from another machine may name one that is no
    encoding at all (a LookupError on every read of `.message`)."""
    try:
        return commit.message
    except (LookupError, ValueError) as bad:
        warn_skipped(f"{where} {commit.id}", f"unreadable commit message ({bad})")
        return None


def attempts(repo: pygit2.Repository, task_id: str) -> list[int]:
    """The attempt numbers that have a run branch for `task_id`, ascending."""
    return sorted(run_heads(repo).get(task_id, {}))


def run_heads(repo: pygit2.Repository) -> dict[str, dict[int, pygit2.Oid]]:
    """Every run branch: task id -> attempt -> head commit id."""
    heads: dict[str, dict[int, pygit2.Oid]] = {}
    for ref in repo.references.iterator():
        if not ref.name.startswith(RUN_BRANCH_PREFIX):
            continue
        parsed = parse_run_branch(ref.name)
        if parsed is None:
            continue
        # Run branches are adopted from other machines: one that holds no commit is named and skipped.
        try:
            target = ref.resolve().target
            head = repo.get(target)
        except (KeyError, ValueError, pygit2.GitError):
            head = None
        if not isinstance(head, pygit2.Commit):
            warn_skipped(ref.name, "does not point at a commit")
            continue
        if commit_message(head, ref.name) is None:
            continue
        heads.setdefault(parsed[0], {})[parsed[1]] = target
    return heads


def newest_run(repo: pygit2.Repository, task_id: str) -> tuple[int, pygit2.Oid] | None:
    """(attempt, head commit) of the task's newest run branch, or None if it never ran."""
    attempts = run_heads(repo).get(task_id)
    if not attempts:
        return None
    newest = max(attempts)
    return newest, attempts[newest]


def _clear_left_lock(repo: pygit2.Repository, ref: str) -> bool:
    """Clear a lock file on run branch `ref` only if provably stale (see `clear_stale_lock`)."""
    parsed = parse_run_branch(ref)
    since = held_since(repo.path, parsed[0]) if parsed is not None else None
    return clear_stale_lock(repo, ref, made_before=since)


def start_run_branch(repo: pygit2.Repository, task_id: str, attempt: int, base: pygit2.Oid) -> str:
    """Create the run branch for an attempt at commit `base`; refuse if it already exists."""
    ref = run_branch(task_id, attempt)
    message = f"pantheon: start {task_id} attempt {attempt}"
    if not set_ref(repo, ref, base, None, message) and not (
        _clear_left_lock(repo, ref) and set_ref(repo, ref, base, None, message)
    ):
        raise PantheonError(f"{ref}: already exists (attempt {attempt} of {task_id} was started before)")
    return ref


def make_step_commit(
    repo: pygit2.Repository,
    ref: str,
    step: Step,
    *,
    tree: pygit2.Oid | None = None,
    changes: Mapping[str, bytes | None] | None = None,
) -> tuple[pygit2.Oid, pygit2.Oid]:
    """Write a step commit on top of `ref`'s tip without moving the branch: (commit, parent).

    The tree is `tree` if given, else the tip's tree with `changes` applied in memory (no checkout);
    neither means an empty commit (a step that changed nothing still leaves its record). Writing the
    commit before publishing it lets the runner attach the trace note first, so a published step never
    lacks its note, whenever the process dies.
    """
    if tree is not None and changes:
        raise ValueError("give a tree or changes, not both")
    tip = ref_commit(repo, ref)
    if tip is None:
        raise PantheonError(f"{ref}: no such run branch (start it at its base first)")
    step = bind_step(repo, ref, step)
    if tree is None:
        tree = build_tree(repo, tip.tree, changes) if changes else tip.tree_id
    sig = signature(repo)
    # Signed with the runner's key when one is configured: only a run whose every step verifies
    # against the base branch's allowed signers can pass (an unsigned run is kept, never merged).
    key = signing_key(repo)
    return create_commit(repo, sig, sig, step.message(), tree, [tip.id], key), tip.id


def run_base(repo: pygit2.Repository, ref: str) -> str:
    """The commit run branch `ref` started from: its first step's parent, or its tip before any step."""
    steps = recorded_steps(repo, ref)
    if steps:
        first = steps[0][1]
        return str(first.parents[0].id) if first.parents else ""
    tip = ref_commit(repo, ref)
    return str(tip.id) if tip is not None else ""


def bind_step(repo: pygit2.Repository, ref: str, step: Step) -> Step:
    """`step` with the run it belongs to in its trailers: task, attempt and base of branch `ref`.

    The step commit is signed, so the binding is too: its approvals cannot be replayed on a branch of
    another task, attempt or base (see `misbound_steps`). A step naming another run is refused.
    """
    parsed = parse_run_branch(ref)
    if parsed is None:
        raise PantheonError(f"{ref}: not a run branch (refs/heads/pantheon/<task>/<attempt>)")
    binding = {
        "Pantheon-Task": parsed[0],
        "Pantheon-Attempt": str(parsed[1]),
        "Pantheon-Base": run_base(repo, ref),
    }
    given = {"Pantheon-Task": step.task, **step.extra}
    wrong = [f"{key} {given[key]}" for key, value in binding.items() if given.get(key, value) != value]
    if wrong:
        raise PantheonError(f"{ref}: a step with {', '.join(wrong)} cannot be bound to this run")
    del binding["Pantheon-Task"]  # the step's own field
    # The binding first, so every step's folded line reads `task= attempt= base=` in that order.
    return replace(step, extra={**binding, **{k: v for k, v in step.extra.items() if k not in binding}})


def misbound_steps(
    repo: pygit2.Repository, ref: str, *, with_base: bool = True
) -> list[tuple[str, pygit2.Commit, str]]:
    """The step commits of run branch `ref` whose signed binding is not this branch's run: (step, commit,
    why). A step counts only for the task, attempt and base it was signed for; every step of the run
    must name the commit the run's first step starts from (a run recorded without these trailers, or
    another run's steps a branch was pointed at, never counts). `with_base=False` compares the task and
    attempt only: runs merged before every step named its base still read as merged."""
    parsed = parse_run_branch(ref)
    steps = recorded_steps(repo, ref)
    if parsed is None or not steps:
        return []
    first = steps[0][1]
    expected = (parsed[0], str(parsed[1]), str(first.parents[0].id) if first.parents else "")
    compared = 3 if with_base else 2
    found = []
    for name, commit in steps:
        trailers = parse_trailers(commit.message)
        bound = tuple(trailers.get(key, "") for key in ("Pantheon-Task", "Pantheon-Attempt", "Pantheon-Base"))
        if bound[:compared] != expected[:compared]:
            why = (
                f"step {name} is bound to task {bound[0] or '?'} attempt {bound[1] or '?'} "
                f"base {bound[2][:12] or '?'}, not to {ref.removeprefix('refs/heads/')} "
                f"(base {expected[2][:12]})"
            )
            found.append((name, commit, why))
    return found


def publish_step(repo: pygit2.Repository, ref: str, commit: pygit2.Oid, parent: pygit2.Oid) -> None:
    """Move run branch `ref` from `parent` to `commit`; refuse if anyone else moved it meanwhile.

    Only the holder of the task's lock writes its run branch, so a lock file on it made before this
    runner took the task's lock was left by a runner killed mid-write: it is cleared and the move tried
    once more. Any other lock file is someone's live write (or not provably stale): the step is refused.
    """
    message = f"pantheon: step {str(commit)[:12]}"
    if set_ref(repo, ref, commit, parent, message):
        return
    if _clear_left_lock(repo, ref) and set_ref(repo, ref, commit, parent, message):
        return
    raise ConflictError(f"{ref}: moved by another writer while a step was being recorded")


def commit_step(
    repo: pygit2.Repository,
    ref: str,
    step: Step,
    *,
    tree: pygit2.Oid | None = None,
    changes: Mapping[str, bytes | None] | None = None,
) -> pygit2.Oid:
    """Write and publish a step commit in one go (for callers with no note to attach first)."""
    commit, parent = make_step_commit(repo, ref, step, tree=tree, changes=changes)
    publish_step(repo, ref, commit, parent)
    return commit


def recorded_steps(repo: pygit2.Repository, ref: str) -> list[tuple[str, pygit2.Commit]]:
    """The step commits on run branch `ref`, oldest first: (step name, commit).

    Walks first parents back to the base, i.e. the first commit without a `Pantheon-Step` trailer.
    """
    steps: list[tuple[str, pygit2.Commit]] = []
    commit = ref_commit(repo, ref)
    while commit is not None:
        message = commit_message(commit, ref)
        name = parse_trailers(message).get("Pantheon-Step") if message is not None else None
        if not name:  # the base, or (named on stderr) a commit whose message cannot be read: no step
            break
        steps.append((name, commit))
        commit = commit.parents[0] if commit.parents else None
    return steps[::-1]


# How far below a run branch's head its last step is looked for (commits a person added on top).
TAKEN_OVER_DEPTH = 100


def taken_over(repo: pygit2.Repository, ref: str) -> bool:
    """Whether a person took run branch `ref` over: its head is not a step, but a step of this very run
    (its task and attempt, as signed) lies below it, i.e. someone committed on top of the night's steps
    (a morning fix, training/fixes.py). The night never builds on such a branch (a resumed run would bury
    the fix under new steps and could pass by it), and it reads as failed: the night's verdict for a
    failed run, and no pass for a passed one, whose branch now holds commits nobody reviewed."""
    parsed = parse_run_branch(ref)
    commit = ref_commit(repo, ref)
    if (
        parsed is None
        or commit is None
        or parse_trailers(commit_message(commit, ref) or "").get(STEP_TRAILER)
    ):
        return False
    for _ in range(TAKEN_OVER_DEPTH):
        if not commit.parents:
            return False
        commit = commit.parents[0]
        trailers = parse_trailers(commit_message(commit, ref) or "")
        if trailers.get(STEP_TRAILER):
            # A step of another run (a merged one in the base's history) means this run has no step yet.
            return (trailers.get("Pantheon-Task"), trailers.get("Pantheon-Attempt")) == (
                parsed[0],
                str(parsed[1]),
            )
    return False


# Changed files larger than this are committed as they are (scanning them would cost seconds).
REDACT_FILE_LIMIT = 1 << 20
_CHANGED = pygit2.GIT_STATUS_WT_NEW | pygit2.GIT_STATUS_WT_MODIFIED | pygit2.GIT_STATUS_INDEX_NEW


def redact_changed_files(repo: pygit2.Repository) -> list[str]:
    """Redact secrets in place in the worktree's new and changed text files; returns the paths changed.

    Done before staging, because staging writes each file's blob into the object store, where a later
    redaction could no longer remove it.
    """
    root = repo.workdir
    touched = []
    for path, flags in repo.status().items():
        full = os.path.join(root, path)
        if not flags & _CHANGED:
            continue
        try:
            # The one worktree open: links, FIFOs, devices and files over the limit are not read.
            data = read_regular(full, REDACT_FILE_LIMIT)
        except UnreadableFile:
            continue
        cleaned = redact_bytes(data)
        if cleaned != data:
            try:
                rewrite_regular(full, cleaned)
            except UnreadableFile:
                continue
            touched.append(path)
    return touched


def unverified_steps(
    repo: pygit2.Repository, ref: str, signers: AllowedSigners
) -> list[tuple[str, pygit2.Commit, Trust]]:
    """The step commits of run branch `ref` not signed by an allowed signer: (step, commit, why)."""
    found: list[tuple[str, pygit2.Commit, Trust]] = []
    for name, commit in recorded_steps(repo, ref):
        trust, _ = verify_commit(repo, commit.id, signers)
        if trust != Trust.VERIFIED:
            found.append((name, commit, trust))
    return found


def worktree_tree(worktree: str | os.PathLike[str]) -> pygit2.Oid:
    """The tree of a worktree's current state: every file git does not ignore, staged as `git add -A`.

    Secrets in new and changed files are redacted first (a run branch is pushed like any branch).
    """
    repo = open_worktree(worktree)  # nested repositories removed first: never staged, never entered
    redact_changed_files(repo)
    return stage_all(repo)
