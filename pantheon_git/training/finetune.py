"""LoRA fine-tuning, one path for `git pantheon train lora`, `git pantheon night --train` and
`python -m pantheon_trainer lora`: the settings of a run with their one set of defaults, the command-line
options both CLIs build them from, and the one call into the trainer package.

The trainer package (torch, transformers, peft, gguf) is imported only inside `train_adapter`, so this
module costs the core nothing; the trainer imports `LoraSettings` from here, never the other way round.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pantheon_git.errors import PantheonError

if TYPE_CHECKING:
    import pygit2

INSTALL_HINT = (
    "the trainer is not installed: pip install -e trainer (torch, transformers, peft, gguf); "
    "`make test` installs it into .venv"
)


class Method(enum.StrEnum):
    LORA = "lora"
    QLORA = "qlora"  # a 4-bit base: a CUDA GPU and bitsandbytes


class Precision(enum.StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"  # the forward pass under bfloat16 autocast; weights and optimizer stay fp32
    AUTO = "auto"  # bf16 where the CPU or GPU computes it natively, else fp32


@dataclass(frozen=True, slots=True, kw_only=True)
class LoraSettings:
    """What one LoRA run is trained with. The defaults are the nightly trainer's, measured in
    README (bf16 where native: the same loss in half the time; a fifth of the tasks held out to choose the
    step to keep: without it the loss on unseen tasks climbs far above where it started by step 60)."""

    method: Method = Method.LORA
    rank: int = 8
    alpha: float | None = None  # None: 2 x rank
    steps: int = 60
    learning_rate: float = 2e-4
    seed: int = 0  # shuffles the rows and initializes the LoRA: the same seed, the same adapter
    threads: int | None = None  # torch CPU threads; None: torch's own choice
    max_length: int = 4096  # tokens of a row; a longer one keeps its end
    precision: Precision = Precision.AUTO
    # The share of the training tasks held out of the LoRA to choose the step to keep (the trainer's
    # split_validation); the dataset's held-out half stays for the promotion gate, untouched.
    validation_share: float = 0.2
    eval_every: int = 10  # steps between validation checkpoints

    def __post_init__(self) -> None:
        """Refuse, in one line naming the option and before anything loads, what no run could use."""
        for name, kind in (("method", Method), ("precision", Precision)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                choices = ", ".join(member.value for member in kind)
                raise PantheonError(f"--{name} {value}: not one of {choices}") from None
        if not 0 <= self.validation_share < 1:
            raise PantheonError(f"--validation-share {self.validation_share}: must be at least 0 and below 1")
        for name in ("rank", "steps", "max_length", "eval_every"):
            if getattr(self, name) < 1:
                raise PantheonError(f"--{_flag(name)} {getattr(self, name)}: must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise PantheonError(f"--threads {self.threads}: must be at least 1")
        if not self.learning_rate > 0:
            raise PantheonError(f"--lr {self.learning_rate}: must be above 0")
        if self.alpha is not None and not self.alpha > 0:
            raise PantheonError(f"--alpha {self.alpha}: must be above 0")

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else 2 * self.rank)


DEFAULTS = LoraSettings()

# The options both CLIs take, each a field of LoraSettings: flag, type, help. Defaults come from DEFAULTS.
_OPTIONS: dict[str, tuple[str, type, str]] = {
    "method": ("--method", str, "qlora: a 4-bit base, needs a CUDA GPU and bitsandbytes"),
    "rank": ("--rank", int, "the LoRA rank"),
    "alpha": ("--alpha", float, "the LoRA scale (default: 2 x rank)"),
    "steps": ("--steps", int, "training steps, one row each"),
    "learning_rate": ("--lr", float, "AdamW's learning rate"),
    "seed": ("--seed", int, "shuffles the rows and initializes the LoRA"),
    "threads": ("--threads", int, "torch CPU threads (default: torch's own choice)"),
    "precision": (
        "--precision",
        str,
        "bf16: the forward pass under autocast; auto: bf16 where the CPU or GPU computes it natively",
    ),
    "validation_share": (
        "--validation-share",
        float,
        "hold this share of the tasks out of training and keep the step where their loss is lowest "
        "(0: train on all, keep the last step)",
    ),
}
_CHOICES = {"method": [m.value for m in Method], "precision": [p.value for p in Precision]}


def _flag(name: str) -> str:
    return _OPTIONS[name][0].removeprefix("--") if name in _OPTIONS else name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, prefix: str = "") -> None:
    """The LoRA options, with LoraSettings' defaults; `prefix` starts each help (`lora: `)."""
    for name, (flag, kind, help_text) in _OPTIONS.items():
        default = getattr(DEFAULTS, name)
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=default.value if isinstance(default, enum.Enum) else default,
            choices=_CHOICES.get(name),
            help=prefix + help_text + shown,
        )


def from_arguments(args: argparse.Namespace) -> LoraSettings:
    """The settings the options of `add_arguments` give (refused in one line when out of range)."""
    return LoraSettings(
        **{field.name: getattr(args, field.name) for field in fields(LoraSettings) if field.name in _OPTIONS}
    )


def adapter_dir(repo: pygit2.Repository, agent: str, dataset_commit: pygit2.Oid | None) -> Path:
    """Where an adapter trained on that dataset commit is written: .git/pantheon/adapters/<agent>/<id12>."""
    from pantheon_git.store.locks import pantheon_dir

    label = str(dataset_commit)[:12] if dataset_commit is not None else "none"
    return pantheon_dir(repo.path) / "adapters" / agent / label


def train_adapter(
    rows: Sequence[dict[str, Any]], out: Path, settings: LoraSettings, *, progress: bool = False
) -> dict[str, Any]:
    """The one training run: a LoRA on the runner's embedded base, saved in peft format under out/peft
    and exported for llama.cpp as out/adapter.gguf. Returns the trainer's summary (its `gguf`: the export)."""
    try:
        from pantheon_trainer.lora import train_adapter as run
    except ImportError:
        raise PantheonError(INSTALL_HINT) from None
    return run(rows, out / "peft", settings=settings, gguf=out / "adapter.gguf", progress=progress)
