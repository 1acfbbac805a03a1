"""A pids cgroup around each sandboxed command of a runner started as root.

The sandbox's process limit is RLIMIT_NPROC (`prlimit --nproc`), which the kernel never applies to uid 0:
a night run as root (CI, containers) had no process limit at all. A root runner can make a cgroup with
`pids.max` instead, where the machine has a pids controller it may write to (cgroup v1's pids hierarchy,
or cgroup v2 with pids available at its root); the command moves itself into it before bwrap starts, so
nothing it forks is outside. Elsewhere (an ordinary user, no writable pids controller) this is a no-op and
RLIMIT_NPROC is the limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

V1_PIDS = Path("/sys/fs/cgroup/pids")
V2_ROOT = Path("/sys/fs/cgroup")


def _v2_with_pids(root: Path) -> bool:
    """cgroup v2 mounted at `root` with the pids controller enabled for its children (enabled here if
    only available: the root cgroup may hold processes and children at once)."""
    controllers = root / "cgroup.controllers"
    if not controllers.is_file() or "pids" not in controllers.read_text().split():
        return False
    subtree = root / "cgroup.subtree_control"
    if "pids" in subtree.read_text().split():
        return True
    try:
        subtree.write_text("+pids")
    except OSError:
        return False
    return True


def pids_parent() -> Path | None:
    """The cgroup directory under which this runner can make a pids cgroup, or None (not root, or no
    pids controller it may write to)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(OSError):
        if (V1_PIDS / "cgroup.procs").is_file() and os.access(V1_PIDS, os.W_OK):
            return V1_PIDS
        if _v2_with_pids(V2_ROOT) and os.access(V2_ROOT, os.W_OK):
            return V2_ROOT
    return None


def limit_hits(cgroup: Path) -> int:
    """How many forks `pids.max` refused in `cgroup` (its pids.events `max` counter)."""
    with contextlib.suppress(OSError, ValueError):
        for line in (cgroup / "pids.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
    return 0


def _remove(cgroup: Path) -> None:
    """Kill what is left in `cgroup` and remove it (a cgroup is removable once it holds no process)."""
    for _ in range(50):
        try:
            pids = [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            cgroup.rmdir()
            return
        time.sleep(0.02)


@contextlib.contextmanager
def pids_cgroup(max_processes: int) -> Iterator[Path | None]:
    """A fresh cgroup allowing `max_processes` processes and threads at once, removed afterwards; None
    where the runner cannot make one (see `pids_parent`)."""
    parent = pids_parent()
    if parent is None:
        yield None
        return
    cgroup = parent / f"pantheon-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        cgroup.mkdir()
        (cgroup / "pids.max").write_text(str(max_processes))
    except OSError:
        with contextlib.suppress(OSError):
            cgroup.rmdir()
        yield None
        return
    try:
        yield cgroup
    finally:
        _remove(cgroup)


def enter_argv(cgroup: Path, argv: list[str]) -> list[str]:
    """argv run by a shell that first moves itself into `cgroup`, then becomes argv (exec): every
    process argv forks is born inside. If the move fails, nothing runs."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *argv]
