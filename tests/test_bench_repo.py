"""bench/bench_repo.py's task builder, on a tiny library made here (no download, no model): the stub
keeps the signature and docstring and is the stub the night completes, "add" removes the function (and
its `__all__` entry) and the place step puts its stub back, each task's acceptance fails on its base and
passes on the original, and the split by the function's name is stable, disjoint and agrees with the
dataset's split of the task ids."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_repo
from bench_repo import Library

from pantheon_git.agents.stubs import find_stub
from pantheon_git.schema.spec import Spec
from pantheon_git.training.dataset import holdout

CORE = '''\
"""A tiny library."""

__all__ = ["add", "double", "unused", "Box"]


def add(a, b):
    """Return the sum of a and b.

    Numbers or anything else with a `+`.
    """
    return a + b


def double(x):
    """Twice x."""
    return add(x, x)


def unused():
    """No test calls this."""
    return 1


class Box:
    """A box."""

    def __init__(self, value):
        self.value = value

    def get(self):
        """The value in the box."""
        return self.value
'''

TESTS = """\
from tinylib.core import Box, add, double


def test_add():
    assert add(2, 3) == 5


def test_double():
    assert double(4) == 8


def test_box():
    assert Box(3).get() == 3
"""

LIBRARY = Library("tinylib", "0", "", "tinylib")


def tiny_library(where: Path) -> Path:
    tree = where / "tree"
    (tree / "tinylib").mkdir(parents=True)
    (tree / "tests").mkdir()
    (tree / "tinylib" / "__init__.py").write_text("")
    (tree / "tinylib" / "core.py").write_text(CORE)
    (tree / "tests" / "test_core.py").write_text(TESTS)
    return bench_repo.repo_from_tree(tree, where / "repo", "tinylib 0")


def function(name: str) -> bench_repo.Function:
    found = bench_repo.functions_of("tinylib/core.py", CORE, "tinylib.core")
    return next(f for f in found if f.qualname == name)


def defined(text: str) -> set[str]:
    tree = ast.parse(text)
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{item.name}" for item in node.body if isinstance(item, ast.FunctionDef)}
    return names


def exported(text: str) -> list[str]:
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def test_functions_and_signatures() -> None:
    found = {f.qualname: f for f in bench_repo.functions_of("tinylib/core.py", CORE, "tinylib.core")}
    assert set(found) == {"add", "double", "unused", "Box.__init__", "Box.get"}
    assert found["add"].signature == "(a, b)"
    assert found["Box.get"].cls == "Box" and found["Box.get"].qualified == "tinylib.core.Box.get"
    assert bench_repo.first_paragraph(found["add"].docstring) == "Return the sum of a and b."


def test_stub_keeps_signature_and_docstring_and_the_night_sees_it() -> None:
    for name in ("add", "Box.get", "Box.__init__"):
        stubbed = bench_repo.stub_source(CORE, function(name))
        stub = find_stub(stubbed)
        assert stub is not None and stub.name == name.rpartition(".")[2]
        assert bench_repo.night_stub_ok(stubbed, function(name))
        f = function(name)
        # Its decorators, signature and docstring exactly as they were.
        assert stub.head == "".join(CORE.splitlines(keepends=True)[f.first - 1 : f.head_end])
        assert stub.whole.rstrip().endswith("raise NotImplementedError")
        assert defined(stubbed) == defined(CORE)
    assert '"""Return the sum of a and b.\n\n    Numbers or anything' in bench_repo.stub_source(
        CORE, function("add")
    )


def test_add_removes_the_function_and_its_all_entry_and_place_puts_the_stub_back() -> None:
    base = bench_repo.remove_source(CORE, function("double"))
    assert "double" not in defined(base) and "double" not in exported(base)
    assert exported(base) == ["add", "unused", "Box"]
    assert "\n\n\n\ndef" not in base  # the blank lines went with it
    task = bench_repo.Task(
        "add", function("double"), base, ["tests/test_core.py::test_double"], "true", False
    )
    fields = bench_repo.spec_fields(task)
    Spec(**fields)  # a valid spec, as `git pantheon queue` would take it
    assert fields["signature"] == "tinylib.core.double(x)"
    assert fields["scope"].split("\n\n")[0] == "Twice x."
    placed = bench_repo.placed_text(task, {"tinylib/core.py": base, "tinylib/__init__.py": ""})
    assert placed is not None and bench_repo.night_stub_ok(placed, function("double"))
    assert "double" in exported(placed)
    stub = find_stub(placed)
    assert stub is not None and "def double(x):" in stub.head and "Twice x." in stub.head

    method = bench_repo.remove_source(CORE, function("Box.get"))
    assert "Box.get" not in defined(method) and exported(method) == exported(CORE)


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("__all__ = ['a', 'b', 'c']\n", "b", "__all__ = ['a', 'c']\n"),
        ("__all__ = ['a', 'b', 'c']\n", "c", "__all__ = ['a', 'b']\n"),
        ("__all__ = ('a', 'b',\n           'c', 'd')\n", "c", "__all__ = ('a', 'b',\n           'd')\n"),
        ("__all__ = [\n    'a',\n    'b',\n]\n", "a", "__all__ = [\n    'b',\n]\n"),
        ("__all__ = ['a']\n", "x", "__all__ = ['a']\n"),
        ("__all__ = ('a', 'b')\n", "a", "__all__ = ('b',)\n"),  # still a tuple, not the string 'b'
        ("__all__ = ('a',\n           'b')\n", "b", "__all__ = ('a',)\n"),
    ],
)
def test_remove_from_all(source: str, name: str, expected: str) -> None:
    assert bench_repo.remove_from_all(source, name) == expected


def test_tasks_fail_on_their_base_and_pass_on_the_original(tmp_path: Path) -> None:
    root = tiny_library(tmp_path)
    built = bench_repo.build_tasks(root, LIBRARY)
    made = {(task.kind, task.function.qualname) for task in built.tasks}
    # __init__ has no docstring: a stub task, no add task; unused: no test executes it.
    assert made == {
        ("stub", "add"),
        ("add", "add"),
        ("stub", "double"),
        ("add", "double"),
        ("stub", "Box.__init__"),
        ("stub", "Box.get"),
        ("add", "Box.get"),
    }
    assert built.dropped == {"no test executes it": 1, "add: decorated or no docstring": 1}
    by_name = {(t.kind, t.function.qualname): t for t in built.tasks}
    # The most targeted tests first: test_add runs only add; test_double runs double and add.
    assert by_name[("stub", "add")].node_ids == [
        "tests/test_core.py::test_add",
        "tests/test_core.py::test_double",
    ]
    assert (root / "tinylib" / "core.py").read_text() == CORE  # the working tree is left as it was
    for task in built.tasks:
        assert bench_repo.run_acceptance(root, task.acceptance)
        path = root / task.function.path
        path.write_text(task.base_text)
        try:
            assert not bench_repo.run_acceptance(root, task.acceptance), (task.kind, task.function.qualname)
        finally:
            path.write_text(CORE)
    # A saved task list reads back the same.
    bench_repo.save_tasks(built, tmp_path / "tasks.json")
    again = bench_repo.load_tasks(tmp_path / "tasks.json")
    assert again is not None and again.tasks == built.tasks and again.dropped == built.dropped


def test_a_function_whose_tests_pass_on_the_base_is_dropped(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "lib2").mkdir(parents=True)
    (tree / "tests").mkdir()
    (tree / "lib2" / "__init__.py").write_text("")
    (tree / "lib2" / "m.py").write_text(
        textwrap.dedent('''\
            def shout(text):
                """Upper case."""
                return text.upper()


            def maybe(text):
                """Its tests accept anything."""
                return text
            ''')
    )
    (tree / "tests" / "test_m.py").write_text(
        "from lib2 import m\n\n\ndef test_shout():\n    assert m.shout('a') == 'A'\n\n\n"
        "def test_maybe():\n    try:\n        m.maybe('a')\n    except Exception:\n        pass\n"
    )
    root = bench_repo.repo_from_tree(tree, tmp_path / "repo", "lib2")
    built = bench_repo.build_tasks(root, Library("lib2", "0", "", "lib2"), kinds=("stub",))
    assert [(t.kind, t.function.qualname) for t in built.tasks] == [("stub", "shout")]
    assert built.dropped == {"stub: its tests pass on the base": 1}


def test_the_split_is_by_name_stable_disjoint_and_agrees_with_the_dataset() -> None:
    functions = [
        bench_repo.Function("m.py", "m", f"f{i}", None, 1, 3, 2, "    ", "Doc.", False, "()")
        for i in range(40)
    ]
    tasks = [
        bench_repo.Task(kind, f, "", ["t::x"], "true", holdout(f.qualified))
        for f in functions
        for kind in ("stub", "add")
    ]
    training, held = bench_repo.split(tasks)
    again_training, again_held = bench_repo.split(list(reversed(tasks)))
    assert [id(t) for t in training] == [id(t) for t in again_training]
    assert [id(t) for t in held] == [id(t) for t in again_held]
    train_names = {t.function.qualified for t in training}
    held_names = {t.function.qualified for t in held}
    assert not train_names & held_names  # a function's two tasks are on the same side
    assert train_names | held_names == {f.qualified for f in functions}
    assert 5 < len(held_names) < 35  # halves, roughly
    for task in tasks:
        for round_ in (0, 1):
            identifier = bench_repo.task_id(task, round_)
            assert Spec(title="t", acceptance=["true"], id=identifier).id == identifier
            assert holdout(identifier) == task.heldout  # the trainer's own split agrees
            assert identifier == bench_repo.task_id(task, round_)
    ids = {bench_repo.task_id(task, round_) for task in tasks for round_ in (0, 1)}
    assert len(ids) == 2 * len(tasks)


def test_raw_completion_keeps_the_body_up_to_its_dedent() -> None:
    completion = "        x = 1\n\n        return x\n    def other(self):\n        pass\n"
    assert bench_repo.cut_body(completion, "        ") == "        x = 1\n\n        return x\n"
    assert bench_repo.cut_body("    return a +", "    ") == "\n"  # cut off mid-line: nothing whole
    command = bench_repo.acceptance_command(Library("x", "0", "", "x", src="src"), ["tests/t.py::f[a b]"])
    assert command.startswith("PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=src python -m pytest")
    assert command.endswith("'tests/t.py::f[a b]'")


def test_a_morning_fix_of_a_failed_training_task_is_mined_by_the_nightly_trainer(tmp_path: Path) -> None:
    """--train-nights' morning: a night (no model: the checks alone) fails a stub task, the bench commits
    the library's own code on its run branch, and the trainer's miner verifies it as a fix whose row is
    the stub's body (without the fix, no row: a bench whose tasks all fail would train on nothing)."""
    from pantheon_git.store.git import open_repo
    from pantheon_git.training.fixes import find_fixes, stub_fill
    from pantheon_git.training.nightly import mine_with_fixes
    from tests.conftest import CHECKS_FLOW

    root = tiny_library(tmp_path)
    double = function("double")
    nodes = ["tests/test_core.py::test_double"]
    task = bench_repo.Task(
        "stub",
        double,
        bench_repo.stub_source(CORE, double),
        nodes,
        bench_repo.acceptance_command(LIBRARY, nodes),
        heldout=False,
    )
    assert bench_repo.pantheon(root, "init").returncode == 0
    (root / ".pantheon" / "config.toml").write_text(bench_repo.BENCH_CONFIG.format(samples=1))
    (root / ".pantheon" / "flows").mkdir(exist_ok=True)
    (root / ".pantheon" / "flows" / "bench-repo.toml").write_text(CHECKS_FLOW)
    bench_repo.git(root, "add", ".pantheon")
    bench_repo.git(root, "commit", "-q", "-m", "pantheon: set up")
    by_id = bench_repo.queue_tasks(root, [task], 0, 1)
    (identifier,) = by_id
    events = bench_repo.run_night(root, 300, log=lambda line: None)
    assert bench_repo.night_figures(root, by_id, events)[identifier]["best"] is False

    repo = open_repo(root)
    assert mine_with_fixes(repo, root, "implementer").fixes == 0
    assert bench_repo.morning_fix(root, identifier, task)
    assert not bench_repo.morning_fix(root, "stub-never-queued-0-0", task)
    (fix,) = find_fixes(repo)
    assert fix.task == identifier
    filled = stub_fill(repo, fix)
    assert filled is not None and filled[0] == "tinylib/core.py"
    assert filled[2] == "    return add(x, x)\n"  # the library's own body, the row's completion
    data = mine_with_fixes(repo, root, "implementer")
    assert data.fixes == 1 and len(data.train) == 1, data.skipped_fixes


def test_a_released_file_that_the_release_ignores_is_committed(tmp_path: Path) -> None:
    """isodate's sdist ships src/isodate/version.py, which its .gitignore lists: left out of the commit,
    every worktree the night checks a task out into lacked it, and the library's tests could not import
    it (every isodate task failed whatever the model wrote)."""
    tree = tmp_path / "tree"
    (tree / "verlib").mkdir(parents=True)
    (tree / ".gitignore").write_text("verlib/version.py\n")
    (tree / "verlib" / "__init__.py").write_text("from verlib.version import version\n")
    (tree / "verlib" / "version.py").write_text("version = '1.0'\n")
    root = bench_repo.repo_from_tree(tree, tmp_path / "repo", "verlib 1.0")
    assert "verlib/version.py" in bench_repo.git(root, "ls-files").split()
    worktree = tmp_path / "night"
    bench_repo.git(root, "worktree", "add", "-q", str(worktree), "HEAD")
    assert (worktree / "verlib" / "version.py").read_text() == "version = '1.0'\n"
