"""Confine tool paths to the worktree: absolute paths, `..` and symlinks that lead out are refused."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class ToolError(Exception):
    """A refusal or failure a tool reports back to the model (the model may retry)."""


def confined(worktree: Path, given: str) -> Path:
    """The real path of `given` inside `worktree`, or ToolError saying why it is not allowed."""
    if not given or given.strip() != given:
        raise ToolError(f"path {given!r}: give a relative path inside the repository")
    pure = PurePosixPath(given)
    if pure.is_absolute() or given.startswith("~"):
        raise ToolError(
            f"path {given}: absolute paths are not allowed; use a path relative to the repository"
        )
    if ".." in pure.parts:
        raise ToolError(f"path {given}: '..' is not allowed; stay inside the repository")
    if pure.parts and pure.parts[0] == ".git":
        raise ToolError(f"path {given}: the .git directory is off limits")
    root = worktree.resolve()
    target = (root / pure).resolve()  # follows symlinks, so a link pointing outside is caught here
    if target != root and root not in target.parents:
        raise ToolError(f"path {given}: leads outside the repository (through a symlink)")
    return target
