"""Progress of a night: one line per event (task, node, elapsed, tokens/s), or JSON lines with --json.

On a terminal the node currently running is shown on an updating line; elsewhere (cron, pipes) every
event is a plain line, so logs read top to bottom.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


def describe(event: dict[str, Any], elapsed: float) -> str:
    """One human line for an event (pure)."""
    clock = f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}]"
    kind = event.get("event")
    if kind == "task":
        resumed = " (resumed)" if event.get("resume") else ""
        return f"{clock} task {event['task']} attempt {event['attempt']}{resumed}: {event.get('title', '')}"
    # With --jobs, several attempts run at once: their node and step lines say whose they are.
    job = f"{event['job']} " if event.get("job") else ""
    if kind == "node":
        return f"{clock}   {job}{event['node']} ({event['agent']}) …"
    if kind == "step":
        tokens = event.get("tokens") or {}
        out = tokens.get("out", 0)
        rate = f", {out / event['seconds']:.1f} tok/s" if out and event.get("seconds") else ""
        state = "ok" if event.get("ok") else "FAILED"
        took = f"{event['seconds']:.1f}s{rate}"
        return f"{clock}   {job}{event['node']} {state} in {took} -> {event['commit'][:10]}"
    if kind == "done":
        detail = f": {event['detail']}" if event.get("detail") else ""
        return f"{clock} task {event['task']} {event['outcome']}{detail} (branch {event['branch']})"
    if kind == "night":
        return f"{clock} night mode: local-only, {event.get('claims', 'claims local only')}"
    if kind == "failed":
        return f"{clock} task {event['task']} failed: {event['reason']}"
    if kind == "skipped":
        return f"{clock} task {event['task']} skipped: {event['reason']}"
    return f"{clock} {json.dumps(event)}"


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
