"""Night mode is local-only: refuse non-local runtimes, scrub cloud credentials, block egress.

Three layers, each enforced, none optional: (1) a flow whose agents use a non-local runtime is refused
before anything runs; (2) cloud credentials are removed from the runner's environment and so from every
tool's; (3) no socket of the runner may connect beyond loopback, and tool commands run in a new network
namespace (`unshare -rn`) where only a loopback interface exists. If no such sandbox can be made,
tools are refused rather than run unsandboxed. What was applied is recorded in every trace.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pantheon_git.errors import PantheonError
from pantheon_git.store.redact import is_secret_env, remember_secrets
from pantheon_git.tools.sandbox import is_credential, sandbox_prefix


def refuse_non_local(runtimes: Iterable[tuple[str, str, bool]]) -> None:
    """Refuse, naming each one, if any (agent, model, is_local) is not local."""
    remote = [f"{agent} (model {model})" for agent, model, local in runtimes if not local]
    if remote:
        raise PantheonError(
            "night mode is local-only; these agents use a non-local runtime: " + ", ".join(remote)
        )


# --- in-process egress block -------------------------------------------------------------------------


class EgressBlocked(PermissionError):
    """A connection beyond loopback was attempted in night mode."""


def is_local_address(family: int, address: Any) -> bool:
    """Loopback IPs and unix sockets are local; everything else is egress."""
    if family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return host == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_local_name(host: Any) -> bool:
    """Whether resolving `host` needs no DNS server: no host, localhost, or an IP literal."""
    if host is None or host in ("", b""):
        return True
    name = (host.decode() if isinstance(host, bytes) else str(host)).rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return True  # a literal resolves without a query; connecting to it is checked on its own


_ORIGINAL: dict[str, Any] = {}
_RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")


def block_egress() -> None:
    """From now on, any socket of this process reaching beyond loopback raises EgressBlocked.

    Connections and datagrams to non-loopback addresses are refused, and so are name lookups that
    would ask a DNS server (a query is itself traffic off the machine).
    """
    if _ORIGINAL:
        return
    cls = socket.socket
    _ORIGINAL.update(connect=cls.connect, connect_ex=cls.connect_ex, sendto=cls.sendto)
    if hasattr(cls, "sendmsg"):
        _ORIGINAL["sendmsg"] = cls.sendmsg
    resolvers = {name: getattr(socket, name) for name in _RESOLVERS}

    def check(sock: socket.socket, address: Any) -> None:
        if not is_local_address(sock.family, address):
            raise EgressBlocked(f"night mode is local-only: connection to {address!r} blocked")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return _ORIGINAL["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return _ORIGINAL["connect_ex"](self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        check(self, args[-1])
        return _ORIGINAL["sendto"](self, data, *args)

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
        if len(args) >= 3 and args[2] is not None:  # (ancdata, flags, address)
            check(self, args[2])
        return _ORIGINAL["sendmsg"](self, buffers, *args)

    def guarded(name: str) -> Any:
        resolve = resolvers[name]

        @functools.wraps(resolve)
        def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_local_name(host):
                raise EgressBlocked(f"night mode is local-only: name lookup of {host!r} blocked")
            return resolve(host, *args, **kwargs)

        return lookup

    cls.connect = connect  # type: ignore[method-assign]
    cls.connect_ex = connect_ex  # type: ignore[method-assign]
    cls.sendto = sendto  # type: ignore[method-assign,assignment]
    if "sendmsg" in _ORIGINAL:
        cls.sendmsg = sendmsg  # type: ignore[method-assign]
    for name in _RESOLVERS:
        _ORIGINAL[name] = resolvers[name]
        setattr(socket, name, guarded(name))


def unblock_egress() -> None:
    """Undo block_egress (for tests and for day-mode commands in the same process)."""
    for name, original in _ORIGINAL.items():
        setattr(socket if name in _RESOLVERS else socket.socket, name, original)
    _ORIGINAL.clear()


@contextmanager
def egress_blocked() -> Iterator[None]:
    """block_egress for the duration of a `with` block (undone on exit only if it installed it)."""
    installed = not _ORIGINAL
    block_egress()
    try:
        yield
    finally:
        if installed:
            unblock_egress()


def is_runner_credential(name: str, value: str = "") -> bool:
    """Whether the runner drops `name`: a cloud/forge credential by name, or any credential-like name
    (GITHUB_PAT, PGPASSWORD, KAGGLE_KEY, SSH_AUTH_SOCK, *_DSN, …) or URL value with a password in it."""
    return is_credential(name) or is_secret_env(name, value)


def scrub_env(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the environment without credentials, the names removed, sorted), by name pattern and value."""
    removed = sorted(name for name, value in env.items() if is_runner_credential(name, value))
    return {name: value for name, value in env.items() if name not in removed}, removed


def enter_night_mode() -> dict[str, Any]:
    """Scrub this process's environment and block its egress; returns the record every trace carries.

    The scrubbed values are remembered first, so any copy of them that still reaches text bound for
    git (a file a tool read, a log line) is redacted by value.
    """
    _clean, removed = scrub_env(os.environ)
    # Values redacted from now on: those that are secrets (not AWS_REGION's "us-east-1", removed by prefix).
    remember_secrets(os.environ[name] for name in removed if is_secret_env(name, os.environ[name]))
    for name in removed:
        del os.environ[name]
    block_egress()
    return {
        "local_only": True,
        "credentials_removed": removed,
        "egress": "blocked beyond loopback (in-process)",
        "tool_sandbox": " ".join(sandbox_prefix() or ("none: tools refused",)),
    }
