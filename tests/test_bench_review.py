"""bench_review measures the lint reviewer only if ruff can run: run from the venv's interpreter without
.venv/bin on PATH (a cron line, `.venv/bin/python bench/bench_review.py` from a plain shell), every lint
vote was an abstention and the run of 2026-12-07 reported lint as never rejecting anything."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_review

from pantheon_git.tools.sandbox import run_sandboxed


def test_the_venvs_ruff_is_found_and_runs_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no .venv/bin, as from cron
    assert bench_review.find_ruff()
    done = run_sandboxed("ruff --version", tmp_path, dict(os.environ), 60)
    assert done.exit_code == 0 and "ruff" in done.output_tail, done.output_tail


def test_without_ruff_the_bench_stops_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "argv", ["bench_review.py", "--reviewers", "0"])
    assert bench_review.main() == 2
