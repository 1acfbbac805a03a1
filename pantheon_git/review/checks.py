"""Deterministic reviewers: lint, scope, tests kept, size. Each is a pure function over the run's changes
(and, for lint, what the repository's own linter printed) that returns one vote with a one-line reason.

They judge what a model wrote, so everything they read is data: paths, file texts and linter output are
parsed, never run. The spec (the person's), the base commit's files and the config's limits decide what
passes; nothing the change itself adds (a lint configuration, a `# noqa`, a conftest) can loosen them.
`abstain` means not applicable here (no linter configured, no Python file changed, a spec naming no
file): the gate counts it neither as an approval nor as a rejection.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from pantheon_git.review.precommit import CONFIG as PRECOMMIT_CONFIG
from pantheon_git.review.precommit import HookReport, failure_line
from pantheon_git.store.votes import Verdict, Vote


class ChangeKind(StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Change:
    """One file the run changed against its base commit."""

    path: str
    kind: ChangeKind
    added: int = 0  # lines added
    removed: int = 0  # lines removed
    added_lines: frozenset[int] = frozenset()  # line numbers (1-based) of the added lines in `after`
    before: str | None = None  # the text at the base commit (None: absent, binary or too large)
    after: str | None = None  # the text now (None: deleted, binary, unreadable or too large)
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    """A deterministic reviewer's verdict: one line of why, and the evidence behind it."""

    name: str
    verdict: Verdict
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def vote(self) -> Vote:
        return Vote(voter=self.name, verdict=self.verdict, reasons=[self.reason], evidence=self.evidence)


LINT, SCOPE, TESTS_KEPT, SIZE = "lint", "scope", "tests-kept", "size"
CHECK_NAMES = (LINT, SCOPE, TESTS_KEPT, SIZE)

# What the acceptance checks and tools leave behind (byte code, caches): not part of the work, never
# counted against its scope or size.
_ARTEFACT_DIRS = frozenset(
    {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", ".tox", ".nox"}
)
_ARTEFACT_SUFFIXES = (".pyc", ".pyo")


def is_artefact(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (
        any(part in _ARTEFACT_DIRS or part.endswith(".egg-info") for part in parts[:-1])
        or path.endswith(_ARTEFACT_SUFFIXES)
        or path.endswith(".coverage")
    )


def _listed(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def work(changes: Iterable[Change]) -> list[Change]:
    """The changes that are the work: every change but the checks' byte code and caches."""
    return [change for change in changes if not is_artefact(change.path)]


# --- size --------------------------------------------------------------------------------------------


def size_check(changes: Sequence[Change], max_lines: int, max_files: int) -> Check:
    """Reject a change larger than the limits (`[gate] max_changed_lines`, `max_changed_files`)."""
    real = work(changes)
    lines = sum(change.added + change.removed for change in real)
    evidence = {"lines": lines, "files": len(real), "max_lines": max_lines, "max_files": max_files}
    if lines > max_lines:
        return Check(SIZE, Verdict.REJECT, f"changes {lines} lines (limit {max_lines})", evidence)
    if len(real) > max_files:
        return Check(SIZE, Verdict.REJECT, f"changes {len(real)} files (limit {max_files})", evidence)
    return Check(
        SIZE,
        Verdict.APPROVE,
        f"{_counted(lines, 'line')} in {_counted(len(real), 'file')}, within the limits",
        evidence,
    )


# --- scope -------------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z0-9_./-]+")
_SOURCE = re.compile(r"^[\w./-]+\.[A-Za-z0-9]{1,8}$")
# Suffixes that make a word a file to create ("add notes.md"), where `calc.mul` stays a name.
_SUFFIXES = (
    "py pyi txt md rst toml json yaml yml cfg ini sh c h cc cpp hpp rs go js ts tsx jsx java rb html css"
)
FILE_SUFFIXES = frozenset([*_SUFFIXES.split(), "csv", "sql", "proto"])


def _words(texts: Iterable[str]) -> set[str]:
    """Every path-like word of the texts: `tests/test_x.py`, `calc.mul`, `src/` (pure)."""
    found = {word.removeprefix("./").rstrip("/.-") for text in texts for word in _WORD.findall(text)}
    return found - {""}


def _module_files(word: str) -> list[str]:
    """The files a dotted name may be: calc.mul -> calc.py, calc/mul.py, calc/__init__.py, …"""
    parts = word.split(".")
    stems = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return [stem + tail for stem in stems for tail in (".py", "/__init__.py")]


def named_paths(
    files: Iterable[str], texts: Iterable[str], base_paths: frozenset[str]
) -> tuple[set[str], set[str]]:
    """(files, directories) a spec names: its `files`, and every path, directory, file name or dotted
    module its title, scope and acceptance commands mention that the base commit has (or, for a path
    with a suffix, that it asks to create)."""
    named = {path.strip("/") for path in files}
    directories = {path.strip("/") for path in files if path.endswith("/")}
    base_dirs = {str(parent) for path in base_paths for parent in PurePosixPath(path).parents} - {"."}
    by_name: dict[str, list[str]] = {}
    for path in base_paths:
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    for word in _words(texts):
        if word in base_paths:
            named.add(word)
        elif word in base_dirs:
            directories.add(word)
        elif _SOURCE.match(word) and PurePosixPath(word).suffix[1:].lower() in FILE_SUFFIXES:
            named.add(word)  # a file the spec asks for
        if "/" not in word:
            named.update(by_name.get(word, []))  # "calc.py" for src/calc.py
        for module in _module_files(word):  # `import calc`, `calc.mul(3, 4)`
            if module in base_paths:
                named.add(module)
            elif "/" not in module:
                named.update(by_name.get(module, []))  # the module calc, found as src/calc.py
    return named, directories


def _plausible(path: str, named: set[str], directories: set[str], added: bool) -> bool:
    """Whether a change to `path` is one the named files plausibly need."""
    if path in named or any(path.startswith(f"{d}/") for d in directories):
        return True
    pure = PurePosixPath(path)
    named_dirs = {str(PurePosixPath(n).parent) for n in named}
    stems = {PurePosixPath(n).stem for n in named if n.endswith(".py")}
    if pure.name in {f"test_{stem}.py" for stem in stems} | {f"{stem}_test.py" for stem in stems}:
        return True  # the tests of a named module, wherever they live
    if pure.name == "__init__.py" and str(pure.parent) in named_dirs:
        return True  # the package of a named module exports it
    return added and str(pure.parent) in named_dirs  # a new file beside a named one


def scope_check(
    changes: Sequence[Change],
    files: Sequence[str],
    texts: Sequence[str],
    base_paths: frozenset[str],
) -> Check:
    """Reject changes to files the spec neither names nor plausibly needs; abstain when it names none."""
    named, directories = named_paths(files, texts, base_paths)
    real = work(changes)
    artefacts = sorted(change.path for change in changes if is_artefact(change.path))
    evidence: dict[str, Any] = {"named": sorted(named), "directories": sorted(directories)}
    if artefacts:
        evidence["artefacts"] = artefacts[:50]
    if not named and not directories:
        return Check(
            SCOPE, Verdict.ABSTAIN, "the spec names no file: nothing to hold the change to", evidence
        )
    stray = sorted(
        change.path
        for change in real
        if not _plausible(change.path, named, directories, change.kind == ChangeKind.ADDED)
    )
    evidence["unrelated"] = stray[:50]
    if stray:
        return Check(
            SCOPE,
            Verdict.REJECT,
            f"touches {_listed(stray)}, which the spec does not name or plausibly need",
            evidence,
        )
    return Check(
        SCOPE,
        Verdict.APPROVE,
        f"{_counted(len(real), 'changed file')}, all named by the spec or needed",
        evidence,
    )


# --- tests kept --------------------------------------------------------------------------------------

_TEST_NAME = re.compile(r"^(test_.*|.*_test)\.py$")
_TEST_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(test\w*)", re.MULTILINE)
_ASSERT_LINE = re.compile(r"^[ \t]*assert\b|\.assert\w*\(|\bpytest\.raises\(", re.MULTILINE)
_SKIP = re.compile(
    r"\bpytest\.mark\.(?:skip|skipif|xfail)\b|\bpytest\.(?:skip|xfail|importorskip)\(|\bunittest\.skip"
    r"|@skip(?:If|Unless)?\b|\.skipTest\(|\bexpectedFailure\b|__test__\s*=\s*False"
)
# Files that decide how tests run: changing one may switch tests off without touching a test.
TEST_CONFIG = frozenset({"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "noxfile.py"})


def is_test_file(path: str) -> bool:
    pure = PurePosixPath(path)
    if pure.suffix != ".py":
        return False
    return bool(_TEST_NAME.match(pure.name)) or pure.name == "conftest.py" or "tests" in pure.parts[:-1]


def _is_assertion(node: ast.AST) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name.startswith("assert") or name == "raises" or name == "fail"
    return False


def defined_tests(text: str) -> Counter[str]:
    """The test functions of a module (`Class.test_x` in a class), counted (pure)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Counter(_TEST_DEF.findall(text))
    found: Counter[str] = Counter()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found[node.name] += 1
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    found[f"{node.name}.{item.name}"] += 1
    return found


def assertion_count(text: str) -> int:
    """How many assertions a module makes: `assert`, `self.assert…(…)`, `pytest.raises` (pure)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return len(_ASSERT_LINE.findall(text))
    return sum(1 for node in ast.walk(tree) if _is_assertion(node))


def skip_count(text: str) -> int:
    return len(_SKIP.findall(text))


def acceptance_paths(commands: Iterable[str], base_paths: frozenset[str]) -> tuple[set[str], set[str]]:
    """(files, directories) of the base commit that the acceptance commands name as arguments."""
    base_dirs = {str(parent) for path in base_paths for parent in PurePosixPath(path).parents} - {"."}
    files, directories = set(), set()
    for command in commands:
        try:
            tokens = shlex.split(command)
        except ValueError:
            tokens = command.split()
        for token in tokens:
            for piece in token.replace("=", " ").split():
                path = piece.split("::")[0].removeprefix("./").rstrip("/")
                if path in base_paths:
                    files.add(path)
                elif path in base_dirs:
                    directories.add(path)
    return files, directories


def _pyproject_table(text: str | None, *keys: str) -> Any:
    if text is None:
        return None
    try:
        value: Any = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return "unparseable"
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _run_by_acceptance(change: Change, files: set[str], directories: set[str]) -> bool:
    """Whether the acceptance commands run this file: they name it, or a directory above it (where a new
    test file adds a test and weakens none, but a new conftest.py changes every test below it)."""
    if change.path in files:
        return True
    if not any(change.path.startswith(f"{directory}/") for directory in directories):
        return False
    new_test = change.kind == ChangeKind.ADDED and is_test_file(change.path)
    return not new_test or PurePosixPath(change.path).name == "conftest.py"


@dataclass(frozen=True, slots=True)
class _TestTally:
    """What the changed test files define before and after the change."""

    before: Counter[str]  # test functions by name
    after: Counter[str]
    asserts_before: int
    asserts_after: int
    skips_added: list[str]  # files that gained a skip or xfail

    @classmethod
    def of(cls, tests: Sequence[Change]) -> _TestTally:
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        asserts_before = asserts_after = 0
        skips_added = []
        for change in tests:
            old, new = change.before or "", change.after or ""
            before += defined_tests(old)
            after += defined_tests(new)
            asserts_before += assertion_count(old)
            asserts_after += assertion_count(new)
            if skip_count(new) > skip_count(old):
                skips_added.append(change.path)
        return cls(before, after, asserts_before, asserts_after, skips_added)

    @property
    def missing(self) -> list[str]:
        """Test functions defined before the change and not after it."""
        return sorted((self.before - self.after).elements())

    def problems(self) -> list[str]:
        found = []
        missing = self.missing
        if missing:
            found.append(f"deletes test {_listed(missing)}")
        if self.skips_added:
            found.append(f"adds a skip or xfail in {_listed(self.skips_added)}")
        if self.asserts_after < self.asserts_before:
            found.append(f"removes {self.asserts_before - self.asserts_after} assertion(s) from the tests")
        return found


def _changes_how_tests_run(change: Change) -> bool:
    """A test runner's configuration file, or pyproject.toml's [tool.pytest] changed."""
    name = PurePosixPath(change.path).name
    if name in TEST_CONFIG:
        return True
    if name != "pyproject.toml":
        return False
    before, after = (_pyproject_table(text, "tool", "pytest") for text in (change.before, change.after))
    return bool(before != after)


def weakening_check(
    changes: Sequence[Change],
    acceptance: Sequence[str],
    spec_files: Sequence[str],
    base_paths: frozenset[str],
) -> Check:
    """Reject a change that deletes or skips tests, removes assertions, or edits what the acceptance
    commands run (or how tests run: conftest.py, pytest.ini, …) unless the spec names that file."""
    allowed = {path.strip("/") for path in spec_files}
    tests = [change for change in work(changes) if is_test_file(change.path)]
    tally = _TestTally.of(tests)
    problems = tally.problems()
    files, directories = acceptance_paths(acceptance, base_paths)
    unnamed = [change for change in work(changes) if change.path not in allowed]
    touched = sorted(change.path for change in unnamed if _run_by_acceptance(change, files, directories))
    if touched:
        problems.append(f"edits {_listed(touched)}, which the acceptance checks run")
    config = sorted(
        change.path for change in unnamed if change.path not in touched and _changes_how_tests_run(change)
    )
    if config:
        problems.append(f"changes how tests run: {_listed(config)}")
    tests_before, tests_after = sum(tally.before.values()), sum(tally.after.values())
    evidence = {
        "test_files": [change.path for change in tests][:50],
        "tests_before": tests_before,
        "tests_after": tests_after,
        "assertions_before": tally.asserts_before,
        "assertions_after": tally.asserts_after,
        "missing": tally.missing[:50],
        "acceptance_files": sorted(files | directories)[:50],
    }
    if problems:
        return Check(TESTS_KEPT, Verdict.REJECT, "; ".join(problems), evidence)
    if not tests:
        return Check(
            TESTS_KEPT, Verdict.APPROVE, "no test file changed; acceptance files untouched", evidence
        )
    return Check(
        TESTS_KEPT,
        Verdict.APPROVE,
        f"{tests_after} tests and {tally.asserts_after} assertions kept or added "
        f"({tests_before} and {tally.asserts_before} before)",
        evidence,
    )


# --- lint --------------------------------------------------------------------------------------------

RUFF_FILES = ("ruff.toml", ".ruff.toml")
# Which hooks run is the base commit's say (review/precommit.py): a change to the list is one to its reviewer.
HOOK_FILES = (PRECOMMIT_CONFIG,)
MAX_LINTED = 200  # files on one command line; a change this large is the size reviewer's
_SUPPRESS = re.compile(r"#\s*(?:noqa\b|ruff\s*:\s*noqa|fmt\s*:\s*(?:off|skip))", re.I)


def ruff_config(base_texts: Mapping[str, str]) -> str | None:
    """Where the base commit configures ruff at its top (`ruff.toml`, `.ruff.toml`, `[tool.ruff]`)."""
    for name in RUFF_FILES:
        if name in base_texts:
            return name
    table = _pyproject_table(base_texts.get("pyproject.toml"), "tool", "ruff")
    if isinstance(table, dict):
        return "pyproject.toml [tool.ruff]"
    return None


def lint_config_edits(changes: Sequence[Change]) -> list[str]:
    """Files of the change that would alter what the linters check: any ruff.toml, a pyproject's
    [tool.ruff], the repository's .pre-commit-config.yaml."""
    edits = []
    for change in changes:
        name = PurePosixPath(change.path).name
        if (
            name in RUFF_FILES
            or change.path in HOOK_FILES
            or (
                name == "pyproject.toml"
                and _pyproject_table(change.before, "tool", "ruff")
                != _pyproject_table(change.after, "tool", "ruff")
            )
        ):
            edits.append(change.path)
    return sorted(edits)


def lint_targets(changes: Sequence[Change]) -> list[str]:
    """The Python files of the change that still exist: what the linter is run on."""
    return sorted(
        change.path
        for change in work(changes)
        if change.kind != ChangeKind.DELETED and change.path.endswith((".py", ".pyi"))
    )


def suppressions(changes: Sequence[Change]) -> list[str]:
    """`path:line` of each added line that silences the linter or formatter (`# noqa`, `# fmt: off`…)."""
    found = []
    for change in work(changes):
        if change.after is None or not change.path.endswith((".py", ".pyi")):
            continue
        for number, line in enumerate(change.after.splitlines(), start=1):
            if number in change.added_lines and _SUPPRESS.search(line):
                found.append(f"{change.path}:{number}")
    return found


@dataclass(frozen=True, slots=True)
class Ran:
    """What one sandboxed linter command did: its exit code and the output it printed (its tail)."""

    exit_code: int
    output: str
    timed_out: bool = False


_DIAGNOSTIC = re.compile(r"^(?P<path>[^\n:]+):(?P<row>\d+):(?P<col>\d+): (?P<text>.*)$", re.MULTILINE)


def blamed_diagnostics(output: str, changes: Sequence[Change]) -> list[str]:
    """The `ruff check --output-format concise` lines that fall on a line the change added (all lines of
    a new file): what the change brought, not what the file already had."""
    by_path = {change.path: change for change in changes}
    blamed = []
    for match in _DIAGNOSTIC.finditer(output):
        change = by_path.get(match.group("path").removeprefix("./"))
        if change is None:
            continue
        if change.kind == ChangeKind.ADDED or int(match.group("row")) in change.added_lines:
            blamed.append(f"{change.path}:{match.group('row')}: {match.group('text').strip()}")
    return blamed


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def formatting_changes(output: str, changes: Sequence[Change]) -> tuple[list[str], list[str]]:
    """From `ruff format --diff` (each body line cut to its first character): (the files whose formatting
    would change a line the change added, any line of a new file; the changed files whose formatting would
    change lines the change left alone, so the repository does not keep them ruff-formatted)."""
    by_path = {change.path: change for change in changes}
    blamed: list[str] = []
    untouched: list[str] = []
    change: Change | None = None
    line = 0
    for text in output.splitlines():
        if text.startswith("--- "):
            change = by_path.get(text[4:].strip().removeprefix("a/").removeprefix("./"))
            continue
        hunk = _HUNK.match(text)
        if hunk or text.startswith("+++ "):
            line = int(hunk.group(1)) if hunk else line
            continue
        if change is None or text[:1] not in ("-", " ", ""):
            continue
        if text[:1] == "-":
            added = change.kind == ChangeKind.ADDED or line in change.added_lines
            found = blamed if added else untouched
            if change.path not in found:
                found.append(change.path)
        line += 1  # a removed or context line (an empty one is context) advances the old side
    return blamed, untouched


def lint_check(
    changes: Sequence[Change],
    config: str | None,
    check: Ran | None = None,
    format_: Ran | None = None,
    hooks: HookReport | None = None,
) -> Check:
    """The lint vote: the repository's own ruff (configured at its base commit) on the changed Python
    files, blaming only what the change added, and its own offline pre-commit hooks (`hooks`, from the
    base commit's .pre-commit-config.yaml) on the changed files; the change may not loosen either."""
    targets = lint_targets(changes)
    evidence: dict[str, Any] = {"config": config, "files": targets[:50]}
    edits = lint_config_edits(changes)
    if edits:
        return Check(LINT, Verdict.REJECT, f"changes the lint configuration: {_listed(edits)}", evidence)
    if hooks is not None:
        changed = {change.path for change in changes}
        runs = sorted((path, hook) for hook, path in hooks.programs.items() if path in changed)
        if runs:
            path, hook = runs[0]
            return Check(LINT, Verdict.REJECT, f"changes {path}, which pre-commit hook {hook} runs", evidence)
    silenced = suppressions(changes)
    if silenced:
        evidence["suppressions"] = silenced[:50]
        return Check(LINT, Verdict.REJECT, f"silences the linter at {_listed(silenced)}", evidence)
    ruff = _ruff_vote(changes, targets, config, check, format_, evidence)
    return ruff if hooks is None else _with_hooks(ruff, hooks, evidence)


def _ruff_vote(
    changes: Sequence[Change],
    targets: list[str],
    config: str | None,
    check: Ran | None,
    format_: Ran | None,
    evidence: dict[str, Any],
) -> Check:
    if config is None:
        return Check(
            LINT, Verdict.ABSTAIN, "no ruff configured on the base commit: lint not checked", evidence
        )
    if not targets:
        return Check(LINT, Verdict.ABSTAIN, "no Python file changed: nothing to lint", evidence)
    if len(targets) > MAX_LINTED:
        return Check(
            LINT, Verdict.ABSTAIN, f"{len(targets)} Python files changed: too many to lint", evidence
        )
    for step, ran in (("ruff check", check), ("ruff format", format_)):
        if ran is None:
            continue
        evidence[step.replace(" ", "_")] = {"exit_code": ran.exit_code, "output": ran.output[-1500:]}
        if ran.timed_out:
            return Check(LINT, Verdict.ABSTAIN, f"{step} timed out: lint not checked", evidence)
        if ran.exit_code == 127:
            return Check(
                LINT, Verdict.ABSTAIN, f"ruff is configured but not installed: {step} not run", evidence
            )
        if ran.exit_code not in (0, 1):
            return Check(LINT, Verdict.ABSTAIN, f"{step} could not run (exit {ran.exit_code})", evidence)
    problems = blamed_diagnostics(check.output, changes) if check is not None and check.exit_code else []
    formatted = format_ is not None and format_.exit_code == 0
    unformatted, unkept = (
        formatting_changes(format_.output, changes) if format_ and not formatted else ([], [])
    )
    evidence["diagnostics"], evidence["unformatted"] = problems[:50], unformatted[:50]
    if problems:
        return Check(
            LINT,
            Verdict.REJECT,
            f"ruff: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
            evidence,
        )
    if unkept:  # the repository does not keep these files ruff-formatted: not the change's to start
        evidence["format_not_kept"] = unkept[:50]
        return Check(
            LINT,
            Verdict.APPROVE,
            f"ruff check clean; format not checked: {_listed(unkept)} not ruff-formatted at the base",
            evidence,
        )
    if unformatted:
        return Check(LINT, Verdict.REJECT, f"ruff format would change {_listed(unformatted)}", evidence)
    return Check(LINT, Verdict.APPROVE, f"ruff check and format clean on {_listed(targets)}", evidence)


# Exit codes of a shell that could not start the hook's program: the hook did not run, nothing was judged.
_NOT_STARTED = {126: "not executable", 127: "not found"}


def _with_hooks(ruff: Check, hooks: HookReport, evidence: dict[str, Any]) -> Check:
    """The ruff vote with the pre-commit hooks' verdict joined in: a failing hook rejects (one line
    naming it and its file); hooks that pass approve what ruff left alone; none run leaves it as it was."""
    not_run = list(hooks.not_run)
    failed, passed = [], []
    for ran in hooks.ran:
        if ran.timed_out:
            not_run.append(f"{ran.hook}: not run: timed out")
        elif ran.exit_code in _NOT_STARTED and not ran.modified:
            not_run.append(
                f"{ran.hook}: not run: its program is {_NOT_STARTED[ran.exit_code]} in the sandbox"
            )
        elif ran.exit_code or ran.modified:
            failed.append(ran)
        else:
            passed.append(ran)
    evidence["pre_commit"] = {
        "ran": [
            {
                "hook": ran.hook,
                "files": list(ran.files[:50]),
                "exit_code": ran.exit_code,
                "output": ran.output[-1500:],
                **({"modified": list(ran.modified[:50])} if ran.modified else {}),
            }
            for ran in hooks.ran
        ],
        "not_run": not_run,
        **({"problem": hooks.problem} if hooks.problem else {}),
    }
    if ruff.verdict == Verdict.REJECT:
        return ruff
    if failed:
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        return Check(LINT, Verdict.REJECT, failure_line(failed[0]) + more, evidence)
    names = _listed([ran.hook for ran in passed])
    if passed and ruff.verdict == Verdict.APPROVE:
        return Check(LINT, Verdict.APPROVE, f"{ruff.reason}; pre-commit hooks {names} pass", evidence)
    if passed:
        files = sorted({path for ran in passed for path in ran.files})
        on = f" on {_listed(files)}" if files else ""
        return Check(LINT, Verdict.APPROVE, f"pre-commit hooks {names} pass{on}", evidence)
    if ruff.verdict == Verdict.ABSTAIN:
        why = hooks.problem or "no pre-commit hook checks the changed files"
        if not_run and not hooks.problem:
            why = f"pre-commit: {_counted(len(not_run), 'hook')} not run"
        return Check(LINT, Verdict.ABSTAIN, f"{ruff.reason}; {why}", evidence)
    return ruff
