"""`.pantheon/config.toml`: the night's settings, the gate policy, the sync remote. One schema."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pantheon_git.schema.document import parse_toml, read_text, validate
from pantheon_git.schema.hosts import ModelHost, model_hosts
from pantheon_git.store.local_files import path_problem


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NightConfig(_Section):
    max_tasks: int = Field(default=20, ge=1)
    # A claim whose runner sent no heartbeat for this long may be taken over (`run --take-over`).
    claim_expiry_minutes: int = Field(default=120, ge=1)
    # The only remotes a night may fetch from and push claims to, by name (the first one that exists is
    # the claims remote). Empty: the night talks to no remote and claims stay local to this clone.
    remotes: list[str] = Field(default_factory=list)
    # Best-of-N: attempts per task per night, stopping at the first that passes the gate.
    samples: int = Field(default=1, ge=1, le=64)
    # Attempts after the first sample at this temperature (where a node sets none): a second greedy
    # attempt would repeat the first one token for token.
    sample_temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    # The team's own model servers (host:port) an openai-compatible model may use at night, beyond
    # loopback: the egress guard lets exactly these through (schema/hosts.py). A name needs its address
    # pinned in [night.host_addresses]; public addresses and hosted model APIs are refused.
    host_addresses: dict[str, str] = Field(default_factory=dict)  # (read before model_hosts)
    model_hosts: list[str] = Field(default_factory=list)
    # Files git ignores that the tests need (a generated version.py, a built extension), copied from this
    # checkout into every night worktree, never committed (store/local_files.py). The night's commands
    # and model can read them: list no secrets.
    worktree_files: list[str] = Field(default_factory=list)

    @field_validator("worktree_files")
    @classmethod
    def _worktree_files(cls, paths: list[str]) -> list[str]:
        for path in paths:
            problem = path_problem(path)
            if problem is not None:
                raise ValueError(f"{path!r}: {problem}")
        return paths

    @field_validator("model_hosts")
    @classmethod
    def _model_hosts(cls, entries: list[str], info: ValidationInfo) -> list[str]:
        # A bad entry is refused when the file is read (one line, nothing run), not at the first call.
        model_hosts(entries, info.data.get("host_addresses", {}))
        return entries

    def allowed_model_hosts(self) -> tuple[ModelHost, ...]:
        return model_hosts(self.model_hosts, self.host_addresses)

    @field_validator("remotes")
    @classmethod
    def _remote_names(cls, names: list[str]) -> list[str]:
        for name in names:
            # A name starting with '-' would be read as an option by `git push`/`git fetch`.
            if not name or name.startswith("-") or any(c.isspace() or c in ":\\" for c in name):
                raise ValueError(f"{name!r} is not a remote name")
        return names


class GatePolicy(_Section):
    require_acceptance: bool = True
    min_approvals: int = Field(default=2, ge=0)
    any_reject_blocks: bool = True
    # Approve only when at least one acceptance check failed on the base commit and passes now: a check
    # that passes without any change does not test the task.
    require_fixed_check: bool = True
    # The `size` check (flow node `agent = "checks"`) rejects a change larger than this (lines added plus
    # removed, files; the acceptance checks' byte code and caches not counted).
    max_changed_lines: int = Field(default=400, ge=1)
    max_changed_files: int = Field(default=12, ge=1)
    # A model reviewer's vote counts (approve or reject) only when its measured balanced accuracy on
    # labelled diffs, recorded in the evals notes, is above this; an uncalibrated one is shown, not
    # counted. 0: every model reviewer counts, calibrated or not.
    min_reviewer_accuracy: float = Field(default=0.7, ge=0.0, le=1.0)


class SyncConfig(_Section):
    remote: str = "origin"
    # Trace notes and their payloads hold prompts, tool output and test logs: they stay on this machine
    # unless this says push them (votes, evals, run branches and the queue are always pushed).
    push_traces: bool = False


class HooksConfig(_Section):
    # Branches the pre-push hook guards; empty: the repository's main branch (origin/HEAD, main, master).
    protected: list[str] = Field(default_factory=list)


# What decides what runs and who decides: the gate's config, flows, agents (Python the runner imports),
# allowed signers; git's hooks and attributes (filters), submodules, pre-commit and CI. A run that
# changes one of these waits for a person's signed approval (review/trust.py).
ALWAYS_TRUSTED = ".pantheon/"  # held whatever the list says: the list itself lives there
DEFAULT_TRUST_PATHS = (
    ALWAYS_TRUSTED,
    "hooks/",
    ".githooks/",
    ".husky/",
    ".gitattributes",
    ".gitmodules",
    ".pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
    ".github/",
    ".gitlab-ci.yml",
    ".gitlab/",
    ".ci/",
    ".circleci/",
    ".travis.yml",
    "Jenkinsfile",
    "azure-pipelines.yml",
    ".azure-pipelines/",
    "bitbucket-pipelines.yml",
    ".buildkite/",
    ".drone.yml",
    ".woodpecker.yml",
    ".woodpecker/",
    ".forgejo/",
    ".gitea/",
    "appveyor.yml",
    ".appveyor.yml",
)


class TrustConfig(_Section):
    # Paths a run may change only with a person's signed approval. A name with no `/` (`.gitattributes`,
    # `*.tf`) matches at any depth; one with a `/` is from the top (`hooks/`: the directory and all in
    # it). `.pantheon/` is always held. Globs as fnmatch; matched case-insensitively (a checkout on a
    # case-insensitive file system writes `.GitHub/` into `.github/`).
    paths: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUST_PATHS))

    @field_validator("paths")
    @classmethod
    def _relative(cls, paths: list[str]) -> list[str]:
        for path in paths:
            parts = path.rstrip("/").split("/")
            if not path.strip() or path.startswith("/") or "\\" in path or ".." in parts or "" in parts:
                raise ValueError(f"{path!r} is not a path inside the repository (relative, no '..')")
        return paths


class SandboxConfig(_Section):
    # Limits on every command the night runs in its sandbox (tools/sandbox.py). The defaults are far above
    # what a normal test suite needs; a command that reaches one fails, the limit named in its output.
    # Memory: writable memory per process (RLIMIT_DATA), in MiB.
    memory_mb: int = Field(default=8192, ge=16)
    # Processes and threads at once in one sandbox (RLIMIT_NPROC; the kernel does not apply it to root).
    processes: int = Field(default=4096, ge=8)
    # The largest file a command may write, in MiB (RLIMIT_FSIZE); no core dumps.
    file_size_mb: int = Field(default=4096, ge=1)
    # Output (stdout and stderr) a command may print, in MiB; only its tail is kept, in memory.
    output_mb: int = Field(default=256, ge=1)
    # Size of each of the sandbox's tmpfs mounts (/tmp, /var/tmp, /run, $HOME), in MiB.
    tmpfs_mb: int = Field(default=1024, ge=1)


class Config(_Section):
    night: NightConfig = Field(default_factory=NightConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    gate: GatePolicy = Field(default_factory=GatePolicy)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)


CONFIG_SOURCE = ".pantheon/config.toml"


def parse_config(text: str, source: str = CONFIG_SOURCE) -> Config:
    return validate(Config, parse_toml(text, source), source, text)


def load_config(root: Path) -> Config:
    path = root / CONFIG_SOURCE
    if not path.is_file():
        return Config()
    return parse_config(read_text(path, CONFIG_SOURCE))
