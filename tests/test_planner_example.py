"""The planner's worked example is about the task's own files (issue 26): a 270M planner copies the
example's path into its plan, so a repository without src/shapes.py must never be shown src/shapes.py
where the task names a file of its own. Real repositories, the real prompt builder."""

from __future__ import annotations

from pathlib import Path

from pantheon_git.agents.builtin import IMPLEMENTER, PLANNER
from pantheon_git.agents.calls import CallFormat
from pantheon_git.agents.examples import GENERIC_SOURCE, planner_example_files, worked_examples
from pantheon_git.agents.loop import agent_header
from pantheon_git.tools.builtin import ToolContext
from tests.conftest import git

ACCEPTANCE = 'python3 -c "from calc import mul; assert mul(3, 4) == 12"'


def calc_repo(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(
        "import calc\n\n\ndef test_add():\n    assert calc.add(1, 2) == 3\n"
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "calc")
    return root


def example_of(header: str) -> str:
    """The worked example section of a prompt header (between its heading and the next one)."""
    start = header.index("### Example")
    return header[start : header.index("\n### ", start + 1)]


def test_the_planner_prompt_for_a_task_naming_calc_py_shows_calc_py_not_src_shapes(tmp_path: Path) -> None:
    repo = calc_repo(tmp_path / "repo")
    task = {"title": "Add mul(a, b) to calc.py", "acceptance": [ACCEPTANCE]}
    for call_format in CallFormat:
        header = agent_header(PLANNER, ToolContext(worktree=repo), task, {}, call_format=call_format)
        assert "src/shapes.py" not in header and "shapes" not in header
        example = example_of(header)
        assert "Title: Add a function square(x) to calc.py" in example
        assert "calc.py:2: def area(w, h):" in example  # the search result is about the same file
        assert "Add square(x) returning x * x after area in calc.py." in example
        # Only the files the task names: no invented test file either.
        assert "test_shapes" not in example and "tests/" not in example
    # Built twice, the same prompt: a step can be replayed.
    assert agent_header(PLANNER, ToolContext(worktree=repo), task, {}) == agent_header(
        PLANNER, ToolContext(worktree=repo), task, {}
    )


def test_a_named_test_file_joins_the_example_and_a_tracked_file_goes_before_a_new_one(tmp_path: Path) -> None:
    repo = calc_repo(tmp_path / "repo")
    task = {
        "title": "Add mul to ops.py and calc.py",  # ops.py is new; calc.py is tracked
        "acceptance": ["pytest -q tests/test_calc.py"],
    }
    assert planner_example_files(task, {}, ["calc.py", "tests/test_calc.py"]) == (
        "calc.py",
        "tests/test_calc.py",
    )
    header = agent_header(PLANNER, ToolContext(worktree=repo), task, {})
    example = example_of(header)
    assert "Title: Add a function square(x) to calc.py, with a test" in example
    assert "test it in tests/test_calc.py." in example and "src/shapes.py" not in header
    # Outside a repository nothing is tracked: the spec's order decides.
    assert planner_example_files(task, {}, None) == ("ops.py", "tests/test_calc.py")


def test_the_file_the_place_step_chose_comes_first(tmp_path: Path) -> None:
    repo = calc_repo(tmp_path / "repo")
    task = {"title": "Multiply two numbers", "acceptance": [ACCEPTANCE], "files": ["calc.py"]}
    placed = {"place": {"placed": [{"path": "pkg/arith.py", "function": "mul"}]}}
    assert planner_example_files(task, placed, ["calc.py"]) == ("pkg/arith.py", None)
    example = example_of(agent_header(PLANNER, ToolContext(worktree=repo), task, placed))
    assert "square(x) to pkg/arith.py" in example and "calc.py:2" not in example


def test_the_generic_example_only_when_the_task_names_no_file(tmp_path: Path) -> None:
    repo = calc_repo(tmp_path / "repo")
    task = {"title": "Multiply two numbers", "acceptance": ["pytest -q"]}
    assert planner_example_files(task, {}, ["calc.py"]) is None
    example = example_of(agent_header(PLANNER, ToolContext(worktree=repo), task, {}))
    assert f"square(x) to {GENERIC_SOURCE}, with a test" in example
    # The other agents' examples do not follow the task: they teach edits, not paths to plan.
    assert worked_examples(IMPLEMENTER, CallFormat.CODE, task, {}, repo) == worked_examples(
        IMPLEMENTER, CallFormat.CODE
    )
