"""Chat rows (from `git pantheon train dataset`) as token ids and labels in the runner's prompt format.

The loss is on the assistant's tool calls only: the prompt header and the tool results are context.
The text is laid out by the runner's own functions (pantheon_git.agents.prompt: `CALL` before each call,
`render_turn` for a call and its result), so what the adapter learns is exactly what the runner asks.
Context between two calls is tokenized as one string, and every call starts a fresh piece right after
`Call: `, as it does when the runner tokenizes its prompt and the model continues it.

Prompt-completion rows (a code completion at a stub: the file up to the function's head, then its body)
are tokenized the same way, prompt then completion, with the end-of-sequence token as the completion's
last target: a body ends where the file does, which is where the runner's body grammar lets it stop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pantheon_git.agents.prompt import CALL, render_turn
from pantheon_trainer.errors import TrainerError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100  # the label torch's cross entropy skips: context, not something to learn


def segments(messages: Sequence[Mapping[str, str]]) -> list[tuple[str, bool]]:
    """(text, is_target) pieces whose concatenation is the runner's prompt plus the model's calls."""
    pieces: list[tuple[str, bool]] = []
    index = 0
    while index < len(messages):
        role, content = messages[index]["role"], messages[index]["content"]
        index += 1
        if role in ("system", "user"):
            pieces.append((content, False))
        elif role == "assistant":
            pieces += [(CALL, False), (content, True)]
            if index < len(messages) and messages[index]["role"] == "tool":
                turn = render_turn(content, messages[index]["content"])
                pieces.append((turn[len(CALL) + len(content) :], False))  # "\nResult: …\n"
                index += 1
        else:
            raise TrainerError(f"message {index}: role {role!r} where a user, system or assistant one goes")
    merged: list[tuple[str, bool]] = []
    for text, target in pieces:
        if merged and not target and not merged[-1][1]:
            merged[-1] = (merged[-1][0] + text, False)
        elif text:
            merged.append((text, target))
    return merged


def encode(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], max_length: int = 4096
) -> dict[str, list[int]]:
    """input_ids and labels (IGNORE on context) for one row, cut to the runner's context size."""
    bos = tokenizer.bos_token_id
    ids: list[int] = [bos] if bos is not None else []
    labels: list[int] = [IGNORE] * len(ids)
    for text, target in segments(messages):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if target else [IGNORE] * len(piece)
    # The runner never prompts past its n_ctx, so the head of a row is what it saw: keep the head.
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def encode_row(
    tokenizer: PreTrainedTokenizerBase, row: Mapping[str, Any], max_length: int = 4096
) -> dict[str, list[int]]:
    """input_ids and labels of a chat row or a prompt-completion row."""
    if "messages" in row:
        return encode(tokenizer, row["messages"], max_length)
    if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
        raise TrainerError("a row holds neither `messages` nor a `prompt` and `completion` string")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    target = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
    if eos is not None:
        target = [*target, eos]
    prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    # The runner cuts a long file from the top (the code nearest the stub stays): so does this.
    room = max(0, max_length - len(target) - (bos is not None))
    prompt = prompt[len(prompt) - room :] if room else []
    ids = ([bos] if bos is not None else []) + prompt
    return {"input_ids": ids + target, "labels": [IGNORE] * len(ids) + target}
