"""`git pantheon replay`: an unchanged step replays as a match even though a command's wall time differs.

The step is recorded from a real agent loop whose completions are scripted (the model is not what is
tested; what the tools return and how replay compares it is); the run tool really runs its command.
"""

from __future__ import annotations

from pathlib import Path

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import run_agent
from pantheon_git.night.worktrees import add_worktree, remove_worktree
from pantheon_git.ops.replay import replay_step
from pantheon_git.runtime.recorded import ReplayRuntime
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch, worktree_tree
from pantheon_git.store.traces import write_trace
from pantheon_git.tools.builtin import ToolContext, deterministic, unsandboxed
from tests.conftest import pantheon

# The built-in implementer's own calls (code as code), as replay runs the agent defined here now.
CALLS = [
    "create path=a.txt\n```\nx\n```",
    'run command="grep -q x a.txt" timeout_s=30',
    'finish summary="wrote a.txt"',
]


def recorded_step(repo_dir: Path, tmp_path: Path, recorded_head: str = "exit 0 after 7.3s") -> str:
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    workdir = add_worktree(repo_dir, tmp_path / "wt", ref)
    try:
        runtime = ReplayRuntime(CALLS)
        task = {"title": "write a.txt", "scope": "", "acceptance": ["grep -q x a.txt"]}
        run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=workdir, sandbox=unsandboxed), task, {})
        assert run.ok, run.error
        trace = run.trace(IMPLEMENTER, runtime)
        # As if recorded on a slower machine: the same command took 7.3 s there.
        assert trace["turns"][1]["result"].startswith("exit 0 after ")
        _, _, rest = trace["turns"][1]["result"].partition("\n")
        trace["turns"][1]["result"] = recorded_head + "\n" + rest
        step = Step("t1", "implement", "implementer", "replay", "wrote a.txt")
        commit = commit_step(repo, ref, step, tree=worktree_tree(workdir))
    finally:
        remove_worktree(repo_dir, workdir)
    write_trace(
        repo, commit, {"node": "implement", "task": "t1", "agent_trace": trace}, detail_keys=("agent_trace",)
    )
    return str(commit)


def test_replay_of_an_unchanged_step_matches_whatever_the_wall_time(repo_dir: Path, tmp_path: Path) -> None:
    commit = recorded_step(repo_dir, tmp_path)
    report = replay_step(open_repo(repo_dir), repo_dir, commit)
    assert report.turns == 3
    assert report.mismatches == []
    replayed = pantheon(repo_dir, "replay", commit[:12])
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "every tool result, the output and the files match" in replayed.stdout


def test_replay_still_reports_a_changed_result(repo_dir: Path, tmp_path: Path) -> None:
    commit = recorded_step(repo_dir, tmp_path, recorded_head="exit 1 after 7.3s")
    report = replay_step(open_repo(repo_dir), repo_dir, commit)
    assert report.mismatches[0] == "turn 3: the prompt differs from the recorded one"
    assert report.mismatches[1].startswith("turn 2: tool result differs: 'exit 0 after ")
    assert deterministic("timed out after 12s") == "timed out after …s"
    assert deterministic("echo exit 0 after 3s now") == "echo exit 0 after 3s now"  # only a result's head
