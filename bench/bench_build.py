"""What the portable llama.cpp build costs: decode speed of the embedded model per build, same machine.

Builds llama-cpp-python (the Makefile's version, from source, no pip cache) once per flavour into
.venv/llama-cpp-bench/<flavour>/ and then, in alternating order over --rounds, loads the embedded model in
a child process per build and times a prompt of about 200 tokens and --tokens greedy tokens (EOS ignored:
llama_eval token by token). A build that dies (SIGILL for a native build where the CPU lists AMX) is
reported as such. Ratios are against the first flavour (the Makefile's portable default).

    .venv/bin/python bench/bench_build.py [--flavours portable,avx512,native] [--rounds 3] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
FLAVOURS = {
    "portable": PORTABLE,
    # The fastest this kind of CPU runs without AMX: AVX-512 with its VNNI/BF16/VBMI extensions.
    "avx512": (
        "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
        "-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON "
        "-DGGML_AVX_VNNI=ON "
        "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    ),
    "native": "-DGGML_NATIVE=ON",  # llama.cpp's own default: -march=native, AMX where the CPU lists it
}
PROMPT = (
    "def fibonacci(n):\n    " + "# return the n-th Fibonacci number, iteratively and with care\n    " * 16
)

CHILD = r"""
import json, sys, time
import llama_cpp
path, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_gpu_layers=0, verbose=False)
prompt = llm.tokenize(sys.stdin.read().encode())
start = time.perf_counter(); llm.eval(prompt); prompt_s = time.perf_counter() - start
start = time.perf_counter()
for _ in range(tokens):
    llm.eval([llm.sample(top_k=1)])
decode_s = time.perf_counter() - start
report = {"prompt_tokens": len(prompt), "prompt_s": prompt_s, "tokens": tokens, "decode_s": decode_s}
print(json.dumps(report))
"""


def llama_version() -> str:
    match = re.search(r"^LLAMA_CPP_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile: LLAMA_CPP_VERSION not found"
    return match.group(1)


def build(flavour: str, cmake_args: str, version: str) -> tuple[Path, float]:
    """The site directory holding this flavour's llama_cpp (built now unless already there), seconds spent."""
    home = ROOT / ".venv" / "llama-cpp-bench" / flavour
    site = home / "site"
    if (site / "llama_cpp").is_dir():
        return site, 0.0
    start = time.perf_counter()
    pip = [sys.executable, "-m", "pip"]
    env = {**os.environ, "CMAKE_ARGS": cmake_args}
    if not list((home / "wheel").glob("llama_cpp_python-*.whl")):
        subprocess.run(
            [
                *pip,
                "wheel",
                "--quiet",
                "--no-cache-dir",
                "--no-deps",
                "--no-binary",
                "llama-cpp-python",
                "--wheel-dir",
                str(home / "wheel"),
                f"llama-cpp-python=={version}",
            ],
            check=True,
            env=env,
        )
    wheel = next((home / "wheel").glob("llama_cpp_python-*.whl"))
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site, time.perf_counter() - start


def measure(site: Path, model: Path, tokens: int, threads: int) -> dict[str, float] | str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(tokens), str(threads)],
        input=PROMPT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=600,
    )
    if proc.returncode < 0:
        return f"crashed: {signal.Signals(-proc.returncode).name}"
    if proc.returncode != 0:
        return f"failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavours", default="portable,avx512,native")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "build.json"))
    args = parser.parse_args()
    from pantheon_git.runtime.bundled import bundled_gguf
    from pantheon_git.runtime.probe import cpu_fingerprint

    model, _ = bundled_gguf()
    version = llama_version()
    flavours = args.flavours.split(",")
    sites, build_s = {}, {}
    for flavour in flavours:
        sites[flavour], build_s[flavour] = build(flavour, FLAVOURS[flavour], version)
        print(
            f"{flavour}: built in {build_s[flavour]:.0f} s"
            if build_s[flavour]
            else f"{flavour}: built before"
        )
    runs: dict[str, list[dict[str, float] | str]] = {flavour: [] for flavour in flavours}
    for round_number in range(args.rounds):
        order = flavours if round_number % 2 == 0 else flavours[::-1]  # alternate: no build always goes first
        for flavour in order:
            runs[flavour].append(measure(sites[flavour], model, args.tokens, args.threads))
    flags = next(
        (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""
    )
    summary: dict[str, object] = {
        "llama_cpp_python": version,
        "cpu_lists_amx": "amx_tile" in flags,
        "cpu": cpu_fingerprint()[:12],
        "threads": args.threads,
        "tokens": args.tokens,
        "builds": {},
    }
    base_decode = None
    print(f"\n{'build':<10} {'prompt tok/s':>14} {'decode tok/s':>14} {'decode vs ' + flavours[0]:>18}")
    for flavour in flavours:
        good = [run for run in runs[flavour] if isinstance(run, dict)]
        bad = [run for run in runs[flavour] if isinstance(run, str)]
        if not good:
            print(f"{flavour:<10} {bad[0] if bad else 'no runs'}")
            summary["builds"][flavour] = {"cmake_args": FLAVOURS[flavour], "result": bad}  # type: ignore[index]
            continue
        prompt = [run["prompt_tokens"] / run["prompt_s"] for run in good]
        decode = [run["tokens"] / run["decode_s"] for run in good]
        base_decode = base_decode or statistics.median(decode)
        ratio = statistics.median(decode) / base_decode
        spread = f"{min(decode):.1f}-{max(decode):.1f}"
        print(
            f"{flavour:<10} {statistics.median(prompt):>14.1f} {statistics.median(decode):>8.1f} ({spread})"
            f" {ratio:>10.2f}x"
        )
        summary["builds"][flavour] = {  # type: ignore[index]
            "cmake_args": FLAVOURS[flavour],
            "prompt_tok_s": prompt,
            "decode_tok_s": decode,
            "decode_ratio_vs_first": ratio,
            "build_s": build_s[flavour] or None,
            "crashes": bad,
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
