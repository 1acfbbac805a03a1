"""llama.cpp in-process through llama-cpp-python: GPU-offloaded when asked and present, CPU otherwise.

A pool loads each (model file, adapter) once per process and hands the same instance to every agent and
node. Consecutive prompts that extend each other reuse the KV cache (llama-cpp-python keeps the longest
common prefix), so a loop's turn N evaluates only its new tokens. A GGUF that carries a chat template
(`tokenizer.chat_template`, or models.toml `chat_template`) gets its prompts rendered through it. A
prompt that fills the context window raises ContextOverflow before anything is decoded. `runtime_for`
is the pool: it picks this runtime, the batched one or a server's for a models.toml entry.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.base import Completion, ModelIdentity, Runtime, completion_budget
from pantheon_git.runtime.bundled import file_sha256, model_file
from pantheon_git.runtime.in_process import ChatTemplate, chat_template, common_prefix, fitted_context_tokens
from pantheon_git.runtime.probe import ensure_model_runs
from pantheon_git.schema.hosts import ModelHost
from pantheon_git.schema.models import ModelConfig


class LlamaRuntime:
    """One loaded GGUF model (with an optional LoRA adapter) behind the Runtime interface."""

    is_local = True

    def __init__(self, name: str, config: ModelConfig) -> None:
        path, sha = model_file(name, config)
        adapter = ""
        kwargs: dict[str, Any] = {}
        if config.adapter:
            adapter_path = Path(config.adapter)
            if not adapter_path.is_file():
                raise PantheonError(f"models.{name}.adapter: {adapter_path} does not exist")
            kwargs["lora_path"] = str(adapter_path)
            adapter = f"{adapter_path.name}@{file_sha256(adapter_path)[:12]}"
        from llama_cpp import Llama  # only here: the CLI's start never loads llama.cpp

        self.llama = Llama(
            model_path=str(path),
            n_gpu_layers=config.n_gpu_layers,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads or None,
            seed=config.seed,
            verbose=False,
            **kwargs,
        )
        self.identity = ModelIdentity(
            name=name,
            engine="llama.cpp",
            sha256=sha,
            adapter=adapter,
            seed=config.seed,
            extra={"n_gpu_layers": config.n_gpu_layers, "n_ctx": config.n_ctx},
        )
        self.context_window = config.n_ctx  # a prompt and its completion together, in tokens
        self.context_tokens = fitted_context_tokens(config)
        self.chat: ChatTemplate | None = chat_template(config, self.llama.model)
        # One context decodes one prompt at a time: concurrent callers (a replay beside a night, a
        # misconfigured job) wait their turn instead of corrupting its KV cache.
        self._busy = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes as a prompt (as `complete` tokenizes it, BOS included)."""
        return len(self.llama.tokenize(text.encode("utf-8"), special=True))

    def complete(
        self,
        prompt: str,
        *,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        """Greedy at temperature 0; above it sampled, the draw fixed by `seed` (None: the model's seed);
        with `schema`, every generated token keeps the text valid JSON for it."""
        with self._busy:
            return self._complete(prompt, schema, max_tokens, seed, temperature)

    def _complete(
        self,
        prompt: str,
        schema: dict[str, Any] | str | None,
        max_tokens: int,
        seed: int | None,
        temperature: float,
    ) -> Completion:
        from llama_cpp import LogitsProcessorList

        tokens = self.llama.tokenize(prompt.encode("utf-8"), special=True)
        budget = completion_budget(len(tokens), max_tokens, self.context_window)
        held = self.llama.input_ids[: self.llama.n_tokens].tolist()
        # llama-cpp-python reuses the cached prefix but re-evaluates the last prompt token for its logits.
        cached = min(common_prefix(tokens, held), len(tokens) - 1)
        # So the last prompt token is always evaluated alone: llama.cpp's batched and one-token kernels
        # round differently, and logits from a cold prompt (one batch) would differ from a cached one's,
        # so the same seed would draw another sample (and a replay another text).
        if cached < len(tokens) - 1:
            self.llama.n_tokens = cached
            self.llama.eval(tokens[cached:-1])
        processors = None
        if schema is not None:
            from pantheon_git.runtime.constrained import SchemaProcessor

            processors = LogitsProcessorList([SchemaProcessor(self.llama, schema)])
        start = time.perf_counter()
        result = self.llama.create_completion(
            prompt,
            max_tokens=budget,
            logits_processor=processors,
            **sampling_arguments(temperature, self.identity.seed if seed is None else seed),
        )
        seconds = time.perf_counter() - start
        assert isinstance(result, dict)  # not streamed
        choice = result["choices"][0]
        usage = result["usage"]
        return Completion(
            text=choice["text"],
            tokens_in=usage["prompt_tokens"],
            tokens_out=usage["completion_tokens"],
            tokens_evaluated=len(tokens) - cached,
            seconds=seconds,
            finish_reason=choice["finish_reason"] or "",
        )


def sampling_arguments(temperature: float, seed: int) -> dict[str, Any]:
    """llama-cpp-python's sampler settings: greedy (top-k 1) at 0, else top-k/top-p sampling."""
    if temperature <= 0:
        return {"temperature": 0.0, "top_k": 1, "seed": seed}
    # llama.cpp takes a uint32 seed; a negative one would mean "random" (never reproducible).
    return {"temperature": temperature, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "seed": seed % 2**32}


_POOL: dict[str, Runtime] = {}
# The jobs of a night reach for their model at once: one of them loads it, the others wait for it.
_POOL_LOCK = threading.Lock()


def runtime_for(name: str, config: ModelConfig, hosts: tuple[ModelHost, ...] = ()) -> Runtime:
    """The shared runtime of a model (loaded once per process per model, adapter and settings); `hosts`
    are the allowlisted model servers (`[night] model_hosts`) an openai-compatible model may use."""
    served_by = [dataclasses.astuple(host) for host in hosts]
    key = json.dumps([name, config.model_dump(), served_by], sort_keys=True)
    with _POOL_LOCK:
        if key not in _POOL:
            if config.in_process:
                # A build this CPU cannot run would take the whole night down at its first token (SIGILL
                # kills the process): a child process decodes first, once per model file and build.
                path, sha = model_file(name, config)
                ensure_model_runs(name, path, sha, config.n_gpu_layers)
            if config.engine == "llama.cpp":
                _POOL[key] = LlamaRuntime(name, config)
            elif config.engine == "batched":
                from pantheon_git.runtime.batched_runtime import BatchedRuntime

                _POOL[key] = BatchedRuntime(name, config)
            else:
                from pantheon_git.runtime.openai_compat import OpenAICompatibleRuntime

                _POOL[key] = OpenAICompatibleRuntime(name, config, hosts=hosts)
        return _POOL[key]
