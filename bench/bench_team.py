"""Attempts per hour of a team: 1, 2 and 3 runners on one shared remote against one model server.

The network is made of namespaces of this bench's own (tests/team_netns.py, as root of a new user
namespace): a switch at 10.77.0.1 with the bare remote behind `git daemon` and the model server, each
runner a host of its own joined by a veth pair. The server is the project's own
(`python -m pantheon_git.runtime.serve --parallel 3`: the embedded model on the batched engine, with
the requests' grammars), not llama-server; it runs on the same cores as the runners, as a team's GPU
box would not. Each runner runs `git pantheon night` on its clone with the default flow and the
server listed in `[night] model_hosts`. The baseline, measured in the same run: one runner with the
model in-process (no server, no network), on the same tasks.

Tasks: stubs of a sample module (the demo's kind of task, one function each), the same set per
configuration on a fresh remote. Figures: attempts, passes, wall seconds from the runners' start to the
last one's exit, attempts per hour, and the ratio to one served runner and to the in-process baseline.
Run: .venv/bin/python bench/bench_team.py [--tasks 6] [--runners 1 2 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT

SWITCH = "10.77.0.1"
PORT = 8000
FUNCTIONS = [
    ("mul", "a: int, b: int", "the product of a and b", "calc.mul(3, 4) == 12 and calc.mul(-2, 5) == -10"),
    ("sub", "a: int, b: int", "a minus b", "calc.sub(5, 3) == 2 and calc.sub(0, 4) == -4"),
    ("neg", "a: int", "a with its sign flipped", "calc.neg(3) == -3 and calc.neg(-7) == 7"),
    ("square", "a: int", "a times a", "calc.square(3) == 9 and calc.square(-4) == 16"),
    ("double", "a: int", "twice a", "calc.double(3) == 6 and calc.double(-5) == -10"),
    ("is_even", "n: int", "True when n is even", "calc.is_even(4) and not calc.is_even(7)"),
    (
        "maximum",
        "a: int, b: int",
        "the larger of a and b",
        "calc.maximum(2, 9) == 9 and calc.maximum(5, 1) == 5",
    ),
    ("half", "a: int", "a divided by 2, rounded down", "calc.half(9) == 4 and calc.half(10) == 5"),
]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def pantheon(cwd: Path, *args: str, check: bool = True) -> None:
    subprocess.run([sys.executable, "-m", "pantheon_git", *args], cwd=cwd, check=check, capture_output=True)


def sample(path: Path, tasks: int, served: bool, remote: Path) -> None:
    """The sample repository: calc.py with `tasks` stubs, `remote` its origin (before `init`, which sets
    up what a push carries), pantheon set up, the tasks queued."""
    path.mkdir(parents=True)
    chosen = FUNCTIONS[:tasks]
    (path / "calc.py").write_text(
        "\n\n".join(
            f'def {name}({params}):\n    """Return {what}."""\n    raise NotImplementedError\n'
            for name, params, what, _ in chosen
        )
    )
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@localhost")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "sample")
    git(path, "remote", "add", "origin", str(remote))
    pantheon(path, "init")
    config = path / ".pantheon" / "config.toml"
    text = config.read_text().replace("remotes = []", 'remotes = ["origin"]')
    if served:
        text = text.replace("model_hosts = []", f'model_hosts = ["{SWITCH}:{PORT}"]')
        (path / ".pantheon" / "models.toml").write_text(
            f'[models.default]\nengine = "openai-compatible"\nurl = "http://{SWITCH}:{PORT}/v1"\n'
            'grammars = ["json-schema", "lark"]\n'  # runtime/serve.py holds the code format's grammars
        )
    config.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "pantheon")
    for name, _, what, check in chosen:
        spec = path / f"{name}.toml"
        spec.write_text(
            f'id = "{name.replace("_", "-")}"\ntitle = "Implement {name} in calc.py"\n'
            f'scope = "calc.py has {name} as a stub: give it a body that returns {what}."\n'
            f'files = ["calc.py"]\nacceptance = ["python3 -c \'import calc; assert {check}\'"]\n'
        )
        pantheon(path, "queue", str(spec))
        spec.unlink()


def team(top: Path, runners: int, tasks: int, served: bool) -> tuple[Path, list[Path]]:
    """A bare remote under `top` holding the sample and its queue, and a clone per runner."""
    bare = top / "remote.git"
    git(top, "init", "-q", "--bare", "-b", "main", str(bare))
    origin = top / "origin"
    sample(origin, tasks, served, bare)
    git(origin, "push", "-q", "origin")
    clones = []
    for number in range(1, runners + 1):
        clone = top / f"r{number}"
        git(top, "clone", "-q", str(bare), str(clone))
        git(clone, "config", "user.name", f"r{number}")
        git(clone, "config", "user.email", f"r{number}@localhost")
        git(clone, "fetch", "-q", "origin", "refs/pantheon/tasks:refs/pantheon/tasks")
        # Every runner signs with the key that `init` made (on main's allowed signers): one key for the
        # bench's runners, where a team would commit one line per runner.
        key = git(origin, "config", "pantheon.signingKey").strip()
        for name, value in [
            ("gpg.format", "ssh"),
            ("user.signingKey", key),
            ("pantheon.signingKey", key),
            ("gpg.ssh.allowedSignersFile", str(clone / ".pantheon" / "allowed_signers")),
        ]:
            git(clone, "config", "--local", name, value)
        if served:
            git(clone, "remote", "set-url", "origin", f"git://{SWITCH}/remote.git")
        clones.append(clone)
    return bare, clones


def outcomes(clones: list[Path]) -> tuple[int, int]:
    """(attempts, passes): run branches across the clones, and those whose gate approved."""
    attempts = passes = 0
    for clone in clones:
        for branch in git(clone, "for-each-ref", "--format=%(refname:short)", "refs/heads/pantheon/").split():
            attempts += 1
            subject = git(clone, "log", "-1", "--format=%s", branch)
            passes += subject.startswith("gate: approve")
    return attempts, passes


def served_run(runners: int, tasks: int, parallel: int) -> dict[str, float]:
    top = Path(tempfile.mkdtemp(prefix="pantheon-team-"))
    try:
        _, clones = team(top, runners, tasks, served=True)
        night = [sys.executable, "-m", "pantheon_git", "night"]
        serve = [sys.executable, "-m", "pantheon_git.runtime.serve", "--host", SWITCH, "--port", str(PORT)]
        serve += ["--parallel", str(parallel), "--repo", str(top)]
        steps: list[dict[str, object]] = [{"serve": serve, "port": PORT}]
        steps += [
            {"start": f"r{n}", "host": n, "cwd": str(clone), "argv": night}
            for n, clone in enumerate(clones, 1)
        ]
        steps += [{"join": f"r{n}", "timeout": 3600} for n in range(1, runners + 1)]
        plan = top / "plan.json"
        plan.write_text(json.dumps({"base": str(top), "steps": steps}))
        done = subprocess.run(
            ["unshare", "-rn", sys.executable, str(ROOT / "tests" / "team_netns.py"), str(plan)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        if done.returncode != 0:
            raise SystemExit(f"bench_team: the team's run failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        results = json.loads(done.stdout)
        seconds = max(float(result["seconds"]) for result in results.values())
        attempts, passes = outcomes(clones)
        if not attempts:
            raise SystemExit(f"bench_team: the served night ran nothing:\n{done.stdout}{done.stderr[-3000:]}")
        return {"runners": runners, "attempts": attempts, "passes": passes, "seconds": round(seconds, 1)}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def in_process_run(tasks: int) -> dict[str, float]:
    top = Path(tempfile.mkdtemp(prefix="pantheon-team-"))
    try:
        _, clones = team(top, 1, tasks, served=False)
        # The model probe (cached per model and build) is not part of the night's time.
        pantheon(clones[0], "doctor", check=False)
        start = time.perf_counter()
        night = subprocess.run(
            [sys.executable, "-m", "pantheon_git", "night"], cwd=clones[0], capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        attempts, passes = outcomes(clones)
        if not attempts:
            raise SystemExit(f"bench_team: the in-process night ran nothing:\n{night.stdout}{night.stderr}")
        return {"runners": 1, "attempts": attempts, "passes": passes, "seconds": round(seconds, 1)}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def per_hour(row: dict[str, float]) -> float:
    return round(row["attempts"] * 3600 / row["seconds"], 1) if row["seconds"] else 0.0


@dataclass
class Config:
    """One configuration over its rounds: the median attempts per hour and the spread (min, max)."""

    label: str
    rounds: list[dict[str, float]]
    vs_in_process: float = 0.0
    vs_one_served_runner: float = 0.0

    @property
    def rates(self) -> list[float]:
        return sorted(per_hour(row) for row in self.rounds)

    @property
    def attempts_per_hour(self) -> float:
        return round(statistics.median(self.rates), 1)

    def as_json(self) -> dict[str, object]:
        return {
            "config": self.label,
            "attempts_per_hour": self.attempts_per_hour,
            "spread": [self.rates[0], self.rates[-1]],
            "vs_in_process": self.vs_in_process,
            "vs_one_served_runner": self.vs_one_served_runner,
            "rounds": self.rounds,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6, choices=range(1, len(FUNCTIONS) + 1))
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--parallel", type=int, default=3, help="the server's batched slots")
    parser.add_argument("--rounds", type=int, default=2, help="each configuration this often, alternated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configs = [Config("in-process, 1 runner", [])]
    configs += [Config(f"served, {n} runner(s)", []) for n in args.runners]
    for _ in range(args.rounds):  # alternated, so a slow stretch of the machine hits every configuration
        configs[0].rounds.append(in_process_run(args.tasks))
        for config, runners in zip(configs[1:], args.runners, strict=True):
            config.rounds.append(served_run(runners, args.tasks, args.parallel))
    for config in configs:
        config.vs_in_process = round(config.attempts_per_hour / configs[0].attempts_per_hour, 2)
        config.vs_one_served_runner = round(config.attempts_per_hour / configs[1].attempts_per_hour, 2)
    server = f"pantheon_git.runtime.serve --parallel {args.parallel} (embedded model, batched engine)"
    figures = {
        "tasks": args.tasks,
        "rounds": args.rounds,
        "server": server,
        "cores": os.cpu_count(),
        "configs": [config.as_json() for config in configs],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{args.tasks} tasks, {args.rounds} rounds, {os.cpu_count()} cores; server: {server}")
    print(f"{'':<24}{'passes':>10}{'attempts/h':>12}{'spread':>16}{'vs in-proc':>12}{'vs 1 served':>12}")
    for config in configs:
        passes = "+".join(str(int(row["passes"])) for row in config.rounds)
        spread = f"{config.rates[0]}-{config.rates[-1]}"
        print(
            f"{config.label:<24}{passes:>10}{config.attempts_per_hour:>12}{spread:>16}"
            f"{config.vs_in_process:>12}{config.vs_one_served_runner:>12}"
        )


if __name__ == "__main__":
    main()
