"""`.pantheon/models.toml`: named models and how to run them; one schema, one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pantheon_git.errors import PantheonError

BUNDLED = ("gemma3-270m",)


class ModelConfig(BaseModel):
    """One model: where its weights are (or which server serves it) and how to run it."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["llama.cpp", "openai-compatible"] = "llama.cpp"
    path: str | None = None  # a GGUF file (llama.cpp)
    bundled: Literal["gemma3-270m"] | None = None  # the embedded default (llama.cpp)
    url: str | None = None  # base URL or unix:///path.sock (openai-compatible)
    served_name: str | None = None  # the model name the server expects (openai-compatible)
    n_gpu_layers: int = -1  # -1: every layer on the GPU when one exists; 0: CPU only
    n_ctx: int = Field(default=4096, ge=256)
    n_threads: int = Field(default=0, ge=0)  # 0: one per core
    seed: int = 0
    chat_template: str | None = None
    adapter: str | None = None  # a GGUF LoRA adapter

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.engine == "llama.cpp":
            if (self.path is None) == (self.bundled is None):
                raise ValueError("a llama.cpp model needs exactly one of `path` or `bundled`")
            if self.url is not None:
                raise ValueError('`url` is for engine = "openai-compatible"')
        elif self.url is None:
            raise ValueError("an openai-compatible model needs `url`")
        return self


DEFAULT_MODELS = {"default": ModelConfig(bundled="gemma3-270m")}


def parse_models(text: str, source: str) -> dict[str, ModelConfig]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PantheonError(f"{source}: invalid TOML: {exc}") from None
    unknown = set(data) - {"models"}
    if unknown:
        raise PantheonError(f"{source}: {sorted(unknown)[0]}: unknown table (models are [models.NAME])")
    models = {}
    for name, table in data.get("models", {}).items():
        try:
            models[name] = ModelConfig.model_validate(table)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            reason = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            reason = reason.removeprefix("Value error, ")
            raise PantheonError(f"{source}: models.{name}{'.' + field if field else ''}: {reason}") from None
    return models or dict(DEFAULT_MODELS)


def load_models(root: Path) -> dict[str, ModelConfig]:
    """The repository's models, or the embedded default when it has no models.toml."""
    path = root / ".pantheon" / "models.toml"
    if not path.is_file():
        return dict(DEFAULT_MODELS)
    models = parse_models(path.read_text(encoding="utf-8"), ".pantheon/models.toml")
    for config in models.values():
        for field in ("path", "adapter"):
            value = getattr(config, field)
            if value is not None and not Path(value).is_absolute():
                object.__setattr__(config, field, str((root / value).resolve()))
    return models
