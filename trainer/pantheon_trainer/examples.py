"""Chat rows (from `git pantheon train dataset`) as token ids and labels in the runner's prompt format.

The loss is on the assistant's tool calls only: the prompt header and the tool results are context.
The text is laid out exactly as the runner lays out its prompts (pantheon_git.agents.prompt), so what
the adapter learns is what the runner will ask.
"""

from __future__ import annotations

from typing import Any

from pantheon_git.agents.prompt import CALL, RESULT

IGNORE = -100


def segments(messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """(text, is_target) pieces whose concatenation is the runner's prompt plus the model's calls."""
    pieces: list[tuple[str, bool]] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role in ("user", "system"):
            pieces.append((content, False))
        elif role == "assistant":
            pieces.append((CALL, False))
            pieces.append((content, True))
            pieces.append(("\n", False))
        elif role == "tool":
            lines = content.strip().splitlines() or ["(empty)"]
            pieces.append((RESULT + "\n  ".join(lines) + "\n", False))
    return pieces


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int = 1024) -> dict[str, list[int]]:
    ids: list[int] = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    labels: list[int] = [IGNORE] * len(ids)
    for text, target in segments(messages):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if target else [IGNORE] * len(piece)
    return {"input_ids": ids[-max_length:], "labels": labels[-max_length:]}
