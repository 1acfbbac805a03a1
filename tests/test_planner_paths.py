"""A planner cannot invent files (issue 26): the paths it views, lists and searches are the worktree's
tracked files and folders, and its plan's files those or the new files the spec names, held by the call
grammar in both call formats. Checked byte by byte with llguidance (no model), and by a planner whose
"model" writes random calls under each turn's grammar on a scratch repository."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import llguidance
import pytest

from pantheon_git.agents import calls
from pantheon_git.agents.builtin import IMPLEMENTER, PLANNER, REVIEWER
from pantheon_git.agents.calls import CallFormat
from pantheon_git.agents.existing import MAX_HELD_PATHS, held_paths, spec_named_files
from pantheon_git.agents.loop import call_grammar, run_agent
from pantheon_git.runtime.base import Completion, ModelIdentity, Windowless
from pantheon_git.tools.builtin import TOOLS, ToolContext
from pantheon_git.tools.paths import ToolError
from tests.conftest import git
from tests.test_grammar_bounds import accepts, sample

TASK: dict[str, Any] = {
    "title": "Add mul(a, b) to calc.py, tested in tests/test_mul.py",
    "acceptance": ["pytest -q tests/test_mul.py"],
}
EXISTING = {"calc.py", "README.md", "pkg/util.py", "pkg/sub/deep.py"}
NEW = {"tests/test_mul.py"}
FOLDERS = {".", "pkg", "pkg/sub"}


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A repository with a few tracked files, an untracked one and a deleted one."""
    path = tmp_path / "scratch"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for name in [*EXISTING, "gone.py"]:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"# {name}\ndef add(a, b):\n    return a + b\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "files")
    (path / "gone.py").unlink()  # tracked but no longer there: not offered
    (path / "untracked.py").write_text("x = 1\n")  # not in the index: not offered
    return path


def _grammar(worktree: Path, call_format: CallFormat) -> str:
    choices = held_paths(worktree, TASK, PLANNER.tools, PLANNER.output)
    assert choices is not None
    tools = [TOOLS[name] for name in PLANNER.tools]
    grammar = call_grammar(tools, PLANNER.output, call_format, None, choices)
    if isinstance(grammar, str):
        return llguidance.LLMatcher.grammar_from_lark(grammar)
    return llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(grammar), defaults={"whitespace_flexible": False}
    )


def _call(call_format: CallFormat, name: str, args: dict[str, Any]) -> str:
    model = PLANNER.output if name == "finish" else TOOLS[name].args
    return calls.render(name, args, model, call_format)


@pytest.mark.parametrize("call_format", list(CallFormat))
def test_the_grammar_offers_only_existing_paths_and_spec_named_new_files(
    scratch: Path, call_format: CallFormat
) -> None:
    grammar = _grammar(scratch, call_format)

    def ok(name: str, args: dict[str, Any]) -> bool:
        return accepts(grammar, _call(call_format, name, args))

    for path in EXISTING:
        assert ok("view", {"path": path}), path
        assert ok("search", {"text": "add", "path": path}), path
    for folder in FOLDERS:
        assert ok("list_files", {"path": folder}), folder
    assert ok("list_files", {})
    for missing in ["src/shapes.py", "gone.py", "untracked.py", "calc", "calc.pyx", "tests/test_mul.py"]:
        assert not ok("view", {"path": missing}), missing
    for garbage in ["src", "PATH:calc.py:5|1", "tests", "../", "/etc", "pkg/"]:
        assert not ok("list_files", {"path": garbage}), garbage
    plan = "Add mul after add in calc.py."
    assert ok("finish", {"plan": plan, "files": ["calc.py", "tests/test_mul.py", "pkg/sub/deep.py"]})
    assert ok("finish", {"plan": plan, "files": []})
    for invented in ["src/shapes.py", "tests/test_shapes.py", "gone.py", "untracked.py"]:
        assert not ok("finish", {"plan": plan, "files": ["calc.py", invented]}), invented


def test_spec_named_files_come_from_files_title_scope_and_acceptance() -> None:
    task = {
        "title": "Add Calculator.scale to calc.py (see docs/calc.md)",
        "scope": "touch ./src/pkg/mod.py only; not /etc/passwd.py or ../up.py",
        "acceptance": ["pytest -q tests/test_calc.py::test_scale", "python -c 'import calc'"],
        "files": ["lib/a.py"],
    }
    assert spec_named_files(task) == [
        "lib/a.py",
        "calc.py",
        "docs/calc.md",
        "src/pkg/mod.py",
        "tests/test_calc.py",
    ]


def test_writers_and_large_or_missing_repositories_are_not_held(scratch: Path, tmp_path: Path) -> None:
    assert held_paths(scratch, TASK, IMPLEMENTER.tools, IMPLEMENTER.output) is None  # it makes files
    review = held_paths(scratch, TASK, REVIEWER.tools, REVIEWER.output)
    assert review is not None and ("finish", "files") not in review  # a review has no file list
    assert held_paths(tmp_path / "nowhere", TASK, PLANNER.tools, PLANNER.output) is None
    big = tmp_path / "big"
    big.mkdir()
    git(big, "init", "-q", "-b", "main")
    for number in range(MAX_HELD_PATHS):
        (big / f"f{number}.py").write_text("")
    git(big, "add", "-A")
    assert held_paths(big, TASK, PLANNER.tools, PLANNER.output) is None  # free strings, as before


class RandomPlanner(Windowless):
    """A "model" that writes a random call under each turn's grammar (llguidance, byte by byte)."""

    is_local = True
    identity = ModelIdentity(name="random", engine="random")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def complete(self, prompt: str, *, schema: Any, max_tokens: int, **_: Any) -> Completion:
        if isinstance(schema, str):
            grammar = llguidance.LLMatcher.grammar_from_lark(schema)
        else:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(schema), defaults={"whitespace_flexible": False}
            )
        text = sample(grammar, self.rng, 600) or ""
        return Completion(
            text=text, tokens_in=len(prompt), tokens_out=len(text), tokens_evaluated=0, seconds=0.0
        )


@pytest.mark.parametrize("call_format", list(CallFormat))
def test_a_planner_never_calls_a_missing_path(scratch: Path, call_format: CallFormat) -> None:
    named: list[tuple[str, str]] = []  # (tool, path) of every valid call that named a path
    for seed in range(12):
        run = run_agent(
            PLANNER, RandomPlanner(seed), ToolContext(worktree=scratch), TASK, {}, call_format=call_format
        )
        for turn in run.turns:
            call = turn.get("call")
            if not call:
                continue
            if "path" in call["args"]:
                named.append((call["tool"], call["args"]["path"]))
            if call["tool"] == "finish":
                named.extend(("finish", path) for path in call["args"]["files"])
    assert len(named) >= 12, named  # enough calls came out to mean something
    for tool, path in named:
        allowed = {
            "view": EXISTING,
            "list_files": FOLDERS,
            "search": EXISTING | FOLDERS,
            "finish": EXISTING | NEW,
        }[tool]
        assert path in allowed, (tool, path)


@pytest.mark.parametrize("path", ["a\x00b.py", "λ" * 150, "pkg/" + "é" * 128])
def test_a_path_the_os_cannot_take_is_refused_not_raised(scratch: Path, path: str) -> None:
    """Found by the random planner before its paths were held: view and list_files raised OSError
    (a name over 255 bytes) or ValueError (a NUL byte) out of the loop instead of answering the model."""
    context = ToolContext(worktree=scratch)
    for name, args in [
        ("view", {"path": path}),
        ("list_files", {"path": path}),
        ("create", {"path": path, "content": ""}),
    ]:
        with pytest.raises(ToolError, match="not a file name"):
            TOOLS[name].function(TOOLS[name].args.model_validate(args), context)
