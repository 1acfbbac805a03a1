"""The tool-calling loop: one schema-constrained JSON call per turn, validated, executed, fed back.

Decoding is held to the union of the agent's tools' argument schemas (plus `finish`, whose arguments
are the agent's output model), so the model cannot emit malformed JSON; what still fails validation or
a tool's own checks goes back to the model as an error, up to `retries` in a row. The loop ends on a
valid `finish` or fails clearly at `max_iterations`. Decoding is greedy with the model's fixed seed, so
a step can be replayed exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from pantheon_git.agents.prompt import CALL, render_header, render_turn
from pantheon_git.agents.spec import AgentSpec
from pantheon_git.runtime.base import Runtime
from pantheon_git.store.redact import redact, redact_all
from pantheon_git.tools.builtin import TOOLS, Tool, ToolContext
from pantheon_git.tools.paths import ToolError

PROMPT_FORMAT = "pantheon-plain-1"


def _strip_titles(schema: Any) -> Any:
    """pydantic's schemas carry titles that only cost grammar size."""
    if isinstance(schema, dict):
        return {key: _strip_titles(value) for key, value in schema.items() if key != "title"}
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def call_schema(tools: list[Tool], output: type[BaseModel]) -> dict[str, Any]:
    """JSON schema of one call: {"tool": <name>, "args": <that tool's arguments>}, any of the tools."""
    options = []
    for name, args in [(tool.name, tool.args) for tool in tools] + [("finish", output)]:
        options.append(
            {
                "type": "object",
                "properties": {"tool": {"const": name}, "args": _strip_titles(args.model_json_schema())},
                "required": ["tool", "args"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": options}


@dataclass
class AgentRun:
    ok: bool
    output: dict[str, Any] | None
    error: str | None
    header: str
    task: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_evaluated: int = 0
    seconds: float = 0.0

    def trace(self, agent: AgentSpec, runtime: Runtime) -> dict[str, Any]:
        """The loop as the trace note records it (secrets redacted)."""
        ident = runtime.identity
        return redact_all(
            {
                "agent": agent.name,
                "agent_version": agent.version,
                "format": PROMPT_FORMAT,
                "model": {
                    "name": ident.name,
                    "engine": ident.engine,
                    "sha256": ident.sha256,
                    "adapter": ident.adapter,
                    "seed": ident.seed,
                    **ident.extra,
                },
                "prompt": self.header,
                "task": self.task,
                "inputs": self.inputs,
                "sampling_seed": self.seed,
                "turns": self.turns,
                "output": self.output,
                "error": self.error,
                "tokens": {"in": self.tokens_in, "out": self.tokens_out, "evaluated": self.tokens_evaluated},
                "seconds": round(self.seconds, 3),
            }
        )


def parse_call(text: str, tools: dict[str, Tool], output: type[BaseModel]) -> tuple[str, BaseModel]:
    """(tool name, validated arguments) of a completion, or ValueError with the reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict) or set(data) != {"tool", "args"}:
        raise ValueError('a call is {"tool": NAME, "args": {...}}')
    name = data["tool"]
    model = output if name == "finish" else tools[name].args if name in tools else None
    if model is None:
        raise ValueError(f"unknown tool {name!r}; the tools are {', '.join([*tools, 'finish'])}")
    try:
        return name, model.model_validate(data["args"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "args"
        raise ValueError(f"{name}: {where}: {first['msg']}") from None


def run_agent(
    agent: AgentSpec,
    runtime: Runtime,
    context: ToolContext,
    task: dict[str, Any],
    inputs: dict[str, Any],
    *,
    seed: int | None = None,
) -> AgentRun:
    """Run `agent` until it finishes validly, gives up after too many errors, or runs out of turns."""
    tools = {name: TOOLS[name] for name in agent.tools}
    schema = call_schema(list(tools.values()), agent.output)
    header = render_header(
        agent.role,
        [(t.name, t.description, t.args) for t in tools.values()]
        + [("finish", "end the task with this result", agent.output)],
        agent.examples,
        task,
        inputs,
    )
    run = AgentRun(ok=False, output=None, error=None, header=header, task=task, inputs=inputs, seed=seed)
    transcript = header
    errors_in_row = 0
    calls: list[dict[str, Any]] = []
    for number in range(1, agent.max_iterations + 1):
        if context.seconds_left() <= 0:
            run.error = f"out of time after {number - 1} turns"
            return run
        turn_schema, repeated = schema, ""
        # A small model can loop on one call; after the same call twice in a row, that tool is left out
        # of the next turn's schema, so decoding must choose something else (finish included).
        if len(calls) >= 2 and calls[-1] == calls[-2]:
            repeated = calls[-1]["tool"]
            turn_schema = call_schema([t for t in tools.values() if t.name != repeated], agent.output)
        completion = runtime.complete(
            transcript + CALL, schema=turn_schema, max_tokens=agent.max_tokens, seed=seed
        )
        text = completion.text.strip()
        run.tokens_in += completion.tokens_in
        run.tokens_out += completion.tokens_out
        run.tokens_evaluated += completion.tokens_evaluated
        run.seconds += completion.seconds
        turn: dict[str, Any] = {
            "n": number,
            "completion": text,
            "tokens_in": completion.tokens_in,
            "tokens_out": completion.tokens_out,
            "tokens_evaluated": completion.tokens_evaluated,
            "seconds": round(completion.seconds, 3),
        }
        run.turns.append(turn)
        if repeated:
            turn["excluded_tool"] = repeated
        try:
            name, args = parse_call(text, tools, agent.output)
        except ValueError as invalid:
            result = f"error: {invalid}"
            turn["error"] = str(invalid)
            errors_in_row += 1
        else:
            turn["call"] = {"tool": name, "args": args.model_dump(mode="json")}
            if name == "finish":
                run.ok, run.output = True, args.model_dump(mode="json")
                return run
            started = time.perf_counter()
            try:
                result = tools[name].function(args, context)
                errors_in_row = 0
            except ToolError as refused:
                result = f"error: {refused}"
                turn["error"] = str(refused)
                errors_in_row += 1
            turn["tool_seconds"] = round(time.perf_counter() - started, 3)
            if calls and turn["call"] == calls[-1]:
                result += "\n(same call as the turn before; if the task is done, call finish)"
            calls.append(turn["call"])
        result = redact(result)
        turn["result"] = result
        if errors_in_row > agent.retries:
            run.error = f"gave up after {errors_in_row} failed calls in a row; last: {turn.get('error')}"
            return run
        transcript += render_turn(text, result)
    run.error = f"no valid finish within {agent.max_iterations} turns"
    return run


def rebuild_prompt(header: str, turns: list[dict[str, Any]], number: int) -> str:
    """The exact prompt turn `number` (1-based) was given, from a trace's header and turns."""
    text = header
    for turn in turns[: number - 1]:
        text += render_turn(turn["completion"], turn["result"])
    return text + CALL
