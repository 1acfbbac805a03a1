"""`git pantheon night`: run every runnable task of the queue, by priority, in night mode (cron runs this)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="progress as JSON lines")


def run(args: argparse.Namespace) -> int:
    return night(None, as_json=args.json)


def night(ids: list[str] | None, *, as_json: bool, take_over: bool = False) -> int:
    """Run the named tasks (None: every runnable one) in night mode; exit 1 if any failed."""
    from pantheon_git.night.shift import Refused, Skipped, run_tasks
    from pantheon_git.ops.progress import Progress
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    results = run_tasks(
        repo, work_tree(repo), ids, on_event=Progress(as_json=as_json), take_over_expired=take_over
    )
    ran = [result for result in results if not isinstance(result, Skipped)]
    # A task refused for a bad spec or flow counts as run and failed: someone has to fix its input.
    failed = [result for result in ran if isinstance(result, Refused) or result.outcome == "failed"]
    if not as_json:
        print(f"night done: {len(ran)} run, {len(failed)} failed, {len(results) - len(ran)} skipped")
    return 1 if failed else 0
