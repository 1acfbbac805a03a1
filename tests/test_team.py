"""Several runners, one remote, over a network: three runner hosts in network namespaces of their own,
joined by a bridge to a switch where `git daemon` serves the shared bare remote (tests/team_netns.py).
30 tasks: each runs exactly once and none is left; a runner SIGKILLed mid-task keeps its task claimed
until the claim expires, and another runner takes it over only when asked. Model-free (CHECKS_FLOW): the
machinery is what is tested."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, git, pantheon
from tests.test_night import with_checks_flow

needs_netns = pytest.mark.skipif(
    not os.environ.get("CI")  # in CI a missing namespace fails loudly instead of skipping
    and (shutil.which("unshare") is None or subprocess.run(["unshare", "-rn", "true"]).returncode != 0),
    reason="unprivileged network namespaces (unshare -rn) are not available here",
)
TASKS = [f"t{n:02}" for n in range(30)]
REMOTE_URL = "git://10.77.0.1/remote.git"


def _team_repo(repo: Path, base: Path) -> Path:
    """`repo` set up for a team: claims on origin (a bare remote under `base`), the model-free flow, a
    gate that needs no reviewers, claims expiring after a minute; 30 tasks and a slow one queued."""
    bare = with_checks_flow(repo, base)
    config = repo / ".pantheon" / "config.toml"
    text = config.read_text().replace("require_fixed_check = true", "require_fixed_check = false")
    text = text.replace("claim_expiry_minutes = 120", "claim_expiry_minutes = 1")
    config.write_text(text.replace("max_tasks = 20", "max_tasks = 40"))
    git(repo, "commit", "-q", "-am", "a team's night: 40 tasks, claims expiring after a minute")
    specs = []
    for task_id, check, priority in [("slow", "sleep 15", 9), *((task, "true", 0) for task in TASKS)]:
        spec = repo / f"{task_id}.toml"
        spec.write_text(
            f'id = "{task_id}"\ntitle = "{task_id}"\nflow = "checks"\npriority = {priority}\n'
            f'acceptance = ["{check}"]\n'
        )
        specs.append(str(spec))
    queued = pantheon(repo, "queue", *specs)
    assert queued.returncode == 0, queued.stderr
    git(repo, "push", "-q", "origin")  # HEAD and the pantheon refs (the push refspecs init configured)
    return bare


def _clone(base: Path, bare: Path, name: str) -> Path:
    clone = base / name
    git(base, "clone", "-q", str(bare), str(clone))
    git(clone, "config", "user.name", name)
    git(clone, "config", "user.email", f"{name}@example.com")
    git(clone, "fetch", "-q", "origin", "refs/pantheon/tasks:refs/pantheon/tasks")
    git(clone, "remote", "set-url", "origin", REMOTE_URL)  # from now on, over the team's network only
    return clone


def _ran(clone: Path) -> list[str]:
    """The tasks this clone made run branches for (one per attempt)."""
    names = git(clone, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/heads/pantheon/").split()
    return [name.split("/")[0] for name in names]


def _claim_owner(bare: Path, task_id: str) -> str:
    trailer = "--format=%(trailers:key=Pantheon-Claim-Owner,valueonly)"
    return git(bare, "log", "-1", trailer, f"refs/pantheon/claims/{task_id}").strip()


@needs_netns
def test_three_runners_on_one_remote_run_30_tasks_once_and_take_over_a_killed_ones_claim(
    repo_dir: Path, tmp_path: Path
) -> None:
    base = tmp_path / "team"
    base.mkdir()
    bare = _team_repo(repo_dir, base)
    # r1, r2, r3 run nights; r4 is the runner a person asks to take over r1's task.
    clones = {name: _clone(base, bare, name) for name in ("r1", "r2", "r3", "r4")}
    night = [sys.executable, "-m", "pantheon_git", "night"]
    take_over = [sys.executable, "-m", "pantheon_git", "run", "slow", "--take-over"]
    plan = {
        "base": str(base),
        "steps": [
            # r1 takes the highest-priority task first (a 15-second check) and is killed in it.
            {"start": "r1", "host": 1, "cwd": str(clones["r1"]), "argv": night},
            {"wait_ref": "refs/pantheon/claims/slow", "repo": str(bare), "timeout": 60},
            {"start": "r2", "host": 2, "cwd": str(clones["r2"]), "argv": night},
            {"start": "r3", "host": 3, "cwd": str(clones["r3"]), "argv": night},
            {"sleep": 1},
            {"kill": "r1"},
            # Right after the kill the claim is fresh: asking to take it over is refused. A minute
            # after r1's last heartbeat (at or before the kill) it has expired and is taken over.
            {"start": "early", "host": 4, "cwd": str(clones["r4"]), "argv": take_over},
            {"join": "early", "timeout": 60},
            {"join": "r2", "timeout": 300},
            {"join": "r3", "timeout": 300},
            {"since_kill": "r1", "seconds": 62},
            {"start": "late", "host": 5, "cwd": str(clones["r4"]), "argv": take_over},
            {"join": "late", "timeout": 120},
        ],
    }
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, str(REPO_ROOT / "tests" / "team_netns.py"), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)
    assert results["r1"]["killed"]
    for name in ("r2", "r3"):
        assert results[name]["returncode"] == 0, results[name]["output"]
    ran = {name: _ran(clone) for name, clone in clones.items()}
    # Each of the 30 ran exactly once, all of them on the two runners that lived; none is left; the
    # killed runner's task ran again only where it was taken over.
    assert sorted(ran["r2"] + ran["r3"]) == sorted(TASKS), ran
    assert set(ran["r1"]) <= {"slow"}  # killed in its first task
    assert ran["r4"] == ["slow"]
    claims = git(bare, "for-each-ref", "--format=%(refname:lstrip=3)", "refs/pantheon/claims/").split()
    assert sorted(claims) == sorted([*TASKS, "slow"])
    early = results["early"]["output"]
    assert "claimed by" in early and "expires after" in early, early
    late = results["late"]["output"]
    assert "task slow completed" in late, late
    owners = {_claim_owner(bare, task) for task in TASKS}
    assert len(owners) == 2  # r2's and r3's
    assert _claim_owner(bare, "slow") not in owners | {""}  # r4's, which took it over
