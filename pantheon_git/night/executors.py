"""The node executors of a flow: model agents through the loop, and the runner's own acceptance and gate.

Built per flow by `executors_for`, which also refuses the flow before anything runs if any of its model
agents would use a non-local runtime.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pantheon_git.agents.loop import run_agent
from pantheon_git.agents.spec import AgentSpec
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeResult
from pantheon_git.night.policy import refuse_non_local
from pantheon_git.review.gate import decide
from pantheon_git.runtime.openai_compat import url_is_local
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.store.git import run_git
from pantheon_git.store.votes import Vote
from pantheon_git.tools.builtin import Sandbox, ToolContext
from pantheon_git.tools.sandbox import CompletedRun, run_sandboxed

DIFF_CHARS = 3000


def config_is_local(config: ModelConfig) -> bool:
    return config.engine == "llama.cpp" or (config.url is not None and url_is_local(config.url))


def _summary(output: Mapping[str, Any] | None) -> str:
    for value in (output or {}).values():
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:120]
    return "finished"


def _diff(worktree: Path, base: str) -> str:
    # --end-of-options: a base taken from a spec is data, never an option of git diff.
    text = run_git(
        ["diff", "--no-ext-diff", "--no-textconv", "--stat", "-p", "--end-of-options", base, "--"],
        worktree,
        check=False,
    ).stdout
    return text if len(text) <= DIFF_CHARS else text[:DIFF_CHARS] + "\n… (diff truncated)"


def agent_executor(agent: AgentSpec, config: ModelConfig, sandbox: Sandbox) -> NodeExecutor:
    def execute(context: NodeContext) -> NodeResult:
        from pantheon_git.runtime.llama import runtime_for  # loads the model on first use only

        runtime = runtime_for(agent.model, config)
        tools = ToolContext(
            worktree=context.worktree,
            sandbox=sandbox,
            env=dict(os.environ),
            seconds_left=context.seconds_left,
        )
        spec = context.spec
        task = {"title": spec.title, "scope": spec.scope, "acceptance": spec.acceptance, "files": spec.files}
        inputs = dict(context.inputs)
        if agent.name == "reviewer":
            inputs["diff"] = _diff(context.worktree, spec.base or "HEAD")
        run = run_agent(agent, runtime, tools, task, inputs, seed=context.seed)
        votes = []
        if run.ok and agent.name == "reviewer" and run.output:
            votes.append(
                Vote(
                    voter=f"reviewer:{context.node_id}",
                    verdict=run.output["verdict"],
                    reasons=list(run.output.get("reasons", [])),
                    evidence={"model": runtime.identity.label(), "seed": context.seed},
                )
            )
        summary = _summary(run.output) if run.ok else f"failed: {run.error}"
        return NodeResult(
            summary=summary,
            output=run.output or {},
            ok=run.ok,
            error=run.error,
            model=runtime.identity.label(),
            trace=run.trace(agent, runtime),
            votes=votes,
            tokens={"in": run.tokens_in, "out": run.tokens_out, "evaluated": run.tokens_evaluated},
        )

    return execute


def acceptance_executor(sandbox: Sandbox) -> NodeExecutor:
    """Run the spec's acceptance commands in the worktree; the result is a vote, not a node failure."""

    def execute(context: NodeContext) -> NodeResult:
        results = []
        for command in context.spec.acceptance:
            done: CompletedRun = sandbox(
                command, context.worktree, dict(os.environ), max(1.0, context.seconds_left())
            )
            results.append(
                {
                    "command": command,
                    "exit_code": done.exit_code,
                    "timed_out": done.timed_out,
                    "seconds": done.duration_s,
                    "log_tail": done.output_tail[-1500:],
                }
            )
        passed = all(result["exit_code"] == 0 for result in results)
        failing = [result["command"] for result in results if result["exit_code"] != 0]
        vote = Vote(
            voter="acceptance",
            verdict="approve" if passed else "reject",
            reasons=[f"{len(results) - len(failing)}/{len(results)} checks passed"]
            + [f"failed: {command}" for command in failing],
            evidence={"results": results},
        )
        summary = (
            f"acceptance {'passed' if passed else 'failed'}: {len(results) - len(failing)}/{len(results)}"
        )
        return NodeResult(
            summary=summary, output={"passed": passed, "results": results}, votes=[vote], model="-"
        )

    return execute


def gate_executor(policy: GatePolicy) -> NodeExecutor:
    def execute(context: NodeContext) -> NodeResult:
        decision = decide(policy, context.previous_votes)
        vote = Vote(
            kind="gate",
            voter="gate",
            verdict=decision.verdict,
            reasons=decision.reasons,
            evidence={"policy": policy.model_dump()},
        )
        return NodeResult(
            summary=f"{decision.verdict} ({'; '.join(decision.reasons)})",
            output={"verdict": decision.verdict, "reasons": decision.reasons},
            votes=[vote],
        )

    return execute


def executors_for(
    agent_names: set[str],
    agents: Mapping[str, AgentSpec],
    models: Mapping[str, ModelConfig],
    gate_policy: GatePolicy,
    sandbox: Sandbox = run_sandboxed,
    adapters: Mapping[str, Path | None] | None = None,
) -> dict[str, NodeExecutor]:
    """Executors for the given agent names; refuses non-local runtimes before anything runs."""
    from pantheon_git.errors import PantheonError

    executors: dict[str, NodeExecutor] = {}
    checks = []
    for name in sorted(agent_names):
        if name == "acceptance":
            executors[name] = acceptance_executor(sandbox)
        elif name == "gate":
            executors[name] = gate_executor(gate_policy)
        else:
            agent = agents[name]
            config = models.get(agent.model)
            if config is None:
                raise PantheonError(f"agent {name}: model '{agent.model}' is not in .pantheon/models.toml")
            promoted = (adapters or {}).get(name)
            if promoted is not None:
                config = config.model_copy(update={"adapter": str(promoted)})
            checks.append((name, agent.model, config_is_local(config)))
            executors[name] = agent_executor(agent, config, sandbox)
    refuse_non_local(checks)
    return executors
