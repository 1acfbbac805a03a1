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
    "README.md": "# greetings\n\nA tiny sample project for the pantheon-git demo.\n",
    "greet.py": 'def greet(name: str) -> str:\n    return "Hello, " + name\n',
}

SPEC = """\
id = "hello-file"
title = "Create hello.txt containing the word hello"
scope = "Write one new file, hello.txt, in the repository root. Its content: hello"
acceptance = ["grep -q hello hello.txt"]
priority = 1
labels = ["demo"]
"""


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"$ {' '.join(args)}", flush=True)
    proc = subprocess.run(args, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(proc.stdout, end="", flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(args)}` exited {proc.returncode}")
    return proc


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
    # `git pantheon` must resolve to this interpreter's console script.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    make_sample(sample)
    print(f"sample repository: {sample}\n")
    # The runner's key signs every step and vote; committing allowed_signers on main makes them count.
    sh(sample, "git", "pantheon", "init", "--signing-key")
    sh(sample, "git", "add", ".pantheon")
    sh(sample, "git", "commit", "-q", "-m", "pantheon: init")
    (sample / "hello.spec.toml").write_text(SPEC)
    sh(sample, "git", "pantheon", "queue", "hello.spec.toml")
    sh(sample, "git", "pantheon", "list")
    sh(sample, "git", "log", "--oneline", "refs/pantheon/tasks")
    night = sh(sample, "git", "pantheon", "night", check=False)
    # The morning report in git itself: a few lines per step (refs/notes/pantheon/log, the displayRef).
    sh(sample, "git", "log", "--notes", "--pretty=pantheon", "main..pantheon/hello-file/1", check=False)
    # Every step is signed by the runner's key (.pantheon/allowed_signers says whose keys count).
    sh(sample, "git", "log", "-1", "--show-signature", "--format=%h %s", "pantheon/hello-file/1", check=False)
    sh(sample, "git", "pantheon", "list")
    sh(sample, "git", "pantheon", "report")
    sh(sample, "git", "pantheon", "merge", "--all-passing", "--dry-run", check=False)
    print(
        f"\nthe sample repository stays at {sample}: try `git -C {sample} log --notes pantheon/hello-file/1`"
    )
    return night.returncode


if __name__ == "__main__":
    raise SystemExit(main())
