"""The `checks` node: the deterministic reviewers (review/checks.py) on the run's changes, one vote each.

This is their edge: it reads the changes against the run's base commit with libgit2 and runs the
repository's own linter in the night's sandbox, like every other command of a night (ruff reads the
worktree, which a model wrote). Configuration comes from the base commit and the person's config.toml,
never from the run: a change that edits the lint configuration is rejected, not obeyed.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from pantheon_git.agents.placement import placed_files
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeFailed, NodeResult
from pantheon_git.review.changes import base_tree, blob_text, read_changes, tree_paths
from pantheon_git.review.checks import (
    MAX_LINTED,
    RUFF_FILES,
    Change,
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
)
from pantheon_git.schema.config import GatePolicy
from pantheon_git.store.votes import Verdict
from pantheon_git.store.worktree import open_worktree
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


def review_changes(
    changes: Sequence[Change],
    context: NodeContext,
    policy: GatePolicy,
    base_paths: frozenset[str],
    config: str | None,
    lint: tuple[Ran, Ran] | None,
) -> list[Check]:
    """The four verdicts (pure given its inputs): lint, scope, tests kept, size."""
    spec = context.spec
    check, format_ = lint if lint is not None else (None, None)
    # A file the run's `place` step put a stub in (night/place.py) is one the spec asked for.
    named = [*spec.files, *placed_files(context.upstream)]
    texts = [spec.title, spec.scope, spec.signature or "", *spec.acceptance]
    return [
        lint_check(changes, config, check, format_),
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
        lint = None
        if (
            config
            and 0 < len(targets) <= MAX_LINTED
            and not lint_config_edits(changes)
            and not suppressions(changes)
        ):
            lint = run_lint(sandbox, context, targets)
        checks = review_changes(changes, context, policy, tree_paths(tree), config, lint)
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
