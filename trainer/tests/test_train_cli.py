"""`git pantheon train lora`: from a mined dataset to a GGUF adapter, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)


def test_train_lora_from_the_dataset_ref(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@x",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    run(repo, "git", "init", "-q", "-b", "main", env=env)
    run(repo, "git", "commit", "-q", "--allow-empty", "-m", "initial", env=env)
    # Only votes signed by an allowed signer count (SECURITY.md): the runner's key, allowed on main.
    assert run(repo, sys.executable, "-m", "pantheon_git", "init", "--signing-key", env=env).returncode == 0
    run(repo, "git", "add", "-A", env=env)
    run(repo, "git", "commit", "-q", "-m", "pantheon", env=env)
    script = """
import sys
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes
repo = open_repo(sys.argv[1])
ref = start_run_branch(repo, "t1", 1, repo.head.target)
commit = commit_step(repo, ref, Step("t1", "implement", "implementer", "m", "did it"))
turns = [{"n": 1, "completion": '{"tool":"finish","args":{}}'}]
record = {"prompt": "### Task\\nTitle: t1\\n", "turns": turns}
write_trace(repo, commit, {"summary": "s", "task": "t1", "attempt": 1, "agent": "implementer", "ok": True,
                           "agent_trace": record}, detail_keys=("agent_trace",))
append_votes(repo, commit, [Vote(kind="gate", voter="gate", verdict="approve")])
"""
    assert run(repo, sys.executable, "-c", script, str(repo), env=env).returncode == 0
    cli = [sys.executable, "-m", "pantheon_git", "train"]
    assert run(repo, *cli, "dataset", "--agent", "implementer", env=env).returncode == 0
    trained = run(
        repo,
        *cli,
        "lora",
        "--agent",
        "implementer",
        "--steps",
        "2",
        "--rank",
        "4",
        "--out",
        str(tmp_path / "out"),
        env=env,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "trained on 1 rows of refs/pantheon/datasets/implementer" in trained.stdout
    assert (tmp_path / "out" / "adapter.gguf").stat().st_size > 0
    assert (tmp_path / "out" / "peft" / "training.json").is_file()
