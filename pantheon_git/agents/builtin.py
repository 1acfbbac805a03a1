"""The built-in agents the default flow uses: planner, implementer, reviewer.

Their examples (agents/examples.py) are worked transcripts of real kinds of work in the agent's call
format: a small base model learns the call syntax and the rhythm (look, act, check, finish) from them
far better than from instructions alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pantheon_git.agents.spec import AgentSpec


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field(max_length=1200)
    files: list[str] = Field(default_factory=list, max_length=20)


class Implementation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(max_length=600)


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["approve", "reject"]
    reasons: list[str] = Field(default_factory=list, max_length=8)


PLANNER = AgentSpec(
    name="planner",
    version="2",
    role="You plan a small change to a git repository. Look at the files you need, then finish with a "
    "short plan and the files to change. You change nothing yourself.",
    output=Plan,
    tools=("list_files", "view", "search"),
    max_iterations=5,
    context=("outline", "files"),
)

IMPLEMENTER = AgentSpec(
    name="implementer",
    version="2",
    role="You make a small change to a git repository with the tools. The files of the task are shown "
    "with line numbers: change them with edit (copy the exact old lines into SEARCH), make new files "
    "with create, run the acceptance check, then finish with a one-line summary.",
    output=Implementation,
    tools=("view", "edit", "create", "list_files", "search", "run"),
    max_iterations=8,
    max_tokens=512,
    context=("files", "outline"),
    learns_from_past=True,
)

REVIEWER = AgentSpec(
    name="reviewer",
    version="2",
    role="You review a change made to a git repository for the task below. Read the changed files and "
    "the acceptance results in the inputs, then finish with approve or reject and your reasons.",
    output=Review,
    tools=("list_files", "view", "search"),
    max_iterations=5,
    context=("files",),
)

BUILTIN_AGENTS = {agent.name: agent for agent in (PLANNER, IMPLEMENTER, REVIEWER)}
# Nodes that run no model: the runner executes them itself (stub placement, acceptance checks, the
# deterministic reviewers of review/checks.py, the gate).
RUNNER_NODES = frozenset({"place", "acceptance", "checks", "gate"})
