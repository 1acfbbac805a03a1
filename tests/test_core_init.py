"""`git pantheon init`: scaffold and git config, idempotent, and plain git push/fetch carry pantheon data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import git, pantheon


def local_config(repo: Path) -> str:
    return git(repo, "config", "--local", "--list")


def test_init_scaffolds_and_configures_once(unsigned_repo_dir: Path) -> None:
    repo_dir = unsigned_repo_dir
    first = pantheon(repo_dir, "init")
    assert first.returncode == 0, first.stderr
    for path in ("config.toml", "models.toml", "flows/default.toml", "agents/README.md"):
        assert (repo_dir / ".pantheon" / path).is_file(), path
    config = local_config(repo_dir)
    # `git log` shows the short step summaries; the JSON traces are for tools.
    assert [line for line in config.splitlines() if line.startswith("notes.displayref=")] == [
        "notes.displayref=refs/notes/pantheon/log"
    ]
    assert "notes.pantheon/votes.mergestrategy=cat_sort_uniq" in config
    snapshot = {p: p.read_bytes() for p in (repo_dir / ".pantheon").rglob("*") if p.is_file()}
    (repo_dir / ".pantheon" / "config.toml").write_text("# edited by hand\n")
    second = pantheon(repo_dir, "init")
    assert second.returncode == 0 and "nothing changed" in second.stdout
    assert local_config(repo_dir) == config
    assert (repo_dir / ".pantheon" / "config.toml").read_text() == "# edited by hand\n"
    assert len(snapshot) == 5  # config, models, the default flow, agents/README.md, allowed_signers


def test_remote_refspecs_never_force_notes_and_plain_push_fetch_work(repo_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    assert pantheon(repo_dir, "init").returncode == 0
    assert "already initialized: nothing changed" in pantheon(repo_dir, "init").stdout
    fetch = git(repo_dir, "config", "--get-all", "remote.origin.fetch").splitlines()
    push = git(repo_dir, "config", "--get-all", "remote.origin.push").splitlines()
    assert not [spec for spec in fetch if spec.startswith("+refs/notes")]
    assert "refs/notes/pantheon/*:refs/notes/remotes/origin/pantheon/*" in fetch
    assert push[0] == "HEAD" and "refs/notes/pantheon/votes*:refs/notes/pantheon/votes*" in push
    assert not [spec for spec in push if "traces" in spec or "payloads" in spec or "notes/pantheon/*" in spec]

    assert pantheon(repo_dir, "queue", "--title", "T", "--acceptance", "true").returncode == 0
    git(repo_dir, "notes", "--ref", "pantheon/votes", "add", "-m", '{"id":"1"}', "HEAD")
    git(repo_dir, "notes", "--ref", "pantheon/traces", "add", "-f", "-m", '{"prompt":"local"}', "HEAD")
    git(repo_dir, "push", "-q")  # plain push: the current branch and the pantheon data
    remote_refs = git(bare, "for-each-ref", "--format=%(refname)").split()
    assert {"refs/heads/main", "refs/pantheon/tasks", "refs/notes/pantheon/votes"} <= set(remote_refs)
    assert "refs/notes/pantheon/traces" not in remote_refs  # traces stay local unless asked for

    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    assert pantheon(other, "init").returncode == 0
    git(other, "fetch", "-q")  # plain fetch: remote pantheon data lands in its own namespaces
    tracking = git(other, "for-each-ref", "--format=%(refname)").split()
    assert "refs/pantheon-remotes/origin/tasks" in tracking
    assert "refs/notes/remotes/origin/pantheon/votes" in tracking


def test_help_imports_no_model_stack() -> None:
    code = (
        "import sys\n"
        "from pantheon_git.cli import main\n"
        "for argv in (['--help'], ['queue', '--help'], ['list', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('llama_cpp', 'torch', 'transformers', 'llguidance', 'numpy')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("HEAVY []")


def test_git_finds_the_pantheon_subcommand(repo_dir: Path) -> None:
    import os

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["git", "pantheon", "--version"], cwd=repo_dir, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("pantheon-git "), out.stderr


def test_push_traces_is_opt_in_and_old_wildcard_is_removed(repo_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    # A repository set up by an older init pushed every notes ref, traces included.
    git(repo_dir, "config", "--add", "remote.origin.push", "HEAD")
    git(repo_dir, "config", "--add", "remote.origin.push", "refs/notes/pantheon/*:refs/notes/pantheon/*")
    result = pantheon(repo_dir, "init")
    assert result.returncode == 0 and "remote.origin.push -= refs/notes/pantheon/*" in result.stdout
    push = git(repo_dir, "config", "--get-all", "remote.origin.push").splitlines()
    assert "refs/notes/pantheon/*:refs/notes/pantheon/*" not in push
    assert "refs/notes/pantheon/traces*:refs/notes/pantheon/traces*" not in push

    opted = pantheon(repo_dir, "init", "--push-traces")
    assert opted.returncode == 0, opted.stderr
    push = git(repo_dir, "config", "--get-all", "remote.origin.push").splitlines()
    for ref in ("traces", "payloads", "votes"):
        assert f"refs/notes/pantheon/{ref}*:refs/notes/pantheon/{ref}*" in push
    assert "push_traces = true" in (repo_dir / ".pantheon" / "config.toml").read_text()
    git(repo_dir, "notes", "--ref", "pantheon/traces", "add", "-f", "-m", '{"prompt":"shared"}', "HEAD")
    git(repo_dir, "push", "-q")
    assert "refs/notes/pantheon/traces" in git(bare, "for-each-ref", "--format=%(refname)").split()
