"""The morning report: per task its status, branch, gate, votes, acceptance, tokens and time, its
attempts (best-of-N makes several in one night), checks that pass without any change, and a red bin of
failures with their error artifacts and the commands to inspect them. Built from refs and notes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pygit2

from pantheon_git.errors import PantheonError
from pantheon_git.queue.status import Status, TaskState, checked_outcome, task_states
from pantheon_git.review.trust import run_waits
from pantheon_git.store.layout import DATASETS_PREFIX, EVALS_NOTES, run_branch
from pantheon_git.store.logview import adapter_of
from pantheon_git.store.notes import read_note
from pantheon_git.store.runs import misbound_steps, parse_trailers, recorded_steps, unverified_steps
from pantheon_git.store.signing import AllowedSigners, allowed_signers
from pantheon_git.store.traces import read_trace
from pantheon_git.store.votes import recorded_votes


@dataclass(slots=True)
class TaskReport:
    id: str
    title: str
    status: str
    branch: str | None = None
    gate: str | None = None
    gate_reasons: list[str] = field(default_factory=list)
    votes: list[str] = field(default_factory=list)
    acceptance: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    failure: dict[str, Any] | None = None
    claims: str | None = None  # where the night kept its claim: "claims local only" or "remote NAME"
    # Every attempt: {"attempt", "branch", "status", "steps"}; the fields above describe the newest one.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # Checks that passed on the base commit too: they do not test the task.
    untested_checks: list[str] = field(default_factory=list)
    # "<step>: <adapter>" for each step of the newest attempt a LoRA adapter served (its trace's model).
    adapters: list[str] = field(default_factory=list)
    # Why a passed run is not merged unattended ("waits: touches … — needs a person's signed approval").
    waits: str | None = None


UNTESTED = "passes without any change: does not test the task"


def attempt_rows(repo: pygit2.Repository, state: TaskState, signers: AllowedSigners) -> list[dict[str, Any]]:
    """One row per attempt of a task, oldest first: its branch, its outcome from counted votes, its steps."""
    rows = []
    for attempt in sorted(state.attempts):
        ref = run_branch(state.id, attempt)
        outcome, _votes = checked_outcome(repo, state.id, attempt, state.attempts[attempt], signers)
        rows.append(
            {
                "attempt": attempt,
                "branch": ref.removeprefix("refs/heads/"),
                "status": outcome.value,
                "steps": len(recorded_steps(repo, ref)),
            }
        )
    return rows


def parse_since(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)\s*([mhdw])", text.strip())
    if not match:
        raise PantheonError(f"--since {text}: use a span like 90m, 24h, 7d or 2w")
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def task_report(
    repo: pygit2.Repository, state: TaskState, signers: AllowedSigners | None = None
) -> TaskReport:
    """One task's row; gate and votes from counted (signed) votes, the rest listed as ignored."""
    report = TaskReport(state.id, state.spec.title, state.status.value)
    if signers is None:
        signers = allowed_signers(repo, state.spec.base)
    attempt = state.latest_attempt
    if attempt is None:
        return report
    report.attempts = attempt_rows(repo, state, signers)
    ref = run_branch(state.id, attempt)
    report.branch = ref.removeprefix("refs/heads/")
    for _, commit in recorded_steps(repo, ref):
        report.steps += 1
        trace = read_trace(repo, commit.id) or {}
        tokens = trace.get("tokens") or {}
        report.tokens_in += int(tokens.get("in", 0))
        report.tokens_out += int(tokens.get("out", 0))
        report.seconds += float(trace.get("duration_s", 0.0))
        report.claims = (trace.get("policy") or {}).get("claims", report.claims)
        for recorded in recorded_votes(repo, commit.id, signers):
            vote = recorded.vote
            if not recorded.counts:
                report.votes.append(
                    f"{vote.voter}: {vote.verdict} (unverified (ignored): {recorded.trust.value})"
                )
            elif vote.kind == "gate":
                report.gate, report.gate_reasons = vote.verdict, vote.reasons
            elif vote.kind == "vote":
                report.votes.append(f"{vote.voter}: {vote.verdict}")
                if vote.voter == "acceptance":
                    report.acceptance = [
                        {key: result.get(key) for key in ("command", "exit_code", "timed_out")}
                        for result in vote.evidence.get("results", [])
                    ]
                    report.untested_checks = list(vote.evidence.get("passes_at_base", []))
        trailers = parse_trailers(commit.message)
        # The model is in the trace; runs recorded before it left the message carry a Pantheon-Model trailer.
        served = adapter_of(str(trace.get("model") or trailers.get("Pantheon-Model", "")))
        if served:
            report.adapters.append(f"{trailers.get('Pantheon-Step')}: {served}")
        if trailers.get("Pantheon-Outcome") == "failed":
            report.failure = {
                "commit": str(commit.id),
                "step": trailers.get("Pantheon-Step"),
                "error": trace.get("error") or trailers.get("Pantheon-Error"),
                "log_tail": (trace.get("log_tail") or "")[-600:],
                "inspect": [
                    f"git log --notes {report.branch}",
                    f"git show {str(commit.id)[:12]}",
                    f"git notes --ref pantheon/traces show {str(commit.id)[:12]}",
                ],
            }
    if state.status == Status.FAILED and report.failure is None and report.gate == "approve":
        unsigned = unverified_steps(repo, ref, signers)
        if unsigned:
            step, commit, trust = unsigned[0]
            report.failure = {
                "commit": str(commit.id),
                "step": step,
                "error": f"{len(unsigned)} step commit(s) {trust.value}, not by an allowed signer: "
                "the run never counts as passing",
                "inspect": [f"git log --show-signature {report.branch}"],
            }
    if state.status == Status.FAILED and report.failure is None and report.gate == "approve":
        misbound = misbound_steps(repo, ref)
        if misbound:
            report.failure = {
                "commit": str(misbound[0][1].id),
                "step": misbound[0][0],
                "error": f"{misbound[0][2]}: steps count only for the run they were signed for",
                "inspect": [f"git log {report.branch}"],
            }
    if state.status == Status.PASSED:
        waits = run_waits(repo, ref, state.spec.base)
        report.waits = f"waits: {waits}" if waits is not None else None
    if state.status == Status.FAILED and report.failure is None and report.gate == "reject":
        report.failure = {
            "step": "gate",
            "error": "; ".join(report.gate_reasons),
            "inspect": [f"git log --notes {report.branch}"],
        }
    return report


def build_report(repo: pygit2.Repository, since: timedelta | None = None) -> list[TaskReport]:
    """Reports for the tasks touched within `since` (their newest run, or their queueing)."""
    now = datetime.now(UTC)
    signers: dict[str | None, AllowedSigners] = {}
    reports = []
    for state in task_states(repo):
        if since is not None:
            moments = [
                datetime.fromtimestamp(repo.get(head).commit_time, UTC) for head in state.attempts.values()
            ]
            if state.spec.created is not None:
                moments.append(state.spec.created.at)
            if not moments or max(moments) < now - since:
                continue
        if state.spec.base not in signers:
            signers[state.spec.base] = allowed_signers(repo, state.spec.base)
        reports.append(task_report(repo, state, signers[state.spec.base]))
    return reports


def training_outcomes(repo: pygit2.Repository) -> list[dict[str, Any]]:
    """The newest nightly-training outcome of each agent: the note on its dataset ref's tip."""
    found = []
    for ref in sorted(repo.references):
        if not ref.startswith(DATASETS_PREFIX):
            continue
        tip = repo.references[ref].peel(pygit2.Commit)
        note = read_note(repo, EVALS_NOTES, tip.id)
        if note:
            try:
                found.append(json.loads(note))
            except ValueError:
                continue  # not a training outcome: nothing to show
    return found


def render_markdown(
    reports: list[TaskReport], title: str, training: list[dict[str, Any]] | None = None
) -> str:
    lines = [f"# {title}", ""]
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.status] = counts.get(report.status, 0) + 1
    lines.append(", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "no tasks")
    claims = sorted({r.claims for r in reports if r.claims})
    if claims:
        lines += ["", "Claims: " + "; ".join(claims)]
    lines += [
        "",
        "| task | status | attempts | gate | votes | acceptance | tokens in/out | time | branch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        acceptance = ", ".join(f"`{a['command']}` → {a['exit_code']}" for a in r.acceptance) or "–"
        votes = "; ".join(r.votes) or "–"
        attempts = ", ".join(f"#{row['attempt']} {row['status']}" for row in r.attempts) or "–"
        lines.append(
            f"| {r.id}: {r.title} | {r.status} | {attempts} | {r.gate or '–'} | {votes} | {acceptance} "
            f"| {r.tokens_in}/{r.tokens_out} | {r.seconds:.1f}s | {r.branch or '–'} |"
        )
    untested = [r for r in reports if r.untested_checks]
    if untested:
        lines += ["", "## Checks that test nothing", ""]
        for r in untested:
            for command in r.untested_checks:
                lines.append(f"- **{r.id}** `{command}`: {UNTESTED}")
    served = [r for r in reports if r.adapters]
    if served:
        lines += ["", "## Adapters served", ""]
        for r in served:
            lines.append(f"- **{r.id}**: " + "; ".join(r.adapters))
    if training:
        lines += ["", "## Nightly training", ""]
        for outcome in training:
            figures = outcome.get("training") or {}
            cost = figures.get("seconds_per_step_per_1k_tokens")
            lines.append(
                f"- **{outcome.get('agent')}**: {outcome.get('outcome')}: {outcome.get('reason')} "
                f"({outcome.get('rows')} rows, {outcome.get('fixes')} from morning fixes"
                + (f", {cost} s/step per 1k tokens" if cost is not None else "")
                + ")"
            )
    waiting = [r for r in reports if r.waits]
    if waiting:
        lines += ["", "## Waiting for a person", ""]
        lines += [f"- **{r.id}** {r.waits}" for r in waiting]
    failures = [r for r in reports if r.failure]
    if failures:
        lines += ["", "## Red bin", ""]
        for r in failures:
            failure = r.failure or {}
            lines.append(f"- **{r.id}** failed at `{failure.get('step')}`: {failure.get('error')}")
            for command in failure.get("inspect", []):
                lines.append(f"  - `{command}`")
    return "\n".join(lines) + "\n"


def render_json(reports: list[TaskReport]) -> str:
    return json.dumps([asdict(report) for report in reports], indent=1)
