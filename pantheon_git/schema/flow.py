"""Flows: `.pantheon/flows/NAME.toml` as a validated DAG of nodes, and pure planning over it.

A node runs one agent; `inputs` name the upstream nodes whose outputs it receives; `when` is a small
condition on upstream outputs (`test.passed`, `not plan.skip`, `review-a.verdict == "approve"`), parsed
here, never eval'ed. Unknown agents, cycles and missing inputs are refused with the file and the node.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pantheon_git.errors import PantheonError
from pantheon_git.schema.document import parse_toml, read_text, validate

# The runner's own node that decides a run (agents/builtin.py RUNNER_NODES; named here, below agents/).
GATE_AGENT = "gate"
NodeId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(value: str | int | float) -> float:
    """Seconds from 90, "90s", "20m" or "1.5h"."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f'\'{value}\' is not a duration like 90, "90s", "20m" or "1h"')
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NodeId
    agent: Annotated[str, Field(min_length=1)]
    inputs: list[NodeId] = Field(default_factory=list)
    when: str | None = None
    retries: int = Field(default=0, ge=0, le=10)
    timeout: float = 20 * 60
    seed: int | None = None
    # 0: greedy (the default); above 0 the node samples, with `seed` (or the model's seed) fixing the draw.
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # An acceptance node whose checks fail sends their output back to `repair` (default: its first input
    # that runs a model) for up to this many rounds; None: 2 for acceptance nodes.
    repairs: int | None = Field(default=None, ge=0, le=5)
    repair: NodeId | None = None
    # Fail the step when it leaves every file as it was; None: true for the implementer agent.
    require_change: bool | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be more than 0 seconds")
        return seconds


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    output: str | None = None  # the gate node that ends the flow (default: the only gate)
    nodes: Annotated[list[Node], Field(min_length=1)]


# --- `when` conditions -------------------------------------------------------------------------------

_CONDITION = re.compile(
    r"^\s*(?P<neg>not\s+)?(?P<node>[a-z0-9][a-z0-9_-]*)(?P<path>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
    r"(?:\s*(?P<op>==|!=)\s*(?P<value>.+?))?\s*$"
)


def parse_condition(text: str) -> tuple[bool, str, tuple[str, ...], str | None, Any]:
    """(negated, node, field path, operator, literal) of a `when` condition, or ValueError."""
    match = _CONDITION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not `node.field`, `not node.field` or `node.field == literal`")
    literal: Any = None
    if match.group("op"):
        try:
            literal = json.loads(match.group("value"))
        except json.JSONDecodeError:
            raise ValueError(f"'{match.group('value')}' is not a literal (true, 3, \"text\")") from None
    path = tuple(match.group("path").split(".")[1:])
    return bool(match.group("neg")), match.group("node"), path, match.group("op"), literal


def evaluate_condition(text: str, outputs: Mapping[str, Any]) -> bool:
    """Whether a `when` condition holds for the given upstream outputs (missing fields are falsy)."""
    negated, node, path, op, literal = parse_condition(text)
    value: Any = outputs.get(node, {})
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    if op == "==":
        result = value == literal
    elif op == "!=":
        result = value != literal
    else:
        result = bool(value)
    return not result if negated else result


# --- validation and planning -------------------------------------------------------------------------


def validate_flow(flow: Flow, source: str, known_agents: Iterable[str]) -> Flow:
    """Check the graph: unique ids, known agents, inputs that exist, no cycle, sound entry and output."""
    agents = set(known_agents)
    ids = [node.id for node in flow.nodes]
    seen: set[str] = set()
    for node in flow.nodes:
        where = f"{source}: node {node.id}"
        if node.id in seen:
            raise PantheonError(f"{where}: duplicate node id")
        seen.add(node.id)
        if node.agent not in agents:
            raise PantheonError(f"{where}: unknown agent '{node.agent}' (known: {', '.join(sorted(agents))})")
    for node in flow.nodes:
        where = f"{source}: node {node.id}"
        for name in node.inputs:
            if name not in seen:
                raise PantheonError(f"{where}: input '{name}' is not a node of this flow")
            if name == node.id:
                raise PantheonError(f"{where}: takes its own output as input")
        if node.when is not None:
            try:
                _, upstream, *_ = parse_condition(node.when)
            except ValueError as exc:
                raise PantheonError(f"{where}: when: {exc}") from None
            if upstream not in node.inputs:
                raise PantheonError(f"{where}: when: refers to '{upstream}', which is not among its inputs")
        if node.repair is not None and node.repair not in node.inputs:
            raise PantheonError(f"{where}: repair: '{node.repair}' is not among its inputs")
    topological_order(flow, source)
    if flow.output is not None and flow.output not in ids:
        raise PantheonError(f"{source}: output: '{flow.output}' is not a node of this flow")
    _check_it_ends(flow, source)
    return flow


def _check_it_ends(flow: Flow, source: str) -> None:
    """The flow must end in a gate that always runs and that every node leads to.

    The gate's vote is what finishes a run that did not fail: without one a run stays "running" and is
    resumed night after night; a node after the gate would run on a decided run.
    """
    gates = [node for node in flow.nodes if node.agent == GATE_AGENT]
    if not gates:
        raise PantheonError(
            f'{source}: nodes: no gate node (add one with agent = "{GATE_AGENT}" as the last node)'
        )
    output = flow.output if flow.output is not None else (gates[0].id if len(gates) == 1 else None)
    if output is None:
        raise PantheonError(f"{source}: output: several gate nodes; name the one that ends the flow")
    by_id = {node.id: node for node in flow.nodes}
    end = by_id[output]
    if end.agent != GATE_AGENT:
        raise PantheonError(f"{source}: output: '{output}' is not a gate node (agent = \"{GATE_AGENT}\")")
    if end.when is not None:
        raise PantheonError(f"{source}: node {output}: the gate that ends the flow cannot have a `when`")
    for node in flow.nodes:
        if output in node.inputs:
            raise PantheonError(
                f"{source}: node {node.id}: takes input from '{output}', which must end the flow"
            )
    reached: set[str] = set()
    pending = [output]
    while pending:
        for name in by_id[pending.pop()].inputs:
            if name not in reached:
                reached.add(name)
                pending.append(name)
    stray = [node.id for node in flow.nodes if node.id != output and node.id not in reached]
    if stray:
        raise PantheonError(
            f"{source}: node {stray[0]}: does not lead to the gate '{output}' "
            "(add it to the inputs of a node that does)"
        )


def topological_order(flow: Flow, source: str = "flow") -> list[Node]:
    """Nodes so that every node comes after its inputs; ties keep file order (deterministic)."""
    remaining = {node.id: set(node.inputs) for node in flow.nodes}
    order: list[Node] = []
    by_id = {node.id: node for node in flow.nodes}
    while remaining:
        ready = [node_id for node_id in by_id if node_id in remaining and not remaining[node_id]]
        if not ready:
            cycle = " -> ".join(sorted(remaining))
            raise PantheonError(f"{source}: the nodes {cycle} form a cycle")
        for node_id in ready:
            order.append(by_id[node_id])
            del remaining[node_id]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def parse_flow(text: str, source: str, known_agents: Iterable[str]) -> Flow:
    data = parse_toml(text, source)
    listed = data.get("nodes")
    nodes: list[Any] = listed if isinstance(listed, list) else []

    def name_field(loc: list[str]) -> str:
        # `nodes.2.agent` reads better as `node review: agent`
        if len(loc) >= 2 and loc[0] == "nodes" and loc[1].isdigit() and int(loc[1]) < len(nodes):
            node = nodes[int(loc[1])]
            number = f"#{int(loc[1]) + 1}"
            node_id = node.get("id", number) if isinstance(node, dict) else number
            return f"node {node_id}" + (": " + ".".join(loc[2:]) if len(loc) > 2 else "")
        return ".".join(loc) or "(top level)"

    flow = validate(Flow, data, source, text, name_field=name_field)
    if not flow.name:
        flow = flow.model_copy(update={"name": Path(source).stem})
    return validate_flow(flow, source, known_agents)


def flow_path(root: Path, name: str) -> Path:
    return root / ".pantheon" / "flows" / f"{name}.toml"


def check_flow_exists(root: Path, name: str, source: str, known_agents: Iterable[str]) -> Flow | None:
    """A spec's `flow` must name a valid flow of the repository (once .pantheon/flows exists)."""
    folder = root / ".pantheon" / "flows"
    if not folder.is_dir():
        return None
    if not flow_path(root, name).is_file():
        known = ", ".join(sorted(path.stem for path in folder.glob("*.toml"))) or "none"
        raise PantheonError(f"{source}: flow: no .pantheon/flows/{name}.toml (known: {known})")
    return load_flow(root, name, known_agents)


def load_flow(root: Path, name: str, known_agents: Iterable[str]) -> Flow:
    """The validated flow `name` of the repository at `root`."""
    path = flow_path(root, name)
    source = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    if not path.is_file():
        raise PantheonError(f"{source}: no such flow (flows live in .pantheon/flows/NAME.toml)")
    return parse_flow(read_text(path, source), source, known_agents)
