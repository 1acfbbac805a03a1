"""The gate: from the counted votes on a run branch and the repository's policy, may it merge? (pure)

Callers pass only votes that count (store/votes.py `read_votes`: signed by an allowed signer), in the
order of their signed notes commits; the self-chosen `id` of a line decides nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pantheon_git.review.calibration import not_counted
from pantheon_git.schema.config import GatePolicy
from pantheon_git.store.signing import SETUP_HINT, AllowedSigners
from pantheon_git.store.votes import Verdict, Vote, VoteKind


@dataclass(frozen=True, slots=True)
class GateDecision:
    verdict: Verdict  # approve or reject; the gate never abstains
    reasons: list[str]


def latest_per_voter(votes: Iterable[Vote]) -> dict[str, Vote]:
    """Each voter's newest vote, `votes` being in signed order; gate and merge records are not votes."""
    latest: dict[str, Vote] = {}
    for vote in votes:
        if vote.kind == "vote":
            latest[vote.voter] = vote
    return latest


def _fixed_check_reasons(acceptance: Vote) -> list[str]:
    """Why the checks prove nothing: none went from failing on the base commit to passing now."""
    evidence = acceptance.evidence or {}
    if not evidence.get("baseline"):
        return ["no baseline run of the checks on the base commit: cannot tell that any check was fixed"]
    if not evidence.get("fixed"):
        return ["no acceptance check went from failing to passing (every one passes without any change)"]
    return []


def signers_problem(signers: AllowedSigners, base: str | None = None) -> str | None:
    """Why no vote can count here (no allowed signers committed on the base branch), or None."""
    if signers:
        return None
    return f"no allowed signers committed on {base or 'main'}, so no vote can be verified: {SETUP_HINT}"


def decide(policy: GatePolicy, votes: Iterable[Vote], *, trust_problem: str | None = None) -> GateDecision:
    """The verdict; `trust_problem` (from `signers_problem`) makes it a refusal whatever the votes say."""
    if trust_problem is not None:
        return GateDecision(Verdict.REJECT, [trust_problem])
    latest = latest_per_voter(votes)
    # A model reviewer counts only when calibrated above the policy's accuracy (review/calibration.py):
    # its approval is no approval and its rejection no rejection; the decision says it was left out.
    ignored = {
        voter: why
        for voter, vote in latest.items()
        if (why := not_counted(vote, policy.min_reviewer_accuracy))
    }
    latest = {voter: vote for voter, vote in latest.items() if voter not in ignored}
    left_out = (
        [f"not counted: {', '.join(f'{v} ({why})' for v, why in sorted(ignored.items()))}"] if ignored else []
    )
    reasons: list[str] = []
    acceptance = latest.get("acceptance")
    if policy.require_acceptance and (acceptance is None or acceptance.verdict != "approve"):
        reasons.append("acceptance checks " + ("did not run" if acceptance is None else "failed"))
    if policy.require_fixed_check and acceptance is not None and acceptance.verdict == "approve":
        reasons += _fixed_check_reasons(acceptance)
    rejects = sorted(voter for voter, vote in latest.items() if vote.verdict == "reject")
    if policy.any_reject_blocks and rejects:
        reasons.append("rejected by " + ", ".join(rejects))
    approvals = [
        voter for voter, vote in latest.items() if vote.verdict == "approve" and voter != "acceptance"
    ]
    if len(approvals) < policy.min_approvals:
        reasons.append(f"{len(approvals)} of {policy.min_approvals} required approvals")
    if reasons:
        return GateDecision(Verdict.REJECT, reasons + left_out)
    return GateDecision(
        Verdict.APPROVE,
        [f"acceptance passed; approved by {', '.join(sorted(approvals)) or 'nobody needed'}", *left_out],
    )


def gate_vote(policy: GatePolicy, decision: GateDecision) -> Vote:
    """The gate's decision as the vote line recording it (the night's gate node, `git pantheon gate`)."""
    return Vote(
        kind=VoteKind.GATE,
        voter="gate",
        verdict=decision.verdict,
        reasons=decision.reasons,
        evidence={"policy": policy.model_dump()},
    )
