"""Agents on the real embedded model (Gemma 3 270M through llama.cpp), models.toml, local servers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import call_schema, parse_call, run_agent
from pantheon_git.errors import PantheonError
from pantheon_git.runtime.openai_compat import OpenAICompatibleRuntime, evaluated_tokens, url_is_local
from pantheon_git.schema.models import ModelConfig, parse_models
from pantheon_git.tools.builtin import TOOLS, ToolContext
from pantheon_git.tools.sandbox import run_sandboxed
from tests.conftest import completions_server, git

TASK = {
    "title": "Create hello.txt containing the word hello",
    "scope": "Write one new file, hello.txt, in the repository root. Its content: hello",
    "acceptance": ["grep -q hello hello.txt"],
}


@pytest.fixture(scope="module")
def runtime():
    from pantheon_git.runtime.llama import runtime_for

    # 4096: the implementer's prompt carries worked examples and the repository context.
    return runtime_for("default", ModelConfig(bundled="gemma3-270m", n_ctx=4096, n_threads=2))


@pytest.mark.model
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-11-25: with the real-work examples (no longer this very task as the example), "
    "greedy Gemma 270M does not finish it: the CODE format's fenced block runs to max_tokens, the JSON "
    "format runs out of turns (issue 11)",
)
def test_agent_writes_a_file_through_tool_calls_in_a_worktree(
    runtime, repo_dir: Path, tmp_path: Path
) -> None:
    worktree = tmp_path / "wt"
    git(repo_dir, "worktree", "add", "-q", "-b", "agent-test", str(worktree))
    # The tools run in the sandbox the night uses, not the day-mode runner.
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=worktree, sandbox=run_sandboxed), TASK, {})
    assert run.ok, run.error
    assert "hello" in (worktree / "hello.txt").read_text()
    assert IMPLEMENTER.output.model_validate(run.output)
    calls = [turn["call"]["tool"] for turn in run.turns]
    assert calls[0] == "create" and calls[-1] == "finish"
    assert run.turns[0]["completion"].startswith("create path=hello.txt\n```")  # code as code
    assert all(turn.get("error") is None for turn in run.turns)  # constrained decoding: no invalid call
    # KV-cache reuse: after the first turn only the new lines are evaluated.
    assert run.turns[1]["tokens_evaluated"] < run.turns[1]["tokens_in"] / 3
    trace = run.trace(IMPLEMENTER, runtime)
    assert trace["model"]["sha256"] == runtime.identity.sha256 and len(trace["model"]["sha256"]) == 64
    assert subprocess.run(["grep", "-q", "hello", "hello.txt"], cwd=worktree).returncode == 0


@pytest.mark.model
def test_same_prompt_same_output(runtime) -> None:
    schema = call_schema([TOOLS["write_file"]], IMPLEMENTER.output)
    prompt = "Task: write hello.txt\nCall: "
    first = runtime.complete(prompt, schema=schema, max_tokens=160)
    second = runtime.complete(prompt, schema=schema, max_tokens=160)
    # Determinism is the point: the same text, the same stop, the same count (whether this bare prompt
    # ends the call within 160 tokens is the model's business; a valid whole call is tested above).
    assert first.text == second.text and first.text.startswith('{"tool":"write_file"')
    assert (first.finish_reason, first.tokens_out) == (second.finish_reason, second.tokens_out)


def test_invalid_calls_are_explained() -> None:
    tools = {"write_file": TOOLS["write_file"]}
    for text, reason in [
        ("{", "not valid JSON"),
        ('{"tool": "rm", "args": {}}', "unknown tool 'rm'"),
        ('{"tool": "write_file", "args": {"path": 3}}', "write_file: path:"),
        ('{"name": "x"}', 'a call is {"tool"'),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_call(text, tools, IMPLEMENTER.output)


def test_models_toml_errors_name_the_model_and_field() -> None:
    cases = {
        '[models.big]\nengine = "llama.cpp"\n': (
            ":1: models.big: a llama.cpp model needs exactly one of `path` or `bundled`"
        ),
        '[models.big]\npath = "x.gguf"\nn_ctx = "lots"\n': ":3: models.big.n_ctx: input should be a valid",
        '[models.big]\npath = "x.gguf"\ncolour = 1\n': ":3: models.big.colour: unknown field",
        '[models.s]\nengine = "openai-compatible"\n': ":1: models.s: an openai-compatible model needs `url`",
        "[model.x]\n": ": model: unknown table",
    }
    for text, expected in cases.items():
        with pytest.raises(PantheonError) as caught:
            parse_models(text, ".pantheon/models.toml")
        assert str(caught.value).startswith(f".pantheon/models.toml{expected}")


def test_local_is_derived_from_the_url() -> None:
    assert url_is_local("http://127.0.0.1:8080")
    assert url_is_local("http://[::1]:8000/v1")
    assert url_is_local("http://localhost:11434")
    assert url_is_local("unix:///run/llama.sock")
    assert not url_is_local("https://api.openai.com/v1")
    assert not url_is_local("http://10.0.0.5:8080")
    assert not url_is_local("http://my-gpu-box:8080")


def test_prompt_cache_accounting_of_each_server_dialect() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 3}
    assert evaluated_tokens({"usage": usage, "timings": {"prompt_n": 12, "cache_n": 88}}) == 12
    vllm = {**usage, "prompt_tokens_details": {"cached_tokens": 64}}
    assert evaluated_tokens({"usage": vllm}) == 36
    assert evaluated_tokens({"usage": usage}) == 100  # silent server: nothing assumed cached


def test_openai_compatible_runtime_against_a_loopback_server() -> None:
    seen: list[dict[str, Any]] = []
    reply = {
        "choices": [{"text": '{"tool":"finish","args":{"summary":"ok"}}', "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 9},
        # llama-server's own account: 5 of the 7 prompt tokens came from its prompt cache
        "timings": {"prompt_n": 2, "cache_n": 5},
    }
    server = completions_server(reply, seen)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        runtime = OpenAICompatibleRuntime("served", ModelConfig(engine="openai-compatible", url=url))
        assert runtime.is_local
        schema = call_schema([], IMPLEMENTER.output)
        done = runtime.complete("Call: ", schema=schema, max_tokens=32)
        assert done.text.startswith('{"tool":"finish"') and done.tokens_out == 9
        assert (done.tokens_in, done.tokens_evaluated) == (7, 2)
        assert seen[0]["path"] == "/v1/completions" and seen[0]["json_schema"] == schema
        assert seen[0]["temperature"] == 0
    finally:
        server.shutdown()
