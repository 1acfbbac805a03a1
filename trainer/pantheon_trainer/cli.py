"""`python -m pantheon_trainer lora|export …`, the trainer's command line.

Its LoRA options and their defaults are `git pantheon train`'s and the night's
(`pantheon_git.training.finetune`), and `lora` makes the run they make (`lora.train_adapter`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pantheon_git.errors import PantheonError
from pantheon_git.training import finetune


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pantheon-trainer", description="LoRA adapters from pantheon-git traces, exported for llama.cpp."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    lora = sub.add_parser("lora", help="train a LoRA adapter on chat rows (JSONL); saved in peft format")
    lora.add_argument("--dataset", required=True, type=Path)
    lora.add_argument("--out", required=True, type=Path)
    lora.add_argument("--base", help="a Hugging Face directory or a .gguf (default: the embedded model)")
    finetune.add_arguments(lora)
    lora.add_argument("--gguf", type=Path, help="also export the adapter here for llama.cpp")
    export = sub.add_parser("export", help="write a trained adapter as a GGUF LoRA adapter for llama.cpp")
    export.add_argument("--adapter", required=True, type=Path, help="a peft adapter directory")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--base-gguf", type=Path, help="default: the embedded model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "lora":
            from pantheon_trainer.lora import train_adapter

            settings = finetune.from_arguments(args)  # refused before anything loads
            summary = train_adapter(args.dataset, args.out, settings=settings, base=args.base, gguf=args.gguf)
            summary.pop("losses")
            print(json.dumps(summary, indent=1))
        else:
            print(json.dumps(_export(args.adapter, args.base_gguf, args.out), indent=1))
    except PantheonError as exc:  # TrainerError is one
        print(f"pantheon-trainer: {exc}", file=sys.stderr)
        return 2
    return 0


def _export(adapter: Path, base: Path | None, out: Path) -> dict[str, object]:
    from pantheon_trainer.base import embedded_gguf
    from pantheon_trainer.errors import TrainerError
    from pantheon_trainer.export import export_gguf_adapter

    base_gguf = base or embedded_gguf()[0]
    if base_gguf.suffix != ".gguf":
        raise TrainerError(f"{base_gguf}: export needs the base as a .gguf file (--base-gguf)")
    return export_gguf_adapter(adapter, base_gguf, out)


if __name__ == "__main__":
    raise SystemExit(main())
