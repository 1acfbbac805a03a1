"""`git pantheon replay COMMIT`: re-run a step from its trace; exit 0 if it reproduces, 1 if not."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("commit", help="a step commit on a run branch")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import shown
    from pantheon_git.ops.replay import replay_step
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    report = replay_step(repo, work_tree(repo), args.commit)
    short = str(report.commit)[:12]
    if report.matches:
        print(
            f"{short}: {shown(report.agent)}, {report.turns} turns replayed: every tool result, the "
            "output and the files match"
        )
        return 0
    print(f"{short}: {shown(report.agent)}: does not reproduce")
    for line in report.mismatches:
        print(f"  {shown(line)}")
    return 1
