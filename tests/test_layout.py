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
