"""Shared fixtures: real git repositories in temporary directories, hermetic git identity and config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pygit2
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# A flow that needs no model: the acceptance checks, then the gate (tests of the night's machinery).
CHECKS_FLOW = """\
[[nodes]]
id = "test"
agent = "acceptance"
[[nodes]]
id = "gate"
agent = "gate"
inputs = ["test"]
"""


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config leaks in; a fixed identity so commits work on a bare CI machine."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Night Tester\n\temail = night@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    # Keep the real cache (the assembled embedded model lives there) while HOME is replaced.
    monkeypatch.setenv("XDG_CACHE_HOME", os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    import pygit2

    # libgit2 caches its search path for the global config; point it at the fake HOME.
    pygit2.settings.search_path[pygit2.enums.ConfigLevel.GLOBAL] = str(home)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def oid_of(cwd: Path, name: str = "HEAD") -> pygit2.Oid:
    """The object `name` resolves to, as the store takes ids (git's hex is only for the command line)."""
    return pygit2.Oid(hex=git(cwd, "rev-parse", "--verify", name).strip())


def enable_signing(path: Path) -> None:
    """What `git pantheon init --signing-key` does: the runner's key under the git dir, configured, and
    its public key in .pantheon/allowed_signers (committed by the caller, so votes can count)."""
    import pygit2

    from pantheon_git.ops.configure import setup_signing

    setup_signing(pygit2.Repository(str(path)), path)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """A fresh repository with one commit on main, which allows the runner key configured here to sign."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("sample\n")
    enable_signing(path)
    git(path, "add", "README.md", ".pantheon/allowed_signers")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def unsigned_repo_dir(tmp_path: Path) -> Path:
    """A fresh repository with one commit on main and no signing set up at all."""
    path = tmp_path / "plain"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("sample\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


def pantheon(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "pantheon_git", *args], cwd=cwd, capture_output=True, text=True, input=input
    )


def in_private_netns(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python code in a new, empty network namespace of the test's own (loopback up)."""
    return subprocess.run(
        [
            "unshare",
            "-rn",
            "bash",
            "-c",
            'ip link set lo up 2>/dev/null; exec "$0" -c "$1"',
            sys.executable,
            textwrap.dedent(code),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def completions_server(reply: dict[str, Any], seen: list[dict[str, Any]] | None = None) -> HTTPServer:
    """An OpenAI-style completions server on loopback answering every POST with `reply`, each request's
    path and JSON body appended to `seen`; serving from a daemon thread (call `shutdown()` when done)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if seen is not None:
                seen.append({"path": self.path, **body})
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
