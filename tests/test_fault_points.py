"""A night SIGKILLed at each write boundary of a step and of the gate, one at a time, then run to the end.

A clean night with `PANTHEON_FAULT_LOG` lists every boundary it reaches (each ref lock and ref move, of
the run branch, the claim and the notes refs; each signature; each append to the signature cache under
.git/pantheon/: store/faults.py), in order. Then, for each one, a fresh copy of the same repository runs
a night killed exactly there (`PANTHEON_FAULT_AT=<point>:<count>`), and a night to the end. Whatever the
kill left, the result must be the clean night's: each task one attempt (one run branch), each step once
with its trace note, its log line and its votes, the same status, no worktree left.

`make test` kills at the run's start and at every point of the gate's step (between them every kind of
boundary) for one task; `pytest -m slow` kills at every point of a night of two tasks (74, minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from pantheon_git.night.attempt import PlannedNode, TaskRun, choose_attempt
from pantheon_git.night.executors import acceptance_executor, baseline_executor, gate_executor
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeResult
from pantheon_git.night.setup import NightSetup
from pantheon_git.night.shift import Skipped, pick_tasks, run_picked, run_tasks
from pantheon_git.queue.status import task_states
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store import signing
from pantheon_git.store.git import open_repo, signature
from pantheon_git.store.layout import run_branch
from pantheon_git.store.runs import Step, bind_step, publish_step, start_run_branch
from pantheon_git.store.signing import Trust, allowed_signers, verify_commit
from pantheon_git.store.votes import Vote, append_votes, read_votes
from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available
from tests.conftest import CHECKS_FLOW, git, oid_of, pantheon

needs_sandbox = pytest.mark.skipif(not sandbox_available(), reason="no `unshare -rn` here")

TASKS = ["f1"]
TWO_TASKS = ["f1", "f2"]  # the slow sweep: kills after one task is done, before the next is claimed
STEPS = ["baseline", "test", "gate"]


def model_free_repo(repo_dir: Path, tasks: list[str], acceptance: str = "true") -> None:
    """`init`, a flow with no model (checks, then the gate) and a relaxed gate, and `tasks` queued."""
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "quick.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    # Model-free: nothing changes the files, so no check can go from failing to passing.
    relaxed = config.read_text().replace("min_approvals = 2", "min_approvals = 0")
    config.write_text(relaxed.replace("require_fixed_check = true", "require_fixed_check = false"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow")
    for task_id in tasks:
        queued = pantheon(
            repo_dir,
            "queue",
            "--id",
            task_id,
            "--title",
            task_id,
            "--flow",
            "quick",
            "--acceptance",
            acceptance,
        )
        assert queued.returncode == 0, queued.stderr


def night(repo_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pantheon_git", "night"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def outcome(repo_dir: Path) -> dict[str, object]:
    """What a finished queue looks like, independent of when it was written: statuses, run branches,
    each branch's steps with the votes that count on each, and any step without its trace note or its
    log line."""
    repo = open_repo(repo_dir)
    rows = {state.id: state.status.value for state in task_states(repo)}  # what `list` shows
    branches = sorted(
        git(repo_dir, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split()
    )
    steps: dict[str, list[str]] = {}
    votes: dict[str, list[list[str]]] = {}
    missing: list[str] = []
    for branch in branches:
        revs = git(repo_dir, "rev-list", "--reverse", f"main..{branch}").split()
        names = []
        for rev in revs:
            names.append(
                git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", rev).split()[0]
            )
            counted = read_votes(repo, pygit2.Oid(hex=rev), base="main")
            votes.setdefault(branch, []).append(
                sorted(f"{vote.kind}:{vote.voter}:{vote.verdict}" for vote in counted)
            )
            note = git(repo_dir, "notes", "--ref", "pantheon/traces", "show", rev, check=False)
            if not note.strip() or json.loads(note).get("task") != branch.split("/")[1]:
                missing.append(f"{branch} {rev[:12]}: no trace note")
            if not git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Log,valueonly)", rev).strip():
                missing.append(f"{branch} {rev[:12]}: no Pantheon-Log line")
        steps[branch] = names
    worktrees = [line for line in git(repo_dir, "worktree", "list").splitlines() if "pantheon" in line]
    return {
        "status": rows,
        "branches": branches,
        "steps": steps,
        "votes": votes,
        "missing": missing,
        "worktrees": worktrees,
    }


def age_note_locks(repo_dir: Path) -> None:
    """Make lock files a kill left on notes refs an hour old, as the next cron night finds them.

    A notes ref is shared by every task, so its lock can only be proven stale by age (store/git.py);
    without this every such case would wait out that bound instead of testing what comes after.
    """
    past = time.time() - 3600
    for lock in (repo_dir / ".git" / "refs" / "notes").rglob("*.lock"):
        os.utime(lock, (past, past))


def clean_night(
    repo_dir: Path, tmp_path: Path, tasks: list[str] = TASKS
) -> tuple[Path, dict[str, object], list[str]]:
    """The queue copied as it is before any night (a template), the outcome of a night without kills,
    and every write boundary that night reached, in order (`<point>:<count>`)."""
    model_free_repo(repo_dir, tasks)
    template = tmp_path / "template"
    shutil.copytree(repo_dir, template, symlinks=True)
    log = tmp_path / "points.log"
    clean = night(repo_dir, PANTHEON_FAULT_LOG=str(log))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    expected = outcome(repo_dir)
    assert expected["status"] == dict.fromkeys(tasks, "passed")
    assert expected["branches"] == [f"pantheon/{task_id}/1" for task_id in tasks]
    assert expected["steps"] == {f"pantheon/{task_id}/1": STEPS for task_id in tasks}
    # The test step's vote and the gate's approval, each once, each counted.
    assert [len(step) for step in expected["votes"]["pantheon/f1/1"]] == [0, 1, 1], expected["votes"]
    assert expected["missing"] == [] and expected["worktrees"] == []
    points = log.read_text().split()
    kinds = {point.rpartition(":")[0] for point in points}
    # Every kind of write boundary is reached: each ref's lock and move, each signature, the cache.
    for kind in ("run-branch", "traces", "payloads", "votes", "claim"):
        assert {f"ref-locked.{kind}", f"ref-moved.{kind}"} <= kinds, sorted(kinds)
    assert {"signed.commit", "signed.votes", "cached.verified"} <= kinds, sorted(kinds)
    return template, expected, points


def kill_then_finish(
    template: Path, case: Path, point: str
) -> tuple[subprocess.CompletedProcess[str], object]:
    """A fresh copy of `template`, a night SIGKILLed at `point`, then a night to the end: (it, outcome)."""
    shutil.copytree(template, case, symlinks=True)
    killed = night(case, PANTHEON_FAULT_AT=point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{point}: not reached (exit {killed.returncode}): {killed.stderr}"
    )
    age_note_locks(case)
    final = night(case)
    got = outcome(case)
    shutil.rmtree(case, ignore_errors=True)
    return final, got


def sweep(template: Path, tmp_path: Path, expected: dict[str, object], points: list[str]) -> list[str]:
    """Kill at each of `points` in turn; what differed from the night without kills, one line a point."""
    wrong: list[str] = []
    for number, point in enumerate(points):
        final, got = kill_then_finish(template, tmp_path / f"case{number}", point)
        if final.returncode != 0 or got != expected:
            wrong.append(
                f"{point}: exit {final.returncode}, {got} {final.stdout[-300:]} {final.stderr[-300:]}"
            )
    return wrong


def start_and_gate(points: list[str]) -> list[str]:
    """The run's start (its claim, its branch) and every point of the gate's step (its commit, trace,
    payload and vote, their signatures, the claim's heartbeat, the branch's move, the cache): between
    them every kind of boundary, and the window between a gate's commit and its vote."""
    moves = [index for index, point in enumerate(points) if point.startswith("ref-moved.run-branch:")]
    gate_from = moves[-2] + 1  # the branch's last move but one published the step before the gate
    return points[: moves[0] + 1] + points[gate_from:]


def test_a_kill_at_the_start_or_in_the_gate_changes_nothing(repo_dir: Path, tmp_path: Path) -> None:
    template, expected, points = clean_night(repo_dir, tmp_path)
    chosen = start_and_gate(points)
    assert {point.rpartition(":")[0] for point in chosen} == {point.rpartition(":")[0] for point in points}
    print(f"{len(chosen)} of {len(points)} kill points:", " ".join(chosen))
    wrong = sweep(template, tmp_path, expected, chosen)
    assert wrong == [], "\n".join(wrong)


@pytest.mark.slow
def test_a_kill_at_every_write_boundary_changes_nothing(repo_dir: Path, tmp_path: Path) -> None:
    template, expected, points = clean_night(repo_dir, tmp_path, TWO_TASKS)
    print(f"{len(points)} kill points:", " ".join(points))
    wrong = sweep(template, tmp_path, expected, points)
    assert wrong == [], "\n".join(wrong)


def _queue_one(repo_dir: Path) -> pygit2.Repository:
    """The repository with one queued task `s1`: a check that passes, then the gate."""
    repo = open_repo(repo_dir)
    enqueue(repo, [stamp(Spec(id="s1", title="s1", acceptance=["true"]), author="a <a@b>", base="main")])
    return repo


def _checks_setup(gate: NodeExecutor | None = None) -> NightSetup:
    """A night's setup for the checks flow (baseline, test, gate), run in this process."""
    policy = GatePolicy(min_approvals=0, require_fixed_check=False)
    nodes = [
        PlannedNode("baseline", "baseline"),
        PlannedNode("test", "acceptance"),
        PlannedNode("gate", "gate", inputs=("test",)),
    ]
    executors = {
        "baseline": baseline_executor(run_sandboxed),
        "acceptance": acceptance_executor(run_sandboxed),
        "gate": gate or gate_executor(policy),
    }
    return NightSetup(
        policy={"local_only": True},
        remote=None,
        max_tasks=5,
        claim_expiry_minutes=60,
        flow_for=lambda _name, _labels=(): (nodes, executors),
    )


def _branches(repo_dir: Path) -> list[str]:
    return git(repo_dir, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split()


@needs_sandbox
def test_a_night_that_picked_a_task_before_another_runner_passed_it_starts_no_attempt(repo_dir: Path) -> None:
    repo = _queue_one(repo_dir)
    setup = _checks_setup()
    # Two nights on one machine (cron's `git` killed, its runner not): both pick the task as runnable,
    # one passes it, then the other takes the task's lock with what it picked at its start.
    stale = pick_tasks(task_states(repo), None)
    assert [state.status.value for state in stale] == ["queued"]
    first = run_tasks(repo, repo_dir, setup=setup)
    assert [(run.attempt, run.passed) for run in first if isinstance(run, TaskRun)] == [(1, True)]
    for jobs in (1, 2):
        late = run_picked(repo, repo_dir, stale, setup=setup, jobs=jobs)
        assert late == [Skipped("s1", "attempt 1 passed the gate; not attempted again")]
    assert _branches(repo_dir) == ["pantheon/s1/1"]
    assert {state.id: state.status.value for state in task_states(repo)} == {"s1": "passed"}


@needs_sandbox
def test_an_attempt_cut_between_its_gate_step_and_its_vote_is_finished_not_replaced(repo_dir: Path) -> None:
    def gate_cut_before_its_vote(_context: NodeContext) -> NodeResult:
        # The gate's step is published as a runner cut right after it would leave it: without its vote.
        return NodeResult(summary="approve", output={"verdict": "approve"})

    repo = _queue_one(repo_dir)
    run_tasks(repo, repo_dir, setup=_checks_setup(gate=gate_cut_before_its_vote))
    assert {state.id: state.status.value for state in task_states(repo)} == {"s1": "running"}
    results = run_tasks(repo, repo_dir, setup=_checks_setup())
    assert [(run.attempt, run.passed) for run in results if isinstance(run, TaskRun)] == [(1, True)]
    assert _branches(repo_dir) == ["pantheon/s1/1"]
    steps = git(repo_dir, "log", "--format=%(trailers:key=Pantheon-Step,valueonly)", "main..pantheon/s1/1")
    assert [line.split()[0] for line in steps.split("\n") if line.strip()] == ["gate", "test", "baseline"]
    votes = read_votes(repo, oid_of(repo_dir, "pantheon/s1/1"), base="main")
    assert [(vote.kind, vote.verdict) for vote in votes] == [("gate", "approve")]
    assert {state.id: state.status.value for state in task_states(repo)} == {"s1": "passed"}


def test_a_signature_check_that_could_not_run_is_tried_again_and_never_remembered(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = open_repo(repo_dir)
    head = oid_of(repo_dir)
    approval = append_votes(repo, head, [Vote(kind="gate", voter="gate", verdict="approve")])
    assert approval is not None
    signers = allowed_signers(repo)
    real_run = subprocess.run
    failures = {"left": 3}

    def ssh_keygen_cannot_start(args: list[str], *rest: object, **options: object) -> object:
        # What a loaded machine does now and then: the fork for ssh-keygen fails (EAGAIN).
        if args[:3] == ["ssh-keygen", "-Y", "verify"] and failures["left"]:
            failures["left"] -= 1
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_run(args, *rest, **options)

    monkeypatch.setattr(signing.subprocess, "run", ssh_keygen_cannot_start)
    monkeypatch.setattr(signing, "UNCHECKED_RETRY_S", 0.0)
    # Two failures in a row: nothing could be checked, so it does not count now...
    assert verify_commit(repo, approval, signers) == (Trust.BAD_SIGNATURE, None)
    # ...and it was not remembered as bad: the next reader (the next night's choice of attempt) checks
    # again, through one more failure, and the approval counts.
    assert verify_commit(repo, approval, signers)[0] == Trust.VERIFIED
    assert failures["left"] == 0
    assert [vote.verdict for vote in read_votes(repo, head)] == ["approve"]


def test_a_run_whose_steps_do_not_verify_passes_nothing_and_blocks_no_task(repo_dir: Path) -> None:
    repo = _queue_one(repo_dir)
    spec = next(state.spec for state in task_states(repo) if state.id == "s1")
    # A gate step made elsewhere (unsigned: no runner of ours vouches for it), bound to s1's first
    # attempt, with a gate approval that does count (signed by the allowed runner key) on top of it.
    base = repo.head.target
    ref = start_run_branch(repo, "s1", 1, base)
    step = bind_step(repo, ref, Step("s1", "gate", "gate", "-", "approve", {}))
    author = signature(repo)
    commit = repo.create_commit(None, author, author, step.message(), repo.get(base).tree_id, [base])
    publish_step(repo, ref, commit, base)
    append_votes(repo, commit, [Vote(kind="gate", voter="gate", verdict="approve")])
    assert [vote.verdict for vote in read_votes(repo, commit)] == ["approve"]
    assert oid_of(repo_dir, run_branch("s1", 1)) == commit
    # Not passed, so the task is not done: the night attempts it again.
    assert {state.id: state.status.value for state in task_states(repo)} == {"s1": "failed"}
    assert choose_attempt(repo, spec) == (2, False)


class Killed(BaseException):
    """The runner dying where a test says (a BaseException: nothing in the night catches it)."""


@needs_sandbox
def test_a_gate_step_redone_as_the_very_same_commit_after_a_kill_decides_once(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pantheon_git.night import attempt
    from pantheon_git.store import runs

    # Within one second a redone step is the same commit: same tree, same message (durations round to
    # 0.1 s in it), and the same SSH signature. Pin both so this is so on a loaded machine too.
    when = int(time.time())
    monkeypatch.setattr(runs, "signature", lambda repo: pygit2.Signature("Night Tester", "n@e.com", when, 0))
    real_log = attempt.step_log
    monkeypatch.setattr(
        attempt, "step_log", lambda trace, *rest: real_log({**trace, "duration_s": 0.0}, *rest)
    )
    real_publish = attempt.publish_step
    cut: list[pygit2.Oid] = []

    def killed_before_the_gate_is_published(
        repo: pygit2.Repository, ref: str, commit: pygit2.Oid, parent: pygit2.Oid
    ) -> None:
        if repo.get(commit).message.startswith("gate") and not cut:
            cut.append(commit)
            raise Killed  # after the gate's trace and vote were written, before its branch moved
        real_publish(repo, ref, commit, parent)

    monkeypatch.setattr(attempt, "publish_step", killed_before_the_gate_is_published)
    repo = _queue_one(repo_dir)
    with pytest.raises(Killed):
        run_tasks(repo, repo_dir, setup=_checks_setup())
    assert [vote.kind for vote in read_votes(repo, cut[0], base="main")] == ["gate"]
    results = run_tasks(repo, repo_dir, setup=_checks_setup())
    assert [(run.attempt, run.passed) for run in results if isinstance(run, TaskRun)] == [(1, True)]
    head = oid_of(repo_dir, "pantheon/s1/1")
    assert head == cut[0]  # the redone gate step is the commit cut before
    assert [(vote.kind, vote.verdict) for vote in read_votes(repo, head, base="main")] == [
        ("gate", "approve")
    ]
