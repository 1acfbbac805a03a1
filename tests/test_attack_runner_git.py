"""Attacks on the runner's own git, outside the sandbox: a task's tree configures a program (a clean or
smudge filter, fsmonitor, a hook) in a repository of its own inside the worktree, in a submodule, or
through the worktree's `.git` pointer, and waits for the runner's next status, staging, diff, restore or
checkout to run it as the runner's user. Written as the queued spec's check or the model would; the
markers sit under the test's /tmp, which inside the sandbox is a private tmpfs, so a marker on the host
means the program ran outside the sandbox."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.night.attempt import Attempt, PlannedNode, TaskPlan, run_attempt
from pantheon_git.night.executors import _diff, acceptance_executor, baseline_executor, review_diff
from pantheon_git.night.nodes import NodeContext, NodeResult
from pantheon_git.night.worktrees import add_worktree, worktree_path
from pantheon_git.queue.tasks import enqueue
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import worktree_tree
from pantheon_git.store.worktree import nested_repositories
from pantheon_git.tools.builtin import ToolContext, WriteFileArgs, write_file
from pantheon_git.tools.paths import ToolError
from pantheon_git.tools.sandbox import run_sandboxed
from tests.conftest import CHECKS_FLOW, git, pantheon
from tests.test_attack_sandbox import needs_sandbox
from tests.test_runner_task import POLICY


def inner_repository(marker: Path) -> str:
    """Shell that makes the current directory a repository whose config runs `marker`-touching programs
    on the next git that looks at it (a clean filter on any file, fsmonitor, hooks), with a dirty file."""
    touch = f"touch {marker}"
    return (
        "git init -q . && git config user.email x@localhost && git config user.name x"
        f" && git config filter.x.clean 'sh -c \"{touch}.clean; cat\"'"
        f" && git config filter.x.smudge 'sh -c \"{touch}.smudge; cat\"'"
        f" && git config core.fsmonitor 'sh -c \"{touch}.fsmonitor\"'"
        f" && printf '#!/bin/sh\\n{touch}.hook\\n' > .git/hooks/post-checkout"
        " && chmod +x .git/hooks/post-checkout"
        " && echo '* filter=x' > .gitattributes && echo a > f && git add -A && git commit -qm inner"
        " && echo b > f"  # dirty: the next status must look at f's content, through the clean filter
    )


def ran(marker: Path) -> list[str]:
    return sorted(path.name for path in marker.parent.glob(f"{marker.name}*"))


def with_submodule(repo_dir: Path, tmp_path: Path) -> None:
    """The repository under test has a submodule (a gitlink and .gitmodules), as many projects do; a night's
    worktree leaves its directory empty."""
    lib = tmp_path / "lib"
    git(tmp_path, "init", "-q", str(lib))
    git(lib, "commit", "-q", "--allow-empty", "-m", "lib")
    git(repo_dir, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "sub")
    git(repo_dir, "commit", "-q", "-m", "a submodule")


def queued(repo_dir: Path, command: str) -> Spec:
    spec = stamp(Spec(id="t1", title="attack", acceptance=[command]), author="a <a@b>", base="main")
    enqueue(open_repo(repo_dir), [spec])
    return spec


@needs_sandbox
def test_a_check_that_fills_a_submodule_gets_nothing_run_by_the_runners_git(
    repo_dir: Path, tmp_path: Path
) -> None:
    # The real runner path of a default night: the baseline runs the spec's check, the implementer's step
    # is checked for a change and staged, the acceptance node runs the check again (it initialises the
    # empty submodule directory as a repository configuring a clean filter, fsmonitor and a hook), the
    # reviewer is shown the diff (`git diff` on the command line entered the submodule and ran the
    # filter), and a repair step is checked for a change (`git status` ran it again). Now the step that
    # made the repository fails, the repository is gone, and nothing it configured ever ran.
    with_submodule(repo_dir, tmp_path)
    marker = tmp_path / "ran-outside"
    spec = queued(repo_dir, f"cd sub && {{ test -e .git || {{ {inner_repository(marker)}; }}; }}; exit 1")
    seen: dict[str, str] = {}

    def implement(context: NodeContext) -> NodeResult:  # the model's edit, as its `create` would write
        (context.worktree / f"{context.node_id}.txt").write_text("the change\n")
        return NodeResult(summary=f"wrote {context.node_id}.txt")

    def review(context: NodeContext) -> NodeResult:
        seen["diff"] = review_diff(context)
        return NodeResult(summary="reviewed")

    nodes = [
        PlannedNode("baseline", "baseline"),
        PlannedNode("implement", "impl", require_change=True),
        PlannedNode("test", "acceptance", inputs=("implement",)),
        PlannedNode("review", "rev", inputs=("implement", "test")),
        PlannedNode("repair", "impl", inputs=("review",), require_change=True),
    ]
    executors = {
        "baseline": baseline_executor(run_sandboxed),
        "impl": implement,
        "acceptance": acceptance_executor(run_sandboxed),
        "rev": review,
    }
    run = run_attempt(
        open_repo(repo_dir),
        repo_dir,
        TaskPlan(spec, nodes, executors),
        Attempt(1, resume=False),
        policy=POLICY,
    )
    assert ran(marker) == []
    assert run.outcome == "failed" and "git repositories inside the worktree" in run.detail, run.detail
    assert run.steps == ["baseline", "implement", "test"] and "diff" not in seen
    tree = pygit2.Repository(str(repo_dir)).revparse_single("pantheon/t1/1").peel(pygit2.Tree)
    assert tree["sub"].filemode == pygit2.GIT_FILEMODE_COMMIT  # still the base's gitlink, not the check's
    assert (
        tree["sub"].id == pygit2.Repository(str(repo_dir)).revparse_single("main").peel(pygit2.Tree)["sub"].id
    )
    assert "sub/.gitattributes" not in [entry.name for entry in tree]


@needs_sandbox
def test_a_repository_a_check_makes_in_the_tree_is_refused_and_the_night_goes_on(
    repo_dir: Path, tmp_path: Path
) -> None:
    # A real night with a model-free flow. The check makes `sub` a repository of its own, and `other/.git`
    # a gitdir file pointing at a git dir it wrote elsewhere in the tree. The step that made them fails
    # with the reason, the nested `.git`s are gone (never staged, never entered), and the night goes on
    # to the next task.
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon with a model-free flow")
    marker = tmp_path / "ran-outside"
    attack = (
        f"mkdir sub && cd sub && {{ {inner_repository(marker)}; }} && cd .. && mkdir other"
        " && cp -r sub/.git evil-git-dir && echo 'gitdir: ../evil-git-dir' > other/.git"
        " && cp sub/.gitattributes other/ && echo c > other/f"
    )
    queue = ["queue", "--id", "t1", "--title", "nested", "--acceptance", attack, "--flow", "checks"]
    assert pantheon(repo_dir, *queue).returncode == 0
    after = ["queue", "--id", "t2", "--title", "next", "--acceptance", "true", "--flow", "checks"]
    assert pantheon(repo_dir, *after).returncode == 0
    night = subprocess.run(
        [sys.executable, "-m", "pantheon_git", "night"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran(marker) == []
    # t1 failed (its step refused), t2 ran after it: the night ends as it does with any failed task.
    assert night.returncode == 1 and "2 run, 1 failed" in night.stdout, night.stdout + night.stderr
    assert "Traceback" not in night.stderr
    error = git(repo_dir, "log", "-1", "--format=%(trailers:key=Pantheon-Error,valueonly)", "pantheon/t1/1")
    assert "git repositories inside the worktree" in error and "sub/.git" in error and "other/.git" in error
    files = git(repo_dir, "ls-tree", "-r", "--name-only", "pantheon/t1/1").split()
    assert "sub/f" in files and "other/f" in files  # their files are the task's files, plain
    assert not [name for name in files if name.endswith("/.git") or "/.git/" in name]
    assert git(repo_dir, "ls-tree", "-r", "pantheon/t1/1").count(" commit ") == 0  # no gitlink staged
    assert git(repo_dir, "rev-parse", "--verify", "--quiet", "pantheon/t2/1").strip()  # the next task ran
    ls = git(repo_dir, "worktree", "list")
    assert ls.count("\n") == 1, ls  # the night removed its worktree


def night_worktree(repo_dir: Path, task: str = "t1") -> Path:
    git(repo_dir, "branch", f"pantheon/{task}/1")
    return add_worktree(
        repo_dir, worktree_path(str(repo_dir / ".git"), task, 1), f"refs/heads/pantheon/{task}/1"
    )


def test_the_model_cannot_write_a_git_dir_anywhere_in_the_tree(repo_dir: Path) -> None:
    # Without running anything, a model's write_file of `sub/.git/config` (or HEAD) would make `sub` a
    # repository whose config the runner's next git call would honour.
    worktree = night_worktree(repo_dir)
    ctx = ToolContext(worktree=worktree, sandbox=run_sandboxed)
    for path in ("sub/.git/config", "sub/.git/HEAD", "deep/er/.GIT/config", "other/.git"):
        with pytest.raises(ToolError, match=r"\.git directory is off limits"):
            write_file(WriteFileArgs(path=path, content='[filter "x"]\n\tclean = touch /tmp/x\n'), ctx)
    assert nested_repositories(worktree) == []


def test_a_worktree_pointer_aimed_into_the_tree_is_refused_before_git_reads_it(
    repo_dir: Path, tmp_path: Path
) -> None:
    # The sandbox keeps `.git` read-only; were it pointed (by hand, by a bug) at a git dir written inside
    # the tree, whose config names a clean filter, the runner's status, staging and diff refuse it.
    worktree = night_worktree(repo_dir)
    marker = tmp_path / "ran-outside"
    own = Path(git(worktree, "rev-parse", "--absolute-git-dir").strip())
    evil = worktree / "evil.git"
    evil.mkdir()
    for source in (repo_dir / ".git" / "objects", repo_dir / ".git" / "refs"):
        shutil.copytree(source, evil / source.name)
    for name in ("HEAD", "index"):
        shutil.copy(own / name, evil / name)
    (evil / "config").write_text(f"[filter \"evil\"]\n\tclean = sh -c 'touch {marker}; cat'\n")
    (worktree / ".gitattributes").write_text("* filter=evil\n")
    (worktree / "README.md").write_text("changed\n")
    (worktree / ".git").write_text(f"gitdir: {evil}\n")
    for call in (lambda: _diff(worktree, "HEAD"), lambda: worktree_tree(worktree)):
        with pytest.raises(PantheonError, match="inside the worktree"):
            call()
    assert ran(marker) == []


def test_a_run_branchs_attributes_run_no_filter_at_checkout(repo_dir: Path, tmp_path: Path) -> None:
    # A run branch (written by models and checks) carries `.gitattributes` naming a filter driver that the
    # user's own config defines (git-lfs is the common one: it fetches over the network at smudge). A
    # resumed night checks the branch out again: git's checkout would run the smudge outside the sandbox.
    marker = tmp_path / "ran-outside"
    git(repo_dir, "config", "filter.x.smudge", f"sh -c 'touch {marker}.smudge; cat'")
    git(repo_dir, "branch", "pantheon/t1/1")
    git(repo_dir, "checkout", "-q", "pantheon/t1/1")
    (repo_dir / ".gitattributes").write_text("* filter=x\n")
    (repo_dir / "data.bin").write_text("payload\n")
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "a step")
    git(repo_dir, "checkout", "-q", "main")
    for stale in ran(marker):
        (tmp_path / stale).unlink()
    path = worktree_path(str(repo_dir / ".git"), "t1", 1)
    worktree = add_worktree(repo_dir, path, "refs/heads/pantheon/t1/1")
    assert (worktree / "data.bin").read_text() == "payload\n"
    assert ran(marker) == []
    # Control: plain git's checkout does run it, so the test would see it if the runner ran it.
    git(repo_dir, "worktree", "add", "-q", "--detach", str(tmp_path / "plain"), "pantheon/t1/1")
    assert ran(marker) != []


def test_nested_repositories_are_found_without_entering_them(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a" / ".git" / "deeper" / ".git").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "b" / ".GIT").write_text("gitdir: /elsewhere\n")
    (root / "c").mkdir()
    (root / "c" / ".git").symlink_to(tmp_path)
    (root / "linked").symlink_to(root / "a")  # a link to a directory is never walked into
    (root / ".git").write_text("gitdir: /the/worktrees/own\n")  # the worktree's own pointer: not nested
    assert nested_repositories(root) == ["a/.git", "b/.GIT", "c/.git"]
