"""`git pantheon cancel ID`: record a cancellation in the queue (the spec and its history stay)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="task id, or a unique prefix of one")
    parser.add_argument("-m", "--message", default="", help="why")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import shown
    from pantheon_git.queue.tasks import cancel, resolve_id
    from pantheon_git.store.git import open_repo, signature

    repo = open_repo()
    task_id = resolve_id(repo, args.id)
    sig = signature(repo)
    cancel(repo, task_id, by=f"{sig.name} <{sig.email}>", reason=args.message)
    print(f"cancelled {shown(task_id)}")
    return 0
