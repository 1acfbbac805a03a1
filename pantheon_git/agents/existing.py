"""The paths an agent that only reads may name: the worktree's tracked files and their folders, and the
new files the spec names. Held by the call grammar (agents/calls.py `Choices`), as an edit's SEARCH
lines are, so a planner cannot view, list or plan a file the repository does not have (seen: the
worked example's src/shapes.py planned for a repository without it, and a garbage list_files path four
times in a row).

Existing paths come from the worktree's index (store/worktree.py `tracked_files`), never from walking
the tree with the OS: a worktree is data. An agent that can write (edit, create, write_file) is not held
here: it makes new files, and its edits are held by their own grammar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

from pantheon_git.agents.calls import Choices
from pantheon_git.store.worktree import tracked_files

WRITING_TOOLS = frozenset({"edit", "create", "write_file"})
# Above this many paths the grammar's enumeration grows past what a turn should carry (every turn
# builds it again): the fields stay free strings, as before, and the tools refuse a missing path.
MAX_HELD_PATHS = 2000
MAX_PATH_CHARS = 200  # the tools' own bound on a path (tools/builtin.py): a longer one is never offered
# A file a title, scope or acceptance command names: a word with a known file extension.
_NAMED_FILE = re.compile(
    r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:py|pyi|md|rst|txt|toml|cfg|ini|json|yaml|yml|js|ts|c|h|go|rs|sh))"
    r"(?![\w/-])"
)
# Which paths a tool's `path` field takes: files, folders, or either.
_PATH_KIND = {"view": "files", "read_file": "files", "list_files": "folders", "search": "any"}


def spec_named_files(task: Mapping[str, Any]) -> list[str]:
    """The files the spec names: its `files`, then file names in its title, scope and acceptance."""
    named = [path for path in task.get("files", []) if isinstance(path, str)]
    texts = [task.get("title"), task.get("scope"), *task.get("acceptance", [])]
    for text in texts:
        if isinstance(text, str):
            named.extend(match.group(1) for match in _NAMED_FILE.finditer(text))
    seen: dict[str, None] = {}
    for path in named:
        clean = path.strip().removeprefix("./")
        if clean and not clean.startswith(("/", "../")) and ".." not in PurePosixPath(clean).parts:
            seen.setdefault(clean, None)
    return list(seen)


def _folders(files: Iterable[str]) -> list[str]:
    found: dict[str, None] = {".": None}
    for path in files:
        for parent in reversed(PurePosixPath(path).parents):
            if str(parent) != ".":
                found.setdefault(str(parent), None)
    return list(found)


def held_paths(
    worktree: Path, task: Mapping[str, Any], tools: Sequence[str], output: type[BaseModel]
) -> Choices | None:
    """The path choices of an agent that only reads (None: not held, the fields stay free strings).

    view/read_file take a tracked file; list_files a folder of one ("." included); search either; the
    finish's `files` list (a plan's) a tracked file or a new file the spec names."""
    if WRITING_TOOLS & set(tools):
        return None
    tracked = tracked_files(worktree)
    if not tracked:
        return None  # no repository (or an empty one): nothing to enumerate
    files = [path for path in tracked if len(path) <= MAX_PATH_CHARS]
    folders = _folders(files)
    existing = set(files)
    new = [path for path in spec_named_files(task) if path not in existing and len(path) <= MAX_PATH_CHARS]
    if len(files) + len(folders) + len(new) > MAX_HELD_PATHS:
        return None  # a large repository: free strings, as before (the tools refuse a missing path)
    kinds = {"files": files, "folders": folders, "any": folders + files}
    choices = {(name, "path"): kinds[_PATH_KIND[name]] for name in tools if name in _PATH_KIND}
    if "files" in output.model_fields:
        choices[("finish", "files")] = files + new
    return choices
