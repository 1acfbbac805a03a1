"""The built-in tools: read_file, write_file, list_files, search, run, finish.

Each tool has a pydantic argument model (its JSON schema is what decoding is held to) and a function
`(args, context) -> str` whose text goes back to the model. Only these change the worktree.
"""

from __future__ import annotations

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

# (command, cwd, env, timeout_s) -> CompletedRun: the night runner passes the network sandbox.
Sandbox = Callable[[str, Path, Mapping[str, str], float], CompletedRun]


def unsandboxed(command: str, cwd: Path, env: Mapping[str, str], timeout_s: float) -> CompletedRun:
    """Day-mode runner: a new process group, killed whole on timeout; no network isolation."""
    return run_in_group(["bash", "-c", command], cwd, env, timeout_s)


@dataclass
class ToolContext:
    worktree: Path
    sandbox: Sandbox = unsandboxed
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    seconds_left: Callable[[], float] = lambda: 600.0


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFileArgs(_Args):
    path: str = Field(max_length=200)


class WriteFileArgs(_Args):
    path: str = Field(max_length=200)
    content: str = Field(max_length=20000)


class ListFilesArgs(_Args):
    path: str = Field(default=".", max_length=200)


class SearchArgs(_Args):
    text: str = Field(min_length=1, max_length=200)
    path: str = Field(default=".", max_length=200)


class RunArgs(_Args):
    command: str = Field(min_length=1, max_length=500)
    timeout_s: int = Field(default=60, ge=1, le=1800)


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
    timeout = min(float(args.timeout_s), max(1.0, ctx.seconds_left()))
    result = ctx.sandbox(args.command, ctx.worktree, ctx.env, timeout)
    state = "timed out" if result.timed_out else f"exit {result.exit_code}"
    return f"{state} after {result.duration_s:.1f}s\n{result.output_tail[-3000:]}"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    function: Callable[[Any, ToolContext], str]


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("read_file", "read a text file of the repository", ReadFileArgs, read_file),
        Tool("write_file", "create or replace a file with the given content", WriteFileArgs, write_file),
        Tool("list_files", "list the files under a directory", ListFilesArgs, list_files),
        Tool("search", "find lines containing a text", SearchArgs, search),
        Tool("run", "run a shell command in the repository (no network)", RunArgs, run),
    )
}
