"""Validation inside training: whole tasks held out of the LoRA, and the step with their lowest loss kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import THREADS
from pantheon_trainer.lora import split_validation, train_lora

from pantheon_git.training.finetune import LoraSettings


def sum_rows(names: list[str]) -> list[dict[str, str]]:
    """One completion row per task: a stub's file up to its head, then the body."""
    return [
        {
            "prompt": f'def {name}(a: int, b: int) -> int:\n    """Return a plus b."""\n',
            "completion": "    return a + b\n",
        }
        for name in names
    ]


def test_whole_tasks_are_held_out_and_too_few_tasks_hold_none() -> None:
    rows = sum_rows([f"add_{n}" for n in range(10)])
    rows.append({**rows[3], "completion": "    return b + a\n"})  # a second row of task add_3 (a fix)
    fit, held = split_validation(rows, 0.2)
    assert len({row["prompt"] for row in held}) == 2  # a fifth of the 10 tasks
    assert sorted(map(str, fit + held)) == sorted(map(str, rows))
    both = [row for row in rows if row["prompt"] == rows[3]["prompt"]]
    assert all(row in held for row in both) or all(row in fit for row in both)  # never split
    assert split_validation(list(reversed(rows)), 0.2)[1] == [r for r in reversed(rows) if r in held]
    assert split_validation(rows[:4], 0.2) == (rows[:4], [])  # 4 tasks: none to spare
    assert split_validation(rows, 0.0) == (rows, [])


def test_the_adapter_kept_is_the_checkpoint_with_the_lowest_validation_loss(
    converted: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    rows = sum_rows([f"add_{n}" for n in range(6)])
    settings = LoraSettings(rank=4, steps=4, threads=THREADS, validation_share=0.2, eval_every=2)
    common = {"base": converted, "progress": False}
    # A learning rate that wrecks the model: every trained checkpoint is worse than none, so the adapter
    # saved is the untrained one (its B matrices zero: it changes nothing).
    wrecked = train_lora(rows, tmp_path / "wrecked", settings=replace(settings, learning_rate=0.5), **common)
    assert wrecked["validation_rows"] == 1 and wrecked["rows"] == 5
    losses = dict(wrecked["validation_losses"])
    assert list(losses) == [0, 2, 4] and min(losses[2], losses[4]) > losses[0]
    assert wrecked["kept_step"] == 0
    weights = load_file(str(tmp_path / "wrecked" / "adapter_model.safetensors"))
    assert all((value == 0).all() for key, value in weights.items() if "lora_B" in key)
    # A sane one: the held-out task (the same kind of body) gets likelier, and that step is kept.
    learned = train_lora(rows, tmp_path / "learned", settings=replace(settings, learning_rate=1e-3), **common)
    losses = dict(learned["validation_losses"])
    assert learned["kept_step"] > 0 and losses[learned["kept_step"]] == min(losses.values()) < losses[0]
    weights = load_file(str(tmp_path / "learned" / "adapter_model.safetensors"))
    assert any((value != 0).any() for key, value in weights.items() if "lora_B" in key)
    # The validation passes are timed apart: a step's cost is the same whatever share is held out.
    assert learned["validation_seconds"] > 0
    steps_seconds = learned["seconds_per_step"] * learned["steps"]
    assert steps_seconds + learned["validation_seconds"] <= learned["seconds"] + 0.01
