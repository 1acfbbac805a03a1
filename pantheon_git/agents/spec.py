"""An agent spec: what an agent is, as code. Its output model is the schema of its `finish` call.

What the runner does with an agent's step follows its `acts_as` (a `Role`), never its name, so a
repository's own agent can review: a reviewer is shown the run's diff, abstains when it reaches no
verdict, and its verdict is recorded as a review vote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel


class Role(StrEnum):
    """What an agent's step is to the runner."""

    IMPLEMENTER = "implementer"  # changes the worktree (the default)
    PLANNER = "planner"  # reads, plans; its output is the next nodes' input
    REVIEWER = "reviewer"  # votes on the run's diff: its `finish` carries `verdict` (and `reasons`)


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
    # None: the built-in role of that name (so a repository's own `reviewer` still reviews), else implementer.
    acts_as: Role | None = None

    def __post_init__(self) -> None:
        # A string ("reviewer") is taken as its Role; an unknown one is refused when the agent file loads.
        named = {role.value: role for role in Role}.get(self.name, Role.IMPLEMENTER)
        object.__setattr__(self, "acts_as", named if self.acts_as is None else Role(self.acts_as))
        if self.acts_as is Role.REVIEWER and "verdict" not in self.output.model_fields:
            raise ValueError(f"agent {self.name}: a reviewer's output needs a verdict field")
