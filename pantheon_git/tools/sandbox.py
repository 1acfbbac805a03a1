"""Every command a night runs (acceptance checks, the model's `run`) runs here: no network, no credentials.

The environment is scrubbed of credentials; the command runs in a new network namespace with only
loopback, in its own process group that is killed whole when it ends or times out. Where no such
sandbox can be made, commands are refused, never run unsandboxed.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

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
