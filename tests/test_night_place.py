"""The night's `place` step (issue 24's "add a function"): a task asks for a function the repository
lacks, the runner places its stub as its own step, and the implementer completes the body as it
completes any stub.

Real temporary repositories and the real runner, sandbox, acceptance checks and deterministic reviewers.
The implementer is the real agent on a scripted model where the test is about placement (what it must
see is the placed stub, as a code completion); the model test runs the embedded model end to end.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.night.attempt import Attempt, TaskPlan, TaskRun, run_attempt
from pantheon_git.night.checks import checks_executor
from pantheon_git.night.executors import acceptance_executor, agent_executor, baseline_executor, gate_executor
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.place import place_executor
from pantheon_git.night.setup import plan_nodes
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.traces import read_trace
from pantheon_git.store.votes import Vote, read_all_votes
from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available
from tests.conftest import git, oid_of, pantheon
from tests.test_night import DEFAULT_NODES
from tests.test_night_pass import Recording

needs_sandbox = pytest.mark.skipif(not sandbox_available(), reason="no `unshare -rn` here")
POLICY = {"local_only": True}
CALC = '"""A calculator."""\n\n\ndef add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n'
MUL_CHECK = 'python3 -c "from calc import mul; assert mul(3, 4) == 12"'
STUB = 'def mul(a, b):\n    """Add mul to calc.py"""\n    raise NotImplementedError\n'
SHAPES = (
    "class Square:\n"
    "    def __init__(self, side):\n"
    "        self.side = side\n\n"
    "    def area(self):\n"
    '        """The area."""\n'
    "        return self.side * self.side\n"
)
# A check that lives in a test file: its text names no module, so only the placement says where the
# method went (the scope reviewer must count that file as the task's).
SQUARE_CHECK = "from pkg.shapes import Square\n\nassert Square(3).perimeter() == 12\n"


def fake(name: str, output: dict[str, Any]) -> Any:
    """A planner or reviewer that answers at once (what they say is not what these tests are about)."""

    def run(context: NodeContext) -> NodeResult:
        votes = []
        if name == "reviewer":
            votes = [Vote(voter=f"reviewer:{context.node_id}", verdict="approve", reasons=["fine"])]
        return NodeResult(summary=f"{name} finished", output=output, model="fake@0", votes=votes)

    return run


def queue(repo_dir: Path, task_id: str, title: str, check: str, **fields: Any) -> Spec:
    spec = stamp(
        Spec(id=task_id, title=title, acceptance=[check], limits={"max_attempts": 1}, **fields),
        author="a <a@b>",
        base="main",
    )
    enqueue(open_repo(repo_dir), [spec])
    return spec


def night(repo_dir: Path, spec: Spec, model: Recording) -> TaskRun:
    """One attempt of the default flow through the real runner; the implementer runs on `model`."""
    policy = GatePolicy(min_approvals=0)
    executors = {
        "baseline": baseline_executor(run_sandboxed),
        "place": place_executor(),
        "planner": fake("planner", {"plan": "complete the stub", "files": []}),
        "implementer": agent_executor(
            IMPLEMENTER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, runtime_factory=lambda: model
        ),
        "acceptance": acceptance_executor(run_sandboxed),
        "checks": checks_executor(run_sandboxed, policy),
        "reviewer": fake("reviewer", {"verdict": "approve", "reasons": ["fine"]}),
        "gate": gate_executor(policy),
    }
    plan = TaskPlan(spec, plan_nodes(repo_dir, spec.flow), executors)
    return run_attempt(open_repo(repo_dir), repo_dir, plan, Attempt(1, resume=False), policy=POLICY)


def steps(repo_dir: Path, branch: str) -> dict[str, str]:
    """Step name -> commit of the run branch, oldest first."""
    revs = git(repo_dir, "rev-list", "--reverse", f"main..{branch}").split()
    named = {}
    for rev in revs:
        trailer = git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", rev)
        named[trailer.split()[0]] = rev
    return named


def votes(repo_dir: Path, rev: str) -> dict[str, Vote]:
    """The votes on step commit `rev`, by voter."""
    return {vote.voter: vote for vote in read_all_votes(open_repo(repo_dir), oid_of(repo_dir, rev))}


def changed(repo_dir: Path, rev: str) -> str:
    """What the step commit `rev` changed, as a patch."""
    return git(repo_dir, "show", "--format=", rev)


@pytest.fixture
def calc_repo(repo_dir: Path) -> Path:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / "calc.py").write_text(CALC)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "calc without mul")
    return repo_dir


@needs_sandbox
def test_the_night_places_the_stub_of_a_missing_function_before_the_implementer(calc_repo: Path) -> None:
    spec = queue(calc_repo, "mul", "Add mul to calc.py", MUL_CHECK)
    model = Recording(["    return a * b\n\nd"])
    run = night(calc_repo, spec, model)
    assert run.steps == DEFAULT_NODES, run
    assert run.passed, run
    made = steps(calc_repo, "pantheon/mul/1")
    # The placement step is a commit of its own that adds the stub after add, and nothing else.
    placed = changed(calc_repo, made["place"])
    assert "+def mul(a, b):\n" in placed and "+    raise NotImplementedError\n" in placed, placed
    assert git(calc_repo, "show", f"{made['place']}:calc.py") == CALC + "\n\n" + STUB
    assert [line for line in placed.splitlines() if line.startswith("+++")] == ["+++ b/calc.py"]
    trace = read_trace(open_repo(calc_repo), made["place"]) or {}
    assert trace["output"]["placed"] == [{"path": "calc.py", "function": "mul"}], trace
    assert "placed a stub of mul in calc.py" in trace["summary"]
    # The implementer's one move was the stub's completion: the file up to the stub's docstring, as raw
    # completion sees it (the task named no file: the placed one is the task's).
    assert model.prompts == [CALC + "\n\n" + STUB.removesuffix("    raise NotImplementedError\n")]
    assert git(calc_repo, "show", "pantheon/mul/1:calc.py") == CALC + "\n\n" + STUB.replace(
        "raise NotImplementedError", "return a * b"
    )
    checks = {voter: vote.verdict for voter, vote in votes(calc_repo, made["checks"]).items()}
    assert checks["scope"] == "approve" and checks["size"] == "approve", checks


@needs_sandbox
def test_a_method_of_an_existing_class_is_placed_in_it_and_counts_as_in_scope(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / "pkg").mkdir()
    (repo_dir / "pkg" / "__init__.py").write_text("")
    (repo_dir / "pkg" / "shapes.py").write_text(SHAPES)
    (repo_dir / "tests").mkdir()
    (repo_dir / "tests" / "check_square.py").write_text(SQUARE_CHECK)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "shapes")
    spec = queue(
        repo_dir,
        "perimeter",
        "Add a perimeter to squares",
        "python3 -m tests.check_square",
        scope="Return the perimeter of the square.",
        signature="Square.perimeter(self) -> int",
    )
    model = Recording(["        return 4 * self.side\n\n    d"])
    run = night(repo_dir, spec, model)
    assert run.passed, (run.detail, model.prompts)
    made = steps(repo_dir, "pantheon/perimeter/1")
    assert git(repo_dir, "show", f"{made['place']}:pkg/shapes.py") == SHAPES + (
        "\n"
        "    def perimeter(self) -> int:\n"
        '        """Return the perimeter of the square."""\n'
        "        raise NotImplementedError\n"
    )
    assert "return 4 * self.side" in git(repo_dir, "show", "pantheon/perimeter/1:pkg/shapes.py")
    checks = votes(repo_dir, made["checks"])
    # Neither the spec's text nor its files name pkg/shapes.py: the placement step does.
    assert checks["scope"].verdict == "approve", checks["scope"].reasons


@needs_sandbox
def test_nothing_to_place_is_a_step_that_changes_nothing(calc_repo: Path) -> None:
    (calc_repo / "calc.py").write_text(CALC + "\n\n" + STUB)
    git(calc_repo, "commit", "-q", "-am", "mul as a stub")
    spec = queue(calc_repo, "fill", "Implement mul in calc.py", MUL_CHECK, files=["calc.py"])
    run = night(calc_repo, spec, Recording(["    return a * b\n\nd"]))
    assert run.passed, run
    made = steps(calc_repo, "pantheon/fill/1")
    assert changed(calc_repo, made["place"]).strip() == ""
    trace = read_trace(open_repo(calc_repo), made["place"]) or {}
    assert trace["ok"] and trace["output"]["placed"] == [], trace
    assert trace["summary"].startswith("nothing to place"), trace


def test_a_bad_signature_is_refused_at_queue_in_one_line_naming_the_field(repo_dir: Path) -> None:
    before = git(repo_dir, "for-each-ref")
    for bad in ("mul a, b", "def mul(a b) -> int", "mul(a):\n    import os"):
        refused = pantheon(
            repo_dir, "queue", "--title", "Add mul", "--acceptance", "true", "--signature", bad
        )
        assert refused.returncode == 2, refused
        assert refused.stderr.count("\n") == 1 and "signature: " in refused.stderr, refused.stderr
        assert "def mul(a: int, b: int) -> int" in refused.stderr  # what to write instead
    spec = repo_dir / "bad.toml"
    spec.write_text('title = "Add mul"\nsignature = "mul(a b)"\nacceptance = ["true"]\n')
    refused = pantheon(repo_dir, "queue", str(spec))
    assert refused.returncode == 2 and "bad.toml:2: signature: " in refused.stderr, refused.stderr
    assert git(repo_dir, "for-each-ref") == before  # nothing written
    good = pantheon(
        repo_dir, "queue", "--id", "mul", "--title", "Add mul", "--acceptance", "true",
        "--signature", "def mul(a: int, b: int) -> int",
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    shown = pantheon(repo_dir, "show", "mul")
    assert 'signature = "def mul(a: int, b: int) -> int"' in shown.stdout, shown.stdout + shown.stderr


@pytest.mark.model
@needs_sandbox
def test_the_embedded_model_adds_mul_to_calc_end_to_end(calc_repo: Path) -> None:
    config = calc_repo / ".pantheon" / "config.toml"
    # The reviewers run, but the 270M model's verdicts are not what this tests (as in test_night.py).
    config.write_text(
        config.read_text()
        .replace("min_approvals = 2", "min_approvals = 0")
        .replace("any_reject_blocks = true", "any_reject_blocks = false")
    )
    git(calc_repo, "commit", "-q", "-am", "gate on the checks")
    queued = pantheon(
        calc_repo, "queue", "--id", "mul", "--title", "Add mul to calc.py", "--acceptance", MUL_CHECK
    )
    assert queued.returncode == 0, queued.stderr
    done = pantheon(calc_repo, "night")
    result = git(calc_repo, "show", "pantheon/mul/1:calc.py", check=False)
    assert done.returncode == 0, done.stdout + done.stderr + result
    assert "night done: 1 run, 0 failed, 0 skipped" in done.stdout, done.stdout + done.stderr + result
    made = steps(calc_repo, "pantheon/mul/1")
    assert list(made)[:4] == ["baseline", "place", "plan", "implement"], made
    check = subprocess.run(
        ["python3", "-c", "import sys; exec(sys.stdin.read()); assert mul(3, 4) == 12 and mul(0, 5) == 0"],
        input=result,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, result + check.stderr
