"""What a night needs, checked one thing at a time: each check is a Finding (ok, warn or fail) whose
line says what to do. `git pantheon doctor` prints them; a night can pass only if none fails.

A failing check is one that makes every night fail or every gate reject (no sandbox, a model that does
not decode, no signing, a remote the config names that is not here, a full disk); a warning is what a
person should know but a night survives (no man page, no nightly schedule, a GPU asked for that this
build cannot use). Each check reads the machine or the repository and never writes anything.
"""

from __future__ import annotations

import enum
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2

from pantheon_git.errors import PantheonError, shown

# Below this, a night's worktrees, logs and notes may not fit (a worktree per task, logs per check).
MIN_FREE_BYTES = 1 << 30
LOW_FREE_BYTES = 5 << 30


class Health(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    name: str  # what was checked: "sandbox", "models.default", "signing", ...
    health: Health
    detail: str  # ok: what was found; warn/fail: what to do

    def line(self) -> str:
        return f"{self.health.value:<4} {self.name}: {shown(self.detail)}"


def night_can_pass(findings: list[Finding]) -> bool:
    return all(finding.health is not Health.FAIL for finding in findings)


def check_sandbox() -> Finding:
    from pantheon_git.tools.sandbox import sandbox_description, sandbox_problem

    problem = sandbox_problem()
    if problem is not None:
        return Finding("sandbox", Health.FAIL, problem)
    return Finding("sandbox", Health.OK, sandbox_description())


def check_models(root: Path) -> list[Finding]:
    """Each in-process model of models.toml loads and decodes here (probed in a child, cached per build);
    GPU offload where the entry asks for GPU layers."""
    import importlib.util

    from pantheon_git.runtime.bundled import model_file
    from pantheon_git.runtime.probe import probe_cached
    from pantheon_git.schema.models import load_models

    try:
        models = load_models(root)
    except PantheonError as error:
        return [Finding("models", Health.FAIL, str(error))]
    findings = []
    for name, config in models.items():
        label = f"models.{name}"
        if not config.in_process:
            findings.append(
                Finding(label, Health.OK, f"served at {config.url} (not probed: a server of yours)")
            )
            continue
        if importlib.util.find_spec("llama_cpp") is None:
            findings.append(
                Finding(label, Health.FAIL, "llama-cpp-python is not installed: run `make install`")
            )
            continue
        try:
            path, sha = model_file(name, config)
        except PantheonError as error:
            findings.append(Finding(label, Health.FAIL, str(error).removeprefix(f"{label}.")))
            continue
        result = probe_cached(path, sha, config.n_gpu_layers)
        if not result.runs:
            findings.append(Finding(label, Health.FAIL, result.detail))
            continue
        where = "offloaded to the GPU" if result.gpu_offload and config.n_gpu_layers != 0 else "on the CPU"
        findings.append(Finding(label, Health.OK, f"{result.detail}, {where}"))
        if config.n_gpu_layers > 0 and not result.gpu_offload:
            findings.append(
                Finding(
                    f"{label}.n_gpu_layers",
                    Health.WARN,
                    f"{config.n_gpu_layers} layers asked for the GPU, but this llama.cpp build has no GPU "
                    "offload: it runs on the CPU (rebuild with `make install GPU=cuda`)",
                )
            )
    return findings


def check_signing(repo: pygit2.Repository, base: str | None = None) -> Finding:
    """The runner signs its steps and votes with a key whose public half is committed on the base branch
    (.pantheon/allowed_signers); without that no vote counts and every gate rejects."""
    from pantheon_git.store.signing import (
        ALLOWED_SIGNERS,
        SETUP_HINT,
        allowed_signers,
        parse_allowed_signers,
        signing_key,
        trusted_tip,
    )

    key = signing_key(repo)
    if key is None:
        return Finding("signing", Health.FAIL, f"no signing key configured: {SETUP_HINT}")
    literal = key.removeprefix("key::")
    public_text = literal if " " in literal else _read(Path(f"{literal}.pub"))
    if public_text is None:
        return Finding("signing", Health.FAIL, f"signing key {key}: no {key}.pub beside it: {SETUP_HINT}")
    tip = trusted_tip(repo, base)
    branch = base or _branch_of(repo, tip)
    signers = allowed_signers(repo, base)
    if not signers:
        where = repo.workdir and Path(repo.workdir, ALLOWED_SIGNERS).is_file()
        todo = f"commit {ALLOWED_SIGNERS} on {branch}" if where else SETUP_HINT
        return Finding("signing", Health.FAIL, f"no allowed signers committed on {branch}: {todo}")
    public = parse_allowed_signers(f"runner {public_text.strip()}\n").keys
    if not set(public) & set(signers.keys):
        return Finding(
            "signing",
            Health.FAIL,
            f"the runner's key {key} is not in {ALLOWED_SIGNERS} on {branch}: its votes would not count "
            f"({SETUP_HINT})",
        )
    return Finding("signing", Health.OK, f"key {key}, allowed in {ALLOWED_SIGNERS} on {branch}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _branch_of(repo: pygit2.Repository, tip: pygit2.Oid | None) -> str:
    for name in ("main", "master"):
        ref = repo.references.get(f"refs/heads/{name}")
        if ref is not None and (tip is None or ref.peel(pygit2.Commit).id == tip):
            return name
    return "the base branch"


def check_tool(name: str, needed_for: str, *, required: bool, install: str) -> Finding:
    """A program on PATH: `ssh-keygen` (signing, required), `man` (help pages, a warning)."""
    found = shutil.which(name)
    if found is not None:
        return Finding(name, Health.OK, found)
    return Finding(name, Health.FAIL if required else Health.WARN, f"not found; {needed_for}: {install}")


def check_remotes(repo: pygit2.Repository, root: Path) -> Finding:
    """The remotes `[night] remotes` names exist here (the night refuses to start otherwise)."""
    from pantheon_git.schema.config import CONFIG_SOURCE, load_config

    try:
        wanted = load_config(root).night.remotes
    except PantheonError as error:
        return Finding("remotes", Health.FAIL, str(error))
    existing = {remote.name for remote in repo.remotes}
    missing = [name for name in wanted if name not in existing]
    if missing:
        return Finding(
            "remotes",
            Health.FAIL,
            f"{CONFIG_SOURCE}: night.remotes names {', '.join(missing)}, not a remote here "
            "(add it with `git remote add`, or drop it from the list)",
        )
    if not wanted:
        return Finding("remotes", Health.OK, "none in night.remotes: claims stay local")
    return Finding("remotes", Health.OK, f"claims go to {wanted[0]}")


def check_worktree_files(root: Path) -> Finding:
    """Each file `[night] worktree_files` lists can be copied from this checkout: a regular file reached
    through no symlink (a warning otherwise: the night copies the others and its tests may fail)."""
    from pantheon_git.schema.config import CONFIG_SOURCE, load_config
    from pantheon_git.store.files import UnreadableFile
    from pantheon_git.store.local_files import read_beneath

    try:
        listed = load_config(root).night.worktree_files
    except PantheonError as error:
        return Finding("worktree-files", Health.FAIL, str(error))
    if not listed:
        return Finding("worktree-files", Health.OK, "none listed: worktrees hold only committed files")
    problems = []
    for path in listed:
        try:
            read_beneath(root, path)
        except UnreadableFile as refused:
            problems.append(f"{path}: {refused.strerror or refused}")
    if problems:
        detail = "; ".join(problems)
        return Finding(
            "worktree-files",
            Health.WARN,
            f"{CONFIG_SOURCE}: night.worktree_files: {detail} (not copied into night worktrees: build "
            "or install first, or drop it from the list)",
        )
    return Finding("worktree-files", Health.OK, f"{len(listed)} copied into each night worktree")


def check_disk(path: Path, minimum: int = MIN_FREE_BYTES, low: int = LOW_FREE_BYTES) -> Finding:
    free = shutil.disk_usage(path).free
    gib = f"{free / (1 << 30):.1f} GiB free under {path}"
    if free < minimum:
        return Finding("disk", Health.FAIL, f"{gib}: a night needs {minimum / (1 << 30):.1f} GiB; free some")
    if free < low:
        return Finding("disk", Health.WARN, f"{gib}: a night with many tasks may run out")
    return Finding("disk", Health.OK, gib)


def check_schedule(root: Path) -> Finding:
    """A crontab line or a systemd user timer starts this repository's night (a warning if neither)."""
    from pantheon_git.ops.schedule import our_lines, read_crontab, systemd_dir, unit_name

    timer = systemd_dir() / f"{unit_name(root)}.timer"
    if timer.is_file():
        return Finding("schedule", Health.OK, f"systemd timer {timer}")
    try:
        lines = our_lines(read_crontab(), root)
    except PantheonError as error:
        lines, why = [], f" ({error})"
    else:
        why = ""
    if lines:
        return Finding("schedule", Health.OK, lines[0])
    return Finding(
        "schedule",
        Health.WARN,
        f"no nightly run scheduled{why}: `git pantheon schedule install [--at HH:MM]`, or run "
        "`git pantheon night` yourself",
    )


def _head_texts(repo: pygit2.Repository, names: tuple[str, ...]) -> tuple[dict[str, str], frozenset[str]]:
    """(name -> text of those files at HEAD, every path at HEAD): what a night's base commit holds, which
    is what the checks read (never the checkout's uncommitted files, nor its untracked .venv)."""
    from pantheon_git.review.changes import base_tree, blob_text, tree_paths

    tree = base_tree(repo, "HEAD")
    texts = {name: blob_text(repo, tree, name) for name in names}
    return {name: text for name, text in texts.items() if text is not None}, tree_paths(tree)


def sandbox_programs(root: Path, names: list[str]) -> dict[str, str | None]:
    """name -> where a sandboxed command finds that program (None: not found), asked inside the sandbox
    itself where there is one (it mounts PATH's tool directories, not every one), else on its PATH."""
    from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available, sandbox_env

    if not names:
        return {}
    if not sandbox_available():
        path = sandbox_env(os.environ, "/home/pantheon")["PATH"]
        return {name: shutil.which(name, path=path) for name in names}
    asks = "; ".join(f"printf '%s\\n' \"$(command -v {shlex.quote(name)})\"" for name in names)
    done = run_sandboxed(asks, root, dict(os.environ), 30.0)
    lines = done.output_tail.splitlines() if done.exit_code == 0 and not done.timed_out else []
    found = lines[-len(names) :] if len(lines) >= len(names) else [""] * len(names)
    return {name: where.strip() or None for name, where in zip(names, found, strict=True)}


def check_lint_tools(repo: pygit2.Repository, root: Path) -> list[Finding]:
    """What the `checks` step's lint reviewer can run here, one line each: ruff where HEAD configures it,
    and how many of HEAD's pre-commit hooks run offline (local system/script hooks whose program the
    sandbox finds) against those that need an environment installed and are not run."""
    from pantheon_git.review.checks import RUFF_FILES, ruff_config
    from pantheon_git.review.precommit import (
        CONFIG,
        NEEDS_ENVIRONMENT,
        ConfigProblem,
        hook_executable,
        hook_program,
        read_config,
    )

    texts, paths = _head_texts(repo, (*RUFF_FILES, "pyproject.toml", CONFIG))
    config = ruff_config(texts)
    problem: str | None = None
    try:
        hooks = read_config(texts[CONFIG]) if CONFIG in texts else None
    except ConfigProblem as error:
        hooks, problem = None, str(error)
    runnable = hooks.runnable if hooks else ()
    # A program on PATH is looked for in the sandbox; one in the repository at HEAD, since a night's
    # worktree holds only what is committed (a checkout's untracked .venv/bin/ruff is not there).
    words = {hook.id: word for hook in runnable if (word := hook_executable(hook)) and not hook_program(hook)}
    where = sandbox_programs(root, sorted(set(words.values()) | ({"ruff"} if config else set())))
    findings = []
    if config is None:
        findings.append(Finding("ruff", Health.OK, "not configured at HEAD: the lint reviewer runs no ruff"))
    elif where.get("ruff"):
        findings.append(Finding("ruff", Health.OK, f"configured ({config}); {where['ruff']} in the sandbox"))
    else:
        findings.append(
            Finding(
                "ruff",
                Health.WARN,
                f"configured ({config}) but not found in the sandbox: the lint reviewer abstains "
                "(install ruff where the runner's PATH finds it: `pip install ruff`)",
            )
        )
    if problem is not None:
        findings.append(
            Finding("pre-commit", Health.WARN, f"{problem}: the lint reviewer runs none of its hooks")
        )
        return findings
    if hooks is None:
        findings.append(Finding("pre-commit", Health.OK, f"no {CONFIG} at HEAD: no hooks to run"))
        return findings
    missing = [
        f"{hook.id} ({program or words.get(hook.id)})"
        for hook in runnable
        if ((program := hook_program(hook)) is not None and program not in paths)
        or (hook.id in words and not where.get(words[hook.id]))
    ]
    needs = [line.split(":")[0] for line in hooks.not_run if NEEDS_ENVIRONMENT in line]
    other = [line.split(":")[0] for line in hooks.not_run if NEEDS_ENVIRONMENT not in line]
    detail = f"{_named(len(runnable), 'hook', [hook.id for hook in runnable])} runnable offline, "
    detail += f"{_named(len(needs), 'hook', needs)} needing an environment (not run)"
    if other:
        detail += f", {_named(len(other), 'hook', other)} not run for other reasons"
    if missing:
        detail += f"; not found for the sandbox: {', '.join(missing)}"
    findings.append(Finding("pre-commit", Health.WARN if missing else Health.OK, detail))
    return findings


def _named(count: int, noun: str, names: list[str]) -> str:
    """A count and what it counts: `2 hooks (a, b)`, `0 hooks`."""
    shown = f" ({', '.join(names)})" if names else ""
    return f"{count} {noun}{'' if count == 1 else 's'}{shown}"


Check = Callable[[], Finding | list[Finding]]


def diagnose(repo: pygit2.Repository, root: Path, *, models: bool = True) -> list[Finding]:
    """Every check in order, each isolated: one that raises becomes its own failing line."""
    checks: list[tuple[str, Check]] = [
        ("sandbox", check_sandbox),
        ("signing", lambda: check_signing(repo)),
        (
            "ssh-keygen",
            lambda: check_tool(
                "ssh-keygen",
                "steps and votes are signed with it",
                required=True,
                install="install openssh-client",
            ),
        ),
        (
            "man",
            lambda: check_tool(
                "man",
                "`git pantheon --help` shows the manual with it",
                required=False,
                install="install man-db",
            ),
        ),
        ("lint", lambda: check_lint_tools(repo, root)),
        ("remotes", lambda: check_remotes(repo, root)),
        ("worktree-files", lambda: check_worktree_files(root)),
        ("disk", lambda: check_disk(Path(repo.path))),
        ("schedule", lambda: check_schedule(root)),
    ]
    if models:
        checks.insert(1, ("models", lambda: check_models(root)))
    findings: list[Finding] = []
    for name, check in checks:
        try:
            found = check()
        except (PantheonError, OSError, pygit2.GitError) as error:
            found = Finding(name, Health.FAIL, str(error))
        findings.extend(found if isinstance(found, list) else [found])
    return findings
