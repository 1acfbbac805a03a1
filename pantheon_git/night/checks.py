"""The `checks` node: the deterministic reviewers (review/checks.py) on the run's changes, one vote each.

This is their edge: it reads the changes against the run's base commit with libgit2 and runs the
repository's own linters in the night's sandbox, like every other command of a night (ruff reads the
worktree, which a model wrote): ruff, and the offline hooks of its .pre-commit-config.yaml
(review/precommit.py). Configuration comes from the base commit and the person's config.toml, never
from the run: a change that edits the lint configuration is rejected, not obeyed. A hook may rewrite
what it checks (a fixer): the checks step commits the worktree as it is, so whatever a hook changed is
put back to the step before, and the change counts against the hook, as in pre-commit.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

import pygit2

from pantheon_git.agents.placement import placed_files
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeFailed, NodeResult
from pantheon_git.review.changes import base_tree, blob_text, read_changes, tree_paths
from pantheon_git.review.checks import (
    MAX_LINTED,
    RUFF_FILES,
    Change,
    ChangeKind,
    Check,
    Ran,
    lint_check,
    lint_config_edits,
    lint_targets,
    ruff_config,
    scope_check,
    size_check,
    suppressions,
    weakening_check,
    work,
)
from pantheon_git.review.precommit import (
    CONFIG as PRECOMMIT_CONFIG,
)
from pantheon_git.review.precommit import (
    ConfigProblem,
    HookConfig,
    HookRan,
    HookReport,
    hook_command,
    hook_files,
    hook_programs,
    read_config,
)
from pantheon_git.schema.config import GatePolicy
from pantheon_git.store.votes import Verdict
from pantheon_git.store.worktree import open_worktree, restore_worktree, worktree_changed
from pantheon_git.tools.builtin import Sandbox

CHECKS = "checks"  # the runner agent of a flow node that runs them
LINT_SECONDS = 120.0
# Each body line of the formatter's diff cut to its first character: the line numbers are what matter,
# and the output's tail (what the sandbox keeps) then holds thousands of lines.
_SHAPE = r"""awk '/^(---|\+\+\+|@@)/ {print; next} {print substr($0, 1, 1)}'"""


def _quoted(paths: Sequence[str]) -> str:
    return " ".join(shlex.quote(path) for path in paths)


def run_lint(sandbox: Sandbox, context: NodeContext, targets: Sequence[str]) -> tuple[Ran, Ran]:
    """`ruff check` and `ruff format --diff` on `targets`, in the sandbox, with no cache written."""
    files = _quoted(targets)
    commands = (
        f"ruff check --no-cache --force-exclude --quiet --output-format concise -- {files}",
        f"set -o pipefail; ruff format --diff --no-cache --force-exclude -- {files} 2>&1 | {_SHAPE}",
    )
    done = []
    for command in commands:
        seconds = min(LINT_SECONDS, max(1.0, context.seconds_left()))
        ran = sandbox(command, context.worktree, dict(os.environ), seconds)
        done.append(Ran(ran.exit_code, ran.output_tail, ran.timed_out))
    return done[0], done[1]


# A tracked file whose content or kind a hook changed (pre-commit fails such a hook: it "modified files").
_MODIFIED = (
    pygit2.GIT_STATUS_WT_MODIFIED
    | pygit2.GIT_STATUS_WT_DELETED
    | pygit2.GIT_STATUS_WT_TYPECHANGE
    | pygit2.GIT_STATUS_WT_RENAMED
)


def _modified(worktree: Path) -> list[str]:
    """The tracked files of the worktree that differ from its HEAD (libgit2: nothing it configures runs)."""
    status = open_worktree(worktree).status(untracked_files="no")
    return sorted(path for path, flags in status.items() if flags & _MODIFIED)


def hook_config(text: str | None) -> HookConfig | str | None:
    """The base commit's hooks (None: it has no .pre-commit-config.yaml; a str: why it cannot be read)."""
    if text is None:
        return None
    try:
        return read_config(text)
    except ConfigProblem as error:
        return str(error)


def run_hooks(
    sandbox: Sandbox, context: NodeContext, config: HookConfig, changes: Sequence[Change]
) -> HookReport:
    """Each runnable hook on the changed files it selects, in the sandbox, in the config's order; what a
    hook changed in the worktree is put back (it was at the last step's commit) and blamed on it."""
    files = {change.path: change.binary for change in work(changes) if change.kind != ChangeKind.DELETED}
    programs = hook_programs(config)
    not_run = list(config.not_run)
    if len(files) > MAX_LINTED:
        not_run += [f"{hook.id}: not run: {len(files)} files changed, too many" for hook in config.runnable]
        return HookReport(not_run=tuple(not_run), programs=programs)
    if worktree_changed(context.worktree):  # never: the step before committed it; nothing to put back to
        not_run += [f"{hook.id}: not run: the worktree has uncommitted changes" for hook in config.runnable]
        return HookReport(not_run=tuple(not_run), programs=programs)
    ran: list[HookRan] = []
    for hook in config.runnable:
        chosen = hook_files(hook, config, files)
        if not chosen and not hook.always_run:
            continue  # pre-commit skips a hook no file is for
        if hook.language == "fail":  # runs nothing: its entry is the message for each file it matches
            ran.append(HookRan(hook.id, tuple(chosen), 1, f"{hook.entry}\n" + "\n".join(chosen)))
            continue
        seconds = min(LINT_SECONDS, max(1.0, context.seconds_left()))
        done = sandbox(hook_command(hook, chosen), context.worktree, dict(os.environ), seconds)
        modified = _modified(context.worktree)
        if worktree_changed(context.worktree):
            restore_worktree(context.worktree)  # back to the last step's commit: the checks change nothing
        ran.append(
            HookRan(hook.id, tuple(chosen), done.exit_code, done.output_tail, done.timed_out, tuple(modified))
        )
    return HookReport(ran=tuple(ran), not_run=tuple(not_run), programs=programs)


def review_changes(
    changes: Sequence[Change],
    context: NodeContext,
    policy: GatePolicy,
    *,
    base_paths: frozenset[str],
    config: str | None,
    lint: tuple[Ran, Ran] | None,
    hooks: HookReport | None = None,
) -> list[Check]:
    """The four verdicts (pure given its inputs): lint, scope, tests kept, size."""
    spec = context.spec
    check, format_ = lint if lint is not None else (None, None)
    # A file the run's `place` step put a stub in (night/place.py) is one the spec asked for.
    named = [*spec.files, *placed_files(context.upstream)]
    texts = [spec.title, spec.scope, spec.signature or "", *spec.acceptance]
    return [
        lint_check(changes, config, check, format_, hooks),
        scope_check(changes, named, texts, base_paths),
        weakening_check(changes, spec.acceptance, spec.files, base_paths),
        size_check(changes, policy.max_changed_lines, policy.max_changed_files),
    ]


def checks_executor(sandbox: Sandbox, policy: GatePolicy) -> NodeExecutor:
    def execute(context: NodeContext) -> NodeResult:
        if not context.base:
            raise NodeFailed("the run has no recorded base commit to diff against")
        changes = read_changes(context.worktree, context.base)
        repo = open_worktree(context.worktree)
        tree = base_tree(repo, context.base)
        top = {name: blob_text(repo, tree, name) for name in (*RUFF_FILES, "pyproject.toml")}
        config = ruff_config({name: text for name, text in top.items() if text is not None})
        targets = lint_targets(changes)
        loosened = bool(lint_config_edits(changes) or suppressions(changes))  # rejected before any run
        lint = None
        if config and 0 < len(targets) <= MAX_LINTED and not loosened:
            lint = run_lint(sandbox, context, targets)
        hooks = None
        found = hook_config(blob_text(repo, tree, PRECOMMIT_CONFIG))
        if isinstance(found, str):
            hooks = HookReport(problem=found)
        elif found is not None:
            # A change to the list or to a program a hook runs is rejected as it is: nothing is run.
            programs = hook_programs(found)
            if loosened or set(programs.values()) & {change.path for change in changes}:
                hooks = HookReport(not_run=found.not_run, programs=programs)
            else:
                hooks = run_hooks(sandbox, context, found, changes)
        checks = review_changes(
            changes, context, policy, base_paths=tree_paths(tree), config=config, lint=lint, hooks=hooks
        )
        rejected = [check.name for check in checks if check.verdict == Verdict.REJECT]
        summary = (
            f"rejected by {', '.join(rejected)}: "
            + next(check.reason for check in checks if check.verdict == Verdict.REJECT)
            if rejected
            else "checks: " + ", ".join(f"{check.name} {check.verdict}" for check in checks)
        )
        output = {check.name: {"verdict": check.verdict.value, "reason": check.reason} for check in checks}
        return NodeResult(summary=summary[:200], output=output, votes=[check.vote() for check in checks])

    return execute
