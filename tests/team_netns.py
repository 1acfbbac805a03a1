"""A team's network in namespaces of a test's own: run as root of a new user and network namespace
(`unshare -rn python tests/team_netns.py PLAN.json`).

The namespace it starts in is the team's switch: a bridge `team0` at 10.77.0.1/24, where the shared
remote is served by `git daemon` (git://10.77.0.1/) and, when the plan names one, a model server listens.
Each runner is a host of its own: a network namespace inside this one, joined to the bridge by a veth
pair, at 10.77.0.1N. The plan (JSON) lists the steps; what each runner printed comes back as JSON on
stdout. Nothing here reaches outside the namespaces it makes.

Plan: {"base": DIR (git daemon's base path), "steps": [
    {"start": NAME, "cwd": DIR, "argv": [...], "host": N},   start a runner host running argv
    {"wait_ref": REF, "repo": DIR, "timeout": S},             until the bare repository has REF
    {"kill": NAME},                                           SIGKILL the runner and what it started
    {"sleep": S},
    {"since_kill": NAME, "seconds": S},                       until S seconds after NAME was killed
    {"join": NAME, "timeout": S},                             until the runner exits (its seconds)
    {"serve": [...argv], "port": P}                           a model server on the switch at 10.77.0.1:P
]}
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

SWITCH = "10.77.0.1"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def wait_until(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"team_netns: timed out waiting for {what}")
        time.sleep(0.05)


def start_host(name: str, number: int, cwd: str, argv: list[str]) -> subprocess.Popen[str]:
    """A runner in a network namespace of its own, joined to the switch at 10.77.0.1<number>."""
    address = f"10.77.0.{10 + number}"
    setup = (
        "while ! ip link show eth0 >/dev/null 2>&1; do sleep 0.02; done; "
        f"ip link set lo up && ip addr add {address}/24 dev eth0 && ip link set eth0 up && "
        'exec "$@"'
    )
    proc = subprocess.Popen(
        ["unshare", "-n", "bash", "-c", setup, name, *argv],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a kill takes the checks it started too
    )
    own = os.readlink("/proc/self/ns/net")
    wait_until(lambda: os.readlink(f"/proc/{proc.pid}/ns/net") != own, 10, f"{name}'s namespace")
    ip("link", "add", f"veth-{name}", "type", "veth", "peer", "name", "eth0", "netns", str(proc.pid))
    ip("link", "set", f"veth-{name}", "master", "team0", "up")
    return proc


def main(plan_path: str) -> int:
    with open(plan_path) as file:
        plan = json.load(file)
    ip("link", "set", "lo", "up")
    ip("link", "add", "team0", "type", "bridge")
    ip("addr", "add", f"{SWITCH}/24", "dev", "team0")
    ip("link", "set", "team0", "up")
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            "--reuseaddr",
            f"--listen={SWITCH}",
            f"--base-path={plan['base']}",
            plan["base"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # `git daemon` runs git-daemon as a child: stopped as a group
    )
    wait_until(lambda: _listening(9418), 20, "git daemon")
    runners: dict[str, subprocess.Popen[str]] = {}
    results: dict[str, Any] = {}
    servers = []
    killed_at: dict[str, float] = {}
    started_at: dict[str, float] = {}
    try:
        for step in plan["steps"]:
            if "start" in step:
                started_at[step["start"]] = time.monotonic()
                runners[step["start"]] = start_host(step["start"], step["host"], step["cwd"], step["argv"])
            elif "serve" in step:
                servers.append(
                    subprocess.Popen(
                        step["serve"], stdout=sys.stderr, stderr=sys.stderr, start_new_session=True
                    )
                )
                wait_until(lambda: _listening(int(step["port"])), 300, "the model server")  # noqa: B023
            elif "wait_ref" in step:
                probe = ["git", "-C", step["repo"], "rev-parse", "--verify", "-q", step["wait_ref"]]
                wait_until(
                    lambda: subprocess.run(probe, capture_output=True).returncode == 0,  # noqa: B023 (used now)
                    step.get("timeout", 60),
                    step["wait_ref"],
                )
            elif "kill" in step:
                proc = runners[step["kill"]]
                os.killpg(proc.pid, signal.SIGKILL)
                killed_at[step["kill"]] = time.monotonic()
                proc.wait()
                results[step["kill"]] = {"killed": True, "output": proc.stdout.read() if proc.stdout else ""}
            elif "sleep" in step:
                time.sleep(step["sleep"])
            elif "since_kill" in step:
                time.sleep(max(0.0, killed_at[step["since_kill"]] + step["seconds"] - time.monotonic()))
            elif "join" in step:
                proc = runners[step["join"]]
                output, _ = proc.communicate(timeout=step.get("timeout", 300))
                seconds = round(time.monotonic() - started_at[step["join"]], 2)
                results[step["join"]] = {"returncode": proc.returncode, "output": output, "seconds": seconds}
    finally:
        for proc in [*runners.values(), *servers, daemon]:  # each the leader of its own process group
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(json.dumps(results))
    return 0


def _listening(port: int) -> bool:
    try:
        socket.create_connection((SWITCH, port), timeout=0.5).close()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
