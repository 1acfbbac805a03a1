"""CONTRIBUTING.md's recipes ("Adding things") work as written: a verb, a tool, an agent, a flow."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from pantheon_git.agents.calls import CallFormat, render
from tests.conftest import REPO_ROOT, git, pantheon


def test_the_recipes_are_the_ones_documented() -> None:
    text = (REPO_ROOT / "CONTRIBUTING.md").read_text()
    for recipe in ("**A CLI verb**", "**A tool**", "**An agent**", "**A flow**"):
        assert recipe in text


def test_a_new_agent_and_a_new_flow_that_uses_it_are_checked_and_queued(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    made = pantheon(repo_dir, "init", "agent", "fixer")
    assert made.returncode == 0 and (repo_dir / ".pantheon" / "agents" / "fixer.py").is_file(), made.stderr
    flow = pantheon(repo_dir, "init", "flow", "nightly")
    assert flow.returncode == 0, flow.stderr
    path = repo_dir / ".pantheon" / "flows" / "nightly.toml"
    path.write_text(path.read_text().replace('agent = "implementer"', 'agent = "fixer"'))
    assert 'agent = "fixer"' in path.read_text()
    checked = pantheon(repo_dir, "flow", "check", "nightly")
    assert checked.returncode == 0 and "nightly: ok" in checked.stdout, checked.stdout + checked.stderr
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "fixer agent and nightly flow")
    queued = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "nightly")
    assert queued.returncode == 0, queued.stderr
    # A flow naming an agent nobody defined is refused, as the recipe promises `flow check` does.
    path.write_text(path.read_text().replace('agent = "fixer"', 'agent = "ghost"'))
    assert pantheon(repo_dir, "flow", "check", "nightly").returncode == 2


class ShoutArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


def test_a_new_tool_registered_in_tools_is_offered_validated_and_run(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from pantheon_git.agents.builtin import IMPLEMENTER
    from pantheon_git.agents.loop import run_agent
    from pantheon_git.runtime.recorded import ReplayRuntime
    from pantheon_git.tools import builtin
    from pantheon_git.tools.builtin import Tool, ToolContext

    def shout(args: ShoutArgs, ctx: ToolContext) -> str:
        return args.text.upper()

    monkeypatch.setitem(builtin.TOOLS, "shout", Tool("shout", "say it louder", ShoutArgs, shout))
    agent = replace(IMPLEMENTER, tools=(*IMPLEMENTER.tools, "shout"))
    calls = [
        render("shout", {"text": "hello"}, ShoutArgs, CallFormat.CODE),
        render("finish", {"summary": "shouted"}, IMPLEMENTER.output, CallFormat.CODE),
    ]
    task = {"title": "shout", "scope": "", "acceptance": ["true"]}
    run = run_agent(agent, ReplayRuntime(calls), ToolContext(worktree=repo_dir), task, {})
    assert run.ok, run.error
    assert run.turns[0]["result"] == "HELLO"
    assert "shout" in run.header  # the tool is described to the model


def test_a_new_verb_is_one_module_and_one_line_in_verbs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from pantheon_git.cli import main
    from pantheon_git.commands import parser

    module = types.ModuleType("pantheon_git.commands.hello")
    module.add_arguments = lambda p: p.add_argument("--name", default="night")  # type: ignore[attr-defined]
    module.run = lambda args: print(f"hello {args.name}") or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pantheon_git.commands.hello", module)
    monkeypatch.setitem(parser.VERBS, "hello", ("hello", "say hello"))
    assert main(["hello", "--name", "shift"]) == 0
    assert capsys.readouterr().out == "hello shift\n"
