"""Claims across clones of one bare remote, and per-task locks that survive SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pantheon_git.queue.claims import claim, heartbeat, read_claim, runner_id, take_over
from pantheon_git.store.git import open_repo
from pantheon_git.store.layout import claim_ref
from pantheon_git.store.locks import task_lock
from tests.conftest import git


def clones(tmp_path: Path, repo_dir: Path, count: int) -> list[Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo_dir), str(bare))
    paths = []
    for n in range(count):
        path = tmp_path / f"clone{n}"
        git(tmp_path, "clone", "-q", str(bare), str(path))
        paths.append(path)
    return paths


def test_two_clones_racing_claim_each_task_once(repo_dir: Path, tmp_path: Path) -> None:
    a, b = clones(tmp_path, repo_dir, 2)
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from pantheon_git.queue.claims import claim
        from pantheon_git.store.git import open_repo
        root = Path(sys.argv[1])
        repo = open_repo(root)
        won = [t for t in [f"t{i}" for i in range(6)] if claim(repo, root, t, "origin") is not None]
        print(json.dumps(won))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(p)], stdout=subprocess.PIPE, text=True)
        for p in (a, b)
    ]
    won = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert sorted(won[0] + won[1]) == [f"t{i}" for i in range(6)]
    assert not set(won[0]) & set(won[1])
    remote = tmp_path / "remote.git"
    for task in won[0]:
        owner = git(
            remote, "log", "-1", "--format=%(trailers:key=Pantheon-Claim-Owner,valueonly)", claim_ref(task)
        )
        assert owner.strip() == runner_id(open_repo(a))


def test_own_claim_resumes_other_clone_is_refused_until_taken_over(repo_dir: Path, tmp_path: Path) -> None:
    a, b = clones(tmp_path, repo_dir, 2)
    repo_a, repo_b = open_repo(a), open_repo(b)
    first = claim(repo_a, a, "t1", "origin")
    assert first is not None
    again = claim(repo_a, a, "t1", "origin")  # the same clone after a crash: resumes with a heartbeat
    assert again is not None and again.commit != first.commit and again.owner == first.owner
    assert claim(repo_b, b, "t1", "origin") is None
    seen = read_claim(repo_b, claim_ref("t1"))
    assert seen is not None and seen.owner == first.owner
    taken = take_over(repo_b, b, seen, "origin")
    assert taken is not None and taken.owner == runner_id(repo_b)
    assert heartbeat(repo_a, a, again, "origin") is None  # a's lease no longer matches: it lost the task


def test_local_claims_without_remote(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    held = claim(repo, repo_dir, "t1", None)
    assert held is not None and git(repo_dir, "rev-parse", "--verify", "-q", claim_ref("t1")).strip()
    assert claim(repo, repo_dir, "t1", None) is not None  # same clone: resume


def test_task_lock_is_exclusive_and_released_by_sigkill(repo_dir: Path) -> None:
    git_dir = str(repo_dir / ".git")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pantheon_git.store.locks import task_lock\n"
            f"with task_lock({git_dir!r}, 't1') as ok:\n    print(ok, flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
    with task_lock(git_dir, "t1") as ok:
        assert ok is False
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    time.sleep(0.05)
    with task_lock(git_dir, "t1") as ok:
        assert ok is True
