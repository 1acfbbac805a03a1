"""The batched engine as the night's agents see it: a Runtime with LlamaRuntime's behaviour, shared by jobs.

`engine = "batched"` in models.toml, or any in-process model of a night run with `--jobs N` above 1,
is served by one `BatchedEngine` per (model, adapter, settings) in the process: every attempt in flight
calls `complete` from its own thread and the engine decodes them together, one model load for all.
To the agent loop it is the same runtime as `LlamaRuntime`: each sequence gets the entry's `n_ctx`
(a prompt that outgrows it raises the same ValueError, `max_tokens` is cut to what is left), the same
chat template, the same `context_tokens`, greedy at temperature 0 and seeded above it, and the same
llguidance constraints (a JSON schema as a dict, a Lark grammar as a str). A LoRA adapter is served on
every sequence of its own engine (runtime/batched.py), never dropped.
"""

from __future__ import annotations

from typing import Any

from pantheon_git.runtime.base import Completion, ModelIdentity
from pantheon_git.runtime.batched import BatchedEngine
from pantheon_git.runtime.llama import NO_TEMPLATE, ChatTemplate
from pantheon_git.schema.models import ModelConfig

MIN_SLOTS = 4  # sequence slots when models.toml leaves `parallel` unset and the night runs fewer jobs


def slots_for(config: ModelConfig, jobs: int) -> int:
    """The engine's sequence slots: models.toml's `parallel`, else the night's jobs (at least MIN_SLOTS:
    idle slots keep the prompts of other agents cached)."""
    return config.parallel if config.parallel is not None else max(jobs, MIN_SLOTS)


class BatchedRuntime:
    """One models.toml entry served by a BatchedEngine (the Runtime interface; thread-safe)."""

    is_local = True

    def __init__(self, name: str, config: ModelConfig) -> None:
        self.engine = BatchedEngine.from_config(name, config, n_seq_max=slots_for(config, 1))
        self.n_ctx = config.n_ctx  # per sequence, as one LlamaRuntime context
        identity = self.engine.identity
        self.identity = ModelIdentity(
            name=identity.name,
            engine=identity.engine,
            sha256=identity.sha256,
            adapter=identity.adapter,
            seed=identity.seed,
            extra={**identity.extra, "n_ctx": config.n_ctx},
        )
        fitted = config.n_ctx // 4  # as LlamaRuntime: room for the role, tools, examples and turns
        self.context_tokens = fitted if config.context_tokens is None else config.context_tokens
        self.chat = self._chat_template(config)

    def _chat_template(self, config: ModelConfig) -> ChatTemplate | None:
        """The model's chat template (models.toml's wins over the GGUF's), or None: as LlamaRuntime."""
        template = config.chat_template or self.engine.metadata("tokenizer.chat_template")
        if not template or template.strip().lower() == NO_TEMPLATE:
            return None
        llama = self.engine._llama
        vocab = self.engine.vocab
        return ChatTemplate(
            template,
            self.engine.token_text(llama.llama_vocab_bos(vocab)),
            self.engine.token_text(llama.llama_vocab_eos(vocab)),
        )

    @property
    def stats(self) -> Any:
        return self.engine.stats

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
        tokens = len(self.engine.tokenize(prompt))
        if tokens >= self.n_ctx:  # llama-cpp-python's words: the agent loop recognises them
            raise ValueError(f"Requested tokens ({tokens}) exceed context window of {self.n_ctx}")
        budget = max_tokens if max_tokens + tokens < self.n_ctx else self.n_ctx - tokens
        return self.engine.complete(
            prompt, schema=schema, max_tokens=budget, seed=seed, temperature=temperature
        )

    def close(self) -> None:
        self.engine.close()
