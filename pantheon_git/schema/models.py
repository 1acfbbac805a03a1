"""`.pantheon/models.toml`: named models and how to run them; one schema, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pantheon_git.errors import PantheonError
from pantheon_git.schema.document import parse_toml, read_text, validate

BUNDLED = ("gemma3-270m",)
Grammar = Literal["json-schema", "lark"]


def _json_schema_only() -> list[Grammar]:
    return ["json-schema"]


class ModelConfig(BaseModel):
    """One model: where its weights are (or which server serves it) and how to run it."""

    model_config = ConfigDict(extra="forbid")

    # "batched": llama.cpp in-process with many sequences decoded together (runtime/batched.py); a night
    # with --jobs above 1 serves every in-process model this way.
    engine: Literal["llama.cpp", "batched", "openai-compatible"] = "llama.cpp"
    path: str | None = None  # a GGUF file (llama.cpp)
    bundled: Literal["gemma3-270m"] | None = None  # the embedded default (llama.cpp)
    url: str | None = None  # base URL or unix:///path.sock (openai-compatible)
    served_name: str | None = None  # the model name the server expects (openai-compatible)
    # The constraints the server holds (openai-compatible): "json-schema" (llama-server, vLLM, Ollama)
    # and "lark", a Lark grammar in llguidance's dialect (vLLM's guidance backend, llama-server built
    # with LLAMA_LLGUIDANCE, `python -m pantheon_git.runtime.serve`), which the default "code" call
    # format needs. A night refuses an agent whose calls need a grammar its model's server cannot hold.
    grammars: list[Grammar] = Field(default_factory=_json_schema_only)
    n_gpu_layers: int = -1  # -1: every layer on the GPU when one exists; 0: CPU only
    n_ctx: int = Field(default=4096, ge=256)
    n_threads: int = Field(default=0, ge=0)  # 0: one per core
    seed: int = 0
    # A Jinja chat template to render prompts through; unset: the GGUF's own `tokenizer.chat_template`
    # when it has one; "none": always the plain prompt format.
    chat_template: str | None = None
    # Tokens of repository context (named files, outline) a prompt may carry; unset: a quarter of n_ctx.
    context_tokens: int | None = Field(default=None, ge=0)
    adapter: str | None = None  # a GGUF LoRA adapter
    # Sequence slots of the batched engine, each with n_ctx tokens of cache; unset: the night's --jobs
    # (at least 4, so idle slots keep other agents' prompts cached).
    parallel: int | None = Field(default=None, ge=1, le=64)
    # The batched engine's KV cache: "unified" (one cache all slots share: a shared prefix is stored once,
    # but every token attends over all that is cached) or "split" (a stream per slot: a token attends over
    # its own sequence only; a shared prefix is copied). bench/bench_kv_cache.py measures both.
    kv_cache: Literal["unified", "split"] = "unified"

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.in_process:
            if (self.path is None) == (self.bundled is None):
                raise ValueError("a llama.cpp model needs exactly one of `path` or `bundled`")
            if self.url is not None:
                raise ValueError('`url` is for engine = "openai-compatible"')
        elif self.url is None:
            raise ValueError("an openai-compatible model needs `url`")
        return self

    @property
    def in_process(self) -> bool:
        """Loaded by llama.cpp in this process (one at a time or batched), not served over HTTP."""
        return self.engine in ("llama.cpp", "batched")


DEFAULT_MODELS = {"default": ModelConfig(bundled="gemma3-270m")}


def parse_models(text: str, source: str) -> dict[str, ModelConfig]:
    data = parse_toml(text, source)
    unknown = set(data) - {"models"}
    if unknown:
        raise PantheonError(f"{source}: {sorted(unknown)[0]}: unknown table (models are [models.NAME])")
    models = {}
    tables = data.get("models", {})
    if not isinstance(tables, dict):
        raise PantheonError(f"{source}: models: expected tables [models.NAME]")
    for name, table in tables.items():
        models[name] = validate(ModelConfig, table, source, text, prefix=("models", name))
    return models or dict(DEFAULT_MODELS)


def load_models(root: Path) -> dict[str, ModelConfig]:
    """The repository's models, or the embedded default when it has no models.toml."""
    path = root / ".pantheon" / "models.toml"
    if not path.is_file():
        return dict(DEFAULT_MODELS)
    models = parse_models(read_text(path, ".pantheon/models.toml"), ".pantheon/models.toml")
    for config in models.values():
        for field in ("path", "adapter"):
            value = getattr(config, field)
            if value is not None and not Path(value).is_absolute():
                object.__setattr__(config, field, str((root / value).resolve()))
    return models
