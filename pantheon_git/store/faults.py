"""Test-only fault points: SIGKILL this process at a named write boundary, to test resuming after it.

`PANTHEON_FAULT_AT=<point>[:<count>]` kills the process the `count`-th time (default the first) it
reaches `<point>`; `PANTHEON_FAULT_LOG=<file>` appends every point reached, one a line, so a test can
list the boundaries of a clean run and then kill at each in turn. With neither set (every real night)
a point costs two environment lookups and writes nothing. Points are named `<boundary>.<what>`
(`ref-locked.votes`, `signed.commit`); the count is per process, so a point is deterministic for a given
repository state and flow.
"""

from __future__ import annotations

import os
import signal
from enum import StrEnum

from pantheon_git.store.layout import CLAIMS_PREFIX, RUN_BRANCH_PREFIX, TASKS_REF

FAULT_AT_ENV = "PANTHEON_FAULT_AT"
FAULT_LOG_ENV = "PANTHEON_FAULT_LOG"


class Boundary(StrEnum):
    """Where a write can be cut: the part of a point's name before its dot."""

    REF_LOCKED = "ref-locked"  # a ref's lock file is taken, the ref not moved yet: a kill leaves the lock
    REF_MOVED = "ref-moved"  # the ref points at its new value
    SIGNED = "signed"  # ssh-keygen returned a signature; the signed object is not written yet
    CACHED = "cached"  # a verified signature was appended to the cache under .git/pantheon/


# How many times this process reached each point (one process, one night: counts never reset).
_REACHED: dict[str, int] = {}


def fault_point(boundary: Boundary, what: str) -> None:
    """Mark that `boundary` of `what` was reached: logged and counted when a test asks, else nothing."""
    wanted = os.environ.get(FAULT_AT_ENV)
    log = os.environ.get(FAULT_LOG_ENV)
    if not wanted and not log:
        return
    point = f"{boundary.value}.{what}"
    count = _REACHED[point] = _REACHED.get(point, 0) + 1
    if log:
        with open(log, "a") as handle:  # one short line per write: the appends of one process are ordered
            handle.write(f"{point}:{count}\n")
    if wanted and parse_fault(wanted) == (point, count):
        os.kill(os.getpid(), signal.SIGKILL)


def parse_fault(text: str) -> tuple[str, int]:
    """`<point>[:<count>]` as (point, count); a count that is not a positive number is a mistake."""
    point, sep, count = text.strip().rpartition(":")
    if not sep:
        return text.strip(), 1
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"{FAULT_AT_ENV}={text}: the count after ':' must be a positive number")
    return point, int(count)


def ref_kind(ref: str) -> str:
    """A ref's family, as fault points name it: `run-branch`, `claim`, `votes`, `traces`, … or `ref`."""
    if ref.startswith(RUN_BRANCH_PREFIX):
        return "run-branch"
    if ref.startswith(CLAIMS_PREFIX):
        return "claim"
    if ref == TASKS_REF:
        return "tasks"
    if ref.startswith("refs/notes/pantheon/"):
        return ref.removeprefix("refs/notes/pantheon/").replace("/", "-")
    return "ref"
