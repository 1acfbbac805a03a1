"""Decoding speed on the embedded model (Gemma 3 270M Q4_K_M, 2 CPU threads), all measured in this run.

1. constrained decoding (llguidance mask as a logits processor) against free decoding, and against
   llama-cpp-python's own JSON-schema grammar (the baseline it replaces). Goal: ≥ 0.8x free.
2. the agent loop against raw llama-cpp-python generation of the same prompts. Goal: ≥ 0.9x raw.
3. KV-cache prefix reuse: prompt tokens evaluated per turn of the loop (turn N only its new tokens).
xgrammar is not evaluated: it pulls in torch and triton, which the core must not carry.
Run: .venv/bin/python bench/bench_decoding.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import verdict

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.calls import DEFAULT_FORMAT
from pantheon_git.agents.loop import call_grammar, rebuild_prompt, run_agent
from pantheon_git.runtime.constrained import SchemaProcessor
from pantheon_git.runtime.llama import runtime_for
from pantheon_git.schema.models import ModelConfig
from pantheon_git.tools.builtin import TOOLS, ToolContext

TASK = {
    "title": "Create hello.txt containing the word hello",
    "scope": "Write one new file, hello.txt, in the repository root. Its content: hello",
    "acceptance": ["grep -q hello hello.txt"],
}
SCHEMA_TOOLS = [TOOLS[name] for name in IMPLEMENTER.tools]
LONG_ARGS = "Write a detailed README for a small Python command-line tool that greets people.\nCall: "


def tokens_per_second(runtime, prompt: str, schema, max_tokens: int, repeats: int) -> float:
    runtime.complete(prompt, schema=None, max_tokens=1)  # the prompt is in the KV cache from here on
    rates = []
    for _ in range(repeats):
        done = runtime.complete(prompt, schema=schema, max_tokens=max_tokens)
        rates.append(done.tokens_out / done.seconds)
    return statistics.median(rates)


def grammar_tokens_per_second(runtime, prompt: str, schema, max_tokens: int, repeats: int) -> float:
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = runtime.llama.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, grammar=grammar)
        rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    runtime = runtime_for("default", ModelConfig(bundled="gemma3-270m", n_ctx=2048, n_threads=args.threads))
    # A schema whose strings let the model write freely: the mask is computed at every token.
    free_schema = {
        "type": "object",
        "properties": {
            "tool": {"const": "write_file"},
            "args": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        },
        "required": ["tool", "args"],
        "additionalProperties": False,
    }
    free = tokens_per_second(runtime, LONG_ARGS, None, args.tokens, args.repeats)
    started = time.perf_counter()
    SchemaProcessor(runtime.llama, free_schema)  # builds llguidance's tokenizer once (cached per model)
    print(
        f"llguidance tokenizer for the 262k vocabulary built in {time.perf_counter() - started:.1f}s (once)"
    )
    time.sleep(3)  # let its background work finish before timing on a 2-core machine
    constrained = tokens_per_second(runtime, LONG_ARGS, free_schema, args.tokens, args.repeats)
    free = max(free, tokens_per_second(runtime, LONG_ARGS, None, args.tokens, args.repeats))
    grammar = grammar_tokens_per_second(
        runtime, LONG_ARGS, free_schema, args.tokens, max(1, args.repeats - 1)
    )
    print(f"free decoding                          {free:6.1f} tok/s")
    print(f"constrained, llguidance                {constrained:6.1f} tok/s")
    print(f"constrained, llama-cpp-python grammar  {grammar:6.1f} tok/s   (baseline)")
    ratio_c = constrained / free
    print(
        f"-> constrained/free = {ratio_c:.2f}x (goal ≥ 0.8x: {verdict(ratio_c >= 0.8)}); "
        f"llguidance/grammar = {constrained / grammar:.1f}x\n"
    )

    # The agent loop, and the same prompts generated raw with llama-cpp-python.
    workdir = Path(tempfile.mkdtemp(prefix="pantheon-bench-loop-"))
    start = time.perf_counter()
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=workdir), TASK, {})
    loop_seconds = time.perf_counter() - start
    schema = call_grammar(SCHEMA_TOOLS, IMPLEMENTER.output, DEFAULT_FORMAT)  # what the loop decodes under
    raw_tokens, raw_seconds = 0, 0.0
    runtime.llama.reset()
    for number in range(1, len(run.turns) + 1):
        prompt = rebuild_prompt(run.header, run.turns, number)
        from llama_cpp import LogitsProcessorList

        began = time.perf_counter()
        out = runtime.llama.create_completion(
            prompt,
            max_tokens=IMPLEMENTER.max_tokens,
            temperature=0.0,
            top_k=1,
            logits_processor=LogitsProcessorList([SchemaProcessor(runtime.llama, schema)]),
        )
        raw_seconds += time.perf_counter() - began
        raw_tokens += out["usage"]["completion_tokens"]
    loop_rate = run.tokens_out / loop_seconds
    raw_rate = raw_tokens / raw_seconds
    print(
        f"agent loop: {len(run.turns)} turns, {run.tokens_out} tokens in {loop_seconds:.2f}s "
        f"= {loop_rate:.1f} tok/s (finished: {run.ok})"
    )
    raw_line = f"{raw_tokens} tokens in {raw_seconds:.2f}s = {raw_rate:.1f} tok/s"
    print(f"raw llama-cpp-python, same prompts: {raw_line}")
    ratio_l = loop_rate / raw_rate
    print(f"-> loop/raw = {ratio_l:.2f}x (goal ≥ 0.9x: {verdict(ratio_l >= 0.9)})\n")

    print("KV-cache prefix reuse in the loop (prompt tokens: total -> evaluated):")
    for turn in run.turns:
        print(f"  turn {turn['n']}: {turn['tokens_in']:5d} -> {turn['tokens_evaluated']:4d}")
    total_in = sum(turn["tokens_in"] for turn in run.turns)
    reuse = 1 - run.tokens_evaluated / total_in
    print(f"-> {run.tokens_evaluated} of {total_in} prompt tokens evaluated; {reuse:.0%} came from the cache")


if __name__ == "__main__":
    main()
