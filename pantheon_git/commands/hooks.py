"""`git pantheon hooks install|uninstall|pre-push`: the pre-push guard of protected branches.

`pre-push REMOTE URL` is what the installed hook runs; it reads git's ref lines on stdin.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["install", "uninstall", "pre-push"])
    parser.add_argument("remote", nargs="?", help="pre-push: the remote's name (given by git)")
    parser.add_argument("url", nargs="?", help="pre-push: the remote's URL (given by git)")
    parser.add_argument("--force", action="store_true", help="replace a pre-push hook that is not ours")


def run(args: argparse.Namespace) -> int:
    if args.action == "pre-push":
        return guard_push(sys.stdin.read().splitlines())
    from pantheon_git.review.hooks import install, uninstall
    from pantheon_git.store.git import open_repo

    repo = open_repo()
    if args.action == "install":
        print(f"installed {install(repo, args.force)}")
    else:
        removed = uninstall(repo)
        print(f"removed {removed}" if removed else "no pantheon pre-push hook installed")
    return 0


def guard_push(ref_lines: list[str]) -> int:
    """Refuse (exit 1) a push of a protected branch carrying run commits whose gate has not passed."""
    from pantheon_git.errors import shown
    from pantheon_git.review.hooks import pre_push, protected_branches
    from pantheon_git.schema.config import load_config
    from pantheon_git.store.git import open_repo, work_tree

    try:
        repo = open_repo()
        root = work_tree(repo)
        protected = protected_branches(repo, load_config(root).hooks.protected)
        refusals = pre_push(repo, root, ref_lines, protected)
    except Exception as exc:  # fail closed: a guard that cannot decide refuses the push
        print(f"pantheon pre-push: refusing the push, cannot decide: {shown(exc)}", file=sys.stderr)
        return 1
    for line in refusals:
        print(f"pantheon pre-push: refusing {shown(line)}", file=sys.stderr)
    if refusals:
        print(
            "pantheon pre-push: merge run branches with `git pantheon merge` once their gate passes",
            file=sys.stderr,
        )
        return 1
    return 0
