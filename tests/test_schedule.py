"""`git pantheon schedule`: the crontab line is ours alone, idempotent, and really runs the night."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, pantheon

# A stand-in for the `crontab` binary (absent on many CI machines): `-l` prints a file, `-` replaces it.
FAKE_CRONTAB = """#!/bin/sh
store="$CRONTAB_FILE"
case "$1" in
  -l) if [ -f "$store" ]; then cat "$store"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat > "$store" ;;
esac
"""


@pytest.fixture
def crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "crontab"
    script.write_text(FAKE_CRONTAB)
    script.chmod(0o755)
    store = tmp_path / "crontab.txt"
    store.write_text("MAILTO=me@example.com\n15 3 * * * backup.sh\n")
    monkeypatch.setenv("PANTHEON_CRONTAB", str(script))
    monkeypatch.setenv("CRONTAB_FILE", str(store))
    return store


def test_install_is_idempotent_and_remove_keeps_other_lines(repo_dir: Path, crontab: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    first = pantheon(repo_dir, "schedule", "install", "--at", "02:30")
    assert first.returncode == 0, first.stderr
    again = pantheon(repo_dir, "schedule", "install", "--at", "01:05")
    assert again.returncode == 0
    lines = crontab.read_text().splitlines()
    assert lines[:2] == ["MAILTO=me@example.com", "15 3 * * * backup.sh"]
    ours = [line for line in lines if "pantheon-git night" in line]
    assert len(ours) == 1 and ours[0].startswith("5 1 * * * cd ")
    assert pantheon(repo_dir, "schedule", "show").stdout.strip() == ours[0]
    assert (repo_dir / ".git" / "pantheon" / "logs").is_dir()
    assert pantheon(repo_dir, "schedule", "remove").returncode == 0
    assert crontab.read_text().splitlines() == ["MAILTO=me@example.com", "15 3 * * * backup.sh"]
    bad = pantheon(repo_dir, "schedule", "install", "--at", "25:00")
    assert bad.returncode == 2 and "--at 25:00: use HH:MM" in bad.stderr


def test_the_cron_command_runs_the_night_and_logs(repo_dir: Path, crontab: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    assert pantheon(repo_dir, "schedule", "install").returncode == 0
    line = next(line for line in crontab.read_text().splitlines() if "pantheon-git night" in line)
    command = re.sub(r"^(\S+\s+){5}", "", line).replace("\\%", "%")  # what cron hands to /bin/sh
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    subprocess.run(["/bin/sh", "-c", command], cwd="/", env=env, check=True)
    logs = list((repo_dir / ".git" / "pantheon" / "logs").glob("night-*.log"))
    assert len(logs) == 1 and "night done: 0 run" in logs[0].read_text()


def test_a_repository_path_with_percent_and_space_survives_cron(tmp_path: Path, crontab: Path) -> None:
    repo = tmp_path / "100% night shift"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    assert pantheon(repo, "init").returncode == 0
    git(repo, "add", ".pantheon")
    git(repo, "commit", "-q", "-m", "pantheon: set up")
    assert pantheon(repo, "schedule", "install").returncode == 0
    line = next(line for line in crontab.read_text().splitlines() if "pantheon-git night" in line)
    command = re.sub(r"^(\S+\s+){5}", "", line)
    assert re.search(r"(?<!\\)%", command) is None  # a bare % would end the command for cron
    assert pantheon(repo, "schedule", "show").stdout.strip() == line
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    subprocess.run(["/bin/sh", "-c", command.replace("\\%", "%")], cwd="/", env=env, check=True)
    assert len(list((repo / ".git" / "pantheon" / "logs").glob("night-*.log"))) == 1
    assert pantheon(repo, "schedule", "remove").returncode == 0
    assert "pantheon-git" not in crontab.read_text()


def test_systemd_units(repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert pantheon(repo_dir, "schedule", "install", "--systemd", "--at", "04:00").returncode == 0
    units = sorted((tmp_path / "config" / "systemd" / "user").iterdir())
    assert [unit.suffix for unit in units] == [".service", ".timer"]
    assert "OnCalendar=*-*-* 04:00:00" in units[1].read_text()
    service = units[0].read_text()
    assert "-m pantheon_git night" in service and "$$(date +%%Y-%%m-%%d)" in service
    assert pantheon(repo_dir, "schedule", "remove", "--systemd").returncode == 0
    assert not any((tmp_path / "config" / "systemd" / "user").iterdir())
    assert git(repo_dir, "status", "--porcelain") == ""
