"""The runtime contract: every runtime implements `Runtime` whole, the loop reads nothing else of one and
recognises a prompt too long for the window by its type. The batched runtime, which serves every night
with `--jobs` above 1, fits a long file's prompts to its window as the one-at-a-time runtime does."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import run_agent
from pantheon_git.runtime.base import (
    Completion,
    ContextOverflow,
    ModelIdentity,
    Runtime,
    Windowless,
    completion_budget,
)
from pantheon_git.runtime.openai_compat import OpenAICompatibleRuntime, overflow
from pantheon_git.runtime.recorded import ReplayRuntime
from pantheon_git.schema.models import DEFAULT_MODELS, ModelConfig
from pantheon_git.tools.builtin import ToolContext

LOOP = Path(__file__).parents[1] / "pantheon_git" / "agents" / "loop.py"
MEMBERS = sorted(name for name in vars(Runtime) if not name.startswith("_"))
CLOSE = (
    "\ndef has_close_elements(numbers, threshold):\n"
    '    """Check if any two numbers are closer to each other than threshold."""\n'
)
HELPERS = "".join(f"def helper_{n}(x):\n    return x + {n}\n\n\n" for n in range(300))
FAILURE = "Traceback (most recent call last):\n" + "noise\n" * 2000 + "AssertionError: expected True\n"
TASK = {"title": "t", "scope": "", "acceptance": ["python3 check.py"], "files": ["p.py"]}


def test_the_protocol_names_every_member_the_loop_uses() -> None:
    assert MEMBERS == [
        "chat",
        "complete",
        "context_tokens",
        "context_window",
        "count_tokens",
        "identity",
        "is_local",
    ]


def test_the_loop_reads_no_runtime_member_by_name() -> None:
    tree = ast.parse(LOOP.read_text())
    dynamic = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr")
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "runtime"
    ]
    assert dynamic == []


@pytest.mark.parametrize(
    "runtime",
    [
        ReplayRuntime([]),
        OpenAICompatibleRuntime("served", ModelConfig(engine="openai-compatible", url="http://127.0.0.1:1")),
    ],
    ids=["replay", "openai-compatible"],
)
def test_runtimes_without_a_model_here_implement_all_of_it(runtime: Runtime) -> None:
    assert all(hasattr(runtime, name) for name in MEMBERS)
    assert runtime.context_window is None and runtime.chat is None
    assert runtime.count_tokens("x" * 30) == 11  # by estimate: no tokenizer here


def test_a_server_that_refuses_a_long_prompt_is_a_context_overflow() -> None:
    refusal = {
        "error": {
            "code": 400,
            "message": "request (4476 tokens) exceeds the available context size (4096 tokens)",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 4476,
            "n_ctx": 4096,
        }
    }
    found = overflow(400, json.dumps(refusal).encode())
    assert isinstance(found, ContextOverflow) and (found.prompt_tokens, found.window) == (4476, 4096)
    other = {"error": {"code": 400, "message": "bad json_schema", "type": "invalid_request_error"}}
    assert overflow(400, json.dumps(other).encode()) is None
    assert overflow(500, b"not json") is None and overflow(400, b"[]") is None


def test_the_budget_rule_cuts_max_tokens_and_refuses_a_full_window() -> None:
    assert completion_budget(100, 512, 1024) == 512
    assert completion_budget(900, 512, 1024) == 124
    with pytest.raises(ContextOverflow, match="prompt: 1024 tokens exceed the context window of 1024"):
        completion_budget(1024, 1, 1024)


class Overflowing(Windowless):
    """Refuses every prompt as too long (as a runtime whose own count disagrees with the loop's)."""

    is_local = True
    identity = ModelIdentity(name="overflowing", engine="scripted")

    def complete(self, prompt: str, **_: Any) -> Completion:
        raise ContextOverflow(5000, 4096)


def test_the_loop_ends_a_run_on_a_context_overflow_by_its_type(tmp_path: Path) -> None:
    task = {"title": "t", "scope": "", "acceptance": ["true"], "files": []}
    run = run_agent(IMPLEMENTER, Overflowing(), ToolContext(worktree=tmp_path), task, {})
    assert not run.ok and run.error is not None
    assert "no longer fits" in run.error and "5000 tokens exceed the context window of 4096" in run.error


def _served_as_jobs_2(n_ctx: int) -> Runtime:
    """The embedded model as `git pantheon night --jobs 2` serves it: the batched runtime."""
    from pantheon_git.night.setup import served_models
    from pantheon_git.runtime.batched_runtime import BatchedRuntime
    from pantheon_git.runtime.llama import runtime_for

    config = served_models({"default": DEFAULT_MODELS["default"].model_copy(update={"n_ctx": n_ctx})}, 2)
    runtime = runtime_for("default", config["default"])
    assert isinstance(runtime, BatchedRuntime) and runtime.context_window == n_ctx
    return runtime


@pytest.mark.model
def test_a_long_file_task_on_the_batched_runtime_fits_every_prompt_to_the_window(tmp_path: Path) -> None:
    window = 1024
    runtime = _served_as_jobs_2(window)
    # One turn of a few tokens is enough: the prompt is fitted (or not) before anything is decoded.
    agent = dataclasses.replace(IMPLEMENTER, max_iterations=1, max_tokens=64)
    # The stub at the end of a long file: the nearest code is kept, the top is cut.
    (tmp_path / "p.py").write_text(HELPERS + CLOSE + "    raise NotImplementedError\n")
    run = run_agent(agent, runtime, ToolContext(worktree=tmp_path), TASK, {})
    # A repair round of the same function: the checks' output is cut, not the window overrun.
    (tmp_path / "p.py").write_text(HELPERS + CLOSE + "    return False\n")
    failed = [{"command": "python3 check.py", "exit_code": 1, "output": FAILURE}]
    functions = [{"path": "p.py", "function": "has_close_elements"}]
    repair = {"round": 1, "instruction": "fix it", "failed_checks": failed, "functions": functions}
    repaired = run_agent(agent, runtime, ToolContext(worktree=tmp_path), TASK, {"repair": repair})
    for done in (run, repaired):
        assert "no longer fits" not in str(done.error), done.error
        prompt = done.turns[0]["stub"]["prompt"]
        assert prompt.endswith(CLOSE[CLOSE.index("def ") :]) and "helper_0(" not in prompt
        assert runtime.count_tokens(prompt) + agent.max_tokens <= window
        assert all(turn["tokens_in"] + turn["tokens_out"] <= window for turn in done.turns)
    assert "AssertionError: expected True" in repaired.turns[0]["stub"]["prompt"]
