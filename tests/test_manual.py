"""`git pantheon --help` shows a manual (git runs `man git-pantheon`), and shell completion works.

The manual is generated from the CLI's argparse definitions; the end-to-end test lays out a prefix as an
install does (bin/git-pantheon, share/man/man1/git-pantheon.1) and lets the real git and man find it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pantheon_git.commands.manual import PAGES_DIR, render
from tests.conftest import REPO_ROOT

needs_man = pytest.mark.skipif(
    shutil.which("man") is None and not os.environ.get("CI"),
    reason="man(1) is not installed (`make test` installs man-db; CI must have it)",
)


def test_the_committed_manual_matches_the_parser() -> None:
    pages = render()
    assert sorted(pages) == ["git-pantheon.1"]
    for name, text in pages.items():
        assert (PAGES_DIR / name).read_text() == text, "run `python -m pantheon_git.commands.manual`"
    page = pages["git-pantheon.1"]
    for verb in ("night", "queue", "train", "completion"):
        assert f"git pantheon {verb}" in page
    assert "promote" in page and "rollback" in page  # the verbs' own arguments are documented


def test_the_wheel_installs_the_manual_where_man_looks() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    shared = project["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared == {"man/man1/git-pantheon.1": "share/man/man1/git-pantheon.1"}


@needs_man
def test_git_pantheon_help_shows_the_manual(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "share" / "man" / "man1").mkdir(parents=True)
    shim = prefix / "bin" / "git-pantheon"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pantheon_git "$@"\n')
    shim.chmod(0o755)
    shutil.copy(PAGES_DIR / "git-pantheon.1", prefix / "share" / "man" / "man1" / "git-pantheon.1")
    env = {key: value for key, value in os.environ.items() if key not in ("MANPATH", "MANPAGER", "PAGER")}
    env.update(PATH=f"{prefix / 'bin'}{os.pathsep}{env['PATH']}", MANPAGER="cat", PAGER="cat", MANWIDTH="100")
    env["PYTHONPATH"] = str(REPO_ROOT)
    shown = subprocess.run(
        ["git", "pantheon", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "No manual entry" not in shown.stderr
    assert "git-pantheon - A local-only AI night shift" in shown.stdout.replace("  ", " ")
    assert "git pantheon train" in shown.stdout


def test_bash_completion_completes_verbs_and_options(tmp_path: Path) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "pantheon_git", "completion", "bash"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert script.returncode == 0, script.stderr
    (tmp_path / "complete.bash").write_text(script.stdout)
    probe = (
        f"source {tmp_path / 'complete.bash'}\n"
        'COMP_WORDS=(git-pantheon tr); COMP_CWORD=1; _shtab_git_pantheon; echo "verbs: ${COMPREPLY[*]}"\n'
        "COMP_WORDS=(git-pantheon train --ag); COMP_CWORD=2; _shtab_git_pantheon\n"
        'echo "opts: ${COMPREPLY[*]}"\n'
        'words=(git pantheon train ro); cword=3; _git_pantheon; echo "git: ${COMPREPLY[*]}"\n'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["verbs:", "train"]
    assert lines[1].split() == ["opts:", "--agent"]
    assert lines[2].split() == ["git:", "rollback"]
    zsh = subprocess.run(
        [sys.executable, "-m", "pantheon_git", "completion", "zsh"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef git-pantheon")
