"""Mining trace notes into a dataset: `git pantheon train dataset` over 10,000 trace notes. Goal ≤ 5 s.

Baseline in the same run, the fastest plain-git way to read the same data: one `git notes list` per notes
ref and ONE `git cat-file --batch` process streaming every trace note, the payload blobs they point at and
the votes notes (not one process per note). It only reads; mining also parses, splits and writes.
The gate votes are signed by a key the base branch allows (votes count only when signed), so mining
verifies 200 votes commits: the first run pays one `ssh-keygen -Y verify` each (by design), a second run
reads the verified-signature cache; both are printed.
Run: .venv/bin/python bench/bench_dataset.py [--notes N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from pathlib import Path

import pygit2
from common import scratch_repo, verdict

from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import PAYLOADS_NOTES, TRACES_NOTES
from pantheon_git.store.notes import NoteUpdate, replace_with, update_notes
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.signing import ALLOWED_SIGNERS, allowed_signers_line, create_key, runner_key_path
from pantheon_git.store.votes import Vote, append_votes
from pantheon_git.training.dataset import mine, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    root = scratch_repo()
    repo = open_repo(root)
    key = allow_a_voting_key(root, repo)
    repo = open_repo(root)
    per_task = args.notes // args.tasks
    traces: dict[pygit2.Oid, NoteUpdate] = {}
    payloads: dict[pygit2.Oid, NoteUpdate] = {}
    started = time.perf_counter()
    for task in range(args.tasks):
        task_id = f"t{task}"
        ref = start_run_branch(repo, task_id, 1, repo.head.target)
        head = None
        for step in range(per_task):
            agent = "implementer" if step % 2 == 0 else "reviewer"
            head = commit_step(repo, ref, Step(task_id, f"s{step}", agent, "m@0", f"step {step}"))
            turns = {
                "prompt": f"### Task\nTitle: task {task}\n",
                "turns": [
                    {
                        "n": 1,
                        "completion": json.dumps(
                            {"tool": "write_file", "args": {"path": f"f{step}.py", "content": "x" * 40}}
                        ),
                        "result": "wrote",
                    }
                ],
            }
            data = json.dumps(turns).encode()
            blob = repo.create_blob(data)
            payloads[blob] = replace_with(data)
            note = {
                "summary": "s",
                "task": task_id,
                "attempt": 1,
                "agent": agent,
                "ok": True,
                "agent_trace": {"$blob": str(blob), "bytes": len(data), "json": True},
            }
            traces[head] = replace_with(json.dumps(note).encode())
        assert head is not None
        gate = Vote(kind="gate", voter="gate", verdict="approve" if task % 4 else "reject")
        append_votes(repo, head, [gate], key=key)
    update_notes(repo, PAYLOADS_NOTES, payloads, "bench payloads")
    update_notes(repo, TRACES_NOTES, traces, "bench traces")
    made = time.perf_counter() - started
    print(f"{len(traces)} trace notes on {args.tasks} run branches made in {made:.1f}s\n")

    started = time.perf_counter()
    data = mine(open_repo(root), "implementer")
    record(repo, data)
    cold = time.perf_counter() - started
    print(
        f"mined {len(traces)} trace notes into {len(data.train)} train, {len(data.holdout)} holdout, "
        f"{len(data.negatives)} negative rows in {cold:.2f}s, verifying {args.tasks} signed votes commits"
    )
    started = time.perf_counter()
    again = mine(open_repo(root), "implementer")
    record(repo, again)
    seconds = time.perf_counter() - started
    assert len(again.train) == len(data.train)
    print(f"mined again, signatures already verified: {seconds:.2f}s (goal ≤ 5 s: {verdict(seconds <= 5)})")

    started = time.perf_counter()
    read = batch_read(root)
    baseline = time.perf_counter() - started
    print(
        f"git notes list + one `git cat-file --batch` reading the same {read['traces']} trace notes, "
        f"{read['payloads']} payloads and {read['votes']} votes notes: {baseline:.2f}s; mining (which also "
        f"parses, splits and commits) takes {seconds / baseline:.2f}x that"
    )


def allow_a_voting_key(root: Path, repo: pygit2.Repository) -> str:
    """A key the base branch allows, passed to the gate's votes only: step commits stay unsigned, as
    mining never checks them (signing 10,000 steps would cost minutes of ssh-keygen, not mining)."""
    key = runner_key_path(repo)
    public = create_key(key, "bench")
    (root / ALLOWED_SIGNERS).parent.mkdir(parents=True, exist_ok=True)
    (root / ALLOWED_SIGNERS).write_text(allowed_signers_line("bench", public) + "\n")
    git = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "add", ALLOWED_SIGNERS], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "allow the bench key"], cwd=root, check=True)
    return str(key)


def batch_read(root: Path) -> dict[str, int]:
    """Read every trace note, its payload blob and every votes note through one cat-file --batch."""

    def listing(ref: str) -> list[str]:
        out = subprocess.run(
            ["git", "notes", "--ref", ref, "list"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        return [line.split()[0] for line in out.splitlines()]

    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None

    def fetch(ids: list[str]) -> list[bytes]:
        def feed() -> None:
            proc.stdin.write("".join(f"{oid}\n" for oid in ids).encode())
            proc.stdin.flush()

        # Fed from a thread: written whole before reading, 10,000 ids fill both pipes and deadlock.
        writer = threading.Thread(target=feed)
        writer.start()
        found = []
        for _ in ids:
            header = proc.stdout.readline().split()
            found.append(proc.stdout.read(int(header[2]) + 1)[:-1])
        writer.join()
        return found

    notes = fetch(listing("pantheon/traces"))
    payload_ids = []
    for data in notes:
        trace = json.loads(data)
        ref = trace.get("agent_trace")
        if isinstance(ref, dict) and "$blob" in ref:
            payload_ids.append(ref["$blob"])
    payloads = fetch(payload_ids)
    for data in payloads:
        json.loads(data)
    votes = fetch(listing("pantheon/votes"))
    proc.stdin.close()
    proc.wait()
    return {"traces": len(notes), "payloads": len(payloads), "votes": len(votes)}


if __name__ == "__main__":
    main()
