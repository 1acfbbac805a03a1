"""Attacks on the night's network rules, as a task or a model would try them. Anything that tries to
reach the network runs inside a network namespace the test makes itself (`unshare -rn`), so nothing can
leave even if a guard failed; remotes are bare repositories in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest


def _netns_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rn", "true"]).returncode == 0


needs_netns = pytest.mark.skipif(
    not _netns_works() and not os.environ.get("CI"),  # in CI a missing namespace fails loudly instead
    reason="unprivileged network namespaces (unshare -rn) are not available on this machine",
)


def in_private_netns(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a new, empty network namespace of this test's own (loopback up)."""
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
        timeout=120,
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
