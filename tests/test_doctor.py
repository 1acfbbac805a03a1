"""`git pantheon doctor`: each line healthy and broken, on real repositories, and the exit status.

Each check is driven the way a user's machine would break it: no bwrap that works, a model file that
is not a model, no allowed signers committed, a tool missing from PATH, a remote the config names and
the repository lacks, a disk without room, no crontab line.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from pantheon_git.ops.doctor import (
    Health,
    check_disk,
    check_lint_tools,
    check_models,
    check_remotes,
    check_sandbox,
    check_schedule,
    check_signing,
    check_tool,
    night_can_pass,
)
from tests.conftest import git


def pantheon(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pantheon_git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_sandbox_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert check_sandbox().health is Health.OK
    # A bwrap that cannot make namespaces (what a container without user namespaces gives).
    monkeypatch.setenv(
        "PANTHEON_BWRAP",
        str(
            executable(
                tmp_path / "bwrap", "#!/bin/sh\necho 'No permissions to create new namespace' >&2\nexit 1\n"
            )
        ),
    )
    broken = check_sandbox()
    assert broken.health is Health.FAIL
    assert "No permissions to create new namespace" in broken.detail and "bubblewrap" in broken.detail


@pytest.mark.model
def test_models_line_healthy_with_the_embedded_model(repo_dir: Path) -> None:
    [finding] = check_models(repo_dir)
    assert (finding.name, finding.health) == ("models.default", Health.OK)
    assert "loads and decodes" in finding.detail and "on the CPU" in finding.detail


def test_models_line_names_a_file_that_is_no_model(repo_dir: Path) -> None:
    (repo_dir / "junk.gguf").write_bytes(b"this is not a GGUF file\n" * 100)
    models = repo_dir / ".pantheon" / "models.toml"
    models.parent.mkdir(exist_ok=True)
    models.write_text(
        '[models.coder]\npath = "junk.gguf"\nn_gpu_layers = 0\n\n[models.gone]\npath = "missing.gguf"\n'
    )
    findings = {finding.name: finding for finding in check_models(repo_dir)}
    assert findings["models.coder"].health is Health.FAIL
    assert "llama.cpp could not load or decode junk.gguf" in findings["models.coder"].detail
    assert findings["models.gone"].health is Health.FAIL
    assert (
        findings["models.gone"].detail.startswith("path: ")
        and "does not exist" in findings["models.gone"].detail
    )


def test_signing_line_healthy_where_the_key_is_committed(repo_dir: Path) -> None:
    finding = check_signing(pygit2.Repository(str(repo_dir)))
    assert finding.health is Health.OK, finding.detail
    assert "allowed in .pantheon/allowed_signers on main" in finding.detail


def test_signing_line_without_key_or_uncommitted(unsigned_repo_dir: Path) -> None:
    repo = pygit2.Repository(str(unsigned_repo_dir))
    no_key = check_signing(repo)
    assert no_key.health is Health.FAIL and "no signing key configured" in no_key.detail
    assert "git pantheon init" in no_key.detail
    assert pantheon(unsigned_repo_dir, "init").returncode == 0  # key made, allowed_signers not committed
    uncommitted = check_signing(pygit2.Repository(str(unsigned_repo_dir)))
    assert uncommitted.health is Health.FAIL
    assert uncommitted.detail == (
        "no allowed signers committed on main: commit .pantheon/allowed_signers on main"
    )


def test_signing_line_when_the_committed_signers_are_someone_elses(repo_dir: Path) -> None:
    from pantheon_git.ops.configure import setup_signing
    from pantheon_git.store.signing import runner_key_path

    repo = pygit2.Repository(str(repo_dir))
    key = runner_key_path(repo)
    key.unlink()
    Path(f"{key}.pub").unlink()
    setup_signing(repo, repo_dir)  # a new key; the committed file still names the old one only
    finding = check_signing(pygit2.Repository(str(repo_dir)))
    assert finding.health is Health.FAIL and "its votes would not count" in finding.detail


def test_tool_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    executable(tools / "ssh-keygen", "#!/bin/sh\n")
    executable(tools / "man", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tools))
    assert check_tool("ssh-keygen", "signing", required=True, install="x").health is Health.OK
    assert check_tool("man", "help", required=False, install="x").health is Health.OK
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    missing = check_tool("ssh-keygen", "signing", required=True, install="install openssh-client")
    assert (missing.health, missing.detail) == (Health.FAIL, "not found; signing: install openssh-client")
    assert check_tool("man", "help", required=False, install="install man-db").health is Health.WARN


HOOKS = """\
repos:
  - repo: local
    hooks:
      - id: no-fixme
        entry: sh -c '! grep -Hn FIXME "$@"' --
        language: system
      - id: ruff
        entry: .venv/bin/ruff check
        language: system
      - id: check-toml
        entry: check-toml
        language: python
  - repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v5.0.0
    hooks:
      - id: trailing-whitespace
"""


def test_lint_tools_lines(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ruff, hooks = check_lint_tools(pygit2.Repository(str(repo_dir)), repo_dir)
    assert (ruff.name, ruff.health, ruff.detail) == (
        "ruff",
        Health.OK,
        "not configured at HEAD: the lint reviewer runs no ruff",
    )
    assert (hooks.name, hooks.health) == ("pre-commit", Health.OK)
    assert hooks.detail == "no .pre-commit-config.yaml at HEAD: no hooks to run"
    (repo_dir / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n')
    (repo_dir / ".pre-commit-config.yaml").write_text(HOOKS)
    # Not committed yet: a night reads its base commit, and so does the doctor.
    assert check_lint_tools(pygit2.Repository(str(repo_dir)), repo_dir)[0].detail.startswith("not configured")
    git(repo_dir, "add", "pyproject.toml", ".pre-commit-config.yaml")
    git(repo_dir, "commit", "-q", "-m", "lint")
    # An untracked .venv/bin/ruff in this checkout is not in a night's worktree: not found for the sandbox.
    executable(repo_dir / ".venv" / "bin" / "ruff", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin")
    ruff, hooks = check_lint_tools(pygit2.Repository(str(repo_dir)), repo_dir)
    assert ruff.health is Health.OK, ruff
    assert ruff.detail.startswith("configured (pyproject.toml [tool.ruff]); /") and ruff.detail.endswith(
        "/ruff in the sandbox"
    )
    assert (hooks.health, hooks.detail) == (
        Health.WARN,
        "2 hooks (no-fixme, ruff) runnable offline, 2 hooks (check-toml, trailing-whitespace) needing an "
        "environment (not run); not found for the sandbox: ruff (.venv/bin/ruff)",
    )
    (repo_dir / ".pre-commit-config.yaml").write_text(HOOKS.split("      - id: ruff")[0])
    git(repo_dir, "commit", "-q", "-am", "the hooks a night can run")
    hooks = check_lint_tools(pygit2.Repository(str(repo_dir)), repo_dir)[1]
    assert (hooks.health, hooks.detail) == (
        Health.OK,
        "1 hook (no-fixme) runnable offline, 0 hooks needing an environment (not run)",
    )
    bare = f"/usr/bin{os.pathsep}/bin"
    if shutil.which("ruff", path=bare) is None:  # a machine with a system ruff cannot show it missing
        monkeypatch.setenv("PATH", bare)
        ruff = check_lint_tools(pygit2.Repository(str(repo_dir)), repo_dir)[0]
        assert (
            ruff.health is Health.WARN
            and "not found in the sandbox: the lint reviewer abstains" in ruff.detail
        )
    (repo_dir / ".pre-commit-config.yaml").write_text("repos: [\n")
    git(repo_dir, "commit", "-q", "-am", "broken hooks")
    hooks = check_lint_tools(pygit2.Repository(str(repo_dir)), repo_dir)[1]
    assert hooks.health is Health.WARN and hooks.detail.startswith(".pre-commit-config.yaml: not YAML")


def test_remotes_line(repo_dir: Path, tmp_path: Path) -> None:
    repo = pygit2.Repository(str(repo_dir))
    assert check_remotes(repo, repo_dir).detail == "none in night.remotes: claims stay local"
    config = repo_dir / ".pantheon" / "config.toml"
    config.write_text('[night]\nremotes = ["team"]\n')
    broken = check_remotes(repo, repo_dir)
    assert broken.health is Health.FAIL and "night.remotes names team, not a remote here" in broken.detail
    git(tmp_path, "init", "-q", "--bare", "team.git")
    git(repo_dir, "remote", "add", "team", str(tmp_path / "team.git"))
    healthy = check_remotes(pygit2.Repository(str(repo_dir)), repo_dir)
    assert (healthy.health, healthy.detail) == (Health.OK, "claims go to team")


def test_disk_line(tmp_path: Path) -> None:
    assert check_disk(tmp_path, minimum=1, low=2).health is Health.OK
    assert check_disk(tmp_path, minimum=1, low=1 << 60).health is Health.WARN
    full = check_disk(tmp_path, minimum=1 << 60, low=1 << 61)
    assert full.health is Health.FAIL and "free some" in full.detail


def test_schedule_line(repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crontab = tmp_path / "crontab.txt"
    stand_in = executable(
        tmp_path / "crontab",
        f'#!/bin/sh\nif [ "$1" = -l ]; then cat {crontab} 2>/dev/null || '
        f'{{ echo "no crontab for you" >&2; exit 1; }}; else cat > {crontab}; fi\n',
    )
    monkeypatch.setenv("PANTHEON_CRONTAB", str(stand_in))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    unscheduled = check_schedule(repo_dir.resolve())
    assert unscheduled.health is Health.WARN and "git pantheon schedule install" in unscheduled.detail
    assert pantheon(repo_dir, "schedule", "install", "--at", "03:15").returncode == 0
    scheduled = check_schedule(repo_dir.resolve())
    assert scheduled.health is Health.OK and scheduled.detail.startswith("15 3 * * * ")


def test_doctor_exits_0_only_when_a_night_can_pass(repo_dir: Path, unsigned_repo_dir: Path) -> None:
    healthy = pantheon(repo_dir, "doctor", "--no-models")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    lines = healthy.stdout.splitlines()
    assert [line.split()[1].rstrip(":") for line in lines[:-1]] == [
        "sandbox",
        "signing",
        "ssh-keygen",
        "man",
        "ruff",
        "pre-commit",
        "remotes",
        "worktree-files",
        "disk",
        "schedule",
    ]
    assert lines[-1] == "a night can pass"
    broken = pantheon(unsigned_repo_dir, "doctor", "--no-models")
    assert broken.returncode == 1
    assert "FAIL signing: no signing key configured" in broken.stdout
    assert broken.stdout.splitlines()[-1] == "a night cannot pass yet: 1 thing to fix (FAIL above)"


def test_night_can_pass_ignores_warnings() -> None:
    from pantheon_git.ops.doctor import Finding

    assert night_can_pass([Finding("man", Health.WARN, "x"), Finding("disk", Health.OK, "y")])
    assert not night_can_pass([Finding("signing", Health.FAIL, "x"), Finding("disk", Health.OK, "y")])


def test_init_signs_by_default_says_what_to_commit_and_runs_the_doctor(unsigned_repo_dir: Path) -> None:
    init = pantheon(unsigned_repo_dir, "init")
    assert init.returncode == 0, init.stderr
    assert "added pantheon-runner@" in init.stdout and ".pantheon/allowed_signers" in init.stdout
    assert "next: commit them: git add .pantheon && git commit -m 'pantheon: set up'" in init.stdout
    assert (
        "FAIL signing: no allowed signers committed on main: commit .pantheon/allowed_signers on main"
        in init.stdout
    )
    night = pantheon(unsigned_repo_dir, "night")
    assert night.returncode == 2
    assert night.stderr.strip().splitlines() == [
        "git pantheon night: no allowed signers committed on main, so no vote can be verified: run "
        "`git pantheon init` and commit .pantheon/allowed_signers on the base branch (`git pantheon doctor` "
        "checks the rest)"
    ]
    git(unsigned_repo_dir, "add", ".pantheon")
    git(unsigned_repo_dir, "commit", "-q", "-m", "pantheon: set up")
    doctor = pantheon(unsigned_repo_dir, "doctor", "--no-models")
    assert "ok   signing: key " in doctor.stdout
    assert pantheon(unsigned_repo_dir, "night").returncode == 0


def test_init_no_signing_makes_no_key(unsigned_repo_dir: Path) -> None:
    init = pantheon(unsigned_repo_dir, "init", "--no-signing")
    assert init.returncode == 0
    assert not (unsigned_repo_dir / ".pantheon" / "allowed_signers").exists()
    assert "FAIL signing: no signing key configured" in init.stdout
