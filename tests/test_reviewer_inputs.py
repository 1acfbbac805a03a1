"""A reviewer is shown the same prompt for the same work: wall times of the checks never reach a model.

Found on the demo: review-a saw `"seconds": 0.033` in one run and `0.081` in the next, so two greedy
reviews of one diff were different prompts and could differ in verdict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pantheon_git.agents.builtin import REVIEWER
from pantheon_git.night.executors import agent_executor
from pantheon_git.night.nodes import NodeContext
from pantheon_git.runtime.base import Completion, ModelIdentity, Windowless
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec
from pantheon_git.tools.sandbox import run_sandboxed
from tests.conftest import git


class Recorder(Windowless):
    """The model, faked: this test is about what the model is shown, not what it answers."""

    is_local = True
    identity = ModelIdentity(name="recorder", engine="scripted")

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, prompt: str, **_: Any) -> Completion:
        self.prompts.append(prompt)
        return Completion("", tokens_in=1, tokens_out=0, tokens_evaluated=1, seconds=0.0)


def checks_output(seconds: float) -> dict[str, Any]:
    result = {"command": "pytest -q", "exit_code": 0, "timed_out": False, "seconds": seconds}
    result["log_tail"] = "ok"
    return {"results": [result], "passed": True, "duration_s": seconds}


def first_prompt(repo_dir: Path, seconds: float) -> str:
    model = Recorder()
    review = agent_executor(REVIEWER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, lambda: model)
    base = git(repo_dir, "rev-parse", "HEAD").strip()
    context = NodeContext(
        spec=Spec(id="mul", title="add mul", acceptance=["pytest -q"]),
        task_id="mul",
        attempt=1,
        node_id="review-a",
        agent="reviewer",
        worktree=repo_dir,
        inputs={"test": checks_output(seconds)},
        deadline=time.monotonic() + 60,
        base=base,
    )
    review(context)
    assert model.prompts, "the reviewer never asked the model"
    return model.prompts[0]


def test_two_runs_of_the_same_checks_show_the_reviewer_the_same_prompt(repo_dir: Path) -> None:
    fast, slow = first_prompt(repo_dir, 0.033), first_prompt(repo_dir, 0.081)
    assert "pytest -q" in fast  # the checks are shown ...
    assert "0.033" not in fast and "0.081" not in slow  # ... without their wall time
    assert fast == slow
