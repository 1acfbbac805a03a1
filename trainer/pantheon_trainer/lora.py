"""LoRA (and QLoRA, on a GPU) with peft on transformers: a small plain training loop with a progress bar."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pantheon_trainer.errors import TrainerError
from pantheon_trainer.examples import IGNORE, encode_row

__all__ = ["TARGETS", "TrainerError", "read_rows", "split_validation", "train_lora"]

# peft's default for gemma3 is only q_proj and v_proj; llama.cpp applies adapters to all seven.
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

Row = Mapping[str, Any]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file: `{"messages": [...]}` or `{"prompt": ..., "completion": ...}`."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise TrainerError(f"{path}: no rows to train on (mine some with `git pantheon train dataset`)")
    return rows


# Fewer tasks than this and none is spared for validation: one held-out task says nothing about the rest.
VALIDATION_MIN_TASKS = 5
EVAL_EVERY = 10  # steps between validation checkpoints


def _task_key(row: Row) -> str:
    """Rows of one task share their prompt (a stub's file up to its head, or an agent's header), so a
    task's attempts and its morning fix land on the same side of the split."""
    if "prompt" in row:
        return str(row["prompt"])
    messages = row.get("messages") or []
    return str(messages[0].get("content", "")) if messages else json.dumps(row, sort_keys=True)


def split_validation(rows: Sequence[Row], share: float) -> tuple[list[Row], list[Row]]:
    """(rows to fit, rows to validate on): `share` of the tasks (at least one), whole, chosen by a hash of
    their prompt (the same rows always split the same way); nothing held when there are fewer than
    VALIDATION_MIN_TASKS tasks or `share` is 0."""
    keyed = [(_task_key(row), row) for row in rows]
    keys = list(dict.fromkeys(key for key, _ in keyed))
    if share <= 0 or len(keys) < VALIDATION_MIN_TASKS:
        return list(rows), []
    ranked = sorted(keys, key=lambda key: hashlib.sha256(key.encode()).hexdigest())
    held = set(ranked[: max(1, round(len(keys) * share))])
    return [row for key, row in keyed if key not in held], [row for key, row in keyed if key in held]


def check_method(method: str) -> None:
    """Refuse, before any slow loading, a method this machine cannot run."""
    import torch

    if method == "lora":
        return
    if method != "qlora":
        raise TrainerError(f"--method {method}: not lora or qlora")
    if not torch.cuda.is_available():
        raise TrainerError("--method qlora needs a CUDA GPU and bitsandbytes; use --method lora on the CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise TrainerError("--method qlora needs bitsandbytes: pip install bitsandbytes") from None


def bf16_native(device: str) -> bool:
    """Whether `device` computes in bfloat16 natively (else autocast would emulate it, slower than fp32)."""
    import torch

    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _cost(step_costs: list[tuple[float, int]]) -> float | None:
    """Seconds per 1k tokens over these training steps (validation passes are not steps)."""
    tokens = sum(count for _, count in step_costs)
    return round(sum(seconds for seconds, _ in step_costs) / tokens * 1000, 3) if tokens else None


def _warm_cost(step_costs: list[tuple[float, int]]) -> float | None:
    return _cost(step_costs[1:])


def _loss(model: Any, example: Mapping[str, list[int]], device: str, bf16: bool) -> tuple[Any, int]:
    """The example's loss on its targets (a tensor, for backward) and the tokens it put through the model."""
    import torch

    ids, positions, targets = _batch(example, device)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=ids, logits_to_keep=positions).logits[0]
    return torch.nn.functional.cross_entropy(logits.float(), targets), int(ids.shape[1])


def _batch(example: Mapping[str, list[int]], device: str) -> tuple[Any, Any, Any]:
    """Input ids, the positions whose next token is a target, and those targets.

    Only those positions go through the 262k-word output layer (`logits_to_keep`): on prompt-heavy rows
    that layer would otherwise cost as much as the rest of the model, and gigabytes of logits."""
    import torch

    ids, labels = example["input_ids"], example["labels"]
    positions = [i for i in range(len(ids) - 1) if labels[i + 1] != IGNORE]
    return (
        torch.tensor([ids], device=device),
        torch.tensor(positions, device=device),
        torch.tensor([labels[i + 1] for i in positions], device=device),
    )


def train_lora(
    dataset: Path | Sequence[Row],
    out_dir: Path,
    *,
    base: str | Path | None = None,
    method: str = "lora",
    rank: int = 8,
    alpha: float | None = None,
    steps: int = 50,
    learning_rate: float = 2e-4,
    seed: int = 0,
    threads: int | None = None,
    max_length: int = 4096,
    progress: bool = True,
    precision: str = "fp32",
    validation_share: float = 0.0,
    eval_every: int = EVAL_EVERY,
) -> dict[str, Any]:
    """Train an adapter on a JSONL file or its rows and save it (peft format) in `out_dir`.

    `base`: a Hugging Face directory or a .gguf file; default the embedded GGUF the runner serves.
    One row per step, rows shuffled with `seed`; returns the settings and the loss of every step.
    `precision`: "fp32", "bf16" (the forward pass under bfloat16 autocast; weights, LoRA parameters and
    optimizer stay fp32), or "auto": bf16 where the hardware has it (a CPU with AVX512-BF16 or AMX, a GPU
    with bf16), else fp32 (bench/bench_training.py: 2.2x faster a step on a 2-core AVX512-BF16 CPU).
    `validation_share`: that share of the tasks is held out of training (`split_validation`); their loss is
    measured before the first step and every `eval_every` steps, and the adapter saved is the one of the
    checkpoint with the lowest (step 0: the untrained adapter, which changes nothing). A few rows teach a
    small model a shape within a few epochs and then only its training rows (measured: loss 0.69 -> 0.03
    on 12 rows, and worse held-out bodies), so the steps worth keeping are chosen on tasks it never saw."""
    check_method(method)
    if precision not in ("fp32", "bf16", "auto"):
        raise TrainerError(f"--precision {precision}: not fp32, bf16 or auto")
    if not 0 <= validation_share < 1:
        raise TrainerError(f"--validation-share {validation_share}: must be at least 0 and below 1")
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    from pantheon_trainer.base import load_base

    rows = read_rows(dataset) if isinstance(dataset, Path) else list(dataset)
    rows, validation_rows = split_validation(rows, validation_share)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    shuffle = random.Random(seed)
    model, tokenizer, source = load_base(base, quantize_4bit=method == "qlora")
    examples = [encode_row(tokenizer, row, max_length) for row in rows]
    examples = [example for example in examples if any(label != IGNORE for label in example["labels"])]
    if not examples:
        raise TrainerError("no row has an assistant message to learn from")
    validation = [encode_row(tokenizer, row, max_length) for row in validation_rows]
    validation = [example for example in validation if any(label != IGNORE for label in example["labels"])]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = "bf16" if bf16_native(device) else "fp32"
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(device)
    alpha = float(alpha if alpha is not None else 2 * rank)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        bias="none",  # llama.cpp adapters carry LoRA A/B only
        target_modules=TARGETS,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)

    def validation_loss() -> float:
        model.eval()
        total = 0.0
        with torch.no_grad():
            for example in validation:
                total += _loss(model, example, device, precision == "bf16")[0].item()
        model.train()
        return total / len(validation)

    checkpoints: list[tuple[int, float]] = []  # (step, validation loss)
    kept: tuple[float, int, list[Any]] | None = None  # the best checkpoint: loss, step, LoRA weights

    validation_seconds = 0.0  # apart from the steps': a step's cost must not depend on the held-out share

    def checkpoint(step: int) -> None:
        nonlocal kept, validation_seconds
        measured = time.perf_counter()
        loss = validation_loss()
        validation_seconds += time.perf_counter() - measured
        checkpoints.append((step, round(loss, 4)))
        if kept is None or loss < kept[0]:
            kept = (loss, step, [parameter.detach().clone() for parameter in trainable])

    started = time.perf_counter()
    if validation:
        checkpoint(0)
    model.train()
    losses: list[float] = []
    tokens = 0  # tokens through the model over all steps: the cost follows them, not the row count
    step_costs: list[tuple[float, int]] = []  # (seconds, tokens) of each step
    order = list(range(len(examples)))
    bar = tqdm(range(steps), desc=f"{method} r={rank}", disable=not progress)
    for step in bar:
        if step % len(order) == 0:
            shuffle.shuffle(order)
        step_started = time.perf_counter()
        loss, length = _loss(model, examples[order[step % len(order)]], device, precision == "bf16")
        tokens += length
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        step_costs.append((time.perf_counter() - step_started, length))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if validation and ((step + 1) % eval_every == 0 or step + 1 == steps):
            checkpoint(step + 1)
    if kept is not None:
        with torch.no_grad():
            for parameter, weights in zip(trainable, kept[2], strict=True):
                parameter.copy_(weights)
    seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    summary: dict[str, Any] = {
        "base": str(source),
        "method": method,
        "rank": rank,
        "alpha": alpha,
        "steps": steps,
        "learning_rate": learning_rate,
        "seed": seed,
        "rows": len(examples),
        "rows_skipped": len(rows) - len(examples),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds_per_step": round(sum(cost for cost, _ in step_costs) / max(1, steps), 3),
        "seconds": round(seconds, 3),  # wall time: the steps and the validation passes
        "tokens_per_step": round(tokens / max(1, steps), 1),
        "validation_seconds": round(validation_seconds, 3),
        "seconds_per_step_per_1k_tokens": _cost(step_costs),
        # Without the first step, which pays one-time allocations (seconds on a CPU): the steady cost.
        "warm_seconds_per_step_per_1k_tokens": _warm_cost(step_costs),
        "device": device,
        "precision": precision,
        "validation_rows": len(validation),
        "validation_losses": checkpoints,
        "kept_step": kept[1] if kept is not None else steps,
    }
    (out_dir / "training.json").write_text(json.dumps({**summary, "losses": losses}, indent=1))
    return {**summary, "losses": losses}
