"""`python -m pantheon_trainer`: a seeded run repeats exactly; QLoRA without a GPU is one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from conftest import PROMPT, SECRET, THREADS


def trainer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pantheon_trainer", *args], capture_output=True, text=True, timeout=300
    )


def test_a_seeded_run_repeats_exactly_from_the_cli_and_the_api(converted: Path, tmp_path: Path) -> None:
    from pantheon_trainer.lora import train_lora
    from safetensors.numpy import load_file

    from pantheon_git.training.finetune import LoraSettings

    dataset = tmp_path / "train.jsonl"
    row = {"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": SECRET}]}
    dataset.write_text(json.dumps(row) + "\n")
    settings = ["--rank", "4", "--steps", "3", "--lr", "1e-3", "--seed", "7", "--threads", str(THREADS)]
    cli = trainer("lora", "--dataset", str(dataset), "--out", str(tmp_path / "cli"), "--base", str(converted),
                  *settings, "--gguf", str(tmp_path / "cli.gguf"))  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    summary = json.loads(cli.stdout)
    assert summary["gguf"]["tensors"] == 18 * 7 * 2 and (tmp_path / "cli.gguf").stat().st_size > 0
    settings = LoraSettings(
        rank=4, steps=3, learning_rate=1e-3, seed=7, threads=THREADS
    )  # the CLI's defaults
    api = train_lora(dataset, tmp_path / "api", settings=settings, base=converted, progress=False)
    cli_losses = json.loads((tmp_path / "cli" / "training.json").read_text())["losses"]
    assert api["losses"] == cli_losses and api["base"] == str(converted)
    weights = [load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("cli", "api")]
    assert all((weights[0][key] == weights[1][key]).all() for key in weights[0])
    # A live PeftModel exports to the same bytes as its saved directory.
    from pantheon_trainer.base import embedded_gguf, load_base
    from pantheon_trainer.export import export_gguf_adapter
    from peft import PeftModel

    live = PeftModel.from_pretrained(load_base(converted)[0], str(tmp_path / "api"))
    export_gguf_adapter(live, embedded_gguf()[0], tmp_path / "live.gguf")
    assert (tmp_path / "live.gguf").read_bytes() == (tmp_path / "cli.gguf").read_bytes()


def test_a_base_that_is_no_model_is_refused(tmp_path: Path) -> None:
    import pytest
    from pantheon_trainer.errors import TrainerError
    from pantheon_trainer.lora import train_lora

    with pytest.raises(TrainerError, match="not a Hugging Face model directory"):
        train_lora([], tmp_path / "out", base=tmp_path)


def test_qlora_without_a_gpu_is_refused_in_one_line(tmp_path: Path) -> None:
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: QLoRA is allowed here")
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"messages": []}\n')
    refused = trainer("lora", "--dataset", str(dataset), "--out", str(tmp_path), "--method", "qlora")
    assert refused.returncode == 2
    assert refused.stderr == (
        "pantheon-trainer: --method qlora needs a CUDA GPU and bitsandbytes; use --method lora on the CPU\n"
    )


def test_a_validation_share_that_leaves_nothing_to_train_on_is_refused_in_one_line(tmp_path: Path) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"prompt": "def f():\\n", "completion": "    return 1\\n"}\n')
    refused = trainer(
        "lora", "--dataset", str(dataset), "--out", str(tmp_path / "out"), "--validation-share", "1"
    )
    assert refused.returncode == 2
    assert refused.stderr == "pantheon-trainer: --validation-share 1.0: must be at least 0 and below 1\n"
    assert not (tmp_path / "out").exists()


def test_bf16_autocast_learns_what_fp32_learns(converted: Path, tmp_path: Path) -> None:
    """The forward pass under bfloat16 autocast gives the fp32 losses to within rounding; `auto` takes
    bf16 exactly where the hardware computes it natively."""
    from pantheon_trainer.lora import bf16_native, train_lora

    from pantheon_git.training.finetune import LoraSettings

    rows = [{"prompt": 'def add(a, b):\n    """Sum."""\n', "completion": "    return a + b\n"}]
    settings = LoraSettings(rank=4, steps=3, learning_rate=1e-3, threads=2)

    def run(name: str, **changed: object) -> dict:
        return train_lora(
            rows, tmp_path / name, settings=replace(settings, **changed), base=converted, progress=False
        )

    fp32, bf16 = run("fp32", precision="fp32"), run("bf16", precision="bf16")
    auto = run("auto", precision="auto", steps=1)
    assert bf16["precision"] == "bf16" and fp32["precision"] == "fp32"
    assert all(abs(a - b) < 0.05 * max(1.0, a) for a, b in zip(fp32["losses"], bf16["losses"], strict=True))
    assert fp32["losses"][-1] < fp32["losses"][0] and bf16["losses"][-1] < bf16["losses"][0]
    assert auto["precision"] == ("bf16" if bf16_native("cpu") else "fp32")
