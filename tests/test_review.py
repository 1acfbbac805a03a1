"""The morning after: report, people's votes, the gate, and merging exactly what passed."""

from __future__ import annotations

import json
from pathlib import Path

from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes
from tests.conftest import git, pantheon


def make_run(
    repo_dir: Path, task_id: str, files: dict[str, bytes], gate: str | None, failed: bool = False
) -> str:
    """A run branch as the night leaves it: steps with traces, an acceptance vote, maybe a gate vote."""
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, task_id, 1, repo.head.target)
    implement = commit_step(
        repo, ref, Step(task_id, "implement", "implementer", "m@0", "did it"), changes=files
    )
    write_trace(repo, implement, {"summary": "did it", "tokens": {"in": 100, "out": 20}, "duration_s": 2.5})
    extra = {"Pantheon-Outcome": "failed", "Pantheon-Error": "tests crashed"} if failed else {}
    test = commit_step(repo, ref, Step(task_id, "test", "acceptance", "-", "acceptance", extra=extra))
    write_trace(
        repo, test, {"summary": "acceptance", "duration_s": 0.5, "error": "tests crashed" if failed else None}
    )
    verdict = "reject" if failed else "approve"
    append_votes(
        repo,
        test,
        [
            Vote(
                voter="acceptance",
                verdict=verdict,
                evidence={
                    "results": [{"command": "true", "exit_code": 0 if not failed else 1, "timed_out": False}],
                    # as the night records it: the check failed on the base commit (see the baseline step)
                    "baseline": True,
                    "fixed": [] if failed else ["true"],
                    "passes_at_base": [],
                },
            )
        ],
    )
    if gate is None:
        return str(test)
    head = commit_step(repo, ref, Step(task_id, "gate", "gate", "-", gate))
    write_trace(repo, head, {"summary": gate, "duration_s": 0.0})
    append_votes(repo, head, [Vote(kind="gate", voter="gate", verdict=gate, reasons=[f"gate {gate}"])])
    return str(head)


def setup_runs(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    enqueue(
        repo,
        [
            stamp(Spec(id=name, title=f"task {name}", acceptance=["true"]), author="a <a@b>", base="main")
            for name in ("good", "other", "bad", "unreviewed", "clash")
        ],
    )
    make_run(repo_dir, "good", {"good.txt": b"good\n"}, "approve")
    make_run(repo_dir, "other", {"other.txt": b"other\n"}, "approve")
    make_run(repo_dir, "bad", {"bad.txt": b"bad\n"}, None, failed=True)
    make_run(repo_dir, "unreviewed", {"u.txt": b"u\n"}, None)
    make_run(repo_dir, "clash", {"README.md": b"theirs\n"}, "approve")
    # main moves on and touches README.md too: "clash" can no longer merge cleanly.
    (repo_dir / "README.md").write_text("ours\n")
    git(repo_dir, "commit", "-q", "-am", "main moves on")


def test_report_shows_gates_votes_tokens_and_the_red_bin(repo_dir: Path) -> None:
    setup_runs(repo_dir)
    rows = {row["id"]: row for row in json.loads(pantheon(repo_dir, "report", "--format", "json").stdout)}
    assert {key: row["status"] for key, row in rows.items()} == {
        "good": "passed",
        "other": "passed",
        "bad": "failed",
        "unreviewed": "running",
        "clash": "passed",
    }
    assert rows["good"]["gate"] == "approve" and rows["unreviewed"]["gate"] is None
    assert rows["good"]["tokens_in"] == 100 and rows["good"]["seconds"] == 3.0
    assert rows["good"]["acceptance"] == [{"command": "true", "exit_code": 0, "timed_out": False}]
    assert rows["bad"]["failure"]["error"] == "tests crashed"
    assert "git log --notes pantheon/bad/1" in rows["bad"]["failure"]["inspect"]
    markdown = pantheon(repo_dir, "report").stdout
    assert "## Red bin" in markdown and "**bad** failed at `test`: tests crashed" in markdown
    saved = list((repo_dir / ".git" / "pantheon" / "reports").glob("*.md"))
    assert len(saved) == 1 and "| good: task good | passed | #1 passed | approve |" in saved[0].read_text()
    assert pantheon(repo_dir, "report", "--since", "soon").returncode == 2


def test_merge_all_passing_merges_exactly_the_passing_and_aborts_conflicts(repo_dir: Path) -> None:
    setup_runs(repo_dir)
    main_before = git(repo_dir, "rev-parse", "main").strip()
    dry = pantheon(repo_dir, "merge", "--all-passing", "--dry-run")
    assert "good: would-merge" in dry.stdout and "clash: conflict" in dry.stdout
    assert git(repo_dir, "rev-parse", "main").strip() == main_before
    merged = pantheon(repo_dir, "merge", "--all-passing")
    assert merged.returncode == 1  # the conflicting one is reported
    lines = dict(line.split(": ", 1) for line in merged.stdout.splitlines())
    assert lines["good"].startswith("merged") and lines["other"].startswith("merged")
    assert lines["clash"].startswith("conflict: conflicts with main in README.md; nothing merged")
    files = git(repo_dir, "ls-tree", "--name-only", "main").split()
    assert files == [".pantheon", "README.md", "good.txt", "other.txt"]
    assert (repo_dir / "good.txt").read_text() == "good\n"  # main is checked out: the work tree followed
    assert (repo_dir / "README.md").read_text() == "ours\n" and git(repo_dir, "status", "--porcelain") == ""
    statuses = {row["id"]: row["status"] for row in json.loads(pantheon(repo_dir, "list", "--json").stdout)}
    assert statuses["good"] == "merged" and statuses["clash"] == "passed" and statuses["bad"] == "failed"
    for refused in ("bad", "unreviewed"):
        result = pantheon(repo_dir, "merge", refused)
        assert result.returncode == 1 and "refused" in result.stdout


def test_merge_into_a_branch_not_checked_out_and_people_vote(repo_dir: Path) -> None:
    setup_runs(repo_dir)
    git(repo_dir, "checkout", "-q", "-b", "elsewhere")
    assert pantheon(repo_dir, "vote", "unreviewed", "approve", "-m", "I checked it").returncode == 0
    gate = pantheon(repo_dir, "gate", "unreviewed")
    assert gate.stdout.startswith("gate: reject (1 of 2 required approvals)")
    assert pantheon(repo_dir, "vote", "unreviewed", "reject", "-m", "changed my mind").returncode == 0
    assert "rejected by person:Night Tester" in pantheon(repo_dir, "gate", "unreviewed").stdout
    result = pantheon(repo_dir, "merge", "good")
    assert result.returncode == 0 and result.stdout.startswith("good: merged")
    assert "good.txt" in git(repo_dir, "ls-tree", "--name-only", "main").split()
    assert not (repo_dir / "good.txt").exists()  # the checked-out branch was not touched
    assert git(repo_dir, "log", "-1", "--format=%P", "main").count(" ") == 1  # a merge commit


def test_report_names_the_gate_as_where_a_rejected_run_failed(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    enqueue(repo, [stamp(Spec(id="rejected", title="r", acceptance=["true"]), author="a <a@b>", base="main")])
    make_run(repo_dir, "rejected", {"r.txt": b"r\n"}, "reject")
    (row,) = json.loads(pantheon(repo_dir, "report", "--format", "json").stdout)
    assert row["status"] == "failed" and row["gate"] == "reject"
    assert row["failure"] == {
        "step": "gate",
        "error": "gate reject",
        "inspect": ["git log --notes pantheon/rejected/1"],
    }
