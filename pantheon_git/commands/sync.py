"""`git pantheon sync [REMOTE]`: fetch, merge and push tasks, claims, run branches and notes."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "remote", nargs="?", help="default: [sync] remote in .pantheon/config.toml, or origin"
    )


class ProgressLine:
    """git's progress on one terminal line, rewritten in place: "fetch: receiving objects 45% (45/100)"."""

    def __init__(self) -> None:
        self.width = 0

    def __call__(self, verb: str, line: str) -> None:
        text = f"{verb}: {line}"
        sys.stderr.write("\r" + text.ljust(self.width))
        sys.stderr.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.queue.sync import sync
    from pantheon_git.schema.config import load_config
    from pantheon_git.store.git import open_repo, work_tree

    repo = open_repo()
    root = work_tree(repo)
    config = load_config(root)
    remote = args.remote or config.sync.remote
    if remote not in [r.name for r in repo.remotes]:
        raise PantheonError(f"remote {remote}: no such remote (see `git remote -v`)")
    shown_progress = ProgressLine() if sys.stderr.isatty() else None  # as git: progress on a terminal only
    try:
        report = sync(repo, root, remote, push_traces=config.sync.push_traces, on_progress=shown_progress)
    finally:
        if shown_progress is not None:
            shown_progress.close()
    for line in report.merged:
        print(f"merged {line}")
    for line in report.adopted:
        print(f"adopted {shown(line)}")  # ref names from another machine (git allows C1 controls in them)
    for line in report.conflicts:
        print(f"conflict {shown(line)}")  # task ids from another machine's tree
    if report.pushed:
        print(f"pushed to {remote}")
        return 0
    print(f"push to {remote} was rejected ({shown(report.push_error)}); run sync again to merge what arrived")
    return 1
