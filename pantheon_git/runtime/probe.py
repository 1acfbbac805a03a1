"""Does a model really run here? One load and a few decoded tokens in a child process, before a night.

A llama.cpp built for instructions this CPU does not run dies with SIGILL at its first decode, and the
process dies with it: a native build on a CPU that lists AMX (tile kernels that fault in many VMs), or a
wheel built on another machine. The child takes the crash; the parent turns it into one line that names
the signal, the likely cause and the build to try. A passing probe is remembered per (model file,
llama.cpp build, CPU, GPU layers), so a night pays for it once and a rebuilt or moved install is probed
again. `make install` runs `python -m pantheon_git.runtime.probe` on the embedded model.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import json
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.bundled import cache_dir

PROBE_TOKENS = 4
PROBE_TIMEOUT_S = 300  # a big model on a slow disk loads in minutes; a hung load must still end
# What to build instead when the build crashed on this CPU: the Makefile's portable default.
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF "
    "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
REBUILD_HINT = (
    f'rebuild llama.cpp portable: rm -rf .venv && make install, or CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" '
    "pip install --force-reinstall --no-cache-dir llama-cpp-python"
)


class ProbeOutcome(enum.StrEnum):
    RUNS = "runs"
    CRASHED = "crashed"  # killed by a signal: SIGILL, SIGSEGV, ...
    FAILED = "failed"  # exited with an error: no llama.cpp, an unreadable model, ...
    TIMED_OUT = "timed out"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    outcome: ProbeOutcome
    detail: str  # RUNS: what ran; otherwise the one line that says what to do
    tokens_per_s: float = 0.0
    gpu_offload: bool = False  # this llama.cpp build can offload layers to a GPU

    @property
    def runs(self) -> bool:
        return self.outcome is ProbeOutcome.RUNS


def crash_line(signal_number: int, model: str) -> str:
    """What a child killed by `signal_number` while loading or decoding `model` means, and what to do."""
    try:
        name = signal.Signals(signal_number).name
    except ValueError:
        name = f"signal {signal_number}"
    if signal_number == signal.SIGILL:
        return (
            f"llama.cpp died with SIGILL (illegal instruction) decoding {model}: it was built for "
            "instructions this CPU does not run (a native build where the CPU lists AMX, or a wheel "
            f"built on another machine); {REBUILD_HINT}"
        )
    if signal_number in (signal.SIGSEGV, signal.SIGBUS):
        return (
            f"llama.cpp crashed with {name} loading or decoding {model}: the file may be damaged, "
            f"truncated or made for a newer llama.cpp; check its sha256, or {REBUILD_HINT}"
        )
    return f"llama.cpp was killed by {name} loading or decoding {model} (out of memory?)"


def interpret(returncode: int, stdout: str, stderr: str, model: str) -> ProbeResult:
    """The child's exit turned into a result (pure): a signal, an error's last line, or its report."""
    if returncode < 0:
        return ProbeResult(ProbeOutcome.CRASHED, crash_line(-returncode, model))
    if returncode != 0:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {returncode}"
        return ProbeResult(ProbeOutcome.FAILED, f"llama.cpp could not load or decode {model}: {reason}")
    try:
        report = json.loads(stdout.strip().splitlines()[-1])
        rate = float(report["tokens"]) / max(float(report["seconds"]), 1e-9)
        gpu = bool(report["gpu_offload"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ProbeResult(ProbeOutcome.FAILED, f"the probe of {model} printed no report: {stdout[-200:]!r}")
    return ProbeResult(ProbeOutcome.RUNS, f"{model} loads and decodes", tokens_per_s=rate, gpu_offload=gpu)


def run_probe(model_path: Path, n_gpu_layers: int, *, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Load `model_path` and decode a few tokens in a child process; never raises, never crashes."""
    command = [
        sys.executable,
        "-m",
        "pantheon_git.runtime.probe",
        "--child",
        str(model_path),
        str(n_gpu_layers),
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(
            ProbeOutcome.TIMED_OUT,
            f"llama.cpp did not decode {PROBE_TOKENS} tokens of {model_path.name} in {timeout_s:.0f} s",
        )
    return interpret(proc.returncode, proc.stdout, proc.stderr, model_path.name)


def build_fingerprint() -> str:
    """Which llama.cpp build this process would load: its package and shared libraries (path, size,
    mtime). A rebuild or reinstall changes it; "absent" when llama-cpp-python is not installed."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return "absent"
    package = Path(spec.origin).parent
    parts = [str(package)]
    for path in sorted(package.rglob("*")):
        if path.suffix in (".so", ".dylib", ".dll", ".py") and path.is_file():
            stat = path.stat()
            parts.append(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cpu_fingerprint() -> str:
    """The CPU's model and feature flags (a probe that passed on one CPU proves nothing on another)."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        info = ""
    wanted = [line for line in info.splitlines() if line.split(":")[0].strip() in ("flags", "Features")]
    return hashlib.sha256((platform.machine() + "\n" + (wanted[0] if wanted else "")).encode()).hexdigest()


def probe_key(model_sha256: str, n_gpu_layers: int) -> str:
    parts = [model_sha256, str(n_gpu_layers), build_fingerprint(), cpu_fingerprint()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def probe_cached(model_path: Path, model_sha256: str, n_gpu_layers: int) -> ProbeResult:
    """`run_probe`, remembered when it passed (a failure is probed again: the user may have fixed it)."""
    marker = cache_dir() / "probes" / f"{probe_key(model_sha256, n_gpu_layers)}.json"
    if marker.is_file():
        try:
            seen = json.loads(marker.read_text())
            return ProbeResult(
                ProbeOutcome.RUNS, str(seen["detail"]), float(seen["tokens_per_s"]), bool(seen["gpu_offload"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged marker is probed again
    result = run_probe(model_path, n_gpu_layers)
    if result.runs:
        marker.parent.mkdir(parents=True, exist_ok=True)
        fields = {
            "detail": result.detail,
            "tokens_per_s": result.tokens_per_s,
            "gpu_offload": result.gpu_offload,
        }
        marker.write_text(json.dumps(fields))
    return result


def ensure_model_runs(name: str, model_path: Path, model_sha256: str, n_gpu_layers: int) -> None:
    """Refuse, in one line naming the models.toml entry, a model that does not load and decode here."""
    result = probe_cached(model_path, model_sha256, n_gpu_layers)
    if not result.runs:
        raise PantheonError(f"models.{name}: {result.detail}")


def _child(model_path: str, n_gpu_layers: int) -> None:
    """The child's side: load, decode PROBE_TOKENS greedily, print one JSON line. Any crash is the
    child's own: the parent reads it from the exit status."""
    import llama_cpp

    llama = llama_cpp.Llama(model_path=model_path, n_gpu_layers=n_gpu_layers, n_ctx=256, verbose=False)
    start = time.perf_counter()
    result = llama.create_completion("def add(a, b):", max_tokens=PROBE_TOKENS, temperature=0.0, top_k=1)
    assert isinstance(result, dict)  # not streamed
    seconds = time.perf_counter() - start
    tokens = int(result["usage"]["completion_tokens"])
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    print(json.dumps({"tokens": tokens, "seconds": seconds, "gpu_offload": gpu}))


def main(argv: list[str]) -> int:
    """`python -m pantheon_git.runtime.probe [GGUF]`: probe a model (the embedded one by default) and print
    one line; exit 1 if it does not run. `make install` ends with it."""
    if argv[:1] == ["--child"]:
        _child(argv[1], int(argv[2]))
        return 0
    from pantheon_git.runtime.bundled import bundled_gguf, file_sha256

    try:
        path, sha = (Path(argv[0]), file_sha256(Path(argv[0]))) if argv else bundled_gguf()
    except (PantheonError, OSError) as error:
        print(f"model: {error}", file=sys.stderr)
        return 1
    from pantheon_git.schema.models import DEFAULT_MODELS

    # The embedded model's own settings, so the first night finds this probe in the cache.
    result = probe_cached(path, sha, DEFAULT_MODELS["default"].n_gpu_layers)
    if not result.runs:
        print(f"model: {result.detail}", file=sys.stderr)
        return 1
    where = "with GPU offload" if result.gpu_offload else "on the CPU"
    print(f"model: ok: {result.detail} ({result.tokens_per_s:.1f} tokens/s {where}, a cold start)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
