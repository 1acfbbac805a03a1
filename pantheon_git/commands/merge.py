"""`git pantheon merge [ID…|--all-passing] [--dry-run]`: merge passing run branches into their base."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID")
    parser.add_argument("--all-passing", action="store_true", help="every task whose gate passed")
    parser.add_argument("--dry-run", action="store_true", help="say what would merge; change nothing")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.queue.status import Status, task_states
    from pantheon_git.queue.tasks import resolve_id
    from pantheon_git.review.merge import MergeResult, merge_task
    from pantheon_git.store.git import open_repo, work_tree

    if bool(args.ids) == args.all_passing:
        raise PantheonError("give task ids or --all-passing (one of the two)")
    repo = open_repo()
    root = work_tree(repo)
    states = {state.id: state for state in task_states(repo)}
    if args.all_passing:
        picked = [state for state in states.values() if state.status == Status.PASSED]
    else:
        picked = []
        for given in args.ids:
            task_id = resolve_id(repo, given)
            if task_id not in states:  # its spec file is there but does not parse: nothing to merge
                raise PantheonError(f"task {shown(task_id)}: its spec is broken (see `git pantheon list`)")
            picked.append(states[task_id])
    if not picked:
        print("nothing passed the gate: nothing to merge")
        return 0
    failures = 0
    for state in picked:
        outcome = merge_task(repo, root, state, dry_run=args.dry_run)
        print(f"{shown(outcome.task_id)}: {outcome.result}: {shown(outcome.detail)}")  # paths, git's words
        failures += outcome.result in (MergeResult.REFUSED, MergeResult.CONFLICT)
        # A run waiting for a person is no failure of the unattended --all-passing, but is of `merge ID`.
        failures += outcome.result == MergeResult.WAITS and not args.all_passing
    return 1 if failures else 0
