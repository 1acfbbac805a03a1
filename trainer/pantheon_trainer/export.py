"""Write a peft LoRA adapter as a GGUF LoRA adapter that llama.cpp loads (`lora_path=`).

What llama.cpp checks: general.type = adapter, general.architecture equal to the base's, adapter.type =
lora, adapter.lora.alpha as float32, and tensors named `blk.N.<tensor>.weight.lora_a` / `.lora_b`, with
peft's lora_A (r, in) and lora_B (out, r) written as they are (numpy (r, in) is ggml ne = [in, r]).
Names come from gguf's own tensor name map for the base's architecture; shapes are checked against the
base here, so a mismatch is one clear line now rather than a failed load in the runner later.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from pantheon_trainer.errors import TrainerError
from pantheon_trainer.gguf_header import read_header

_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def _adapter(adapter: Path | Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(peft config as a dict, LoRA weights as float32 arrays) from a saved directory or a live PeftModel."""
    if isinstance(adapter, (str, Path)):
        from safetensors.numpy import load_file

        directory = Path(adapter)
        config = json.loads((directory / "adapter_config.json").read_text())
        weights = load_file(str(directory / "adapter_model.safetensors"))
        return config, {key: value.astype(np.float32) for key, value in weights.items()}
    from peft.utils import get_peft_model_state_dict

    config = adapter.peft_config[adapter.active_adapter].to_dict()
    state = get_peft_model_state_dict(adapter)
    return config, {key: value.detach().float().cpu().numpy() for key, value in state.items()}


def _llama_cpp_alpha(config: dict[str, Any]) -> float:
    """The alpha that gives llama.cpp (scale = alpha / r) the scale peft trained with."""
    if config.get("use_dora"):
        raise TrainerError("DoRA adapters cannot be written for llama.cpp; train plain LoRA")
    if config.get("alpha_pattern"):
        raise TrainerError("per-module alphas (alpha_pattern) cannot be written: GGUF has one alpha")
    alpha = float(config["lora_alpha"])
    if config.get("use_rslora"):  # peft scales by alpha / sqrt(r)
        if config.get("rank_pattern"):
            raise TrainerError("rsLoRA with per-module ranks cannot be written: a GGUF adapter has one alpha")
        alpha *= math.sqrt(config["r"])
    return alpha


def export_gguf_adapter(adapter: Path | Any, base_gguf: Path, out_path: Path) -> dict[str, Any]:
    """Write `adapter` (a peft directory or PeftModel) for `base_gguf` as a GGUF LoRA adapter."""
    import gguf

    header = read_header(base_gguf)
    arch = str(header.metadata["general.architecture"])
    blocks = int(header.metadata[f"{arch}.block_count"])  # type: ignore[call-overload]
    model_arch = next((key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == arch), None)
    if model_arch is None:
        raise TrainerError(f"{base_gguf}: architecture {arch!r} is unknown to the gguf package")
    names = gguf.get_tensor_name_map(model_arch, blocks)
    base_shapes = header.shapes
    config, weights = _adapter(adapter)
    alpha = _llama_cpp_alpha(config)
    tensors: dict[str, np.ndarray] = {}
    for key in sorted(weights):
        match = _KEY.match(key)
        if match is None:
            raise TrainerError(f"{key}: not a LoRA A/B weight; llama.cpp adapters carry nothing else")
        target = names.get_name(match.group("module") + ".weight", try_suffixes=(".weight",))
        if target is None or target not in base_shapes:
            raise TrainerError(f"{key}: no tensor for {match.group('module')} in the base {arch} model")
        value = np.ascontiguousarray(weights[key])
        base_in, base_out = base_shapes[target][:2]  # ggml ne order: [in, out]
        fits = value.shape[1] == base_in if match.group("ab") == "A" else value.shape[0] == base_out
        if not fits:
            raise TrainerError(f"{key}: shape {value.shape} does not fit {target} {base_shapes[target]}")
        tensors[target + (".lora_a" if match.group("ab") == "A" else ".lora_b")] = value
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"architecture": arch, "alpha": alpha, "tensors": len(tensors), "path": str(out_path)}
