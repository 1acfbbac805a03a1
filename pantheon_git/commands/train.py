"""`git pantheon train dataset|lora|promote|rollback …`: from notes to better local models.

Argparse stays here; each action is a typed function. `dataset`, `promote` and `rollback` need nothing
beyond the core; `lora` goes through `training/finetune.py` (the one path and the one set of settings
that `night --train` and `python -m pantheon_trainer` use too) into the trainer package (torch,
transformers, peft, gguf), which the core never imports, and says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pantheon_git.training import finetune

if TYPE_CHECKING:
    import pygit2

    from pantheon_git.training.finetune import LoraSettings


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
    finetune.add_arguments(parser.add_argument_group("lora"), prefix="lora: ")


def run(args: argparse.Namespace) -> int:
    from pantheon_git.store.git import open_repo

    settings = finetune.from_arguments(args)  # refused in one line before anything is read or written
    repo = open_repo()
    _known_agent(repo, args.agent)
    out = Path(args.out) if args.out else None
    if args.action == "dataset":
        dataset(repo, args.agent, out=out)
    elif args.action == "lora":
        lora(repo, args.agent, settings, out=out)
    elif args.action == "promote":
        promote(repo, args.agent, Path(args.adapter) if args.adapter else None, tasks=args.tasks)
    else:
        rollback(repo, args.agent)
    return 0


def dataset(repo: pygit2.Repository, agent: str, *, out: Path | None = None) -> None:
    """Mine `agent`'s steps (and verified morning fixes) into refs/pantheon/datasets/<agent>."""
    from pantheon_git.errors import shown
    from pantheon_git.store.git import work_tree
    from pantheon_git.store.layout import DATASETS_PREFIX
    from pantheon_git.training.dataset import record, recorded
    from pantheon_git.training.nightly import mine_with_fixes

    commit, manifest = record(repo, mine_with_fixes(repo, work_tree(repo), agent))
    counts = manifest["counts"]
    state = f"at {str(commit)[:12]}" if commit else "unchanged"
    print(
        f"{DATASETS_PREFIX + agent} {state}: {counts['train']} train, {counts['holdout']} holdout, "
        f"{counts['negatives']} negatives from {len(manifest['sources'])} steps "
        f"({counts['fixes']} train rows from morning fixes)"
    )
    for skipped in manifest["skipped_fixes"]:
        print(f"fix left out: {shown(skipped)}")
    if out is not None:
        recorded(repo, agent).write(out)
        print(f"wrote {out}/{{train,holdout,negatives}}.jsonl and manifest.json")


def lora(repo: pygit2.Repository, agent: str, settings: LoraSettings, *, out: Path | None = None) -> None:
    """A LoRA on the training rows of `agent`'s last dataset, exported as GGUF (default directory:
    .git/pantheon/adapters/<agent>/<dataset commit>)."""
    from pantheon_git.errors import PantheonError
    from pantheon_git.training.dataset import recorded

    saved = recorded(repo, agent)
    rows = saved.rows()
    if not rows:
        raise PantheonError(f"{saved.ref}: its train.jsonl is empty (no passing steps of {agent} yet)")
    out = out or finetune.adapter_dir(repo, agent, saved.commit)
    summary = finetune.train_adapter(rows, out, settings, progress=True)
    print(
        f"trained on {len(rows)} rows of {saved.ref} at {str(saved.commit)[:12]}: loss "
        f"{summary['first_loss']:.3f} -> {summary['last_loss']:.3f} in {settings.steps} steps"
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
    exported = summary["gguf"]
    print(f"wrote {exported['path']} ({exported['tensors']} tensors); models.toml takes it as `adapter = …`")


def _known_agent(repo: pygit2.Repository, name: str) -> None:
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


def rollback(repo: pygit2.Repository, agent: str) -> None:
    """Serve the adapter `agent` served before the last promotion."""
    import pygit2

    from pantheon_git.errors import shown
    from pantheon_git.store.git import lookup
    from pantheon_git.training.promote import rollback as roll_back

    commit = roll_back(repo, agent)
    message = shown(lookup(repo, commit, pygit2.Commit).message.strip())
    print(f"refs/pantheon/adapters/{agent} at {str(commit)[:12]}: {message}")


def promote(repo: pygit2.Repository, agent: str, adapter: Path | None, *, tasks: list[str] | None) -> None:
    """Evaluate `adapter` against the one in force on the held-out tasks; promote it only when better."""
    from pantheon_git.errors import PantheonError
    from pantheon_git.runtime.adapters import promoted_adapter
    from pantheon_git.store.git import work_tree
    from pantheon_git.training.dataset import recorded
    from pantheon_git.training.promote import evaluate
    from pantheon_git.training.promote import promote as promote_adapter

    if adapter is None:
        raise PantheonError("promote: give --adapter PATH (a GGUF adapter from `git pantheon train lora`)")
    if not adapter.is_file():
        raise PantheonError(f"--adapter: {adapter}: no such file")
    if not tasks:
        try:
            tasks = list(recorded(repo, agent).manifest().get("holdout_tasks", []))
        except PantheonError as missing:
            raise PantheonError(f"{missing}; or name the held-out tasks with --tasks") from None
    root = work_tree(repo)
    current = evaluate(repo, root, agent, promoted_adapter(repo, agent), tasks)
    candidate = evaluate(repo, root, agent, adapter, tasks)
    print(
        f"current ({current.adapter}): {len(current.passed)}/{len(tasks)}; "
        f"candidate: {len(candidate.passed)}/{len(tasks)} held-out tasks passed"
    )
    commit = promote_adapter(repo, agent, adapter, candidate, current)
    print(f"promoted: refs/pantheon/adapters/{agent} at {str(commit)[:12]}")
