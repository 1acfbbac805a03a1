"""Resume under random SIGKILLs: however often a night dies, no finished task gets a second attempt.

The flow needs no model (acceptance, then a gate with min_approvals = 0), so many short nights fit in
seconds. Each night runs as cron runs it, `git pantheon night`, and is killed a random 0.05–0.6 s after
it starts: sometimes the whole process group (the runner dies mid-write and the next night resumes),
sometimes only `git` (its runner lives on beside the next nights, which picked their tasks before that
runner finished them). The moments and modes come from a seeded generator and are printed, so a failure
can be replayed; PANTHEON_KILL_SEED picks another seed by hand.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import git, pantheon
from tests.test_fault_points import model_free_repo

TASKS = [f"k{n:02d}" for n in range(12)]
KILLS = 20
# Runners left alive by a kill of their `git` finish their night on their own; past this, they are
# killed too (the final night then resumes what they left).
ORPHANS_WAIT_S = 300.0


def live_members(group: int) -> list[int]:
    """The processes of process group `group` that still run (zombies left to init do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if fields and int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def wait_for_groups(groups: list[int]) -> None:
    deadline = time.monotonic() + ORPHANS_WAIT_S
    while any(live_members(group) for group in groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    for group in groups:
        for pid in live_members(group):
            os.kill(pid, signal.SIGKILL)


def test_random_sigkills_never_repeat_a_finished_task(repo_dir: Path) -> None:
    model_free_repo(repo_dir, TASKS, acceptance="sleep 0.05")
    seed = int(os.environ.get("PANTHEON_KILL_SEED", "12"))
    rng = random.Random(seed)
    kills = [(round(rng.uniform(0.05, 0.6), 3), rng.choice(["group", "git"])) for _ in range(KILLS)]
    print(f"seed {seed}, kill moments and modes:", kills)
    # `git pantheon` finds the runner next to this Python, as it would on the user's PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    groups = []
    for moment, mode in kills:
        proc = subprocess.Popen(
            ["git", "pantheon", "night"],
            cwd=repo_dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        groups.append(proc.pid)
        time.sleep(moment)
        if mode == "group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)  # git only: its runner goes on, orphaned
        proc.wait()
    wait_for_groups(groups)
    final = pantheon(repo_dir, "night")
    assert final.returncode == 0, final.stdout + final.stderr
    rows = {row["id"]: row["status"] for row in json.loads(pantheon(repo_dir, "list", "--json").stdout)}
    locks = sorted(str(path.relative_to(repo_dir)) for path in (repo_dir / ".git").rglob("*.lock"))
    assert rows == dict.fromkeys(TASKS, "passed"), (final.stdout, final.stderr, locks)
    branches = git(repo_dir, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split()
    assert sorted(branches) == [f"pantheon/{task_id}/1" for task_id in TASKS]  # one attempt each
    for task_id in TASKS:
        revs = git(repo_dir, "rev-list", "--reverse", f"main..pantheon/{task_id}/1").split()
        steps = [
            git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", rev).split()[0]
            for rev in revs
        ]
        assert steps == ["baseline", "test", "gate"], (task_id, steps)  # each step once
        for rev in revs:
            trace = json.loads(git(repo_dir, "notes", "--ref", "pantheon/traces", "show", rev))
            assert trace["task"] == task_id
            assert git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Log,valueonly)", rev).strip()
    assert "pantheon" not in git(repo_dir, "worktree", "list")
