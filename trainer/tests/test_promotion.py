"""The promotion gate on the real model: a worse adapter is refused; a promoted one is what runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "T"],
        ["config", "user.email", "t@x"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    # A stub the embedded model completes (agents/stubs.py): the base model passes this task.
    (repo / "calc.py").write_text(
        'def mul(a, b):\n    """Return the product of a and b."""\n    raise NotImplementedError\n'
    )
    for args in (["add", "calc.py"], ["commit", "-q", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    queued = subprocess.run(
        [
            sys.executable,
            "-m",
            "pantheon_git",
            "queue",
            "--id",
            "mul",
            "--title",
            "Implement mul in calc.py",
            "--file",
            "calc.py",
            "--acceptance",
            "python3 -c 'import calc; assert calc.mul(3, 4) == 12'",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert queued.returncode == 0, queued.stderr
    return repo


def test_a_worse_adapter_is_refused_and_a_promoted_one_is_served(
    trained: dict[str, Any], sample_repo: Path
) -> None:
    from pantheon_git.errors import PantheonError
    from pantheon_git.night.nodes import NodeContext
    from pantheon_git.runtime.adapters import promoted_adapter
    from pantheon_git.store.git import open_repo
    from pantheon_git.training.promote import Evaluation, evaluate, promote

    repo = open_repo(sample_repo)
    base = evaluate(repo, sample_repo, "implementer", None, ["mul"])
    candidate = evaluate(repo, sample_repo, "implementer", trained["gguf"], ["mul"])
    assert base.passed == ["mul"]  # the base model does this one
    assert candidate.passed == []  # the secret-word adapter finishes without writing anything
    with pytest.raises(PantheonError, match="adapter not promoted: it passed 0/1 held-out tasks"):
        promote(repo, "implementer", trained["gguf"], candidate, base)
    assert promoted_adapter(repo, "implementer") is None

    # Promoted anyway (on made-up scores): the runner's executor now serves it.
    promote(
        repo,
        "implementer",
        trained["gguf"],
        Evaluation("x", ["mul"], ["mul"]),
        Evaluation("b", ["mul"]),
    )
    served = promoted_adapter(repo, "implementer")
    assert served is not None and served.read_bytes() == trained["gguf"].read_bytes()
    from pantheon_git.agents.builtin import BUILTIN_AGENTS
    from pantheon_git.night.executors import executors_for
    from pantheon_git.queue.tasks import load_specs
    from pantheon_git.schema.config import GatePolicy
    from pantheon_git.schema.models import DEFAULT_MODELS
    from pantheon_git.tools.sandbox import run_sandboxed

    executors = executors_for(
        {"implementer"},
        BUILTIN_AGENTS,
        DEFAULT_MODELS,
        GatePolicy(),
        sandbox=run_sandboxed,  # the night's sandbox, as the runner would use
        adapters={"implementer": served},
    )
    context = NodeContext(
        spec=load_specs(repo)[0],
        task_id="mul",
        attempt=1,
        node_id="implement",
        agent="implementer",
        worktree=sample_repo,
        inputs={},
        deadline=time.monotonic() + 300,
    )
    result = executors["implementer"](context)
    assert result.trace["model"]["adapter"].startswith(served.name)  # recorded in the trace…
    assert result.model.endswith("+" + result.trace["model"]["adapter"])  # …and the model label
