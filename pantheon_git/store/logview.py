"""The morning report in `git log`: one human line per step, the step commit's `Pantheon-Log` trailer.

It says how the step went, the agent, model+adapter, tokens, seconds, tool calls, the checks' result and
the step's votes, under the step's subject: with git's own lines that is 9 lines a step, so a six-step run
fits a 60-line screen in plain `git log`, in any clone (a note would cost 3 lines a step, the JSON traces
about 50). Being part of the commit, the line is never missing from a published step, and it is signed
with it. Votes cast after the step (people, a re-decided gate, a merge) join refs/notes/pantheon/log,
which `notes.displayRef` shows under the step. The full trace stays in refs/notes/pantheon/traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pygit2

from pantheon_git.errors import shown
from pantheon_git.store.layout import LOG_NOTES
from pantheon_git.store.notes import append_note_lines
from pantheon_git.store.votes import Vote

LINE_CHARS = 100
LOG_TRAILER = "Pantheon-Log"
# The trailer's value, so its line (indented by `git log`, after the key) stays within about 120 columns.
LOG_CHARS = 100


def _cut(text: str, limit: int = LINE_CHARS) -> str:
    # `git log` prints these lines as they are: a voter's name or a model's reason in them is data, so its
    # control characters are escaped here, before the line is written (and cut to fit after).
    text = shown(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def vote_line(votes: Sequence[Vote]) -> str:
    """`votes: reviewer:review-a approve, gate approve (2 approvals)` on one line (pure)."""
    parts = []
    for vote in votes:
        reason = f" ({vote.reasons[0]})" if vote.reasons else ""
        parts.append(f"{vote.voter if vote.kind == 'vote' else vote.kind} {vote.verdict}{reason}")
    return _cut("votes: " + "; ".join(parts))


def adapter_of(model: str) -> str:
    """The adapter in a model label (`name@sha+<ref>-<blob>.gguf@sha`): its ref (`implementer` or
    `implementer@tests`), or "" when the base model served (pure)."""
    _, plus, adapter = model.partition("+")
    if not plus:
        return ""
    name = adapter.split(".gguf", 1)[0]
    ref, dash, blob = name.rpartition("-")
    ref = ref if dash and len(blob) == 16 else name
    return ref.replace(".", "@", 1) if "." in ref else ref


def _own_votes(votes: Sequence[Vote], trace: Mapping[str, Any], room: int, reasons: bool = True) -> str:
    """The step's votes, `verdict: reason` (the voter named only where it is not the step itself), the
    reasons cut to `room` characters in all; the verdicts are always kept whole."""
    mine = {str(trace.get("agent")), str(trace.get("node")), f"reviewer:{trace.get('node')}"}
    verdicts = [
        ("" if vote.kind == "gate" or vote.voter in mine else f"{vote.voter} ") + vote.verdict
        for vote in votes
    ]
    why = ["; ".join(vote.reasons) if reasons else "" for vote in votes]
    spare = room - len("; ".join(verdicts))
    texts = []
    for verdict, reason in zip(verdicts, why, strict=True):
        if reason and spare >= 8:
            reason = _cut(reason, spare - 2)
            spare -= len(reason) + 2
            verdict = f"{verdict}: {reason}"
        texts.append(verdict)
    return "; ".join(texts)


def step_log(trace: Mapping[str, Any], votes: Sequence[Vote], tool_calls: int | None = None) -> str:
    """The step's Pantheon-Log value (pure, one line): how it went and what it checked and decided, then
    what ran it on which model and what that cost. The votes' reasons are cut to fit the line; a
    failure's error has its own Pantheon-Error trailer."""
    head = ["ok" if trace.get("ok", True) else "FAILED", str(trace.get("agent", "?"))]
    output = trace.get("output") or {}
    results = output.get("results") if isinstance(output, Mapping) else None
    if isinstance(results, list):
        failing = sum(1 for r in results if isinstance(r, Mapping) and r.get("exit_code"))
        head.append(f"checks {len(results) - failing}/{len(results)} passed")
    tail = []
    model = str(trace.get("model") or "-")
    if model != "-":
        # The model's name and the adapter that served, if one did (the trace has the weights' digest).
        adapter = adapter_of(model)
        tail.append(model.partition("+")[0].partition("@")[0] + (f"+{adapter}" if adapter else ""))
    tokens = trace.get("tokens") or {}
    if tokens:
        tail.append(f"{tokens.get('in', 0)}+{tokens.get('out', 0)} tokens")
    tail.append(f"{float(trace.get('duration_s', 0.0)):.1f} s")
    if tool_calls is not None:
        tail.append(f"{tool_calls} tool call{'s' if tool_calls != 1 else ''}")
    if votes:
        room = LOG_CHARS - len(" · ".join(head + tail)) - len(" · ")
        # The checks' line already says why the acceptance voted as it did.
        head.append(_own_votes(votes, trace, room, reasons=not isinstance(results, list)))
    return _cut(" · ".join(head + tail), LOG_CHARS)


def count_tool_calls(agent_trace: Mapping[str, Any] | None) -> int | None:
    """Tool calls of an agent's loop (turns that got a result); None for nodes that run no model."""
    if not agent_trace or "turns" not in agent_trace:
        return None
    return sum(1 for turn in agent_trace["turns"] if isinstance(turn, Mapping) and "result" in turn)


def log_votes(repo: pygit2.Repository, commit: pygit2.Oid, votes: Sequence[Vote]) -> None:
    """Votes cast after the step (people, a re-decided gate, a merge) join its log lines."""
    if votes:
        append_note_lines(repo, LOG_NOTES, commit, [vote_line(votes)], "pantheon: log votes")
