"""A runtime that re-plays the completions recorded in a trace, in order, instead of running a model.

Used by `git pantheon replay COMMIT` (re-run a step and compare what the tools return now) and by fast
tests of flow logic. It also reports whether each prompt still matches the recorded one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.base import Completion, ModelIdentity, Windowless


class ReplayRuntime(Windowless):
    """A Runtime whose completions are the recorded ones (no window: the recorded prompts fitted theirs)."""

    is_local = True

    def __init__(
        self,
        completions: Sequence[str],
        prompts: Sequence[str] | None = None,
        identity: ModelIdentity | None = None,
        normalize: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.completions = list(completions)
        self.prompts = list(prompts) if prompts is not None else None
        self.identity = identity or ModelIdentity(name="replay", engine="replay")
        self.position = 0
        self.prompt_mismatches: list[int] = []
        # Prompts embed earlier tool results: compare them with volatile parts (wall times) blanked.
        self.normalize = normalize

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        if self.position >= len(self.completions):
            raise PantheonError(
                f"replay: the trace has {len(self.completions)} completions, a turn asked for more"
            )
        if self.prompts is not None and self.normalize(self.prompts[self.position]) != self.normalize(prompt):
            self.prompt_mismatches.append(self.position)
        text = self.completions[self.position]
        self.position += 1
        return Completion(text=text, tokens_in=0, tokens_out=0, tokens_evaluated=0, seconds=0.0)
