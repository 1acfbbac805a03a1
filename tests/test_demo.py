"""`make demo`'s steps without the night: the sample repository, `git pantheon` verbs run as a user types
them, and git's own commands through store/git.py (the demo runs no git command line of its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pantheon_git.ops.demo import SAMPLE_FILES, make_sample, sh


def test_the_demo_makes_its_sample_and_shows_each_command_and_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "demo"
    make_sample(sample)
    assert {path.name for path in sample.iterdir()} == {".git", *SAMPLE_FILES}
    assert sh(sample, "git", "pantheon", "init") == 0
    assert sh(sample, "git", "add", ".pantheon") == 0
    assert sh(sample, "git", "commit", "-q", "-m", "pantheon: init") == 0
    capsys.readouterr()
    assert sh(sample, "git", "log", "--format=%s") == 0
    assert capsys.readouterr().out == "$ git log --format=%s\npantheon: init\nsample project\n"
    assert sh(sample, "git", "pantheon", "list") == 0
    assert capsys.readouterr().out.startswith("$ git pantheon list\n")
    assert sh(sample, "git", "log", "no-such-branch", check=False) == 128
    assert "no-such-branch" in capsys.readouterr().out  # git's own error, shown
    with pytest.raises(SystemExit, match=r"demo: `git pantheon queue missing.toml` exited 2"):
        sh(sample, "git", "pantheon", "queue", "missing.toml")
