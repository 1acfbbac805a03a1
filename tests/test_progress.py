"""Night progress: human lines with elapsed time and tokens/s, or JSON lines."""

from __future__ import annotations

import io
import json

from pantheon_git.ops.progress import Progress, describe


def test_lines_for_each_event() -> None:
    assert describe({"event": "task", "task": "t1", "attempt": 2, "resume": True, "title": "x"}, 65) == (
        "[01:05] task t1 attempt 2 (resumed): x"
    )
    step = {
        "event": "step",
        "task": "t1",
        "node": "implement",
        "ok": True,
        "seconds": 4.0,
        "tokens": {"in": 900, "out": 60},
        "commit": "0123456789abcdef",
    }
    assert describe(step, 10) == "[00:10]   implement ok in 4.0s, 15.0 tok/s -> 0123456789"
    assert "FAILED" in describe({**step, "ok": False}, 10)
    assert describe({"event": "skipped", "task": "t", "reason": "claimed elsewhere"}, 0).endswith(
        "skipped: claimed elsewhere"
    )


def test_plain_and_json_streams() -> None:
    plain = io.StringIO()
    Progress(plain)({"event": "node", "task": "t", "node": "plan", "agent": "planner"})
    assert plain.getvalue() == "[00:00]   plan (planner) …\n"  # not a TTY: no carriage returns
    as_json = io.StringIO()
    Progress(as_json, as_json=True)({"event": "done", "task": "t", "outcome": "completed"})
    record = json.loads(as_json.getvalue())
    assert record["event"] == "done" and "elapsed_s" in record
