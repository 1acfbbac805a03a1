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
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pantheon_git.errors import PantheonError

# Credentials of cloud model providers, clouds and forges. Names are matched exactly, by prefix or by
# suffix, so provider-specific variants (MISTRAL_API_KEY, …) go too.
CREDENTIAL_NAMES = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HUGGINGFACEHUB_API_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "GITLAB_TOKEN",
        "CI_JOB_TOKEN",
        "NPM_TOKEN",
        "OPENROUTER_API_KEY",
        "COHERE_API_KEY",
        "MISTRAL_API_KEY",
        "GROQ_API_KEY",
        "GEMINI_API_KEY",
        "REPLICATE_API_TOKEN",
        "TOGETHER_API_KEY",
        "DEEPSEEK_API_KEY",
        "XAI_API_KEY",
        "PERPLEXITY_API_KEY",
    }
)
CREDENTIAL_PREFIXES = (
    "AWS_",
    "GOOGLE_",
    "GCP_",
    "GCLOUD_",
    "CLOUDSDK_",
    "AZURE_",
    "OPENAI_",
    "ANTHROPIC_",
    "VERTEX_",
    "BEDROCK_",
    "DIGITALOCEAN_",
    "CLOUDFLARE_",
)
CREDENTIAL_SUFFIXES = (
    "_API_KEY",
    "_APIKEY",
    "_TOKEN",
    "_SECRET",
    "_SECRET_KEY",
    "_ACCESS_KEY",
    "_ACCESS_KEY_ID",
    "_PASSWORD",
    "_CREDENTIALS",
)


def is_credential(name: str) -> bool:
    upper = name.upper()
    return (
        upper in CREDENTIAL_NAMES
        or upper.startswith(CREDENTIAL_PREFIXES)
        or upper.endswith(CREDENTIAL_SUFFIXES)
    )


def scrub_env(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the environment without credentials, the names removed, sorted)."""
    removed = sorted(name for name in env if is_credential(name))
    return {name: value for name, value in env.items() if name not in removed}, removed


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


# --- the tool sandbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletedRun:
    exit_code: int
    output_tail: str
    timed_out: bool
    duration_s: float


# Preferred: also a private PID namespace, so a tool's processes die with it even if they left its
# process group (setsid, daemons); unshare kills its child on exit and the kernel the namespace.
_UNSHARE_CONTAINED = ["unshare", "-rn", "--pid", "--fork", "--kill-child"]
_UNSHARE_NETWORK = ["unshare", "-rn"]


@functools.cache
def sandbox_prefix() -> tuple[str, ...] | None:
    """The `unshare` command line tools run under here, or None if no network sandbox can be made."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (_UNSHARE_CONTAINED, _UNSHARE_NETWORK):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return tuple(prefix)
    return None


def sandbox_available() -> bool:
    """Whether this machine can make a private network namespace (`unshare -rn`) for tools."""
    return sandbox_prefix() is not None


def run_sandboxed(
    command: str, cwd: Path, env: Mapping[str, str], timeout_s: float, *, tail_chars: int = 4000
) -> CompletedRun:
    """Run a shell command without network or credentials, its processes killed together at the end."""
    prefix = sandbox_prefix()
    if prefix is None:
        raise PantheonError(
            "night mode refuses to run tools: no network sandbox here (`unshare -rn` failed; "
            "enable unprivileged user namespaces)"
        )
    clean_env, _removed = scrub_env(env)  # also when a caller passes its own environment
    # Only loopback exists in the new namespace; bring it up so local test servers still work.
    inner = 'ip link set lo up 2>/dev/null; exec bash -c "$0"'
    argv = [*prefix, "--", "bash", "-c", inner, command]
    return run_in_group(argv, cwd, clean_env, timeout_s, tail_chars=tail_chars)


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group may already be gone
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: Path, chars: int) -> str:
    # Read only the end: a chatty test run can write far more than anyone wants in a trace.
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - chars * 4))
        return handle.read().decode("utf-8", "replace")[-chars:]


def run_in_group(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float, *, tail_chars: int = 4000
) -> CompletedRun:
    """Run argv in a new session; when it ends or times out, kill its whole process group.

    Output goes to a temporary file, not a pipe, so a background process that keeps the output open
    cannot make the caller wait past the command's own end.
    """
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pantheon-run-") as scratch:
        log = Path(scratch) / "output"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        # Also after a normal exit: what the command left running in its group ends with it.
        _kill_group(proc.pid)
        proc.wait()
        output = _tail(log, tail_chars)
    return CompletedRun(
        124 if timed_out else proc.returncode,
        output,
        timed_out,
        round(time.monotonic() - start, 3),
    )


def enter_night_mode() -> dict[str, Any]:
    """Scrub this process's environment and block its egress; returns the record every trace carries."""
    _clean, removed = scrub_env(os.environ)
    for name in removed:
        del os.environ[name]
    block_egress()
    return {
        "local_only": True,
        "credentials_removed": removed,
        "egress": "blocked beyond loopback (in-process)",
        "tool_sandbox": " ".join(sandbox_prefix() or ("none: tools refused",)),
    }
