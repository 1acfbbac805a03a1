"""Progress of a night: one line per event (task, node, elapsed, tokens/s), or JSON lines with --json.

On a terminal the node currently running is shown on an updating line; elsewhere (cron, pipes) every
event is a plain line, so logs read top to bottom.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from pantheon_git.errors import shown


def describe(event: dict[str, Any], elapsed: float) -> str:
    """One human line for an event (pure). Every value in it comes through `shown`: titles, node names,
    reasons and errors are data (a spec from a remote, a path a model asked for), never terminal codes."""
    clock = f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}]"
    kind = event.get("event")
    safe = {key: shown(value) for key, value in event.items()}
    if kind == "task":
        resumed = " (resumed)" if event.get("resume") else ""
        return f"{clock} task {safe['task']} attempt {safe['attempt']}{resumed}: {safe.get('title', '')}"
    # With --jobs, several attempts run at once: their node and step lines say whose they are.
    job = f"{safe['job']} " if event.get("job") else ""
    if kind == "node":
        return f"{clock}   {job}{safe['node']} ({safe['agent']}) …"
    if kind == "step":
        tokens = event.get("tokens") or {}
        out = tokens.get("out", 0)
        rate = f", {out / event['seconds']:.1f} tok/s" if out and event.get("seconds") else ""
        state = "ok" if event.get("ok") else "FAILED"
        took = f"{event['seconds']:.1f}s{rate}"
        return f"{clock}   {job}{safe['node']} {state} in {took} -> {safe['commit'][:10]}"
    if kind == "done":
        detail = f": {safe['detail']}" if event.get("detail") else ""
        return f"{clock} task {safe['task']} {safe['outcome']}{detail} (branch {safe['branch']})"
    if kind == "night":
        return f"{clock} night mode: local-only, {shown(event.get('claims', 'claims local only'))}"
    if kind == "failed":
        return f"{clock} task {safe['task']} failed: {safe['reason']}"
    if kind == "skipped":
        return f"{clock} task {safe['task']} skipped: {safe['reason']}"
    return f"{clock} {json.dumps(event)}"  # ensure_ascii: control characters come out as \u escapes


class Progress:
    def __init__(self, stream: TextIO | None = None, *, as_json: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.tty = self.stream.isatty() and not as_json
        self.start = time.monotonic()
        self.pending = False

    def __call__(self, event: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.start
        if self.as_json:
            self.stream.write(json.dumps({**event, "elapsed_s": round(elapsed, 3)}) + "\n")
        elif self.tty and event.get("event") == "node" and not event.get("job"):
            self.stream.write("\r\033[K" + describe(event, elapsed))
            self.pending = True
        else:
            prefix = "\r\033[K" if self.tty and self.pending else ""
            self.stream.write(prefix + describe(event, elapsed) + "\n")
            self.pending = False
        self.stream.flush()
