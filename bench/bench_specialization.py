"""The proof: does one round of collect → train → evaluate make the embedded model better at a narrow task?

A set of narrow tasks of one kind (write a file with given content, checked by a shell command), split
in halves by a hash of the task id. Baseline: the implementer on the base model, on every task. Collect:
the traces of the passing runs on the training half (the only training examples; no reference
solutions are used). Train a LoRA on them, export it to GGUF, and evaluate the held-out half with and
without it: greedy once, then sampled (temperature 0.8, top-p 0.95) with each seed, so the runs over
seeds can actually differ (the runtime's own decoding is greedy whatever the seed: seeded runs of it would
be copies, and a spread of 0 over them says nothing). Prints pass rates before/after, the number of
tasks, and the mean and spread over the sampled seeds next to the greedy rate.
Run: .venv/bin/python bench/bench_specialization.py [--tasks 20] [--steps 60] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import scratch_repo

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import run_agent
from pantheon_git.runtime.base import Completion
from pantheon_git.runtime.llama import runtime_for
from pantheon_git.schema.models import ModelConfig
from pantheon_git.tools.builtin import ToolContext
from pantheon_git.training.dataset import messages_of

WORDS = [
    "apple",
    "river",
    "cloud",
    "stone",
    "maple",
    "tiger",
    "ocean",
    "pixel",
    "amber",
    "lemon",
    "cedar",
    "delta",
    "ember",
    "flute",
    "grape",
    "harbor",
    "ivory",
    "jelly",
    "koala",
    "lunar",
    "mango",
    "nectar",
    "olive",
    "pepper",
]
NAMES = ["notes", "todo", "greeting", "readme", "words", "list", "memo", "draft", "log", "plan"]


def tasks(count: int) -> list[dict[str, str]]:
    made = []
    for n in range(count):
        word, name = WORDS[n % len(WORDS)], NAMES[(n * 7) % len(NAMES)]
        path = f"{name}-{n}.txt"
        made.append(
            {
                "id": f"task-{n}",
                "title": f"Create {path} containing the word {word}",
                "scope": f"Write one new file, {path}, in the repository root. Its content: {word}",
                "check": f"grep -q {word} {path}",
            }
        )
    return made


def held_out(task_id: str) -> bool:
    return int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % 2 == 0


def attempt(runtime, task: dict[str, str], seed: int | None) -> tuple[bool, dict]:
    workdir = Path(tempfile.mkdtemp(prefix="pantheon-spec-"))
    (workdir / "README.md").write_text("sample\n")
    spec = {"title": task["title"], "scope": task["scope"], "acceptance": [task["check"]]}
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=workdir), spec, {}, seed=seed)
    passed = run.ok and subprocess.run(["bash", "-c", task["check"]], cwd=workdir).returncode == 0
    return passed, run.trace(IMPLEMENTER, runtime)


TEMPERATURE = 0.8
TOP_P = 0.95


class Sampled:
    """A llama.cpp runtime that samples with a seed (the schema still constrains every token)."""

    def __init__(self, inner, seed: int) -> None:
        self.inner = inner
        self.seed = seed
        self.identity = inner.identity
        self.is_local = inner.is_local

    def complete(self, prompt: str, *, schema, max_tokens: int, seed: int | None = None) -> Completion:
        import time

        from llama_cpp import LogitsProcessorList

        from pantheon_git.runtime.constrained import SchemaProcessor

        processors = LogitsProcessorList([SchemaProcessor(self.inner.llama, schema)]) if schema else None
        start = time.perf_counter()
        result = self.inner.llama.create_completion(
            prompt,
            max_tokens=max_tokens,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            seed=self.seed,
            logits_processor=processors,
        )
        choice, usage = result["choices"][0], result["usage"]
        return Completion(
            text=choice["text"],
            tokens_in=usage["prompt_tokens"],
            tokens_out=usage["completion_tokens"],
            tokens_evaluated=usage["prompt_tokens"],
            seconds=time.perf_counter() - start,
            finish_reason=choice["finish_reason"] or "",
        )


def pass_rate(runtime, chosen: list[dict[str, str]], seed: int | None) -> float:
    """Greedy for seed None; else sampled with that seed."""
    model = runtime if seed is None else Sampled(runtime, seed)
    return sum(attempt(model, task, seed)[0] for task in chosen) / len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    args = parser.parse_args()
    everything = tasks(args.tasks)
    train_half = [t for t in everything if not held_out(t["id"])]
    test_half = [t for t in everything if held_out(t["id"])]
    base_config = ModelConfig(bundled="gemma3-270m", n_ctx=2048, n_threads=2)
    base = runtime_for("default", base_config)
    print(f"{len(everything)} tasks: {len(train_half)} to learn from, {len(test_half)} held out")

    rows = []
    for task in train_half:
        passed, trace = attempt(base, task, None)
        if passed:
            rows.append({"messages": messages_of(trace)})
    baseline_all = pass_rate(base, everything, None)
    print(
        f"baseline (greedy) on all tasks: {baseline_all:.0%}; training rows from passing traces: {len(rows)}"
    )
    if not rows:
        print("no passing trace to learn from: nothing to train")
        return

    from pantheon_trainer.base import embedded_gguf
    from pantheon_trainer.export import export_gguf_adapter
    from pantheon_trainer.lora import train_lora

    out = Path(scratch_repo()).parent / "adapter"
    summary = train_lora(rows, out / "peft", rank=8, steps=args.steps, learning_rate=5e-4, progress=False)
    export_gguf_adapter(out / "peft", embedded_gguf()[0], out / "adapter.gguf")
    print(f"trained {args.steps} steps: loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f}")
    tuned = runtime_for("default", base_config.model_copy(update={"adapter": str(out / "adapter.gguf")}))

    greedy_before, greedy_after = pass_rate(base, test_half, None), pass_rate(tuned, test_half, None)
    print(f"held-out, greedy: before {greedy_before:.0%}, after {greedy_after:.0%}")
    before, after = [], []
    for seed in args.seeds:
        b, a = pass_rate(base, test_half, seed), pass_rate(tuned, test_half, seed)
        before.append(b)
        after.append(a)
        print(f"held-out, sampled with seed {seed}: before {b:.0%}, after {a:.0%}")
    print(
        json.dumps(
            {
                "tasks": len(everything),
                "held_out": len(test_half),
                "train_rows": len(rows),
                "greedy_before": round(greedy_before, 3),
                "greedy_after": round(greedy_after, 3),
                "sampling": {"temperature": TEMPERATURE, "top_p": TOP_P, "seeds": args.seeds},
                "sampled_before_mean": round(statistics.mean(before), 3) if before else None,
                "sampled_after_mean": round(statistics.mean(after), 3) if after else None,
                # Sample standard deviation over seeds (n-1): the seeds are a sample of the runs possible.
                "sampled_before_spread": round(statistics.stdev(before), 3) if len(before) > 1 else None,
                "sampled_after_spread": round(statistics.stdev(after), 3) if len(after) > 1 else None,
                "examples_from": "traces of passing runs on the training half (no reference solutions)",
            }
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
