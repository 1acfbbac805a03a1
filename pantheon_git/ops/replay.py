"""Replay a recorded step: the same agent, fed the model outputs from its trace, in a fresh worktree at
the step's parent commit. It shows whether the tools still do what they did, and whether the result is
the same tree the step committed. The commands replayed come from a trace note, which may have arrived
by sync from another machine: they run in the night's sandbox or not at all (no unsandboxed fallback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.agents.calls import CallFormat
from pantheon_git.agents.loop import rebuild_prompt, run_agent
from pantheon_git.agents.registry import agents
from pantheon_git.errors import PantheonError
from pantheon_git.night.worktrees import scratch_worktree
from pantheon_git.runtime.recorded import ReplayRuntime
from pantheon_git.store.runs import worktree_tree
from pantheon_git.store.traces import read_trace
from pantheon_git.tools.builtin import ToolContext, deterministic
from pantheon_git.tools.sandbox import configured_sandbox, require_sandbox


@dataclass(slots=True)
class ReplayReport:
    commit: pygit2.Oid
    agent: str
    turns: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.mismatches


def replay_step(repo: pygit2.Repository, root: Path, commit_ref: str) -> ReplayReport:
    try:
        commit = repo.revparse_single(commit_ref).peel(pygit2.Commit)
    except (KeyError, ValueError):
        raise PantheonError(f"{commit_ref}: not a commit") from None
    require_sandbox()  # before anything is written: no sandbox, no replay
    trace = read_trace(repo, commit.id, expand=True)
    if trace is None:
        raise PantheonError(f"{commit_ref}: has no trace note in refs/notes/pantheon/traces")
    recorded: dict[str, Any] | None = trace.get("agent_trace")
    if not isinstance(recorded, dict) or "turns" not in recorded:
        raise PantheonError(f"{commit_ref}: step {trace.get('node')} ran no model agent; nothing to replay")
    # The trace may come from another machine: a record of another shape is refused, not half-replayed.
    if not isinstance(recorded["turns"], list) or not all(
        isinstance(turn, dict) and isinstance(turn.get("completion"), str) for turn in recorded["turns"]
    ):
        raise PantheonError(f"{commit_ref}: its trace's agent_trace.turns is not a list of model turns")
    agent = agents(root).get(recorded["agent"])
    if agent is None:
        raise PantheonError(f"{commit_ref}: agent {recorded['agent']} is not defined here any more")
    if not commit.parents:
        raise PantheonError(f"{commit_ref}: has no parent to start from")
    turns = recorded["turns"]
    runtime = ReplayRuntime(
        [turn["completion"] for turn in turns],
        [rebuild_prompt(recorded["prompt"], turns, n) for n in range(1, len(turns) + 1)],
        normalize=deterministic,
    )
    report = ReplayReport(commit.id, agent.name, len(turns))
    with scratch_worktree(repo, root, commit.parents[0].id, f"replay/{str(commit.id)[:12]}") as workdir:
        context = ToolContext(worktree=workdir, sandbox=configured_sandbox(root))
        run = run_agent(
            agent,
            runtime,
            context,
            recorded.get("task", {}),
            recorded.get("inputs", {}),
            seed=recorded.get("sampling_seed"),
            # Traces from before the code call format have none and were JSON.
            call_format=CallFormat(recorded.get("call_format", "json")),
            header=recorded["prompt"],
        )
        for index in runtime.prompt_mismatches:
            report.mismatches.append(f"turn {index + 1}: the prompt differs from the recorded one")
        # Only what is deterministic is compared: a command's wall time is not.
        for old, new in zip(turns, run.turns, strict=False):
            if deterministic(old.get("result", "")) != deterministic(new.get("result", "")):
                report.mismatches.append(
                    f"turn {old['n']}: tool result differs: {new.get('result', '')[:120]!r}"
                )
        if len(run.turns) != len(turns):
            report.mismatches.append(f"{len(run.turns)} turns replayed, {len(turns)} recorded")
        if run.output != recorded.get("output"):
            report.mismatches.append("the final output differs")
        if worktree_tree(workdir) != commit.tree_id:
            report.mismatches.append("the files differ from what the step committed")
    return report
