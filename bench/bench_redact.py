"""Cost of redaction per trace note: a model step's trace (prompt, 8 turns, log tail) written with and
without the secret search, plus `redact` on a 4 KB test log alone. Goal: ≤ 20 ms added per trace note.
Run: .venv/bin/python bench/bench_redact.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
from unittest import mock

from common import report, scratch_repo, timed, verdict

from pantheon_git.store import notes, traces
from pantheon_git.store.git import open_repo
from pantheon_git.store.redact import redact, redact_all
from pantheon_git.store.runs import Step, commit_step, start_run_branch

LOG = "".join(f"tests/test_mod{i}.py::test_case_{i} PASSED [{i % 100:3d}%]\n" for i in range(80))[:4000]


def step_trace(i: int) -> dict[str, object]:
    """A trace shaped like an implementer step's: the prompt, eight turns, outputs and a log tail."""
    turns = [
        {
            "n": n,
            "completion": json.dumps({"tool": "read_file", "args": {"path": f"src/module_{n}.py"}}),
            "result": "def handler(event):\n    return event['value'] * 2\n" * 12,
            "tokens_in": 900 + n,
            "tokens_out": 40,
            "seconds": 0.8,
        }
        for n in range(8)
    ]
    return {
        "summary": f"step {i}: wrote src/module.py",
        "task": "t1",
        "ok": True,
        "log_tail": LOG,
        "output": {"summary": "added a handler and its test"},
        "agent_trace": {"prompt": "You are the implementer. Tools: ...\n" * 90, "turns": turns},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    repo = open_repo(scratch_repo())
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    commits = [commit_step(repo, ref, Step("t1", f"s{i}", "a", "m", "s")) for i in range(2 * args.repeats)]
    redact(
        "warm up the plugins: password=warmupvalue1"
    )  # imports the plugins once (about 80 ms), as the first note of a night does
    print(f"trace note: {len(str(step_trace(0)))} characters of JSON-like text")
    log_ms = report("redact() on a 4 KB test log", timed(lambda: redact(LOG), args.repeats))
    trace_ms = report(
        "redact_all() on one step trace", timed(lambda: redact_all(step_trace(0)), args.repeats)
    )
    plain = iter(commits[: args.repeats])
    identity = mock.patch.multiple(traces, redact_all=lambda value: value)
    with identity, mock.patch.object(notes, "redact_bytes", lambda data: data):
        without = report(
            "write_trace without redaction",
            timed(
                lambda: traces.write_trace(repo, next(plain), step_trace(1), detail_keys=("agent_trace",)),
                args.repeats,
            ),
        )
    redacted = iter(commits[args.repeats :])
    with_ms = report(
        "write_trace with redaction",
        timed(
            lambda: traces.write_trace(repo, next(redacted), step_trace(2), detail_keys=("agent_trace",)),
            args.repeats,
        ),
    )
    added = with_ms - without
    print(f"added per trace note: {added:.2f} ms (goal ≤ 20 ms): {verdict(added <= 20)}")
    print(f"(4 KB log {log_ms:.2f} ms, trace search {trace_ms:.2f} ms, notes bytes check included)")


if __name__ == "__main__":
    main()
