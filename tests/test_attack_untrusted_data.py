"""Attacks of issue 22, class 4: bad data from a remote never crashes a verb, and a merge never moves
its base without its record.

Another machine (an attacker's clone of the shared bare remote, using plain git) publishes notes and refs
that are not what pantheon writes: a votes note that is a tree, a vote line that is not UTF-8, a trace
note that is not JSON, a tasks ref that is a blob. The victim syncs and runs its verbs with the real CLI.
Then a fuzz over every ref and notes ref of store/layout.py corrupts each in each way (a blob or a tree
where a commit is expected, a tree where a blob is, bytes that are not UTF-8, not JSON or TOML, huge,
truncated) and runs every verb that reads them, each in a forked child of this process: none may end in
a traceback, and what is bad is named on stderr. A merge killed between moving main and writing its
record is recorded by the next merge, never merged twice.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pygit2
import pytest

from pantheon_git import cli
from pantheon_git.queue.claims import runner_id
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import (
    ADAPTERS_PREFIX,
    DATASETS_PREFIX,
    EVALS_NOTES,
    LOG_NOTES,
    NOTES_REFS,
    PAYLOADS_NOTES,
    TASKS_REF,
    TRACES_NOTES,
    VOTES_NOTES,
    claim_ref,
    run_branch,
)
from pantheon_git.store.logview import log_votes
from pantheon_git.store.notes import set_note
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.traces import read_trace, write_trace
from pantheon_git.store.votes import Vote, append_votes, read_all_votes
from tests.conftest import CHECKS_FLOW, enable_signing, git, pantheon

TRACEBACK = "Traceback (most recent call last)"
HUGE = 9 << 20  # over the 8 MiB that readers take of a note (store/notes.py MAX_NOTE_BYTES)


# --- the victim's repository -------------------------------------------------------------------------


def pantheon_repo(path: Path, bare: Path) -> Path:
    """A signing repository with pantheon set up (a model-free flow, no reviewers needed), a shared bare
    remote `origin` holding its main."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("sample\n")
    enable_signing(path)
    assert pantheon(path, "init").returncode == 0
    (path / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = path / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("min_approvals = 2", "min_approvals = 0"))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "pantheon")
    git(bare.parent, "init", "-q", "--bare", str(bare))
    git(path, "remote", "add", "origin", str(bare))
    git(path, "push", "-q", "origin", "main")
    return path


def queue(path: Path, task_id: str, title: str | None = None) -> None:
    spec = Spec(id=task_id, title=title or f"task {task_id}", acceptance=["true"], flow="checks")
    enqueue(open_repo(path), [stamp(spec, author="a <a@b>", base="main")])


def signed_run(path: Path, task_id: str, *, gate: bool) -> tuple[pygit2.Oid, pygit2.Oid]:
    """A run as the night leaves it, signed by the runner's key: the acceptance step (a trace with a
    payload, an approving vote, a log line) and, with `gate`, an approving gate step. (test, head)."""
    repo = open_repo(path)
    ref = start_run_branch(repo, task_id, 1, repo.head.target)
    extra = {"Pantheon-Attempt": "1"}
    test = commit_step(repo, ref, Step(task_id, "test", "acceptance", "-", "acceptance", extra))
    results = [{"command": "true", "exit_code": 0, "timed_out": False}]
    trace = {"task": task_id, "attempt": 1, "node": "test", "agent": "acceptance", "ok": True}
    trace |= {"output": {"results": results}, "tokens": {"in": 10, "out": 5}, "duration_s": 0.5}
    write_trace(repo, test, trace | {"log_tail": "x" * 2000}, detail_keys=("output",))
    accepted = Vote(
        voter="acceptance", verdict="approve", evidence={"results": results, "passes_at_base": []}
    )
    append_votes(repo, test, [accepted])
    log_votes(repo, test, [accepted])
    if not gate:
        return test, test
    head = commit_step(repo, ref, Step(task_id, "gate", "gate", "-", "approve", extra))
    write_trace(repo, head, {"task": task_id, "attempt": 1, "node": "gate", "agent": "gate", "ok": True})
    append_votes(repo, head, [Vote(kind="gate", voter="gate", verdict="approve", reasons=["checks pass"])])
    return test, head


def status_of(path: Path, task_id: str) -> str:
    listed = pantheon(path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return next(row["status"] for row in json.loads(listed.stdout) if row["id"] == task_id)


def merge_recorded(path: Path, head: pygit2.Oid) -> bool:
    return any(vote.kind == "merge" for vote in read_all_votes(open_repo(path), head))


# --- the attacker's clone ----------------------------------------------------------------------------


def attacker_clone(tmp_path: Path, bare: Path) -> Path:
    """Another machine with plain git only: every pantheon ref and note of the remote, fetched as they are."""
    other = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "fetch", "-q", "origin", "+refs/pantheon/*:refs/pantheon/*", "+refs/notes/*:refs/notes/*")
    git(other, "fetch", "-q", "origin", "+refs/heads/pantheon/*:refs/heads/pantheon/*")
    git(other, "config", "user.name", "Mallory")
    git(other, "config", "user.email", "mallory@example.com")
    return other


def git_in(cwd: Path, *args: str, stdin: bytes) -> bytes:
    """git with bytes in and out (conftest's `git` is text only)."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, input=stdin)
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr!r}"
    return proc.stdout


def hash_object(path: Path, data: bytes) -> str:
    return git_in(path, "hash-object", "-w", "--stdin", stdin=data).decode().strip()


def mktree(path: Path, listing: list[str]) -> str:
    return git_in(path, "mktree", stdin=("\n".join(listing) + "\n").encode()).decode().strip()


def plumbing_commit(path: Path, tree: str, parent: str | None, message: str) -> str:
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    return git(path, *args).strip()


def note_as_tree(path: Path, notes_ref: str, target: str) -> None:
    """Make `target`'s note in `notes_ref` a tree (holding one vote-shaped file), with git's plumbing."""
    inner = mktree(path, [f"100644 blob {hash_object(path, b'{}')}\tvote"])
    tip = git(path, "rev-parse", "--verify", "--quiet", notes_ref, check=False).strip() or None
    listing = git(path, "ls-tree", tip).splitlines() if tip else []
    # `target` has no note yet: add the tree beside the others, at the root (git reads any fan-out).
    tree = mktree(path, [*listing, f"040000 tree {inner}\t{target}"])
    git(path, "update-ref", notes_ref, plumbing_commit(path, tree, tip, "notes"))


def note_bytes(path: Path, notes_ref: str, target: pygit2.Oid) -> bytes:
    """A note exactly as stored (git's `notes show` is text)."""
    blob_id = git(path, "notes", "--ref", notes_ref, "list", str(target)).strip()
    return git_in(path, "cat-file", "blob", blob_id, stdin=b"")


def push(path: Path, *refs: str) -> None:
    git(path, "push", "-q", "--force", "origin", *refs)


# --- the attacks -------------------------------------------------------------------------------------


def test_bad_notes_from_a_remote_crash_no_verb_and_merge_keeps_its_record(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    victim = pantheon_repo(tmp_path / "victim", bare)
    queue(victim, "good")
    _test, head = signed_run(victim, "good", gate=True)
    assert pantheon(victim, "sync").returncode == 0
    assert status_of(victim, "good") == "passed"

    other = attacker_clone(tmp_path, bare)
    # 1. A vote line that is not UTF-8, appended to the passing run's votes note.
    line = b'{"id": "\xff\xfe", "kind": "vote", "voter": "mallory", "verdict": "reject"}\n'
    git_in(other, "notes", "--ref", "pantheon/votes", "append", "-F", "-", str(head), stdin=line)
    # 2. The attacker's own task, queued with plain git, with a run branch whose trace note is not JSON
    #    and whose votes note is a tree.
    spec = hash_object(other, b'id = "evil"\ntitle = "evil"\nacceptance = ["true"]\nflow = "checks"\n')
    tasks = git(other, "rev-parse", TASKS_REF).strip()
    tree = mktree(other, [*git(other, "ls-tree", tasks).splitlines(), f"100644 blob {spec}\tevil.toml"])
    git(other, "update-ref", TASKS_REF, plumbing_commit(other, tree, tasks, "queue evil"))
    base = git(other, "rev-parse", "origin/main").strip()
    empty = git(other, "rev-parse", f"{base}^{{tree}}").strip()
    step = plumbing_commit(other, empty, base, "test: x\n\nPantheon-Step: test task=evil attempt=1")
    gate = plumbing_commit(other, empty, step, "gate: x\n\nPantheon-Step: gate task=evil attempt=1")
    git(other, "update-ref", "refs/heads/pantheon/evil/1", gate)
    git(other, "notes", "--ref", "pantheon/traces", "add", "-f", "-m", "{not json", step)
    git(other, "notes", "--ref", "pantheon/traces", "add", "-f", "-m", "[1, 2, 3]", gate)
    note_as_tree(other, VOTES_NOTES, gate)
    push(other, TASKS_REF, "refs/heads/pantheon/evil/1", VOTES_NOTES, TRACES_NOTES)

    synced = pantheon(victim, "sync")
    assert TRACEBACK not in synced.stderr and "adopted refs/heads/pantheon/evil/1" in synced.stdout
    for args in (["list"], ["list", "--json"], ["show", "evil"], ["report"], ["report", "--format", "json"]):
        shown = pantheon(victim, *args)
        assert shown.returncode == 0 and TRACEBACK not in shown.stderr, (args, shown.stderr)
    report = pantheon(victim, "report")
    # Each bad object is named in one line of its own and skipped; the rest of the report is there.
    warnings = report.stderr.splitlines()
    assert any(f"{TRACES_NOTES}:{step}: not JSON" in w for w in warnings), warnings
    assert any(f"{TRACES_NOTES}:{gate}: a JSON list, not an object" in w for w in warnings), warnings
    assert any(w.startswith("pantheon: warning: ") and "not a blob" in w for w in warnings), warnings
    assert "| good: task good | passed |" in report.stdout and "| evil: evil | running |" in report.stdout
    assert status_of(victim, "good") == "passed"

    voted = pantheon(victim, "vote", "good", "approve", "-m", "looked at it")
    assert voted.returncode == 0 and TRACEBACK not in voted.stderr, voted.stderr
    # The other machine's bytes are kept as they were (not ours to rewrite), and our line is added.
    note = note_bytes(victim, "pantheon/votes", head)
    assert line in note and b"looked at it" in note

    merged = pantheon(victim, "merge", "good")
    assert merged.returncode == 0 and TRACEBACK not in merged.stderr, merged.stderr
    assert git(victim, "rev-parse", "main").strip() == str(head)
    assert merge_recorded(victim, head) and status_of(victim, "good") == "merged"
    night = pantheon(victim, "night")
    assert TRACEBACK not in night.stderr and TRACEBACK not in night.stdout, night.stderr


def test_a_tasks_ref_that_is_a_blob_on_the_remote_does_not_crash_sync(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    victim = pantheon_repo(tmp_path / "victim", bare)
    queue(victim, "mine")
    assert pantheon(victim, "sync").returncode == 0
    other = attacker_clone(tmp_path, bare)
    blob = hash_object(other, b"not a queue\n")
    git(other, "push", "-q", "origin", f"+{blob}:{TASKS_REF}")

    synced = pantheon(victim, "sync")
    assert TRACEBACK not in synced.stderr, synced.stderr
    assert (
        "pantheon: warning: refs/pantheon-remotes/origin/tasks: does not point at a commit" in synced.stderr
    )
    # Our queue is untouched, and the push that would overwrite the remote's blob is refused, not forced.
    assert synced.returncode == 1 and "push to origin was rejected" in synced.stdout
    assert status_of(victim, "mine") == "queued"


def test_a_merge_whose_record_cannot_be_written_leaves_main_where_it_was(tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    victim = pantheon_repo(tmp_path / "victim", bare)
    queue(victim, "good")
    _test, head = signed_run(victim, "good", gate=True)
    assert status_of(victim, "good") == "passed"
    before = git(victim, "rev-parse", "main").strip()
    # The runner's key is gone by the time the merge is recorded (it signs the record): no record.
    key = victim / ".git" / "pantheon" / "keys" / "runner"
    key.rename(key.with_suffix(".away"))
    merged = pantheon(victim, "merge", "good")
    assert TRACEBACK not in merged.stderr, merged.stderr
    assert merged.returncode == 1 and "good: refused: recording the merge failed" in merged.stdout
    assert f"main put back at {before[:12]}" in merged.stdout
    assert git(victim, "rev-parse", "main").strip() == before and not merge_recorded(victim, head)
    assert git(victim, "status", "--porcelain") == ""  # the checkout went back with it
    key.with_suffix(".away").rename(key)
    again = pantheon(victim, "merge", "good")
    assert again.returncode == 0 and git(victim, "rev-parse", "main").strip() == str(head)
    assert merge_recorded(victim, head)


def test_a_merge_killed_before_its_record_is_recorded_by_the_next_merge_not_merged_twice(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "remote.git"
    victim = pantheon_repo(tmp_path / "victim", bare)
    queue(victim, "good")
    _test, head = signed_run(victim, "good", gate=True)
    # main moved on since the run started (a merge commit, not a fast-forward), and is not checked out.
    (victim / "other.txt").write_text("other\n")
    git(victim, "add", "other.txt")
    git(victim, "commit", "-q", "-m", "other")
    git(victim, "switch", "-q", "-c", "elsewhere")
    before = git(victim, "rev-parse", "main").strip()
    # The process dies (power, the OOM killer) once main has moved, as the merge's record is being signed:
    # an `ssh-keygen` first on PATH kills its caller when asked to sign (verifying still works).
    real = shutil.which("ssh-keygen")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ssh-keygen"
    fake.write_text(f'#!/bin/sh\ncase " $* " in *" sign "*) kill -9 $PPID; exit 1;; esac\nexec {real} "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    merge = [sys.executable, "-m", "pantheon_git", "merge", "good"]
    killed = subprocess.run(merge, cwd=victim, capture_output=True, text=True, env=env)
    assert killed.returncode == -9, killed.stderr
    merged_at = git(victim, "rev-parse", "main").strip()
    assert merged_at != before and not merge_recorded(victim, head)
    assert status_of(victim, "good") == "passed"
    # The next merge records the merge that is there: main does not move again.
    again = pantheon(victim, "merge", "good")
    assert again.returncode == 0 and TRACEBACK not in again.stderr, again.stderr
    assert git(victim, "rev-parse", "main").strip() == merged_at, "merged twice"
    records = [vote for vote in read_all_votes(open_repo(victim), head) if vote.kind == "merge"]
    assert [vote.evidence["commit"] for vote in records] == [merged_at]
    assert status_of(victim, "good") == "merged"


# --- the fuzz ----------------------------------------------------------------------------------------


def run_verb(cwd: Path, argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """`git pantheon ARGV` in a forked child of this process (no interpreter start per call; night mode
    and the per-process caches stay in the child): (exit status, stdout, stderr). A traceback is
    printed to the child's stderr and gives status 99."""
    out_path, err_path = cwd.parent / "verb.out", cwd.parent / "verb.err"
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
            os.chdir(cwd)
            code = cli.main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


# Read verbs first (the pre-push guard asked about pushing the passed run onto main), then those that
# write (gate and vote add notes, merge moves main), sync, the night, then a queue and a cancel.
PRE_PUSH = "refs/heads/main {head} refs/heads/main {main}\n"
VERBS: list[tuple[list[str], str]] = [
    (["list"], ""),
    (["list", "--json"], ""),
    (["show", "good"], ""),
    (["show", "halfway"], ""),
    (["report"], ""),
    (["report", "--format", "json"], ""),
    (["merge", "--all-passing", "--dry-run"], ""),
    (["replay", "{test}"], ""),
    (["hooks", "pre-push", "origin", "url"], PRE_PUSH),
    (["train", "dataset", "--agent", "implementer"], ""),
    (["gate", "halfway"], ""),
    (["vote", "good", "approve", "-m", "fuzz"], ""),
    (["merge", "good"], ""),
    (["sync"], ""),
    (["night"], ""),
    (["queue", "--title", "fuzz", "--acceptance", "true", "--flow", "checks"], ""),
    (["cancel", "halfway"], ""),
]

TEXT_ONLY = ("not JSON or TOML", "JSON of another shape", "nested too deep")
KINDS = (
    "a tree",
    "not UTF-8",
    "not JSON or TOML",
    "JSON of another shape",
    "nested too deep",
    "huge",
    "truncated",
)


@dataclass(frozen=True)
class Target:
    name: str
    ref: str  # the ref or notes ref corrupted
    named: str  # what some verb's stderr must name ("" where no verb reads what was corrupted)


Corrupt = Callable[[pygit2.Repository, dict[str, pygit2.Oid]], None]
Made = tuple[pygit2.Oid, int]


def a_blob(repo: pygit2.Repository, data: bytes) -> Made:
    return repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB


def a_tree(repo: pygit2.Repository) -> Made:
    builder = repo.TreeBuilder()
    builder.insert("inside", repo.create_blob(b"{}\n"), pygit2.GIT_FILEMODE_BLOB)
    return builder.write(), pygit2.GIT_FILEMODE_TREE


def corrupted(repo: pygit2.Repository, kind: str, old: bytes, *, toml: bool = False) -> Made:
    """What replaces a note, a spec (`toml`) or a manifest that was `old`, for each kind of wrong."""
    if kind == "a tree":
        return a_tree(repo)
    if kind == "nested too deep" and toml:
        return a_blob(repo, b"title = " + b"[" * 100_000 + b"\n")  # tomllib recurses per level
    data = {
        "not UTF-8": b"\xff\xfe\x80" + old,
        "not JSON or TOML": b'{"unclosed": [1, 2\n= = =\n',
        "JSON of another shape": b'[1, {"tokens": "many", "results": 7}]\n',
        "nested too deep": b"[" * 100_000 + b"\n",
        "huge": (old or b"x") * (HUGE // max(len(old), 1) + 1),
        "truncated": old[: max(len(old) // 2, 1)],
    }[kind]
    return a_blob(repo, data)


def _paths(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> list[str]:
    """Every entry's path, looking into notes fan-out directories (two hex digits)."""
    paths = []
    for entry in tree:
        if entry.type_str == "tree" and len(entry.name) == 2:
            paths += _paths(repo, repo.get(entry.id), prefix + entry.name + "/")
        else:
            paths.append(prefix + entry.name)
    return paths


def _replace(repo: pygit2.Repository, tree: pygit2.Tree, path: str, made: Made) -> pygit2.Oid:
    head, _, rest = path.partition("/")
    builder = repo.TreeBuilder(tree)
    if rest:
        inner = _replace(repo, repo.get(tree[head].id), rest, made)
        builder.insert(head, inner, pygit2.GIT_FILEMODE_TREE)
    else:
        builder.insert(head, *made)
    return builder.write()


def rewrite_entries(
    repo: pygit2.Repository, ref: str, pick: Callable[[str], bool], kind: str, *, toml: bool = False
) -> None:
    """Replace every entry that `pick` chooses in the tree of `ref`'s tip, as one new commit on `ref` from
    another machine (what a sync of its notes or its queue brings)."""
    tip = repo.references[ref].peel(pygit2.Commit)
    tree = tip.tree
    for path in _paths(repo, tree):
        if pick(path):
            found = repo.get(tree[path].id)
            made = corrupted(repo, kind, found.data if isinstance(found, pygit2.Blob) else b"", toml=toml)
            tree = repo.get(_replace(repo, tree, path, made))
    sig = pygit2.Signature("Other Machine", "other@example.com")
    repo.create_commit(ref, sig, sig, "from another machine", tree.id, [tip.id])


def point_ref(repo: pygit2.Repository, ref: str, oid: pygit2.Oid) -> None:
    """Point `ref` at any object, as a loose ref file (libgit2 and git refuse a branch at a non-commit; a
    fetch into a namespace of its own, a hand edit or another tool do not ask)."""
    path = Path(repo.path) / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{oid}\n")


def _named(ref: str, kind: str) -> str:
    """What must be named when `ref`'s notes are corrupted this way ("" where no verb parses them)."""
    if ref == PAYLOADS_NOTES:
        return ""  # payload notes only keep their blobs reachable; their bytes are never read
    if ref == LOG_NOTES and kind not in ("a tree", "huge"):
        return ""  # log lines are text for `git log`, never parsed; appending to them keeps their bytes
    return ref


def corruptions() -> list[tuple[str, Target, Corrupt]]:
    """(case, target, corrupt(repo, ids)) for every ref and notes ref that store/layout.py names."""
    refs = [
        Target("tasks", TASKS_REF, TASKS_REF),
        Target("claim", claim_ref("halfway"), claim_ref("halfway")),  # the night claims `halfway`
        Target("run branch", run_branch("good", 1), run_branch("good", 1)),
        Target("dataset", DATASETS_PREFIX + "implementer", DATASETS_PREFIX + "implementer"),
        Target("adapter", ADAPTERS_PREFIX + "implementer", ""),  # read only when a model agent is routed
    ]
    notes = [Target(ref.rsplit("/", 1)[-1] + " notes", ref, ref) for ref in NOTES_REFS]
    assert {t.ref for t in notes} == {TRACES_NOTES, VOTES_NOTES, PAYLOADS_NOTES, EVALS_NOTES, LOG_NOTES}
    cases: list[tuple[str, Target, Corrupt]] = []
    for target in refs + notes:
        for kind in ("blob", "tree"):

            def at(
                repo: pygit2.Repository, _ids: dict[str, pygit2.Oid], t: Target = target, k: str = kind
            ) -> None:
                made = a_blob(repo, b"not a commit\n") if k == "blob" else a_tree(repo)
                point_ref(repo, t.ref, made[0])

            cases.append((f"{target.name} ref at a {kind}", target, at))
    # What the notes hold, the queue's spec files and the dataset's manifest: each kind of wrong.
    for kind in KINDS:
        for target in notes:
            if target.ref in (PAYLOADS_NOTES, LOG_NOTES) and kind in TEXT_ONLY:
                continue  # never parsed as JSON: these kinds are "not UTF-8" again for them

            def notes_hold(
                repo: pygit2.Repository, _ids: dict[str, pygit2.Oid], t: Target = target, k: str = kind
            ) -> None:
                rewrite_entries(repo, t.ref, lambda _path: True, k)

            cases.append(
                (f"{target.name}: {kind}", replace(target, named=_named(target.ref, kind)), notes_hold)
            )

        def specs(repo: pygit2.Repository, _ids: dict[str, pygit2.Oid], k: str = kind) -> None:
            rewrite_entries(repo, TASKS_REF, lambda path: path.endswith(".toml"), k, toml=True)

        cases.append((f"spec files: {kind}", Target("spec files", TASKS_REF, TASKS_REF), specs))

        def manifest(repo: pygit2.Repository, _ids: dict[str, pygit2.Oid], k: str = kind) -> None:
            rewrite_entries(repo, DATASETS_PREFIX + "implementer", lambda path: path == "manifest.json", k)

        name = DATASETS_PREFIX + "implementer:manifest.json"
        cases.append((f"dataset manifest: {kind}", Target("manifest", DATASETS_PREFIX, name), manifest))
    # A trace whose payload reference points at what is no payload.
    for kind in ("a tree", "not UTF-8", "not JSON", "missing"):

        def payload(repo: pygit2.Repository, ids: dict[str, pygit2.Oid], k: str = kind) -> None:
            bad = {
                "a tree": lambda: str(a_tree(repo)[0]),
                "not UTF-8": lambda: str(repo.create_blob(b"\xff\xfe\x80")),
                "not JSON": lambda: str(repo.create_blob(b"{nope")),
                "missing": lambda: "0" * 40,
            }[k]()
            note = read_trace(repo, ids["test"])
            assert note is not None
            note["output"]["$blob"] = note["log_tail"]["$blob"] = bad
            set_note(repo, TRACES_NOTES, ids["test"], json.dumps(note).encode(), "bad payload", redacted=True)

        cases.append((f"payload reference: {kind}", Target("payload", TRACES_NOTES, PAYLOADS_NOTES), payload))
    # A claim from another runner whose heartbeat is no time, or a time without a zone.
    for heartbeat in ("yesterday", "2026-01-01T00:00:00"):

        def claim(repo: pygit2.Repository, _ids: dict[str, pygit2.Oid], h: str = heartbeat) -> None:
            tip = repo.references[claim_ref("halfway")].peel(pygit2.Commit)
            message = f"claim halfway\n\nPantheon-Claim-Owner: other:1\nPantheon-Claim-Heartbeat: {h}\n"
            sig = pygit2.Signature("Other Machine", "other@example.com")
            repo.create_commit(claim_ref("halfway"), sig, sig, message, tip.tree_id, [tip.id])

        cases.append((f"claim heartbeat {heartbeat}", Target("claim", claim_ref("halfway"), ""), claim))
    # A commit whose header names an encoding that does not exist (pygit2 cannot decode its message).
    for target in (
        Target("run step", run_branch("good", 1), "unreadable commit message"),
        Target("claim", claim_ref("halfway"), "unreadable commit message"),
    ):

        def bogus(repo: pygit2.Repository, _ids: dict[str, pygit2.Oid], t: Target = target) -> None:
            tip = repo.references[t.ref].peel(pygit2.Commit)
            who = b"Other Machine <other@example.com> 1767225600 +0000"
            raw = b"\n".join(
                [
                    b"tree " + str(tip.tree_id).encode(),
                    b"parent " + str(tip.id).encode(),
                    b"author " + who,
                    b"committer " + who,
                    b"encoding x-no-such-encoding",  # git writes any name here; pygit2 cannot decode with it
                    b"",
                    b"gate: approve\n\nPantheon-Step: gate task=good attempt=1\n",
                ]
            )
            commit = repo.odb.write(pygit2.enums.ObjectType.COMMIT, raw)
            repo.references.create(t.ref, commit, force=True)

        cases.append((f"{target.name} commit in no known encoding", target, bogus))
    return cases


CASES = corruptions()


def make_template(root: Path) -> dict[str, pygit2.Oid]:
    """The victim the fuzz starts from: `good` passed (traces with payloads, votes, log notes),
    `halfway` waits for its gate under this clone's own claim (the night resumes it), a dataset with an
    eval note, an adapter ref with one; all synced to the bare remote beside it."""
    victim = pantheon_repo(root / "victim", root / "remote.git")
    queue(victim, "good")
    queue(victim, "halfway")
    test, head = signed_run(victim, "good", gate=True)
    signed_run(victim, "halfway", gate=False)
    repo = open_repo(victim)
    sig = pygit2.Signature("Night Tester", "night@example.com")
    owner = runner_id(repo)
    heartbeat = "Pantheon-Claim-Heartbeat: 2026-01-01T00:00:00+00:00"
    message = f"claim halfway\n\nPantheon-Claim-Owner: {owner}\n{heartbeat}\n"
    repo.create_commit(claim_ref("halfway"), sig, sig, message, repo.TreeBuilder().write(), [])
    assert pantheon(victim, "train", "dataset", "--agent", "implementer").returncode == 0
    dataset = repo.references[DATASETS_PREFIX + "implementer"].target
    outcome = {"agent": "implementer", "outcome": "skipped", "reason": "none", "training": {"x": 1}}
    set_note(repo, EVALS_NOTES, dataset, json.dumps(outcome).encode(), "eval")
    builder = repo.TreeBuilder()
    builder.insert("adapter.gguf", repo.create_blob(b"GGUF"), pygit2.GIT_FILEMODE_BLOB)
    adapter = repo.create_commit(
        ADAPTERS_PREFIX + "implementer", sig, sig, "promote x\n", builder.write(), []
    )
    set_note(repo, EVALS_NOTES, adapter, json.dumps({"candidate": {"tasks": ["a"]}}).encode(), "eval")
    assert pantheon(victim, "sync").returncode == 0
    assert status_of(victim, "good") == "passed" and status_of(victim, "halfway") == "running"
    return {"test": test, "head": head}


_TEMPLATE: dict[str, object] = {}


@pytest.mark.parametrize("case", range(len(CASES)), ids=[name for name, _target, _corrupt in CASES])
def test_fuzz_every_ref_and_notes_ref_each_way_no_verb_tracebacks(
    case: int, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    name, target, corrupt = CASES[case]
    if not _TEMPLATE:  # made once, under the first case's hermetic git config (conftest), then copied
        root = tmp_path_factory.mktemp("fuzz-template")
        _TEMPLATE.update(root=root, ids=make_template(root))
    source, ids = Path(str(_TEMPLATE["root"])), _TEMPLATE["ids"]
    assert isinstance(ids, dict)
    shutil.copytree(source / "victim", tmp_path / "victim", symlinks=True)
    shutil.copytree(source / "remote.git", tmp_path / "remote.git", symlinks=True)
    victim = tmp_path / "victim"
    git(victim, "remote", "set-url", "origin", str(tmp_path / "remote.git"))
    repo = pygit2.Repository(str(victim))
    main_before = repo.references["refs/heads/main"].target
    corrupt(repo, ids)

    errors = []
    for template, stdin in VERBS:
        argv = [arg.format(test=ids["test"]) for arg in template]
        code, out, err = run_verb(victim, argv, stdin.format(head=ids["head"], main=main_before))
        assert TRACEBACK not in err and TRACEBACK not in out, f"{name}: `{' '.join(argv)}`:\n{err}"
        assert code in (0, 1, 2), f"{name}: `{' '.join(argv)}` exited {code}:\n{err}"
        errors.append(err)
    if target.named:
        assert any(target.named in err for err in errors), f"{name}: no verb named {target.named}: {errors}"
    # A merge and its record are one step: main moved (to the run's head) exactly when it is recorded.
    main_after = pygit2.Repository(str(victim)).references["refs/heads/main"].target
    assert main_after in (main_before, ids["head"]), name
    assert (main_after == ids["head"]) == merge_recorded(victim, ids["head"]), name
