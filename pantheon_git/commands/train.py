"""`git pantheon train dataset|lora|export|eval|promote|rollback …`: from notes to better local models.

`dataset` needs nothing beyond the core; the rest runs in the trainer package (torch, transformers,
peft, gguf), which the core never imports, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["dataset", "lora", "export"])
    parser.add_argument("--agent", required=True, help="the agent whose steps to learn from")
    parser.add_argument("--out", help="also write the dataset files (dataset) / the adapter (lora) here")
    parser.add_argument("--method", choices=["lora", "qlora"], default="lora")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError
    from pantheon_git.git import open_repo
    from pantheon_git.training.dataset import mine, record

    repo = open_repo()
    if args.action == "dataset":
        data = mine(repo, args.agent)
        commit, manifest = record(repo, data)
        counts = manifest["counts"]
        where = f"refs/pantheon/datasets/{args.agent}"
        state = f"at {str(commit)[:12]}" if commit else "unchanged"
        print(
            f"{where} {state}: {counts['train']} train, {counts['holdout']} holdout, "
            f"{counts['negatives']} negatives from {len(manifest['sources'])} steps"
        )
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            tree = repo.references[where].peel().tree
            for entry in tree:
                (out / entry.name).write_bytes(repo.get(entry.id).data)
            print(f"wrote {out}/{{train,holdout,negatives}}.jsonl and manifest.json")
        return 0
    try:
        import pantheon_trainer.cli as trainer_cli
    except ImportError:
        raise PantheonError(
            "the trainer is not installed: pip install -e trainer (torch, transformers, peft, gguf); "
            "`make test` installs it into .venv"
        ) from None
    return int(
        trainer_cli.main([args.action, "--agent", args.agent, *sys.argv[sys.argv.index(args.action) + 1 :]])
    )
