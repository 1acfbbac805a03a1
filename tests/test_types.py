"""The types hold: mypy over pantheon_git/ and trainer/pantheon_trainer, as [tool.mypy] in pyproject.toml
configures it (the core strict), finds nothing. `make lint` runs the same check; this test is how a type
error fails `make test` and CI. Cached in .mypy_cache: about 35 s on a cold cache, 2 s warm."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_mypy_finds_no_type_errors() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]
