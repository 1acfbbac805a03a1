"""The tool-calling loop: one grammar-constrained call per turn, validated, executed, fed back.

Decoding is held to the agent's tools (plus `finish`, whose arguments are the agent's output model) in
the call format of agents/calls.py: by default code travels as plain lines under a Lark grammar, else
as JSON under the union of the tools' schemas. What still fails validation or a tool's own checks goes
back to the model as an error, up to `retries` in a row. The loop ends on a valid `finish` or fails
clearly at `max_iterations`. Decoding is greedy with the model's fixed seed, so a step can be replayed
(a code completion retried in one step samples with a seed of its own). Every prompt and its turn's
`max_tokens` fit the runtime's context window: a turn that would not is not decoded.
When the model carries a chat template, each turn's prompt is rendered through it (agents/prompt.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from pantheon_git.agents import calls as call_formats
from pantheon_git.agents.calls import (
    DEFAULT_FORMAT,
    DIVIDER,
    REPLACE_CLOSE,
    SEARCH_OPEN,
    CallFormat,
    body_grammar,
)
from pantheon_git.agents.context import editable_files, named_files, repository_context
from pantheon_git.agents.examples import past_examples, worked_examples
from pantheon_git.agents.existing import held_paths
from pantheon_git.agents.prompt import CALL, chat_prompt, render_header, render_turn
from pantheon_git.agents.spec import AgentSpec
from pantheon_git.agents.stubs import (
    BODY_MAX_TOKENS,
    Stub,
    find_function,
    find_stub,
    find_stubs,
    fit_prompt,
    kept_body,
    repair_prompt,
)
from pantheon_git.runtime.base import Completion, ContextOverflow, Runtime
from pantheon_git.store.redact import redact, redact_all
from pantheon_git.tools.builtin import TOOLS, Tool, ToolContext
from pantheon_git.tools.paths import ToolError

PROMPT_FORMAT = "pantheon-plain-2"
CHAT_FORMAT = "pantheon-chat-1"
DEFAULT_CONTEXT_TOKENS = 1024  # when the runtime sets none (its models.toml `context_tokens`)
RETRY_TEMPERATURE = 0.8  # a code completion tried again in one step (its edit was refused) samples
MIN_TURN_TOKENS = 64  # a turn with less room than this left in the context window is not worth decoding


def call_schema(
    tools: list[Tool], output: type[BaseModel], choices: call_formats.Choices | None = None
) -> dict[str, Any]:
    """JSON schema of one call: {"tool": <name>, "args": <that tool's arguments>}, any of the tools."""
    specs = [(tool.name, tool.args) for tool in tools] + [("finish", output)]
    return call_formats.json_schema(specs, choices)


def call_grammar(
    tools: list[Tool],
    output: type[BaseModel],
    call_format: CallFormat,
    files: Mapping[str, str] | None = None,
    choices: call_formats.Choices | None = None,
) -> dict[str, Any] | str:
    """What a turn is decoded under: a JSON schema, or a Lark grammar (a str) for the CODE format (in
    which, given the named `files`' texts, an edit's path and SEARCH lines come from them). `choices`
    hold fields to their values in either format (agents/existing.py: a reading agent's paths)."""
    if call_format is CallFormat.JSON:
        return call_schema(tools, output, choices)
    specs = [(tool.name, tool.args) for tool in tools] + [("finish", output)]
    return call_formats.lark_grammar(specs, files, choices)


@dataclass(slots=True)
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
    call_format: CallFormat = DEFAULT_FORMAT
    prompt_format: str = PROMPT_FORMAT

    def trace(self, agent: AgentSpec, runtime: Runtime) -> dict[str, Any]:
        """The loop as the trace note records it (secrets redacted)."""
        ident = runtime.identity
        traced: dict[str, Any] = redact_all(
            {
                "agent": agent.name,
                "agent_version": agent.version,
                "format": self.prompt_format,
                "call_format": self.call_format.value,
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
        return traced  # a dict comes back a dict


def parse_call(
    text: str,
    tools: dict[str, Tool],
    output: type[BaseModel],
    call_format: CallFormat = CallFormat.JSON,
) -> tuple[str, BaseModel]:
    """(tool name, validated arguments) of a completion, or ValueError with the reason."""
    models = {name: tool.args for name, tool in tools.items()} | {"finish": output}
    return call_formats.parse(text, models, call_format)


def agent_header(
    agent: AgentSpec,
    context: ToolContext,
    task: dict[str, Any],
    inputs: dict[str, Any],
    *,
    call_format: CallFormat = DEFAULT_FORMAT,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    examples: Sequence[str] | None = None,
) -> str:
    """Everything before the first call: role, tools, examples, repository context, the task."""
    tools = [TOOLS[name] for name in agent.tools]
    listed = [(t.name, t.description, t.args) for t in tools] + [
        ("finish", "end the task with this result", agent.output)
    ]
    if examples is None:
        # The planner's example is about the task's own files (a small planner copies its paths).
        examples = worked_examples(agent, call_format, task, inputs, context.worktree)
        if agent.learns_from_past:
            examples = [*past_examples(context.worktree, task, agent, call_format), *examples]
    outline, files = "", ""
    if agent.context:
        outline, files = repository_context(
            context.worktree, task, inputs, context_tokens, with_outline="outline" in agent.context
        )
    return render_header(
        agent.role, listed, examples, task, inputs, call_format=call_format, outline=outline, files=files
    )


# Tools whose success changes the worktree.
CHANGING_TOOLS = frozenset({"edit", "create", "write_file"})


def run_agent(
    agent: AgentSpec,
    runtime: Runtime,
    context: ToolContext,
    task: dict[str, Any],
    inputs: dict[str, Any],
    *,
    seed: int | None = None,
    call_format: CallFormat | None = None,
    examples: Sequence[str] | None = None,
    header: str | None = None,
) -> AgentRun:
    """Run `agent` until it finishes validly, gives up after too many errors, or runs out of turns.

    `header` replaces the prompt's header as built now (replay gives the recorded one: past examples
    and the repository outline change as the repository does). A repair round (`inputs["repair"]`)
    completes again each function its `functions` name (the stubs the attempt started from, see
    night/executors.py), from the file with the failing checks' output above it, as a code completion;
    being inputs, they are in the trace, and replay repeats the round."""
    call_format = call_format or CallFormat(agent.call_format)
    tools = {name: TOOLS[name] for name in agent.tools}
    # The files the task names hold an edit's path and SEARCH lines (re-read each turn: edits change them).
    named = named_files(task, inputs) if "edit" in tools and call_format is CallFormat.CODE else []
    if header is None:
        budget = DEFAULT_CONTEXT_TOKENS if runtime.context_tokens is None else runtime.context_tokens
        header = agent_header(
            agent, context, task, inputs, call_format=call_format, context_tokens=budget, examples=examples
        )
    run = AgentRun(
        ok=False,
        output=None,
        error=None,
        header=header,
        task=task,
        inputs=inputs,
        seed=seed,
        call_format=call_format,
        # A model with a chat template gets its prompts rendered through it; base models keep plain text.
        prompt_format=CHAT_FORMAT if runtime.chat is not None else PROMPT_FORMAT,
    )
    loop = _Loop(
        agent=agent,
        runtime=runtime,
        context=context,
        tools=tools,
        call_format=call_format,
        named=named,
        # An agent that only reads names only paths that exist or that the spec asks for (agents/existing.py).
        paths=held_paths(context.worktree, task, list(tools), agent.output),
        to_repair=repair_targets(inputs, named) if named else [],
        failures=repair_outputs(inputs),
        seed=seed,
        run=run,
        transcript=header,
    )
    for number in range(1, agent.max_iterations + 1):
        if context.seconds_left() <= 0:
            run.error = f"out of time after {number - 1} turns"
            return loop.ended()
        plan = _plan_turn(loop, number)
        if plan is None:
            window = runtime.context_window
            run.error = (
                f"the prompt no longer fits the model's context ({window} tokens) after {number - 1} turns"
            )
            return loop.ended()
        try:
            completion = runtime.complete(
                plan.prompt, schema=plan.grammar, max_tokens=plan.max_tokens, **plan.sampling
            )
        except ContextOverflow as full:  # the runtime's own count of the prompt outgrew its window
            run.error = f"the transcript no longer fits the model's context after {number - 1} turns ({full})"
            return run
        text, turn = _record_turn(run, plan, completion, number)
        ended = _act(loop, plan, completion, text, turn)
        if ended is not None:
            return ended
        if loop.errors_in_row > agent.retries:
            run.error = f"gave up after {loop.errors_in_row} failed calls in a row; last: {turn.get('error')}"
            return loop.ended()
        loop.transcript += render_turn(text, turn["result"])
    run.error = f"no valid finish within {agent.max_iterations} turns"
    return loop.ended()


@dataclass(slots=True)
class _Loop:
    """What one run of the loop carries from turn to turn."""

    agent: AgentSpec
    runtime: Runtime
    context: ToolContext
    tools: dict[str, Tool]
    call_format: CallFormat
    named: list[str]  # the files an edit may name (CODE format), re-read every turn
    paths: call_formats.Choices | None  # a reading agent's path choices
    to_repair: list[tuple[str, str]]  # (path, function) a repair round has still to complete
    failures: list[str]  # the failing checks' output a repair round shows
    seed: int | None
    run: AgentRun
    transcript: str  # the plain-format prompt so far
    errors_in_row: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # paths a call changed successfully
    tried: set[str] = field(default_factory=set)  # code-completion prompts already sent in this step

    def ended(self, summary: str | None = None) -> AgentRun:
        return _ended_after_changes(self.run, self.agent, self.changed, summary)


@dataclass(frozen=True, slots=True)
class _TurnPlan:
    """What one turn sends the model: the prompt, what decoding is held to, and the stub it fills."""

    prompt: str
    grammar: dict[str, Any] | str
    max_tokens: int
    sampling: dict[str, Any]
    stub: tuple[str, Stub] | None  # (path, stub): the turn is a code completion at it
    repairing: bool  # the stub is a function a repair round completes again
    excluded_tool: str  # the tool left out of the grammar after the same call twice ("": none)


def _plan_turn(loop: _Loop, number: int) -> _TurnPlan | None:
    """The next turn's prompt and grammar, each prompt fitted with the turn's `max_tokens` to the
    runtime's context window (None: it no longer fits)."""
    runtime, agent = loop.runtime, loop.agent
    # Every prompt is budgeted in the runtime's own tokens, so that the prompt and the turn's max_tokens
    # fit its context window together (None: the runtime knows of no window, and nothing is fitted).
    window, count = runtime.context_window, runtime.count_tokens
    kept, repeated = list(loop.tools.values()), ""
    # A small model can loop on one call; after the same call twice in a row, that tool is left out
    # of the next turn's grammar, so decoding must choose something else (finish included).
    if len(loop.calls) >= 2 and loop.calls[-1] == loop.calls[-2]:
        repeated = loop.calls[-1]["tool"]
        kept = [t for t in loop.tools.values() if t.name != repeated]
    files = editable_files(loop.context.worktree, loop.named) if loop.named else None
    grammar = call_grammar(kept, agent.output, loop.call_format, files, loop.paths)
    chat = runtime.chat
    prompt = (
        chat_prompt(chat, loop.run.header, loop.run.turns) if chat is not None else loop.transcript + CALL
    )
    # A named file still holding a stub: the move is a code completion at the stub (agents/stubs.py),
    # from the file itself as the prompt; the loop writes the edit call around the body it gets.
    can_edit = bool(files) and "edit" in {t.name for t in kept}
    stub = first_stub(files or {}) if can_edit else None
    repairing = next_repair(files, loop.to_repair) if can_edit and stub is None else None
    max_tokens = agent.max_tokens
    limit = window - max_tokens if window else None
    if stub is not None:
        prompt, grammar = stub[1].prefix, body_grammar()
        if limit is not None and count(prompt) > limit:  # a long file: the nearest code stays
            prompt = fit_prompt(stub[1].before, "", stub[1].head, count, limit) or ""
    elif repairing is not None:
        # A repair round sends the failing function's file, its old body and the checks' output,
        # never the whole header again: it fits the context by construction (agents/stubs.py).
        stub = repairing
        prompt = repair_prompt(stub[1], loop.failures, count, limit or 10**9) or ""
        grammar = body_grammar()
    if stub is not None:
        max_tokens = min(max_tokens, BODY_MAX_TOKENS)
    elif window is not None:
        max_tokens = min(max_tokens, window - count(prompt))
    if not prompt or max_tokens < MIN_TURN_TOKENS:
        return None
    sampling: dict[str, Any] = {"seed": loop.seed}
    if stub is not None and prompt in loop.tried:
        # The same code completion again (its edit was refused, say a body cut off mid-statement):
        # greedy decoding would write the same body, so the retry samples with its own seed.
        sampling = {"seed": (loop.seed or 0) + number, "temperature": RETRY_TEMPERATURE}
    if stub is not None:
        loop.tried.add(prompt)
    return _TurnPlan(prompt, grammar, max_tokens, sampling, stub, repairing is not None, repeated)


def _record_turn(
    run: AgentRun, plan: _TurnPlan, completion: Completion, number: int
) -> tuple[str, dict[str, Any]]:
    """(the call's text, the turn as the trace records it), the run's token counts added up. A code
    completion's body becomes the edit call that puts it in place."""
    text, body = completion.text, None
    stub = plan.stub
    if stub is not None and not text.startswith("edit "):  # (a replayed turn was recorded as the call)
        body = kept_body(text)
        text = stub_edit(stub[0], stub[1], text)
    text = text.strip()
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
    if completion.served_by:  # which model a server says answered (its URL is in the trace's model)
        turn["served_by"] = completion.served_by
    run.turns.append(turn)
    if stub is not None:
        # This turn's prompt is the file, not the transcript: recorded so replay can check it.
        turn["stub"] = {"path": stub[0], "function": stub[1].name, "prompt": plan.prompt}
        if body is not None:  # what the model wrote from that prompt: a completion row to learn from
            turn["stub"]["body"] = body
        if plan.repairing:
            turn["stub"]["repair"] = True
        if "temperature" in plan.sampling:
            turn["sampling"] = plan.sampling
    if plan.excluded_tool:
        turn["excluded_tool"] = plan.excluded_tool
    return text, turn


def _act(
    loop: _Loop, plan: _TurnPlan, completion: Completion, text: str, turn: dict[str, Any]
) -> AgentRun | None:
    """Validate the turn's call and run it. The run when the loop ends here (a valid finish, time
    up, every stub filled); else None, with the turn's (redacted) result recorded."""
    run = loop.run
    try:
        # A body cut off at max_tokens is still a body (its last, partial line dropped, as raw
        # completion would keep it); the edit's syntax check refuses it if it does not parse.
        if completion.finish_reason == "length" and plan.stub is None:
            cut = completion.tokens_out
            raise ValueError(f"the call was cut off after {cut} tokens; make it shorter")
        name, args = parse_call(text, loop.tools, loop.agent.output, loop.call_format)
    except ValueError as invalid:
        result = f"error: {invalid}"
        turn["error"] = str(invalid)
        loop.errors_in_row += 1
    else:
        turn["call"] = {"tool": name, "args": args.model_dump(mode="json")}
        if name == "finish":
            run.ok, run.output = True, args.model_dump(mode="json")
            return run
        if loop.context.seconds_left() <= 0:  # the runner stopped waiting for this node: change nothing
            run.error = f"out of time after {turn['n']} turns"
            return loop.ended()
        done, result = _execute(loop, plan, turn, name, args)
        if done is not None:
            return done
    turn["result"] = redact(result)
    return None


def _execute(
    loop: _Loop, plan: _TurnPlan, turn: dict[str, Any], name: str, args: BaseModel
) -> tuple[AgentRun | None, str]:
    """(the run if filling this stub finished the step, else None; the tool's result or its refusal)."""
    stub = plan.stub
    started = time.perf_counter()
    try:
        result = loop.tools[name].function(args, loop.context)
        loop.errors_in_row = 0
        if name in CHANGING_TOOLS:
            loop.changed.append(str(getattr(args, "path", name)))
        if stub is not None:  # a stub filled is not repaired again in this step
            loop.to_repair = [target for target in loop.to_repair if target != (stub[0], stub[1].name)]
            now = editable_files(loop.context.worktree, loop.named)
            if first_stub(now) is None and next_repair(now, loop.to_repair) is None:
                # Every stub is filled: the step's work is done, and a small model left to itself
                # wanders (edits that change nothing, runs) until it runs out of turns; the
                # acceptance checks judge the code next.
                verb = "repaired" if plan.repairing else "completed"
                done = loop.ended(f"{verb} {stub[1].name} in {stub[0]}")
                if done.ok:
                    turn["result"] = redact(result)
                    return done, result
    except ToolError as refused:
        result = f"error: {refused}"
        turn["error"] = str(refused)
        loop.errors_in_row += 1
    turn["tool_seconds"] = round(time.perf_counter() - started, 3)
    if loop.calls and turn["call"] == loop.calls[-1]:
        result += "\n(same call as the turn before; if the task is done, call finish)"
    loop.calls.append(turn["call"])
    return None, result


def _ended_after_changes(
    run: AgentRun, agent: AgentSpec, changed: list[str], summary: str | None = None
) -> AgentRun:
    """A run that changed files and then lost its way (no finish) still hands its changes on: whether
    they are right is the acceptance checks' to say, not the model's to announce. Only for agents whose
    output is a summary; the run keeps its error in the trace."""
    if not changed:
        return run
    summary = summary or f"changed {', '.join(dict.fromkeys(changed))}; ended without finish ({run.error})"
    summary = summary[:600]
    try:
        output = agent.output.model_validate({"summary": summary})
    except ValidationError:
        return run
    run.ok, run.output = True, output.model_dump(mode="json")
    return run


def rebuild_prompt(header: str, turns: list[dict[str, Any]], number: int) -> str:
    """The exact prompt turn `number` (1-based) was given, from a trace's header and turns (plain format)."""
    if number <= len(turns) and "stub" in turns[number - 1]:
        return str(turns[number - 1]["stub"]["prompt"])  # a code completion at a stub (agents/stubs.py)
    text = header
    for turn in turns[: number - 1]:
        text += render_turn(turn["completion"], turn["result"])
    return text + CALL


def first_stub(files: Mapping[str, str]) -> tuple[str, Stub] | None:
    """(path, stub) of the first named Python file that holds a stub, or None."""
    for path, text in files.items():
        stub = find_stub(text) if path.endswith(".py") else None
        if stub is not None:
            return path, stub
    return None


def repair_targets(inputs: Mapping[str, Any], named: Sequence[str]) -> list[tuple[str, str]]:
    """(path, function) of each function a repair round completes again (in the named files); []
    outside a repair round."""
    repair = inputs.get("repair")
    functions = repair.get("functions") if isinstance(repair, Mapping) else None
    if not isinstance(functions, list):
        return []
    return [
        (str(item["path"]), str(item["function"]))
        for item in functions
        if isinstance(item, Mapping) and item.get("path") in named and item.get("function")
    ]


def stub_functions(files: Mapping[str, str]) -> list[dict[str, str]]:
    """Each stub of the given Python files as {"path", "function"} (what a repair round completes)."""
    return [
        {"path": path, "function": stub.name}
        for path, text in files.items()
        if path.endswith(".py")
        for stub in find_stubs(text)
    ]


def repair_outputs(inputs: Mapping[str, Any]) -> list[str]:
    """The failing checks' output a repair round carries (`night/attempt.py` repair_feedback)."""
    repair = inputs.get("repair")
    if not isinstance(repair, Mapping):
        return []
    checks = repair.get("failed_checks") or []
    return [str(check.get("output", "")) for check in checks if isinstance(check, Mapping)]


def next_repair(
    files: Mapping[str, str] | None, targets: Sequence[tuple[str, str]]
) -> tuple[str, Stub] | None:
    """(path, function as it is now) of the first repair target still to complete, or None."""
    for path, name in targets:
        function = find_function((files or {}).get(path, ""), name)
        if function is not None:
            return path, function
    return None


def stub_edit(path: str, stub: Stub, completion: str) -> str:
    """The edit call that puts a completed body in place of the stub's placeholder."""
    body = kept_body(completion)
    return f"edit path={path}\n{SEARCH_OPEN}\n{stub.whole}{DIVIDER}\n{stub.head}{body}{REPLACE_CLOSE}"
