"""A real (short) LoRA run on the embedded model, its GGUF export, and llama.cpp loading it."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import PROMPT, SECRET


def test_training_lowers_the_loss(trained: dict[str, Any]) -> None:
    losses = trained["summary"]["losses"]
    assert len(losses) == 20 and losses[-1] < losses[0] / 10


def test_gguf_adapter_metadata_and_tensors(trained: dict[str, Any]) -> None:
    import gguf
    from pantheon_trainer.gguf_header import read_header

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
    # ggml ne order: lora_a [in, r], lora_b [r, out]; q_proj maps 640 -> 4 heads x 256
    assert a.shape.tolist() == [640, 8] and b.shape.tolist() == [8, 1024]
    assert a.tensor_type == gguf.GGMLQuantizationType.F32
    assert {"blk.17.ffn_down.weight.lora_b", "blk.3.attn_output.weight.lora_a"} <= set(names)
    # The export's fast header reader agrees with gguf's own reader.
    header = read_header(trained["gguf"])
    assert header.shapes == {name: tensor.shape.tolist() for name, tensor in names.items()}
    assert header.metadata["adapter.lora.alpha"] == 16.0 and header.metadata["general.type"] == "adapter"


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


def test_rslora_alpha_is_rescaled_and_dora_is_refused(trained: dict[str, Any], tmp_path: Path) -> None:
    from pantheon_trainer.errors import TrainerError
    from pantheon_trainer.export import export_gguf_adapter

    adapter = tmp_path / "peft"
    shutil.copytree(trained["out"] / "peft", adapter)
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    # rsLoRA scales by alpha/sqrt(r), llama.cpp by alpha/r: the written alpha keeps peft's scale.
    config_path.write_text(json.dumps({**config, "use_rslora": True}))
    exported = export_gguf_adapter(adapter, trained["base"], tmp_path / "rs.gguf")
    assert exported["alpha"] == pytest.approx(16.0 * math.sqrt(8))
    config_path.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(TrainerError, match="DoRA"):
        export_gguf_adapter(adapter, trained["base"], tmp_path / "dora.gguf")


def test_examples_put_the_loss_on_the_calls_only(converted: Path) -> None:
    from pantheon_trainer.errors import TrainerError
    from pantheon_trainer.examples import IGNORE, encode
    from transformers import AutoTokenizer

    from pantheon_git.agents.loop import rebuild_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    messages = [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": SECRET},
        {"role": "tool", "content": "done\ntwice"},
        {"role": "assistant", "content": '{"tool":"x"}'},
    ]
    encoded = encode(tokenizer, messages)
    target = tokenizer.decode(
        [i for i, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != IGNORE]
    )
    assert target == SECRET + '{"tool":"x"}'
    # The context is the runner's own prompt for that turn, to the character.
    turns = [{"completion": SECRET, "result": "done\ntwice"}]
    text = tokenizer.decode(encoded["input_ids"], skip_special_tokens=True)
    assert text == rebuild_prompt(PROMPT, turns, 2) + '{"tool":"x"}'
    # …and token for token what llama.cpp feeds the model at that turn (BOS included).
    from llama_cpp import Llama
    from pantheon_trainer.base import embedded_gguf

    vocab = Llama(model_path=str(embedded_gguf()[0]), vocab_only=True, verbose=False)
    first_target = next(i for i, label in enumerate(encoded["labels"]) if label != IGNORE)
    prompt = rebuild_prompt(PROMPT, [], 1).encode()
    assert encoded["input_ids"][:first_target] == vocab.tokenize(prompt, add_bos=True)
    with pytest.raises(TrainerError, match="role 'tool'"):
        encode(tokenizer, [{"role": "user", "content": PROMPT}, {"role": "tool", "content": "x"}])


def test_a_completion_row_is_the_runners_stub_prompt_then_the_body_and_its_end(converted: Path) -> None:
    """A code completion at a stub is learned from exactly what llama.cpp is fed there (BOS, the file up
    to the function's head) with the loss on the body and the end-of-sequence token only."""
    from llama_cpp import Llama
    from pantheon_trainer.base import embedded_gguf
    from pantheon_trainer.errors import TrainerError
    from pantheon_trainer.examples import IGNORE, encode_row
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    prompt = 'def add(a, b):\n    """Return the sum of a and b."""\n'
    body = "    return a + b\n"
    encoded = encode_row(tokenizer, {"prompt": prompt, "completion": body})
    first_target = next(i for i, label in enumerate(encoded["labels"]) if label != IGNORE)
    vocab = Llama(model_path=str(embedded_gguf()[0]), vocab_only=True, verbose=False)
    assert encoded["input_ids"][:first_target] == vocab.tokenize(prompt.encode(), add_bos=True)
    targets = encoded["input_ids"][first_target:]
    assert targets[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(targets[:-1]) == body
    assert encoded["labels"][first_target:] == targets
    # A file longer than the context keeps its end (the code nearest the stub), as the runner cuts it.
    cut = encode_row(tokenizer, {"prompt": "x = 1\n" * 400 + prompt, "completion": body}, max_length=64)
    assert len(cut["input_ids"]) == 64 and tokenizer.decode(cut["input_ids"]).endswith(
        prompt + body + "<eos>"
    )
    with pytest.raises(TrainerError, match="neither"):
        encode_row(tokenizer, {"prompt": prompt})
