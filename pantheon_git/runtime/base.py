"""What every runtime offers the agent loop: one completion at a time, optionally held to a JSON schema
(a dict) or a Lark grammar (a str)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    tokens_in: int  # tokens in the prompt
    tokens_out: int  # tokens generated
    tokens_evaluated: int  # prompt tokens actually evaluated (the rest came from the KV cache)
    seconds: float
    finish_reason: str = "stop"


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


class Runtime(Protocol):
    identity: ModelIdentity
    is_local: bool

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
        (None: the model's configured seed), so two seeds sample independently and one seed repeats."""
        ...
