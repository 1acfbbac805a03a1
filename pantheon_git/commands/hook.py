"""`git pantheon hook pre-push REMOTE URL` (run by the installed hook; reads git's lines on stdin)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=["pre-push"])
    parser.add_argument("remote", nargs="?")
    parser.add_argument("url", nargs="?")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.config import load_config
    from pantheon_git.git import open_repo, work_tree
    from pantheon_git.hooks import pre_push, protected_branches

    repo = open_repo()
    root = work_tree(repo)
    protected = protected_branches(repo, load_config(root).hooks.protected)
    refusals = pre_push(repo, root, sys.stdin.read().splitlines(), protected)
    for line in refusals:
        print(f"pantheon pre-push: refusing {line}", file=sys.stderr)
    if refusals:
        print(
            "pantheon pre-push: merge run branches with `git pantheon merge` once their gate passes",
            file=sys.stderr,
        )
        return 1
    return 0
