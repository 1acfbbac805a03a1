"""`git pantheon sync` between two clones through a bare remote: nothing is lost on either side."""

from __future__ import annotations

import json
from pathlib import Path

from pantheon_git.store.git import open_repo
from pantheon_git.store.votes import Vote, append_votes, read_all_votes
from tests.conftest import git, oid_of, pantheon


def two_clones(repo_dir: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    assert pantheon(repo_dir, "init").returncode == 0
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "init pantheon")
    git(repo_dir, "push", "-q", "origin")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "config", "user.name", "Other")
    git(other, "config", "user.email", "other@example.com")
    assert pantheon(other, "init").returncode == 0
    return bare, repo_dir, other


def test_votes_and_specs_from_two_clones_end_up_in_both(repo_dir: Path, tmp_path: Path) -> None:
    _, one, two = two_clones(repo_dir, tmp_path)
    head = oid_of(one)
    assert (
        pantheon(one, "queue", "--id", "from-one", "--title", "one", "--acceptance", "true").returncode == 0
    )
    assert (
        pantheon(two, "queue", "--id", "from-two", "--title", "two", "--acceptance", "true").returncode == 0
    )
    append_votes(open_repo(one), head, [Vote(voter="reviewer", verdict="approve", reasons=["one"])])
    append_votes(
        open_repo(two),
        head,
        [
            Vote(voter="reviewer", verdict="approve", reasons=["two"]),
            Vote(voter="person:x", verdict="reject"),
        ],
    )
    for clone in (one, two, one):
        result = pantheon(clone, "sync")
        assert result.returncode == 0, result.stdout + result.stderr
    for clone in (one, two):
        ids = sorted(row["id"] for row in json.loads(pantheon(clone, "list", "--json").stdout))
        assert ids == ["from-one", "from-two"]
        # Transport, not trust: every line travels (the other clone signs with no allowed key).
        votes = read_all_votes(open_repo(clone), head)
        assert sorted(v.reasons[0] if v.reasons else v.voter for v in votes) == ["one", "person:x", "two"]
    assert git(one, "rev-parse", "refs/pantheon/tasks") == git(two, "rev-parse", "refs/pantheon/tasks")
    assert git(one, "rev-parse", "refs/notes/pantheon/votes") == git(
        two, "rev-parse", "refs/notes/pantheon/votes"
    )
    fetch_specs = git(one, "config", "--get-all", "remote.origin.fetch")
    assert "+refs/notes" not in fetch_specs


def test_run_branches_travel_and_traces_only_when_configured(repo_dir: Path, tmp_path: Path) -> None:
    from pantheon_git.store.runs import Step, commit_step, start_run_branch
    from pantheon_git.store.traces import read_trace, write_trace

    bare, one, two = two_clones(repo_dir, tmp_path)
    assert pantheon(one, "queue", "--id", "t1", "--title", "t", "--acceptance", "true").returncode == 0
    repo = open_repo(one)
    ref = start_run_branch(repo, "t1", 1, repo.head.target)
    step = commit_step(repo, ref, Step("t1", "plan", "planner", "m", "planned"))
    write_trace(repo, step, {"summary": "planned", "prompt": "x" * 5000})
    assert pantheon(one, "sync").returncode == 0
    remote_refs = git(bare, "for-each-ref", "--format=%(refname)").split()
    assert "refs/heads/pantheon/t1/1" in remote_refs
    assert not [name for name in remote_refs if name.endswith(("/traces", "/payloads"))]
    config = one / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("push_traces = false", "push_traces = true"))
    assert pantheon(one, "sync").returncode == 0
    assert pantheon(two, "sync").returncode == 0
    other = open_repo(two)
    assert other.references["refs/heads/pantheon/t1/1"].target == step
    trace = read_trace(other, step, expand=True)
    assert trace is not None and trace["prompt"] == "x" * 5000  # the payload blob came along
    assert json.loads(pantheon(two, "list", "--json").stdout)[0]["status"] == "running"


def test_sync_reports_gits_progress_and_names_the_refs_a_remote_refused(
    repo_dir: Path, tmp_path: Path
) -> None:
    """Progress comes from git itself through GitPython's RemoteProgress (the command shows it on a
    terminal, as git does); a push the remote refuses names the ref and why, and nothing is forced."""
    from pantheon_git.queue.sync import sync

    bare, one, two = two_clones(repo_dir, tmp_path)
    for index in range(120):  # over fetch.unpackLimit (100): git keeps the pack and reports receiving it
        (one / f"f{index}.txt").write_text(f"{index}\n" * 200)
    git(one, "add", "-A")
    git(one, "commit", "-q", "-m", "files")
    git(one, "branch", "pantheon/t9/1")
    assert pantheon(one, "queue", "--id", "q1", "--title", "one", "--acceptance", "true").returncode == 0
    assert pantheon(one, "sync").returncode == 0
    heard: list[tuple[str, str]] = []
    report = sync(open_repo(two), two, "origin", on_progress=lambda verb, line: heard.append((verb, line)))
    assert report.pushed and report.push_error == ""
    received = [
        line for verb, line in heard if verb == "fetch" and line.startswith("receiving objects 100% (")
    ]
    assert received, sorted({line.split(" ")[0] for _, line in heard})
    assert int(received[-1].split("/")[-1].rstrip(")")) > 120  # the 120 files and their tree and commit
    assert git(two, "rev-parse", "refs/pantheon/tasks") == git(one, "rev-parse", "refs/pantheon/tasks")
    # The remote's queue moves on; a hook on the remote refuses the next update of refs/pantheon/tasks.
    hook = bare / "hooks" / "update"
    hook.write_text('#!/bin/sh\ntest "$1" != refs/pantheon/tasks || { echo "frozen queue" >&2; exit 1; }\n')
    hook.chmod(0o755)
    assert pantheon(two, "queue", "--id", "q2", "--title", "two", "--acceptance", "true").returncode == 0
    result = pantheon(two, "sync")
    assert result.returncode == 1
    assert "refs/pantheon/tasks: [remote rejected] (hook declined)" in result.stdout, result.stdout
    assert "Error lines received" not in result.stderr  # GitPython's own log stays quiet: one line
    assert git(bare, "rev-parse", "refs/pantheon/tasks") == git(one, "rev-parse", "refs/pantheon/tasks")


def test_progress_lines_name_gits_phases_by_gitpythons_op_codes() -> None:
    from git import RemoteProgress

    from pantheon_git.store.git import progress_line

    assert (
        progress_line(RemoteProgress.RECEIVING | RemoteProgress.BEGIN, 45, 100)
        == "receiving objects 45% (45/100)"
    )
    assert progress_line(RemoteProgress.WRITING | RemoteProgress.END, 7, 7) == "writing objects 100% (7/7)"
    assert progress_line(RemoteProgress.COUNTING, 12, None) == "counting objects (12)"
    assert progress_line(RemoteProgress.BEGIN, 1, 2) is None  # no phase: nothing to show


def test_the_terminal_progress_line_is_rewritten_in_place_then_ended(capsys) -> None:
    from pantheon_git.commands.sync import ProgressLine

    shown = ProgressLine()
    shown("fetch", "receiving objects 50% (1/2)")
    shown("push", "done")
    shown.close()
    err = capsys.readouterr().err
    first, second = err.split("\r")[1:]
    assert first == "fetch: receiving objects 50% (1/2)"
    assert second == "push: done".ljust(len(first)) + "\n"  # the longer line before is blanked out


def test_a_remote_url_that_would_run_a_program_runs_nothing(repo_dir: Path, tmp_path: Path) -> None:
    """An ext:: remote (git would run its command) through sync's GitPython path: refused, nothing run."""
    marker = tmp_path / "ran"
    git(repo_dir, "remote", "add", "evil", f"ext::sh -c touch% {marker}")  # git runs what follows ext::
    git(repo_dir, "config", "protocol.ext.allow", "always")  # the repository config allows it
    assert pantheon(repo_dir, "init").returncode == 0
    result = pantheon(repo_dir, "sync", "evil")
    assert result.returncode != 0 and not marker.exists()
