"""The night does real work: repair rounds, honest gates, best-of-N attempts, seeds that mean something.

The implementer here is the real agent loop with a scripted model (what the model writes is not what
these tests are about: the bookkeeping around repair rounds is); the seed test runs the real embedded
model, because there the model's sampling is the thing under test.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER as BUILTIN_IMPLEMENTER
from pantheon_git.night.attempt import (
    SEED_STRIDE,
    Attempt,
    PlannedNode,
    TaskPlan,
    choose_attempt,
    run_attempt,
)
from pantheon_git.night.executors import (
    acceptance_executor,
    agent_executor,
    baseline_executor,
    gate_executor,
)
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.setup import NightSetup, plan_nodes
from pantheon_git.night.shift import run_tasks
from pantheon_git.queue.status import task_states
from pantheon_git.queue.tasks import enqueue
from pantheon_git.review.gate import decide
from pantheon_git.review.report import build_report, render_markdown
from pantheon_git.runtime.base import Completion, ModelIdentity, Windowless
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.traces import read_trace
from pantheon_git.store.votes import Vote
from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available
from tests.conftest import CHECKS_FLOW, git, oid_of, pantheon

POLICY = {"local_only": True}
CHECK = "python3 -c \"import calc; v = calc.answer(); assert v == 42, 'answer() returned %r' % v\""
FIX_FLOW = """\
[[nodes]]
id = "implement"
agent = "implementer"
[[nodes]]
id = "test"
agent = "acceptance"
inputs = ["implement"]
[[nodes]]
id = "gate"
agent = "gate"
inputs = ["test"]
"""

needs_sandbox = pytest.mark.skipif(not sandbox_available(), reason="no `unshare -rn` here")

# These tests are about the runner (repair rounds, replay), not the call format: the recorded completions
# are JSON calls of the whole-file tool, so the implementer here takes JSON and has `write_file`.
IMPLEMENTER = replace(
    BUILTIN_IMPLEMENTER, call_format="json", tools=(*BUILTIN_IMPLEMENTER.tools, "write_file")
)


class ScriptedModel(Windowless):
    """Writes calc.py returning 41 first; once a prompt shows the failing check's output, returns 42.

    `stubborn`: returns 100 + the repair round instead, so every round changes the file and still fails.
    """

    is_local = True
    identity = ModelIdentity(name="scripted", engine="scripted")

    def __init__(self, *, write: bool = True, stubborn: bool = False) -> None:
        self.prompts: list[str] = []
        self.write = write
        self.stubborn = stubborn

    def complete(self, prompt: str, **_: Any) -> Completion:
        self.prompts.append(prompt)
        task = prompt.rsplit("### Task", 1)[1]
        if not self.write or "Result: wrote" in task:
            text = '{"tool":"finish","args":{"summary":"answer() returns the answer"}}'
        else:
            if self.stubborn:
                found = re.search(r'"round": (\d+)', task)
                value = 100 + (int(found.group(1)) if found else 0)
            else:
                value = 42 if "answer() returned 41" in task else 41
            content = json.dumps(f"def answer():\n    return {value}\n")
            text = f'{{"tool":"write_file","args":{{"path":"calc.py","content":{content}}}}}'
        return Completion(text=text, tokens_in=len(prompt), tokens_out=10, tokens_evaluated=0, seconds=0.0)


def fix_repo(repo_dir: Path, *, samples: int | None = None) -> Spec:
    (repo_dir / "calc.py").write_text("def answer():\n    return 0\n")
    (repo_dir / ".pantheon" / "flows").mkdir(parents=True)
    (repo_dir / ".pantheon" / "flows" / "fix.toml").write_text(FIX_FLOW)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "calc")
    limits: dict[str, Any] = {"max_attempts": 1}
    if samples:
        limits["samples"] = samples
    spec = stamp(
        Spec(id="fix", title="answer() returns 42", acceptance=[CHECK], flow="fix", limits=limits),
        author="a <a@b>",
        base="main",
    )
    enqueue(open_repo(repo_dir), [spec])
    return spec


def fix_executors(model: ScriptedModel, policy: GatePolicy | None = None) -> dict[str, Any]:
    config = ModelConfig(bundled="gemma3-270m")
    return {
        "baseline": baseline_executor(run_sandboxed),
        "acceptance": acceptance_executor(run_sandboxed),
        "implementer": agent_executor(IMPLEMENTER, config, run_sandboxed, runtime_factory=lambda: model),
        "gate": gate_executor(policy or GatePolicy(min_approvals=0)),
    }


def steps_of(repo_dir: Path, branch: str) -> list[str]:
    log = git(
        repo_dir, "log", "--reverse", "--format=%(trailers:key=Pantheon-Step,valueonly)", f"main..{branch}"
    )
    return [line.split()[0] for line in log.splitlines() if line.strip()]  # the node, then task, attempt


@needs_sandbox
def test_failing_checks_go_back_to_the_implementer_each_round_its_own_step(repo_dir: Path) -> None:
    spec = fix_repo(repo_dir)
    repo = open_repo(repo_dir)
    nodes = plan_nodes(repo_dir, "fix")
    assert [node.id for node in nodes] == ["baseline", "implement", "test", "gate"]
    model = ScriptedModel()
    run = run_attempt(
        repo, repo_dir, TaskPlan(spec, nodes, fix_executors(model)), Attempt(1, resume=False), policy=POLICY
    )
    assert run.outcome == "completed" and run.passed, run
    steps = ["baseline", "implement", "test", "implement.repair1", "test.repair1", "gate"]
    assert steps_of(repo_dir, "pantheon/fix/1") == steps
    # The first round's prompt knew nothing of a failure; the repair round's carried the check's output.
    first_round = [p for p in model.prompts if "answer() returned 41" not in p]
    repair_round = [p for p in model.prompts if "answer() returned 41" in p]
    assert len(first_round) == 2 and len(repair_round) == 2
    assert '"round": 1' in repair_round[0] and "AssertionError" in repair_round[0]
    assert git(repo_dir, "show", "pantheon/fix/1:calc.py") == "def answer():\n    return 42\n"
    # Every step is its own commit with its own trace note.
    listed = git(repo_dir, "rev-list", "--reverse", "main..pantheon/fix/1").split()
    revs = [oid_of(repo_dir, line) for line in listed]
    for name, commit in zip(steps, revs, strict=True):
        note = read_trace(repo, commit, expand=True)
        assert note is not None and note["node"] == name
    repair = read_trace(repo, revs[3], expand=True)
    assert repair is not None and repair["input"]["repair"]["failed_checks"][0]["command"] == CHECK
    test1 = read_trace(repo, revs[2])
    assert test1 is not None and test1["output"]["passed"] is False
    # The baseline left the base as it was; the gate saw a check go from failing to passing.
    assert git(repo_dir, "diff", "--stat", "main", str(revs[0])) == ""
    gate = read_trace(repo, revs[-1])
    assert gate is not None and gate["output"]["verdict"] == "approve", gate


@needs_sandbox
def test_repair_rounds_are_bounded_and_resume_runs_each_step_once(repo_dir: Path) -> None:
    spec = fix_repo(repo_dir)
    repo = open_repo(repo_dir)
    nodes = plan_nodes(repo_dir, "fix")
    allowed = iter([True] * 5 + [False])  # the runner dies before implement.repair2
    first = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, nodes, fix_executors(ScriptedModel(stubborn=True))),
        Attempt(1, resume=False),
        policy=POLICY,
        keep_alive=lambda: next(allowed),
    )
    assert first.outcome == "skipped"
    assert steps_of(repo_dir, "pantheon/fix/1")[-1] == "test.repair1"
    # The next runner schedules round 2 from the recorded output of test.repair1 alone.
    again = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, nodes, fix_executors(ScriptedModel(stubborn=True))),
        Attempt(1, resume=True),
        policy=POLICY,
    )
    assert steps_of(repo_dir, "pantheon/fix/1") == [
        "baseline",
        "implement",
        "test",
        "implement.repair1",
        "test.repair1",
        "implement.repair2",
        "test.repair2",
        "gate",
    ]  # each step once; two rounds (the default), then the gate
    assert again.outcome == "completed" and not again.passed
    assert git(repo_dir, "show", "pantheon/fix/1:calc.py") == "def answer():\n    return 102\n"


@needs_sandbox
def test_an_implement_step_that_changes_nothing_fails(repo_dir: Path) -> None:
    spec = fix_repo(repo_dir)
    repo = open_repo(repo_dir)
    idle = ScriptedModel(write=False)
    run = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, plan_nodes(repo_dir, "fix"), fix_executors(idle)),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert run.outcome == "failed" and run.detail.startswith("implement: no change"), run
    head = git(repo_dir, "log", "-1", "--format=%B", "pantheon/fix/1")
    assert "Pantheon-Step: implement" in head and "Pantheon-Error: no change" in head


def test_the_gate_approves_only_a_fixed_check_unless_configured() -> None:
    def acceptance(**evidence: Any) -> Vote:
        return Vote(voter="acceptance", verdict="approve", evidence={"results": [], **evidence})

    policy = GatePolicy(min_approvals=0)
    fixed = decide(policy, [acceptance(baseline=True, fixed=["make test"], passes_at_base=[])])
    assert fixed.verdict == "approve"
    untested = decide(policy, [acceptance(baseline=True, fixed=[], passes_at_base=["true"])])
    assert untested.verdict == "reject" and "went from failing to passing" in untested.reasons[0]
    unknown = decide(policy, [acceptance()])
    assert unknown.verdict == "reject" and "no baseline run" in unknown.reasons[0]
    relaxed = GatePolicy(min_approvals=0, require_fixed_check=False)
    assert (
        decide(relaxed, [acceptance(baseline=True, fixed=[], passes_at_base=["true"])]).verdict == "approve"
    )


@needs_sandbox
def test_a_check_that_passes_without_change_is_flagged_and_does_not_pass_the_gate(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("min_approvals = 2", "min_approvals = 0"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "checks flow")
    queued = pantheon(
        repo_dir, "queue", "--id", "idle", "--title", "t", "--flow", "checks", "--acceptance", "true"
    )
    assert queued.returncode == 0, queued.stderr
    night = pantheon(repo_dir, "night")
    assert night.returncode == 0, night.stdout + night.stderr
    assert steps_of(repo_dir, "pantheon/idle/1") == ["baseline", "test", "gate"]
    rows = {row["id"]: row for row in json.loads(pantheon(repo_dir, "report", "--format", "json").stdout)}
    assert rows["idle"]["status"] == "failed" and rows["idle"]["gate"] == "reject"
    assert rows["idle"]["untested_checks"] == ["true"]
    assert "went from failing to passing" in rows["idle"]["gate_reasons"][0]
    markdown = pantheon(repo_dir, "report").stdout
    assert "**idle** `true`: passes without any change: does not test the task" in markdown
    # Configured off, the same check passes the gate (still flagged).
    config.write_text(config.read_text().replace("require_fixed_check = true", "require_fixed_check = false"))
    queued = pantheon(
        repo_dir, "queue", "--id", "idle2", "--title", "t", "--flow", "checks", "--acceptance", "true"
    )
    assert queued.returncode == 0
    assert pantheon(repo_dir, "night").returncode == 0
    rows = {row["id"]: row for row in json.loads(pantheon(repo_dir, "report", "--format", "json").stdout)}
    assert rows["idle2"]["status"] == "passed" and rows["idle2"]["untested_checks"] == ["true"]


@needs_sandbox
def test_best_of_n_stops_at_the_first_attempt_that_passes(repo_dir: Path) -> None:
    spec = stamp(
        Spec(id="pick", title="write ok", acceptance=["grep -q ok answer.txt"], limits={"samples": 5}),
        author="a <a@b>",
        base="main",
    )
    repo = open_repo(repo_dir)
    enqueue(repo, [spec])
    seen: list[tuple[int, int | None, float]] = []

    def sampler(context: NodeContext) -> NodeResult:
        # A stand-in for a sampled model: only the third attempt's seed draws the right answer.
        seen.append((context.attempt, context.seed, context.temperature))
        right = context.seed == 2 * SEED_STRIDE
        (context.worktree / "answer.txt").write_text("ok\n" if right else "no\n")
        return NodeResult(summary="wrote answer.txt", output={"seed": context.seed})

    nodes = [
        PlannedNode("baseline", "baseline"),
        PlannedNode("implement", "sampler", require_change=True),
        PlannedNode("test", "acceptance", inputs=("implement",)),
        PlannedNode("gate", "gate", inputs=("test",)),
    ]
    executors = {
        "baseline": baseline_executor(run_sandboxed),
        "sampler": sampler,
        "acceptance": acceptance_executor(run_sandboxed),
        "gate": gate_executor(GatePolicy(min_approvals=0)),
    }
    setup = NightSetup(
        policy=POLICY,
        remote=None,
        max_tasks=5,
        claim_expiry_minutes=60,
        flow_for=lambda _name, _labels=(): (nodes, executors),
        samples=1,  # the spec's limits.samples = 5 overrides it
    )
    results = run_tasks(repo, repo_dir, setup=setup)
    assert [(run.attempt, run.passed) for run in results] == [(1, False), (2, False), (3, True)]
    branches = git(repo_dir, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split()
    assert branches == ["pantheon/pick/1", "pantheon/pick/2", "pantheon/pick/3"]
    # The first attempt is greedy as the flow says; later ones sample with seeds from the attempt number.
    assert seen == [(1, None, 0.0), (2, SEED_STRIDE, 0.8), (3, 2 * SEED_STRIDE, 0.8)]
    note = read_trace(repo, oid_of(repo_dir, "pantheon/pick/2~2"))
    assert note is not None and note["sampling"] == {"seed": SEED_STRIDE, "temperature": 0.8}
    assert {s.id: s.status.value for s in task_states(repo)} == {"pick": "passed"}
    report = build_report(repo)[0]
    assert [row["status"] for row in report.attempts] == ["failed", "failed", "passed"]
    assert "#1 failed, #2 failed, #3 passed" in render_markdown([report], "r")
    # Attempts are left, but one passed: a night that picked the task before it passed starts no other.
    assert choose_attempt(repo, spec, samples=5) is None


@pytest.mark.model
def test_seed_and_temperature_give_independent_and_repeatable_samples() -> None:
    from pantheon_git.runtime.llama import runtime_for

    runtime = runtime_for("default", ModelConfig(bundled="gemma3-270m"))
    prompt = "Here is a short poem about the sea:\n"

    def sample(seed: int | None, temperature: float) -> str:
        return runtime.complete(prompt, schema=None, max_tokens=24, seed=seed, temperature=temperature).text

    one, two = sample(1, 1.0), sample(2, 1.0)
    assert one != two  # two seeds: two independent draws
    assert sample(1, 1.0) == one  # the same seed: the same draw (after another prompt ran in between)
    greedy = sample(1, 0.0)
    assert sample(2, 0.0) == greedy  # temperature 0 stays greedy, whatever the seed


def test_a_retry_samples_instead_of_repeating_the_greedy_try(repo_dir: Path) -> None:
    spec = stamp(Spec(id="retry", title="t", acceptance=["true"]), author="a <a@b>", base="main")
    repo = open_repo(repo_dir)
    enqueue(repo, [spec])
    seen: list[tuple[int | None, float]] = []

    def once_wrong(context: NodeContext) -> NodeResult:
        seen.append((context.seed, context.temperature))
        if len(seen) == 1:
            return NodeResult(summary="wrong", ok=False, error="wrong")
        (context.worktree / "x.txt").write_text("x")
        return NodeResult(summary="right")

    nodes = [PlannedNode("implement", "b", retries=2, seed=5)]
    run = run_attempt(
        repo, repo_dir, TaskPlan(spec, nodes, {"b": once_wrong}), Attempt(1, resume=False), policy=POLICY
    )
    assert run.outcome == "completed" and seen == [(5, 0.0), (6, 0.8)]
    note = read_trace(repo, oid_of(repo_dir, "pantheon/retry/1"))
    assert note is not None and note["sampling"] == {"seed": 6, "temperature": 0.8}
    assert note["failed_tries"][0]["sampling"] == {"seed": 5, "temperature": 0.0}
