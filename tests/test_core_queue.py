"""The queue through the real CLI: refs/pantheon/tasks as a commit chain, and refusals that write nothing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.conftest import git, pantheon

GOOD = 'title = "Add a greeting"\nacceptance = ["test -f hello.txt"]\n'


def tasks_tip(repo: Path) -> str:
    return git(repo, "rev-parse", "--verify", "-q", "refs/pantheon/tasks", check=False).strip()


def queued_ids(repo: Path) -> list[str]:
    out = pantheon(repo, "list", "--json")
    assert out.returncode == 0, out.stderr
    return [row["id"] for row in json.loads(out.stdout)]


def test_init_queue_three_list_show_and_history(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / "a.toml").write_text(GOOD)
    first = pantheon(repo_dir, "queue", "a.toml")
    assert first.returncode == 0, first.stderr
    second = pantheon(
        repo_dir,
        "queue",
        "--title",
        "Second",
        "--acceptance",
        "true",
        "--acceptance",
        "false",
        "--priority",
        "5",
        "--label",
        "x",
    )
    assert second.returncode == 0, second.stderr
    third = pantheon(repo_dir, "queue", "-", input='title = "From stdin"\nacceptance = ["true"]\n')
    assert third.returncode == 0, third.stderr

    rows = json.loads(pantheon(repo_dir, "list", "--json").stdout)
    assert [row["title"] for row in rows] == ["Second", "Add a greeting", "From stdin"]  # priority, then age
    assert {row["status"] for row in rows} == {"queued"}
    assert all(row["base"] == "main" for row in rows)

    log = git(repo_dir, "log", "--format=%s", "refs/pantheon/tasks").splitlines()
    assert len(log) == 3 and log[-1].startswith("queue ") and log[-1].endswith("Add a greeting")
    second_id = rows[0]["id"]
    stored = tomllib.loads(git(repo_dir, "show", f"refs/pantheon/tasks:{second_id}.toml"))
    assert stored["acceptance"] == ["true", "false"] and stored["labels"] == ["x"]
    assert stored["created"]["author"] == "Night Tester <night@example.com>"

    shown = pantheon(repo_dir, "show", second_id[:4])
    assert shown.returncode == 0 and shown.stdout.startswith(f"task {second_id}: queued")
    assert json.loads(pantheon(repo_dir, "show", second_id, "--json").stdout)["spec"]["priority"] == 5


def test_cancel_is_recorded_not_edited(repo_dir: Path) -> None:
    pantheon(repo_dir, "queue", "--title", "T", "--acceptance", "true")
    (task_id,) = queued_ids(repo_dir)
    spec_before = git(repo_dir, "rev-parse", f"refs/pantheon/tasks:{task_id}.toml")
    done = pantheon(repo_dir, "cancel", task_id, "-m", "not needed")
    assert done.returncode == 0, done.stderr
    assert git(repo_dir, "rev-parse", f"refs/pantheon/tasks:{task_id}.toml") == spec_before
    assert json.loads(pantheon(repo_dir, "list", "--json").stdout)[0]["status"] == "cancelled"
    assert "cancel " + task_id + ": not needed" in git(
        repo_dir, "log", "-1", "--format=%s", "refs/pantheon/tasks"
    )
    again = pantheon(repo_dir, "cancel", task_id)
    assert again.returncode == 2 and "already cancelled" in again.stderr
    filtered = json.loads(pantheon(repo_dir, "list", "--status", "queued", "--json").stdout)
    assert filtered == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"bad.toml": 'title = "x"\nacceptance = []\n'}, "bad.toml:2: acceptance: needs at least one check"),
        ({"bad.toml": GOOD + "color = 1\n"}, "bad.toml:3: color: unknown field"),
        ({"bad.toml": GOOD + "priority = []\n"}, "bad.toml:3: priority: input should be a valid integer"),
        ({"bad.toml": 'title = "x\n'}, "bad.toml:1:11: invalid TOML"),
        ({"bad.toml": GOOD + 'base = "nope"\n'}, "bad.toml: base: 'nope' is not a branch or commit"),
        ({"bad.toml": GOOD + 'flow = "nightly"\n'}, "bad.toml: flow: no .pantheon/flows/nightly.toml"),
        # One bad file among good ones: nothing at all is queued.
        (
            {"good.toml": GOOD, "bad.toml": 'title = ""\nacceptance = ["true"]\n'},
            "bad.toml:1: title: string should",
        ),
        (
            {"a.toml": GOOD + 'id = "same"\n', "b.toml": GOOD + 'id = "same"\n'},
            "id same: given to more than one",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    repo_dir: Path, files: dict[str, str], expected: str
) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    for name, text in files.items():
        (repo_dir / name).write_text(text)
    objects_before = git(repo_dir, "count-objects", "-v")
    result = pantheon(repo_dir, "queue", *files)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and expected in line, line
    assert tasks_tip(repo_dir) == ""
    assert git(repo_dir, "for-each-ref", "refs/pantheon") == ""
    assert git(repo_dir, "count-objects", "-v") == objects_before


def test_duplicate_id_against_the_queue_is_refused(repo_dir: Path) -> None:
    (repo_dir / "a.toml").write_text(GOOD + 'id = "fix-it"\n')
    assert pantheon(repo_dir, "queue", "a.toml").returncode == 0
    tip = tasks_tip(repo_dir)
    again = pantheon(repo_dir, "queue", "a.toml")
    assert again.returncode == 2 and "id fix-it: already queued" in again.stderr
    assert tasks_tip(repo_dir) == tip


def test_missing_file_and_missing_flags(repo_dir: Path) -> None:
    missing = pantheon(repo_dir, "queue", "nope.toml")
    assert missing.returncode == 2 and "nope.toml: no such file" in missing.stderr
    nothing = pantheon(repo_dir, "queue")
    assert nothing.returncode == 2 and "nothing to queue" in nothing.stderr
    no_acceptance = pantheon(repo_dir, "queue", "--title", "x")
    assert (
        no_acceptance.returncode == 2
        and "command line: acceptance: needs at least one check" in no_acceptance.stderr
    )
    assert tasks_tip(repo_dir) == ""


def test_outside_a_repository(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD)
    for args in (["queue", "a.toml"], ["list"], ["init"]):
        result = pantheon(tmp_path, *args)
        assert result.returncode == 2
        assert "not inside a git repository" in result.stderr and result.stderr.count("\n") == 1


def test_empty_repository_needs_a_base(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    result = pantheon(tmp_path, "queue", "--title", "x", "--acceptance", "true")
    assert result.returncode == 2 and "base: HEAD has no commit yet" in result.stderr
    with_base = pantheon(tmp_path, "queue", "--title", "x", "--acceptance", "true", "--base", "main")
    assert with_base.returncode == 2 and "'main' is not a branch or commit" in with_base.stderr
