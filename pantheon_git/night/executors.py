"""The node executors of a flow: model agents through the loop, and the runner's own acceptance and gate.

The `baseline` step runs the acceptance checks once on the base commit, before anything changes: a check
that already passes there does not test the task (the acceptance vote flags it), and the gate can ask
that at least one check went from failing to passing.

Built per flow by `executors_for`, which also refuses the flow before anything runs if any of its model
agents would use a non-local runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pantheon_git.agents.context import named_files
from pantheon_git.agents.loop import AgentRun, run_agent, stub_functions
from pantheon_git.agents.placement import placed_files, placed_functions
from pantheon_git.agents.spec import AgentSpec, Role
from pantheon_git.night.checks import CHECKS, checks_executor
from pantheon_git.night.nodes import NodeContext, NodeExecutor, NodeFailed, NodeResult
from pantheon_git.night.place import PLACE, place_executor
from pantheon_git.night.policy import refuse_non_local
from pantheon_git.review.calibration import read_calibration
from pantheon_git.review.gate import decide, gate_vote
from pantheon_git.runtime.base import ChatRenderer, Completion, ModelIdentity, Runtime
from pantheon_git.runtime.openai_compat import url_is_local
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.hosts import ModelHost
from pantheon_git.schema.models import ModelConfig
from pantheon_git.store.votes import Verdict, Vote
from pantheon_git.store.worktree import head_tree, open_worktree, restore_worktree, worktree_diff
from pantheon_git.tools.builtin import Sandbox, ToolContext
from pantheon_git.tools.sandbox import CompletedRun, run_sandboxed

DIFF_CHARS = 3000
BASELINE = "baseline"  # the step (and executor) that runs the acceptance checks on the base commit


def config_is_local(config: ModelConfig, hosts: tuple[ModelHost, ...] = ()) -> bool:
    """In-process, on loopback or a unix socket, or on a model server `[night] model_hosts` lists."""
    return config.in_process or (config.url is not None and url_is_local(config.url, hosts))


def _summary(output: Mapping[str, Any] | None) -> str:
    for value in (output or {}).values():
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:120]
    return "finished"


def _diff(worktree: Path, base: str) -> str:
    # libgit2, not `git diff`: a repository a check made inside the tree, or a submodule, has its own
    # config (clean filters, fsmonitor) that the git command line would run here, outside the sandbox.
    # A base taken from a spec is a revision to resolve, never an option.
    text = worktree_diff(worktree, base)
    return text if len(text) <= DIFF_CHARS else text[:DIFF_CHARS] + "\n… (diff truncated)"


def files_at_base(context: NodeContext, paths: list[str]) -> dict[str, str]:
    """path -> text of the named files in the commit the run started from (those that exist there)."""
    return _committed_files(context, context.base, paths)


def files_at_head(context: NodeContext, paths: list[str]) -> dict[str, str]:
    """path -> text of the named files in the run branch's last step commit (a `place` step's stubs)."""
    return _committed_files(context, "HEAD", paths)


def _committed_files(context: NodeContext, revision: str, paths: list[str]) -> dict[str, str]:
    """Read from git objects, never from the worktree: a file a step left there may be a FIFO."""
    if not revision:
        return {}
    import pygit2

    try:
        tree = open_worktree(context.worktree).revparse_single(revision).peel(pygit2.Commit).tree
    except (KeyError, ValueError, pygit2.GitError):
        return {}
    found = {}
    for path in paths:
        try:
            blob = tree[path]
        except KeyError:
            continue
        if isinstance(blob, pygit2.Blob):
            found[path] = blob.data.decode("utf-8", errors="replace")
    return found


def review_diff(context: NodeContext) -> str:
    """What a reviewer is shown: the run's changes since the commit it started from (never a branch name)."""
    if not context.base:
        raise NodeFailed("the run has no recorded base commit to diff against")
    return _diff(context.worktree, context.base)


# Wall times differ from run to run: an agent shown them gets another prompt for the same work, and even
# greedy decoding then diverges (two reviewers of one diff disagreed over 0.033 s against 0.081 s).
# Traces and the report keep them; what a model is shown does not.
VOLATILE_KEYS = frozenset({"seconds", "duration_s"})


def steady(value: Any) -> Any:
    """`value` without its wall-time fields, at any depth (pure)."""
    if isinstance(value, Mapping):
        return {key: steady(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [steady(item) for item in value]
    return value


@dataclass(slots=True)
class Sampled:
    """A runtime whose completions use a node's temperature; the loop passes the node's seed itself.

    The whole `Runtime` protocol, each member passed to the wrapped runtime; a temperature the caller
    names (the loop's retry of a refused completion) wins over the node's.
    """

    runtime: Runtime
    temperature: float

    @property
    def identity(self) -> ModelIdentity:
        return self.runtime.identity

    @property
    def is_local(self) -> bool:
        return self.runtime.is_local

    @property
    def context_window(self) -> int | None:
        return self.runtime.context_window

    @property
    def context_tokens(self) -> int | None:
        return self.runtime.context_tokens

    @property
    def chat(self) -> ChatRenderer | None:
        return self.runtime.chat

    def count_tokens(self, text: str) -> int:
        return self.runtime.count_tokens(text)

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Completion:
        temperature = self.temperature if temperature is None else temperature
        return self.runtime.complete(
            prompt, schema=schema, max_tokens=max_tokens, seed=seed, temperature=temperature
        )


def agent_executor(
    agent: AgentSpec,
    config: ModelConfig,
    sandbox: Sandbox,
    runtime_factory: Callable[[], Runtime] | None = None,
    hosts: tuple[ModelHost, ...] = (),
) -> NodeExecutor:
    """A model agent as a node; `runtime_factory` replaces the pooled model (a recorded one in tests);
    `hosts`: the allowlisted model servers."""

    def execute(context: NodeContext) -> NodeResult:
        from pantheon_git.runtime.llama import runtime_for  # loads the model on first use only

        pooled = runtime_factory() if runtime_factory is not None else runtime_for(agent.model, config, hosts)
        runtime: Runtime = Sampled(pooled, context.temperature) if context.temperature > 0 else pooled
        tools = ToolContext(
            worktree=context.worktree,
            sandbox=sandbox,
            env=dict(os.environ),
            seconds_left=context.seconds_left,
        )
        spec = context.spec
        # The files a `place` step put stubs in (night/place.py) are the task's too: shown, and completed.
        files = list(dict.fromkeys([*spec.files, *placed_files(context.upstream)]))
        task = {"title": spec.title, "scope": spec.scope, "acceptance": spec.acceptance, "files": files}
        if agent.acts_as is Role.PLANNER and (stubs := stub_functions(files_at_head(context, files))):
            return _plan_not_needed(stubs)
        reviews = agent.acts_as is Role.REVIEWER
        run = run_agent(agent, runtime, tools, task, _agent_inputs(context, task, reviews), seed=context.seed)
        votes = _review_votes(agent, runtime, context, run) if reviews else []
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


def _agent_inputs(context: NodeContext, task: Mapping[str, Any], reviews: bool) -> dict[str, Any]:
    """The step's inputs as the agent reads them: a reviewer's diff added, a repair round's functions."""
    inputs: dict[str, Any] = steady(dict(context.inputs))
    if reviews:
        inputs["diff"] = review_diff(context)
    if isinstance(inputs.get("repair"), Mapping):
        # A repair round completes again the functions that were stubs when the attempt began, and
        # those its `place` step put in.
        stubs = stub_functions(files_at_base(context, named_files(task, inputs)))
        stubs += [item for item in placed_functions(context.upstream) if item not in stubs]
        inputs["repair"] = {**inputs["repair"], "functions": stubs}
    return inputs


def _review_votes(agent: AgentSpec, runtime: Runtime, context: NodeContext, run: AgentRun) -> list[Vote]:
    """A reviewer's vote, with its calibration as evidence for the gate."""
    if not run.ok:
        # A reviewer that reaches no verdict abstains; it does not fail the run. The gate still needs
        # its approvals (`min_approvals`), so nothing passes on a reviewer's silence.
        run.ok = True
        run.output = {"verdict": Verdict.ABSTAIN.value, "reasons": [f"no verdict: {run.error}"[:300]]}
    if not run.output:
        return []
    label = runtime.identity.label()
    evidence = {
        "model": label,
        "seed": context.seed,
        "temperature": context.temperature,
        # Measured accuracy from the evals notes ({}: uncalibrated); the gate reads it here.
        "calibration": read_calibration(open_worktree(context.worktree), agent.name, label),
    }
    return [
        Vote(
            voter=f"reviewer:{context.node_id}",
            verdict=run.output["verdict"],
            reasons=list(run.output.get("reasons", [])),
            evidence=evidence,
        )
    ]


def _plan_not_needed(stubs: list[dict[str, str]]) -> NodeResult:
    """A planner's step when the task's files hold stubs (the task's own, or a `place` step's): the
    implementer's move is then a code completion at each stub from its file alone, which reads no plan.
    Measured (README, HumanEval stub tasks, pass@1): 6/15 with the plan step and 6/15 without, 24.2 s a
    task with it and 13.9 s without; so no model runs, and the plan names the stubs' files."""
    names = ", ".join(f"{item['path']}:{item['function']}" for item in stubs[:4])
    plan = f"Complete the stubs: {names}." if len(stubs) <= 4 else f"Complete {len(stubs)} stubs: {names}, …"
    files = list(dict.fromkeys(item["path"] for item in stubs))
    return NodeResult(
        summary=f"no plan needed: {len(stubs)} stub(s) to complete", output={"plan": plan, "files": files}
    )


def _run_checks(sandbox: Sandbox, context: NodeContext) -> list[dict[str, Any]]:
    results = []
    for command in context.spec.acceptance:
        if context.cancelled.is_set():  # the runner stopped waiting for this node: start nothing more
            break
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
        if done.limit is not None:  # the sandbox limit it reached, named in the vote too
            results[-1]["limit"] = done.limit
    return results


def baseline_executor(sandbox: Sandbox) -> NodeExecutor:
    """Run the acceptance checks on the untouched base, in the same sandbox; leave no trace in the tree.

    Best-of-N runs several attempts from one base: the result is kept per (task, base tree) in-process.
    """
    seen: dict[tuple[str, str], dict[str, Any]] = {}

    def execute(context: NodeContext) -> NodeResult:
        key = (context.task_id, str(head_tree(context.worktree)))
        if key not in seen:
            results = _run_checks(sandbox, context)
            if context.cancelled.is_set():  # abandoned past its deadline: the tree is the next node's now
                return NodeResult(summary="timed out", ok=False, error="timed out", model="-")
            # A check may write files (logs, caches, FIFOs, repositories of its own): the base step must
            # stay the base. `reset --hard` + `clean -fdx` done by libgit2, so nothing the check
            # configured runs.
            restore_worktree(context.worktree, ignored=True)
            passing = [result["command"] for result in results if result["exit_code"] == 0]
            seen[key] = {"results": results, "passing": passing}
        output = seen[key]
        summary = f"baseline: {len(output['passing'])}/{len(output['results'])} checks pass before any change"
        return NodeResult(summary=summary, output=output, model="-")

    return execute


def acceptance_executor(sandbox: Sandbox) -> NodeExecutor:
    """Run the spec's acceptance commands in the worktree; the result is a vote, not a node failure.

    With a baseline recorded, the vote says which checks went from failing to passing (`fixed`) and which
    passed before any change (`passes_at_base`: they do not test the task).
    """

    def execute(context: NodeContext) -> NodeResult:
        results = _run_checks(sandbox, context)
        passed = all(result["exit_code"] == 0 for result in results)
        failing = [result["command"] for result in results if result["exit_code"] != 0]
        evidence: dict[str, Any] = {"results": results}
        reasons = [f"{len(results) - len(failing)}/{len(results)} checks passed"]
        reasons += [
            f"failed: {r['command']}" + (f" (sandbox limit: {r['limit']})" if r.get("limit") else "")
            for r in results
            if r["exit_code"] != 0
        ]
        baseline = context.upstream.get(BASELINE)
        if isinstance(baseline, Mapping) and "passing" in baseline:
            at_base = set(baseline["passing"])
            evidence["baseline"] = True
            evidence["passes_at_base"] = [r["command"] for r in results if r["command"] in at_base]
            evidence["fixed"] = [
                r["command"] for r in results if r["exit_code"] == 0 and r["command"] not in at_base
            ]
            for result in results:
                result["passes_at_base"] = result["command"] in at_base
            reasons += [
                f"passes without any change: does not test the task: {command}"
                for command in evidence["passes_at_base"]
            ]
        vote = Vote(
            voter="acceptance",
            verdict=Verdict.APPROVE if passed else Verdict.REJECT,
            reasons=reasons,
            evidence=evidence,
        )
        summary = (
            f"acceptance {'passed' if passed else 'failed'}: {len(results) - len(failing)}/{len(results)}"
        )
        output: dict[str, Any] = {"passed": passed, "results": results}
        if "fixed" in evidence:
            output["fixed"] = evidence["fixed"]
        return NodeResult(summary=summary, output=output, votes=[vote], model="-")

    return execute


def gate_executor(policy: GatePolicy) -> NodeExecutor:
    def execute(context: NodeContext) -> NodeResult:
        from pantheon_git.review.gate import signers_problem
        from pantheon_git.review.trust import run_waits
        from pantheon_git.store.git import open_repo
        from pantheon_git.store.signing import allowed_signers

        # previous_votes are only the counted (signed) ones; with no allowed signers nothing can count,
        # and the gate says how to set signing up instead of blaming the acceptance checks.
        problem = signers_problem(
            allowed_signers(open_repo(context.worktree), context.spec.base), context.spec.base
        )
        decision = decide(policy, context.previous_votes, trust_problem=problem)
        vote = gate_vote(policy, decision)
        summary = f"{decision.verdict} ({'; '.join(decision.reasons)})"
        if decision.verdict == Verdict.APPROVE:
            # The step's subject is the run's line in `git log`: it says first why no merge takes it.
            waits = run_waits(open_repo(context.worktree), context.run_ref, context.spec.base)
            summary = f"waits: {waits} ({summary})" if waits else summary
        return NodeResult(
            summary=summary,
            output={"verdict": decision.verdict, "reasons": decision.reasons},
            votes=[vote],
        )

    return execute


def unheld_calls(name: str, agent: AgentSpec, config: ModelConfig) -> str | None:
    """Why the agent's calls cannot be held to their grammar by its model's server, or None: such an
    agent is refused before anything runs (unconstrained, its calls would be free text)."""
    if config.in_process or agent.call_format != "code" or "lark" in config.grammars:
        return None
    return (
        f'agent {name}: its calls (call_format = "code") are held by a Lark grammar, which model '
        f"{agent.model}'s server at {config.url} does not take (models.{agent.model}.grammars = "
        f'{config.grammars}): add "lark" there if the server holds llguidance grammars (vLLM\'s guidance '
        'backend, llama-server built with LLAMA_LLGUIDANCE), or set call_format = "json" on the agent'
    )


def executors_for(
    agent_names: set[str],
    agents: Mapping[str, AgentSpec],
    models: Mapping[str, ModelConfig],
    gate_policy: GatePolicy,
    *,
    sandbox: Sandbox = run_sandboxed,
    adapters: Mapping[str, Path | None] | None = None,
    model_hosts: tuple[ModelHost, ...] = (),
) -> dict[str, NodeExecutor]:
    """Executors for the given agent names; refuses non-local runtimes before anything runs (a model
    server counts as local only when `model_hosts` lists it)."""
    from pantheon_git.errors import PantheonError

    executors: dict[str, NodeExecutor] = {}
    checks = []
    unheld: list[str] = []
    for name in sorted(agent_names):
        if name == "acceptance":
            executors[name] = acceptance_executor(sandbox)
        elif name == BASELINE:
            executors[name] = baseline_executor(sandbox)
        elif name == "gate":
            executors[name] = gate_executor(gate_policy)
        elif name == CHECKS:  # the deterministic reviewers: night/checks.py
            executors[name] = checks_executor(sandbox, gate_policy)
        elif name == PLACE:  # the stub of a function the task adds: night/place.py
            executors[name] = place_executor()
        else:
            agent = agents[name]
            config = models.get(agent.model)
            if config is None:
                raise PantheonError(f"agent {name}: model '{agent.model}' is not in .pantheon/models.toml")
            promoted = (adapters or {}).get(name)
            if promoted is not None:
                config = config.model_copy(update={"adapter": str(promoted)})
            if (why := unheld_calls(name, agent, config)) is not None:
                unheld.append(why)
            served = agent.model if config.url is None else f"{agent.model} at {config.url}"
            checks.append((name, served, config_is_local(config, model_hosts)))
            executors[name] = agent_executor(agent, config, sandbox, hosts=model_hosts)
    refuse_non_local(checks)
    if unheld:
        raise PantheonError(unheld[0])
    return executors
