"""`[night] worktree_files`: ignored files the tests need are copied from the person's checkout into each
night worktree, and the copy can be turned into neither a read nor a write outside the repository, nor a
commit.

The feature: a library whose `pkg/version.py` is generated at install and gitignored (setuptools_scm's
layout; isodate's release) fails its tests in every night worktree, whatever the model writes.

The attacks: the run branch's tree is the model's (earlier steps), so it may hold a symlinked directory
or a dangling symlink where the listed file goes; the task may un-ignore the copied file to get it
committed onto a branch that is pushed; a run merged yesterday may have committed a symlink in the
person's own checkout on the listed file's path; the listed path may be a FIFO.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, run_attempt
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.worktrees import add_worktree, remove_worktree
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.local_files import local_paths
from pantheon_git.store.runs import worktree_tree
from pantheon_git.store.worktree import open_worktree, restore_worktree, worktree_changed, worktree_diff
from tests.conftest import git, pantheon
from tests.test_night import with_checks_flow
from tests.test_runner_task import POLICY

VERSION = 'VERSION = "1.2.3"\n'


def library(repo: Path, *, listed: bool = True) -> None:
    """A package whose version module is generated at install and ignored; the person has installed it."""
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("from pkg.version import VERSION\n")
    (repo / ".gitignore").write_text("pkg/version.py\n")
    if listed:
        list_files(repo, ["pkg/version.py"])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a package with a generated version module")
    (repo / "pkg" / "version.py").write_text(VERSION)  # what `pip install -e .` generated


def list_files(repo: Path, paths: list[str]) -> None:
    """`[night] worktree_files = paths` in the checkout's config.toml, the rest of it kept."""
    config = repo / ".pantheon" / "config.toml"
    config.parent.mkdir(exist_ok=True)
    text = config.read_text() if config.exists() else ""
    line = f"worktree_files = {json.dumps(paths)}\n"
    config.write_text(
        text.replace("[night]\n", f"[night]\n{line}", 1) if "[night]\n" in text else f"[night]\n{line}{text}"
    )


def branch_with_link(repo_dir: Path, name: str, path: str, target: Path) -> str:
    """A branch whose tip (as a model's step would) has a symlink to `target` at `path` (one or two parts)."""
    repo = open_repo(repo_dir)
    main = repo.revparse_single("main").peel(pygit2.Commit)
    link = repo.create_blob(os.fsencode(target))
    *folder, leaf = path.split("/")
    if folder:
        inner = repo.TreeBuilder(main.tree / folder[0])
        inner.insert(leaf, link, pygit2.GIT_FILEMODE_LINK)
        root = repo.TreeBuilder(main.tree)
        root.insert(folder[0], inner.write(), pygit2.GIT_FILEMODE_TREE)
    else:
        root = repo.TreeBuilder(main.tree)
        root.insert(leaf, link, pygit2.GIT_FILEMODE_LINK)
    who = pygit2.Signature("model", "model@example.com")
    repo.create_commit(f"refs/heads/{name}", who, who, "a step of the model's", root.write(), [main.id])
    return f"refs/heads/{name}"


def test_a_listed_file_is_copied_into_the_worktree_and_restored_after_a_clean(repo_dir: Path) -> None:
    library(repo_dir)
    worktree = add_worktree(repo_dir, repo_dir.parent / "wt", "refs/heads/main")
    try:
        assert (worktree / "pkg" / "version.py").read_text() == VERSION
        assert local_paths(open_worktree(worktree)) == {"pkg/version.py"}
        assert not worktree_changed(worktree)
        # The baseline's `clean -fdx` removes ignored files; the listed one comes back.
        (worktree / "build.log").write_text("left by a check\n")
        restore_worktree(worktree, ignored=True)
        assert not (worktree / "build.log").exists()
        assert (worktree / "pkg" / "version.py").read_text() == VERSION
    finally:
        remove_worktree(repo_dir, worktree)


def test_without_the_setting_nothing_is_copied(repo_dir: Path) -> None:
    library(repo_dir, listed=False)
    worktree = add_worktree(repo_dir, repo_dir.parent / "wt", "refs/heads/main")
    try:
        assert not (worktree / "pkg" / "version.py").exists()
    finally:
        remove_worktree(repo_dir, worktree)


def test_a_symlinked_directory_on_the_run_branch_gets_no_copy_outside_the_worktree(
    repo_dir: Path, tmp_path: Path
) -> None:
    library(repo_dir)
    outside = tmp_path / "victim"
    outside.mkdir()
    ref = branch_with_link(repo_dir, "evil-dir", "pkg", outside)
    worktree = add_worktree(repo_dir, repo_dir.parent / "wt", ref)
    try:
        assert (worktree / "pkg").is_symlink()
        assert list(outside.iterdir()) == []  # nothing written through the link
        assert local_paths(open_worktree(worktree)) == frozenset()
    finally:
        remove_worktree(repo_dir, worktree)


def test_a_dangling_symlink_on_the_run_branch_is_not_written_through(repo_dir: Path, tmp_path: Path) -> None:
    library(repo_dir)
    target = tmp_path / "victim" / "authorized_keys"
    target.parent.mkdir()
    ref = branch_with_link(repo_dir, "evil-link", "pkg/version.py", target)
    worktree = add_worktree(repo_dir, repo_dir.parent / "wt", ref)
    try:
        assert (worktree / "pkg" / "version.py").is_symlink()
        assert not target.exists()  # an open(O_CREAT) through the link would have made it
    finally:
        remove_worktree(repo_dir, worktree)


def test_a_symlink_in_the_persons_checkout_is_not_followed(repo_dir: Path, tmp_path: Path) -> None:
    secrets = tmp_path / "home-ssh"
    secrets.mkdir()
    (secrets / "id_ed25519").write_text("PRIVATE KEY\n")
    list_files(repo_dir, ["conf/id_ed25519", "key"])
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "listed files")
    # Merged yesterday from a run branch: links in the person's checkout on the listed paths.
    os.symlink(secrets, repo_dir / "conf")
    os.symlink(secrets / "id_ed25519", repo_dir / "key")
    worktree = add_worktree(repo_dir, repo_dir.parent / "wt", "refs/heads/main")
    try:
        assert not (worktree / "conf").exists() and not (worktree / "key").exists()
    finally:
        remove_worktree(repo_dir, worktree)
    doctor = pantheon(repo_dir, "doctor")
    assert "worktree-files" in doctor.stdout and "conf/id_ed25519" in doctor.stdout


def test_a_fifo_in_the_persons_checkout_does_not_block_the_night(repo_dir: Path) -> None:
    library(repo_dir)
    (repo_dir / "pkg" / "version.py").unlink()
    os.mkfifo(repo_dir / "pkg" / "version.py")
    code = (
        "from pathlib import Path\n"
        "from pantheon_git.night.worktrees import add_worktree, remove_worktree\n"
        f"root = Path({str(repo_dir)!r})\n"
        "wt = add_worktree(root, root.parent / 'wt', 'refs/heads/main')\n"
        "print((wt / 'pkg' / 'version.py').exists())\n"
        "remove_worktree(root, wt)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_task_that_un_ignores_the_copy_does_not_commit_it(repo_dir: Path) -> None:
    library(repo_dir)
    spec = stamp(Spec(id="t1", title="bump", acceptance=["true"]), author="a <a@b>", base="main")
    enqueue(open_repo(repo_dir), [spec])

    def implement(context: NodeContext) -> NodeResult:  # the model's edits, as an attacker would write them
        (context.worktree / ".gitignore").write_text("!pkg/version.py\n")
        (context.worktree / "pkg" / "version.py").write_text('VERSION = "9.9.9"\nTOKEN = "from the copy"\n')
        (context.worktree / "notes.txt").write_text("the change\n")
        return NodeResult(summary="un-ignored the copy")

    def check(context: NodeContext) -> NodeResult:
        # The copy is no change: the step before committed everything else.
        assert not worktree_changed(context.worktree)
        return NodeResult(summary="checked")

    nodes = [PlannedNode("implement", "fixer"), PlannedNode("check", "checker", inputs=("implement",))]
    run = run_attempt(
        open_repo(repo_dir),
        repo_dir,
        TaskPlan(spec, nodes, {"fixer": implement, "checker": check}),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert run.outcome == "completed", run.detail
    committed = git(repo_dir, "ls-tree", "-r", "--name-only", "pantheon/t1/1").split()
    assert "notes.txt" in committed and ".gitignore" in committed
    assert "pkg/version.py" not in committed
    assert (repo_dir / "pkg" / "version.py").read_text() == VERSION  # a copy: the person's file is theirs


def test_worktree_tree_leaves_out_the_copy_even_when_un_ignored(repo_dir: Path) -> None:
    library(repo_dir)
    worktree = add_worktree(repo_dir, repo_dir.parent / "wt", "refs/heads/main")
    try:
        (worktree / ".gitignore").unlink()
        tree = open_repo(repo_dir)[worktree_tree(worktree)].peel(pygit2.Tree)
        assert ".gitignore" not in tree and "pkg/__init__.py" in tree
        assert "pkg/version.py" not in tree
        shown = worktree_diff(worktree, "HEAD")  # what the reviewers are shown is what is committed
        assert ".gitignore" in shown and "b/pkg/version.py" not in shown and "1.2.3" not in shown
    finally:
        remove_worktree(repo_dir, worktree)


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", ".git/config", "pkg//v.py"])
def test_a_listed_path_outside_the_tree_is_refused_in_one_line(
    repo_dir: Path, tmp_path: Path, path: str
) -> None:
    with_checks_flow(repo_dir, tmp_path)
    list_files(repo_dir, [path])
    done = pantheon(repo_dir, "night")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and ".pantheon/config.toml" in lines[0] and "worktree_files" in lines[0], lines
    assert git(repo_dir, "branch", "--list", "pantheon/*") == ""


def check_exit(repo: Path, task_id: str) -> int:
    """The exit code of the task's acceptance check, from its step's trace note."""
    step = git(
        repo, "log", "--format=%H", "--grep", "^Pantheon-Step: test ", f"pantheon/{task_id}/1"
    ).split()[0]
    trace = json.loads(git(repo, "notes", "--ref", "pantheon/traces", "show", step))
    code: int = trace["output"]["results"][0]["exit_code"]
    return code


def test_a_night_passes_the_check_that_needs_the_generated_file(repo_dir: Path, tmp_path: Path) -> None:
    """End to end: the check imports the package, after the baseline step (a flow with checks has one)
    cleaned the worktree (`-fdx`)."""
    with_checks_flow(repo_dir, tmp_path)
    library(repo_dir, listed=False)
    check = "python3 -c 'import pkg; assert pkg.VERSION == \"1.2.3\"'"
    for task_id in ("without", "with"):
        if task_id == "with":
            list_files(repo_dir, ["pkg/version.py"])
        queued = pantheon(
            repo_dir, "queue", "--id", task_id, "--title", task_id, "--acceptance", check, "--flow", "checks"
        )
        assert queued.returncode == 0, queued.stderr
        night = pantheon(repo_dir, "night")
        assert f"task {task_id}" in night.stdout, night.stdout + night.stderr
    assert check_exit(repo_dir, "without") != 0
    assert check_exit(repo_dir, "with") == 0
    for task_id in ("without", "with"):
        assert "pkg/version.py" not in git(repo_dir, "ls-tree", "-r", "--name-only", f"pantheon/{task_id}/1")
