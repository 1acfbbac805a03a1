"""`git log --notes` of a run branch is the morning report: a few human lines per step, on one screen.

The model agents here are small fakes that return what a real loop returns (turns, tokens, a model
label); the acceptance checks and the gate are the runner's real executors, and the note layout, the
git config and `git log` are what the test is about.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pantheon_git.night.executors import acceptance_executor, baseline_executor, gate_executor
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.setup import plan_nodes
from pantheon_git.schema.config import GatePolicy
from pantheon_git.store.git import open_repo
from pantheon_git.store.votes import Vote
from pantheon_git.tools.builtin import unsandboxed
from tests.conftest import git, pantheon
from tests.test_runner_task import POLICY, queued

MODEL = "gemma3-270m@1a2b3c4d5e6f"


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
    from pantheon_git.night.attempt import run_attempt

    repo = open_repo(repo_dir)
    spec = queued(repo_dir)
    nodes = plan_nodes(repo_dir, "default")
    executors = {
        "planner": agent("planner"),
        "implementer": agent("implementer"),
        "reviewer": agent("reviewer"),
        "baseline": baseline_executor(unsandboxed),
        "acceptance": acceptance_executor(unsandboxed),
        "gate": gate_executor(GatePolicy()),
    }
    run = run_attempt(repo, repo_dir, spec, nodes, executors, attempt=1, resume=False, policy=POLICY)
    assert run.steps == ["baseline", "plan", "implement", "test", "review-a", "review-b", "gate"]
    log = git(repo_dir, "log", "--notes", "main..pantheon/t1/1")
    # git's own layout of a step is 8 lines (commit, Author, Date, blank, subject, blank, the trailer line,
    # the blank between commits) and the note adds 2 (git's "Notes (pantheon/log):" and one line): 10 a
    # step, so six steps fit a 60-line screen. With the JSON traces displayed it was 287 lines for seven.
    assert len(log.splitlines()) <= 10 * len(run.steps) - 1, log
    for args in (["--notes"], []):  # plain `git log` shows the note too: init set notes.displayRef
        six = git(repo_dir, "log", *args, "-6", "pantheon/t1/1")
        assert len(six.splitlines()) <= 60 and six.count("Notes (pantheon/log):") == 6, six
    assert "Notes (pantheon/log):" in log and '"policy"' not in log  # no JSON in the report
    short = git(repo_dir, "log", "--notes", "--pretty=pantheon", "main..pantheon/t1/1")
    assert len(short.splitlines()) <= 2 * len(run.steps), short
    assert short.splitlines()[0].endswith(
        "(pantheon/t1/1) gate: approve (acceptance passed; approved by reviewer:review-a, reviewer:review-b)"
    )
    notes = {
        step: git(repo_dir, "notes", "--ref", "pantheon/log", "show", f"pantheon/t1/1~{back}").strip()
        for back, step in enumerate(reversed(run.steps))
    }
    seconds = r"\d+\.\d s"
    assert re.fullmatch(
        rf"ok · implementer · {MODEL}\+base · 900\+60 tokens · {seconds} · 2 tool calls", notes["implement"]
    )
    assert re.fullmatch(
        rf"ok · acceptance · {seconds} · checks 1/1 passed · approve: 1/1 checks passed", notes["test"]
    )
    assert re.fullmatch(rf"ok · baseline · {seconds} · checks 0/1 passed", notes["baseline"]), notes
    assert notes["review-a"].endswith(" · 2 tool calls · approve: a.txt is there"), notes
    assert re.fullmatch(rf"ok · gate · {seconds} · approve: acceptance passed; approved by .*", notes["gate"])
    # The step commit keeps what tools read back, folded into one trailer line; no step repeats its name.
    base = git(repo_dir, "rev-parse", "main").strip()
    first = git(repo_dir, "log", "-1", "--format=%B", "pantheon/t1/1~6")
    assert re.fullmatch(
        rf"baseline: \d/1 checks pass[^\n]*\n\nPantheon-Step: baseline task=t1 attempt=1 base={base}\n", first
    )
    implement = git(repo_dir, "log", "-1", "--format=%B", "pantheon/t1/1~4")
    assert implement == "implement: implementer finished\n\nPantheon-Step: implement task=t1 attempt=1\n"
    # The JSON trace is still there for tools.
    trace = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", "pantheon/t1/1~4"))
    assert trace["node"] == "implement" and trace["tokens"]["out"] == 60
    # A person's vote later joins the log of the step it judges.
    assert pantheon(repo_dir, "vote", "t1", "reject", "-m", "wrong file name").returncode == 0
    head_log = git(repo_dir, "log", "-1", "--notes", "pantheon/t1/1")
    assert "votes: person:Night Tester <night@example.com> reject (wrong file name)" in head_log


def test_a_failed_step_says_so_and_why_in_the_log(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    from pantheon_git.night.attempt import PlannedNode, run_attempt

    repo = open_repo(repo_dir)
    spec = queued(repo_dir)

    def broken(context: NodeContext) -> NodeResult:
        return NodeResult(summary="failed: no file", ok=False, error="write_file: path escapes the worktree")

    run = run_attempt(
        repo,
        repo_dir,
        spec,
        [PlannedNode("implement", "b")],
        {"b": broken},
        attempt=1,
        resume=False,
        policy=POLICY,
    )
    assert run.outcome == "failed"
    note = git(repo_dir, "notes", "--ref", "pantheon/log", "show", "pantheon/t1/1").splitlines()
    assert len(note) == 2 and re.fullmatch(r"implement: FAILED · agent b · \d+\.\d s", note[0]), note
    assert note[1] == "error: write_file: path escapes the worktree"
