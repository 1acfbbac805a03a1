"""Two attempts at once on the real embedded model: one batched engine serves both, and every tool call
they make is held to the loop's grammar (agents/calls.py) through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.registry import agents
from pantheon_git.night.attempt import PlannedNode
from pantheon_git.night.executors import executors_for
from pantheon_git.night.setup import NightSetup, served_models
from pantheon_git.night.shift import run_tasks
from pantheon_git.queue.tasks import enqueue
from pantheon_git.runtime.batched_runtime import BatchedRuntime
from pantheon_git.runtime.llama import runtime_for
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.traces import read_trace
from pantheon_git.tools.sandbox import sandbox_available
from tests.conftest import git

STUBS = {
    "mul": (
        "calc.py",
        'def mul(a, b):\n    """Return the product of a and b."""\n    raise NotImplementedError\n',
    ),
    "add": (
        "plus.py",
        'def add(a, b):\n    """Return the sum of a and b."""\n    raise NotImplementedError\n',
    ),
}
CHECKS = {
    "mul": "python3 -c 'import calc; assert calc.mul(3, 4) == 12'",
    "add": "python3 -c 'import plus; assert plus.add(3, 4) == 7'",
}


@pytest.mark.model
@pytest.mark.skipif(not sandbox_available(), reason="the night runs checks only in its sandbox")
def test_two_jobs_share_one_engine_and_their_tool_calls_hold_to_the_grammar(repo_dir: Path) -> None:
    for path, text in STUBS.values():
        (repo_dir / path).write_text(text)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "stubs")
    repo = open_repo(repo_dir)
    specs = [
        stamp(
            Spec(
                id=task_id,
                title=f"Implement {task_id} in {path}",
                scope=f"{path} has {task_id}(a, b) as a stub: give it its body.",
                files=[path],
                acceptance=[CHECKS[task_id]],
                flow="jobs",
            ),
            author="test <test@localhost>",
            base="main",
        )
        for task_id, (path, _) in STUBS.items()
    ]
    enqueue(repo, specs)
    # What night/setup.py does with --jobs 2: the in-process model is served by the batched engine.
    models = served_models({"default": ModelConfig(bundled="gemma3-270m", n_ctx=2048, n_threads=2)}, 2)
    assert models["default"].engine == "batched"
    nodes = [
        PlannedNode("baseline", "baseline"),
        PlannedNode("implement", "implementer", require_change=True),
        PlannedNode("test", "acceptance", inputs=("implement",)),
        PlannedNode("gate", "gate", inputs=("test",)),
    ]
    used = {"baseline", "implementer", "acceptance", "gate"}
    executors = executors_for(used, agents(repo_dir), models, GatePolicy(min_approvals=0))
    setup = NightSetup(
        policy={"local_only": True},
        remote=None,
        max_tasks=5,
        claim_expiry_minutes=60,
        flow_for=lambda _name, _labels=(): (nodes, executors),
        jobs=2,
    )
    events: list[dict[str, Any]] = []
    results = run_tasks(repo, repo_dir, on_event=events.append, setup=setup)

    assert sorted((run.task_id, run.attempt, run.passed) for run in results) == [
        ("add", 1, True),
        ("mul", 1, True),
    ]
    # Both attempts were in flight at once: the second started before the first was done.
    kinds = [(event["event"], event["task"]) for event in events if event["event"] in ("task", "done")]
    assert sorted(kinds[:2]) == [("task", "add"), ("task", "mul")], kinds
    runtime = runtime_for("default", models["default"])
    assert isinstance(runtime, BatchedRuntime)
    turns = []
    for task_id in STUBS:
        for rev in git(repo_dir, "rev-list", f"main..pantheon/{task_id}/1").split():
            trace = read_trace(repo, rev, expand=True) or {}
            if trace.get("node") != "implement":
                continue
            assert trace["model"] == runtime.identity.label()
            turns += trace["agent_trace"]["turns"]
    assert len(turns) >= 2
    # Every turn is a parsed tool call (the grammar held): an edit or finish, never an error.
    assert all("call" in turn and "error" not in turn for turn in turns), turns
    assert {turn["call"]["tool"] for turn in turns} <= {"edit", "finish", "read_file", "create", "write_file"}
    # Both attempts' completions went through the one engine: as many requests as turns.
    assert runtime.stats.requests == len(turns)


def _lora(path: Path, scale: float) -> Path:
    """A real LoRA adapter GGUF for the embedded model (one layer's FFN gate); B = `scale` everywhere (0:
    served, it changes nothing)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, arch="gemma3")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 16.0)
    writer.add_tensor("blk.0.ffn_gate.weight.lora_a", np.full((8, 640), 0.01, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight.lora_b", np.full((2048, 8), scale, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.model
def test_the_engine_serves_an_adapter_and_refuses_a_bad_one_clearly(tmp_path: Path) -> None:
    from pantheon_git.errors import PantheonError

    config = ModelConfig(bundled="gemma3-270m", n_ctx=1024, n_threads=2, engine="batched", parallel=1)
    zero = _lora(tmp_path / "zero.gguf", 0.0)
    strong = _lora(tmp_path / "strong.gguf", 3.0)
    plain = BatchedRuntime("default", config)
    served = BatchedRuntime("default", config.model_copy(update={"adapter": str(zero)}))
    changed = BatchedRuntime("default", config.model_copy(update={"adapter": str(strong)}))
    try:
        assert served.identity.adapter.startswith("zero.gguf@") and not plain.identity.adapter
        assert served.identity.label().endswith("+" + served.identity.adapter)
        prompt = "def add(a, b):\n"
        texts = [
            runtime.complete(prompt, schema=None, max_tokens=12).text for runtime in (plain, served, changed)
        ]
        assert texts[0] == texts[1] != texts[2], texts  # a zero adapter changes nothing; a real one does
    finally:
        for runtime in (plain, served, changed):
            runtime.close()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF trained on nothing")
    with pytest.raises(PantheonError, match=r"^models\.default\.adapter: .*bad\.gguf is not a LoRA adapter"):
        BatchedRuntime("default", config.model_copy(update={"adapter": str(bad)}))
