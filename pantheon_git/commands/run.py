"""`git pantheon run ID…`: run the named tasks now, in night mode, exactly as the night would."""

from __future__ import annotations

import argparse

from pantheon_git.commands import night


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="+", metavar="ID", help="task ids (or unique prefixes)")
    parser.add_argument(
        "--take-over", action="store_true", help="take over claims whose runner stopped heartbeating"
    )
    night.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pantheon_git.queue.tasks import resolve_id
    from pantheon_git.store.git import open_repo

    night.check_jobs(args)
    repo = open_repo()
    ids = [resolve_id(repo, given) for given in args.ids]
    return night.night(ids, as_json=args.json, take_over=args.take_over, jobs=args.jobs)
