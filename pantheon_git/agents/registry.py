"""All agents a repository can use: the built-in ones, plus its own from `.pantheon/agents/*.py`.

A repository agent file defines `AgentSpec` objects at module level (any name); one with the name of a
built-in agent replaces it for that repository.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pantheon_git.agents.bounds import unheld
from pantheon_git.agents.builtin import BUILTIN_AGENTS, RUNNER_NODES
from pantheon_git.agents.calls import CallFormat, code_fields
from pantheon_git.agents.spec import AgentSpec
from pantheon_git.errors import PantheonError


def repository_agents(root: Path) -> dict[str, AgentSpec]:
    found: dict[str, AgentSpec] = {}
    for path in sorted((root / ".pantheon" / "agents").glob("*.py")):
        module_name = f"pantheon_repo_agents.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise PantheonError(f".pantheon/agents/{path.name}: cannot load: {exc!r}") from None
        for value in vars(module).values():
            if isinstance(value, AgentSpec):
                refuse_unheld_output(value, f".pantheon/agents/{path.name}")
                found[value.name] = value
    return found


def refuse_unheld_output(agent: AgentSpec, source: str) -> None:
    """A repository agent whose `finish` output is validated against what its call grammar cannot hold
    (a validator, an unanchored pattern, a bound on code sent as lines) is refused when its file loads:
    a call held to its grammar is promised valid, so such a rule would fail the agent at night, turn
    after turn, instead. In the JSON format the schema holds the bounds; validators stay unseen."""
    problems = unheld(agent.output, code_fields(agent.output))
    if agent.call_format == CallFormat.JSON:
        problems = [problem for problem in problems if "validator" in problem]
    if problems:
        raise PantheonError(
            f"{source}: agent {agent.name}: {problems[0]} (its finish call is validated against it, "
            "but its grammar cannot hold it)"
        )


def agents(root: Path) -> dict[str, AgentSpec]:
    return {**BUILTIN_AGENTS, **repository_agents(root)}


def agent_names(root: Path) -> set[str]:
    """Every name a flow node may use: model agents and the runner's own nodes."""
    return set(agents(root)) | set(RUNNER_NODES)


def check_models(root: Path, agent_names_used: set[str], source: str) -> None:
    """Every model agent a flow uses must name a model of .pantheon/models.toml (checked before a night)."""
    from pantheon_git.schema.models import load_models

    known = agents(root)
    models = load_models(root)
    for name in sorted(agent_names_used):
        agent = known.get(name)
        if agent is not None and agent.model not in models:
            raise PantheonError(
                f"{source}: agent {name}: model '{agent.model}' is not in .pantheon/models.toml "
                f"(known: {', '.join(sorted(models))})"
            )
