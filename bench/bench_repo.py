"""Real work on a real repository: tasks made from a library's own functions, checked by its own tests.

Input: a pure-Python library whose sdist ships its tests, pinned in LIBRARIES by name, version and the
sdist's sha256 (downloaded once with pip into ~/.cache/pantheon-git/bench-repo/, refused on any other
hash). Then, the way a user would meet it:

1. A git repository is built from the sdist (one commit: the library as released, with a .gitignore for
   bytecode) and its tests run once under a tracer (a pytest plugin, sys.setprofile): which top-level
   functions and methods of the library each passing test node executed.
2. Two tasks per such function. **stub**: the body replaced by `raise NotImplementedError`, decorators,
   signature and docstring kept (what agents/stubs.py recognises as a stub). **add**: the whole function
   removed (and its name from the module's `__all__`); the spec's scope is its docstring's first
   paragraph, its `signature` field the def line's (`toolz.itertoolz.groupby(key, seq)`), so the night's
   place step puts the stub back (agents/placement.py). Acceptance: `python -m pytest` on at most
   MAX_NODES of the library's own test node ids that exercise the function (those that execute the
   fewest library functions first). Each task is verified by running it: the acceptance must fail on
   the task's base (its own branch, main plus the one changed file) and pass on the original, and for
   "add" also on the original body put into the stub the place step writes (where placement puts it,
   `__all__` as it leaves it: a task a perfect night could not pass is no task); a task that does not
   is dropped (counted in `dropped`). A function the night could not get at is dropped
   too: one whose stub is not the first stub of its file, an "add" of a decorated function (placement
   writes no decorators) or one without a docstring.
3. Split by a hash of the function's qualified name (`module.Class.name`), with the dataset's own rule
   (training/dataset.py holdout): held out or training, both kinds on the same side. Task ids are chosen
   so that the dataset's split of the task id agrees, so training never sees a held-out function.

Measured on the held-out half (the first --limit tasks per kind, in the order of a hash of their names),
the way a user runs it: specs queued with `git pantheon queue` in the library's repository (set up by
`git pantheon init`; the bench flow: place -> implement -> test (one repair round) -> gate, no reviewers,
as in bench_agent.py), then `git pantheon night --json` with `[night] samples = N`:

- raw_pass1: greedy completion of the body by the model from the file alone (the file up to the stub's
  head, as the night's first move at a stub; for "add", the stub the place step would put), at most
  300 tokens, cut where the body dedents; the acceptance run on the result.
- night_pass1: the first (greedy) attempt passed the gate; night_best_of_n: any of the N attempts did.
- heldout_pass1_before / heldout_pass1_after: held-out pass@1 rate (a fraction) before training and after
  each of --train-nights nights, each as a team runs it: a night on the next --limit training tasks per
  kind, the morning (a person fixes each task it failed, simulated by committing the library's own code
  on the task's last run branch, which the trainer mines as a morning fix), then `git pantheon night
  --train` (mine, LoRA, evaluate, promote only beyond noise), then the held-out tasks re-queued, greedy.
  `training_nights` gives each night's passes, fixes, rows and the trainer's outcome and reason.
- spread: the sample standard deviation of best-of-N rates over --seeds (each seed its own night).
- seconds_per_task, lines_changed (mean, passing first attempts): from the night.

Counts (raw_pass1, night_pass1, night_best_of_n) are of `n` tasks, as in bench_agent.py; rates are
fractions. Run: .venv/bin/python bench/bench_repo.py toolz|isodate [--limit 4] [--samples 4]
[--seeds 0 1 2] [--train-nights 3] [--json]; `--tasks-only` builds and verifies the tasks and prints
their counts (once per library and builder version: about 2 minutes for isodate, 10 for toolz on 2 busy
cores; cached in ~/.cache/pantheon-git/bench-repo/); `--keep` keeps the repository with its run
branches and notes. Budget: an attempt took 40 to 90 s on 2 shared cores (implement, test, one repair
round), so the default (4 held-out tasks per kind, best-of-4) is at most 32 attempts, about 45 minutes;
a bigger --limit or --samples grows it in proportion.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import common  # noqa: F401  (the repository on sys.path)

from pantheon_git.agents.placement import PlacementError, stubs_for_task
from pantheon_git.agents.stubs import find_stub, fit_prompt
from pantheon_git.training.dataset import holdout

BENCH_VERSION = 2  # of the task builder: a cached task list from another version is rebuilt
MAX_NODES = 3  # test node ids per task
RAW_MAX_TOKENS = 300
CHECK_TIMEOUT_S = 120
PLACEHOLDER = "raise NotImplementedError"
IDENTITY = ["-c", "user.name=Bench", "-c", "user.email=bench@localhost"]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pantheon-git" / "bench-repo"


@dataclass(frozen=True, slots=True)
class Library:
    name: str  # on the package index
    version: str
    sha256: str  # of the sdist
    package: str  # the import name
    src: str = ""  # "src" for a src layout (PYTHONPATH=src in the acceptance)
    tests: str = "tests"  # the folder of its tests (node ids elsewhere are not acceptance)


# Two styles: toolz, many small functional helpers in a few long modules (tests beside the package);
# isodate, parsers and classes with dunder methods (src layout, parametrized tests).
LIBRARIES = {
    "toolz": Library(
        "toolz",
        "1.2.0",
        "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490",
        "toolz",
        tests="toolz/tests",
    ),
    "isodate": Library(
        "isodate",
        "0.7.2",
        "4cd1aa0f43ca76f4a6c6c0292a85f40b35ec2e43e315b59f06e6d32171a953e6",
        "isodate",
        src="src",
    ),
}


@dataclass(frozen=True, slots=True)
class Function:
    """A top-level function or a method of a top-level class of the library."""

    path: str  # the file, relative to the repository
    module: str  # dotted
    qualname: str  # `groupby`, `Duration.__add__`
    cls: str | None
    first: int  # first line (its decorators), 1-based
    last: int
    head_end: int  # last line of its def line(s) and docstring
    body_indent: str
    docstring: str | None
    decorated: bool
    signature: str  # what follows the name in its def line: `(key, seq)`, `(self) -> int`

    @property
    def name(self) -> str:
        return self.qualname.rpartition(".")[2]

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass(slots=True)
class Task:
    kind: str  # "stub" or "add"
    function: Function
    base_text: str  # the function's file at the task's base
    node_ids: list[str]
    acceptance: str
    heldout: bool
    stub_text: str = ""  # the file with the stub the night completes (for "add": as the place step puts it)


@dataclass(slots=True)
class Built:
    """The tasks of a library, verified, and what was dropped and why."""

    tasks: list[Task]
    dropped: dict[str, int] = field(default_factory=dict)
    functions: int = 0
    traced: int = 0


# --- the library -------------------------------------------------------------------------------------


def fetch_sdist(library: Library, cache: Path = CACHE) -> Path:
    """The pinned sdist, downloaded with pip once; refused (SystemExit) when its sha256 is not the pin."""
    folder = cache / "sdists"
    folder.mkdir(parents=True, exist_ok=True)
    found = [p for p in folder.glob("*.tar.gz") if _sdist_of(p, library)]
    if not found:
        pip = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(folder),
        ]
        subprocess.run([*pip, f"{library.name}=={library.version}"], check=True, capture_output=True)
        found = [p for p in folder.glob("*.tar.gz") if _sdist_of(p, library)]
    if len(found) != 1:
        raise SystemExit(f"bench_repo: no sdist of {library.name} {library.version} in {folder}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != library.sha256:
        raise SystemExit(f"bench_repo: {found[0]}: sha256 {digest}, pinned {library.sha256}")
    return found[0]


def _sdist_of(path: Path, library: Library) -> bool:
    stem = re.sub(r"[-_.]+", "_", path.name.removesuffix(".tar.gz").lower())
    return stem == re.sub(r"[-_.]+", "_", f"{library.name}-{library.version}".lower())


def git(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def repo_from_tree(tree: Path, root: Path, message: str) -> Path:
    """A new repository at `root` holding `tree`'s files in one commit on main (bytecode ignored)."""
    shutil.copytree(tree, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    ignore = root / ".gitignore"
    kept = ignore.read_text() if ignore.exists() else ""
    ignore.write_text(
        kept + ("\n" if kept and not kept.endswith("\n") else "") + "__pycache__/\n*.pyc\n.pytest_cache/\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "config", "user.name", "Bench")
    git(root, "config", "user.email", "bench@localhost")
    # Everything released is committed, what the release's own .gitignore names too: isodate's sdist
    # ships its generated src/isodate/version.py, which its .gitignore lists, and a worktree without it
    # (every night's, every replay's) cannot import the library, so no task could pass.
    git(root, "add", "-A", "--force")
    git(root, "commit", "-q", "-m", message)
    left = git(root, "status", "--porcelain", "--ignored")
    if left.strip():
        raise RuntimeError(f"{root}: files the commit left out, which a worktree would lack:\n{left}")
    return root


def repo_from_sdist(library: Library, sdist: Path, root: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="bench-repo-sdist-") as scratch:
        with tarfile.open(sdist) as archive:
            archive.extractall(scratch, filter="data")
        (top,) = Path(scratch).iterdir()
        return repo_from_tree(top, root, f"{library.name} {library.version}, as released (sdist)")


# --- functions and the tests that exercise them ---------------------------------------------------------


def module_files(root: Path, library: Library) -> list[str]:
    """The library's own modules (its tests left out), relative to the repository."""
    top = root / library.src / library.package if library.src else root / library.package
    tests = f"{library.tests.rstrip('/')}/"
    found = []
    for path in sorted(top.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(tests) or "/tests/" in f"/{relative}" or path.name.startswith("test_"):
            continue
        found.append(relative)
    return found


def _dotted(path: str, library: Library) -> str:
    inside = path.removeprefix(f"{library.src}/") if library.src else path
    return inside.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".")


def _head_end(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int | None:
    first = node.body[0]
    has_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    end = first.end_lineno if has_doc else first.lineno - 1
    if end is None or end < node.lineno or (has_doc and len(node.body) == 1) or first.lineno == node.lineno:
        return None  # a one-liner, or nothing but a docstring: nothing to take out
    return end


def functions_of(path: str, text: str, module: str) -> list[Function]:
    """Top-level functions and methods of top-level classes of one module."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    lines = text.splitlines(keepends=True)
    found = []
    owners: list[tuple[str | None, list[ast.stmt]]] = [(None, tree.body)]
    owners += [(node.name, node.body) for node in tree.body if isinstance(node, ast.ClassDef)]
    for cls, body in owners:
        for node in body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            head_end = _head_end(node)
            if head_end is None or node.end_lineno is None:
                continue
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            found.append(
                Function(
                    path=path,
                    module=module,
                    qualname=f"{cls}.{node.name}" if cls else node.name,
                    cls=cls,
                    first=min([node.lineno, *(d.lineno for d in node.decorator_list)]),
                    last=node.end_lineno,
                    head_end=head_end,
                    body_indent=_indent(lines[node.body[-1].lineno - 1]),
                    docstring=ast.get_docstring(node),
                    decorated=bool(node.decorator_list),
                    signature=f"({ast.unparse(node.args)}){returns}",
                )
            )
    return found


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def library_functions(root: Path, library: Library) -> list[Function]:
    found = []
    for path in module_files(root, library):
        found += functions_of(path, (root / path).read_text(), _dotted(path, library))
    return found


TRACER = '''\
"""pytest plugin of bench_repo.py: which library functions each passing test node executes."""
import json, os, sys
import pytest

ROOT = os.environ["BENCH_TRACE_ROOT"]
calls = set()
seen = {}
failed = set()


def profile(frame, event, arg):
    if event == "call":
        code = frame.f_code
        if code.co_filename.startswith(ROOT):
            calls.add((code.co_filename[len(ROOT):].lstrip("/"), code.co_firstlineno))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    calls.clear()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        seen[item.nodeid] = sorted(calls)


def pytest_runtest_logreport(report):
    if report.failed or report.skipped:
        failed.add(report.nodeid)


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_TRACE_OUT"], "w") as out:
        json.dump({node: found for node, found in seen.items() if node not in failed}, out)
'''


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with this interpreter's folder first on PATH (`python` is the venv's)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **(extra or {})}


def trace_tests(root: Path, library: Library) -> dict[str, list[tuple[str, int]]]:
    """Each passing test node id -> the (file, first line) of the library code objects it ran."""
    with tempfile.TemporaryDirectory(prefix="bench-repo-trace-") as scratch:
        (Path(scratch) / "bench_repo_tracer.py").write_text(TRACER)
        out = Path(scratch) / "trace.json"
        pythonpath = os.pathsep.join([scratch, *([library.src] if library.src else [])])
        env = python_env(
            {
                "BENCH_TRACE_ROOT": str(root.resolve()),
                "BENCH_TRACE_OUT": str(out),
                "PYTHONPATH": pythonpath,
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        command = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_repo_tracer"]
        subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
        if not out.exists():
            raise SystemExit(f"bench_repo: the traced test run of {root} wrote nothing")
        data = json.loads(out.read_text())
    return {node: [(path, int(line)) for path, line in found] for node, found in data.items()}


def tests_of(
    functions: Sequence[Function], traced: Mapping[str, list[tuple[str, int]]], library: Library
) -> dict[str, list[str]]:
    """qualified name -> up to MAX_NODES test node ids (of the library's test folder) that execute it,
    the most targeted first (fewest library functions executed, then node id)."""
    keys: dict[tuple[str, int], str] = {}
    for function in functions:
        keys[(function.path, function.first)] = function.qualified  # co_firstlineno: the first decorator
    runs: dict[str, list[tuple[int, str]]] = {}
    for node, found in traced.items():
        if (
            not node.startswith(f"{library.tests.rstrip('/')}/")
            or not node.isascii()
            or any(c.isspace() for c in node)
        ):
            continue
        names = {keys[key] for key in found if key in keys}
        for name in names:
            runs.setdefault(name, []).append((len(names), node))
    return {name: [node for _, node in sorted(found)[:MAX_NODES]] for name, found in runs.items()}


# --- tasks ----------------------------------------------------------------------------------------------


def stub_source(text: str, function: Function) -> str:
    """The module with `function`'s body replaced by the placeholder (its decorators, signature and
    docstring kept)."""
    lines = text.splitlines(keepends=True)
    return "".join(
        [*lines[: function.head_end], f"{function.body_indent}{PLACEHOLDER}\n", *lines[function.last :]]
    )


def remove_from_all(text: str, name: str) -> str:
    """`text` without `name` in its top-level `__all__` list or tuple (unchanged when not there)."""
    tree = ast.parse(text)
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            continue
        for index, item in enumerate(node.value.elts):
            if not (isinstance(item, ast.Constant) and item.value == name):
                continue
            starts = [0]
            for line in text.splitlines(keepends=True):
                starts.append(starts[-1] + len(line))
            begin = starts[item.lineno - 1] + item.col_offset
            end = starts[(item.end_lineno or item.lineno) - 1] + (item.end_col_offset or 0)
            after = re.match(r"[ \t]*,[ \t]*", text[end:])
            if after:
                end += after.end()
            elif index:  # the last item: the comma before it goes
                before = re.search(r",\s*$", text[:begin])
                begin = before.start() if before else begin
            line_begin = text.rfind("\n", 0, begin) + 1
            line_end = text.find("\n", end)
            if (
                not text[line_begin:begin].strip()
                and not text[end : line_end if line_end >= 0 else None].strip()
            ):
                begin, end = line_begin, (line_end + 1 if line_end >= 0 else len(text))
            removed = text[:begin] + text[end:]
            if isinstance(node.value, ast.Tuple) and len(node.value.elts) == 2:
                removed = _one_tuple(removed)  # ('a', 'b') -> ('b',), not ('b'): a string
            return removed
    return text


def _one_tuple(text: str) -> str:
    """`text` with a comma after the one item of a parenthesized `__all__` the parser reads as a string."""
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ):
            lines = text.splitlines(keepends=True)
            row = (node.value.end_lineno or node.value.lineno) - 1
            at = node.value.end_col_offset or 0
            lines[row] = lines[row][:at] + "," + lines[row][at:]
            return "".join(lines)
    return text


def remove_source(text: str, function: Function) -> str:
    """The module without `function` (decorators included, and the blank lines after it), nor its name
    in `__all__`."""
    lines = text.splitlines(keepends=True)
    after = function.last
    while after < len(lines) and not lines[after].strip():
        after += 1
    if after == len(lines):  # the last function: the blank lines before it go instead
        start = function.first - 1
        while start > 0 and not lines[start - 1].strip():
            start -= 1
        kept = [*lines[:start]]
    else:
        kept = [*lines[: function.first - 1], *lines[after:]]
    removed = "".join(kept)
    return removed if function.cls else remove_from_all(removed, function.name)


def first_paragraph(docstring: str | None) -> str:
    return (docstring or "").strip().split("\n\n")[0].strip()


def acceptance_command(library: Library, node_ids: Sequence[str]) -> str:
    prefix = "PYTHONDONTWRITEBYTECODE=1 " + (f"PYTHONPATH={library.src} " if library.src else "")
    return f"{prefix}python -m pytest -q -p no:cacheprovider -x " + " ".join(shlex.quote(n) for n in node_ids)


def spec_fields(task: Task) -> dict[str, Any]:
    """The spec's fields (no id, base, flow or limits): what a person would write for this task."""
    function = task.function
    if task.kind == "stub":
        return {
            "title": f"Implement {function.qualname} in {function.path}",
            "scope": f"{function.path} holds the signature and docstring of `{function.qualname}` with "
            f"`{PLACEHOLDER}` as its body: replace that body with code that does what the docstring says, "
            "so that the library's own tests pass. Change only that file.",
            "files": [function.path],
            "acceptance": [task.acceptance],
        }
    where = f"class {function.cls} of {function.path}" if function.cls else function.path
    return {
        "title": f"Add {function.qualname} to {function.path}",
        "scope": f"{first_paragraph(function.docstring)}\n\nAdd `{function.name}` to {where}; the "
        "library's own tests say when it is done.",
        "files": [function.path],
        "signature": f"{function.qualified}{function.signature}",
        "acceptance": [task.acceptance],
    }


def placed_text(task: Task, files: Mapping[str, str]) -> str | None:
    """The task's file after the night's place step (agents/placement.py), or None if it places nothing."""
    try:
        placed = stubs_for_task(spec_fields(task), files)
    except PlacementError:
        return None
    return placed.get(task.function.path)


def with_body(task: Task, original: str) -> str:
    """The task's stub text completed with the function's original body (what a perfect night writes)."""
    stub = find_stub(task.stub_text)
    assert stub is not None
    function = task.function
    body = "".join(original.splitlines(keepends=True)[function.head_end : function.last])
    indent = _indent(stub.whole[len(stub.head) :])
    if indent != function.body_indent:  # placed at another depth (never, for a function or a method)
        body = "".join(
            indent + line[len(function.body_indent) :] if line.strip() else line
            for line in body.splitlines(True)
        )
    return task.stub_text.replace(stub.whole, stub.head + body, 1)


def night_stub_ok(text: str, function: Function) -> bool:
    """Whether the stub the night completes first in this file is `function`'s."""
    stub = find_stub(text)
    return stub is not None and stub.name == function.name and f"def {function.name}" in stub.head


def run_acceptance(root: Path, command: str, timeout: int = CHECK_TIMEOUT_S) -> bool:
    try:
        done = subprocess.run(
            ["bash", "-c", command], cwd=root, env=python_env(), capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def repo_python_files(root: Path) -> dict[str, str]:
    """path -> text of the repository's tracked Python files (what the place step reads)."""
    listed = git(root, "ls-files", "-z", "--", "*.py").split("\0")
    return {path: (root / path).read_text() for path in listed if path and (root / path).is_file()}


def build_tasks(
    root: Path,
    library: Library,
    *,
    kinds: Sequence[str] = ("stub", "add"),
    wanted: Callable[[Function], bool] = lambda function: True,
    log: Callable[[str], None] = lambda text: None,
) -> Built:
    """Every verified task of the library in the repository at `root` (its working tree is the original
    and is left as it was). `wanted` picks the functions to try (all by default)."""
    functions = library_functions(root, library)
    traced = trace_tests(root, library)
    tests = tests_of(functions, traced, library)
    files = repo_python_files(root)
    built = Built(tasks=[], functions=len(functions), traced=len(tests))

    def drop(reason: str) -> None:
        built.dropped[reason] = built.dropped.get(reason, 0) + 1

    for function in sorted(functions, key=lambda f: order_key(f.qualified)):
        node_ids = tests.get(function.qualified)
        if not node_ids:
            drop("no test executes it")
            continue
        if not wanted(function):
            continue
        original = files[function.path]
        command = acceptance_command(library, node_ids)
        if not run_acceptance(root, command):
            drop("its tests fail on the original")
            continue
        for kind in kinds:
            task = Task(kind, function, "", node_ids, command, holdout(function.qualified))
            if kind == "stub":
                task.base_text = task.stub_text = stub_source(original, function)
            else:
                if function.decorated or not first_paragraph(function.docstring):
                    drop("add: decorated or no docstring")
                    continue
                task.base_text = remove_source(original, function)
                task.stub_text = placed_text(task, {**files, function.path: task.base_text}) or ""
            if not task.stub_text or not night_stub_ok(task.stub_text, function):
                drop(f"{kind}: not the first stub the night completes")
                continue
            path = root / function.path
            try:
                path.write_text(task.base_text)
                fails = not run_acceptance(root, command)
                # "add": the original body in the stub the place step puts must pass (where it is
                # placed, with `__all__` as placement leaves it); "stub": that is the original itself.
                path.write_text(with_body(task, original))
                solvable = kind == "stub" or run_acceptance(root, command)
            finally:
                path.write_text(original)
            if not fails:
                drop(f"{kind}: its tests pass on the base")
                continue
            if not solvable:
                drop(f"{kind}: the original body in the placed stub fails")
                continue
            built.tasks.append(task)
            log(f"  {kind} {function.qualified}: {len(node_ids)} test nodes")
    return built


def order_key(name: str) -> str:
    """The order tasks are taken in (--limit): a hash of the name, so a subset is no alphabet's start."""
    return hashlib.sha256(f"order:{name}".encode()).hexdigest()


def task_id(task: Task, round_: int = 0) -> str:
    """A task id for `task` whose own dataset split (training/dataset.py holdout) is the function's."""
    slug = re.sub(r"[^a-z0-9]+", "-", task.function.qualname.lower()).strip("-")[:18] or "f"
    short = hashlib.sha256(task.function.qualified.encode()).hexdigest()[:4]
    for k in range(10_000):
        candidate = f"{task.kind}-{slug}-{short}-{round_}-{k}"
        if holdout(candidate) == task.heldout:
            return candidate
    raise RuntimeError("no task id")  # 2**-10000


def split(tasks: Iterable[Task]) -> tuple[list[Task], list[Task]]:
    """(training half, held-out half), each in order_key order."""
    ordered = sorted(tasks, key=lambda t: (order_key(t.function.qualified), t.kind))
    return [t for t in ordered if not t.heldout], [t for t in ordered if t.heldout]


def save_tasks(built: Built, path: Path) -> None:
    data = {
        "version": BENCH_VERSION,
        "functions": built.functions,
        "traced": built.traced,
        "dropped": built.dropped,
        "tasks": [asdict(task) for task in built.tasks],
    }
    path.write_text(json.dumps(data))


def load_tasks(path: Path) -> Built | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("version") != BENCH_VERSION:
        return None
    tasks = [Task(**{**item, "function": Function(**item["function"])}) for item in data["tasks"]]
    return Built(tasks, data["dropped"], data["functions"], data["traced"])


# --- the night, the way a user runs it ------------------------------------------------------------------

BENCH_FLOW = """\
description = "bench_repo: place a missing function's stub, complete it, the library's tests, the gate."

[[nodes]]
id = "place"
agent = "place"

[[nodes]]
id = "implement"
agent = "implementer"
inputs = ["place"]
retries = 0
timeout = "{implement_timeout}s"

[[nodes]]
id = "test"
agent = "acceptance"
inputs = ["implement"]
timeout = "{check_timeout}s"
repairs = {repairs}

[[nodes]]
id = "gate"
agent = "gate"
inputs = ["test"]
"""

BENCH_CONFIG = """\
[night]
max_tasks = 1000
samples = {samples}

[gate]
require_acceptance = true
min_approvals = 0
require_fixed_check = true
"""


def pantheon(root: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """`git pantheon ARGS` in `root`, as git runs it (this interpreter's CLI), `python` on PATH the venv's."""
    return subprocess.run(
        [sys.executable, "-m", "pantheon_git", *args],
        cwd=root,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def set_up_pantheon(root: Path, samples: int, seed: int, args: argparse.Namespace) -> None:
    """`git pantheon init`, the bench's config, flow and models.toml, committed on main."""
    done = pantheon(root, "init")
    if done.returncode != 0:
        raise SystemExit(f"bench_repo: git pantheon init: {done.stderr.strip() or done.stdout.strip()}")
    write_night_settings(root, samples, seed, args)
    git(root, "add", ".pantheon")
    git(root, "commit", "-q", "-m", "pantheon: set up (bench_repo)")


def write_night_settings(root: Path, samples: int, seed: int, args: argparse.Namespace) -> None:
    from bench_agent import models_toml

    folder = root / ".pantheon"
    (folder / "config.toml").write_text(BENCH_CONFIG.format(samples=samples))
    (folder / "flows").mkdir(exist_ok=True)
    (folder / "flows" / "bench-repo.toml").write_text(
        BENCH_FLOW.format(
            implement_timeout=args.implement_timeout, check_timeout=CHECK_TIMEOUT_S, repairs=args.repairs
        )
    )
    models = models_toml("llama.cpp", args.threads, args.gpu_layers, 1).replace("seed = 0", f"seed = {seed}")
    (folder / "models.toml").write_text(models)


def settings_commit(root: Path, samples: int, seed: int, args: argparse.Namespace) -> None:
    """A new seed or sample count: committed on main (the night reads its settings from there)."""
    write_night_settings(root, samples, seed, args)
    git(root, "add", ".pantheon")
    if git(root, "status", "--porcelain", "--", ".pantheon").strip():
        git(root, "commit", "-q", "-m", f"bench_repo: samples {samples}, seed {seed}")


def commit_with_file(root: Path, tree_of: str, parent: str, path: str, text: str, message: str) -> str:
    """A commit on `parent` whose tree is `tree_of`'s with `path` holding `text` (the work tree untouched)."""
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=root,
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-repo-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git(root, "read-tree", tree_of, env=env)
        git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(root, "write-tree", env=env).strip()
    return git(root, "commit-tree", tree, "-p", parent, "-m", message).strip()


def task_branch(root: Path, task: Task, name: str) -> str:
    """A branch off main whose one commit is the task's base: the function's file as the task has it."""
    verb = "stub the body of" if task.kind == "stub" else "remove"
    message = f"bench: {verb} {task.function.qualified}"
    commit = commit_with_file(root, "main", "main", task.function.path, task.base_text, message)
    git(root, "update-ref", f"refs/heads/{name}", commit)
    return name


def morning_fix(root: Path, identifier: str, task: Task) -> bool:
    """A person's fix of a task the night failed, simulated: on its last run branch, a commit whose tree is
    the task's base with the function's file as the library has it (main's), which is what the trainer
    mines as a morning fix (training/fixes.py: a stub's body, else view and edit calls). False when the
    night left no run branch for it."""
    prefix = f"refs/heads/pantheon/{identifier}/"
    heads = git(root, "for-each-ref", "--format=%(refname)", prefix).split()
    attempts = sorted(int(ref.removeprefix(prefix)) for ref in heads if ref.removeprefix(prefix).isdigit())
    if not attempts:
        return False
    branch = f"{prefix}{attempts[-1]}"
    original = git(root, "show", f"main:{task.function.path}")
    message = f"fix {task.function.qualified} by hand (bench_repo: the library's own code)"
    commit = commit_with_file(root, f"bench/{identifier}", branch, task.function.path, original, message)
    git(root, "update-ref", branch, commit)
    return True


def queue_tasks(root: Path, tasks: Sequence[Task], round_: int, samples: int) -> dict[str, Task]:
    """Each task on its own base branch, queued with `git pantheon queue` (one call, spec files)."""
    by_id: dict[str, Task] = {}
    with tempfile.TemporaryDirectory(prefix="bench-repo-specs-") as scratch:
        paths = []
        for order, task in enumerate(tasks):
            identifier = task_id(task, round_)
            fields = spec_fields(task)
            spec = {
                "id": identifier,
                "flow": "bench-repo",
                "base": task_branch(root, task, f"bench/{identifier}"),
                "priority": max(-1000, -order),
                **fields,
                "limits": {"max_attempts": samples, "samples": samples, "max_minutes": 60},
            }
            import tomli_w

            path = Path(scratch) / f"{identifier}.toml"
            path.write_text(tomli_w.dumps(spec, multiline_strings=True))
            paths.append(str(path))
            by_id[identifier] = task
        done = pantheon(root, "queue", *paths)
        if done.returncode != 0:
            raise SystemExit(f"bench_repo: git pantheon queue: {done.stderr.strip()}")
    return by_id


def requeue(
    root: Path, tasks: Sequence[Task], round_: int, samples: int, earlier: dict[str, Task]
) -> dict[str, Task]:
    """The held-out tasks queued again for this round, and the earlier round's copies cancelled, so the
    trainer judges an adapter on each held-out function once, not once per round."""
    by_id = queue_tasks(root, tasks, round_, samples)
    for identifier in earlier:
        done = pantheon(root, "cancel", identifier, "-m", "bench_repo: queued again as a later round")
        if done.returncode != 0:
            raise SystemExit(f"bench_repo: git pantheon cancel {identifier}: {done.stderr.strip()}")
    return by_id


def run_night(
    root: Path, timeout: float, *, train: bool = False, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """`git pantheon night --json` (with --train: then the nightly trainer); its JSON event lines."""
    command = [sys.executable, "-m", "pantheon_git", "night", "--json", *(["--train"] if train else [])]
    events: list[dict[str, Any]] = []
    with subprocess.Popen(
        command, cwd=root, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        start = time.monotonic()
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            events.append(event)
            if event.get("event") == "done":
                state = "passed" if event.get("passed") else event.get("outcome")
                detail = str(event.get("detail", ""))[:160]
                log(f"  {event['task']} attempt {event['attempt']}: {state} {detail}")
            elif event.get("event") == "training":
                log(f"  training: {event.get('outcome')} {event.get('reason', '')}")
            if time.monotonic() - start > timeout:
                proc.kill()
                log("  the night ran out of the bench's time and was stopped")
                break
        proc.wait()
    return events


def night_figures(
    root: Path, by_id: Mapping[str, Task], events: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per task: pass@1, best-of-N, attempts, lines changed (first passing attempt), seconds (from its
    first attempt's start to its last attempt's end, by the night's own clock)."""
    runs: dict[str, list[tuple[int, bool, str]]] = {}
    began: dict[str, float] = {}
    ended: dict[str, float] = {}
    for event in events:
        task = event.get("task")
        if task in by_id and "elapsed_s" in event:
            began.setdefault(str(task), float(event["elapsed_s"]))
            ended[str(task)] = float(event["elapsed_s"])
        if event.get("event") == "done" and event.get("task") in by_id:
            runs.setdefault(event["task"], []).append(
                (int(event["attempt"]), bool(event.get("passed")), str(event.get("branch", "")))
            )
    figures: dict[str, dict[str, Any]] = {}
    for identifier in by_id:
        found = sorted(runs.get(identifier, []))
        passing = [branch for _, passed, branch in found if passed]
        lines = None
        if passing:
            numstat = git(
                root,
                "diff",
                "--numstat",
                f"bench/{identifier}",
                passing[0],
                "--",
                by_id[identifier].function.path,
            )
            lines = sum(
                int(a) + int(b)
                for a, b, *_ in (row.split("\t") for row in numstat.splitlines())
                if a.isdigit()
            )
        figures[identifier] = {
            "function": by_id[identifier].function.qualified,
            "pass1": bool(found) and found[0][:2] == (1, True),
            "best": bool(passing),
            "attempts": len(found),
            "lines_changed": lines,
            # None: the night ended (the bench's --night-timeout) before any attempt of it did.
            "seconds": round(ended[identifier] - began[identifier], 1) if found else None,
        }
    return figures


# --- raw completion ---------------------------------------------------------------------------------------


def cut_body(completion: str, indent: str) -> str:
    """The completed body: its lines while they are blank or indented at least as the body is."""
    kept = []
    for line in completion.splitlines(keepends=True):
        if line.strip() and not line.startswith(indent):
            break
        kept.append(line)
    if kept and not kept[-1].endswith("\n"):
        kept.pop()  # cut off at max_tokens: the last whole line stays
    return "".join(kept).rstrip() + "\n"


def raw_pass(runtime: Any, task: Task, scratch: Path) -> bool:
    """The model completes the body from the file alone; the task's acceptance runs on the result."""
    stub = find_stub(task.stub_text)
    assert stub is not None
    prompt = stub.prefix
    window = runtime.context_window
    if window is not None and runtime.count_tokens(prompt) > window - RAW_MAX_TOKENS:
        prompt = fit_prompt(stub.before, "", stub.head, runtime.count_tokens, window - RAW_MAX_TOKENS) or ""
    def_line = next(
        line for line in stub.head.splitlines() if line.lstrip().startswith(("def ", "async def "))
    )
    outer = _indent(def_line)
    stops = sorted(
        {f"\n{outer}def ", f"\n{outer}@", f"\n{outer}class ", "\ndef ", "\nclass ", "\nif __name__"}
    )
    result = runtime.llama.create_completion(
        prompt, max_tokens=RAW_MAX_TOKENS, temperature=0.0, top_k=1, stop=stops
    )
    indent = _indent(stub.whole[len(stub.head) :]) or (outer + "    ")  # the placeholder's
    body = cut_body(result["choices"][0]["text"], indent)
    text = task.stub_text.replace(stub.whole, stub.head + body, 1)
    path = scratch / task.function.path
    original = path.read_text()
    try:
        path.write_text(text)
        return run_acceptance(scratch, task.acceptance)
    finally:
        path.write_text(original)


# --- the bench ----------------------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> float | None:
    return round(statistics.stdev(values), 3) if len(values) > 1 else None


def library_repo(library: Library, top: Path) -> Path:
    return repo_from_sdist(library, fetch_sdist(library), top / library.name)


def builder_key() -> str:
    """What the task list depends on besides the library: this builder's version and the night's stub
    finder and placement (a fix there changes which "add" tasks a perfect night could pass)."""
    from pantheon_git.agents import placement, stubs

    digest = hashlib.sha256(str(BENCH_VERSION).encode())
    for module in (placement, stubs):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:12]


def tasks_for(library: Library, log: Callable[[str], None]) -> Built:
    """The library's verified tasks, from the cache when this version of the builder made them."""
    cached = CACHE / f"{library.name}-{library.version}-tasks-{builder_key()}.json"
    built = load_tasks(cached)
    if built is not None:
        return built
    with tempfile.TemporaryDirectory(prefix="bench-repo-build-") as scratch:
        root = library_repo(library, Path(scratch))
        log(f"{library.name} {library.version}: tracing its tests and verifying every task (once, cached)")
        built = build_tasks(root, library, log=log)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_tasks(built, cached)
    return built


def counts(built: Built) -> dict[str, Any]:
    kinds = {kind: [t for t in built.tasks if t.kind == kind] for kind in ("stub", "add")}
    return {
        "functions": built.functions,
        "functions_tested": built.traced,
        "tasks": {kind: len(found) for kind, found in kinds.items()},
        "heldout": {kind: sum(t.heldout for t in found) for kind, found in kinds.items()},
        "training": {kind: sum(not t.heldout for t in found) for kind, found in kinds.items()},
        "dropped": built.dropped,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=sorted(LIBRARIES))
    parser.add_argument("--limit", type=int, default=4, help="held-out tasks per kind (default 4)")
    parser.add_argument("--kinds", nargs="+", choices=["stub", "add"], default=["stub", "add"])
    parser.add_argument("--samples", type=int, default=4, help="best-of-N (default 4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="a night per seed (spread)")
    parser.add_argument("--train-nights", type=int, default=0, help="nights of `night --train` (default 0)")
    parser.add_argument("--repairs", type=int, default=1, help="repair rounds per attempt (default 1)")
    parser.add_argument("--implement-timeout", type=int, default=120, help="seconds per implement step")
    parser.add_argument("--night-timeout", type=int, default=3000, help="seconds a night may run")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per core)")
    parser.add_argument("--gpu-layers", type=int, default=-1, help="n_gpu_layers (-1: all, on a GPU build)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the library's repository (its path on stderr)"
    )
    parser.add_argument("--tasks-only", action="store_true", help="build and verify the tasks, print counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    def log(text: str) -> None:  # progress on stderr, also with --json (stdout holds only the object)
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    library = LIBRARIES[args.library]
    built = tasks_for(library, log)
    summary: dict[str, Any] = {
        "library": library.name,
        "version": library.version,
        "sha256": library.sha256,
        **counts(built),
    }
    if args.tasks_only:
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(summary) if args.json else json.dumps(summary, indent=1))
        return 0

    training, held = split(built.tasks)
    chosen = {kind: [t for t in held if t.kind == kind][: args.limit] for kind in args.kinds}
    train_sets = {kind: [t for t in training if t.kind == kind] for kind in args.kinds}
    top = Path(tempfile.mkdtemp(prefix="pantheon-bench-repo-"))
    try:
        root = library_repo(library, top)
        scratch = library_repo(library, top / "raw")  # the raw completions' own copy
        set_up_pantheon(root, args.samples, args.seeds[0], args)

        # Raw completion, in-process, one task at a time, the model the night serves.
        from pantheon_git.runtime.llama import runtime_for
        from pantheon_git.schema.models import load_models

        model = load_models(root)["default"]
        runtime = runtime_for("default", model.model_copy(update={"engine": "llama.cpp", "parallel": None}))
        raw: dict[str, list[bool]] = {}
        raw_seconds = 0.0
        for kind, tasks in chosen.items():
            begin = time.perf_counter()
            raw[kind] = []
            for task in tasks:
                raw[kind].append(raw_pass(runtime, task, scratch))
                log(f"  raw {kind} {task.function.qualified}: {'passed' if raw[kind][-1] else 'failed'}")
            raw_seconds += time.perf_counter() - begin
            log(f"raw pass@1 {kind}: {sum(raw[kind])}/{len(tasks)} in {time.perf_counter() - begin:.0f}s")
        del runtime

        everything = [t for kind in args.kinds for t in chosen[kind]]
        per_seed: list[dict[str, dict[str, Any]]] = []
        night_seconds: list[float] = []
        by_id: dict[str, Task] = {}
        for round_, seed in enumerate(args.seeds):
            settings_commit(root, args.samples, seed, args)
            by_id = requeue(root, everything, round_, args.samples, by_id)
            log(f"night, seed {seed}: {len(by_id)} tasks, samples {args.samples}")
            begin = time.perf_counter()
            events = run_night(root, args.night_timeout, log=log)
            night_seconds.append(time.perf_counter() - begin)
            figures = night_figures(root, by_id, events)
            per_seed.append(
                {kind: {i: f for i, f in figures.items() if by_id[i].kind == kind} for kind in args.kinds}
            )

        after: dict[str, list[float]] = {kind: [] for kind in args.kinds}
        trained: list[dict[str, Any]] = []
        round_ = len(args.seeds)
        for night in range(args.train_nights):
            batch = [
                t
                for kind in args.kinds
                for t in train_sets[kind][night * args.limit : (night + 1) * args.limit]
            ]
            settings_commit(root, args.samples, args.seeds[0], args)
            batch_ids = queue_tasks(root, batch, round_, args.samples)
            round_ += 1
            log(f"training night {night + 1}: {len(batch)} training tasks")
            worked = night_figures(root, batch_ids, run_night(root, args.night_timeout, log=log))
            failed = [identifier for identifier, f in worked.items() if not f["best"]]
            # The morning: a person fixes what the night failed (the library's own code, committed on the
            # failed run branch), then the next night trains on the passing attempts and those fixes.
            fixed = sum(morning_fix(root, identifier, batch_ids[identifier]) for identifier in failed)
            log(f"  morning: {fixed} of {len(failed)} failed training tasks fixed by hand (simulated)")
            events = run_night(root, args.night_timeout, train=True, log=log)  # nothing queued: the trainer
            training = next((e for e in events if e.get("event") == "training"), {})
            settings_commit(root, 1, args.seeds[0], args)
            by_id = requeue(root, everything, round_, 1, by_id)
            round_ += 1
            figures = night_figures(root, by_id, run_night(root, args.night_timeout, log=log))
            for kind in args.kinds:
                mine = [f for i, f in figures.items() if by_id[i].kind == kind]
                after[kind].append(round(sum(f["pass1"] for f in mine) / max(1, len(mine)), 3))
            trained.append(
                {
                    "training_tasks": len(batch),
                    "passed_at_night": len(batch) - len(failed),
                    "fixed_in_the_morning": fixed,
                    "outcome": training.get("outcome"),
                    "reason": training.get("reason"),
                    "rows": training.get("rows"),
                    "fixes": training.get("fixes"),
                    "heldout_pass1_after": {kind: after[kind][-1] for kind in args.kinds},
                }
            )

        for kind in args.kinds:
            n = len(chosen[kind])
            first = per_seed[0][kind]
            changed = [
                f["lines_changed"] for f in first.values() if f["pass1"] and f["lines_changed"] is not None
            ]
            finished = [f["seconds"] for f in first.values() if f["seconds"] is not None]
            bests = [
                sum(f["best"] for f in seed_figures[kind].values()) / max(1, n) for seed_figures in per_seed
            ]
            summary[kind] = {
                "n": n,
                "raw_pass1": sum(raw[kind]),
                "night_pass1": sum(f["pass1"] for f in first.values()),
                "night_best_of_n": sum(f["best"] for f in first.values()),
                "samples": args.samples,
                "heldout_pass1_before": round(sum(f["pass1"] for f in first.values()) / max(1, n), 3),
                "heldout_pass1_after": after[kind],
                "spread": spread(bests),
                "best_of_n_per_seed": [round(b, 3) for b in bests],
                "seconds_per_task": round(statistics.mean(finished), 1) if finished else None,
                "unfinished": n - len(finished),
                "lines_changed": round(statistics.mean(changed), 1) if changed else None,
                "attempts": sum(f["attempts"] for f in first.values()),
                "tasks": [t.function.qualified for t in chosen[kind]],
                "raw_passed": [
                    t.function.qualified for t, ok in zip(chosen[kind], raw[kind], strict=True) if ok
                ],
                "night_passed": [f["function"] for f in first.values() if f["best"]],
            }
        summary["seeds"] = args.seeds
        summary["train_nights"] = args.train_nights
        summary["training_nights"] = trained
        summary["night_seconds"] = [round(seconds, 1) for seconds in night_seconds]
        summary["raw_seconds_per_task"] = round(raw_seconds / max(1, len(everything)), 1)
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    finally:
        if args.keep:
            log(f"the repository, its run branches and notes: {top / library.name}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{library.name} {library.version}: {summary['tasks']} verified tasks, held-out half measured")
    for kind in args.kinds:
        figures = summary[kind]
        n = figures["n"]
        print(
            f"{kind:<5} n={n:3d}  raw {figures['raw_pass1']}/{n}  night pass@1 {figures['night_pass1']}/{n}  "
            f"best-of-{args.samples} {figures['night_best_of_n']}/{n}  {figures['seconds_per_task']} s/task"
        )
    print(f"wall {summary['wall_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
