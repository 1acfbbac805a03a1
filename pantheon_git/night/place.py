"""The `place` node: the stub of a function the task asks for and the repository lacks, placed by the
runner itself (no model) so that the implementer completes its body as it completes any stub.

What to place comes from agents/placement.py (the spec's `signature`, else its acceptance checks'
imports and calls); the repository's Python files are read from the step's HEAD commit (git's blobs,
never a link in the worktree), and each placed file is written back into the worktree, so the step's
commit holds the stubs. Nothing to place is no failure: the step says so and changes nothing.
"""

from __future__ import annotations

import pygit2

from pantheon_git.agents.context import SKIPPED_DIRS
from pantheon_git.agents.loop import stub_functions
from pantheon_git.agents.placement import PlacementError, stubs_for_task
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeResult
from pantheon_git.store.worktree import open_worktree
from pantheon_git.tools.paths import ToolError, confined, write_text

PLACE = "place"  # the runner agent of a flow node that places stubs
MAX_MODULE_BYTES = 512 * 1024  # a Python file larger than this is no module to place a stub in


def python_files(tree: pygit2.Tree, prefix: str = "") -> dict[str, str]:
    """path -> text of the UTF-8 Python files of `tree` (those under skipped directories left out)."""
    found: dict[str, str] = {}
    for entry in tree:
        name = entry.name or ""
        path = f"{prefix}{name}"
        if isinstance(entry, pygit2.Tree):
            if name not in SKIPPED_DIRS and not name.startswith("."):
                found |= python_files(entry, f"{path}/")
        elif isinstance(entry, pygit2.Blob) and path.endswith(".py") and entry.size <= MAX_MODULE_BYTES:
            try:
                found[path] = entry.data.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return found


def _nothing(reason: str) -> NodeResult:
    """The step's result when it places nothing: no failure, the task goes on as it is."""
    return NodeResult(summary=reason[:200], output={"placed": [], "reason": reason})


def place_executor() -> NodeExecutor:
    def execute(context: NodeContext) -> NodeResult:
        spec = context.spec
        task = {
            "title": spec.title,
            "scope": spec.scope,
            "acceptance": spec.acceptance,
            "files": spec.files,
            "signature": spec.signature,
        }
        files = python_files(open_worktree(context.worktree).head.peel(pygit2.Commit).tree)
        try:
            placed = stubs_for_task(task, files)
            targets = {path: confined(context.worktree, path, for_write=True) for path in placed}
        except (PlacementError, ToolError) as error:  # e.g. a signature's class is not in the repository
            return _nothing(f"nothing placed: {error}")
        functions = []
        for path, text in placed.items():
            write_text(targets[path], path, text)
            before = stub_functions({path: files[path]})
            functions += [item for item in stub_functions({path: text}) if item not in before]
        if not functions:
            reason = "every function the task names exists" if not placed else "no stub found after placing"
            return _nothing(f"nothing to place: {reason}")
        shown = ", ".join(f"{item['function']} in {item['path']}" for item in functions)
        return NodeResult(summary=f"placed a stub of {shown}"[:200], output={"placed": functions})

    return execute
