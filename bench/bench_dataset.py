"""Mining trace notes into a dataset: `git pantheon train dataset` over 10,000 trace notes. Goal ≤ 5 s.

Baseline in the same run, the fastest plain-git way to read the same data: one `git notes list` per notes
ref and ONE `git cat-file --batch` process streaming every trace note, the payload blobs they point at and
the votes notes (not one process per note). It only reads; mining also parses, splits and writes.
Run: .venv/bin/python bench/bench_dataset.py [--notes N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

import pygit2
from common import scratch_repo, verdict

from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import PAYLOADS_NOTES, TRACES_NOTES
from pantheon_git.store.notes import NoteUpdate, replace_with, update_notes
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.votes import Vote, append_votes
from pantheon_git.training.dataset import mine, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    root = scratch_repo()
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
        append_votes(
            repo, head, [Vote(kind="gate", voter="gate", verdict="approve" if task % 4 else "reject")]
        )
    update_notes(repo, PAYLOADS_NOTES, payloads, "bench payloads")
    update_notes(repo, TRACES_NOTES, traces, "bench traces")
    made = time.perf_counter() - started
    print(f"{len(traces)} trace notes on {args.tasks} run branches made in {made:.1f}s\n")

    started = time.perf_counter()
    data = mine(open_repo(root), "implementer")
    record(repo, data)
    seconds = time.perf_counter() - started
    print(
        f"mined {len(traces)} trace notes into {len(data.train)} train, {len(data.holdout)} holdout, "
        f"{len(data.negatives)} negative rows in {seconds:.2f}s (goal ≤ 5 s: {verdict(seconds <= 5)})"
    )

    started = time.perf_counter()
    read = batch_read(root)
    baseline = time.perf_counter() - started
    print(
        f"git notes list + one `git cat-file --batch` reading the same {read['traces']} trace notes, "
        f"{read['payloads']} payloads and {read['votes']} votes notes: {baseline:.2f}s; mining (which also "
        f"parses, splits and commits) takes {seconds / baseline:.2f}x that"
    )


def batch_read(root) -> dict[str, int]:
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
        proc.stdin.write("".join(f"{oid}\n" for oid in ids).encode())
        proc.stdin.flush()
        found = []
        for _ in ids:
            header = proc.stdout.readline().split()
            found.append(proc.stdout.read(int(header[2]) + 1)[:-1])
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
