"""What the two in-process runtimes (llama.py one at a time, batched_runtime.py many together) share,
one implementation each: what they read of a loaded GGUF model (its metadata, its tokens' text, its chat
template), the context budget they take from models.toml, and how much of a prompt a sequence's KV cache
already holds. Everything takes llama.cpp's own model pointer, never a wrapper's private attribute;
llama_cpp is imported only when a model is loaded.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

from pantheon_git.schema.models import ModelConfig

NO_TEMPLATE = "none"  # models.toml chat_template value that keeps the plain prompt format


class ChatTemplate:
    """A model's Jinja chat template (llama-cpp-python's formatter, as transformers renders it)."""

    def __init__(self, template: str, bos_token: str, eos_token: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.template = template
        self.bos_token = bos_token
        self.formatter = Jinja2ChatFormatter(template, eos_token=eos_token, bos_token=bos_token)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The prompt for `messages`, opened for the assistant's reply (generation prompt added)."""
        listed: list[Any] = [dict(message) for message in messages]
        prompt = self.formatter(messages=listed).prompt
        # llama.cpp adds BOS itself when it tokenizes the prompt; the template's would be a second one.
        return prompt.removeprefix(self.bos_token) if self.bos_token else prompt


def metadata(model: Any, key: str) -> str | None:
    """A string of the GGUF's metadata (e.g. `tokenizer.chat_template`), None when it has none."""
    import llama_cpp

    size = 1 << 16
    while True:
        buffer = ctypes.create_string_buffer(size)
        count = llama_cpp.llama_model_meta_val_str(model, key.encode("utf-8"), buffer, size)
        if count < 0:
            return None
        if count < size:
            return buffer.value.decode("utf-8", errors="replace")
        size = count + 1


def token_text(vocab: Any, token: int) -> str:
    """A token's text as the vocabulary spells it ("" for none)."""
    import llama_cpp

    if token < 0:
        return ""
    text = llama_cpp.llama_vocab_get_text(vocab, token)
    return text.decode("utf-8", errors="replace") if text else ""


def chat_template(config: ModelConfig, model: Any) -> ChatTemplate | None:
    """The model's chat template (models.toml's wins over the GGUF's), or None for the plain format."""
    import llama_cpp

    template = config.chat_template or metadata(model, "tokenizer.chat_template")
    if not template or template.strip().lower() == NO_TEMPLATE:
        return None
    vocab = llama_cpp.llama_model_get_vocab(model)
    bos = token_text(vocab, llama_cpp.llama_vocab_bos(vocab))
    return ChatTemplate(template, bos, token_text(vocab, llama_cpp.llama_vocab_eos(vocab)))


def fitted_context_tokens(config: ModelConfig) -> int:
    """Tokens of repository context a prompt may carry: models.toml's, else a quarter of the window
    (room for the role, tools, examples and the turns themselves)."""
    return config.n_ctx // 4 if config.context_tokens is None else config.context_tokens


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists (what a cache holding `a` spares of `b`)."""
    limit = min(len(a), len(b))
    same = 0
    while same < limit and a[same] == b[same]:
        same += 1
    return same
