"""Attacks: a check or a model's command that eats the machine (issue 22, class 8).

A check that printed 1 GB left a 1 GB temporary file on the host, and nothing bounded memory, processes,
file sizes or the sandbox's tmpfs mounts (each half the RAM). Each attack here runs as a hostile check
would, in a scratch repository's night worktree, under small `[sandbox]` limits: it must fail with the
limit named, promptly, and leave the runner able to go on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pantheon_git.night.worktrees import add_worktree, worktree_path
from pantheon_git.schema.config import SandboxConfig, parse_config
from pantheon_git.tools.sandbox import CompletedRun, run_sandboxed, sandbox_available, sandbox_problem
from tests.conftest import CHECKS_FLOW, REPO_ROOT, git, pantheon

needs_sandbox = pytest.mark.skipif(
    not os.environ.get("CI") and not sandbox_available(),
    reason=f"no bubblewrap sandbox on this machine: {sandbox_problem()}",
)
pytestmark = needs_sandbox

SMALL = SandboxConfig(memory_mb=128, processes=32, file_size_mb=2, output_mb=2, tmpfs_mb=8)


@pytest.fixture
def worktree(repo_dir: Path) -> Path:
    git(repo_dir, "branch", "pantheon/t1/1")
    return add_worktree(repo_dir, worktree_path(str(repo_dir / ".git"), "t1", 1), "refs/heads/pantheon/t1/1")


def check(worktree: Path, command: str, limits: SandboxConfig = SMALL, timeout_s: float = 60) -> CompletedRun:
    return run_sandboxed(command, worktree, dict(os.environ), timeout_s, limits=limits)


class DiskWatch:
    """The most bytes ever held under `directory` while the block runs (polled every 10 ms)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            total = 0
            for path in self.directory.rglob("*"):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size if path.is_file() else 0
            self.peak = max(self.peak, total)
            time.sleep(0.01)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_check_printing_without_end_is_stopped_at_the_output_limit_and_writes_no_file(
    worktree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the runner's temporary files would go (the host's /tmp): watched while the check prints.
    host_tmp = tmp_path / "host-tmp"
    host_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(host_tmp))
    started = time.monotonic()
    with DiskWatch(host_tmp) as watch:
        done = check(worktree, "yes 'gigabytes of output'")
    assert time.monotonic() - started < 30 and not done.timed_out
    assert done.exit_code != 0
    assert done.limit is not None and done.limit.startswith("output") and "output_mb" in done.limit
    assert done.output_tail.endswith(f"pantheon: sandbox limit reached: {done.limit}\n")
    assert len(done.output_tail) <= 4200  # only the tail is kept
    assert watch.peak < 1 << 20, f"{watch.peak} bytes of output kept on the host's disk"
    # A large output under the limit is no failure, and its tail is still there.
    fine = check(worktree, "head -c 1500000 /dev/zero | tr '\\0' x; echo; echo the end")
    assert fine.exit_code == 0 and fine.limit is None and fine.output_tail.endswith("the end\n")


def test_a_check_allocating_past_the_memory_limit_fails_with_the_limit_named(worktree: Path) -> None:
    done = check(worktree, f"{sys.executable} -c 'bytearray(512 << 20)'")
    assert done.exit_code != 0
    assert done.limit is not None and done.limit.startswith("memory") and "memory_mb" in done.limit
    # A hard limit: the command cannot raise it again inside the sandbox.
    raised = check(worktree, "prlimit --pid $$ --data=unlimited")
    assert raised.exit_code != 0


def test_a_check_writing_a_huge_file_is_stopped_at_the_file_size_limit(worktree: Path) -> None:
    done = check(worktree, "head -c 64M /dev/zero > huge.bin")
    assert done.exit_code != 0
    assert done.limit is not None and done.limit.startswith("file size")
    assert (worktree / "huge.bin").stat().st_size <= SMALL.file_size_mb << 20


@pytest.mark.parametrize("target", ["/tmp/fill", "/var/tmp/fill", "$HOME/fill"])
def test_a_check_filling_a_tmpfs_is_stopped_at_its_size(worktree: Path, target: str) -> None:
    limits = SMALL.model_copy(update={"file_size_mb": 1024})  # the tmpfs's size, not the file's, stops it
    done = check(worktree, f"cat /dev/zero > {target}", limits)
    assert done.exit_code != 0 and not done.timed_out
    assert done.limit is not None and done.limit.startswith("tmpfs size") and "tmpfs_mb" in done.limit


# Run by an unprivileged user: RLIMIT_NPROC binds no process of uid 0, so a root runner has no process
# limit (SECURITY.md says so); the attack is checked as an ordinary runner user meets it.
SPAWN = "python3 -c \"import subprocess; [subprocess.Popen(['sleep', '5']) for _ in range(200)]\""
AS_RUNNER = """
import json, os, sys
from pathlib import Path
from pantheon_git.schema.config import SandboxConfig
from pantheon_git.tools.sandbox import run_sandboxed
done = run_sandboxed(sys.argv[2], Path(sys.argv[1]), {"PATH": os.environ["PATH"], "HOME": sys.argv[1]}, 60,
                     limits=SandboxConfig(processes=32))
print(json.dumps({"exit_code": done.exit_code, "limit": done.limit, "tail": done.output_tail}))
"""


def as_unprivileged_runner(command: str) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="pantheon-nproc-", dir="/tmp"))
    try:
        scratch.chmod(0o777)
        argv = [sys.executable, "-c", AS_RUNNER, str(scratch), command]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("root without setpriv: no unprivileged runner to try the process limit as")
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
        path = f"{Path(sys.executable).parent}:/usr/bin:/bin"  # root's own PATH entries are not its
        env = {"PATH": path, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=scratch, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_check_forking_past_the_process_limit_fails_with_the_limit_named() -> None:
    done = as_unprivileged_runner(SPAWN)
    assert done["exit_code"] != 0, done
    assert str(done["limit"]).startswith("processes") and "[sandbox] processes" in str(done["limit"]), done


@pytest.mark.skipif(os.geteuid() != 0, reason="the root runner's case; the test above is the other")
def test_a_check_forking_past_the_process_limit_of_a_root_runner_fails_with_the_limit_named(
    worktree: Path,
) -> None:
    # RLIMIT_NPROC binds no uid 0: before the pids cgroup, a root runner's sandbox had no process limit.
    done = check(worktree, SPAWN, SandboxConfig(processes=32))
    assert done.exit_code != 0, done
    assert done.limit == "processes: 32 at once ([sandbox] processes)", done
    leftover = [p for p in Path("/sys/fs/cgroup/pids").glob(f"pantheon-{os.getpid()}-*")]
    assert leftover == []  # each command's cgroup is removed with it


def test_a_normal_test_run_meets_none_of_the_default_limits(worktree: Path) -> None:
    (worktree / "test_ok.py").write_text(
        "import subprocess, tempfile, threading\n"
        "def test_ok(tmp_path):\n"
        "    data = bytearray(200 << 20)\n"
        "    (tmp_path / 'f').write_bytes(bytes(50 << 20))\n"
        "    threads = [threading.Thread(target=lambda: None) for _ in range(50)]\n"
        "    [t.start() for t in threads]; [t.join() for t in threads]\n"
        "    assert subprocess.run(['git', 'status', '--short']).returncode == 0\n"
    )
    done = run_sandboxed(f"{sys.executable} -m pytest -q -p no:cacheprovider test_ok.py", worktree, {}, 120)
    assert done.exit_code == 0 and done.limit is None, done.output_tail


def test_a_check_that_reaches_a_limit_fails_its_task_and_the_night_goes_on(
    repo_dir: Path, tmp_path: Path
) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    text = config.read_text().replace("min_approvals = 2", "min_approvals = 0")
    text = text.replace("output_mb = 256", "output_mb = 1")
    text = text.replace("require_fixed_check = true", "require_fixed_check = false")
    config.write_text(text)
    assert parse_config(text).sandbox.output_mb == 1  # the template's [sandbox] section, changed
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow and a small output limit")
    for task_id, command in (("flood", "yes flood"), ("fine", "test -f README.md")):
        spec = tmp_path / f"{task_id}.toml"
        spec.write_text(
            f'id = "{task_id}"\ntitle = "{task_id}"\nflow = "checks"\nacceptance = ["{command}"]\n'
        )
        assert pantheon(repo_dir, "queue", str(spec)).returncode == 0
    night = subprocess.run(
        [sys.executable, "-m", "pantheon_git", "night"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "night done: 2 run" in night.stdout, night.stdout + night.stderr
    steps = git(repo_dir, "log", "--format=%H", "--grep", "Pantheon-Step: test", "pantheon/flood/1").split()
    vote = git(repo_dir, "notes", "--ref", "pantheon/votes", "show", steps[0])
    assert "failed: yes flood (sandbox limit: output: more than 1 MiB ([sandbox] output_mb))" in vote
    assert "reject" in vote
    fine = git(repo_dir, "log", "--format=%H", "--grep", "Pantheon-Step: test", "pantheon/fine/1").split()
    assert '"approve"' in git(repo_dir, "notes", "--ref", "pantheon/votes", "show", fine[0])
    listed = pantheon(repo_dir, "list").stdout.splitlines()
    assert any(line.split()[:2] == ["flood", "failed"] for line in listed), listed
    assert any(line.split()[:2] == ["fine", "passed"] for line in listed), listed
