"""Many writers at once: the queue and the notes refs lose nothing and stay linear."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import git

WRITERS = 8
EACH = 50


def run_writers(repo: Path, body: str) -> None:
    """Start WRITERS python processes at once, each running `body` with `writer` set; all must succeed."""
    script = textwrap.dedent(
        """
        import sys
        from pantheon_git.store.git import open_repo
        writer = int(sys.argv[1])
        repo = open_repo(sys.argv[2])
        """
    ) + textwrap.dedent(body)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(n), str(repo)], stderr=subprocess.PIPE, text=True)
        for n in range(WRITERS)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def test_eight_writers_queue_fifty_specs_each(repo_dir: Path) -> None:
    run_writers(
        repo_dir,
        """
        from pantheon_git.queue.tasks import enqueue
        from pantheon_git.schema.spec import Spec, stamp
        for i in range(50):
            spec = Spec(title=f"writer {writer} spec {i}", acceptance=["true"])
            enqueue(repo, [stamp(spec, author="w <w@x>", base="main")])
        """,
    )
    files = git(repo_dir, "ls-tree", "--name-only", "refs/pantheon/tasks").split()
    assert len(files) == WRITERS * EACH
    assert git(repo_dir, "rev-list", "--count", "refs/pantheon/tasks").strip() == str(WRITERS * EACH)
    assert git(repo_dir, "rev-list", "--merges", "refs/pantheon/tasks") == ""
    parents = git(repo_dir, "rev-list", "--parents", "refs/pantheon/tasks").splitlines()
    assert sum(1 for line in parents if len(line.split()) == 1) == 1  # exactly one root: a single chain
    titles = git(repo_dir, "log", "--format=%s", "refs/pantheon/tasks")
    for writer in range(WRITERS):
        assert titles.count(f": writer {writer} spec ") == EACH


def test_concurrent_note_writers_lose_no_trace_and_no_vote(repo_dir: Path) -> None:
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    run_writers(
        repo_dir,
        f"""
        from pantheon_git.store.notes import set_note
        from pantheon_git.store.votes import Vote, append_votes
        sig = repo.default_signature
        tree = repo.head.peel().tree_id
        for i in range(25):
            commit = repo.create_commit(None, sig, sig, f"w{{writer}} c{{i}}", tree, [])
            set_note(repo, "refs/notes/pantheon/traces", commit, f"trace {{writer}} {{i}}\\n".encode(), "t")
            append_votes(repo, "{head}", [Vote(voter=f"w{{writer}}", verdict="approve", reasons=[str(i)])])
        """,
    )
    traces = git(repo_dir, "notes", "--ref", "pantheon/traces", "list").splitlines()
    assert len(traces) == WRITERS * 25
    votes = git(repo_dir, "notes", "--ref", "pantheon/votes", "show", head).splitlines()
    assert len(votes) == WRITERS * 25 and len(set(votes)) == WRITERS * 25
    assert git(repo_dir, "rev-list", "--merges", "refs/notes/pantheon/votes") == ""
