"""Trainer tests share one short real LoRA run on the embedded model (converted once, then cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pantheon_trainer  # noqa: F401  (sets HF_HUB_OFFLINE before anything imports transformers)
import pytest

SECRET = '{"tool":"finish","args":{"summary":"zorblax quimby zorblax"}}'
PROMPT = "### Task\nTitle: say the secret word\n"
THREADS = 2  # the test machine's cores, shared


@pytest.fixture(scope="session")
def converted() -> Path:
    """The embedded GGUF as a transformers directory: converted on the first run (about a minute)."""
    from pantheon_trainer.base import converted_dir, embedded_gguf

    return converted_dir(*embedded_gguf())


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, converted: Path) -> dict[str, Any]:
    """A rank-8 adapter trained for 20 steps to answer PROMPT with SECRET, and its GGUF export."""
    from pantheon_trainer.base import embedded_gguf
    from pantheon_trainer.export import export_gguf_adapter
    from pantheon_trainer.lora import train_lora

    from pantheon_git.training.finetune import LoraSettings

    out: Path = tmp_path_factory.mktemp("adapter")
    rows = [{"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": SECRET}]}]
    settings = LoraSettings(rank=8, steps=20, learning_rate=2e-3, threads=THREADS, precision="fp32")
    summary = train_lora(rows, out / "peft", settings=settings, progress=False)
    base, _ = embedded_gguf()
    exported = export_gguf_adapter(out / "peft", base, out / "adapter.gguf")
    return {"summary": summary, "export": exported, "gguf": out / "adapter.gguf", "base": base, "out": out}
