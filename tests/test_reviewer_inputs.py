"""A reviewer is shown the same prompt for the same work: wall times of the checks never reach a model;
and a reviewer is one by its role (`AgentSpec.acts_as`), not its name, so a repository's own agent reviews.

Found on the demo: review-a saw `"seconds": 0.033` in one run and `0.081` in the next, so two greedy
reviews of one diff were different prompts and could differ in verdict.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER, PLANNER, REVIEWER
from pantheon_git.agents.registry import agents
from pantheon_git.agents.spec import Role
from pantheon_git.night.executors import agent_executor
from pantheon_git.night.nodes import NodeContext
from pantheon_git.runtime.base import Completion
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec
from pantheon_git.tools.sandbox import run_sandboxed
from tests.conftest import git
from tests.test_attack_fifo import Recorder  # the model, faked: what it is shown is under test


def checks_output(seconds: float) -> dict[str, Any]:
    result = {"command": "pytest -q", "exit_code": 0, "timed_out": False, "seconds": seconds}
    result["log_tail"] = "ok"
    return {"results": [result], "passed": True, "duration_s": seconds}


def review_context(
    repo_dir: Path, base: str, node_id: str, agent: str, inputs: dict[str, Any]
) -> NodeContext:
    """A review node of task `mul` whose run started at `base`."""
    spec = Spec(id="mul", title="add mul", acceptance=["pytest -q"])
    deadline = time.monotonic() + 60
    return NodeContext(
        spec=spec,
        task_id="mul",
        attempt=1,
        node_id=node_id,
        agent=agent,
        worktree=repo_dir,
        inputs=inputs,
        deadline=deadline,
        base=base,
    )


def first_prompt(repo_dir: Path, seconds: float) -> str:
    model = Recorder()
    review = agent_executor(REVIEWER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, lambda: model)
    base = git(repo_dir, "rev-parse", "HEAD").strip()
    review(review_context(repo_dir, base, "review-a", "reviewer", {"test": checks_output(seconds)}))
    assert model.prompts, "the reviewer never asked the model"
    return model.prompts[0]


def test_two_runs_of_the_same_checks_show_the_reviewer_the_same_prompt(repo_dir: Path) -> None:
    fast, slow = first_prompt(repo_dir, 0.033), first_prompt(repo_dir, 0.081)
    assert "pytest -q" in fast  # the checks are shown ...
    assert "0.033" not in fast and "0.081" not in slow  # ... without their wall time
    assert fast == slow


SECURITY_AGENT = """
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pantheon_git.agents.spec import AgentSpec, Role


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["approve", "reject"]
    reasons: list[str] = []


SECURITY = AgentSpec(
    name="security",
    version="1",
    role="You look for secrets and unsafe calls in the change.",
    output=Finding,
    call_format="json",
    acts_as=Role.REVIEWER,
)
"""


class Rejecting(Recorder):
    def complete(self, prompt: str, **_: Any) -> Completion:
        self.prompts.append(prompt)
        text = '{"tool":"finish","args":{"verdict":"reject","reasons":["eval() on input"]}}'
        return Completion(text, tokens_in=1, tokens_out=10, tokens_evaluated=1, seconds=0.0)


def test_a_repository_agent_acting_as_reviewer_is_shown_the_diff_and_votes(repo_dir: Path) -> None:
    (repo_dir / ".pantheon" / "agents").mkdir(parents=True)
    (repo_dir / ".pantheon" / "agents" / "security.py").write_text(SECURITY_AGENT)
    agent = agents(repo_dir)["security"]
    assert agent.acts_as is Role.REVIEWER
    base = git(repo_dir, "rev-parse", "HEAD").strip()
    (repo_dir / "README.md").write_text("sample\nrun: eval(text)\n")
    model = Rejecting()
    review = agent_executor(agent, ModelConfig(bundled="gemma3-270m"), run_sandboxed, lambda: model)
    result = review(review_context(repo_dir, base, "security", "security", {}))
    assert "eval(text)" in model.prompts[0]  # shown the run's diff, as the built-in reviewer is
    assert [(vote.voter, vote.verdict, vote.reasons) for vote in result.votes] == [
        ("reviewer:security", "reject", ["eval() on input"])
    ]


def test_roles_default_by_name_and_a_reviewer_needs_a_verdict() -> None:
    assert (PLANNER.acts_as, IMPLEMENTER.acts_as, REVIEWER.acts_as) == (
        Role.PLANNER,
        Role.IMPLEMENTER,
        Role.REVIEWER,
    )
    mine = replace(IMPLEMENTER, name="doc-writer", acts_as=None)
    assert mine.acts_as is Role.IMPLEMENTER  # any other name implements
    assert replace(REVIEWER, name="second-opinion", acts_as="reviewer").acts_as is Role.REVIEWER  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="agent notes: a reviewer's output needs a verdict field"):
        replace(IMPLEMENTER, name="notes", acts_as=Role.REVIEWER)


FIXER_AGENT = """
from pantheon_git.agents.builtin import IMPLEMENTER
from dataclasses import replace

FIXER = replace(IMPLEMENTER, name="fixer", acts_as=None)
"""
ROLES_FLOW = """\
[[nodes]]
id = "fix"
agent = "fixer"
[[nodes]]
id = "audit"
agent = "security"
inputs = ["fix"]
[[nodes]]
id = "quiet"
agent = "fixer"
inputs = ["audit"]
require_change = false
[[nodes]]
id = "gate"
agent = "gate"
inputs = ["quiet"]
"""


def test_a_repository_implementer_must_change_something_by_its_role_not_its_name(repo_dir: Path) -> None:
    from pantheon_git.night.setup import plan_nodes

    (repo_dir / ".pantheon" / "agents").mkdir(parents=True)
    (repo_dir / ".pantheon" / "agents" / "security.py").write_text(SECURITY_AGENT)
    (repo_dir / ".pantheon" / "agents" / "fixer.py").write_text(FIXER_AGENT)
    (repo_dir / ".pantheon" / "flows").mkdir(parents=True)
    (repo_dir / ".pantheon" / "flows" / "roles.toml").write_text(ROLES_FLOW)
    nodes = {node.id: node.require_change for node in plan_nodes(repo_dir, "roles")}
    assert nodes == {"fix": True, "audit": False, "quiet": False, "gate": False}
