"""The base model for training: the very GGUF the runner serves, converted once to transformers and cached.

transformers dequantizes a gemma3 GGUF into a float model (`gguf_file=`); that first conversion is slow
(about 70-80 s on 2 cores, mostly the tokenizer), so the result is saved in the model cache, keyed by the
GGUF's sha256, and later runs load the saved copy in about 3 s. A Hugging Face directory is taken as it
is. Nothing is ever fetched from a hub (the package sets HF_HUB_OFFLINE before transformers loads).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

SCRATCH = ".tmp"  # a conversion in progress: <sha16>.tmp<pid>, renamed to <sha16> when whole


def embedded_gguf() -> tuple[Path, str]:
    """(path, sha256) of the embedded Gemma 3 270M GGUF, assembled once by the runtime's own rule."""
    from pantheon_git.runtime.bundled import bundled_gguf

    return bundled_gguf()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_scratch(target: Path) -> None:
    """A killed conversion leaves a scratch directory behind; the next one clears it."""
    for scratch in target.parent.glob(target.name + SCRATCH + "*"):
        pid = scratch.name.rsplit(SCRATCH, 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def converted_dir(gguf_path: Path, sha256: str) -> Path:
    """A transformers copy of `gguf_path` in the cache, made on first use (then reused)."""
    from pantheon_git.runtime.bundled import cache_dir

    target = cache_dir() / "hf" / sha256[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_scratch(target)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The weights are dequantized floats by now; transformers still marks the model as GGUF-quantized,
    # which refuses save_pretrained. The marks go, the float weights are what we keep.
    # (torch types a module's attributes as tensors and modules; these two are plain ones of transformers)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.is_quantized = False  # type: ignore[assignment]
    scratch = target.with_name(f"{target.name}{SCRATCH}{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    tokenizer.save_pretrained(scratch)
    model.save_pretrained(scratch)
    (scratch / "converted-from.txt").write_text(
        f"{gguf_path}\nsha256 {sha256}\n{time.perf_counter() - started:.1f} s\n"
    )
    try:
        scratch.rename(target)  # whole or absent: a killed conversion leaves only a scratch directory
    except OSError:
        if not (target / "config.json").is_file():
            raise
        shutil.rmtree(scratch, ignore_errors=True)  # another process finished the same conversion first
    return target


def resolve_base(base: str | Path | None) -> Path:
    """The Hugging Face directory to load: `base`, a .gguf file's converted copy, or the embedded one."""
    from pantheon_trainer.errors import TrainerError

    if base is None:
        return converted_dir(*embedded_gguf())
    path = Path(base)
    if path.is_file() and path.suffix == ".gguf":
        from pantheon_git.runtime.bundled import file_sha256

        return converted_dir(path, file_sha256(path))
    if not (path / "config.json").is_file():
        raise TrainerError(f"{path}: not a Hugging Face model directory (no config.json) nor a .gguf file")
    return path


def load_base(base: str | Path | None = None, *, quantize_4bit: bool = False) -> tuple[Any, Any, Path]:
    """(model, tokenizer, source dir); 4-bit (bitsandbytes, on the GPU) for QLoRA, else float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_base(base)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(source), quantization_config=quantization, device_map={"": 0}
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    return model, tokenizer, source
