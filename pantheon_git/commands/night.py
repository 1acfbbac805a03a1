"""`git pantheon night`: run every runnable task of the queue, by priority, in night mode (cron runs this)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="progress as JSON lines")


def run(args: argparse.Namespace, ids: list[str] | None = None) -> int:
    from pantheon_git.night.shift import Refused, Skipped, run_tasks
    from pantheon_git.ops.progress import Progress
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    take_over = bool(getattr(args, "take_over", False))
    results = run_tasks(
        repo, work_tree(repo), ids, on_event=Progress(as_json=args.json), take_over_expired=take_over
    )
    ran = [result for result in results if not isinstance(result, Skipped)]
    # A task refused for a bad spec or flow counts as run and failed: someone has to fix its input.
    failed = [result for result in ran if isinstance(result, Refused) or result.outcome == "failed"]
    if not args.json:
        print(f"night done: {len(ran)} run, {len(failed)} failed, {len(results) - len(ran)} skipped")
    return 1 if failed else 0
