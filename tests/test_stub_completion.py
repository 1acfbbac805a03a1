"""A stub in a file the task names is completed as code, in place: the model writes only the body.

The 270M model copied `raise NotImplementedError` back into every edit it was asked to write inside the
agent transcript; completing the body from the file itself (as raw completion does) writes real code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.calls import CallFormat, body_grammar, render
from pantheon_git.agents.loop import rebuild_prompt, run_agent
from pantheon_git.agents.stubs import find_stub
from pantheon_git.runtime.recorded import ReplayRuntime
from pantheon_git.tools.builtin import ToolContext

CALC = (
    'def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    """Return a times b."""\n'
    "    raise NotImplementedError\n"
)
TASK = {"title": "Implement mul", "scope": "", "acceptance": ["true"], "files": ["calc.py"]}


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ('    """doc"""\n', "f"),
        ('    """doc"""\n    pass\n', "f"),
        ("    ...\n", "f"),
        ("    raise NotImplementedError()\n", "f"),
    ],
)
def test_stubs_are_found_with_their_head(body: str, name: str) -> None:
    stub = find_stub(f"import os\n\n\ndef {name}(x):\n{body}")
    assert stub is not None and stub.name == name
    assert stub.prefix.endswith(stub.head) and stub.head.startswith(f"def {name}(x):")


def test_a_function_with_a_body_is_no_stub() -> None:
    assert find_stub("def f(x):\n    return x\n") is None
    assert find_stub("def broken(:\n") is None


def test_the_body_grammar_is_valid_and_refuses_the_placeholder() -> None:
    import llguidance

    grammar = llguidance.LLMatcher.grammar_from_lark(body_grammar())
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""  # no error
    assert "raise NotImplemented" in body_grammar()  # the copied placeholder is excluded


def test_the_loop_makes_the_edit_from_a_completed_body(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC)
    # What the model writes at the stub: a body, then the first character of the next statement.
    completions = [
        "    return a * b\n\n\nd",
        render("finish", {"summary": "mul"}, IMPLEMENTER.output, CallFormat.CODE),
    ]
    runtime = ReplayRuntime(completions)
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=tmp_path), TASK, {})
    assert run.ok, run.error
    assert run.turns[0]["stub"]["path"] == "calc.py" and run.turns[0]["stub"]["function"] == "mul"
    assert (
        rebuild_prompt(run.header, run.turns, 1)
        == run.turns[0]["stub"]["prompt"]
        == CALC[: CALC.index("    raise")]
    )
    assert run.turns[0]["completion"].startswith("edit path=calc.py")
    text = (tmp_path / "calc.py").read_text()
    assert "raise NotImplementedError" not in text and "    return a * b\n" in text
    assert text.startswith("def add(a, b):\n    return a + b\n")
    check = "import calc; assert calc.mul(3, 4) == 12"
    assert subprocess.run([sys.executable, "-c", check], cwd=tmp_path).returncode == 0


def test_a_filled_stub_ends_the_step_and_the_checks_judge_next(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC)
    run = run_agent(
        IMPLEMENTER, ReplayRuntime(["    return a * b\n\nd"]), ToolContext(worktree=tmp_path), TASK, {}
    )
    assert run.ok and run.output == {"summary": "completed mul in calc.py"} and len(run.turns) == 1


def test_changes_then_no_finish_still_hand_the_change_on(tmp_path: Path) -> None:
    # Two stubs: the first is filled, then the model loses its way on the second.
    (tmp_path / "calc.py").write_text(
        CALC + '\n\ndef neg(a):\n    """Return -a."""\n    raise NotImplementedError\n'
    )
    # A body, then calls that fail until the loop gives up: the change is kept for the checks to judge.
    bad = "edit path=calc.py\n<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE"
    runtime = ReplayRuntime(["    return a * b\n\nd", *[bad] * (IMPLEMENTER.retries + 1)])
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=tmp_path), TASK, {})
    assert run.ok and run.output is not None and "changed calc.py" in run.output["summary"]
    assert run.error is not None and run.error.startswith("gave up")


@pytest.mark.model
def test_the_embedded_model_fills_a_stub_with_working_code(tmp_path: Path) -> None:
    from pantheon_git.runtime.llama import runtime_for
    from pantheon_git.schema.models import DEFAULT_MODELS

    (tmp_path / "calc.py").write_text(CALC)
    runtime = runtime_for("default", DEFAULT_MODELS["default"])
    run_agent(IMPLEMENTER, runtime, ToolContext(worktree=tmp_path), TASK, {})
    check = "import calc; assert calc.mul(3, 4) == 12 and calc.mul(-2, 5) == -10"
    assert subprocess.run([sys.executable, "-c", check], cwd=tmp_path).returncode == 0
