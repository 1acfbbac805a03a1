"""LoRA (and QLoRA, on a GPU) with peft on transformers: a small plain training loop with a progress bar."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pantheon_git.training.finetune import DEFAULTS, LoraSettings, Method, Precision
from pantheon_trainer.errors import TrainerError
from pantheon_trainer.examples import IGNORE, encode_row

__all__ = ["TARGETS", "TrainerError", "read_rows", "split_validation", "train_adapter", "train_lora"]

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


def check_method(method: Method) -> None:
    """Refuse, before any slow loading, a method this machine cannot run."""
    import torch

    if method is Method.LORA:
        return
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


def _examples(tokenizer: Any, rows: Sequence[Row], max_length: int) -> list[dict[str, list[int]]]:
    """The rows encoded, less those with no target to learn (no assistant turn, no completion)."""
    encoded = [encode_row(tokenizer, row, max_length) for row in rows]
    return [example for example in encoded if any(label != IGNORE for label in example["labels"])]


@dataclass(slots=True)
class _Model:
    """The model in training with its LoRA, where it runs, and in which precision."""

    peft: Any
    device: str
    bf16: bool
    trainable: list[Any]

    def loss(self, example: Mapping[str, list[int]]) -> tuple[Any, int]:
        return _loss(self.peft, example, self.device, self.bf16)

    def mean_loss(self, examples: Sequence[Mapping[str, list[int]]]) -> float:
        import torch

        self.peft.eval()
        total = 0.0
        with torch.no_grad():
            for example in examples:
                total += self.loss(example)[0].item()
        self.peft.train()
        return total / len(examples)


def _with_lora(model: Any, settings: LoraSettings, device: str) -> _Model:
    """The base with the LoRA of `settings` on all seven projections, on `device`."""
    from peft import LoraConfig, get_peft_model

    if settings.method is Method.QLORA:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(device)
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.lora_alpha,  # type: ignore[arg-type]  # peft says int; it scales by alpha / r
        lora_dropout=0.0,
        bias="none",  # llama.cpp adapters carry LoRA A/B only
        target_modules=TARGETS,
        task_type="CAUSAL_LM",
    )
    peft = get_peft_model(model, config)
    bf16 = settings.precision is Precision.BF16 or (
        settings.precision is Precision.AUTO and bf16_native(device)
    )
    return _Model(
        peft, device, bf16, [parameter for parameter in peft.parameters() if parameter.requires_grad]
    )


@dataclass(slots=True)
class _Validation:
    """The loss on the held-out tasks at each checkpoint; the LoRA weights of the lowest are kept."""

    examples: list[dict[str, list[int]]]
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    kept: tuple[float, int, list[Any]] | None = None  # the best checkpoint: loss, step, LoRA weights
    seconds: float = 0.0  # apart from the steps': a step's cost must not depend on the held-out share

    def checkpoint(self, model: _Model, step: int) -> None:
        measured = time.perf_counter()
        loss = model.mean_loss(self.examples)
        self.seconds += time.perf_counter() - measured
        self.losses.append((step, round(loss, 4)))
        if self.kept is None or loss < self.kept[0]:
            self.kept = (loss, step, [parameter.detach().clone() for parameter in model.trainable])

    def restore(self, model: _Model) -> None:
        """Put the kept checkpoint's weights back (nothing to do without validation)."""
        import torch

        if self.kept is None:
            return
        with torch.no_grad():
            for parameter, weights in zip(model.trainable, self.kept[2], strict=True):
                parameter.copy_(weights)


def _fit(
    model: _Model,
    examples: list[dict[str, list[int]]],
    settings: LoraSettings,
    validation: _Validation,
    *,
    progress: bool,
) -> tuple[list[float], list[tuple[float, int]]]:
    """The steps, one row each, rows shuffled with the seed: (the loss of each, (seconds, tokens) of each)."""
    import torch
    from tqdm import tqdm

    optimizer = torch.optim.AdamW(model.trainable, lr=settings.learning_rate)
    shuffle = random.Random(settings.seed)
    if validation.examples:
        validation.checkpoint(model, 0)
    model.peft.train()
    losses: list[float] = []
    step_costs: list[tuple[float, int]] = []  # the cost follows the tokens through the model, not the rows
    order = list(range(len(examples)))
    bar = tqdm(range(settings.steps), desc=f"{settings.method.value} r={settings.rank}", disable=not progress)
    for step in bar:
        if step % len(order) == 0:
            shuffle.shuffle(order)
        step_started = time.perf_counter()
        loss, length = model.loss(examples[order[step % len(order)]])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        step_costs.append((time.perf_counter() - step_started, length))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        done = step + 1
        if validation.examples and (done % settings.eval_every == 0 or done == settings.steps):
            validation.checkpoint(model, done)
    validation.restore(model)
    return losses, step_costs


def train_lora(
    dataset: Path | Sequence[Row],
    out_dir: Path,
    *,
    settings: LoraSettings = DEFAULTS,
    base: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train an adapter on a JSONL file or its rows and save it (peft format) in `out_dir`.

    `base`: a Hugging Face directory or a .gguf file; default the embedded GGUF the runner serves.
    One row per step, rows shuffled with `settings.seed`; returns the settings and the loss of every step.
    `settings.precision`: "fp32", "bf16" (the forward pass under bfloat16 autocast; weights, LoRA
    parameters and optimizer stay fp32), or "auto": bf16 where the hardware has it (a CPU with AVX512-BF16
    or AMX, a GPU with bf16), else fp32 (bench/bench_training.py: 2.2x faster a step on a 2-core
    AVX512-BF16 CPU). `settings.validation_share`: that share of the tasks is held out of training
    (`split_validation`); their loss is measured before the first step and every `eval_every` steps, and
    the adapter saved is the one of the checkpoint with the lowest (step 0: the untrained adapter, which
    changes nothing). A few rows teach a small model a shape within a few epochs and then only its
    training rows (measured: loss 0.69 -> 0.03 on 12 rows, and worse held-out bodies), so the steps worth
    keeping are chosen on tasks it never saw."""
    check_method(settings.method)
    import torch

    from pantheon_trainer.base import load_base

    rows, validation_rows = split_validation(
        read_rows(dataset) if isinstance(dataset, Path) else list(dataset), settings.validation_share
    )
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    # A seeded run repeats exactly: oneDNN (the CPU's bf16 matmuls under autocast) may otherwise choose a
    # kernel whose reduction order varies run to run (seen: a loss differing in the fourth decimal).
    torch.backends.mkldnn.set_flags(_deterministic=True)
    base_model, tokenizer, source = load_base(base, quantize_4bit=settings.method is Method.QLORA)
    examples = _examples(tokenizer, rows, settings.max_length)
    if not examples:
        raise TrainerError("no row has an assistant message to learn from")
    validation = _Validation(_examples(tokenizer, validation_rows, settings.max_length))
    model = _with_lora(base_model, settings, "cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    losses, step_costs = _fit(model, examples, settings, validation, progress=progress)
    seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    model.peft.save_pretrained(str(out_dir))
    steps = settings.steps
    summary: dict[str, Any] = {
        "base": str(source),
        "method": settings.method.value,
        "rank": settings.rank,
        "alpha": settings.lora_alpha,
        "steps": steps,
        "learning_rate": settings.learning_rate,
        "seed": settings.seed,
        "rows": len(examples),
        "rows_skipped": len(rows) - len(examples),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds_per_step": round(sum(cost for cost, _ in step_costs) / max(1, steps), 3),
        "seconds": round(seconds, 3),  # wall time: the steps and the validation passes
        "tokens_per_step": round(sum(tokens for _, tokens in step_costs) / max(1, steps), 1),
        "validation_seconds": round(validation.seconds, 3),
        "seconds_per_step_per_1k_tokens": _cost(step_costs),
        # Without the first step, which pays one-time allocations (seconds on a CPU): the steady cost.
        "warm_seconds_per_step_per_1k_tokens": _warm_cost(step_costs),
        "device": model.device,
        "precision": "bf16" if model.bf16 else "fp32",
        "validation_share": settings.validation_share,
        "validation_rows": len(validation.examples),
        "validation_losses": validation.losses,
        "kept_step": validation.kept[1] if validation.kept is not None else steps,
    }
    (out_dir / "training.json").write_text(json.dumps({**summary, "losses": losses}, indent=1))
    return {**summary, "losses": losses}


def train_adapter(
    dataset: Path | Sequence[Row],
    out_dir: Path,
    *,
    settings: LoraSettings = DEFAULTS,
    base: str | Path | None = None,
    gguf: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The run every entry point makes (`git pantheon train lora`, `night --train` through
    `pantheon_git.training.finetune`, `python -m pantheon_trainer lora`): `train_lora` into `out_dir`,
    then, given `gguf`, the adapter exported there for llama.cpp (its `gguf` in the summary), on the
    base's own GGUF when the base is one, else the embedded one."""
    from pantheon_trainer.base import embedded_gguf
    from pantheon_trainer.export import export_gguf_adapter

    summary = train_lora(dataset, out_dir, settings=settings, base=base, progress=progress)
    if gguf is not None:
        # A Hugging Face base has no GGUF of its own: the embedded one (the export checks the shapes).
        base_gguf = Path(base) if base is not None and str(base).endswith(".gguf") else embedded_gguf()[0]
        summary["gguf"] = export_gguf_adapter(out_dir, base_gguf, gguf)
    return summary
