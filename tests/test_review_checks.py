"""The deterministic reviewers (lint, scope, tests-kept, size) and the calibration of model reviewers.

Each reviewer meets its planted fault in a real run: a temporary repository, the real runner, the real
acceptance checks and `checks` node in the sandbox (ruff included). Only the implementer is a small
fake that writes the planted change: what a model writes is not what these tests are about.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import REVIEWER
from pantheon_git.night import attempt as attempts
from pantheon_git.night.checks import checks_executor
from pantheon_git.night.executors import acceptance_executor, agent_executor, baseline_executor, gate_executor
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeResult
from pantheon_git.night.setup import plan_nodes
from pantheon_git.queue.tasks import enqueue
from pantheon_git.review.calibration import not_counted, read_calibration, record_calibration
from pantheon_git.review.checks import Change, ChangeKind, lint_check, scope_check, weakening_check
from pantheon_git.review.gate import decide
from pantheon_git.review.report import build_report, render_markdown
from pantheon_git.runtime.base import Completion, ModelIdentity, Runtime
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.votes import Vote, read_all_votes
from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available
from tests.conftest import git, oid_of, pantheon

needs_sandbox = pytest.mark.skipif(not sandbox_available(), reason="no sandbox here")
POLICY = {"local_only": True}
PYPROJECT = (
    '[project]\nname = "calc"\n\n[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nselect = ["E", "F"]\n'
)
STUB = 'def mul(a, b):\n    """Return the product of a and b."""\n    raise NotImplementedError\n'
DONE = 'def mul(a, b):\n    """Return the product of a and b."""\n    return a * b\n'
TESTS = (
    "import calc\n\n\ndef test_mul():\n    assert calc.mul(3, 4) == 12\n\n\n"
    "def test_mul_zero():\n    assert calc.mul(0, 5) == 0\n"
)
CHECK = 'python3 -c "import calc; assert calc.mul(3, 4) == 12"'
FLOW = """\
[[nodes]]
id = "implement"
agent = "implementer"
[[nodes]]
id = "test"
agent = "acceptance"
inputs = ["implement"]
repairs = 0
[[nodes]]
id = "checks"
agent = "checks"
inputs = ["test"]
[[nodes]]
id = "gate"
agent = "gate"
inputs = ["checks", "test"]
"""


def calc_repo(repo_dir: Path, *, ruff: bool = True, flow: str = FLOW) -> None:
    if ruff:
        (repo_dir / "pyproject.toml").write_text(PYPROJECT)
    (repo_dir / "calc.py").write_text(STUB)
    (repo_dir / "tests").mkdir()
    (repo_dir / "tests" / "test_calc.py").write_text(TESTS)
    (repo_dir / ".pantheon" / "flows").mkdir(parents=True, exist_ok=True)
    (repo_dir / ".pantheon" / "flows" / "checked.toml").write_text(flow)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "calc")


def queue(
    repo_dir: Path, task_id: str, *, acceptance: str = CHECK, files: tuple[str, ...] = ("calc.py",)
) -> Spec:
    spec = stamp(
        Spec(
            id=task_id,
            title="Implement mul in calc.py",
            acceptance=[acceptance],
            files=list(files),
            flow="checked",
            limits={"max_attempts": 1},
        ),
        author="a <a@b>",
        base="main",
    )
    enqueue(open_repo(repo_dir), [spec])
    return spec


def implementer(change: Callable[[Path], None]):
    def run(context: NodeContext) -> NodeResult:
        change(context.worktree)
        return NodeResult(summary="implemented mul", output={"summary": "implemented mul"}, model="fake@0")

    return run


def run(repo_dir: Path, spec: Spec, executors: dict[str, Any], nodes: list | None = None) -> Any:
    """One attempt through the real runner."""
    nodes = nodes if nodes is not None else plan_nodes(repo_dir, spec.flow)
    plan = attempts.TaskPlan(spec, nodes, executors)
    return attempts.run_attempt(
        open_repo(repo_dir), repo_dir, plan, attempts.Attempt(1, resume=False), policy=POLICY
    )


def executors(
    change: Callable[[Path], None], policy: GatePolicy | None = None, **more: Any
) -> dict[str, Any]:
    policy = policy or GatePolicy(min_approvals=2)
    return {
        "baseline": baseline_executor(run_sandboxed),
        "acceptance": acceptance_executor(run_sandboxed),
        "implementer": implementer(change),
        "checks": checks_executor(run_sandboxed, policy),
        "gate": gate_executor(policy),
        **more,
    }


def votes_of(repo_dir: Path, spec: Spec, step: str = "checks") -> dict[str, Vote]:
    rev = git(repo_dir, "log", "--format=%H", "--grep", f"^Pantheon-Step: {step} ", f"pantheon/{spec.id}/1")
    return {
        vote.voter: vote for vote in read_all_votes(open_repo(repo_dir), oid_of(repo_dir, rev.split()[0]))
    }


def gate_of(repo_dir: Path, spec: Spec) -> Vote:
    (vote,) = read_all_votes(open_repo(repo_dir), oid_of(repo_dir, f"pantheon/{spec.id}/1"))
    return vote


def write(path: str, text: str) -> Callable[[Path], None]:
    def change(worktree: Path) -> None:
        (worktree / path).write_text(text)

    return change


def both(*changes: Callable[[Path], None]) -> Callable[[Path], None]:
    def change(worktree: Path) -> None:
        for one in changes:
            one(worktree)

    return change


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's own ruff on PATH, as on a machine that has it (here: the venv's)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


# The planted faults: (what the implementer writes, the reviewer that must reject, its reason).
FAULTS = {
    "a deleted test": (
        both(
            write("calc.py", DONE),
            write("tests/test_calc.py", TESTS.split("\n\n\ndef test_mul_zero")[0] + "\n"),
        ),
        "tests-kept",
        "deletes test test_mul_zero",
    ),
    "an assert removed": (
        both(
            write("calc.py", DONE),
            write("tests/test_calc.py", TESTS.replace("assert calc.mul(0, 5) == 0", "calc.mul(0, 5)")),
        ),
        "tests-kept",
        "removes 1 assertion(s) from the tests",
    ),
    "a lint error": (
        write("calc.py", "import os\n\n\n" + DONE),
        "lint",
        "ruff: calc.py:1: F401",
    ),
    "unformatted code": (
        write("calc.py", DONE.replace("a * b", "a*b")),
        "lint",
        "ruff format would change calc.py",
    ),
    "an unrelated file": (
        both(write("calc.py", DONE), write("README.md", "sample, now with mul\n")),
        "scope",
        "touches README.md, which the spec does not name or plausibly need",
    ),
    "a too-large diff": (
        write("calc.py", DONE + "".join(f"\n\ndef helper_{n}():\n    return {n}\n" for n in range(120))),
        "size",
        "changes 482 lines (limit 400)",
    ),
}


@needs_sandbox
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_deterministic_reviewer_rejects_its_planted_fault(
    repo_dir: Path, on_path: None, fault: str
) -> None:
    calc_repo(repo_dir)
    change, reviewer, reason = FAULTS[fault]
    spec = queue(repo_dir, "t1")
    done = run(repo_dir, spec, executors(change))
    assert done.steps == ["baseline", "implement", "test", "checks", "gate"], done
    votes = votes_of(repo_dir, spec)
    assert set(votes) == {"lint", "scope", "tests-kept", "size"}
    assert votes[reviewer].verdict == "reject", votes[reviewer]
    assert votes[reviewer].reasons[0].startswith(reason), votes[reviewer].reasons
    # The acceptance check passed (the planted faults all keep mul right): only the reviewer stopped it.
    assert votes_of(repo_dir, spec, "test")["acceptance"].verdict == "approve"
    gate = gate_of(repo_dir, spec)
    assert gate.verdict == "reject" and f"rejected by {reviewer}" in "; ".join(gate.reasons), gate
    # One line of why, in the morning report too.
    (report,) = build_report(open_repo(repo_dir))
    assert any(cell.startswith(f"{reviewer}: reject ({reason}") for cell in report.votes), report.votes


@needs_sandbox
def test_a_clean_diff_is_approved_by_every_deterministic_reviewer_and_passes(
    repo_dir: Path, on_path: None
) -> None:
    calc_repo(repo_dir)
    spec = queue(repo_dir, "t1")
    added_test = TESTS + "\n\ndef test_mul_negative():\n    assert calc.mul(-2, 3) == -6\n"
    done = run(
        repo_dir, spec, executors(both(write("calc.py", DONE), write("tests/test_calc.py", added_test)))
    )
    votes = votes_of(repo_dir, spec)
    assert {voter: vote.verdict for voter, vote in votes.items()} == dict.fromkeys(
        ["lint", "scope", "tests-kept", "size"], "approve"
    ), votes
    assert votes["lint"].reasons == ["ruff check and format clean on calc.py, tests/test_calc.py"]
    assert votes["tests-kept"].reasons == ["3 tests and 3 assertions kept or added (2 and 2 before)"]
    assert done.passed, done
    gate = gate_of(repo_dir, spec)
    assert gate.reasons[0] == "acceptance passed; approved by lint, scope, size, tests-kept"
    assert votes["size"].evidence["files"] == 2


@needs_sandbox
def test_lint_judges_format_only_where_the_repository_keeps_its_files_formatted(
    repo_dir: Path, on_path: None
) -> None:
    calc_repo(repo_dir)
    (repo_dir / "calc.py").write_text("TABLE = {'a':1}\n\n\n" + STUB)  # the repository's own style
    git(repo_dir, "commit", "-q", "-am", "calc in its own style")
    spec = queue(repo_dir, "t1")
    run(repo_dir, spec, executors(write("calc.py", "TABLE = {'a':1}\n\n\n" + DONE.replace("a * b", "a*b"))))
    lint = votes_of(repo_dir, spec)["lint"]
    assert lint.verdict == "approve", lint
    assert lint.reasons == ["ruff check clean; format not checked: calc.py not ruff-formatted at the base"]


@needs_sandbox
def test_lint_abstains_where_no_ruff_is_configured_and_the_gate_counts_it_neither_way(repo_dir: Path) -> None:
    calc_repo(repo_dir, ruff=False)
    spec = queue(repo_dir, "t1")
    done = run(repo_dir, spec, executors(write("calc.py", "import os\n" + DONE)))
    votes = votes_of(repo_dir, spec)
    assert votes["lint"].verdict == "abstain"
    assert votes["lint"].reasons == ["no ruff configured on the base commit: lint not checked"]
    assert done.passed and gate_of(repo_dir, spec).reasons == [
        "acceptance passed; approved by scope, size, tests-kept"
    ]


@needs_sandbox
def test_the_files_the_acceptance_commands_run_stay_untouched_unless_the_spec_names_them(
    repo_dir: Path,
) -> None:
    calc_repo(repo_dir, ruff=False)
    check = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider tests/test_calc.py"
    weakened = TESTS.replace("== 12", "== calc.mul(3, 4)")  # every assertion kept, none of them tests
    spec = queue(repo_dir, "t1", acceptance=check)
    run(repo_dir, spec, executors(both(write("calc.py", DONE), write("tests/test_calc.py", weakened))))
    vote = votes_of(repo_dir, spec)["tests-kept"]
    assert vote.verdict == "reject" and vote.reasons == [
        "edits tests/test_calc.py, which the acceptance checks run"
    ]
    named = queue(repo_dir, "t2", acceptance=check, files=("calc.py", "tests/test_calc.py"))
    run(repo_dir, named, executors(both(write("calc.py", DONE), write("tests/test_calc.py", weakened))))
    assert votes_of(repo_dir, named)["tests-kept"].verdict == "approve"


@needs_sandbox
def test_a_file_name_is_a_file_name_and_a_fifo_stalls_no_reviewer(repo_dir: Path, on_path: None) -> None:
    calc_repo(repo_dir)
    spec = queue(repo_dir, "t1")
    weird = "a;touch pwned;b $(id).py"

    def change(worktree: Path) -> None:
        (worktree / "calc.py").write_text(DONE)
        (worktree / weird).write_text("import os\n")  # ruff must see exactly this file, and blame it
        os.mkfifo(worktree / "notes.py")  # libgit2 skips it, the one open would refuse it: nothing waits

    run(repo_dir, spec, executors(change))
    lint = votes_of(repo_dir, spec)["lint"]
    assert lint.verdict == "reject" and lint.reasons[0].startswith(f"ruff: {weird}:1: F401"), lint.reasons
    assert not list(repo_dir.rglob("pwned"))


def test_the_default_flow_runs_the_deterministic_reviewers(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    nodes = {node.id: node for node in plan_nodes(repo_dir, "default")}
    assert nodes["checks"].agent == "checks" and nodes["checks"].inputs == ("test",)
    assert "checks" in nodes["gate"].inputs
    from pantheon_git.night.executors import executors_for

    made = executors_for({"checks", "acceptance", "gate"}, {}, {}, GatePolicy())
    assert set(made) == {"checks", "acceptance", "gate"}
    assert pantheon(repo_dir, "flow", "check").returncode == 0


# --- the pure reviewers on what a model might try ------------------------------------------------------


def changed(path: str, before: str | None, after: str | None) -> Change:
    kind = (
        ChangeKind.ADDED if before is None else ChangeKind.DELETED if after is None else ChangeKind.MODIFIED
    )
    old, new = (before or "").splitlines(), (after or "").splitlines()
    added = {n for n, line in enumerate(new, start=1) if n > len(old) or old[n - 1] != line}
    return Change(path, kind, len(added), max(0, len(old) - len(new)), frozenset(added), before, after)


BASE = frozenset({"calc.py", "tests/test_calc.py", "README.md", "pyproject.toml"})


def test_the_change_cannot_loosen_the_reviewers_that_judge_it() -> None:
    skipped = TESTS.replace("def test_mul_zero", "@pytest.mark.skip\ndef test_mul_zero")
    assert weakening_check(
        [changed("tests/test_calc.py", TESTS, skipped)], [CHECK], ["calc.py"], BASE
    ).reason == ("adds a skip or xfail in tests/test_calc.py")
    conftest = weakening_check(
        [changed("tests/conftest.py", None, "collect_ignore = ['test_calc.py']\n")], [CHECK], [], BASE
    )
    assert conftest.verdict == "reject" and "changes how tests run: tests/conftest.py" in conftest.reason
    loosened = PYPROJECT.replace('select = ["E", "F"]', "select = []")
    edit = lint_check([changed("pyproject.toml", PYPROJECT, loosened)], "pyproject.toml [tool.ruff]")
    assert edit.verdict == "reject" and edit.reason == "changes the lint configuration: pyproject.toml"
    new_config = lint_check([changed("ruff.toml", None, "exclude = ['*']\n")], "pyproject.toml [tool.ruff]")
    assert new_config.reason == "changes the lint configuration: ruff.toml"
    noqa = lint_check([changed("calc.py", STUB, "import os  # noqa: F401\n" + DONE)], None)
    assert noqa.verdict == "reject" and noqa.reason == "silences the linter at calc.py:1"


def test_scope_follows_what_the_spec_names_and_abstains_where_it_names_nothing() -> None:
    texts = ["Implement mul in calc.py", "", CHECK]
    ok = [changed("calc.py", STUB, DONE), changed("tests/test_calc.py", TESTS, TESTS + "\n")]
    assert scope_check(ok, [], texts, BASE).verdict == "approve"  # its test file is plausibly needed
    module = scope_check(
        [changed("calc.py", STUB, DONE)], [], ["Fix multiplication", "", "python3 -c 'import calc'"], BASE
    )
    assert module.verdict == "approve", module  # `import calc` names calc.py
    stray = scope_check(
        [*ok, changed("pyproject.toml", PYPROJECT, PYPROJECT + "\n")], ["calc.py"], texts, BASE
    )
    assert stray.verdict == "reject" and stray.reason.startswith("touches pyproject.toml")
    nothing = scope_check(ok, [], ["Make it faster", "", "true"], BASE)
    assert nothing.verdict == "abstain"


# --- calibration: a model reviewer counts only when measured above the threshold --------------------------


def model_vote(verdict: str, accuracy: float | None) -> Vote:
    calibration = {} if accuracy is None else {"accuracy": accuracy}
    return Vote(
        voter="reviewer:review-a", verdict=verdict, evidence={"model": "m@1", "calibration": calibration}
    )


def test_a_reviewer_below_the_calibration_threshold_does_not_count_at_the_gate() -> None:
    policy = GatePolicy(min_approvals=1, require_fixed_check=False)
    acceptance = Vote(voter="acceptance", verdict="approve")
    for accuracy, why in (
        (None, "uncalibrated"),
        (0.55, "accuracy 0.55, not above 0.70"),
        (0.7, "accuracy 0.70, not above 0.70"),
    ):
        decision = decide(policy, [acceptance, model_vote("approve", accuracy)])
        assert decision.verdict == "reject"
        assert decision.reasons == ["0 of 1 required approvals", f"not counted: reviewer:review-a ({why})"]
        assert not_counted(model_vote("approve", accuracy), 0.7) == why
    # Nor does its rejection block.
    relaxed = GatePolicy(min_approvals=0, require_fixed_check=False)
    assert decide(relaxed, [acceptance, model_vote("reject", None)]).verdict == "approve"
    # Above the threshold it counts both ways; a threshold of 0 counts every model reviewer.
    assert decide(policy, [acceptance, model_vote("approve", 0.82)]).verdict == "approve"
    assert decide(relaxed, [acceptance, model_vote("reject", 0.82)]).verdict == "reject"
    assert (
        decide(
            policy.model_copy(update={"min_reviewer_accuracy": 0.0}),
            [acceptance, model_vote("approve", None)],
        ).verdict
        == "approve"
    )
    # People and the deterministic reviewers are not model reviewers: they always count.
    assert decide(policy, [acceptance, Vote(voter="scope", verdict="approve")]).verdict == "approve"


class ApprovingModel:
    """A reviewer's model that reads nothing and approves (what it says is not under test here)."""

    is_local = True
    identity = ModelIdentity(name="scripted", engine="scripted")
    context_window: int | None = None  # no window, tokenizer or chat template of its own
    context_tokens: int | None = None
    chat = None

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def complete(self, prompt: str, **_: Any) -> Completion:
        text = '{"tool":"finish","args":{"verdict":"approve","reasons":["looks right"]}}'
        return Completion(text=text, tokens_in=len(prompt), tokens_out=10, tokens_evaluated=0, seconds=0.0)


def reviewed_calc_repo(repo_dir: Path, model: Callable[[], Runtime]) -> NodeExecutor:
    """The calc repository with a model reviewer node before the gate; its executor, on `model`."""
    flow = FLOW.replace('inputs = ["checks", "test"]', 'inputs = ["checks", "review", "test"]') + (
        '[[nodes]]\nid = "review"\nagent = "reviewer"\ninputs = ["test"]\n'
    )
    calc_repo(repo_dir, ruff=False, flow=flow)
    reviewer = replace(REVIEWER, call_format="json")
    return agent_executor(reviewer, ModelConfig(bundled="gemma3-270m"), run_sandboxed, runtime_factory=model)


@needs_sandbox
def test_a_model_reviewer_counts_once_its_calibration_is_recorded_and_the_report_shows_it(
    repo_dir: Path,
) -> None:
    review = reviewed_calc_repo(repo_dir, ApprovingModel)
    # Four approvals needed: scope, size and tests-kept give three, the model reviewer the fourth.
    policy = GatePolicy(min_approvals=4)
    first = queue(repo_dir, "t1")
    assert not run(repo_dir, first, executors(write("calc.py", DONE), policy, reviewer=review)).passed
    vote = votes_of(repo_dir, first, "review")["reviewer:review"]
    assert vote.verdict == "approve" and vote.evidence["calibration"] == {}
    assert gate_of(repo_dir, first).reasons == [
        "3 of 4 required approvals",
        "not counted: reviewer:review (uncalibrated)",
    ]
    markdown = render_markdown(build_report(open_repo(repo_dir)), "night")
    assert "reviewer:review: approve (uncalibrated)" in markdown
    record = record_calibration(
        open_repo(repo_dir), "reviewer", "scripted", true_approval=0.9, false_approval=0.2, good=40, bad=40
    )
    assert (
        record["accuracy"] == 0.85
        and read_calibration(open_repo(repo_dir), "reviewer", "scripted")["accuracy"] == 0.85
    )
    second = queue(repo_dir, "t2")
    assert run(repo_dir, second, executors(write("calc.py", DONE), policy, reviewer=review)).passed
    counted = votes_of(repo_dir, second, "review")["reviewer:review"]
    assert counted.evidence["calibration"]["accuracy"] == 0.85
    rows = {row.id: row for row in build_report(open_repo(repo_dir))}
    assert "reviewer:review: approve (calibrated 0.85)" in rows["t2"].votes
    assert json.loads(json.dumps(counted.evidence))["calibration"]["false_approval"] == 0.2


class SilentModel(ApprovingModel):
    """A reviewer's model that never makes a valid call."""

    def complete(self, prompt: str, **_: Any) -> Completion:
        return Completion(
            text="it looks fine to me", tokens_in=len(prompt), tokens_out=5, tokens_evaluated=0, seconds=0.0
        )


@needs_sandbox
def test_a_model_reviewer_that_reaches_no_verdict_abstains_and_its_approval_is_still_missing(
    repo_dir: Path,
) -> None:
    review = reviewed_calc_repo(repo_dir, SilentModel)
    policy = GatePolicy(min_approvals=4, min_reviewer_accuracy=0.0)  # it would count, were it to approve
    task = queue(repo_dir, "t1")
    assert not run(repo_dir, task, executors(write("calc.py", DONE), policy, reviewer=review)).passed
    vote = votes_of(repo_dir, task, "review")["reviewer:review"]
    assert vote.verdict == "abstain" and vote.reasons[0].startswith("no verdict: gave up after"), vote
    assert vote.evidence["model"] == "scripted" and vote.evidence["calibration"] == {}
    assert gate_of(repo_dir, task).reasons == ["3 of 4 required approvals"]
