"""Resume under random SIGKILLs: however often a night dies, no finished task gets a second attempt.

The flow needs no model (acceptance, then a gate with min_approvals = 0), so many short nights fit in
seconds; the kill moments are drawn from a seeded generator (0.1–0.9 s after start) and printed, so a
failure can be replayed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import CHECKS_FLOW, git, pantheon

TASKS = [f"k{n:02d}" for n in range(12)]
KILLS = 20


def test_random_sigkills_never_repeat_a_finished_task(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "quick.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    # Model-free: nothing changes the files, so no check can go from failing to passing.
    relaxed = config.read_text().replace("min_approvals = 2", "min_approvals = 0")
    config.write_text(relaxed.replace("require_fixed_check = true", "require_fixed_check = false"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow")
    for task_id in TASKS:
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
            "sleep 0.05",
        )
        assert queued.returncode == 0, queued.stderr
    rng = random.Random(12)
    moments = [round(rng.uniform(0.1, 0.9), 3) for _ in range(KILLS)]
    print("kill moments:", moments)
    for moment in moments:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pantheon_git", "night"],
            cwd=repo_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
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
