"""Edit format on the embedded model: code as plain lines (CODE) against code inside JSON strings (JSON).

Small edit tasks on a scratch directory, the implementer agent with the same tools, examples and prompt
context in both formats; a task passes when its check (a Python assertion, as a pytest check would)
exits 0 after the agent's run. Prints pass counts per format, turns, tokens and time.
Run: .venv/bin/python bench/bench_edit_format.py [--threads 2] [--formats code,json] [--tasks N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.calls import CallFormat
from pantheon_git.agents.loop import run_agent
from pantheon_git.runtime.llama import runtime_for
from pantheon_git.schema.models import ModelConfig
from pantheon_git.tools.builtin import ToolContext

CALC = "def add(a, b):\n    return a + b\n"
# (title, files {path: text} (all shown to the agent), the check run afterwards)
TASKS = [
    (
        "Add a function mul(a, b) returning a*b to calc.py",
        {"calc.py": CALC},
        "from calc import mul; assert mul(3, 4) == 12",
    ),
    (
        "Add a function sub(a, b) returning a - b to calc.py",
        {"calc.py": CALC},
        "from calc import sub; assert sub(7, 2) == 5",
    ),
    (
        "Make greet(name) in greet.py return 'Hello, ' + name + '!'",
        {"greet.py": 'def greet(name):\n    return "Hi " + name\n'},
        "from greet import greet; assert greet('Bob') == 'Hello, Bob!'",
    ),
    (
        "Fix is_even(n) in num.py: it must return True for even numbers",
        {"num.py": "def is_even(n):\n    return n % 2 == 1\n"},
        "from num import is_even; assert is_even(4) and not is_even(3)",
    ),
    (
        'Add a function quote(s) to text.py returning s wrapped in double quotes, like "a"',
        {"text.py": 'def upper(s):\n    """Upper case."""\n    return s.upper()\n'},
        "from text import quote; assert quote('a') == '\"a\"'",
    ),
    (
        "Add a function double(x) returning 2 * x to calc.py",
        {"calc.py": CALC},
        "from calc import double; assert double(21) == 42",
    ),
]


def run_task(runtime, call_format: CallFormat, title: str, files: dict[str, str], check: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="pantheon-bench-edit-"))
    try:
        for path, text in files.items():
            (workdir / path).write_text(text)
        task = {"title": title, "acceptance": [f"python -c {check!r}"], "files": list(files)}
        started = time.perf_counter()
        run = run_agent(
            IMPLEMENTER, runtime, ToolContext(worktree=workdir), task, {}, call_format=call_format
        )
        seconds = time.perf_counter() - started
        passed = (
            subprocess.run([sys.executable, "-c", check], cwd=workdir, capture_output=True).returncode == 0
        )
        calls = [turn.get("call", {}).get("tool", "error") for turn in run.turns]
        errors = sum(1 for turn in run.turns if turn.get("error"))
        return {
            "passed": passed,
            "finished": run.ok,
            "calls": calls,
            "errors": errors,
            "tokens_out": run.tokens_out,
            "seconds": seconds,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default="code,json")
    parser.add_argument("--tasks", type=int, default=len(TASKS))
    args = parser.parse_args()
    runtime = runtime_for("default", ModelConfig(bundled="gemma3-270m", n_ctx=4096, n_threads=args.threads))
    for name in args.formats.split(","):
        call_format = CallFormat(name)
        passed = 0
        tokens = seconds = errors = 0.0
        for title, files, check in TASKS[: args.tasks]:
            result = run_task(runtime, call_format, title, files, check)
            passed += result["passed"]
            tokens += result["tokens_out"]
            seconds += result["seconds"]
            errors += result["errors"]
            mark = "pass" if result["passed"] else "FAIL"
            print(f"  {name:4s} {mark}  {title[:60]:60s} calls={','.join(result['calls'])}")
        total = min(args.tasks, len(TASKS))
        print(
            f"{name}: {passed}/{total} pass; {int(errors)} failed calls; {int(tokens)} tokens out; "
            f"{seconds:.1f}s\n"
        )


if __name__ == "__main__":
    main()
