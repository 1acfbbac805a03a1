"""`python -m pantheon_trainer lora|export …`, the trainer's command line (`git pantheon train` wraps it)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pantheon-trainer", description="LoRA adapters from pantheon-git traces, exported for llama.cpp."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    lora = sub.add_parser("lora", help="train a LoRA adapter on chat rows (JSONL); saved in peft format")
    lora.add_argument("--dataset", required=True, type=Path)
    lora.add_argument("--out", required=True, type=Path)
    lora.add_argument("--base", help="a Hugging Face directory or a .gguf (default: the embedded model)")
    lora.add_argument("--method", choices=["lora", "qlora"], default="lora", help="qlora needs a CUDA GPU")
    lora.add_argument("--rank", type=int, default=8)
    lora.add_argument("--alpha", type=float, help="default: 2 x rank")
    lora.add_argument("--steps", type=int, default=50)
    lora.add_argument("--lr", type=float, default=2e-4)
    lora.add_argument("--seed", type=int, default=0)
    lora.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    lora.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="bf16: the forward pass under autocast; auto: bf16 where the hardware has it",
    )
    lora.add_argument(
        "--validation-share",
        type=float,
        default=0.0,
        help="hold this share of the tasks out of training and keep the step with their lowest loss",
    )
    lora.add_argument("--gguf", type=Path, help="also export the adapter here for llama.cpp")
    export = sub.add_parser("export", help="write a trained adapter as a GGUF LoRA adapter for llama.cpp")
    export.add_argument("--adapter", required=True, type=Path, help="a peft adapter directory")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--base-gguf", type=Path, help="default: the embedded model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from pantheon_trainer.errors import TrainerError

    try:
        if args.action == "lora":
            from pantheon_trainer.lora import train_lora

            summary = train_lora(
                args.dataset,
                args.out,
                base=args.base,
                method=args.method,
                rank=args.rank,
                alpha=args.alpha,
                steps=args.steps,
                learning_rate=args.lr,
                seed=args.seed,
                threads=args.threads,
                precision=args.precision,
                validation_share=args.validation_share,
            )
            summary.pop("losses")
            if args.gguf:
                # A Hugging Face base has no GGUF of its own: the embedded one (shapes are checked).
                base_gguf = args.base if args.base and args.base.endswith(".gguf") else None
                summary["gguf"] = _export(args.out, base_gguf, args.gguf)
            print(json.dumps(summary, indent=1))
        else:
            print(json.dumps(_export(args.adapter, args.base_gguf, args.out), indent=1))
    except TrainerError as exc:
        print(f"pantheon-trainer: {exc}", file=sys.stderr)
        return 2
    return 0


def _export(adapter: Path, base: Path | str | None, out: Path) -> dict[str, object]:
    from pantheon_trainer.base import embedded_gguf
    from pantheon_trainer.errors import TrainerError
    from pantheon_trainer.export import export_gguf_adapter

    base_gguf = Path(base) if base else embedded_gguf()[0]
    if base_gguf.suffix != ".gguf":
        raise TrainerError(f"{base_gguf}: export needs the base as a .gguf file (--base-gguf)")
    return export_gguf_adapter(adapter, base_gguf, out)


if __name__ == "__main__":
    raise SystemExit(main())
