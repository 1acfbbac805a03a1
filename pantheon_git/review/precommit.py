"""The repository's own pre-commit hooks as part of the lint reviewer: which of them a night can run, on
which changed files, as which command, and what their exit codes mean (pure; night/checks.py runs them
in the sandbox).

Only hooks that need no network and no environment install run: a `repo: local` hook whose language
is `system` or `script` (pre-commit 4 calls them `unsupported` and `unsupported_script`), and `fail`,
which runs nothing. A hook of a remote repository, or of a language pre-commit would install (python,
node, …), is listed as not run: the sandbox has no network, and installing is no reviewer's business.
The configuration is the base commit's, never the run's: a task cannot add a hook that runs its code
as its own reviewer, nor drop one. `files`, `exclude` (the config's and the hook's), `types`,
`types_or`, `exclude_types`, `args`, `pass_filenames`, `always_run` and `stages` are respected; file
types are told from the name (and whether the text is binary) by a small table, not by `identify`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

CONFIG = ".pre-commit-config.yaml"
MAX_CONFIG_BYTES = 256 * 1024  # a hook list, not a data file: larger is not parsed
OFFLINE_LANGUAGES = frozenset({"system", "script", "unsupported", "unsupported_script", "fail"})
SCRIPT_LANGUAGES = frozenset({"script", "unsupported_script"})
COMMIT_STAGES = frozenset({"pre-commit", "commit"})  # the stage a commit runs (its old name too)
NEEDS_ENVIRONMENT = "needs an environment"

# The tags `identify` gives by file name that hooks most often select on; `file` and `text`/`binary`
# come with every file. A hook asking for a tag outside this table is not run (said so) rather than
# run on guessed files.
_TAGS_BY_SUFFIX: dict[str, frozenset[str]] = {
    suffix: frozenset(tags.split())
    for suffix, tags in {
        ".py": "python",
        ".pyi": "python pyi",
        ".pyx": "cython",
        ".toml": "toml",
        ".yaml": "yaml",
        ".yml": "yaml",
        ".json": "json",
        ".md": "markdown",
        ".rst": "rst",
        ".txt": "plain-text",
        ".ini": "ini",
        ".cfg": "ini",
        ".sh": "shell sh",
        ".bash": "shell bash",
        ".js": "javascript",
        ".jsx": "jsx javascript",
        ".ts": "ts",
        ".tsx": "tsx ts",
        ".c": "c",
        ".h": "header c c++",
        ".cc": "c++",
        ".cpp": "c++",
        ".hpp": "header c++",
        ".go": "go",
        ".rs": "rust",
        ".html": "html",
        ".css": "css",
        ".xml": "xml",
        ".sql": "sql",
        ".csv": "csv",
    }.items()
}
_TAGS_BY_NAME = {"Makefile": frozenset({"makefile"}), "Dockerfile": frozenset({"dockerfile"})}
KNOWN_TAGS = frozenset({"file", "text", "binary"}).union(*_TAGS_BY_SUFFIX.values(), *_TAGS_BY_NAME.values())


class ConfigProblem(ValueError):
    """The base commit's .pre-commit-config.yaml cannot be read as a hook list."""


@dataclass(frozen=True, slots=True)
class Hook:
    """One runnable hook of the base commit's configuration."""

    id: str
    entry: str
    language: str
    args: tuple[str, ...] = ()
    files: str = ""
    exclude: str = "^$"
    types: tuple[str, ...] = ("file",)
    types_or: tuple[str, ...] = ()
    exclude_types: tuple[str, ...] = ()
    pass_filenames: bool = True
    always_run: bool = False


@dataclass(frozen=True, slots=True)
class HookConfig:
    """What a night does with the hooks: those it runs, and one line per hook it does not."""

    runnable: tuple[Hook, ...] = ()
    not_run: tuple[str, ...] = ()  # "check-toml: not run: needs an environment (language python)"
    files: str = ""  # the config's own `files` and `exclude`, applied to every hook
    exclude: str = "^$"


@dataclass(frozen=True, slots=True)
class HookRan:
    """What one hook did in the sandbox."""

    hook: str
    files: tuple[str, ...]
    exit_code: int
    output: str = ""
    timed_out: bool = False
    modified: tuple[str, ...] = ()  # files it changed (put back afterwards): a failure, as in pre-commit


@dataclass(frozen=True, slots=True)
class HookReport:
    """The pre-commit part of the lint vote: the hooks run, those not run (one line each), the repository
    files hooks run (hook id -> path: a change to one is a change to its reviewer), or why none ran."""

    ran: tuple[HookRan, ...] = ()
    not_run: tuple[str, ...] = ()
    programs: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str | int | float) for item in value):
        raise ConfigProblem(f"{where}: not a list of strings")
    return tuple(str(item) for item in value)


def _regex(value: Any, default: str, where: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigProblem(f"{where}: not a regular expression")
    try:
        re.compile(value)
    except re.error as error:
        raise ConfigProblem(f"{where}: {error}") from None
    return value


def _hook(raw: Mapping[str, Any], default_stages: tuple[str, ...]) -> Hook | str:
    """A runnable Hook, or why this local hook is not run."""
    hook_id = str(raw.get("id", "?"))
    where = f"{CONFIG}: hook {hook_id}"
    language = str(raw.get("language", ""))
    if language not in OFFLINE_LANGUAGES:
        return f"{hook_id}: not run: {NEEDS_ENVIRONMENT} (language {language or 'unset'})"
    stages = _strings(raw.get("stages"), f"{where}: stages") or default_stages
    if stages and not COMMIT_STAGES & set(stages):
        return f"{hook_id}: not run: only at stage {', '.join(stages)}"
    entry = raw.get("entry")
    if not isinstance(entry, str) or not entry.strip():
        return f"{hook_id}: not run: no entry"
    types = _strings(raw.get("types"), f"{where}: types") or ("file",)
    types_or = _strings(raw.get("types_or"), f"{where}: types_or")
    exclude_types = _strings(raw.get("exclude_types"), f"{where}: exclude_types")
    unknown = sorted(set(types + types_or) - KNOWN_TAGS)
    if unknown:
        return f"{hook_id}: not run: file type {', '.join(unknown)} not told apart here"
    if language not in ("fail",):
        try:
            shlex.split(entry)
        except ValueError:
            return f"{hook_id}: not run: its entry does not parse as a command line"
    return Hook(
        id=hook_id,
        entry=entry,
        language=language,
        args=_strings(raw.get("args"), f"{where}: args"),
        files=_regex(raw.get("files"), "", f"{where}: files"),
        exclude=_regex(raw.get("exclude"), "^$", f"{where}: exclude"),
        types=types,
        types_or=types_or,
        exclude_types=exclude_types,
        pass_filenames=raw.get("pass_filenames", True) is not False,
        always_run=raw.get("always_run", False) is True,
    )


def read_config(text: str) -> HookConfig:
    """The hooks of a .pre-commit-config.yaml (the base commit's text), by YAML's safe loader."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise ConfigProblem(f"{CONFIG}: over {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigProblem(f"{CONFIG}: not YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("repos", []), list):
        raise ConfigProblem(f"{CONFIG}: no `repos` list")
    default_stages = _strings(data.get("default_stages"), f"{CONFIG}: default_stages")
    runnable: list[Hook] = []
    not_run: list[str] = []
    for repo in data.get("repos", []):
        if not isinstance(repo, dict) or not isinstance(repo.get("hooks", []), list):
            raise ConfigProblem(f"{CONFIG}: a repo entry without a `hooks` list")
        source = str(repo.get("repo", "?"))
        for raw in repo.get("hooks", []):
            if not isinstance(raw, dict):
                raise ConfigProblem(f"{CONFIG}: a hook of {source} is not a mapping")
            if source == "local":
                made = _hook(raw, default_stages)
                if isinstance(made, Hook):
                    runnable.append(made)
                else:
                    not_run.append(made)
            elif source == "meta":
                not_run.append(f"{raw.get('id', '?')}: not run: a pre-commit meta hook")
            else:
                not_run.append(f"{raw.get('id', '?')}: not run: {NEEDS_ENVIRONMENT} (repo {source})")
    return HookConfig(
        runnable=tuple(runnable),
        not_run=tuple(not_run),
        files=_regex(data.get("files"), "", f"{CONFIG}: files"),
        exclude=_regex(data.get("exclude"), "^$", f"{CONFIG}: exclude"),
    )


def file_tags(path: str, binary: bool) -> frozenset[str]:
    """The `identify` tags of a file, as far as this module tells them apart (pure)."""
    pure = PurePosixPath(path)
    tags = {"file", "binary" if binary else "text"}
    tags |= _TAGS_BY_SUFFIX.get(pure.suffix.lower(), frozenset())
    tags |= _TAGS_BY_NAME.get(pure.name, frozenset())
    return frozenset(tags)


def hook_files(hook: Hook, config: HookConfig, files: Mapping[str, bool]) -> list[str]:
    """The changed files (path -> binary?) the hook would be given, as pre-commit chooses them."""
    chosen = []
    for path, binary in sorted(files.items()):
        if not re.search(config.files, path) or re.search(config.exclude, path):
            continue
        if not re.search(hook.files, path) or re.search(hook.exclude, path):
            continue
        tags = file_tags(path, binary)
        if not set(hook.types) <= tags or (hook.types_or and not set(hook.types_or) & tags):
            continue
        if set(hook.exclude_types) & tags:
            continue
        chosen.append(path)
    return chosen


def hook_command(hook: Hook, files: Sequence[str]) -> str:
    """The shell line that runs the hook as pre-commit would: its entry's words, its args, then the files
    (each word quoted: pre-commit runs no shell, so a file name is never more than one argument)."""
    words = shlex.split(hook.entry)
    if hook.language in SCRIPT_LANGUAGES and not words[0].startswith("/"):
        words[0] = f"./{words[0].removeprefix('./')}"  # a script of the repository, from its top
    words += hook.args
    if hook.pass_filenames:
        words += files
    return " ".join(shlex.quote(word) for word in words)


def hook_executable(hook: Hook) -> str | None:
    """The program a hook starts: its entry's first word (None for `fail`, which starts none)."""
    return None if hook.language == "fail" else shlex.split(hook.entry)[0]


def hook_program(hook: Hook) -> str | None:
    """The repository file a hook runs, where its entry names one (`./tools/lint.sh`, a script hook's
    path): None for a program found on PATH (`grep`, `ruff`), an absolute path, and `fail`."""
    first = hook_executable(hook)
    if first is None or first.startswith("/"):
        return None
    if hook.language in SCRIPT_LANGUAGES or "/" in first:
        return str(PurePosixPath(first.removeprefix("./")))
    return None


def hook_programs(config: HookConfig) -> dict[str, str]:
    """hook id -> the repository file it runs, for the runnable hooks that run one."""
    return {hook.id: path for hook in config.runnable if (path := hook_program(hook)) is not None}


def failure_line(ran: HookRan) -> str:
    """One line naming the hook and the file it failed on: the first file its output names, else the
    first it was given; with the first line of what it printed."""
    if ran.modified:
        return f"pre-commit hook {ran.hook} changes {ran.modified[0]} (files were modified by this hook)"
    named = next((path for path in ran.files if path in ran.output), None)
    target = named or (ran.files[0] if ran.files else "the repository")
    lines = [line.strip() for line in ran.output.splitlines() if line.strip()]
    said = f": {lines[0][:160]}" if lines else ""
    return f"pre-commit hook {ran.hook} fails on {target} (exit {ran.exit_code}){said}"
