"""The house keeps its shape: each folder imports only the folders below it, and only the git layer
runs the git command line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "pantheon_git"
# Lowest first; a module may import its own folder and any folder earlier in this list.
LAYERS = [
    "errors",
    "store",
    "schema",
    "tools",
    "runtime",
    "agents",
    "queue",
    "review",
    "night",
    "training",
    "ops",
    "commands",
    "cli",
]


def _folder(module: str) -> str:
    return module.removeprefix("pantheon_git.").split(".")[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pantheon_git."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("pantheon_git.")]
    return found


def test_no_folder_imports_one_above_it() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own not in LAYERS:
            continue
        for line, module in _imports(path):
            other = _folder(module)
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(own):
                upward.append(f"{path.relative_to(REPO_ROOT)}:{line}: {own} imports {module}")
    assert upward == []


def test_every_folder_says_its_job_and_what_it_may_import() -> None:
    for folder in LAYERS:
        init = PACKAGE / folder / "__init__.py"
        if init.exists() and folder not in ("commands",):
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            assert "May import" in doc, f"{init} has no 'May import' line"


def test_only_the_git_layer_runs_git() -> None:
    runs_git = re.compile(r"""subprocess\.\w+\(\s*\[\s*["']git["']|\bPopen\(\s*\[\s*["']git["']""")
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "store" / "git.py" and runs_git.search(path.read_text())
    ]
    assert offenders == []
    assert "import git" in (PACKAGE / "store" / "git.py").read_text()  # GitPython is that layer


def _module(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in it: at the top, in a function, under
    TYPE_CHECKING (`from pantheon_git.night import attempt` imports the module `attempt`)."""
    modules = {_module(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                for alias in node.names:
                    inner = f"{node.module}.{alias.name}"
                    imported.add(inner if inner in modules else node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in modules}
        graph[name] = imported - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop (Tarjan's strongly
    connected components of more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


# Cycles allowed for now: none (issue 23.3 removed the last, batched_runtime.py <-> llama.py).
KNOWN_CYCLES: list[list[str]] = []


def test_no_module_imports_itself_around_a_cycle() -> None:
    assert [cycle for cycle in import_cycles(import_graph(PACKAGE)) if cycle not in KNOWN_CYCLES] == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    package = tmp_path / "pantheon_git"
    (package / "night").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "night" / "__init__.py").write_text("")
    (package / "night" / "a.py").write_text("from pantheon_git.night.b import run\n")
    (package / "night" / "b.py").write_text("def run():\n    from pantheon_git.night import a\n")
    (package / "night" / "c.py").write_text("import pantheon_git.night.a\n")
    graph = import_graph(package)
    assert graph["pantheon_git.night.c"] == {"pantheon_git.night.a"}
    assert import_cycles(graph) == [["pantheon_git.night.a", "pantheon_git.night.b"]]


# Object ids are pygit2.Oid wherever they cross a module (store/__init__.py says why); hex is for the edges.
_ID_NAMES = {"commit", "oid", "sha", "commit_id", "blob_id", "tree_id"}
_ID_SUFFIXES = ("_commit", "_oid", "_sha")


def _type_names(annotation: ast.expr) -> set[str]:
    """The leaf types of an annotation, with `X | Y`, Optional[...], Union[...] and quoted ones flattened."""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _type_names(annotation.left) | _type_names(annotation.right)
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value).split(".")[-1] in (
        "Union",
        "Optional",
    ):
        inner = annotation.slice
        parts = inner.elts if isinstance(inner, ast.Tuple) else [inner]
        return set().union(*(_type_names(part) for part in parts))
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return _type_names(ast.parse(annotation.value, mode="eval").body)
    return {ast.unparse(annotation).split(".")[-1]}


def _public_annotations(body: list[ast.stmt], owner: str = "") -> list[tuple[int, str, str | None, ast.expr]]:
    """(line, what, name, annotation) of the parameters and returns of public functions and methods, and
    the annotated fields of public classes (dataclasses, pydantic models); private names are skipped."""
    found: list[tuple[int, str, str | None, ast.expr]] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    found.append((node.lineno, f"{owner}{node.name}({arg.arg})", arg.arg, arg.annotation))
            if node.returns is not None:
                found.append((node.lineno, f"{owner}{node.name} return", None, node.returns))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            found += _public_annotations(node.body, f"{node.name}.")
        elif (
            isinstance(node, ast.AnnAssign)
            and owner
            and isinstance(node.target, ast.Name)
            and not node.target.id.startswith("_")
        ):
            found.append((node.lineno, f"{owner}{node.target.id}", node.target.id, node.annotation))
    return found


def object_id_problems(source: str, where: str) -> list[str]:
    problems = []
    for line, what, name, annotation in _public_annotations(ast.parse(source).body):
        types = _type_names(annotation)
        text = f"{where}:{line}: {what}: {ast.unparse(annotation)}"
        if "Oid" in types and types & {"str", "bytes"}:
            problems.append(f"{text} (an object id is a pygit2.Oid, not also hex)")
        elif name is not None and (name in _ID_NAMES or name.endswith(_ID_SUFFIXES)) and "str" in types:
            problems.append(f"{text} (an object id as hex; a pygit2.Oid at module boundaries)")
    return problems


def test_object_ids_have_one_type_at_module_boundaries() -> None:
    problems = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in object_id_problems(path.read_text(), str(path.relative_to(REPO_ROOT)))
    ]
    assert problems == []


def test_the_object_id_check_sees_unions_and_hex_ids() -> None:
    source = """
from typing import Optional, Union
import pygit2

def read(repo, commit: str | pygit2.Oid) -> None: ...
def older(target: "Union[str, pygit2.Oid]") -> Optional[Union[pygit2.Oid, str]]: ...
def hexed(base_commit: str | None, task_id: str, head: pygit2.Oid) -> pygit2.Oid | None: ...
def _private(commit: str | pygit2.Oid) -> None: ...

class Report:
    commit: str
    title: str
    def method(self, sha: str) -> None: ...
"""
    whats = [problem.split(": ")[1] for problem in object_id_problems(source, "x.py")]
    assert whats == [
        "read(commit)",
        "older(target)",
        "older return",
        "hexed(base_commit)",
        "Report.commit",
        "Report.method(sha)",
    ]
