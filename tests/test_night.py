"""`git pantheon night` end to end: the real embedded model on a sample repository, replay of a step,
and two clones of one bare remote running their nights at the same time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CHECKS_FLOW, git, pantheon

# Three modules, each with a stub the task names (`--file`): the embedded model completes such a body
# from the file itself (agents/stubs.py), and passes these three.
MODULES = {
    "calc.py": 'def mul(a, b):\n    """Return the product of a and b."""\n    raise NotImplementedError\n',
    "plus.py": 'def add(a, b):\n    """Return the sum of a and b."""\n    raise NotImplementedError\n',
    "nums.py": 'def is_even(n):\n    """Return True if n is even."""\n    raise NotImplementedError\n',
}
SPECS = [
    ("mul", "Implement mul in calc.py", "calc.py", "import calc; assert calc.mul(3, 4) == 12"),
    ("add", "Implement add in plus.py", "plus.py", "import plus; assert plus.add(3, 4) == 7"),
    (
        "even",
        "Implement is_even in nums.py",
        "nums.py",
        "import nums; assert nums.is_even(4) and not nums.is_even(3)",
    ),
]
DEFAULT_NODES = ["baseline", "place", "plan", "implement", "test", "checks", "review-a", "review-b", "gate"]


@pytest.fixture(scope="module")
def night_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    repo = tmp_path_factory.mktemp("night") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Night Tester")
    git(repo, "config", "user.email", "night@example.com")
    (repo / "README.md").write_text("sample\n")
    for name, text in MODULES.items():
        (repo / name).write_text(text)
    # The runner signs its steps and votes; the gate counts them once its key is allowed on main.
    assert pantheon(repo, "init").returncode == 0
    # The reviewers run (their steps are asserted) but the 270M model's verdicts are not what this tests:
    # the gate decides on the acceptance checks, which must go from failing to passing.
    config = repo / ".pantheon" / "config.toml"
    config.write_text(
        config.read_text()
        .replace("min_approvals = 2", "min_approvals = 0")
        .replace("any_reject_blocks = true", "any_reject_blocks = false")
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sample with pantheon")
    for task_id, title, path, check in SPECS:
        command = f'python3 -c "{check}"'
        queued = pantheon(
            repo, "queue", "--id", task_id, "--title", title, "--file", path, "--acceptance", command
        )
        assert queued.returncode == 0, queued.stderr
    night = pantheon(repo, "night")
    return repo, night


@pytest.mark.model
def test_night_leaves_a_run_branch_per_task_with_a_note_per_step(night_repo) -> None:
    repo, night = night_repo
    # The embedded model passes these three tasks (greedy decoding, fixed seeds): the whole flow runs
    # for each, no node fails, and the night says so in its exit status.
    assert night.returncode == 0, night.stdout + night.stderr
    assert "night done: 3 run, 0 failed, 0 skipped" in night.stdout, night.stdout + night.stderr
    for task_id, *_ in SPECS:
        branch = f"pantheon/{task_id}/1"
        steps = git(
            repo, "log", "--reverse", "--format=%(trailers:key=Pantheon-Step,valueonly)", f"main..{branch}"
        )
        assert [line.split()[0] for line in steps.splitlines() if line.strip()] == DEFAULT_NODES, steps
        for rev in git(repo, "rev-list", f"main..{branch}").split():
            note = json.loads(git(repo, "notes", "--ref", "pantheon/traces", "show", rev))
            assert note["task"] == task_id and note["policy"]["local_only"] is True and "summary" in note
        log = git(repo, "log", "--notes", branch, "-1")
        assert "    Pantheon-Log: ok · gate · approve" in log, log
    rows = {row["id"]: row["status"] for row in json.loads(pantheon(repo, "list", "--json").stdout)}
    assert rows == {"mul": "passed", "add": "passed", "even": "passed"}
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.model
def test_replay_reproduces_a_recorded_step(night_repo) -> None:
    repo, _ = night_repo
    implement = git(
        repo, "log", "--format=%H", "--grep", "^Pantheon-Step: implement ", "pantheon/mul/1"
    ).split()[0]
    replayed = pantheon(repo, "replay", implement)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every tool result, the output and the files match" in replayed.stdout
    # A step no model ran (the acceptance checks): nothing to replay.
    checks = git(repo, "log", "--format=%H", "--grep", "^Pantheon-Step: test ", "pantheon/mul/1").split()[0]
    no_model = pantheon(repo, "replay", checks)
    assert no_model.returncode == 2 and "ran no model agent" in no_model.stderr


def with_checks_flow(repo_dir: Path, tmp_path: Path) -> Path:
    """Init pantheon with a bare remote, a model-free flow `checks` and a gate needing no reviewers."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    text = config.read_text().replace("min_approvals = 2", "min_approvals = 0")
    config.write_text(text.replace("remotes = []", 'remotes = ["origin"]'))  # claims shared via origin
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow")
    return bare


def test_two_clones_of_one_remote_run_each_task_once(repo_dir: Path, tmp_path: Path) -> None:
    bare = with_checks_flow(repo_dir, tmp_path)
    ids = [f"task{n}" for n in range(6)]
    for task_id in ids:
        check = "sleep 0.3; true"
        assert (
            pantheon(
                repo_dir,
                "queue",
                "--id",
                task_id,
                "--title",
                task_id,
                "--acceptance",
                check,
                "--flow",
                "checks",
            ).returncode
            == 0
        )
    git(repo_dir, "push", "-q", "origin")  # the push refspecs init configured: HEAD and the pantheon refs
    clones = []
    for name in ("a", "b"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(bare), str(clone))
        git(clone, "config", "user.name", name)
        git(clone, "config", "user.email", f"{name}@example.com")
        git(clone, "fetch", "-q", "origin", "refs/pantheon/tasks:refs/pantheon/tasks")
        clones.append(clone)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pantheon_git", "night"],
            cwd=clone,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for clone in clones
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    ran = [
        set(git(clone, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/heads/pantheon/").split())
        for clone in clones
    ]
    ran_ids = [{name.split("/")[0] for name in names} for names in ran]
    assert not ran_ids[0] & ran_ids[1], ran_ids  # no task ran in both clones
    assert ran_ids[0] | ran_ids[1] == set(ids)  # and every task ran somewhere
    claims = git(bare, "for-each-ref", "--format=%(refname)", "refs/pantheon/claims/").split()
    assert len(claims) == len(ids)
    for clone, names in zip(clones, ran, strict=True):
        for name in names:
            assert (
                git(
                    clone, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", f"pantheon/{name}"
                ).split()[0]
                == "gate"
            )


SLOW_FLOW = """\
[[nodes]]
id = "check-1"
agent = "acceptance"
[[nodes]]
id = "check-2"
agent = "acceptance"
inputs = ["check-1"]
[[nodes]]
id = "check-3"
agent = "acceptance"
inputs = ["check-2"]
[[nodes]]
id = "gate"
agent = "gate"
inputs = ["check-3"]
"""


def test_sigkilled_night_resumes_from_the_last_step(repo_dir: Path) -> None:
    import random
    import signal
    import time

    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "slow.toml").write_text(SLOW_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    # The check passes on the base commit too: here that is fine, the test is about resuming.
    config.write_text(
        config.read_text()
        .replace("min_approvals = 2", "min_approvals = 0")
        .replace("require_fixed_check = true", "require_fixed_check = false")
    )
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "slow flow")
    assert (
        pantheon(
            repo_dir,
            "queue",
            "--id",
            "slow",
            "--title",
            "slow",
            "--flow",
            "slow",
            "--acceptance",
            "sleep 0.4; echo ok >> checks.log",
        ).returncode
        == 0
    )
    rng = random.Random(3)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pantheon_git", "night"],
            cwd=repo_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = pantheon(repo_dir, "night")
    assert final.returncode == 0, final.stdout + final.stderr
    steps = git(
        repo_dir,
        "log",
        "--reverse",
        "--format=%(trailers:key=Pantheon-Step,valueonly)",
        "main..pantheon/slow/1",
    )
    steps = [line.split()[0] for line in steps.splitlines() if line.strip()]  # the node, then task, attempt
    # each once, in order, one attempt only (the baseline: the checks on the base commit, first)
    assert steps == ["baseline", "check-1", "check-2", "check-3", "gate"]
    for rev in git(repo_dir, "rev-list", "main..pantheon/slow/1").split():
        assert json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", rev))["task"] == "slow"
    assert json.loads(pantheon(repo_dir, "list", "--json").stdout)[0]["status"] == "passed"
    assert "pantheon/slow/2" not in git(repo_dir, "branch", "--list", "pantheon/*")
    assert "pantheon" not in git(repo_dir, "worktree", "list")


def test_expired_claim_is_taken_over_only_when_asked(repo_dir: Path, tmp_path: Path) -> None:
    bare = with_checks_flow(repo_dir, tmp_path)
    assert (
        pantheon(
            repo_dir, "queue", "--id", "t1", "--title", "t1", "--acceptance", "true", "--flow", "checks"
        ).returncode
        == 0
    )
    # Another machine claimed t1 three hours ago and has been silent since.
    empty_tree = git(repo_dir, "hash-object", "-t", "tree", "-w", "--stdin").strip()
    message = (
        "claim t1\n\nPantheon-Claim-Owner: gone-host:deadbeef\n"
        "Pantheon-Claim-Heartbeat: 2000-01-01T00:00:00+00:00\n"
    )
    stale = git(repo_dir, "commit-tree", empty_tree, "-m", message).strip()
    git(repo_dir, "push", "-q", "origin", f"{stale}:refs/pantheon/claims/t1")
    git(repo_dir, "push", "-q", "origin")
    refused = pantheon(repo_dir, "run", "t1")
    assert refused.returncode == 0 and "take it over with `git pantheon run t1 --take-over`" in refused.stdout
    assert "pantheon/t1/1" not in git(repo_dir, "branch", "--list", "pantheon/*")
    taken = pantheon(repo_dir, "run", "t1", "--take-over")
    assert taken.returncode == 0 and "task t1 completed" in taken.stdout, taken.stdout + taken.stderr
    owner = git(
        bare,
        "log",
        "-1",
        "--format=%(trailers:key=Pantheon-Claim-Owner,valueonly)",
        "refs/pantheon/claims/t1",
    )
    assert owner.strip() != "gone-host:deadbeef"
    # The take-over and the heartbeats after it build on the claim that was seen expired.
    ancestry = subprocess.run(
        ["git", "merge-base", "--is-ancestor", stale, "refs/pantheon/claims/t1"], cwd=bare
    )
    assert ancestry.returncode == 0


def test_a_morning_fix_on_a_failed_run_branch_is_not_resumed_or_claimed_by_the_next_night(
    repo_dir: Path, tmp_path: Path
) -> None:
    """A person fixes a failed run where training/fixes.py says to, on its run branch. The next night
    must leave that branch alone: before, it read the run as unfinished (the head is no step), resumed it
    from scratch on top of the fix, and passed by the person's work, burying the fix under its own steps
    (so the trainer no longer saw it)."""
    with_checks_flow(repo_dir, tmp_path)
    spec = ["--id", "fixme", "--title", "fix me", "--flow", "checks", "--acceptance", "test -f fixed.txt"]
    assert pantheon(repo_dir, "queue", *spec).returncode == 0
    pantheon(repo_dir, "night")  # attempt 1: the gate rejects it (the check fails)
    assert "failed" in pantheon(repo_dir, "list", "--status", "failed").stdout
    branch = "pantheon/fixme/1"
    worktree = tmp_path / "morning"
    git(repo_dir, "worktree", "add", "-q", str(worktree), branch)
    (worktree / "fixed.txt").write_text("by hand\n")
    git(worktree, "add", "fixed.txt")
    git(worktree, "commit", "-q", "-m", "fix by hand")
    fix = git(repo_dir, "rev-parse", branch).strip()

    night = pantheon(repo_dir, "night", "--json")
    events = [json.loads(line) for line in night.stdout.splitlines() if line.startswith("{")]
    ran = [(e["task"], e["attempt"]) for e in events if e.get("event") == "done"]
    assert ("fixme", 1) not in ran, night.stdout
    assert git(repo_dir, "rev-parse", branch).strip() == fix  # nothing built on the person's commit
    listed = pantheon(repo_dir, "list", "--json")
    assert '"running"' not in listed.stdout and "fixme" in listed.stdout

    import pygit2

    from pantheon_git.training.fixes import find_fixes

    found = [f for f in find_fixes(pygit2.Repository(str(repo_dir))) if f.task == "fixme"]
    assert [str(f.commit) for f in found] == [fix]
