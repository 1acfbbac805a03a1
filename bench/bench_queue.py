"""`git pantheon queue` and `git pantheon list` wall time with 10,000 specs already queued.

Whole CLI processes, as a user runs them, against baselines measured in the same run: the same commands
on an empty queue, and a bare `python -c pass` start. Goals: queue ≤ 250 ms, list ≤ 1 s.
The commands run with bytecode caching on (in a scratch PYTHONPYCACHEPREFIX, warmed once), as an installed
package runs; with PYTHONDONTWRITEBYTECODE set every start would compile the package's sources again.
Run: .venv/bin/python bench/bench_queue.py [--specs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import report, scratch_repo, timed, verdict

from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo

IMPORTS = (
    "import os; os.environ['PYDANTIC_DISABLE_PLUGINS'] = '__all__'\n"
    "import pantheon_git.cli, pantheon_git.commands.queue, pantheon_git.queue.tasks, pantheon_git.schema.spec"
)


def cli(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pantheon_git", *args], cwd=root, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the children inherit this environment
    os.environ["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="pantheon-bench-pyc-")

    empty = scratch_repo()
    full = scratch_repo()
    repo = open_repo(full)
    specs = [
        stamp(
            Spec(title=f"task {i}", acceptance=["python -m pytest -q"], scope="x" * 200),
            author="b <b@x>",
            base="main",
        )
        for i in range(args.specs)
    ]
    enqueue(repo, specs)
    print(f"{args.specs} specs queued in {full}\n")

    counter = iter(range(10**9))
    queue_args = ["--acceptance", "true", "--scope", "benchmark"]
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)  # compiles the bytecode once, untimed
    cli(empty, "queue", "--title", "warm-up", *queue_args)
    cli(empty, "list")
    python = report(
        "python -c pass (interpreter start)",
        timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeats),
        "baseline",
    )
    imports = report(
        "imports alone (pygit2, pydantic, the queue verb)",
        timed(lambda: subprocess.run([sys.executable, "-c", IMPORTS], check=True), args.repeats),
        "baseline",
    )
    q_empty = report(
        "git pantheon queue, empty queue",
        timed(lambda: cli(empty, "queue", "--title", f"t{next(counter)}", *queue_args), args.repeats),
        "baseline",
    )
    q_full = report(
        f"git pantheon queue, {args.specs} queued",
        timed(lambda: cli(full, "queue", "--title", f"t{next(counter)}", *queue_args), args.repeats),
        "goal ≤ 250 ms",
    )
    l_empty = report("git pantheon list, small queue", timed(lambda: cli(empty, "list"), 5), "baseline")
    l_full = report(
        f"git pantheon list, {args.specs} queued", timed(lambda: cli(full, "list"), 5), "goal ≤ 1000 ms"
    )
    print()
    print(
        f"queue with {args.specs} specs: {q_full:.0f} ms (goal ≤ 250 ms: {verdict(q_full <= 250)}); "
        f"{q_full / q_empty:.2f}x the empty queue, {q_full / python:.1f}x a bare interpreter start"
    )
    print(f"of the queue's {q_full:.0f} ms, {imports:.0f} ms is importing pygit2 and pydantic first")
    print(
        f"list with {args.specs} specs: {l_full:.0f} ms (goal ≤ 1000 ms: {verdict(l_full <= 1000)}); "
        f"{l_full / l_empty:.1f}x a small queue"
    )


if __name__ == "__main__":
    main()
