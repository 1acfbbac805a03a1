"""The agent-computer interface tools: view, edit, create; their refusals explain what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from pantheon_git.tools.builtin import (
    MAX_VIEW,
    CreateArgs,
    EditArgs,
    ToolContext,
    ViewArgs,
    create,
    edit,
    view,
)
from pantheon_git.tools.paths import ToolError

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    worktree = tmp_path / "wt"
    (worktree / "src").mkdir(parents=True)
    (worktree / "src" / "calc.py").write_text(CALC)
    (worktree / "big.txt").write_text("".join(f"row {n}\n" for n in range(1, 251)))
    (tmp_path / "outside.py").write_text("x = 1\n")
    (worktree / "escape").symlink_to(tmp_path)
    return ToolContext(worktree=worktree)


def test_view_numbers_lines_and_says_how_many(ctx: ToolContext) -> None:
    shown = view(ViewArgs(path="src/calc.py"), ctx)
    assert shown.splitlines()[0] == "src/calc.py (6 lines), lines 1-6:"
    assert "1| def add(a, b):" in shown and "6|     return a - b" in shown
    window = view(ViewArgs(path="big.txt", start=120, lines=5), ctx)
    assert window.splitlines()[0] == "big.txt (250 lines), lines 120-124:"
    assert "120| row 120" in window and "row 125" not in window
    assert window.endswith("… 126 more lines (view start=125)")
    first = view(ViewArgs(path="big.txt"), ctx)
    assert f"{MAX_VIEW}| row {MAX_VIEW}" in first and f"row {MAX_VIEW + 1}\n" not in first
    with pytest.raises(ValueError):
        ViewArgs(path="big.txt", lines=MAX_VIEW + 1)  # the window is capped by the schema itself
    with pytest.raises(ToolError, match="has 250 lines; start=300 is past the end"):
        view(ViewArgs(path="big.txt", start=300), ctx)
    with pytest.raises(ToolError, match="no such file"):
        view(ViewArgs(path="src/nope.py"), ctx)
    with pytest.raises(ToolError, match="leads outside the repository"):
        view(ViewArgs(path="escape/outside.py"), ctx)


def test_edit_replaces_one_exact_snippet_and_shows_the_result(ctx: ToolContext) -> None:
    done = edit(
        EditArgs(
            path="src/calc.py",
            search="def sub(a, b):\n    return a - b\n",
            replace="def sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
        ),
        ctx,
    )
    text = (ctx.worktree / "src/calc.py").read_text()
    assert text == CALC + "\n\ndef mul(a, b):\n    return a * b\n"
    assert done.startswith("edited src/calc.py: 2 lines replaced by 6 at line 5")
    assert " 9| def mul(a, b):\n10|     return a * b" in done


def test_edit_that_matches_nothing_shows_the_closest_lines(ctx: ToolContext) -> None:
    with pytest.raises(ToolError) as refused:
        edit(EditArgs(path="src/calc.py", search="def sub(a,b):\n  return a-b\n", replace="x = 1\n"), ctx)
    message = str(refused.value)
    assert "occurs 0 times" in message
    assert "5| def sub(a, b):\n6|     return a - b" in message  # the nearest window, numbered
    assert (ctx.worktree / "src/calc.py").read_text() == CALC


def test_edit_that_matches_several_times_says_where(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"occurs 2 times \(lines 1, 5\); include more lines"):
        edit(EditArgs(path="src/calc.py", search="(a, b):\n", replace="(a, b, c):\n"), ctx)
    with pytest.raises(ToolError, match="REPLACE is the same as SEARCH, so nothing changed"):
        edit(EditArgs(path="src/calc.py", search="    return a + b\n", replace="    return a + b\n"), ctx)
    with pytest.raises(ToolError, match="SEARCH is empty"):
        edit(EditArgs(path="src/calc.py", search="", replace="x = 1\n"), ctx)
    assert (ctx.worktree / "src/calc.py").read_text() == CALC


def test_edits_and_creates_that_break_python_are_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolError) as refused:
        edit(EditArgs(path="src/calc.py", search="    return a + b\n", replace="    return (a + b\n"), ctx)
    assert "not be valid Python (line 2:" in str(refused.value) and "file unchanged" in str(refused.value)
    assert (ctx.worktree / "src/calc.py").read_text() == CALC
    with pytest.raises(ToolError, match=r"not be valid Python \(line 1: "):
        create(CreateArgs(path="src/bad.py", content="def broken(:\n    pass\n"), ctx)
    assert not (ctx.worktree / "src/bad.py").exists()
    # Only Python is parsed: other files take any text.
    assert create(CreateArgs(path="notes.md", content="def broken(:\n"), ctx) == "created notes.md (1 lines)"


def test_create_refuses_to_overwrite_and_stays_inside(ctx: ToolContext) -> None:
    assert create(CreateArgs(path="src/pkg/new.py", content="X = 'a\"b\\\\n'\n"), ctx).startswith("created")
    assert (ctx.worktree / "src/pkg/new.py").read_text() == "X = 'a\"b\\\\n'\n"
    with pytest.raises(ToolError, match="already exists; create makes new files only"):
        create(CreateArgs(path="src/calc.py", content="x = 1\n"), ctx)
    assert (ctx.worktree / "src/calc.py").read_text() == CALC
    with pytest.raises(ToolError, match="leads outside the repository"):
        create(CreateArgs(path="escape/new.py", content="x = 1\n"), ctx)
    with pytest.raises(ToolError, match=r"'\.\.' is not allowed"):
        create(CreateArgs(path="../new.py", content="x = 1\n"), ctx)
    assert not (ctx.worktree.parent / "new.py").exists()
