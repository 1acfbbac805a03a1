"""The base model for training: the very GGUF the runner serves, converted once to transformers and cached.

transformers dequantizes a gemma3 GGUF into a float model (`gguf_file=`); that first conversion is slow
(about 80 s here, mostly the tokenizer), so the result is saved next to the model cache, keyed by the
GGUF's sha256, and later runs load the saved copy. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def embedded_gguf() -> tuple[Path, str]:
    from pantheon_git.runtime.bundled import bundled_gguf

    return bundled_gguf()


def converted_dir(gguf_path: Path, sha256: str) -> Path:
    """A transformers copy of `gguf_path`, made on first use (then reused)."""
    from pantheon_git.runtime.bundled import cache_dir

    target = cache_dir() / "hf" / sha256[:16]
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The weights are dequantized floats by now; transformers still marks the model as GGUF-quantized,
    # which refuses save_pretrained. The marks go, the float weights are what we keep.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.is_quantized = False
    scratch = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    tokenizer.save_pretrained(scratch)
    model.save_pretrained(scratch)
    (scratch / "converted-from.txt").write_text(
        f"{gguf_path}\nsha256 {sha256}\n{time.perf_counter() - started:.1f} s\n"
    )
    scratch.rename(target)  # whole or absent: a killed conversion leaves only a scratch directory
    return target


def load_base(base: str | None = None) -> tuple[Any, Any, Path]:
    """(model, tokenizer, source dir) from a Hugging Face directory, or from the embedded GGUF by default."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if base:
        source = Path(base)
    else:
        gguf_path, sha = embedded_gguf()
        source = converted_dir(gguf_path, sha)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    return model, tokenizer, source
