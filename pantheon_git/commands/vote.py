"""`git pantheon vote ID approve|reject|abstain -m …`: a person's vote on the task's newest run."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="task id or a unique prefix")
    parser.add_argument("verdict", choices=["approve", "reject", "abstain"])
    parser.add_argument("-m", "--message", action="append", default=[], help="a reason (repeatable)")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import shown
    from pantheon_git.queue.tasks import resolve_newest_run
    from pantheon_git.store.git import identity, open_repo
    from pantheon_git.store.layout import run_branch
    from pantheon_git.store.logview import log_votes
    from pantheon_git.store.signing import person_key
    from pantheon_git.store.votes import Vote, append_votes

    repo = open_repo()
    task_id, attempt, head = resolve_newest_run(repo, args.id, "to vote on")
    name, email = identity(repo)
    vote = Vote(voter=f"person:{name} <{email}>", verdict=args.verdict, reasons=args.message)
    key = person_key(repo)
    append_votes(repo, head, [vote], key=key)
    log_votes(repo, head, [vote])  # `git log` shows it under the step it judges
    print(f"voted {args.verdict} on {shown(run_branch(task_id, attempt).removeprefix('refs/heads/'))}")
    if key is None:
        print(
            "warning: no signing key (git config user.signingKey + gpg.format=ssh): the vote is recorded "
            "unsigned and does not count; add your key to .pantheon/allowed_signers on main (SECURITY.md)"
        )
    print(f"re-evaluate the gate with `git pantheon gate {shown(task_id)}`")
    return 0
