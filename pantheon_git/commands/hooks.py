"""`git pantheon hooks install|uninstall`: the pre-push guard of protected branches."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["install", "uninstall"])
    parser.add_argument("--force", action="store_true", help="replace a pre-push hook that is not ours")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.git import open_repo
    from pantheon_git.hooks import install, uninstall

    repo = open_repo()
    if args.action == "install":
        print(f"installed {install(repo, args.force)}")
    else:
        removed = uninstall(repo)
        print(f"removed {removed}" if removed else "no pantheon pre-push hook installed")
    return 0
