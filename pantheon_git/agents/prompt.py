"""Our prompt format. The embedded Gemma 270M is a base model with no chat template and no tool tokens,
so the format is plain text with section headers, the same for every model, and easy to train on:

    ### Role
    <agent role>
    ### Tools
    - write_file {"path": string, "content": string}: create or replace a file …
    ### Example            (zero or more worked transcripts)
    …
    ### Task
    Title: …
    Scope: …
    Acceptance: …
    Inputs: {…}
    Call: {"tool": "list_files", "args": {"path": "."}}
    Result: README.md
    Call: {"tool": "finish", "args": {…}}

Each turn the model completes the text after the last `Call: ` with one JSON object, held to the
tools' schema during decoding; the loop appends `Result: …` and the next `Call: `. Turn N's prompt
extends turn N-1's, so the KV cache is reused and only the new lines are evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

CALL = "Call: "
RESULT = "Result: "


def _fields(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or "|".join(json.dumps(v) for v in prop.get("enum", [])) or "value"
        if kind == "array":
            kind = f"list of {prop.get('items', {}).get('type', 'value')}"
        parts.append(f'"{name}": {kind}')
    return "{" + ", ".join(parts) + "}"


def render_tools(tools: Sequence[tuple[str, str, type[BaseModel]]]) -> str:
    return "\n".join(f"- {name} {_fields(args)}: {description}" for name, description, args in tools)


def render_header(
    role: str,
    tools: Sequence[tuple[str, str, type[BaseModel]]],
    examples: Sequence[str],
    task: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> str:
    """Everything before the first call; fixed for a whole step, so its KV cache is reused every turn."""
    lines = [
        "### Role",
        role.strip(),
        "### Tools",
        render_tools(tools),
        "Reply with exactly one call per turn. Call finish when the task is done.",
    ]
    for example in examples:
        lines += ["### Example", example.strip()]
    lines += ["### Task", f"Title: {task['title']}"]
    if task.get("scope"):
        lines.append(f"Scope: {' '.join(str(task['scope']).split())}")
    for check in task.get("acceptance", []):
        lines.append(f"Acceptance: {check}")
    if inputs:
        lines.append("Inputs: " + json.dumps(inputs, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines) + "\n"


def render_turn(call_text: str, result: str) -> str:
    """One finished turn: the call as the model wrote it, and what came back."""
    result_lines = result.strip().splitlines() or ["(empty)"]
    return f"{CALL}{call_text}\n{RESULT}" + "\n  ".join(result_lines) + "\n"
