"""Attacks on the night's network rules, as a task or a model would try them. Anything that tries to
reach the network runs inside a network namespace the test makes itself (`unshare -rn`), so nothing can
leave even if a guard failed; remotes are bare repositories in a temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.queue.claims import claim
from tests.conftest import CHECKS_FLOW, git, in_private_netns, pantheon


def _netns_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rn", "true"]).returncode == 0


needs_netns = pytest.mark.skipif(
    not _netns_works() and not os.environ.get("CI"),  # in CI a missing namespace fails loudly instead
    reason="unprivileged network namespaces (unshare -rn) are not available on this machine",
)


@needs_netns
def test_raw_socket_module_cannot_reach_test_net() -> None:
    # The attacker skips `socket` and uses the C module underneath it.
    result = in_private_netns(
        """
        import _socket
        from pantheon_git.night.policy import EgressBlocked, enter_night_mode
        enter_night_mode()
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(("192.0.2.1", 80))
            print("connected")
        except EgressBlocked:
            print("blocked connect")
        except OSError as exc:
            print("reached the kernel", exc.errno)
        try:
            _socket.getaddrinfo("example.com", 80)
            print("resolved")
        except EgressBlocked:
            print("blocked lookup")
        except OSError as exc:
            print("asked the resolver", exc)
        u = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            u.sendto(b"x", ("192.0.2.1", 53))
            print("sent")
        except EgressBlocked:
            print("blocked sendto")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["blocked connect", "blocked lookup", "blocked sendto"]


@needs_netns
def test_localhost_subdomains_never_reach_a_dns_server() -> None:
    # A name like llama.localhost must resolve to loopback here, not be sent to the resolver (which an
    # attacker's DNS could answer with any address).
    result = in_private_netns(
        """
        import socket
        from unittest import mock
        from pantheon_git.night.policy import enter_night_mode
        enter_night_mode()
        server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
        port = server.getsockname()[1]
        print(sorted({info[4][0] for info in socket.getaddrinfo("llama.localhost", port, socket.AF_INET)}))
        print(socket.gethostbyname("x.y.localhost"))
        socket.create_connection(("api.localhost", port), timeout=2).close()
        print("connected to loopback")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['127.0.0.1']", "127.0.0.1", "connected to loopback"]


# --- remotes at night ------------------------------------------------------------------------------------


def bare(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.git"
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


def remote_refs(path: Path) -> list[str]:
    return git(path, "for-each-ref", "--format=%(refname)").split()


def night_repo(repo_dir: Path, remotes: list[str], **urls: Path) -> None:
    """Pantheon with remotes named as given, `[night] remotes` set, and one model-free task t1 queued."""
    for name, url in urls.items():
        git(repo_dir, "remote", "add", name, str(url))
    init = pantheon(repo_dir, "init", "--remote", next(iter(urls))) if urls else pantheon(repo_dir, "init")
    assert init.returncode == 0, init.stderr
    (repo_dir / ".pantheon" / "flows" / "checks.toml").write_text(CHECKS_FLOW)
    config = repo_dir / ".pantheon" / "config.toml"
    text = config.read_text().replace("min_approvals = 2", "min_approvals = 0")
    config.write_text(text.replace("remotes = []", f"remotes = {json.dumps(remotes)}"))
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "pantheon")
    queued = pantheon(
        repo_dir, "queue", "--id", "t1", "--title", "t1", "--acceptance", "true", "--flow", "checks"
    )
    assert queued.returncode == 0, queued.stderr


def night_events(repo_dir: Path) -> list[dict[str, object]]:
    done = pantheon(repo_dir, "night", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_an_allowed_remote_not_named_origin_gets_the_claims(repo_dir: Path, tmp_path: Path) -> None:
    shared, origin = bare(tmp_path, "shared"), bare(tmp_path, "origin")
    night_repo(repo_dir, ["shared"], shared=shared, origin=origin)
    events = night_events(repo_dir)
    assert events[0] == {"event": "night", "claims": "remote shared", "elapsed_s": events[0]["elapsed_s"]}
    assert any(e.get("event") == "done" and e.get("outcome") == "completed" for e in events), events
    assert "refs/pantheon/claims/t1" in remote_refs(shared)
    assert remote_refs(origin) == []  # not allowed: nothing pushed there, whatever it is called


def test_with_no_remote_allowed_nothing_is_pushed_and_claims_stay_local(
    repo_dir: Path, tmp_path: Path
) -> None:
    origin = bare(tmp_path, "origin")
    night_repo(repo_dir, [], origin=origin)
    events = night_events(repo_dir)
    assert events[0]["claims"] == "claims local only"
    assert any(e.get("event") == "done" and e.get("outcome") == "completed" for e in events), events
    assert remote_refs(origin) == []
    assert git(repo_dir, "rev-parse", "--verify", "-q", "refs/pantheon/claims/t1").strip()
    report = pantheon(repo_dir, "report")
    assert "claims local only" in report.stdout, report.stdout + report.stderr


def test_a_failed_claim_push_is_reported_as_such(repo_dir: Path, tmp_path: Path) -> None:
    # The allowed remote is unreachable: that is not "claimed by another runner".
    night_repo(repo_dir, ["shared"], shared=tmp_path / "gone.git")
    events = night_events(repo_dir)
    skipped = [e for e in events if e.get("event") == "skipped"]
    assert len(skipped) == 1, events
    reason = str(skipped[0]["reason"])
    assert reason.startswith("claim t1: push to shared failed: ") and "another runner" not in reason
    assert not any(e.get("event") == "done" for e in events)


def test_a_remote_listed_in_config_that_does_not_exist_is_refused(repo_dir: Path) -> None:
    night_repo(repo_dir, ["nowhere"])
    refused = pantheon(repo_dir, "night")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "git pantheon night: .pantheon/config.toml: night.remotes: nowhere: "
        "no such remote (see `git remote -v`)"
    ), refused.stderr


def test_a_claim_rejected_because_the_ref_exists_is_another_runners(repo_dir: Path, tmp_path: Path) -> None:
    shared = bare(tmp_path, "shared")
    git(repo_dir, "remote", "add", "shared", str(shared))
    git(repo_dir, "push", "-q", "shared", "HEAD:refs/pantheon/claims/t1")  # someone else's claim
    repo = pygit2.Repository(str(repo_dir))
    # Read who holds it only after the push fails: the create-only lease is what decides.
    assert claim(repo, repo_dir, "t1", "shared") is None
    with pytest.raises(PantheonError, match="push to elsewhere failed"):
        git(repo_dir, "remote", "add", "elsewhere", str(tmp_path / "missing.git"))
        claim(repo, repo_dir, "t2", "elsewhere")
