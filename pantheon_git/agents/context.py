"""What the prompt carries without the agent asking: the files a task names, and a repository outline.

A 270M model rarely thinks to `view` the file it must change, so the files the spec (`files = [...]`)
or the plan names go into the prompt with line numbers, and a compact outline (Aider's repository map:
Python modules with their top-level functions and classes from `ast`, other files by name) tells it what
exists. Both are cut to a token budget (models.toml `context_tokens`) so the prompt fits the context.
"""

from __future__ import annotations

import ast
import os
import re
import stat
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from pantheon_git.runtime.base import estimate_tokens
from pantheon_git.store.files import UnreadableFile, read_regular
from pantheon_git.tools.builtin import numbered
from pantheon_git.tools.paths import ToolError, confined, read_text

# Directories no outline needs: version control, caches, environments, build output.
SKIPPED_DIRS = frozenset(
    {".git", "__pycache__", "node_modules", ".venv", "venv", "build", "dist", ".mypy_cache", ".ruff_cache"}
)
FILES_SHARE = 2 / 3  # of the budget, for the named files; the outline gets the rest (and what is left)


def named_files(task: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[str]:
    """The files the spec (`files`) and then the plan (`inputs.plan.files`) name, each once, in order."""
    plan = inputs.get("plan")
    planned = plan.get("files", []) if isinstance(plan, Mapping) else []
    seen: dict[str, None] = {}
    for path in [*task.get("files", []), *planned]:
        if isinstance(path, str) and path.strip():
            seen.setdefault(path.strip().removeprefix("./"), None)
    return list(seen)


def editable_files(worktree: Path, paths: list[str]) -> dict[str, str]:
    """path -> current text of the named files that exist inside the worktree (the edit grammar's)."""
    found = {}
    for path in paths:
        try:
            target = confined(worktree, path)
            if target.is_file():
                found[path] = read_text(target, path, errors="strict")  # never blocks on a FIFO
        except (ToolError, OSError, UnicodeDecodeError):
            continue
    return found


def _repository_files(worktree: Path) -> list[Path]:
    root = worktree.resolve()
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name == ".git" or name.endswith((".pyc", ".pyo")):
                continue
            path = Path(directory, name)
            with suppress(OSError):
                # A FIFO, socket or device a check left is no file of the repository: not listed.
                if stat.S_ISREG(path.lstat().st_mode) or path.is_symlink():
                    found.append(path.relative_to(root))
    return found


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({ast.unparse(node.args)})"


def python_outline(text: str) -> list[str]:
    """Top-level functions and classes of a module (methods listed by name), one line each."""
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        return [f"(does not parse: line {error.lineno}: {error.msg})"]
    lines = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines.append(f"{_signature(node)}  # line {node.lineno}")
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(base) for base in node.bases)
            methods = [
                item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            shown = f"class {node.name}({bases})" if bases else f"class {node.name}"
            lines.append(f"{shown}: {', '.join(methods)}  # line {node.lineno}" if methods else shown)
    return lines


def _rank(paths: Iterable[Path], task: Mapping[str, Any], named: list[str]) -> list[Path]:
    """Files the task names or mentions first, then shallow before deep, Python before the rest."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", f"{task.get('title', '')} {task.get('scope', '')}"))

    def key(path: Path) -> tuple[int, int, int, str]:
        mentioned = str(path) in named or path.stem in words or str(path) in str(task.get("scope", ""))
        return (0 if mentioned else 1, len(path.parts), 0 if path.suffix == ".py" else 1, str(path))

    return sorted(paths, key=key)


def repository_outline(worktree: Path, task: Mapping[str, Any], named: list[str], budget_tokens: int) -> str:
    """The repository outline cut to `budget_tokens`; says how many files did not fit."""
    files = _rank(_repository_files(worktree), task, named)
    entries, used = [], 0
    for index, path in enumerate(files):
        entry = str(path)
        if path.suffix == ".py":
            try:
                # The one worktree open: a FIFO named *.py is refused at once instead of hanging the night.
                text = read_regular(worktree / path).decode("utf-8")
            except (UnreadableFile, UnicodeDecodeError):
                text = ""
            entry += "".join(f"\n  {line}" for line in python_outline(text))
        cost = estimate_tokens(entry) + 1
        if used + cost > budget_tokens:
            left = len(files) - index
            entries.append(f"… and {left} more files (list_files shows them)")
            break
        entries.append(entry)
        used += cost
    return "\n".join(entries)


def file_excerpts(worktree: Path, paths: list[str], budget_tokens: int) -> str:
    """The named files with line numbers, each cut where the budget runs out (with how to see the rest)."""
    parts: list[str] = []
    used = 0
    for path in paths:
        try:
            target = confined(worktree, path)
        except ToolError as refused:
            parts.append(f"{path}: {refused}")
            continue
        if not os.path.lexists(target):
            parts.append(f"{path}: does not exist yet (create makes it)")
            continue
        try:
            lines = read_text(target, path, errors="strict").splitlines()
        except ToolError as refused:
            parts.append(str(refused))
            continue
        except UnicodeDecodeError:
            parts.append(f"{path}: not a text file")
            continue
        head = f"{path} ({len(lines)} lines):"
        used += estimate_tokens(head)
        shown = 0
        for line in lines:
            cost = estimate_tokens(line) + 2  # the number and bar each line carries
            if used + cost > budget_tokens:
                break
            used += cost
            shown += 1
        body = numbered(lines[:shown], 1) if shown else ""
        if shown < len(lines):
            body += f"\n… {len(lines) - shown} more lines (view path={path} start={shown + 1})"
        parts.append(f"{head}\n{body}".rstrip())
    return "\n".join(parts)


def repository_context(
    worktree: Path,
    task: Mapping[str, Any],
    inputs: Mapping[str, Any],
    budget_tokens: int,
    *,
    with_outline: bool = True,
) -> tuple[str, str]:
    """(outline, named files) for the prompt, together within `budget_tokens`."""
    named = named_files(task, inputs)
    files_text = file_excerpts(worktree, named, int(budget_tokens * FILES_SHARE)) if named else ""
    if not with_outline:
        return "", files_text
    left = budget_tokens - estimate_tokens(files_text)
    return repository_outline(worktree, task, named, left) if left > 0 else "", files_text
