"""Adapters are promoted only when they beat the current one on held-out acceptance tests.

`refs/pantheon/adapters/<agent>` is a commit chain; each commit's tree holds `adapter.gguf` (or nothing:
the base model) and `eval.json`. Evaluating runs the agent alone on each held-out task, in a fresh
worktree at the task's base, then the task's acceptance commands in the sandbox: the pass rate is the
score; with no sandbox here, evaluation is refused (never run unsandboxed). Promotion appends a commit
only if the candidate beats the current one on the same tasks: by rate (`train promote`), or, for the
nightly trainer, beyond noise (`decide`: a one-sided exact sign test on the tasks where the two differ);
the rule and its figures go into the eval note. A specialist is the same chain under
`refs/pantheon/adapters/<agent>@<label>`, evaluated on that label's held-out tasks; rollback
appends a commit restoring the version before. The runner reads the promoted adapter from the ref, so
what runs at night is what the gate let through.
"""

from __future__ import annotations

import enum
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.agents.loop import run_agent
from pantheon_git.agents.registry import agents
from pantheon_git.errors import PantheonError
from pantheon_git.night.worktrees import scratch_worktree
from pantheon_git.queue.tasks import load_specs
from pantheon_git.schema.models import load_models
from pantheon_git.store.git import append_commit, build_tree
from pantheon_git.store.layout import ADAPTERS_PREFIX, EVALS_NOTES
from pantheon_git.store.notes import set_note
from pantheon_git.tools.builtin import ToolContext
from pantheon_git.tools.sandbox import configured_sandbox, require_sandbox


@dataclass(slots=True)
class Evaluation:
    adapter: str  # "base" or the adapter's blob id
    tasks: list[str]
    passed: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.passed) / len(self.tasks) if self.tasks else 0.0


class Verdict(enum.StrEnum):
    PROMOTE = "promote"
    REFUSE = "refuse"


NIGHT_ALPHA = 0.2  # the nightly trainer's noise level: at most a 1-in-5 chance a mere coin flip promotes


@dataclass(slots=True)
class Decision:
    verdict: Verdict
    rule: str
    wins: int  # held-out tasks the candidate passes and the current one fails
    losses: int  # the reverse
    p_value: float | None
    reason: str


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test: P(at least `wins` of the differing tasks go to the candidate by chance)."""
    n = wins + losses
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n if n else 1.0


def decide(candidate: Evaluation, current: Evaluation, alpha: float | None = None) -> Decision:
    """Promote or refuse. alpha None: a strictly higher pass rate; else: more wins than losses on the
    paired tasks and a sign test p-value of at most alpha (better beyond noise)."""
    if candidate.tasks != current.tasks or not candidate.tasks:
        raise PantheonError("promotion needs both adapters evaluated on the same, non-empty held-out tasks")
    won, lost = set(candidate.passed) - set(current.passed), set(current.passed) - set(candidate.passed)
    wins, losses = len(won), len(lost)
    figures = (
        f"{len(candidate.passed)}/{len(candidate.tasks)} held-out tasks, the current {current.adapter} "
        f"passed {len(current.passed)}/{len(current.tasks)} ({wins} won, {losses} lost)"
    )
    if alpha is None:
        rule = "promote iff the candidate's held-out pass rate is strictly higher"
        better, p_value = candidate.rate > current.rate, None
    else:
        rule = (
            "promote iff the candidate wins more held-out tasks than it loses against the current adapter "
            f"and a one-sided exact sign test over the differing tasks gives p <= {alpha}"
        )
        p_value = sign_test_p(wins, losses)
        better = wins > losses and p_value <= alpha
        figures += f", sign test p = {p_value:.3f}"
    verdict = Verdict.PROMOTE if better else Verdict.REFUSE
    reason = f"{'promoted' if better else 'adapter not promoted'}: it passed {figures}"
    return Decision(verdict, rule, wins, losses, p_value, reason)


def evaluate(
    repo: pygit2.Repository,
    root: Path,
    agent_name: str,
    adapter: Path | None,
    task_ids: Sequence[str],
    *,
    temperature: float = 0.0,
    seed: int | None = None,
) -> Evaluation:
    """Greedy by default (what the gate compares); with a temperature, sampled with `seed` (for spread)."""
    from pantheon_git.night.executors import Sampled
    from pantheon_git.runtime.llama import runtime_for

    require_sandbox()  # the model's commands and the acceptance checks run in it, or nothing runs
    agent = agents(root).get(agent_name)
    if agent is None:
        raise PantheonError(f"agent {agent_name}: not defined here")
    models = load_models(root)
    if agent.model not in models:
        raise PantheonError(f"agent {agent_name}: model '{agent.model}' is not in .pantheon/models.toml")
    config = models[agent.model]
    if adapter is not None:
        config = config.model_copy(update={"adapter": str(adapter)})
    runtime = runtime_for(agent.model, config)
    if temperature > 0:
        runtime = Sampled(runtime, temperature)
    specs = {spec.id: spec for spec in load_specs(repo)}
    sandbox = configured_sandbox(root)
    result = Evaluation("base" if adapter is None else str(adapter.stem), list(task_ids))
    for task_id in task_ids:
        spec = specs.get(task_id)
        if spec is None:
            raise PantheonError(f"held-out task {task_id}: not in the queue here")
        base = repo.revparse_single(spec.base or "HEAD").peel(pygit2.Commit).id
        with scratch_worktree(repo, root, base, f"eval/{task_id}") as workdir:
            task = {
                "title": spec.title,
                "scope": spec.scope,
                "acceptance": spec.acceptance,
                "files": spec.files,
            }
            context = ToolContext(worktree=workdir, sandbox=sandbox)
            run = run_agent(agent, runtime, context, task, {}, seed=seed)
            checks = [sandbox(command, workdir, dict(os.environ), 120) for command in spec.acceptance]
            ok = run.ok and all(check.exit_code == 0 for check in checks)
        if ok:
            result.passed.append(task_id)
        result.details.append(
            {
                "task": task_id,
                "labels": list(spec.labels),  # routing scores specialists per label from these
                "finished": run.ok,
                "passed": ok,
                "turns": len(run.turns),
            }
        )
    return result


def promote(
    repo: pygit2.Repository,
    agent: str,
    adapter: Path,
    candidate: Evaluation,
    current: Evaluation,
    *,
    alpha: float | None = None,
    extra: dict[str, Any] | None = None,
) -> pygit2.Oid:
    """Append the candidate to the chain `refs/pantheon/adapters/<agent>` (`agent` may be `name@label`)
    if `decide` lets it through; else refuse with the figures."""
    decision = decide(candidate, current, alpha)
    if decision.verdict is not Verdict.PROMOTE:
        raise PantheonError(decision.reason)
    record = {
        "candidate": asdict(candidate),
        "current": asdict(current),
        "decision": {**asdict(decision), "verdict": decision.verdict.value},
        **(extra or {}),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    files = {"adapter.gguf": adapter.read_bytes(), "eval.json": json.dumps(record, indent=1).encode()}

    def build(tip: pygit2.Commit | None) -> tuple[pygit2.Oid, str]:
        # Versions count promotions only: a rollback neither takes nor frees a number.
        version = 1 + sum(1 for commit in _chain(repo, tip) if commit.message.startswith("promote "))
        message = (
            f"promote {agent}@{version}: {len(candidate.passed)}/{len(candidate.tasks)} held-out tasks "
            f"(was {len(current.passed)}/{len(current.tasks)})\n"
        )
        return build_tree(repo, None, files), message

    commit = append_commit(repo, ADAPTERS_PREFIX + agent, build)
    assert commit is not None
    set_note(repo, EVALS_NOTES, commit, json.dumps(record).encode() + b"\n", f"pantheon: eval {agent}")
    return commit


def _chain(repo: pygit2.Repository, tip: pygit2.Commit | None) -> list[pygit2.Commit]:
    """The adapter chain oldest first (each commit has at most one parent)."""
    chain: list[pygit2.Commit] = []
    while tip is not None:
        chain.append(tip)
        tip = tip.parents[0] if tip.parents else None
    return chain[::-1]


def live_versions(repo: pygit2.Repository, tip: pygit2.Commit | None) -> list[pygit2.Commit]:
    """The promotions still in force, oldest first: each promotion pushes, each rollback pops one.

    The last one is what is served now; a rollback steps back to the one before it, so a second
    rollback goes one version further back instead of restoring the adapter just rolled back.
    """
    stack: list[pygit2.Commit] = []
    for commit in _chain(repo, tip):
        if commit.message.startswith("promote "):
            stack.append(commit)
        elif commit.message.startswith("rollback ") and stack:
            stack.pop()
    return stack


def rollback(repo: pygit2.Repository, agent: str) -> pygit2.Oid:
    """Append a commit that restores the promotion before the one in force (the base model if none)."""
    ref = ADAPTERS_PREFIX + agent

    def build(tip: pygit2.Commit | None) -> tuple[pygit2.Oid, str]:
        live = live_versions(repo, tip)
        if tip is None or not live:
            raise PantheonError(f"{ref}: no promoted adapter in force, nothing to roll back")
        previous = live[-2] if len(live) >= 2 else None
        tree = previous.tree_id if previous is not None else repo.TreeBuilder().write()
        label = previous.message.split(":")[0] if previous is not None else "the base model"
        undone = live[-1].message.split(":")[0]
        return tree, f"rollback {agent}: back to {label} (undoes {undone})\n"

    commit = append_commit(repo, ref, build)
    assert commit is not None
    return commit
