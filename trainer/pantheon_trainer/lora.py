"""LoRA (and QLoRA, on a GPU) with peft on transformers, a small plain training loop with a progress bar."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pantheon_trainer.examples import encode

# peft's default for gemma3 is only q_proj and v_proj; llama.cpp applies adapters to all seven.
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainerError(Exception):
    """A one-line refusal (missing GPU, empty dataset, …)."""


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise TrainerError(f"{path}: no rows to train on (mine some with `git pantheon train dataset`)")
    return rows


def train_lora(
    rows: list[dict[str, Any]],
    out_dir: Path,
    *,
    base: str | None = None,
    method: str = "lora",
    rank: int = 8,
    steps: int = 50,
    learning_rate: float = 2e-4,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an adapter on `rows` and save it (peft format) in `out_dir`; returns losses and settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    from pantheon_trainer.base import load_base

    if method == "qlora":
        if not torch.cuda.is_available():
            raise TrainerError(
                "--method qlora needs a CUDA GPU and bitsandbytes; use --method lora on the CPU"
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise TrainerError("--method qlora needs bitsandbytes: pip install bitsandbytes") from None
    torch.manual_seed(seed)
    random.seed(seed)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    model, tokenizer, source = load_base(base)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if method == "qlora":
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(str(source), quantization_config=quant)
    model.to(device)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        bias="none",
        target_modules=TARGETS,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    examples = [encode(tokenizer, row["messages"]) for row in rows]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    model.train()
    losses: list[float] = []
    order = list(range(len(examples)))
    bar = tqdm(range(steps), desc="lora", disable=not progress)
    for step in bar:
        if step % len(order) == 0:
            random.shuffle(order)
        example = examples[order[step % len(order)]]
        ids = torch.tensor([example["input_ids"]], device=device)
        labels = torch.tensor([example["labels"]], device=device)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    summary = {
        "base": str(source),
        "method": method,
        "rank": rank,
        "alpha": 2 * rank,
        "steps": steps,
        "learning_rate": learning_rate,
        "seed": seed,
        "rows": len(rows),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "device": device,
    }
    (out_dir / "training.json").write_text(json.dumps({**summary, "losses": losses}, indent=1))
    return {**summary, "losses": losses}
