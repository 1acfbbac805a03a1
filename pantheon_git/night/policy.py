"""Night mode is local-only: refuse non-local runtimes, scrub cloud credentials, block egress.

Three layers, each enforced, none optional: (1) a flow whose agents use a non-local runtime is refused
before anything runs; (2) cloud credentials are removed from the runner's environment and so from every
tool's; (3) no socket of the runner may connect beyond loopback, except to the model servers a person
allowlisted (`[night] model_hosts`: exactly those address:port pairs), and tool commands run in a new
network namespace (bubblewrap, see tools/sandbox.py) where only a loopback interface exists, whatever the
allowlist says. If no such sandbox can be made, tools are refused rather than run unsandboxed. What was
applied is recorded in every trace.
"""

from __future__ import annotations

import _socket
import functools
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from pantheon_git.errors import PantheonError
from pantheon_git.schema.hosts import ModelHost
from pantheon_git.store.redact import is_secret_env, remember_secrets
from pantheon_git.tools.sandbox import sandbox_description, scrub_env


def refuse_non_local(runtimes: Iterable[tuple[str, str, bool]]) -> None:
    """Refuse, naming each one, if any (agent, model, is_local) is not local."""
    remote = [f"{agent} (model {model})" for agent, model, local in runtimes if not local]
    if remote:
        raise PantheonError(
            "night mode is local-only; these agents use a non-local runtime: "
            + ", ".join(remote)
            + " (a model server of the team's own network counts once its host:port is in"
            " [night] model_hosts of .pantheon/config.toml)"
        )


# --- in-process egress block -------------------------------------------------------------------------


class EgressBlocked(PermissionError):
    """A connection beyond loopback was attempted in night mode."""


def is_local_address(family: int, address: Any, allowed: frozenset[tuple[str, int]] = frozenset()) -> bool:
    """Loopback IPs, unix sockets and the `allowed` (address, port) pairs are local; all else is egress."""
    if family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return _localhost_name(host)  # connect() replaces the name with loopback itself
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return True
    port = address[1] if isinstance(address, tuple) and len(address) > 1 else None
    return (str(ip), port) in allowed


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
# The (address, port) pairs of the allowlisted model servers, set by block_egress.
_ALLOWED: set[tuple[str, int]] = set()
_RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")
_SOCKET_METHODS = ("connect", "connect_ex", "sendto", "sendmsg")


def _localhost_name(host: Any) -> bool:
    """`localhost` and `*.localhost` (RFC 6761): answered here as loopback, never asked of a resolver."""
    if not isinstance(host, str | bytes) or host in ("", b""):
        return False
    name = (host.decode(errors="replace") if isinstance(host, bytes) else host).rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _loopback_for(family: int) -> str:
    return "::1" if family == getattr(socket, "AF_INET6", None) else "127.0.0.1"


def _checked_address(sock: Any, address: Any) -> Any:
    """`address` with a *.localhost name replaced by loopback; EgressBlocked if it leaves loopback."""
    if isinstance(address, tuple) and address and _localhost_name(address[0]):
        address = (_loopback_for(sock.family), *address[1:])
    if not is_local_address(sock.family, address, frozenset(_ALLOWED)):
        raise EgressBlocked(f"night mode is local-only: connection to {address!r} blocked")
    return address


def _guarded_methods(originals: dict[str, Any]) -> dict[str, Any]:
    """connect/connect_ex/sendto/sendmsg that check the destination, then call `originals` (and return
    what they return)."""

    def connect(self: Any, address: Any) -> Any:
        return originals["connect"](self, _checked_address(self, address))

    def connect_ex(self: Any, address: Any) -> Any:
        return originals["connect_ex"](self, _checked_address(self, address))

    def sendto(self: Any, data: bytes, *args: Any) -> Any:
        return originals["sendto"](self, data, *args[:-1], _checked_address(self, args[-1]))

    def sendmsg(self: Any, buffers: Any, *args: Any) -> Any:
        if len(args) >= 3 and args[2] is not None:  # (ancdata, flags, address)
            args = (*args[:2], _checked_address(self, args[2]), *args[3:])
        return originals["sendmsg"](self, buffers, *args)

    made = {"connect": connect, "connect_ex": connect_ex, "sendto": sendto, "sendmsg": sendmsg}
    return {name: made[name] for name in originals}


def _guarded_resolver(name: str, resolve: Any) -> Any:
    @functools.wraps(resolve)
    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if _localhost_name(host):
            if name == "getaddrinfo":
                family = args[1] if len(args) > 1 else kwargs.get("family", 0)
                return resolve(_loopback_for(family), *args, **kwargs)
            if name == "gethostbyname":
                return "127.0.0.1"
            return ("localhost", [], ["127.0.0.1"])
        if not is_local_name(host):
            raise EgressBlocked(f"night mode is local-only: name lookup of {host!r} blocked")
        return resolve(host, *args, **kwargs)

    return lookup


def block_egress(hosts: Iterable[ModelHost] = ()) -> None:
    """From now on, any socket of this process reaching beyond loopback raises EgressBlocked, except a
    connection to one of `hosts` (its pinned address and port, nothing else on that machine).

    Connections and datagrams to non-loopback addresses are refused, and so are name lookups that
    would ask a DNS server (a query is itself traffic off the machine); `localhost` and `*.localhost`
    are answered here with loopback. Both `socket` and the C module `_socket` under it are guarded:
    `_socket.socket` becomes a checking subclass and its resolvers are wrapped too.
    """
    _ALLOWED.update((host.address, host.port) for host in hosts)
    if _ORIGINAL:
        return
    cls = socket.socket
    methods = {name: getattr(cls, name) for name in _SOCKET_METHODS if hasattr(cls, name)}
    _ORIGINAL["socket.socket"] = methods
    for name, method in _guarded_methods(methods).items():
        setattr(cls, name, method)
    raw = _socket.socket
    _ORIGINAL["_socket.socket"] = raw
    raw_methods = {name: getattr(raw, name) for name in _SOCKET_METHODS if hasattr(raw, name)}
    guarded = type("socket", (raw,), {"__module__": "_socket", **_guarded_methods(raw_methods)})
    guarded_raw = cast(type[_socket.socket], guarded)  # a subclass of `raw`, made at run time
    _socket.socket = guarded_raw  # type: ignore[misc]  # replacing a class is the point: egress is blocked
    _socket.SocketType = guarded_raw
    for module in (socket, _socket):
        saved = {name: getattr(module, name) for name in _RESOLVERS if hasattr(module, name)}
        _ORIGINAL[module.__name__] = saved
        for name, resolve in saved.items():
            setattr(module, name, _guarded_resolver(name, resolve))


def unblock_egress() -> None:
    """Undo block_egress (for tests and for day-mode commands in the same process)."""
    if not _ORIGINAL:
        return
    for name, original in _ORIGINAL["socket.socket"].items():
        setattr(socket.socket, name, original)
    _socket.socket = _ORIGINAL["_socket.socket"]  # type: ignore[misc]  # the class put back
    _socket.SocketType = _ORIGINAL["_socket.socket"]
    for module in (socket, _socket):
        for name, original in _ORIGINAL[module.__name__].items():
            setattr(module, name, original)
    _ORIGINAL.clear()
    _ALLOWED.clear()


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


def enter_night_mode(model_hosts: tuple[ModelHost, ...] = ()) -> dict[str, Any]:
    """Scrub this process's environment and block its egress (but to `model_hosts`); returns the record
    every trace carries.

    The scrubbed values are remembered first, so any copy of them that still reaches text bound for
    git (a file a tool read, a log line) is redacted by value.
    """
    _clean, removed = scrub_env(os.environ)
    # Values redacted from now on: those that are secrets (not AWS_REGION's "us-east-1", removed by prefix).
    remember_secrets(os.environ[name] for name in removed if is_secret_env(name, os.environ[name]))
    for name in removed:
        del os.environ[name]
    block_egress(model_hosts)
    egress = "blocked beyond loopback (in-process)"
    if model_hosts:
        listed = ", ".join(host.label() for host in model_hosts)
        egress = f"blocked beyond loopback and the model hosts {listed} (in-process)"
    return {
        "local_only": True,
        "credentials_removed": removed,
        "egress": egress,
        "tool_sandbox": sandbox_description(),
    }
