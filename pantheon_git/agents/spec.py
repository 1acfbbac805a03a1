"""An agent spec: what an agent is, as code. Its output model is the schema of its `finish` call."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    version: str
    role: str  # one paragraph: who the agent is and what it must do
    output: type[BaseModel]  # what `finish` must carry; validated before the step is done
    tools: tuple[str, ...] = ("list_files", "read_file", "search")
    model: str = "default"  # a name in .pantheon/models.toml
    examples: tuple[str, ...] = ()  # worked transcripts in the prompt format, shown before the task
    max_iterations: int = 8
    retries: int = 3  # invalid calls or tool errors in a row before the agent gives up
    max_tokens: int = 384  # per turn
    tags: tuple[str, ...] = field(default_factory=tuple)
    call_format: str = "code"  # agents/calls.py CallFormat: "code" (code as plain lines) or "json"
    # What the prompt carries without the agent asking: "files" (those the task or plan names, numbered)
    # and "outline" (the repository's modules and their top-level names), cut to the model's budget.
    context: tuple[str, ...] = ()
    learns_from_past: bool = False  # show the nearest approved past runs of this agent as examples
