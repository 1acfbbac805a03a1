"""Mining trace notes into a dataset: `git pantheon train dataset` over 10,000 trace notes. Goal ≤ 5 s.

Baseline in the same run: reading the same notes one `git notes show` process at a time (on a sample,
scaled), the way a shell script would.
Run: .venv/bin/python bench/bench_dataset.py [--notes N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

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
    traces: dict[str, NoteUpdate] = {}
    payloads: dict[str, NoteUpdate] = {}
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
            blob = str(repo.create_blob(data))
            payloads[blob] = replace_with(data)
            note = {
                "summary": "s",
                "task": task_id,
                "attempt": 1,
                "agent": agent,
                "ok": True,
                "agent_trace": {"$blob": blob, "bytes": len(data), "json": True},
            }
            traces[str(head)] = replace_with(json.dumps(note).encode())
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

    sample = list(traces)[:100]
    started = time.perf_counter()
    for commit in sample:
        subprocess.run(
            ["git", "notes", "--ref", "pantheon/traces", "show", commit],
            cwd=root,
            capture_output=True,
            check=True,
        )
    per_note = (time.perf_counter() - started) / len(sample)
    scaled = per_note * len(traces)
    print(
        f"one `git notes show` per note: {per_note * 1000:.1f} ms each, {scaled:.1f}s for all "
        f"(just reading, payloads not counted): mining is {scaled / seconds:.1f}x faster"
    )


if __name__ == "__main__":
    main()
