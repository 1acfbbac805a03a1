"""`git log` of a run branch is the morning report: one human line per step, a six-step run on one screen.

The model agents here are small fakes that return what a real loop returns (turns, tokens, a model
label); the acceptance checks and the gate are the runner's real executors, and the note layout, the
git config and `git log` are what the test is about.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pantheon_git.night.checks import checks_executor
from pantheon_git.night.executors import acceptance_executor, baseline_executor, gate_executor
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.place import place_executor
from pantheon_git.night.setup import plan_nodes
from pantheon_git.schema.config import GatePolicy
from pantheon_git.store.git import open_repo
from pantheon_git.store.votes import Vote
from pantheon_git.tools.builtin import unsandboxed
from tests.conftest import git, pantheon
from tests.test_night import DEFAULT_NODES
from tests.test_runner_task import POLICY, queued

MODEL = "gemma3-270m@1a2b3c4d5e6f"
SHORT = "gemma3-270m"  # as the report line names it (the base model served: no +adapter)


def agent(name: str):
    def run(context: NodeContext) -> NodeResult:
        turns = [
            {"n": 1, "completion": '{"tool":"list_files","args":{"path":"."}}', "result": "README.md"},
            {"n": 2, "completion": '{"tool":"write_file","args":{}}', "result": "wrote a.txt"},
            {"n": 3, "completion": '{"tool":"finish","args":{}}'},
        ]
        votes = []
        output: dict[str, object] = {"summary": f"{name} did its part"}
        if name == "reviewer":
            (context.worktree / "a.txt").exists()
            output = {"verdict": "approve", "reasons": ["a.txt is there"]}
            votes = [Vote(voter=f"reviewer:{context.node_id}", verdict="approve", reasons=["a.txt is there"])]
        if name == "implementer":
            (context.worktree / "a.txt").write_text("done\n")
        return NodeResult(
            summary=f"{name} finished",
            output=output,
            model=MODEL,
            trace={"prompt": "### Task\n" + "x" * 3000, "turns": turns, "output": output},
            tokens={"in": 900, "out": 60, "evaluated": 900},
            votes=votes,
        )

    return run


def test_the_log_of_a_six_step_run_fits_one_screen_and_traces_keep_the_json(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    from pantheon_git.night.attempt import Attempt, TaskPlan, run_attempt

    repo = open_repo(repo_dir)
    spec = queued(repo_dir)
    nodes = plan_nodes(repo_dir, "default")
    executors = {
        "planner": agent("planner"),
        "implementer": agent("implementer"),
        "reviewer": agent("reviewer"),
        "baseline": baseline_executor(unsandboxed),
        "acceptance": acceptance_executor(unsandboxed),
        "checks": checks_executor(unsandboxed, GatePolicy()),
        "place": place_executor(),
        "gate": gate_executor(GatePolicy()),
    }
    run = run_attempt(
        repo, repo_dir, TaskPlan(spec, nodes, executors), Attempt(1, resume=False), policy=POLICY
    )
    assert run.steps == DEFAULT_NODES
    log = git(repo_dir, "log", "--notes", "main..pantheon/t1/1")
    # git's layout of a step: commit, Author, Date, blank, subject, blank, two trailer lines (the folded
    # Pantheon-Step and the Pantheon-Log report line) and the blank between commits: 9 lines, so six steps
    # fit a 60-line screen. (A note costs 3 lines a step: blank, "Notes (…):", the line; with the JSON
    # traces displayed it was 287 lines for these seven steps, 111 with five trailers and a note.)
    assert len(log.splitlines()) <= 9 * len(run.steps) - 1, log
    for args in (["--notes"], []):  # plain `git log` as well (init set notes.displayRef)
        six = git(repo_dir, "log", *args, "-6", "pantheon/t1/1")
        assert len(six.splitlines()) <= 60 and six.count("    Pantheon-Log: ") == 6, six
    assert '"policy"' not in log  # no JSON in the report
    short = git(repo_dir, "log", "--notes", "--pretty=pantheon", "main..pantheon/t1/1")
    assert len(short.splitlines()) == 3 * len(run.steps) - 1, short  # subject, report line, blank
    assert short.splitlines()[0].endswith(
        "(pantheon/t1/1) gate: approve (acceptance passed; approved by reviewer:review-a, reviewer:review-b, "
        "scope, size, tests-kept)"
    )
    lines = {
        step: git(
            repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Log,valueonly)", f"pantheon/t1/1~{back}"
        ).strip()
        for back, step in enumerate(reversed(run.steps))
    }
    assert short.splitlines()[1] == lines["gate"]
    seconds = r"\d+\.\d s"
    assert re.fullmatch(
        rf"ok · implementer · {SHORT} · 900\+60 tokens · {seconds} · 2 tool calls", lines["implement"]
    ), lines
    assert re.fullmatch(rf"ok · acceptance · checks 1/1 passed · approve · {seconds}", lines["test"]), lines
    assert re.fullmatch(rf"ok · baseline · checks 0/1 passed · {seconds}", lines["baseline"]), lines
    assert re.fullmatch(
        rf"ok · reviewer · approve: a.txt is there · {SHORT} · 900\+60 tokens · {seconds} · 2 tool calls",
        lines["review-a"],
    ), lines
    reasons = "acceptance passed; approved by reviewer:review-a, reviewer:review-b, s…"
    assert re.fullmatch(rf"ok · gate · approve: {reasons} · {seconds}", lines["gate"]), lines
    # The deterministic reviewers: one vote each, all on one line (lint abstains: no ruff configured).
    assert re.fullmatch(
        rf"ok · checks · lint abstain: no ruff config…; scope approve; tests-kept approve; size approve"
        rf" · {seconds}",
        lines["checks"],
    ), lines
    # The fields tools read back fold into one trailer line; the subject names the step once.
    base = git(repo_dir, "rev-parse", "main").strip()
    first = git(repo_dir, "log", "-1", "--format=%B", "pantheon/t1/1~8")
    assert re.fullmatch(
        rf"baseline: \d/1 checks pass[^\n]*\n\nPantheon-Step: baseline task=t1 attempt=1 base={base}\n"
        rf"Pantheon-Log: ok · baseline · checks 0/1 passed · [^\n]*",
        first.rstrip("\n"),
    ), first
    implement = git(repo_dir, "log", "-1", "--format=%B", "pantheon/t1/1~5")
    assert implement.rstrip("\n") == (
        f"implement: implementer finished\n\nPantheon-Step: implement task=t1 attempt=1 base={base}\n"
        f"Pantheon-Log: {lines['implement']}"
    )
    # The JSON trace is still there for tools.
    trace = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", "pantheon/t1/1~5"))
    assert trace["node"] == "implement" and trace["tokens"]["out"] == 60
    # A person's vote later joins the log of the step it judges.
    assert pantheon(repo_dir, "vote", "t1", "reject", "-m", "wrong file name").returncode == 0
    head_log = git(repo_dir, "log", "-1", "--notes", "pantheon/t1/1")
    assert "votes: person:Night Tester <night@example.com> reject (wrong file name)" in head_log


def test_a_failed_step_says_so_and_why_in_the_log(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, run_attempt

    repo = open_repo(repo_dir)
    spec = queued(repo_dir)

    def broken(context: NodeContext) -> NodeResult:
        return NodeResult(summary="failed: no file", ok=False, error="write_file: path escapes the worktree")

    run = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, [PlannedNode("implement", "b")], {"b": broken}),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert run.outcome == "failed"
    message = git(repo_dir, "log", "-1", "--format=%B", "pantheon/t1/1")
    assert re.fullmatch(
        r"implement: failed: no file\n\nPantheon-Step: implement task=t1 attempt=1 base=[0-9a-f]{40} "
        r"outcome=failed\nPantheon-Log: FAILED · b · \d+\.\d s\n"
        r"Pantheon-Error: write_file: path escapes the worktree",
        message.rstrip("\n"),
    ), message


def test_a_long_vote_reason_is_cut_not_the_verdict_and_the_adapter_is_named() -> None:
    from pantheon_git.store.logview import LOG_CHARS, step_log

    trace = {
        "node": "review-b",
        "agent": "reviewer",
        "model": "gemma3-270m@0123456789ab",
        "tokens": {"in": 5241, "out": 1536},
        "duration_s": 46.43,
        "output": {"verdict": "abstain"},
    }
    why = "no verdict: gave up after 4 failed calls in a row; last: the call was not valid JSON " * 3
    line = step_log(trace, [Vote(voter="reviewer:review-b", verdict="abstain", reasons=[why])], tool_calls=4)
    assert LOG_CHARS - 2 <= len(line) <= LOG_CHARS and "\n" not in line, line
    assert line.startswith("ok · reviewer · abstain: no verdict: gave"), line
    assert line.endswith("… · gemma3-270m · 5241+1536 tokens · 46.4 s · 4 tool calls"), line
    served = {**trace, "model": "gemma3-270m@0123456789ab+reviewer.tests-fedcba9876543210.gguf@abcdef012345"}
    assert step_log(served, [], tool_calls=1) == (
        "ok · reviewer · gemma3-270m+reviewer@tests · 5241+1536 tokens · 46.4 s · 1 tool call"
    )
