"""`git pantheon night`: run every runnable task of the queue, by priority, in night mode (cron runs this)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="progress as JSON lines")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="attempts in flight at once (default 1), each in its own worktree; above 1 every local model "
        "is served by one batched engine that decodes their completions together",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="after the queue: mine, train a LoRA, evaluate it on the held-out tasks, promote it only if "
        "better beyond noise (the next night serves it)",
    )
    parser.add_argument("--train-steps", type=int, default=None, help="LoRA steps for --train (default 60)")
    parser.add_argument("--train-agent", default="implementer", help="the agent --train learns for")


def check_jobs(args: argparse.Namespace) -> None:
    """Refuse a bad --jobs before anything is written."""
    if args.jobs < 1:
        from pantheon_git.errors import PantheonError

        raise PantheonError(f"--jobs: {args.jobs}: must be at least 1")


def run(args: argparse.Namespace) -> int:
    if args.train_steps is not None and args.train_steps < 1:
        from pantheon_git.errors import PantheonError

        raise PantheonError(f"--train-steps: {args.train_steps}: must be at least 1")
    check_jobs(args)
    code = night(None, as_json=args.json, jobs=args.jobs)
    if args.train:
        train(args.train_agent, args.train_steps, as_json=args.json)
    return code


def train(agent: str, steps: int | None, *, as_json: bool) -> None:
    """The nightly trainer, after the queue; its outcome is printed and noted, never the night's exit."""
    import json

    from pantheon_git.store.git import open_repo, work_tree
    from pantheon_git.training.nightly import DEFAULT_STEPS, train_night

    repo = open_repo()
    result = train_night(repo, work_tree(repo), agent, steps=steps or DEFAULT_STEPS)
    if as_json:
        print(
            json.dumps(
                {
                    "event": "training",
                    "agent": agent,
                    "outcome": result.outcome.value,
                    "reason": result.reason,
                    "rows": result.rows,
                    "fixes": result.fixes,
                }
            )
        )
    else:
        from pantheon_git.errors import shown

        print(shown(result.line()))


def night(ids: list[str] | None, *, as_json: bool, take_over: bool = False, jobs: int = 1) -> int:
    """Run the named tasks (None: every runnable one) in night mode, `jobs` attempts at once; exit 1 if
    any failed."""
    from pantheon_git.night.attempt import RunOutcome
    from pantheon_git.night.shift import Refused, Skipped, run_tasks
    from pantheon_git.ops.progress import Progress
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    results = run_tasks(
        repo,
        work_tree(repo),
        ids,
        on_event=Progress(as_json=as_json),
        take_over_expired=take_over,
        jobs=jobs,
    )
    ran = [result for result in results if not isinstance(result, Skipped)]
    # A task refused for a bad spec or flow counts as run and failed: someone has to fix its input.
    failed = [result for result in ran if isinstance(result, Refused) or result.outcome == RunOutcome.FAILED]
    if not as_json:
        print(f"night done: {len(ran)} run, {len(failed)} failed, {len(results) - len(ran)} skipped")
    return 1 if failed else 0
