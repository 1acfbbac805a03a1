"""The batched engine as the night's agents see it: a Runtime like LlamaRuntime, shared by jobs.

`engine = "batched"` in models.toml, or any in-process model of a night run with `--jobs N` above 1,
is served by one `BatchedEngine` per (model, adapter, settings) in the process: every attempt in flight
calls `complete` from its own thread and the engine decodes them together, one model load for all.
To the agent loop it is the same runtime as `LlamaRuntime`: each sequence has the entry's `n_ctx` as its
context window (a prompt that fills it raises ContextOverflow, `max_tokens` is cut to what is left), the
model's tokenizer counts prompts, the same chat template (runtime/in_process.py), the same `context_tokens`,
greedy at temperature 0 and seeded above it, and the same llguidance constraints (a JSON schema as a
dict, a Lark grammar as a str). A LoRA adapter is served on every sequence of its own engine
(runtime/batched.py), never dropped.
"""

from __future__ import annotations

from typing import Any

from pantheon_git.runtime.base import Completion, ModelIdentity, completion_budget
from pantheon_git.runtime.batched import BatchedEngine, EngineStats
from pantheon_git.runtime.in_process import ChatTemplate, chat_template, fitted_context_tokens
from pantheon_git.schema.models import ModelConfig

MIN_SLOTS = 4  # sequence slots when models.toml leaves `parallel` unset and the night runs fewer jobs


def slots_for(config: ModelConfig, jobs: int) -> int:
    """The engine's sequence slots: models.toml's `parallel`, else the night's jobs (at least MIN_SLOTS:
    idle slots keep the prompts of other agents cached)."""
    return config.parallel if config.parallel is not None else max(jobs, MIN_SLOTS)


class BatchedRuntime:
    """One models.toml entry served by a BatchedEngine (a Runtime; thread-safe). `engine`: one already
    made (a test's), else the entry's own."""

    is_local = True

    def __init__(self, name: str, config: ModelConfig, *, engine: BatchedEngine | None = None) -> None:
        self.engine = engine or BatchedEngine.from_config(name, config, n_seq_max=slots_for(config, 1))
        identity = self.engine.identity
        self.identity = ModelIdentity(
            name=identity.name,
            engine=identity.engine,
            sha256=identity.sha256,
            adapter=identity.adapter,
            seed=identity.seed,
            extra={**identity.extra, "n_ctx": config.n_ctx},
        )
        # Per sequence, as one LlamaRuntime context (the engine's cache holds every slot's).
        self.context_window = min(config.n_ctx, self.engine.slot_ctx)
        self.context_tokens = fitted_context_tokens(config)
        self.chat: ChatTemplate | None = chat_template(config, self.engine.model)

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes as a prompt (as `complete` tokenizes it, BOS included)."""
        return len(self.engine.tokenize(text))

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        """As LlamaRuntime.complete, decoded together with the other jobs' requests."""
        budget = completion_budget(self.count_tokens(prompt), max_tokens, self.context_window)
        return self.engine.complete(
            prompt, schema=schema, max_tokens=budget, seed=seed, temperature=temperature
        )

    def close(self) -> None:
        self.engine.close()
