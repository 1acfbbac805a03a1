"""`make demo`: a sample repository, a queued spec, a real night on the embedded model, the morning after.

Everything goes through the real `git pantheon` CLI, as a user would type it. The sample repository is
made fresh under the directory given (default build/demo); nothing outside it is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pantheon_git.store.git import run_git

SAMPLE_FILES = {
    "README.md": "# calc\n\nA tiny sample project for the pantheon-git demo.\n",
    "calc.py": (
        "def add(a: int, b: int) -> int:\n"
        '    """Return the sum of a and b."""\n'
        "    return a + b\n"
        "\n"
        "\n"
        "def mul(a: int, b: int) -> int:\n"
        '    """Return the product of a and b."""\n'
        "    raise NotImplementedError\n"
    ),
}

# A task the embedded 270M model can do: fill in a function stub the spec names (`files`).
SPEC = """\
id = "mul"
title = "Implement mul in calc.py"
scope = "calc.py has mul(a, b) as a stub: give it a body that returns the product of a and b."
files = ["calc.py"]
acceptance = ["python3 -c 'import calc; assert calc.mul(3, 4) == 12 and calc.mul(-2, 5) == -10'"]
priority = 1
labels = ["demo"]
"""


def sh(cwd: Path, *args: str, check: bool = True) -> int:
    """Show `args` as a user types them, run them in `cwd`, show what they printed; their exit status.

    `git pantheon VERB` runs this interpreter's CLI (what git itself would exec), any other `git`
    command goes through store/git.py, the one git layer.
    """
    print(f"$ {' '.join(args)}", flush=True)
    if args[:2] == ("git", "pantheon"):
        argv = [sys.executable, "-m", "pantheon_git", *args[2:]]
        proc = subprocess.run(argv, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        returncode, output = proc.returncode, proc.stdout
    else:
        done = run_git(list(args[1:]), cwd, check=False)
        returncode, output = done.returncode, done.stdout + done.stderr
    print(output, end="", flush=True)
    if check and returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args)}` exited {returncode}")
    return returncode


def make_sample(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    for name, text in SAMPLE_FILES.items():
        (path / name).write_text(text)
    run_git(["init", "-q", "-b", "main"], path)
    run_git(["config", "user.name", "Demo"], path)
    run_git(["config", "user.email", "demo@localhost"], path)
    run_git(["add", "-A"], path)
    run_git(["commit", "-q", "-m", "sample project"], path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="build/demo", help="where to create the sample repository")
    args = parser.parse_args()
    sample = Path(args.dir).resolve()
    # `git pantheon` must resolve to this interpreter's console script (for what the night runs itself).
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    make_sample(sample)
    print(f"sample repository: {sample}\n")
    # The runner's key signs every step and vote; committing allowed_signers on main makes them count.
    sh(sample, "git", "pantheon", "init")
    sh(sample, "git", "add", ".pantheon")
    sh(sample, "git", "commit", "-q", "-m", "pantheon: init")
    (sample / "mul.spec.toml").write_text(SPEC)
    sh(sample, "git", "pantheon", "queue", "mul.spec.toml")
    sh(sample, "git", "pantheon", "list")
    sh(sample, "git", "log", "--oneline", "refs/pantheon/tasks")
    night = sh(sample, "git", "pantheon", "night", check=False)
    # The morning report in git itself: each step's subject and its Pantheon-Log report line.
    sh(sample, "git", "log", "--notes", "--pretty=pantheon", "main..pantheon/mul/1", check=False)
    # Every step is signed by the runner's key (.pantheon/allowed_signers says whose keys count).
    sh(sample, "git", "log", "-1", "--show-signature", "--format=%h %s", "pantheon/mul/1", check=False)
    sh(sample, "git", "pantheon", "list")
    sh(sample, "git", "pantheon", "report")
    sh(sample, "git", "pantheon", "merge", "--all-passing", "--dry-run", check=False)
    print(f"\nthe sample repository stays at {sample}: try `git -C {sample} log --notes pantheon/mul/1`")
    return night


if __name__ == "__main__":
    raise SystemExit(main())
