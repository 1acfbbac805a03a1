"""`git pantheon show ID`: one task's spec, status, run branches and votes."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="task id, or a unique prefix of one")
    parser.add_argument("--json", action="store_true", help="JSON, for scripts")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.queue.status import task_states
    from pantheon_git.queue.tasks import resolve_id
    from pantheon_git.store.git import open_repo
    from pantheon_git.store.layout import run_branch

    repo = open_repo()
    task_id = resolve_id(repo, args.id)
    state = next((s for s in task_states(repo) if s.id == task_id), None)
    if state is None:
        raise PantheonError(f"task {task_id}: no such task, or its spec is broken (see `git pantheon list`)")
    runs = {attempt: run_branch(task_id, attempt).removeprefix("refs/heads/") for attempt in state.attempts}
    if args.json:
        print(
            json.dumps(
                {
                    "id": task_id,
                    "status": state.status.value,
                    "claimed": state.claimed,
                    "spec": state.spec.model_dump(mode="json", exclude_none=True),
                    "runs": [
                        {"attempt": a, "branch": runs[a], "head": str(state.attempts[a])}
                        for a in sorted(runs)
                    ],
                    "votes": [vote.model_dump(mode="json") for vote in state.votes],
                },
                indent=1,
            )
        )
        return 0
    print(f"task {task_id}: {state.status.value}")
    for attempt in sorted(runs):
        print(f"run  {runs[attempt]} at {str(state.attempts[attempt])[:12]}")
    for vote in state.votes:
        print(
            f"vote {vote.kind} {shown(vote.voter)}: {vote.verdict}"
            + (f" ({shown('; '.join(vote.reasons))})" if vote.reasons else "")
        )
    print()
    # Line by line: the spec's own line breaks stay, any other control character in it is escaped.
    print("\n".join(shown(line) for line in state.spec.to_toml().split("\n")), end="")
    return 0
