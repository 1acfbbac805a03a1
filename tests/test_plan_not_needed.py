"""The plan step asks no model when the task's files hold stubs: stub completion reads no plan.

Measured before the change (README, HumanEval stub tasks): pass@1 6/15 with the plan step and 6/15
without it, 24.2 s a task with it and 13.9 s without. A task with nothing to complete still gets its plan.
"""

from __future__ import annotations

import time
from pathlib import Path

from pantheon_git.agents.builtin import PLANNER
from pantheon_git.night.executors import agent_executor
from pantheon_git.night.nodes import NodeContext
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec
from pantheon_git.tools.sandbox import run_sandboxed
from tests.conftest import git
from tests.test_attack_fifo import Recorder  # the model, faked: whether it is asked is under test

STUB = 'def mul(a, b):\n    """a times b."""\n    raise NotImplementedError\n'


def plan_context(repo_dir: Path, files: list[str], upstream: dict[str, object] | None = None) -> NodeContext:
    base = git(repo_dir, "rev-parse", "HEAD").strip()
    spec = Spec(id="mul", title="add mul", acceptance=["pytest -q"], files=files)
    return NodeContext(
        spec=spec,
        task_id="mul",
        attempt=1,
        node_id="plan",
        agent="planner",
        worktree=repo_dir,
        inputs={},
        deadline=time.monotonic() + 60,
        base=base,
        upstream=dict(upstream or {}),
    )


def commit(repo_dir: Path, name: str, text: str) -> None:
    (repo_dir / name).write_text(text)
    git(repo_dir, "add", name)
    git(repo_dir, "commit", "-q", "-m", f"add {name}")


def test_a_task_with_a_stub_gets_a_plan_without_a_model_call(repo_dir: Path) -> None:
    commit(repo_dir, "calc.py", "def add(a, b):\n    return a + b\n\n\n" + STUB)
    model = Recorder()
    plan = agent_executor(PLANNER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, lambda: model)
    result = plan(plan_context(repo_dir, ["calc.py"]))
    assert model.prompts == []
    assert result.ok and result.output == {"plan": "Complete the stubs: calc.py:mul.", "files": ["calc.py"]}
    assert result.summary == "no plan needed: 1 stub(s) to complete"


def test_a_stub_the_place_step_committed_counts_and_a_task_without_one_is_planned(repo_dir: Path) -> None:
    commit(repo_dir, "calc.py", "def add(a, b):\n    return a + b\n")
    model = Recorder()
    plan = agent_executor(PLANNER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, lambda: model)
    plan(plan_context(repo_dir, ["calc.py"]))
    assert len(model.prompts) >= 1  # nothing to complete: the planner's model is asked
    # The place step put a stub in another module and committed it (the run branch's HEAD).
    commit(repo_dir, "ops.py", STUB)
    placed = {"place": {"placed": [{"path": "ops.py", "function": "mul"}]}}
    asked = len(model.prompts)
    result = plan(plan_context(repo_dir, ["calc.py"], upstream=placed))
    assert len(model.prompts) == asked and result.output["files"] == ["ops.py"]
