"""The morning report in `git log`: a few human lines per step commit in refs/notes/pantheon/log.

`notes.displayRef` shows this ref, not the JSON traces (about 50 lines a step), so `git log --notes` of a
run branch reads as a report: outcome, agent, model@adapter, tokens, seconds, tool calls, the acceptance
result and the votes. The full trace stays in refs/notes/pantheon/traces for tools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pygit2

from pantheon_git.store.layout import LOG_NOTES
from pantheon_git.store.notes import append_note_lines, set_note
from pantheon_git.store.votes import Vote

LINE_CHARS = 100


def _cut(text: str, limit: int = LINE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def vote_line(votes: Sequence[Vote]) -> str:
    """`votes: reviewer:review-a approve, gate approve (2 approvals)` on one line (pure)."""
    parts = []
    for vote in votes:
        reason = f" ({vote.reasons[0]})" if vote.reasons else ""
        parts.append(f"{vote.voter if vote.kind == 'vote' else vote.kind} {vote.verdict}{reason}")
    return _cut("votes: " + "; ".join(parts))


def step_log(trace: Mapping[str, Any], votes: Sequence[Vote], tool_calls: int | None = None) -> str:
    """The few lines `git log` shows for one step (pure): what ran, on what, what it cost and decided."""
    outcome = "ok" if trace.get("ok", True) else "FAILED"
    parts = [f"{trace.get('node', '?')}: {outcome}", f"agent {trace.get('agent', '?')}"]
    model = str(trace.get("model") or "-")
    if model != "-":
        parts.append(model if "+" in model else f"{model}+base")
    tokens = trace.get("tokens") or {}
    if tokens:
        parts.append(f"{tokens.get('in', 0)}+{tokens.get('out', 0)} tokens")
    parts.append(f"{float(trace.get('duration_s', 0.0)):.1f} s")
    if tool_calls is not None:
        parts.append(f"{tool_calls} tool call{'s' if tool_calls != 1 else ''}")
    lines = [" · ".join(parts)]
    output = trace.get("output") or {}
    results = output.get("results") if isinstance(output, Mapping) else None
    if isinstance(results, list):
        failing = [r.get("command", "?") for r in results if isinstance(r, Mapping) and r.get("exit_code")]
        verdict = "passed" if not failing else "failed: " + "; ".join(failing)
        lines.append(_cut(f"acceptance {len(results) - len(failing)}/{len(results)} {verdict}"))
    if trace.get("error") and not trace.get("ok", True):
        lines.append(_cut(f"error: {trace['error']}"))
    if votes:
        lines.append(vote_line(votes))
    return "\n".join(lines) + "\n"


def count_tool_calls(agent_trace: Mapping[str, Any] | None) -> int | None:
    """Tool calls of an agent's loop (turns that got a result); None for nodes that run no model."""
    if not agent_trace or "turns" not in agent_trace:
        return None
    return sum(1 for turn in agent_trace["turns"] if isinstance(turn, Mapping) and "result" in turn)


def write_step_log(repo: pygit2.Repository, commit: pygit2.Oid, text: str) -> None:
    set_note(repo, LOG_NOTES, commit, text.encode(), f"pantheon: log for {commit}")


def log_votes(repo: pygit2.Repository, commit: pygit2.Oid, votes: Sequence[Vote]) -> None:
    """Votes cast after the step (people, a re-decided gate, a merge) join its log lines."""
    if votes:
        append_note_lines(repo, LOG_NOTES, commit, [vote_line(votes)], "pantheon: log votes")
