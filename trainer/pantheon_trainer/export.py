"""Write a peft LoRA adapter as a GGUF LoRA adapter that llama.cpp loads (`lora_path=`).

What llama.cpp checks: general.type = adapter, general.architecture equal to the base's, adapter.type =
lora, adapter.lora.alpha as float32, and tensors named `blk.N.<tensor>.weight.lora_a` / `.lora_b`, with
peft's lora_A (r, in) and lora_B (out, r) written as they are (numpy (r, in) is ggml ne = [in, r]).
Names come from gguf's own tensor name map for the base's architecture.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def base_architecture(base_gguf: Path) -> tuple[str, int]:
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    field = reader.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode()
    blocks_field = reader.fields[f"{arch}.block_count"]
    return arch, int(blocks_field.parts[blocks_field.data[0]][0])


def export_gguf_adapter(adapter_dir: Path, base_gguf: Path, out_path: Path) -> dict[str, object]:
    import gguf
    from safetensors.numpy import load_file

    arch, blocks = base_architecture(base_gguf)
    model_arch = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == arch)
    names = gguf.get_tensor_name_map(model_arch, blocks)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    alpha = float(config["lora_alpha"])
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    writer = gguf.GGUFWriter(str(out_path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    written = 0
    for key in sorted(weights):
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"{key}: not a LoRA A/B weight; llama.cpp adapters carry nothing else")
        target = names.get_name(match.group("module") + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise ValueError(f"{key}: no GGUF tensor for {match.group('module')} in {arch}")
        suffix = ".lora_a" if match.group("ab") == "A" else ".lora_b"
        writer.add_tensor(target + suffix, np.ascontiguousarray(weights[key], dtype=np.float32))
        written += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"architecture": arch, "alpha": alpha, "tensors": written, "path": str(out_path)}
