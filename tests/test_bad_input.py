"""Bad input never crashes: twelve malformed flows, models, configs and specs, each refused in one line.

The CLI (`check`, `queue`) answers with one `file:line: field: reason` line, exit 2 and nothing
written; the night fails the task that uses the bad input, with that line, and runs the next one. A
bad config.toml stops the night before anything runs (the gate policy is unknown without it): one line,
exit 2, nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from tests.conftest import CHECKS_FLOW, git, pantheon

GOOD_SPEC = 'title = "fine"\nacceptance = ["true"]\n'


@dataclass(frozen=True)
class Case:
    name: str
    where: str  # flow | spec | synced | config | models
    data: bytes
    reason: str  # a fragment of the one line
    flow: str = "checks"  # for `where == "spec"`: the flow the bad task names


CASES = [
    Case("node-is-a-number", "flow", b"nodes = [3]\n", "node #1: input should be a valid dictionary"),
    Case("nodes-not-a-list", "flow", b'nodes = "test"\n', ":1: nodes: input should be a valid list"),
    Case("non-utf8-flow", "flow", b'[[nodes]]\nid = "t\xff"\nagent = "acceptance"\n', "not UTF-8 text"),
    Case("unknown-agent", "flow", b'[[nodes]]\nid = "a"\nagent = "nosuch"\n', "unknown agent 'nosuch'"),
    Case("non-utf8-spec", "spec", b'title = "caf\xe9"\nacceptance = ["true"]\n', "not UTF-8 text"),
    Case("no-title", "spec", b'acceptance = ["true"]\n', "title: required field is missing"),
    Case(
        "acceptance-not-a-list", "spec", b'title = "t"\nacceptance = "true"\n', "acceptance: input should be"
    ),
    Case("unknown-flow", "spec", b'title = "t"\nacceptance = ["true"]\nflow = "nosuch"\n', "nosuch"),
    Case("synced-without-id", "synced", b'title = "t"\nacceptance = ["true"]\n', "id: required field"),
    Case("non-toml-config", "config", b"[night\nmax_tasks = 3\n", "config.toml:1:"),
    Case("max-tasks-a-string", "config", b'[night]\nmax_tasks = "many"\n', ":2: night.max_tasks: input"),
    Case("model-is-a-string", "models", b'[models]\ndefault = "gemma"\n', ":2: models.default: expected"),
]


def setup_repo(repo_dir: Path) -> Path:
    """Pantheon with a model-free flow `checks` and a gate that needs no reviewers."""
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    config.write_text(config.read_text().replace("min_approvals = 2", "min_approvals = 0"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon")
    return repo_dir


def bad_file(repo_dir: Path, case: Case) -> Path:
    """Write the malformed file where the night (and `check`) read it; returns its path."""
    path = {
        "flow": repo_dir / ".pantheon" / "flows" / "broken.toml",
        "config": repo_dir / ".pantheon" / "config.toml",
        "models": repo_dir / ".pantheon" / "models.toml",
    }.get(case.where, repo_dir / "bad-spec.toml")
    path.write_bytes(case.data)
    return path


def put_in_queue(repo_dir: Path, name: str, data: bytes) -> None:
    """A spec blob written straight into refs/pantheon/tasks, as a sync from another machine would."""
    repo = pygit2.Repository(str(repo_dir))
    ref = repo.references.get("refs/pantheon/tasks")
    tip = ref.peel(pygit2.Commit) if ref is not None else None
    builder = repo.TreeBuilder(tip.tree) if tip is not None else repo.TreeBuilder()
    builder.insert(f"{name}.toml", repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
    sig = pygit2.Signature("Other Machine", "other@example.com")
    parents = [tip.id] if tip is not None else []
    repo.create_commit("refs/pantheon/tasks", sig, sig, "synced", builder.write(), parents)


def written_state(repo_dir: Path) -> tuple[str, str]:
    return git(repo_dir, "for-each-ref"), git(repo_dir, "count-objects")


def one_error_line(stderr: str, fragment: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_cli_refuses_in_one_line_and_writes_nothing(repo_dir: Path, case: Case) -> None:
    setup_repo(repo_dir)
    path = bad_file(repo_dir, case)
    before = written_state(repo_dir)
    if case.where == "synced":  # no file to check: the queue itself must stay readable around it
        assert (
            pantheon(repo_dir, "queue", "--id", "good", "--title", "fine", "--acceptance", "true").returncode
            == 0
        )
        put_in_queue(repo_dir, "noid", case.data)
        listed = pantheon(repo_dir, "list")
        assert listed.returncode == 0 and "good" in listed.stdout and "noid" not in listed.stdout
        one_error_line(listed.stderr, case.reason)
        return
    checked = pantheon(repo_dir, "check", str(path.relative_to(repo_dir)))
    assert checked.returncode == 2
    one_error_line(checked.stderr, case.reason)
    if case.where == "flow":
        queued = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "broken")
    elif case.where == "spec":
        queued = pantheon(repo_dir, "queue", str(path.relative_to(repo_dir)))
    else:
        queued = None
    if queued is not None:
        assert queued.returncode == 2
        one_error_line(queued.stderr, case.reason)
    assert written_state(repo_dir) == before


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_night_fails_that_task_and_runs_the_next(repo_dir: Path, case: Case) -> None:
    setup_repo(repo_dir)
    queued = pantheon(
        repo_dir, "queue", "--id", "good", "--title", "fine", "--acceptance", "true", "--flow", "checks"
    )
    assert queued.returncode == 0, queued.stderr
    # The bad task is queued first and ranks first, so the night meets it before the good one.
    if case.where in ("spec", "synced"):
        put_in_queue(repo_dir, "bad", case.data if case.where == "synced" else b'id = "bad"\n' + case.data)
    else:
        flow = "broken" if case.where == "flow" else "default"  # the default flow uses model agents
        spec = f'id = "bad"\ntitle = "b"\nacceptance = ["true"]\nflow = "{flow}"\npriority = 10\n'
        put_in_queue(repo_dir, "bad", spec.encode())
    before = written_state(repo_dir)
    bad_file(repo_dir, case)
    night = pantheon(repo_dir, "night")
    assert "Traceback" not in night.stderr, night.stderr
    branches = git(repo_dir, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split()
    if case.where == "config":
        assert night.returncode == 2
        one_error_line(night.stderr, case.reason)
        assert written_state(repo_dir) == before and branches == []
        return
    failed = [line for line in night.stdout.splitlines() if "task bad failed:" in line]
    assert len(failed) == 1 and case.reason in failed[0], night.stdout
    assert "night done: 2 run, 1 failed" in night.stdout, night.stdout
    assert branches == ["pantheon/good/1"]
    last = git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Step,valueonly)", "pantheon/good/1")
    assert last.split()[0] == "gate"  # the node, then its task and attempt
