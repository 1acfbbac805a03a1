"""The contract between a runtime and the agent loop: `Runtime`, which every runtime implements whole (the
loop reads nothing else of one), and the one error a runtime raises for a prompt its context cannot hold.

A completion is held to a JSON schema (a dict) or a Lark grammar (a str). A runtime with a context window
counts tokens as it will tokenize the prompt; one without (a server, a replay) reports `None` and counts
by estimate (`Windowless`), and the loop then fits nothing to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pantheon_git.errors import PantheonError

CHARS_PER_TOKEN = 3  # an estimate, conservative for code (Gemma's tokenizer averages about 3.5 on Python)


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    tokens_in: int  # tokens in the prompt
    tokens_out: int  # tokens generated
    tokens_evaluated: int  # prompt tokens actually evaluated (the rest came from the KV cache)
    seconds: float
    finish_reason: str = "stop"
    # The model id a server reported serving this completion (openai-compatible); "" in-process.
    served_by: str = ""


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """What a trace records about the model that produced a completion."""

    name: str
    engine: str
    sha256: str = ""
    adapter: str = ""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """For the trace's `model` and the step's report line: name@sha256-prefix, plus any adapter."""
        tag = f"{self.name}@{self.sha256[:12]}" if self.sha256 else self.name
        return f"{tag}+{self.adapter}" if self.adapter else tag


class ContextOverflow(PantheonError):
    """A prompt (with the tokens asked of its completion) that the model's context window cannot hold:
    refused before anything is decoded."""

    def __init__(self, prompt_tokens: int, window: int, max_tokens: int = 0) -> None:
        asked = f"{prompt_tokens} tokens" + (f" + max_tokens {max_tokens}" if max_tokens else "")
        super().__init__(f"prompt: {asked} exceed the context window of {window} tokens")
        self.prompt_tokens = prompt_tokens
        self.window = window


def completion_budget(prompt_tokens: int, max_tokens: int, window: int) -> int:
    """`max_tokens` cut to what `window` leaves after the prompt (llama-cpp-python's rule, which every
    in-process runtime keeps); ContextOverflow when the prompt alone fills the window."""
    if prompt_tokens >= window:
        raise ContextOverflow(prompt_tokens, window)
    return min(max_tokens, window - prompt_tokens)


def estimate_tokens(text: str) -> int:
    """Tokens `text` takes by the estimate (no tokenizer at hand)."""
    return len(text) // CHARS_PER_TOKEN + 1


class ChatRenderer(Protocol):
    """A model's chat template: messages in, the prompt text (ending in the assistant's turn) out."""

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str: ...


class Runtime(Protocol):
    """What the agent loop, the planner and the promotion gate use of a model, and all they use."""

    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def is_local(self) -> bool: ...

    @property
    def context_window(self) -> int | None:
        """Tokens a prompt and its completion share; None: the runtime knows of none."""
        ...

    @property
    def context_tokens(self) -> int | None:
        """Tokens of repository context a prompt may carry (models.toml); None: the loop's default."""
        ...

    @property
    def chat(self) -> ChatRenderer | None:
        """The model's chat template; None: prompts stay in the plain format."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes as a prompt, as `complete` will tokenize it (an estimate where the
        runtime has no tokenizer)."""
        ...

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        """`temperature` 0 is greedy (the seed is then irrelevant); above 0 the draw is fixed by `seed`
        (None: the model's configured seed), so two seeds sample independently and one seed repeats.
        ContextOverflow when the prompt does not fit `context_window`; `max_tokens` is cut to what
        the window leaves."""
        ...


class Windowless:
    """The rest of `Runtime` for one with no context window, tokenizer or chat template of its own (a
    server, a replay, a test's scripted model): counted by estimate, nothing fitted, plain prompts."""

    context_window: int | None = None
    context_tokens: int | None = None
    chat: ChatRenderer | None = None

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)
