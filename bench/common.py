"""Shared bits of the benchmarks: timing, a scratch repository, and one way of printing figures."""

from __future__ import annotations

import atexit
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scratch_repo() -> Path:
    """A new repository with one commit, in a temporary directory removed when the process exits."""
    top = tempfile.mkdtemp(prefix="pantheon-bench-")
    atexit.register(shutil.rmtree, top, ignore_errors=True)
    path = Path(top) / "repo"
    path.mkdir()
    env_git = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "config", "user.name", "Bench"], cwd=path, check=True)
    subprocess.run(["git", "config", "user.email", "bench@localhost"], cwd=path, check=True)
    (path / "README.md").write_text("bench\n")
    subprocess.run([*env_git, "add", "README.md"], cwd=path, check=True)
    subprocess.run([*env_git, "commit", "-q", "-m", "initial"], cwd=path, check=True)
    return path


def timed(run: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock milliseconds of each of `repeats` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float], goal: str = "") -> float:
    median = statistics.median(samples)
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1] if len(samples) >= 10 else max(samples)
    print(f"{name:<58} median {median:8.2f} ms   p90 {p90:8.2f} ms   n={len(samples)}  {goal}")
    return median


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
