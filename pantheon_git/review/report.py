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

from pantheon_git.errors import PantheonError, shown, warn_skipped
from pantheon_git.queue.status import Status, TaskState, checked_outcome, task_states
from pantheon_git.review.calibration import shown_calibration
from pantheon_git.review.checks import CHECK_NAMES
from pantheon_git.review.trust import run_waits
from pantheon_git.store.git import lookup, ref_commit
from pantheon_git.store.layout import DATASETS_PREFIX, EVALS_NOTES, run_branch
from pantheon_git.store.logview import adapter_of
from pantheon_git.store.notes import read_note
from pantheon_git.store.runs import misbound_steps, parse_trailers, recorded_steps, unverified_steps
from pantheon_git.store.signing import AllowedSigners, allowed_signers
from pantheon_git.store.traces import read_trace
from pantheon_git.store.votes import Vote, recorded_votes


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


def vote_cell(vote: Vote) -> str:
    """`voter: verdict`, with a model reviewer's calibration (`uncalibrated` ones do not count at the
    gate) and a deterministic reviewer's one-line reason."""
    note = shown_calibration(vote)
    if not note and vote.voter in CHECK_NAMES and vote.reasons:
        reason = str(vote.reasons[0])
        note = reason if len(reason) <= 90 else reason[:89] + "…"
    return f"{vote.voter}: {vote.verdict}" + (f" ({note})" if note else "")


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


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float:
    """A count or a duration from a note; anything else (text, NaN, a table) counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0.0
    return float(min(max(value, -1e15), 1e15))


def _cell(value: Any) -> str:
    """A data string as a markdown table cell: control characters escaped (`shown`), `|` kept in its cell."""
    return shown(value).replace("|", "\\|")


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
        _add_step(report, repo, commit, signers)
    if state.status == Status.PASSED:
        waits = run_waits(repo, ref, state.spec.base)
        report.waits = f"waits: {waits}" if waits is not None else None
    if state.status == Status.FAILED and report.failure is None:
        report.failure = _run_failure(repo, ref, report, signers)
    return report


def _add_step(
    report: TaskReport, repo: pygit2.Repository, commit: pygit2.Commit, signers: AllowedSigners
) -> None:
    """Add one step commit to the task's row: its trace's figures, its votes, its adapter, its failure."""
    report.steps += 1
    trace = read_trace(repo, commit.id) or {}
    # Trace notes may come from another machine: a field of the wrong shape counts as absent.
    tokens = _table(trace.get("tokens"))
    report.tokens_in += int(_number(tokens.get("in")))
    report.tokens_out += int(_number(tokens.get("out")))
    report.seconds += _number(trace.get("duration_s"))
    report.claims = _table(trace.get("policy")).get("claims", report.claims)
    for recorded in recorded_votes(repo, commit.id, signers):
        vote = recorded.vote
        if not recorded.counts:
            ignored = f"unverified (ignored): {recorded.trust.value}"
            report.votes.append(f"{vote.voter}: {vote.verdict} ({ignored})")
        elif vote.kind == "gate":
            report.gate, report.gate_reasons = vote.verdict, vote.reasons
        elif vote.kind == "vote":
            report.votes.append(vote_cell(vote))
            if vote.voter == "acceptance":
                report.acceptance = [
                    {key: result.get(key) for key in ("command", "exit_code", "timed_out")}
                    for result in _list(vote.evidence.get("results"))
                    if isinstance(result, dict)
                ]
                report.untested_checks = [str(item) for item in _list(vote.evidence.get("passes_at_base"))]
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
            "log_tail": str(trace.get("log_tail") or "")[-600:],
            "inspect": [
                f"git log --notes {report.branch}",
                f"git show {str(commit.id)[:12]}",
                f"git notes --ref pantheon/traces show {str(commit.id)[:12]}",
            ],
        }


def _run_failure(
    repo: pygit2.Repository, ref: str, report: TaskReport, signers: AllowedSigners
) -> dict[str, Any] | None:
    """Why a failed run whose steps all succeeded failed: the gate approved but a step is not by an
    allowed signer or was signed for another run, or the gate rejected it (None: none of these)."""
    if report.gate == "approve":
        unsigned = unverified_steps(repo, ref, signers)
        if unsigned:
            step, commit, trust = unsigned[0]
            return {
                "commit": str(commit.id),
                "step": step,
                "error": f"{len(unsigned)} step commit(s) {trust.value}, not by an allowed signer: "
                "the run never counts as passing",
                "inspect": [f"git log --show-signature {report.branch}"],
            }
        misbound = misbound_steps(repo, ref)
        if misbound:
            return {
                "commit": str(misbound[0][1].id),
                "step": misbound[0][0],
                "error": f"{misbound[0][2]}: steps count only for the run they were signed for",
                "inspect": [f"git log {report.branch}"],
            }
    if report.gate == "reject":
        return {
            "step": "gate",
            "error": "; ".join(report.gate_reasons),
            "inspect": [f"git log --notes {report.branch}"],
        }
    return None


def _commit_moment(repo: pygit2.Repository, head: pygit2.Oid) -> datetime:
    """When a run's head was committed; a time no datetime can hold (another machine's) reads as 1970."""
    try:
        return datetime.fromtimestamp(lookup(repo, head, pygit2.Commit).commit_time, UTC)
    except (OverflowError, ValueError, OSError):
        return datetime.fromtimestamp(0, UTC)


def build_report(repo: pygit2.Repository, since: timedelta | None = None) -> list[TaskReport]:
    """Reports for the tasks touched within `since` (their newest run, or their queueing)."""
    now = datetime.now(UTC)
    signers: dict[str | None, AllowedSigners] = {}
    reports = []
    for state in task_states(repo):
        if since is not None:
            moments = [_commit_moment(repo, head) for head in state.attempts.values()]
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
        tip = ref_commit(repo, ref)
        if tip is None:
            continue  # it holds no commit (named on stderr)
        note = read_note(repo, EVALS_NOTES, tip.id)
        if note:
            try:
                outcome = json.loads(note)
            except (ValueError, RecursionError):
                outcome = None
            if not isinstance(outcome, dict):
                warn_skipped(f"{EVALS_NOTES}:{tip.id}", "not a JSON object (a training outcome)")
                continue
            found.append(outcome)
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
    # Every string from data (titles, voters, commands, errors, another machine's notes) goes through
    # `shown`/`_cell`: escapes cannot reach the terminal, nor can one cell hide or fake another's text.
    for r in reports:
        acceptance = (
            ", ".join(f"`{_cell(a['command'])}` → {_cell(a['exit_code'])}" for a in r.acceptance) or "–"
        )
        votes = "; ".join(_cell(vote) for vote in r.votes) or "–"
        attempts = ", ".join(f"#{row['attempt']} {row['status']}" for row in r.attempts) or "–"
        lines.append(
            f"| {_cell(r.id)}: {_cell(r.title)} | {r.status} | {attempts} | {_cell(r.gate or '–')} | {votes} "
            f"| {acceptance} | {r.tokens_in}/{r.tokens_out} | {r.seconds:.1f}s | {_cell(r.branch or '–')} |"
        )
    untested = [r for r in reports if r.untested_checks]
    if untested:
        lines += ["", "## Checks that test nothing", ""]
        for r in untested:
            for command in r.untested_checks:
                lines.append(f"- **{shown(r.id)}** `{shown(command)}`: {UNTESTED}")
    served = [r for r in reports if r.adapters]
    if served:
        lines += ["", "## Adapters served", ""]
        for r in served:
            lines.append(f"- **{shown(r.id)}**: " + "; ".join(shown(adapter) for adapter in r.adapters))
    if training:
        lines += ["", "## Nightly training", ""]
        for outcome in training:
            cost = _table(outcome.get("training")).get("seconds_per_step_per_1k_tokens")
            lines.append(
                f"- **{shown(outcome.get('agent'))}**: {shown(outcome.get('outcome'))}: "
                f"{shown(outcome.get('reason'))} ({shown(outcome.get('rows'))} rows, "
                f"{shown(outcome.get('fixes'))} from morning fixes"
                + (f", {shown(cost)} s/step per 1k tokens" if cost is not None else "")
                + ")"
            )
    waiting = [r for r in reports if r.waits]
    if waiting:
        lines += ["", "## Waiting for a person", ""]
        lines += [f"- **{shown(r.id)}** {shown(r.waits)}" for r in waiting]
    failures = [r for r in reports if r.failure]
    if failures:
        lines += ["", "## Red bin", ""]
        for r in failures:
            failure = r.failure or {}
            lines.append(
                f"- **{shown(r.id)}** failed at `{shown(failure.get('step'))}`: {shown(failure.get('error'))}"
            )
            for command in failure.get("inspect", []):
                lines.append(f"  - `{shown(command)}`")
    return "\n".join(lines) + "\n"


def render_json(reports: list[TaskReport]) -> str:
    return json.dumps([asdict(report) for report in reports], indent=1)
