"""`git pantheon train dataset|lora|export|eval|promote|rollback …`: from notes to better local models.

`dataset` needs nothing beyond the core; the rest runs in the trainer package (torch, transformers,
peft, gguf), which the core never imports, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pantheon_git.training import VALIDATION_SHARE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["dataset", "lora", "promote", "rollback"],
        help="mine a dataset, train on the last one, promote an adapter that beats the current one, "
        "or roll back to the version before",
    )
    parser.add_argument("--agent", required=True, help="the agent whose steps to learn from")
    parser.add_argument("--out", help="dataset: also write its files here; lora: the adapter's directory")
    parser.add_argument("--adapter", help="promote: the GGUF adapter to evaluate (from `train lora`)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        metavar="ID",
        help="promote: the held-out tasks to evaluate on (default: the dataset manifest's holdout tasks)",
    )
    parser.add_argument("--method", choices=["lora", "qlora"], default="lora")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="lora: bf16 autocast where the CPU or GPU computes it natively (auto), or as asked",
    )
    parser.add_argument(
        "--validation-share",
        type=float,
        default=VALIDATION_SHARE,
        help="lora: hold this share of the tasks out of training and keep the step where their loss is "
        f"lowest (default {VALIDATION_SHARE}; 0: train on all, keep the last step)",
    )


def run(args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.store.git import open_repo, work_tree
    from pantheon_git.store.layout import DATASETS_PREFIX
    from pantheon_git.training.dataset import record
    from pantheon_git.training.nightly import mine_with_fixes

    repo = open_repo()
    _known_agent(repo, args.agent)
    where = DATASETS_PREFIX + args.agent
    if args.action == "dataset":
        data = mine_with_fixes(repo, work_tree(repo), args.agent)
        commit, manifest = record(repo, data)
        counts = manifest["counts"]
        state = f"at {str(commit)[:12]}" if commit else "unchanged"
        print(
            f"{where} {state}: {counts['train']} train, {counts['holdout']} holdout, "
            f"{counts['negatives']} negatives from {len(manifest['sources'])} steps "
            f"({counts['fixes']} train rows from morning fixes)"
        )
        for skipped in manifest["skipped_fixes"]:
            print(f"fix left out: {shown(skipped)}")
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for entry in repo.references[where].peel().tree:
                (out / entry.name).write_bytes(repo.get(entry.id).data)
            print(f"wrote {out}/{{train,holdout,negatives}}.jsonl and manifest.json")
        return 0
    if args.action in ("promote", "rollback"):
        return _promote_or_rollback(repo, args)
    dataset = repo.references.get(where)
    if dataset is None:
        raise PantheonError(
            f"{where}: no dataset yet; mine one with `git pantheon train dataset --agent {args.agent}`"
        )
    # After the cheap checks, so a missing dataset is reported the same with or without the trainer.
    try:
        from pantheon_trainer.base import embedded_gguf
        from pantheon_trainer.export import export_gguf_adapter
        from pantheon_trainer.lora import TrainerError, train_lora
    except ImportError:
        raise PantheonError(
            "the trainer is not installed: pip install -e trainer (torch, transformers, peft, gguf); "
            "`make test` installs it into .venv"
        ) from None
    commit = dataset.peel()
    rows = [
        json.loads(line)
        for line in repo.get(commit.tree["train.jsonl"].id).data.decode().splitlines()
        if line
    ]
    if not rows:
        raise PantheonError(f"{where}: its train.jsonl is empty (no passing steps of {args.agent} yet)")
    from pantheon_git.store.locks import pantheon_dir

    out = (
        Path(args.out)
        if args.out
        else pantheon_dir(repo.path) / "adapters" / args.agent / str(commit.id)[:12]
    )
    try:
        summary = train_lora(
            rows,
            out / "peft",
            method=args.method,
            rank=args.rank,
            steps=args.steps,
            precision=args.precision,
            validation_share=args.validation_share,
        )
    except TrainerError as exc:
        raise PantheonError(str(exc)) from None
    exported = export_gguf_adapter(out / "peft", embedded_gguf()[0], out / "adapter.gguf")
    print(
        f"trained on {len(rows)} rows of {where} at {str(commit.id)[:12]}: loss {summary['first_loss']:.3f} "
        f"-> {summary['last_loss']:.3f} in {args.steps} steps"
        + (
            f", kept step {summary['kept_step']} (lowest loss on {summary['validation_rows']} held-out rows)"
            if summary.get("validation_rows")
            else ""
        )
        + (
            f", {summary['seconds_per_step_per_1k_tokens']} s per step per 1k tokens"
            if summary.get("seconds_per_step_per_1k_tokens") is not None
            else ""
        )
    )
    print(f"wrote {exported['path']} ({exported['tensors']} tensors); models.toml takes it as `adapter = …`")
    return 0


def _known_agent(repo: Any, name: str) -> None:
    """Refuse (before anything is written) an agent that neither the registry nor any flow knows."""
    from pantheon_git.agents.builtin import RUNNER_NODES
    from pantheon_git.agents.registry import agents
    from pantheon_git.errors import PantheonError
    from pantheon_git.schema.document import parse_toml
    from pantheon_git.store.git import work_tree

    root = work_tree(repo)
    known = set(agents(root))
    for path in sorted((root / ".pantheon" / "flows").glob("*.toml")):
        try:
            nodes = parse_toml(path.read_text(), str(path)).get("nodes", [])
        except PantheonError:
            continue  # a broken flow is `flow check`'s to report; its names are still unknown here
        known |= {str(node.get("agent")) for node in nodes if isinstance(node, dict) and node.get("agent")}
    known -= RUNNER_NODES  # acceptance and the gate run no model: nothing to learn
    if name not in known:
        raise PantheonError(f"--agent: unknown agent '{name}' (known: {', '.join(sorted(known)) or 'none'})")


def _promote_or_rollback(repo: Any, args: argparse.Namespace) -> int:
    from pantheon_git.errors import PantheonError, shown
    from pantheon_git.runtime.adapters import promoted_adapter
    from pantheon_git.store.git import work_tree
    from pantheon_git.store.layout import DATASETS_PREFIX
    from pantheon_git.training.promote import evaluate, promote, rollback

    if args.action == "rollback":
        commit = rollback(repo, args.agent)
        message = shown(repo.get(commit).message.strip())
        print(f"refs/pantheon/adapters/{args.agent} at {str(commit)[:12]}: {message}")
        return 0
    if not args.adapter:
        raise PantheonError("promote: give --adapter PATH (a GGUF adapter from `git pantheon train lora`)")
    if not Path(args.adapter).is_file():
        raise PantheonError(f"--adapter: {args.adapter}: no such file")
    tasks = args.tasks
    if not tasks:
        dataset = repo.references.get(DATASETS_PREFIX + args.agent)
        if dataset is None:
            raise PantheonError(
                f"no dataset for {args.agent}: held-out tasks come from its manifest, or --tasks"
            )
        manifest = json.loads(repo.get(dataset.peel().tree["manifest.json"].id).data)
        tasks = manifest["holdout_tasks"]
    root = work_tree(repo)
    current = evaluate(repo, root, args.agent, promoted_adapter(repo, args.agent), tasks)
    candidate = evaluate(repo, root, args.agent, Path(args.adapter), tasks)
    print(
        f"current ({current.adapter}): {len(current.passed)}/{len(tasks)}; "
        f"candidate: {len(candidate.passed)}/{len(tasks)} held-out tasks passed"
    )
    commit = promote(repo, args.agent, Path(args.adapter), candidate, current)
    print(f"promoted: refs/pantheon/adapters/{args.agent} at {str(commit)[:12]}")
    return 0
