"""The built-in agents the default flow uses: planner, implementer, reviewer.

Their examples are worked transcripts in our prompt format: a small base model learns the call syntax
and the rhythm (look, act, finish) from them far better than from instructions alone.
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
    version="1",
    role="You plan a small change to a git repository. Look at the files you need, then finish with a "
    "short plan and the files to change. You change nothing yourself.",
    output=Plan,
    tools=("list_files", "read_file", "search"),
    max_iterations=5,
    examples=(
        "Title: Create notes.txt containing the word notes\n"
        "Scope: One new file in the repository root.\n"
        "Acceptance: grep -q notes notes.txt\n"
        'Call: {"tool":"list_files","args":{"path":"."}}\n'
        "Result: README.md\n"
        'Call: {"tool":"finish","args":{"plan":"Write notes.txt with the content notes.",'
        '"files":["notes.txt"]}}',
    ),
)

IMPLEMENTER = AgentSpec(
    name="implementer",
    version="1",
    role="You make a small change to a git repository with the tools: write the files the task needs, "
    "run a check if one is given, then finish with a one-line summary.",
    output=Implementation,
    tools=("write_file", "read_file", "list_files", "search", "run"),
    max_iterations=8,
    examples=(
        "Title: Create notes.txt containing the word notes\n"
        "Scope: One new file in the repository root.\n"
        "Acceptance: grep -q notes notes.txt\n"
        'Inputs: {"plan": {"files": ["notes.txt"], "plan": "Write notes.txt with the content notes."}}\n'
        'Call: {"tool":"write_file","args":{"path":"notes.txt","content":"notes\\n"}}\n'
        "Result: wrote notes.txt (6 bytes, +1 -0 lines)\n"
        'Call: {"tool":"run","args":{"command":"grep -q notes notes.txt","timeout_s":30}}\n'
        "Result: exit 0 after 0.0s\n"
        'Call: {"tool":"finish","args":{"summary":"created notes.txt containing notes"}}',
    ),
)

REVIEWER = AgentSpec(
    name="reviewer",
    version="1",
    role="You review a change made to a git repository for the task below. Read the changed files and "
    "the acceptance results in the inputs, then finish with approve or reject and your reasons.",
    output=Review,
    tools=("list_files", "read_file", "search"),
    max_iterations=5,
    examples=(
        "Title: Create notes.txt containing the word notes\n"
        "Scope: One new file in the repository root.\n"
        "Acceptance: grep -q notes notes.txt\n"
        'Inputs: {"test": {"passed": true}}\n'
        'Call: {"tool":"read_file","args":{"path":"notes.txt"}}\n'
        "Result: notes\n"
        'Call: {"tool":"finish","args":{"verdict":"approve","reasons":["notes.txt contains notes"]}}',
    ),
)

BUILTIN_AGENTS = {agent.name: agent for agent in (PLANNER, IMPLEMENTER, REVIEWER)}
# Nodes that run no model: the runner executes them itself (acceptance checks, the gate).
RUNNER_NODES = frozenset({"acceptance", "gate"})
