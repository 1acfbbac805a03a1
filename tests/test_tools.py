"""Built-in tools, confined to the worktree: escaping paths are refused with a clear tool error."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pantheon_git.tools.builtin import (
    ListFilesArgs,
    ReadFileArgs,
    RunArgs,
    SearchArgs,
    ToolContext,
    WriteFileArgs,
    list_files,
    read_file,
    run,
    search,
    write_file,
)
from pantheon_git.tools.paths import ToolError


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / "src").mkdir()
    (worktree / "src" / "app.py").write_text("def main():\n    return 42\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    (worktree / "escape").symlink_to(tmp_path)
    (worktree / "inside-link").symlink_to(worktree / "src")
    return ToolContext(worktree=worktree)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "absolute paths are not allowed"),
        ("../outside.txt", "'..' is not allowed"),
        ("src/../../outside.txt", "'..' is not allowed"),
        ("escape/outside.txt", "leads outside the repository (through a symlink)"),
        ("~/notes", "absolute paths are not allowed"),
        (".git/config", "the .git directory is off limits"),
    ],
)
def test_escaping_paths_are_refused(ctx: ToolContext, path: str, reason: str) -> None:
    for call in (
        lambda: read_file(ReadFileArgs(path=path), ctx),
        lambda: write_file(WriteFileArgs(path=path, content="x"), ctx),
    ):
        with pytest.raises(ToolError, match=re.escape(reason)):
            call()
    assert (ctx.worktree.parent / "outside.txt").read_text() == "secret\n"


def test_symlink_inside_is_fine_and_write_reports_diff_stats(ctx: ToolContext) -> None:
    assert read_file(ReadFileArgs(path="inside-link/app.py"), ctx).startswith("def main")
    created = write_file(WriteFileArgs(path="docs/new.md", content="a\nb\n"), ctx)
    assert created == "wrote docs/new.md (4 bytes, +2 -0 lines)"
    changed = write_file(WriteFileArgs(path="src/app.py", content="def main():\n    return 43\n"), ctx)
    assert changed.endswith("+1 -1 lines)")
    same = write_file(WriteFileArgs(path="src/app.py", content="def main():\n    return 43\n"), ctx)
    assert "nothing changed" in same


def test_list_and_search_stay_inside(ctx: ToolContext) -> None:
    listing = list_files(ListFilesArgs(), ctx).splitlines()
    assert "src/app.py" in listing and not any("outside" in line for line in listing)
    assert search(SearchArgs(text="return 42"), ctx) == "src/app.py:2: return 42"
    with pytest.raises(ToolError):
        list_files(ListFilesArgs(path="../"), ctx)


def test_run_reports_exit_and_output_and_times_out(ctx: ToolContext) -> None:
    ok = run(RunArgs(command="echo hi && exit 3"), ctx)
    assert ok.startswith("exit 3 after") and ok.rstrip().endswith("hi")
    slow = run(RunArgs(command="sleep 20", timeout_s=1), ctx)
    assert slow.startswith("timed out after")
    assert os.path.exists(ctx.worktree / "src" / "app.py")
