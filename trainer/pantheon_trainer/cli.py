"""`python -m pantheon_trainer lora|export …` (and `git pantheon train lora|export`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pantheon-trainer", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    lora = sub.add_parser("lora", help="train a LoRA adapter on a dataset (chat rows, JSONL)")
    lora.add_argument("--dataset", required=True, type=Path)
    lora.add_argument("--out", required=True, type=Path)
    lora.add_argument("--base", help="a Hugging Face model directory (default: the embedded GGUF)")
    lora.add_argument("--method", choices=["lora", "qlora"], default="lora")
    lora.add_argument("--rank", type=int, default=8)
    lora.add_argument("--steps", type=int, default=50)
    lora.add_argument("--lr", type=float, default=2e-4)
    export = sub.add_parser("export", help="write a trained adapter as a GGUF LoRA adapter for llama.cpp")
    export.add_argument("--adapter", required=True, type=Path)
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--base-gguf", type=Path, help="default: the embedded model")
    args = parser.parse_args(argv)
    from pantheon_trainer.lora import TrainerError

    try:
        if args.action == "lora":
            from pantheon_trainer.lora import read_rows, train_lora

            summary = train_lora(
                read_rows(args.dataset),
                args.out,
                base=args.base,
                method=args.method,
                rank=args.rank,
                steps=args.steps,
                learning_rate=args.lr,
            )
            summary.pop("losses")
            print(json.dumps(summary, indent=1))
        else:
            from pantheon_trainer.base import embedded_gguf
            from pantheon_trainer.export import export_gguf_adapter

            base = args.base_gguf or embedded_gguf()[0]
            print(json.dumps(export_gguf_adapter(args.adapter, base, args.out), indent=1))
    except TrainerError as exc:
        print(f"pantheon-trainer: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
