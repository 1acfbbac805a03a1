"""Attacks on the runner's own reads of a worktree: a check leaves a FIFO where the runner reads a file
(`mkfifo notes.py` survives `git clean`), and a node's work hangs past its timeout. Either used to stop
the whole night: the planner's prompt building opened every `*.py` with a blocking read."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import PLANNER
from pantheon_git.agents.context import editable_files, file_excerpts, repository_context
from pantheon_git.night import attempt as attempt_module
from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, run_attempt
from pantheon_git.night.executors import _diff, acceptance_executor, agent_executor, baseline_executor
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.worktrees import add_worktree, worktree_path
from pantheon_git.queue.tasks import enqueue
from pantheon_git.runtime.base import Completion, ModelIdentity, Windowless
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.files import READ_LIMIT, UnreadableFile, read_regular
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import worktree_tree
from pantheon_git.tools.builtin import ToolContext, ViewArgs, view
from pantheon_git.tools.paths import ToolError
from pantheon_git.tools.sandbox import run_sandboxed
from tests.conftest import git
from tests.test_attack_sandbox import needs_sandbox
from tests.test_runner_task import POLICY


class Recorder(Windowless):
    """The model, faked: these tests are about what the runner reads before it asks the model."""

    is_local = True
    identity = ModelIdentity(name="recorder", engine="scripted")

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, prompt: str, **_: Any) -> Completion:
        self.prompts.append(prompt)
        return Completion("", tokens_in=1, tokens_out=0, tokens_evaluated=1, seconds=0.0)


def unblock(fifos: list[Path]) -> None:
    """Open the other end of each FIFO, so a read stuck on one returns (the test must end)."""
    for fifo in fifos:
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            with suppress(OSError):
                os.close(os.open(fifo, flags))


def guarded(call: Callable[[], Any], release: Callable[[], None], wait_s: float = 120) -> Any:
    """call() in a thread; still busy after `wait_s`, it is let go with `release()` and the answer is
    "hung". A guard so a failing test ends, not a timing."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as raised:  # the test asserts on it
            outcome.append(raised)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(wait_s)
    if thread.is_alive():
        release()
        thread.join(30)
        return "hung"
    return outcome[0]


def queued(repo_dir: Path, command: str, files: list[str] | None = None) -> Spec:
    spec = stamp(
        Spec(id="t1", title="notes", scope="write notes.py", acceptance=[command], files=files or []),
        author="a <a@b>",
        base="main",
    )
    enqueue(open_repo(repo_dir), [spec])
    return spec


@needs_sandbox
def test_a_fifo_left_by_a_check_does_not_hang_the_planners_prompt(repo_dir: Path) -> None:
    # The night as it runs a default flow's first steps: the spec's check (sandboxed) leaves FIFOs named
    # like the repository's modules, then the planner's prompt is built from the tree (outline and the
    # files the spec names). The run must end, the planner having been asked.
    (repo_dir / "app.py").write_text("def main():\n    return 1\n")
    git(repo_dir, "add", "app.py")
    git(repo_dir, "commit", "-q", "-m", "app")
    spec = queued(repo_dir, "mkfifo notes.py && mkfifo -m 600 docs.md; exit 1", files=["notes.py", "docs.md"])
    model = Recorder()
    nodes = [
        PlannedNode("test", "acceptance"),
        PlannedNode("plan", "planner", timeout_s=60),
    ]
    executors = {
        "acceptance": acceptance_executor(run_sandboxed),
        "planner": agent_executor(PLANNER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, lambda: model),
    }
    workdir = worktree_path(str(repo_dir / ".git"), "t1", 1)
    fifos = [workdir / "notes.py", workdir / "docs.md"]
    run = guarded(
        lambda: run_attempt(
            open_repo(repo_dir),
            repo_dir,
            TaskPlan(spec, nodes, executors),
            Attempt(1, resume=False),
            policy=POLICY,
        ),
        lambda: unblock(fifos),
    )
    assert run != "hung", "the planner's prompt building blocked on a FIFO"
    assert not isinstance(run, Exception), run
    assert run.steps == ["test", "plan"]
    assert model.prompts, "the planner was never asked"
    assert "def main()" in model.prompts[0]  # the outline was built, from the regular files
    assert "notes.py: " in model.prompts[0]  # the named FIFO is refused with a reason, not read


def night_worktree(repo_dir: Path) -> Path:
    git(repo_dir, "branch", "pantheon/t1/1")
    return add_worktree(repo_dir, worktree_path(str(repo_dir / ".git"), "t1", 1), "refs/heads/pantheon/t1/1")


def test_every_runner_read_of_the_tree_refuses_a_fifo_at_once(repo_dir: Path) -> None:
    # Each way the runner reads a worktree (outline, named files, the edit grammar's files, a tool's view,
    # redaction and staging, the reviewer's diff) meets a FIFO where a file was: none may wait on it.
    worktree = night_worktree(repo_dir)
    (worktree / "README.md").unlink()
    fifos = [worktree / "README.md", worktree / "notes.py"]
    for fifo in fifos:
        os.mkfifo(fifo)
    task = {"title": "notes", "scope": "notes.py README.md", "files": ["notes.py", "README.md"]}
    calls: dict[str, Callable[[], Any]] = {
        "context": lambda: repository_context(worktree, task, {}, 2000),
        "editable": lambda: editable_files(worktree, ["notes.py", "README.md"]),
        "excerpts": lambda: file_excerpts(worktree, ["notes.py"], 500),
        "view": lambda: view(ViewArgs(path="notes.py"), ToolContext(worktree=worktree)),
        "stage": lambda: worktree_tree(worktree),
        "diff": lambda: _diff(worktree, "HEAD"),
        "open": lambda: read_regular(worktree / "notes.py"),
    }
    results = {name: guarded(call, lambda: unblock(fifos), wait_s=30) for name, call in calls.items()}
    assert [name for name, result in results.items() if result == "hung"] == []
    assert isinstance(results["view"], ToolError) and "FIFO" in str(results["view"])
    assert isinstance(results["open"], UnreadableFile) and "FIFO" in str(results["open"])
    assert results["editable"] == {}
    assert "notes.py: " in results["excerpts"] and "FIFO" in results["excerpts"]
    assert "README.md" in results["diff"]  # the tracked file replaced by a FIFO shows as gone


def test_the_one_open_refuses_links_hard_links_and_files_over_its_cap(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the tree's\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link.py").symlink_to(outside)
    os.link(outside, tree / "hard.py")
    with open(tree / "big.py", "wb") as handle:  # sparse: no disk used
        handle.truncate(READ_LIMIT + 1)
    (tree / "ok.py").write_text("x = 1\n")
    for name, why in (("link.py", "cannot open"), ("hard.py", "hard link"), ("big.py", "too large")):
        with pytest.raises(UnreadableFile, match=why):
            read_regular(tree / name)
    assert read_regular(tree / "ok.py") == b"x = 1\n"


@needs_sandbox
def test_the_baseline_leaves_no_fifo_for_the_next_step(repo_dir: Path) -> None:
    # The baseline runs the checks on the untouched base and must leave it untouched: `git clean` never
    # sees a FIFO, so one planted there used to wait for the planner. The runner's restore removes it.
    worktree = night_worktree(repo_dir)
    context = NodeContext(
        Spec(
            id="t1",
            title="x",
            acceptance=["mkfifo notes.py && echo x > made.txt && mkdir -p d && mkfifo d/p"],
        ),
        "t1",
        1,
        "baseline",
        "baseline",
        worktree,
        {},
        time.monotonic() + 60,
    )
    result = baseline_executor(run_sandboxed)(context)
    assert result.output["passing"] == [context.spec.acceptance[0]]
    assert not os.path.lexists(worktree / "notes.py") and not os.path.lexists(worktree / "d" / "p")
    assert not (worktree / "made.txt").exists() and (worktree / "README.md").is_file()


def test_a_nodes_timeout_bounds_the_runners_own_work(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever in the runner's own work for a node does not end (here an executor stuck in its process,
    # as the planner was on a FIFO), the node fails as timed out soon after its deadline, the executor is
    # told it has no time left, and the run goes on to record the step.
    monkeypatch.setattr(attempt_module, "OVERRUN_GRACE_S", 1.0)
    spec = queued(repo_dir, "true")
    stuck = threading.Event()
    told: list[float] = []

    def hangs(context: NodeContext) -> NodeResult:
        stuck.wait(120)
        told.append(context.seconds_left())
        return NodeResult(summary="late")

    nodes = [PlannedNode("plan", "stuck", timeout_s=1)]
    run = guarded(
        lambda: run_attempt(
            open_repo(repo_dir),
            repo_dir,
            TaskPlan(spec, nodes, {"stuck": hangs}),
            Attempt(1, resume=False),
            policy=POLICY,
        ),
        stuck.set,
        wait_s=60,
    )
    stuck.set()
    assert run != "hung", "the runner waited on the node's work past its timeout"
    assert run.outcome == "failed" and "timed out" in run.detail
    error = git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Error,valueonly)", "pantheon/t1/1")
    assert "timed out" in error
    for _ in range(100):
        if told:
            break
        time.sleep(0.05)
    assert told == [0.0]  # the abandoned executor sees no time left


@needs_sandbox
def test_a_fifo_named_like_a_source_file_does_not_stop_the_night(repo_dir: Path) -> None:
    # The night as reproduced: task t1's check runs `mkfifo notes.py` (a FIFO survives `git clean`), then
    # its reviewer's prompt (the diff, the outline) and its planner's are built from the tree. The night
    # must end with both asked, and go on to t2.
    from pantheon_git.agents.builtin import REVIEWER
    from pantheon_git.night.setup import NightSetup
    from pantheon_git.night.shift import run_tasks

    (repo_dir / "app.py").write_text("def main():\n    return 1\n")
    git(repo_dir, "add", "app.py")
    git(repo_dir, "commit", "-q", "-m", "app")
    specs = [
        stamp(
            Spec(
                id="t1",
                title="notes",
                scope="notes.py",
                acceptance=["mkfifo notes.py; exit 1"],
                files=["notes.py"],
            ),
            author="a <a@b>",
            base="main",
        ),
        stamp(Spec(id="t2", title="next", acceptance=["true"]), author="a <a@b>", base="main"),
    ]
    enqueue(open_repo(repo_dir), specs)
    model = Recorder()
    config = ModelConfig(bundled="gemma3-270m")
    nodes = [
        PlannedNode("test", "acceptance"),
        PlannedNode("review", "reviewer", inputs=("test",), timeout_s=30),  # abstains: the run goes on
        PlannedNode("plan", "planner", inputs=("review",), timeout_s=30),
    ]
    executors = {
        "acceptance": acceptance_executor(run_sandboxed),
        "planner": agent_executor(PLANNER, config, run_sandboxed, lambda: model),
        "reviewer": agent_executor(REVIEWER, config, run_sandboxed, lambda: model),
    }
    setup = NightSetup(
        policy={"local_only": True},
        remote=None,
        max_tasks=2,
        claim_expiry_minutes=60,
        flow_for=lambda _name, _labels=(): (nodes, executors),
    )
    fifo = worktree_path(str(repo_dir / ".git"), "t1", 1) / "notes.py"
    results = guarded(lambda: run_tasks(open_repo(repo_dir), repo_dir, setup=setup), lambda: unblock([fifo]))
    assert results != "hung", "the night blocked on a FIFO in t1's worktree"
    assert not isinstance(results, Exception), results
    assert sorted(result.task_id for result in results) == ["t1", "t2"]  # the other task ran too
    assert all(isinstance(result, attempt_module.TaskRun) for result in results)
    assert git(repo_dir, "rev-parse", "--verify", "--quiet", "pantheon/t2/1").strip()
    assert [result.steps for result in results] == [["test", "review", "plan"]] * 2
    t1 = [prompt for prompt in model.prompts if "notes.py" in prompt]
    reviewer = [prompt for prompt in t1 if REVIEWER.role in prompt]
    planner = [prompt for prompt in t1 if PLANNER.role in prompt]
    assert reviewer and "FIFO" in reviewer[0]  # t1's reviewer was asked, the named FIFO refused, not read
    assert planner and "def main()" in planner[0]  # and its planner, the outline built from regular files
