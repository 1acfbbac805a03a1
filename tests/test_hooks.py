"""Hooks: the pre-push guard of protected branches, and `check` for the pre-commit framework."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.votes import Vote, append_votes
from tests.conftest import REPO_ROOT, git, pantheon


def push(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["git", "push", *args], cwd=repo, capture_output=True, text=True, env=env)


def test_pre_push_blocks_ungated_run_commits_on_main_and_allows_gated(repo_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    git(repo_dir, "push", "-q", "origin", "main")
    installed = pantheon(repo_dir, "hooks", "install")
    assert installed.returncode == 0 and (repo_dir / ".git" / "hooks" / "pre-push").is_file()
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    head = commit_step(
        repo,
        ref,
        Step("t1", "implement", "implementer", "m", "change", {"Pantheon-Attempt": "1"}),
        changes={"new.txt": b"new\n"},
    )
    git(repo_dir, "merge", "-q", "--ff-only", "pantheon/t1/1")
    blocked = push(repo_dir, "origin", "main")
    assert blocked.returncode != 0
    assert f"refusing main: {str(head)[:12]} (task t1): its run is running, not gated" in blocked.stderr
    assert git(bare, "rev-parse", "main").strip() != str(head)
    # A feature branch is not protected: pushing the same commits there is fine.
    assert push(repo_dir, "origin", "main:refs/heads/feature").returncode == 0
    append_votes(repo, head, [Vote(kind="gate", voter="gate", verdict="approve")])
    allowed = push(repo_dir, "origin", "main")
    assert allowed.returncode == 0, allowed.stderr
    assert git(bare, "rev-parse", "main").strip() == str(head)
    assert pantheon(repo_dir, "hooks", "uninstall").returncode == 0
    assert not (repo_dir / ".git" / "hooks" / "pre-push").exists()


def test_foreign_pre_push_hook_is_not_overwritten(repo_dir: Path) -> None:
    hook = repo_dir / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\necho mine\n")
    refused = pantheon(repo_dir, "hooks", "install")
    assert refused.returncode == 2 and "a pre-push hook of your own is there" in refused.stderr
    assert hook.read_text() == "#!/bin/sh\necho mine\n"


def test_check_validates_each_kind_of_file(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / "good.spec.toml").write_text('title = "t"\nacceptance = ["true"]\n')
    (repo_dir / "bad.spec.toml").write_text('title = "t"\nacceptance = []\n')
    flows = repo_dir / ".pantheon" / "flows"
    (flows / "bad.toml").write_text('[[nodes]]\nid = "a"\nagent = "nobody"\n')
    good = pantheon(
        repo_dir,
        "check",
        "good.spec.toml",
        ".pantheon/flows/default.toml",
        ".pantheon/models.toml",
        ".pantheon/config.toml",
    )
    assert good.returncode == 0, good.stderr
    bad = pantheon(repo_dir, "check", "bad.spec.toml", ".pantheon/flows/bad.toml")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "git pantheon check: bad.spec.toml:2: acceptance: needs at least one check "
        "(a shell command that must exit 0 in the task's worktree)",
        "git pantheon check: .pantheon/flows/bad.toml: node a: unknown agent 'nobody' "
        "(known: acceptance, checks, gate, implementer, place, planner, reviewer)",
    ]


def test_pre_commit_framework_hook_definition() -> None:
    hooks = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [hook["id"] for hook in hooks] == ["pantheon-check"]
    assert hooks[0]["entry"] == "git-pantheon check" and hooks[0]["language"] == "python"


def test_pre_push_fails_closed_when_it_cannot_list_the_pushed_commits(repo_dir: Path, tmp_path: Path) -> None:
    # Attack: the remote's tip is a commit this clone never fetched, so `rev-list local ^remote` fails;
    # a guard that treats the failure as "nothing to check" lets an ungated run commit onto main.
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    head = commit_step(
        repo,
        ref,
        Step("t1", "implement", "implementer", "m", "change", {"Pantheon-Attempt": "1"}),
        changes={"new.txt": b"new\n"},
    )
    unknown = "1234567890" * 4
    line = f"refs/heads/main {head} refs/heads/main {unknown}\n"
    guarded = pantheon(repo_dir, "hooks", "pre-push", "origin", "url", input=line)
    assert guarded.returncode != 0
    assert "cannot tell which commits this push carries" in guarded.stderr
    garbled = pantheon(repo_dir, "hooks", "pre-push", "origin", "url", input=f"refs/heads/main {head}\n")
    assert garbled.returncode != 0 and "cannot read git's ref line" in garbled.stderr
    # git hands the hook whole ids; an abbreviated one is not guessed at (an Oid would pad it with zeros).
    short = f"refs/heads/main {str(head)[:12]} refs/heads/main {'0' * 40}\n"
    abbreviated = pantheon(repo_dir, "hooks", "pre-push", "origin", "url", input=short)
    assert abbreviated.returncode != 0 and "cannot read git's ref line" in abbreviated.stderr
