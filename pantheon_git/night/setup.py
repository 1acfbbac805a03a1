"""What a night needs before its first task: night mode entered, config read, flows turned into plans,
and the one remote (from `[night] remotes`, or none: claims local only) the night may talk to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from pantheon_git.agents.builtin import RUNNER_NODES
from pantheon_git.agents.registry import agents
from pantheon_git.agents.spec import Role
from pantheon_git.errors import PantheonError
from pantheon_git.night.attempt import PlannedNode
from pantheon_git.night.executors import BASELINE, executors_for
from pantheon_git.night.nodes import NodeExecutor
from pantheon_git.night.policy import enter_night_mode
from pantheon_git.schema.config import CONFIG_SOURCE, load_config
from pantheon_git.schema.flow import evaluate_condition, load_flow, topological_order
from pantheon_git.schema.models import ModelConfig, load_models
from pantheon_git.tools.sandbox import run_sandboxed


@dataclass(slots=True)
class NightSetup:
    policy: dict[str, Any]
    remote: str | None
    max_tasks: int
    claim_expiry_minutes: int
    # (flow name, the task's labels) -> planned nodes and executors; labels route specialist adapters.
    flow_for: Callable[[str, tuple[str, ...]], tuple[list[PlannedNode], dict[str, NodeExecutor]]]
    samples: int = 1  # best-of-N attempts per task per night (a spec's limits.samples overrides)
    sample_temperature: float = 0.8
    jobs: int = 1  # attempts in flight at once (`--jobs`), all served by one batched engine per model


DEFAULT_REPAIRS = 2


def plan_nodes(root: Path, flow_name: str) -> list[PlannedNode]:
    """The flow's nodes in order, with defaults resolved; a flow with acceptance checks gets a first
    `baseline` step that runs them on the base commit (see night/executors.py)."""
    known = agents(root)
    flow = load_flow(root, flow_name, set(known) | set(RUNNER_NODES))
    ordered = topological_order(flow)
    agent_of = {node.id: node.agent for node in ordered}
    planned = []
    if any(node.agent == "acceptance" for node in ordered):
        planned.append(PlannedNode(BASELINE, BASELINE, timeout_s=10 * 60))
    for node in ordered:
        condition = node.when
        when = (lambda outputs, text=condition: evaluate_condition(text, outputs)) if condition else None
        repairs, repair = 0, None
        if node.agent == "acceptance":
            repairs = DEFAULT_REPAIRS if node.repairs is None else node.repairs
            models = [name for name in node.inputs if agent_of.get(name) not in RUNNER_NODES]
            repair = node.repair or (models[0] if models else None)
        # An implementer's step that changed no file failed, whatever the agent is called (its role, not
        # its name: a repository's own implementer is held to it too); a node may say otherwise.
        implements = node.agent in known and known[node.agent].acts_as is Role.IMPLEMENTER
        require_change = implements if node.require_change is None else node.require_change
        planned.append(
            PlannedNode(
                node.id,
                node.agent,
                tuple(node.inputs),
                node.retries,
                node.timeout,
                node.seed,
                when,
                temperature=node.temperature,
                repairs=repairs,
                repair=repair,
                require_change=require_change,
            )
        )
    return planned


def served_models(models: dict[str, ModelConfig], jobs: int) -> dict[str, ModelConfig]:
    """The models as this night serves them: with more than one job every in-process model goes to the
    batched engine (one load shared by all jobs; a one-at-a-time context cannot serve concurrent calls),
    with its sequence slots fixed now so every task reaches the same pooled engine."""
    from pantheon_git.runtime.batched_runtime import slots_for

    served = {}
    for name, config in models.items():
        if config.in_process and (jobs > 1 or config.engine == "batched"):
            config = config.model_copy(update={"engine": "batched", "parallel": slots_for(config, jobs)})
        served[name] = config
    return served


CLAIMS_LOCAL_ONLY = "claims local only"


def claims_remote(repo: pygit2.Repository, allowed: list[str]) -> str | None:
    """The remote the night pushes claims to: the first of `[night] remotes` (whatever it is named);
    None (claims local only) when the list is empty. A listed name that is no remote here is refused."""
    existing = {remote.name for remote in repo.remotes}
    for name in allowed:
        if name not in existing:
            raise PantheonError(
                f"{CONFIG_SOURCE}: night.remotes: {name}: no such remote (see `git remote -v`)"
            )
    return allowed[0] if allowed else None


def refuse_without_signers(repo: pygit2.Repository) -> None:
    """A night where no vote can be verified would run every task to a gate that must reject it: refuse
    it in one line instead (a task on another base with its own signers still has them checked by its
    gate)."""
    from pantheon_git.review.gate import signers_problem
    from pantheon_git.store.signing import allowed_signers

    problem = signers_problem(allowed_signers(repo))
    if problem is not None:
        raise PantheonError(f"{problem} (`git pantheon doctor` checks the rest)")


def prepare_night(repo: pygit2.Repository, root: Path, jobs: int = 1) -> NightSetup:
    """Enter night mode (scrub credentials, block egress) and read the repository's configuration.

    A bad config.toml stops the night before anything is written (one line, exit 2): without it the gate
    policy is unknown. Flows, agent files and models.toml are read per task by `flow_for`, so a bad one
    fails only the tasks that use it (a flow without model agents never needs models.toml).
    `jobs` attempts run at once (`--jobs`); above 1, models are served by the batched engine.
    """
    if jobs < 1:
        raise PantheonError(f"--jobs: {jobs}: must be at least 1")
    config = load_config(root)
    remote = claims_remote(repo, config.night.remotes)  # refused before night mode changes anything
    refuse_without_signers(repo)
    model_hosts = config.night.allowed_model_hosts()
    policy = enter_night_mode(model_hosts)
    policy["claims"] = f"remote {remote}" if remote is not None else CLAIMS_LOCAL_ONLY
    if config.night.worktree_files:  # copied into every worktree from this checkout, never committed
        policy["worktree_files"] = list(config.night.worktree_files)

    @functools.cache
    def repository_agents() -> dict[str, Any]:
        return agents(root)

    @functools.cache
    def flow_for(
        name: str, labels: tuple[str, ...] = ()
    ) -> tuple[list[PlannedNode], dict[str, NodeExecutor]]:
        known = repository_agents()
        nodes = plan_nodes(root, name)
        used = {node.agent for node in nodes}
        models = served_models(load_models(root), jobs) if used - set(RUNNER_NODES) - {BASELINE} else {}
        # Each agent is served the adapter whose recorded held-out score on these labels is best
        # (refs/pantheon/adapters/<agent>[@label]); none promoted: the base model.
        from pantheon_git.runtime.adapters import route_adapter

        routed = {agent: route_adapter(repo, agent, labels) for agent in used if agent in known}
        adapters = {agent: (choice.path if choice else None) for agent, choice in routed.items()}
        # Limits as the person's checkout sets them (a run's copy of config.toml is never read).
        sandbox = functools.partial(run_sandboxed, limits=config.sandbox)
        return nodes, executors_for(
            used, known, models, config.gate, sandbox=sandbox, adapters=adapters, model_hosts=model_hosts
        )

    return NightSetup(
        policy=policy,
        remote=remote,
        max_tasks=config.night.max_tasks,
        claim_expiry_minutes=config.night.claim_expiry_minutes,
        flow_for=flow_for,
        samples=config.night.samples,
        sample_temperature=config.night.sample_temperature,
        jobs=jobs,
    )
