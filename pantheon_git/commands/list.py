"""`git pantheon list`: every task with its status derived from refs and notes."""

from __future__ import annotations

import argparse
import json
import sys

from pantheon_git.queue.status import Status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status", choices=[status.value for status in Status], help="only tasks in this status"
    )
    parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import shown
    from pantheon_git.queue.status import queue_states
    from pantheon_git.store.git import open_repo

    repo = open_repo()
    states, broken_specs = queue_states(repo)
    for broken in broken_specs:  # listed apart: a broken spec has no status to derive
        print(f"git pantheon list: {shown(broken.reason)}", file=sys.stderr)
    if args.status:
        states = [state for state in states if state.status == args.status]
    if args.json:
        rows = [
            {
                "id": state.id,
                "status": state.status.value,
                "priority": state.spec.priority,
                "flow": state.spec.flow,
                "base": state.spec.base,
                "title": state.spec.title,
                "labels": state.spec.labels,
                "attempts": sorted(state.attempts),
            }
            for state in states
        ]
        print(json.dumps(rows, indent=1))
        return 0
    if not states:
        print(
            "no tasks"
            + (f" with status {args.status}" if args.status else "")
            + " (queue one: git pantheon queue)"
        )
        return 0
    for state in states:
        spec = state.spec
        # Titles and flow names are data (a spec may come from another machine): escaped, one row each.
        print(
            f"{shown(state.id):<10} {state.status.value:<9} {spec.priority:>4}  {shown(spec.flow):<10} "
            f"{shown(spec.title)}"
        )
    return 0
