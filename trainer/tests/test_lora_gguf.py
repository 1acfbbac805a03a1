"""A real (short) LoRA run on the embedded model, its GGUF export, and llama.cpp loading it."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PROMPT, SECRET


def test_training_lowers_the_loss(trained: dict[str, Any]) -> None:
    losses = trained["summary"]["losses"]
    assert len(losses) == 20 and losses[-1] < losses[0] / 10


def test_gguf_adapter_metadata_and_tensors(trained: dict[str, Any]) -> None:
    import gguf

    reader = gguf.GGUFReader(str(trained["gguf"]))

    def field(name: str) -> Any:
        value = reader.fields[name]
        return value.parts[value.data[0]]

    assert bytes(field("general.type")).decode() == "adapter"
    assert bytes(field("general.architecture")).decode() == "gemma3"
    assert bytes(field("adapter.type")).decode() == "lora"
    alpha = reader.fields["adapter.lora.alpha"]
    assert alpha.types == [gguf.GGUFValueType.FLOAT32] and float(field("adapter.lora.alpha")[0]) == 16.0
    names = {tensor.name: tensor for tensor in reader.tensors}
    assert len(names) == trained["export"]["tensors"] == 18 * 7 * 2
    a, b = names["blk.0.attn_q.weight.lora_a"], names["blk.0.attn_q.weight.lora_b"]
    assert a.shape.tolist()[1] == 8 and b.shape.tolist()[0] == 8  # ggml ne: lora_a [in, r], lora_b [r, out]
    assert {"blk.17.ffn_down.weight.lora_b", "blk.3.attn_output.weight.lora_a"} <= set(names)


def test_llama_cpp_loads_the_adapter_and_it_changes_the_output(trained: dict[str, Any]) -> None:
    from llama_cpp import Llama

    prompt = PROMPT + "Call: "
    settings = {"n_threads": 2, "n_ctx": 512, "seed": 0, "verbose": False}
    base = Llama(model_path=str(trained["base"]), **settings)
    before = base.create_completion(prompt, max_tokens=24, temperature=0)["choices"][0]["text"]
    tuned = Llama(model_path=str(trained["base"]), lora_path=str(trained["gguf"]), **settings)
    after = tuned.create_completion(prompt, max_tokens=24, temperature=0)["choices"][0]["text"]
    assert "zorblax" not in before
    assert after.startswith(SECRET[:30]) and after != before


def test_qlora_without_a_gpu_is_refused_in_one_line(tmp_path) -> None:
    import torch
    from pantheon_trainer.lora import TrainerError, train_lora

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: QLoRA is allowed here")
    with pytest.raises(TrainerError, match="--method qlora needs a CUDA GPU"):
        train_lora([{"messages": []}], tmp_path, method="qlora", steps=1)


def test_examples_put_the_loss_on_the_calls_only() -> None:
    from pantheon_trainer.base import converted_dir, embedded_gguf
    from pantheon_trainer.examples import IGNORE, encode
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted_dir(*embedded_gguf())))
    messages = [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": SECRET},
        {"role": "tool", "content": "done"},
        {"role": "assistant", "content": '{"tool":"x"}'},
    ]
    encoded = encode(tokenizer, messages)
    target = tokenizer.decode(
        [i for i, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != IGNORE]
    )
    assert target == SECRET + '{"tool":"x"}'
    text = tokenizer.decode(encoded["input_ids"], skip_special_tokens=True)
    assert text == PROMPT + "Call: " + SECRET + "\nResult: done\nCall: " + '{"tool":"x"}' + "\n"
