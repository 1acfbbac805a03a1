"""The runner's loop over a flow's nodes: a commit and a trace note per step, failures, retries, resume.

The executors here are small real ones (they write files, fail, or sleep); which agent runs a node is not
what these tests are about, the bookkeeping around it is.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, choose_attempt, run_attempt
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.queue.status import task_states
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.traces import read_trace
from tests.conftest import git, oid_of

POLICY = {"local_only": True}


def queued(repo_dir: Path, task_id: str = "t1", attempts: int = 2) -> Spec:
    spec = stamp(
        Spec(
            id=task_id, title="write files", acceptance=["test -f a.txt"], limits={"max_attempts": attempts}
        ),
        author="a <a@b>",
        base="main",
    )
    enqueue(open_repo(repo_dir), [spec])
    return spec


def writer(name: str, text: str):
    def run(context: NodeContext) -> NodeResult:
        (context.worktree / name).write_text(text + json.dumps(context.inputs, sort_keys=True))
        return NodeResult(
            summary=f"wrote {name}", output={"file": name}, model="test@0", tokens={"in": 3, "out": 1}
        )

    return run


def test_each_node_is_a_commit_with_a_readable_trace_note(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    spec = queued(repo_dir)
    nodes = [
        PlannedNode("plan", "a"),
        PlannedNode("implement", "b", inputs=("plan",)),
        PlannedNode("review", "c", inputs=("implement",)),
    ]
    executors = {
        "a": writer("plan.md", "plan"),
        "b": writer("a.txt", "code"),
        "c": lambda ctx: NodeResult(summary="looks fine", output={"ok": True}),
    }
    run = run_attempt(
        repo, repo_dir, TaskPlan(spec, nodes, executors), Attempt(1, resume=False), policy=POLICY
    )
    assert run.outcome == "completed" and run.steps == ["plan", "implement", "review"]
    log = git(repo_dir, "log", "--format=%s", "main..pantheon/t1/1").splitlines()
    assert log == ["review: looks fine", "implement: wrote a.txt", "plan: wrote plan.md"]
    assert git(repo_dir, "show", "pantheon/t1/1:a.txt") == 'code{"plan": {"file": "plan.md"}}'
    for rev in ("pantheon/t1/1", "pantheon/t1/1~1", "pantheon/t1/1~2"):
        note = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", rev))
        assert note["policy"] == POLICY and note["task"] == "t1" and "output" in note
    # The review step changed nothing: an empty commit, still with its record.
    assert git(repo_dir, "diff", "--stat", "pantheon/t1/1~1", "pantheon/t1/1") == ""
    # The worktree is gone, the branch stays; the user's checkout never moved.
    assert "pantheon" not in git(repo_dir, "worktree", "list")
    assert git(repo_dir, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_failure_leaves_an_artifact_and_retries_restore_the_worktree(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    spec = queued(repo_dir)
    calls = {"n": 0}

    def flaky(context: NodeContext) -> NodeResult:
        calls["n"] += 1
        (context.worktree / f"junk{calls['n']}.txt").write_text("half-done")
        return NodeResult(summary="broke", ok=False, error=f"try {calls['n']} broke", log_tail="Traceback …")

    nodes = [PlannedNode("implement", "b", retries=2), PlannedNode("review", "c")]
    run = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, nodes, {"b": flaky, "c": writer("x", "")}),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert run.outcome == "failed" and calls["n"] == 3 and run.detail == "implement: try 3 broke"
    head = git(repo_dir, "log", "-1", "--format=%B", "pantheon/t1/1")
    assert " outcome=failed\n" in head and "Pantheon-Error: try 3 broke" in head
    # Earlier tries were rolled back; the artifact keeps the last try's state for inspection.
    assert git(repo_dir, "ls-tree", "--name-only", "pantheon/t1/1").split() == [
        ".pantheon",
        "README.md",
        "junk3.txt",
    ]
    note = read_trace(repo, oid_of(repo_dir, "pantheon/t1/1"))
    assert note is not None and note["error"] == "try 3 broke" and len(note["failed_tries"]) == 3
    assert any("git log --notes" in line for line in note["inspect"])
    assert {s.id: s.status.value for s in task_states(repo)} == {"t1": "failed"}
    assert choose_attempt(repo, spec) == (2, False)


def test_when_false_skips_and_crashes_fail_the_node(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    spec = queued(repo_dir)

    def crash(context: NodeContext) -> NodeResult:
        raise RuntimeError("boom")

    nodes = [
        PlannedNode("plan", "a"),
        PlannedNode("optional", "b", when=lambda out: "nothing" in out),
        PlannedNode("implement", "c"),
    ]
    run = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, nodes, {"a": writer("p", ""), "b": crash, "c": crash}),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert run.outcome == "failed" and run.steps == ["plan", "optional", "implement"]
    skipped = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", "pantheon/t1/1~1"))
    assert skipped["output"] == {"skipped": True}
    crashed = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", "pantheon/t1/1"))
    assert "RuntimeError('boom')" in crashed["error"] and "Traceback" in crashed["log_tail"]


RESUMABLE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pantheon_git.store.git import open_repo
    from pantheon_git.queue.tasks import load_specs
    from pantheon_git.night.nodes import NodeResult
    from pantheon_git.night.attempt import PlannedNode, TaskPlan, choose_attempt, run_attempt
    from pantheon_git.store.locks import task_lock

    root = Path(sys.argv[1])
    repo = open_repo(root)
    spec = load_specs(repo)[0]
    def slow(name):
        def run(ctx):
            time.sleep(0.15)
            (ctx.worktree / name).write_text(name)
            return NodeResult(summary="wrote " + name, output={"file": name})
        return run
    nodes = [PlannedNode(f"n{i}", f"a{i}", inputs=(f"n{i-1}",) if i else ()) for i in range(6)]
    executors = {f"a{i}": slow(f"f{i}.txt") for i in range(6)}
    # As the night does: the task's lock first. It is what proves a ref lock file that a killed runner
    # left (SIGKILL between writing a branch's lock and renaming it) stale at once.
    with task_lock(repo.path, spec.id) as held:
        assert held
        attempt = choose_attempt(repo, spec)
        run = run_attempt(repo, root, TaskPlan(spec, nodes, executors), attempt, policy={})
    print(run.outcome, attempt.number, attempt.resume)
    """
)


def test_sigkill_at_any_moment_resumes_without_duplicates_or_lost_notes(repo_dir: Path) -> None:
    queued(repo_dir)
    rng = random.Random(int(os.environ.get("PANTHEON_TEST_SEED", "7")))
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", RESUMABLE, str(repo_dir)], stdout=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run([sys.executable, "-c", RESUMABLE, str(repo_dir)], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert final.stdout.split()[:2] == ["completed", "1"]
    log = git(repo_dir, "log", "--format=%(trailers:key=Pantheon-Step,valueonly)", "main..pantheon/t1/1")
    steps = [line.split()[0] for line in log.splitlines() if line.strip()]  # the node, then task, attempt
    assert steps == [f"n{i}" for i in range(5, -1, -1)]  # each node exactly once, in order
    assert git(repo_dir, "rev-list", "--merges", "main..pantheon/t1/1") == ""
    for rev in git(repo_dir, "rev-list", "main..pantheon/t1/1").split():
        assert json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", rev))["node"]
    assert git(repo_dir, "ls-tree", "--name-only", "pantheon/t1/1").split() == [
        ".pantheon",
        "README.md",
        *[f"f{i}.txt" for i in range(6)],
    ]
    assert "pantheon" not in git(repo_dir, "worktree", "list")
