"""The install check and the night's first check: a llama.cpp that crashes on this CPU is one line.

The crash is simulated as it happens: a `llama_cpp` package (first on the child's PYTHONPATH) whose
decode kills its own process with SIGILL, as a native AMX build does on a CPU that faults on tile loads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.runtime.probe import ProbeOutcome, ensure_model_runs, interpret, probe_cached

FAKE_LLAMA = """
import json, os, signal
from pathlib import Path

class Llama:
    def __init__(self, model_path, **kwargs):
        self.model_path = model_path

    def create_completion(self, prompt, **kwargs):
        with open(os.environ["FAKE_LLAMA_LOG"], "a") as log:
            log.write("decode\\n")
        if os.environ.get("FAKE_LLAMA_CRASH") == "SIGILL":
            os.kill(os.getpid(), signal.SIGILL)  # what tileloadd does on a CPU that refuses AMX state
        if os.environ.get("FAKE_LLAMA_CRASH") == "error":
            raise ValueError("Failed to load model from file: " + self.model_path)
        return {"usage": {"completion_tokens": 4}}

def llama_supports_gpu_offload():
    return False
"""


@pytest.fixture
def fake_llama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake llama.cpp first on the children's path, a model file, a cache of our own; returns the log."""
    package = tmp_path / "fake" / "llama_cpp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_LLAMA))
    repo_root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", f"{package.parent}{os.pathsep}{repo_root}")
    monkeypatch.setenv("PANTHEON_CACHE_DIR", str(tmp_path / "cache"))
    log = tmp_path / "decodes.log"
    monkeypatch.setenv("FAKE_LLAMA_LOG", str(log))
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    return log


def test_install_check_turns_sigill_into_one_line_and_exit_1(tmp_path: Path, fake_llama: Path) -> None:
    env = {**os.environ, "FAKE_LLAMA_CRASH": "SIGILL"}
    proc = subprocess.run(
        [sys.executable, "-m", "pantheon_git.runtime.probe", str(tmp_path / "model.gguf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert fake_llama.read_text() == "decode\n"  # the child really reached its decode and died there
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "SIGILL" in lines[0] and "illegal instruction" in lines[0]
    assert "AMX" in lines[0] and "CMAKE_ARGS=" in lines[0] and "-DGGML_NATIVE=OFF" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_install_check_passes_a_model_that_decodes(tmp_path: Path, fake_llama: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pantheon_git.runtime.probe", str(tmp_path / "model.gguf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("model: ok: model.gguf loads and decodes")


def test_a_load_error_is_its_last_line(
    tmp_path: Path, fake_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_CRASH", "error")
    with pytest.raises(PantheonError) as refused:
        ensure_model_runs("coder", tmp_path / "model.gguf", "0" * 64, 0)
    assert str(refused.value) == (
        f"models.coder: llama.cpp could not load or decode model.gguf: ValueError: Failed to load model "
        f"from file: {tmp_path / 'model.gguf'}"
    )


def test_the_runtime_refuses_a_crashing_build_before_the_night_loads_it(
    tmp_path: Path, fake_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runtime_for probes in a child first: the night gets the one line, not a core dump."""
    from pantheon_git.runtime.llama import runtime_for
    from pantheon_git.schema.models import ModelConfig

    monkeypatch.setenv("FAKE_LLAMA_CRASH", "SIGILL")
    config = ModelConfig(path=str(tmp_path / "model.gguf"), n_gpu_layers=0)
    with pytest.raises(PantheonError, match=r"^models\.coder: llama.cpp died with SIGILL"):
        runtime_for("coder", config)


def test_a_passing_probe_is_remembered_and_a_failing_one_is_not(
    tmp_path: Path, fake_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.gguf"
    monkeypatch.setenv("FAKE_LLAMA_CRASH", "SIGILL")
    assert probe_cached(model, "a" * 64, 0).outcome is ProbeOutcome.CRASHED
    assert probe_cached(model, "a" * 64, 0).outcome is ProbeOutcome.CRASHED
    assert fake_llama.read_text().count("decode") == 2  # a failure is probed again (it may be fixed)
    monkeypatch.delenv("FAKE_LLAMA_CRASH")
    assert probe_cached(model, "a" * 64, 0).runs
    assert probe_cached(model, "a" * 64, 0).runs
    assert fake_llama.read_text().count("decode") == 3  # the pass is remembered
    assert probe_cached(model, "a" * 64, -1).runs  # other GPU layers: another probe
    assert probe_cached(model, "b" * 64, 0).runs  # another model file: another probe
    assert fake_llama.read_text().count("decode") == 5


@pytest.mark.parametrize(
    ("returncode", "stderr", "outcome", "words"),
    [
        (-signal.SIGILL, "", ProbeOutcome.CRASHED, ["SIGILL", "-DGGML_AMX_TILE=OFF"]),
        (-signal.SIGSEGV, "", ProbeOutcome.CRASHED, ["SIGSEGV", "sha256"]),
        (-signal.SIGKILL, "", ProbeOutcome.CRASHED, ["SIGKILL", "out of memory"]),
        (1, "Traceback...\nValueError: bad magic\n", ProbeOutcome.FAILED, ["ValueError: bad magic"]),
        (0, "no report\n", ProbeOutcome.FAILED, ["printed no report"]),
    ],
)
def test_interpret_names_what_went_wrong(
    returncode: int, stderr: str, outcome: ProbeOutcome, words: list[str]
) -> None:
    result = interpret(returncode, "no report\n" if returncode == 0 else "", stderr, "m.gguf")
    assert result.outcome is outcome
    assert all(word in result.detail for word in words), result.detail
    assert "\n" not in result.detail
