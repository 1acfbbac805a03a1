"""`git pantheon gate ID`: re-evaluate the gate over every vote on the task's newest run and record it."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="task id or a unique prefix")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import shown
    from pantheon_git.queue.tasks import load_specs, resolve_newest_run
    from pantheon_git.review.gate import decide, gate_vote, signers_problem
    from pantheon_git.schema.config import load_config
    from pantheon_git.store.git import open_repo, work_tree
    from pantheon_git.store.layout import run_branch
    from pantheon_git.store.logview import log_votes
    from pantheon_git.store.runs import recorded_steps
    from pantheon_git.store.signing import allowed_signers
    from pantheon_git.store.votes import append_votes, read_votes

    repo = open_repo()
    task_id, attempt, head = resolve_newest_run(repo, args.id, "for the gate to judge")
    ref = run_branch(task_id, attempt)
    spec_base = next((s.base for s in load_specs(repo) if s.id == task_id), None)
    signers = allowed_signers(repo, spec_base)
    # Only votes signed by an allowed signer of the base branch count, in their signed order.
    votes = [
        vote
        for _, commit in recorded_steps(repo, ref)
        for vote in read_votes(repo, commit.id, signers=signers)
    ]
    policy = load_config(work_tree(repo)).gate
    decision = decide(policy, votes, trust_problem=signers_problem(signers, spec_base))
    recorded = gate_vote(policy, decision)
    append_votes(repo, head, [recorded])
    log_votes(repo, head, [recorded])  # `git log` shows the new decision under the step
    print(f"gate: {decision.verdict} ({shown('; '.join(decision.reasons))})")
    if decision.verdict == "approve":
        from pantheon_git.review.trust import run_waits

        waits = run_waits(repo, ref, spec_base)  # passed, but merge holds it for a person
        if waits is not None:
            print(f"waits: {shown(waits)}")
    return 0
