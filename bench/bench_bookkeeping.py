"""Per-step bookkeeping: run-branch commit + trace note + vote line, with 10,000 trace notes present.

In-process (pantheon_git: pygit2, fan-out notes, CAS) against the same three writes done with `git`
command-line subprocesses, measured in the same run. Goal: median ≤ 5 ms and ≥ 10× the CLI path.
Run: .venv/bin/python bench/bench_bookkeeping.py [--notes N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import pygit2
from common import report, scratch_repo, timed, verdict

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
    update_notes(repo, TRACES_NOTES, {str(c): replace_with(note) for c in commits}, f"seed {count} notes")


def trace_for(i: int) -> dict[str, object]:
    return {"summary": f"step {i}", "agent": "implementer", "tokens": {"in": 812, "out": 97}, "ms": 1234}


def in_process_step(repo: pygit2.Repository, ref: str, i: int) -> None:
    step = Step(task="bench", step=f"s{i}", agent="implementer", model="gemma3-270m@abc", summary=f"step {i}")
    commit = commit_step(repo, ref, step, changes={"src/out.txt": f"{i}\n".encode()})
    write_trace(repo, commit, trace_for(i))
    append_votes(repo, commit, [Vote(voter="tests", verdict="approve", reasons=[f"step {i}"])])


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
    message = f"s{i}: step {i}\n\nPantheon-Task: bench\nPantheon-Step: s{i}\n"
    commit = git("commit-tree", tree, "-p", parent, "-m", message)
    git("update-ref", ref, commit, parent)
    git("notes", "--ref", "pantheon/traces", "add", "-f", "-m", json.dumps(trace_for(i)), commit)
    vote = Vote(voter="tests", verdict="approve", reasons=[f"step {i}"]).to_line()
    git("notes", "--ref", "pantheon/votes", "append", "-m", vote, commit)


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

    fast_steps = iter(range(10**9))
    fast = timed(lambda: in_process_step(repo, ref, next(fast_steps)), args.steps)
    cli_ref = start_run_branch(repo, "bench", 2, repo.head.target)
    env = {**os.environ, "GIT_INDEX_FILE": str(root / ".git" / "bench-index")}
    cli_steps = iter(range(10**9))
    slow = timed(lambda: cli_step(root, cli_ref, next(cli_steps), env), args.cli_steps)

    fast_median = report("in-process step (commit + trace note + vote)", fast, "goal ≤ 5 ms")
    slow_median = report("git CLI step (same writes, 10 subprocesses)", slow, "baseline")
    ratio = slow_median / fast_median
    print()
    print(f"median in-process step: {fast_median:.2f} ms  (goal ≤ 5 ms: {verdict(fast_median <= 5)})")
    print(f"speed-up over the git CLI path: {ratio:.1f}x  (goal ≥ 10x: {verdict(ratio >= 10)})")
    # Each step writes 12 loose objects (3 blobs, 6 trees, 3 commits) and moves 3 refs: the file system's
    # cost for that is a floor no in-process writer goes under.
    floor = file_create_ms(root / ".git")
    print(f"file create+rename on this disk: {floor:.3f} ms; 15 of them per step: {15 * floor:.2f} ms floor")


if __name__ == "__main__":
    main()
