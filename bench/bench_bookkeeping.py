"""Per-step bookkeeping: run-branch commit + trace note + vote line, with 10,000 trace notes present.

In-process (pantheon_git: pygit2, fan-out notes, CAS) against the same writes done with the git command
line, measured in the same run: the naive path (ten subprocesses a step) and the fastest CLI path that
writes the same objects and moves the same refs each step: one long-lived `git fast-import` fed the step
commit and both notes commits, with a checkpoint per step so the refs are visible when the step is done
(as they are in-process). Goal: median ≤ 5 ms and ≥ 10× the naive CLI path; the fast-import ratio is
reported as measured. The same steps with the secret search switched off, interleaved with the measured
ones, show what redacting every message, trace, vote line and blob costs (by design, since the store
redacts all it writes); no signing key is configured here (bench_signing.py measures that).
Run: .venv/bin/python bench/bench_bookkeeping.py [--notes N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import pygit2
from common import report, scratch_repo, timed, verdict

from pantheon_git.store import git as store_git
from pantheon_git.store import runs, traces, votes
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import TRACES_NOTES
from pantheon_git.store.notes import replace_with, update_notes
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes


def seed_notes(repo: pygit2.Repository, count: int) -> None:
    sig = repo.default_signature
    tree = repo.head.peel(pygit2.Commit).tree_id
    commits = [repo.create_commit(None, sig, sig, f"old step {i}", tree, []) for i in range(count)]
    note = json.dumps({"summary": "old step", "tokens": {"in": 900, "out": 120}}).encode()
    update_notes(repo, TRACES_NOTES, {c: replace_with(note) for c in commits}, f"seed {count} notes")


def trace_for(i: int) -> dict[str, object]:
    return {"summary": f"step {i}", "agent": "implementer", "tokens": {"in": 812, "out": 97}, "ms": 1234}


def in_process_step(repo: pygit2.Repository, ref: str, i: int) -> None:
    step = Step(task="bench", step=f"s{i}", agent="implementer", model="gemma3-270m@abc", summary=f"step {i}")
    commit = commit_step(repo, ref, step, changes={"src/out.txt": f"{i}\n".encode()})
    write_trace(repo, commit, trace_for(i))
    append_votes(repo, commit, [Vote(voter="tests", verdict="approve", reasons=[f"step {i}"])])


@contextmanager
def no_redaction() -> Iterator[None]:
    """Every redaction a step's writes go through, replaced by the identity."""
    with ExitStack() as stack:
        for module, names in (
            (runs, ["redact_all"]),
            (store_git, ["redact", "redact_bytes"]),
            (traces, ["redact_all"]),
            (votes, ["redact_all"]),
        ):
            for name in names:
                stack.enter_context(mock.patch.object(module, name, lambda value: value))
        yield


def interleaved(repo: pygit2.Repository, ref: str, steps: int) -> tuple[list[float], list[float]]:
    """(with redaction, without) step times in ms, alternating one of each so load hits both alike."""
    counter = iter(range(10**9))
    redacted: list[float] = []
    plain: list[float] = []
    for _ in range(steps):
        redacted += timed(lambda: in_process_step(repo, ref, next(counter)), 1)
        with no_redaction():
            plain += timed(lambda: in_process_step(repo, ref, next(counter)), 1)
    return redacted, plain


def cli_step(root: Path, ref: str, i: int, env: dict[str, str]) -> None:
    def git(*args: str, data: str | None = None) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, input=data, capture_output=True, text=True, check=True, env=env
        ).stdout.strip()

    parent = git("rev-parse", ref)
    blob = git("hash-object", "-w", "--stdin", data=f"{i}\n")
    git("read-tree", parent)
    git("update-index", "--add", "--cacheinfo", f"100644,{blob},src/out.txt")
    tree = git("write-tree")
    message = f"s{i}: step {i}\n\nPantheon-Step: s{i} task=bench\n"
    commit = git("commit-tree", tree, "-p", parent, "-m", message)
    git("update-ref", ref, commit, parent)
    git("notes", "--ref", "pantheon/traces", "add", "-f", "-m", json.dumps(trace_for(i)), commit)
    vote = Vote(voter="tests", verdict="approve", reasons=[f"step {i}"]).to_line()
    git("notes", "--ref", "pantheon/votes", "append", "-m", vote, commit)


class FastImport:
    """One `git fast-import` for the whole run; each step = commit + traces note + votes note + checkpoint."""

    def __init__(self, root: Path, ref: str) -> None:
        self.proc = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--force"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.ref = ref
        self.first = True

    @staticmethod
    def _data(text: str) -> bytes:
        raw = text.encode()
        return b"data %d\n" % len(raw) + raw + b"\n"

    def step(self, i: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        who = f"committer Bench <bench@example.com> {int(time.time())} +0000\n".encode()
        message = f"s{i}: step {i}\n\nPantheon-Step: s{i} task=bench\n"
        vote = Vote(voter="tests", verdict="approve", reasons=[f"step {i}"]).to_line() + "\n"
        out = [b"commit %s\nmark :%d\n" % (self.ref.encode(), i + 1), who, self._data(message)]
        if self.first:
            out.append(b"from %s^0\n" % self.ref.encode())
        out += [b"M 100644 inline src/out.txt\n", self._data(f"{i}\n")]
        for notes_ref, text in (
            ("refs/notes/pantheon/traces", json.dumps(trace_for(i))),
            ("refs/notes/pantheon/votes", vote),
        ):
            out += [b"commit %s\n" % notes_ref.encode(), who, self._data("notes")]
            if self.first:
                out.append(b"from %s^0\n" % notes_ref.encode())
            out += [b"N inline :%d\n" % (i + 1), self._data(text)]
        out.append(b"checkpoint\nprogress step %d\n" % i)
        self.first = False
        self.proc.stdin.write(b"".join(out))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()  # the checkpoint is done: packs written, refs moved
        assert line.startswith(b"progress step"), line

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise RuntimeError("git fast-import failed")


def file_create_ms(directory: Path, count: int = 300) -> float:
    """Median cost of what every loose object and ref update pays here: create, write and rename a file."""
    samples = []
    for i in range(count):
        start = time.perf_counter()
        tmp = directory / f"probe-{i}.tmp"
        tmp.write_bytes(b"x" * 64)
        os.rename(tmp, directory / f"probe-{i}")
        samples.append((time.perf_counter() - start) * 1000)
    for i in range(count):
        (directory / f"probe-{i}").unlink()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000, help="trace notes present before measuring")
    parser.add_argument("--steps", type=int, default=200, help="steps measured in-process")
    parser.add_argument("--cli-steps", type=int, default=40, help="steps measured through the git CLI")
    args = parser.parse_args()

    root = scratch_repo()
    repo = open_repo(root)
    seed_notes(repo, args.notes)
    ref = start_run_branch(repo, "bench", 1, repo.head.target)
    print(f"repository {root}: {args.notes} trace notes present\n")

    fast, unredacted = interleaved(repo, ref, args.steps)
    cli_ref = start_run_branch(repo, "bench", 2, repo.head.target)
    env = {**os.environ, "GIT_INDEX_FILE": str(root / ".git" / "bench-index")}
    cli_steps = iter(range(10**9))
    slow = timed(lambda: cli_step(root, cli_ref, next(cli_steps), env), args.cli_steps)

    fi_ref = start_run_branch(repo, "bench", 3, repo.head.target)
    importer = FastImport(root, fi_ref)
    fi_steps = iter(range(10**9))
    fastest_cli = timed(lambda: importer.step(next(fi_steps)), args.cli_steps)
    importer.close()

    fast_median = report("in-process step (commit + trace note + vote)", fast, "goal ≤ 5 ms")
    plain_median = report("the same step, secret search switched off", unredacted, "redaction's share")
    slow_median = report("git CLI step (same writes, 10 subprocesses)", slow, "naive baseline")
    fi_median = report("git fast-import step (same objects, checkpoint per step)", fastest_cli, "fastest CLI")
    ratio = slow_median / fast_median
    print()
    print(f"median in-process step: {fast_median:.2f} ms  (goal ≤ 5 ms: {verdict(fast_median <= 5)})")
    print(f"redaction adds {fast_median - plain_median:.2f} ms a step; without it {plain_median:.2f} ms")
    print(f"speed-up over the naive git CLI path: {ratio:.1f}x  (goal ≥ 10x: {verdict(ratio >= 10)})")
    print(f"speed-up over one long-lived git fast-import: {fi_median / fast_median:.1f}x (as measured)")
    # Each step writes 12 loose objects (3 blobs, 6 trees, 3 commits) and moves 3 refs: the file system's
    # cost for that is a floor no in-process writer goes under.
    floor = file_create_ms(root / ".git")
    print(f"file create+rename on this disk: {floor:.3f} ms; 15 of them per step: {15 * floor:.2f} ms floor")


if __name__ == "__main__":
    main()
