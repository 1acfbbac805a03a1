"""The built-in tools: view, edit, create, search, run (and the older read_file, write_file, list_files).

Each tool has a pydantic argument model (its schema is what decoding is held to) and a function
`(args, context) -> str` whose text goes back to the model. Only these change the worktree. The editing
tools follow SWE-agent's lessons for small models: a numbered window instead of a whole file, an edit
that replaces one exact snippet and explains a miss, and a syntax check that refuses to break a file.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pantheon_git.tools.paths import ToolError, confined, read_text, walk_files, write_text
from pantheon_git.tools.sandbox import CompletedRun, run_in_group

MAX_READ = 6000
MAX_LIST = 200
MAX_MATCHES = 40
MAX_VIEW = 100  # lines per view: a window the model can hold, as in SWE-agent
EDIT_CONTEXT = 3  # lines shown around an edit in its result

# (command, cwd, env, timeout_s) -> CompletedRun: the night runner passes the network sandbox.
Sandbox = Callable[[str, Path, Mapping[str, str], float], CompletedRun]


def unsandboxed(command: str, cwd: Path, env: Mapping[str, str], timeout_s: float) -> CompletedRun:
    """Day-mode runner: a new process group, killed whole on timeout; no network isolation."""
    return run_in_group(["bash", "-c", command], cwd, env, timeout_s)


@dataclass(slots=True)
class ToolContext:
    worktree: Path
    sandbox: Sandbox = unsandboxed
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    seconds_left: Callable[[], float] = lambda: 600.0


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFileArgs(_Args):
    path: str = Field(max_length=200)


# Code (content, search, replace) travels as plain lines in the CODE format, and the grammar cannot count
# characters across lines (agents/bounds.py): it has no length bound, a turn's max_tokens is its bound.


class WriteFileArgs(_Args):
    path: str = Field(max_length=200)
    content: str


class ListFilesArgs(_Args):
    path: str = Field(default=".", max_length=200)


class SearchArgs(_Args):
    text: str = Field(min_length=1, max_length=200)
    path: str = Field(default=".", max_length=200)


class ViewArgs(_Args):
    path: str = Field(max_length=200)
    start: int = Field(default=1, ge=1, le=1_000_000)
    lines: int = Field(default=MAX_VIEW, ge=1, le=MAX_VIEW)


class EditArgs(_Args):
    path: str = Field(max_length=200)
    search: str
    replace: str


class CreateArgs(_Args):
    path: str = Field(max_length=200)
    content: str


MAX_RUN_SECONDS = 1800.0


class RunArgs(_Args):
    command: str = Field(min_length=1, max_length=500)
    # No upper bound in the schema: a model asking for too long a run gets the step's time left, not a
    # refusal it must understand (the 270M model asked for 10000 s again and again).
    timeout_s: int = Field(default=60, ge=1)


def read_file(args: ReadFileArgs, ctx: ToolContext) -> str:
    target = confined(ctx.worktree, args.path)
    if not target.exists():
        raise ToolError(f"{args.path}: no such file")
    text = read_text(target, args.path)
    return (
        text if len(text) <= MAX_READ else text[:MAX_READ] + f"\n… ({len(text) - MAX_READ} more characters)"
    )


def write_file(args: WriteFileArgs, ctx: ToolContext) -> str:
    target = confined(ctx.worktree, args.path, for_write=True)
    if target.is_dir():
        raise ToolError(f"{args.path}: is a directory")
    exists = target.exists()
    old = read_text(target, args.path) if exists else ""
    if old == args.content and exists:
        return f"{args.path} already has exactly this content: nothing changed"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, args.path, args.content)
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), args.content.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return f"wrote {args.path} ({len(args.content.encode())} bytes, +{added} -{removed} lines)"


def numbered(lines: list[str], first: int) -> str:
    """Lines prefixed with their 1-based numbers, the way view shows them (and the model quotes them)."""
    width = len(str(first + len(lines) - 1))
    return "\n".join(f"{number:>{width}}| {line}" for number, line in enumerate(lines, first))


def _text_file(ctx: ToolContext, path: str) -> tuple[Path, str]:
    target = confined(ctx.worktree, path)
    if target.is_dir():
        raise ToolError(f"{path}: is a directory; view shows files (list_files shows a directory)")
    if not target.exists():  # a FIFO or device exists: read_text says what it is instead
        raise ToolError(f"{path}: no such file (create makes a new one)")
    try:
        return target, read_text(target, path, errors="strict")  # a FIFO swapped in is refused, not waited on
    except UnicodeDecodeError:
        raise ToolError(f"{path}: not a UTF-8 text file") from None


def syntax_error(path: str, text: str) -> str | None:
    """Why `text` is not valid Python, as `line N: message`, or None (always None for other files)."""
    if not path.endswith(".py"):
        return None
    try:
        ast.parse(text, filename=path)
    except SyntaxError as error:
        return f"line {error.lineno}: {error.msg}"
    return None


def view(args: ViewArgs, ctx: ToolContext) -> str:
    _, text = _text_file(ctx, args.path)
    lines = text.splitlines()
    if not lines:
        return f"{args.path} is empty (0 lines)"
    if args.start > len(lines):
        raise ToolError(f"{args.path} has {len(lines)} lines; start={args.start} is past the end")
    shown = lines[args.start - 1 : args.start - 1 + args.lines]
    last = args.start + len(shown) - 1
    head = f"{args.path} ({len(lines)} lines), lines {args.start}-{last}:"
    tail = f"\n… {len(lines) - last} more lines (view start={last + 1})" if last < len(lines) else ""
    return f"{head}\n{numbered(shown, args.start)}{tail}"


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _closest(text: str, snippet: str) -> str:
    """The window of the file most like `snippet` (difflib ratio), numbered, to show where a miss was."""
    lines, wanted = text.splitlines(), snippet.strip("\n").splitlines()
    size = max(1, len(wanted))
    best, best_at = -1.0, 0
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2("\n".join(wanted))
    for start in range(max(1, len(lines) - size + 1)):
        matcher.set_seq1("\n".join(lines[start : start + size]))
        if matcher.real_quick_ratio() <= best or matcher.quick_ratio() <= best:
            continue
        ratio = matcher.ratio()
        if ratio > best:
            best, best_at = ratio, start
    return numbered(lines[best_at : best_at + size], best_at + 1)


def _write_checked(target: Path, path: str, new: str) -> None:
    problem = syntax_error(path, new)
    if problem is not None:
        raise ToolError(f"{path}: refused, the result would not be valid Python ({problem}); file unchanged")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, path, new)  # never through a FIFO or link swapped in since the read: no blocking


def edit(args: EditArgs, ctx: ToolContext) -> str:
    target, text = _text_file(ctx, args.path)
    if not args.search.strip():
        raise ToolError(
            f"{args.path}: SEARCH is empty; copy the exact lines to replace (to add code, copy the lines "
            "it goes after and repeat them in REPLACE followed by the new code)"
        )
    count = text.count(args.search)
    if count == 0:
        raise ToolError(
            f"{args.path}: the SEARCH text occurs 0 times; it must match the file exactly, spaces "
            f"included. The closest lines are:\n{_closest(text, args.search)}"
        )
    if count > 1:
        where, offset = [], text.find(args.search)
        while offset != -1:
            where.append(str(_line_of(text, offset)))
            offset = text.find(args.search, offset + 1)
        raise ToolError(
            f"{args.path}: the SEARCH text occurs {count} times (lines {', '.join(where)}); "
            "include more lines so it matches once"
        )
    offset = text.index(args.search)
    new = text[:offset] + args.replace + text[offset + len(args.search) :]
    if new == text:
        raise ToolError(
            f"{args.path}: REPLACE is the same as SEARCH, so nothing changed; write the new code in REPLACE "
            "(to add code after the SEARCH lines, repeat them and put the new lines below)"
        )
    _write_checked(target, args.path, new)
    first = _line_of(new, offset)
    replaced = args.search.count("\n") + (not args.search.endswith("\n"))
    added = args.replace.count("\n") + (bool(args.replace) and not args.replace.endswith("\n"))
    lines = new.splitlines()
    low, high = max(1, first - EDIT_CONTEXT), min(len(lines), first + added + EDIT_CONTEXT - 1)
    return (
        f"edited {args.path}: {replaced} lines replaced by {added} at line {first}; it now reads:\n"
        + numbered(lines[low - 1 : high], low)
    )


def create(args: CreateArgs, ctx: ToolContext) -> str:
    target = confined(ctx.worktree, args.path)
    if target.exists() or target.is_symlink():
        raise ToolError(f"{args.path}: already exists; create makes new files only (edit changes one)")
    _write_checked(target, args.path, args.content)
    return f"created {args.path} ({len(args.content.splitlines())} lines)"


def _walk(ctx: ToolContext, start: Path) -> list[Path]:
    return list(walk_files(ctx.worktree, start))


def list_files(args: ListFilesArgs, ctx: ToolContext) -> str:
    start = confined(ctx.worktree, args.path)
    if not start.is_dir():
        raise ToolError(f"{args.path}: no such directory")
    files = _walk(ctx, start)
    shown = "\n".join(str(path) for path in files[:MAX_LIST])
    return shown + (f"\n… and {len(files) - MAX_LIST} more" if len(files) > MAX_LIST else "") or "(no files)"


def search(args: SearchArgs, ctx: ToolContext) -> str:
    start = confined(ctx.worktree, args.path)
    matches = []
    for relative in _walk(ctx, start) if start.is_dir() else [start.relative_to(ctx.worktree.resolve())]:
        try:
            real = confined(ctx.worktree, str(relative))
            lines = read_text(real, str(relative), errors="strict").splitlines()
        except (ToolError, UnicodeDecodeError):  # refused, or not text
            continue
        for number, line in enumerate(lines, 1):
            if args.text in line:
                matches.append(f"{relative}:{number}: {line.strip()[:200]}")
                if len(matches) >= MAX_MATCHES:
                    return "\n".join(matches) + "\n… (more matches not shown)"
    return "\n".join(matches) or f"no match for {args.text!r}"


# The run tool reports its wall time, which differs from one run of the same command to the next: replay
# compares tool results (and the prompts built from them) with it blanked out.
# A result's first line, alone or as the prompt shows it after "Result: ".
_WALL_TIME = re.compile(r"^((?:Result: )?(?:exit -?\d+|timed out)) after \d+(?:\.\d+)?s$", re.MULTILINE)


def deterministic(text: str) -> str:
    """`text` with the volatile parts of tool results (wall times) replaced by a fixed mark."""
    return _WALL_TIME.sub(lambda match: f"{match.group(1)} after …s", text)


def run(args: RunArgs, ctx: ToolContext) -> str:
    timeout = min(float(args.timeout_s), MAX_RUN_SECONDS, max(1.0, ctx.seconds_left()))
    result = ctx.sandbox(args.command, ctx.worktree, ctx.env, timeout)
    state = "timed out" if result.timed_out else f"exit {result.exit_code}"
    return f"{state} after {result.duration_s:.1f}s\n{result.output_tail[-3000:]}"


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    function: Callable[[Any, ToolContext], str]


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("view", "show up to 100 numbered lines of a file from line `start`", ViewArgs, view),
        Tool("edit", "replace one exact snippet of a file (SEARCH) with new text (REPLACE)", EditArgs, edit),
        Tool("create", "create a new file with the given content", CreateArgs, create),
        Tool("read_file", "read a text file of the repository", ReadFileArgs, read_file),
        Tool("write_file", "create or replace a file with the given content", WriteFileArgs, write_file),
        Tool("list_files", "list the files under a directory", ListFilesArgs, list_files),
        Tool("search", "find lines containing a text", SearchArgs, search),
        Tool("run", "run a shell command in the repository (no network)", RunArgs, run),
    )
}
