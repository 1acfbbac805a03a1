"""Our prompt format. The embedded Gemma 270M is a base model with no chat template and no tool tokens,
so the format is plain text with section headers, the same for every model, and easy to train on:

    ### Role
    <agent role>
    ### Tools
    - edit path=PATH + lines <<<<<<< SEARCH / … : replace one exact snippet …
    ### Example            (zero or more worked transcripts)
    …
    ### Repository         (an outline: modules and their top-level names)
    ### Task
    Title: …
    Scope: …
    Acceptance: …
    Inputs: {…}
    ### Files              (the files the task or plan names, with line numbers)
    Call: view path=src/calc.py
    Result: src/calc.py (12 lines), lines 1-12:
      1| …
    Call: finish summary=done

Each turn the model completes the text after the last `Call: ` with one call, held to the tools'
grammar during decoding; the loop appends `Result: …` and the next `Call: `. Turn N's prompt extends
turn N-1's, so the KV cache is reused and only the new lines are evaluated. A model whose GGUF carries a
chat template gets the same text as chat messages instead (header and results as user turns, calls as
assistant turns), rendered by the runtime's template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from pantheon_git.agents.calls import CallFormat, usage
from pantheon_git.runtime.base import ChatRenderer

CALL = "Call: "
RESULT = "Result: "


def _fields(model: type[BaseModel]) -> str:
    return usage("", model, CallFormat.JSON)


def render_tools(
    tools: Sequence[tuple[str, str, type[BaseModel]]], call_format: CallFormat = CallFormat.JSON
) -> str:
    if call_format is CallFormat.JSON:
        return "\n".join(f"- {name} {_fields(args)}: {description}" for name, description, args in tools)
    return "\n".join(f"- {usage(name, args, call_format)}: {text}" for name, text, args in tools)


def render_header(
    role: str,
    tools: Sequence[tuple[str, str, type[BaseModel]]],
    examples: Sequence[str],
    task: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    call_format: CallFormat = CallFormat.JSON,
    outline: str = "",
    files: str = "",
) -> str:
    """Everything before the first call; fixed for a whole step, so its KV cache is reused every turn."""
    lines = [
        "### Role",
        role.strip(),
        "### Tools",
        render_tools(tools, call_format),
        "Reply with exactly one call per turn. Call finish when the task is done.",
    ]
    for example in examples:
        lines += ["### Example", example.strip()]
    if outline:
        lines += ["### Repository", outline.rstrip()]
    lines += ["### Task", f"Title: {task['title']}"]
    if task.get("scope"):
        lines.append(f"Scope: {' '.join(str(task['scope']).split())}")
    for check in task.get("acceptance", []):
        lines.append(f"Acceptance: {check}")
    if inputs:
        lines.append("Inputs: " + json.dumps(inputs, ensure_ascii=False, sort_keys=True))
    if files:
        lines += ["### Files", files.rstrip()]
    return "\n".join(lines) + "\n"


def render_turn(call_text: str, result: str) -> str:
    """One finished turn: the call as the model wrote it, and what came back."""
    result_lines = result.strip().splitlines() or ["(empty)"]
    return f"{CALL}{call_text}\n{RESULT}" + "\n  ".join(result_lines) + "\n"


def chat_messages(header: str, turns: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The loop so far as chat messages: the header, then each call and its result."""
    messages = [{"role": "user", "content": header.rstrip()}]
    for turn in turns:
        messages.append({"role": "assistant", "content": CALL + turn["completion"]})
        result_lines = str(turn["result"]).strip().splitlines() or ["(empty)"]
        messages.append({"role": "user", "content": RESULT + "\n  ".join(result_lines)})
    return messages


def chat_prompt(chat: ChatRenderer, header: str, turns: Sequence[Mapping[str, Any]]) -> str:
    """The next turn's prompt through a chat template: the assistant's turn opened with `Call: `."""
    return chat.render_chat(chat_messages(header, turns)) + CALL
