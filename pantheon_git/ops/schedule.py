"""Cron and systemd timers that start `git pantheon night` in one repository, logs under .git/pantheon/logs.

The crontab line carries a marker naming the repository, so installing twice replaces our own line,
and removing touches nothing else in the user's crontab.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from pantheon_git.errors import PantheonError

MARKER = "# pantheon-git night:"


def parse_time(at: str) -> tuple[int, int]:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at)
    if not match:
        raise PantheonError(f"--at {at}: use HH:MM, 24-hour (e.g. 02:30)")
    return int(match.group(1)), int(match.group(2))


def cron_escape(text: str) -> str:
    """Cron turns a bare % into a newline; `\\%` reaches the shell as %."""
    return text.replace("%", "\\%")


def marker(root: Path) -> str:
    """The comment ending our crontab line: it names the repository, so each repository has its own."""
    return cron_escape(f"{MARKER} {root}")


def night_command(root: Path, logs: Path, train: bool = False) -> str:
    """The shell command cron runs: this interpreter, this repository, a dated log file (cron-escaped)."""
    for path in (root, logs, Path(sys.executable)):
        if "\n" in str(path) or "\r" in str(path):
            raise PantheonError(f"{path!r}: a path with a line break cannot go in a crontab line")
    python = cron_escape(shlex.quote(sys.executable))
    search = cron_escape(shlex.quote(os.environ.get("PATH", "/usr/bin:/bin")))
    log = cron_escape(shlex.quote(str(logs))) + r"/night-$(date +\%Y-\%m-\%d).log"
    repo = cron_escape(shlex.quote(str(root)))
    night = "night --train" if train else "night"  # --train: the nightly trainer after the queue
    return f"cd {repo} && PATH={search} {python} -m pantheon_git {night} >> {log} 2>&1"


def cron_line(root: Path, logs: Path, at: str, train: bool = False) -> str:
    hour, minute = parse_time(at)
    return f"{minute} {hour} * * * {night_command(root, logs, train)} {marker(root)}"


def with_line(crontab: str, root: Path, line: str | None) -> str:
    """The crontab text with this repository's line replaced (or removed when `line` is None) (pure)."""
    kept = [existing for existing in crontab.splitlines() if not existing.endswith(marker(root))]
    if line is not None:
        kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def our_lines(crontab: str, root: Path) -> list[str]:
    """The lines of `crontab` that this repository's schedule installed (pure)."""
    return [line for line in crontab.splitlines() if line.endswith(marker(root))]


def _crontab() -> str:
    # Tests point this at a stand-in; the real binary is only called here.
    return os.environ.get("PANTHEON_CRONTAB", "crontab")


def read_crontab() -> str:
    try:
        proc = subprocess.run([_crontab(), "-l"], capture_output=True, text=True)
    except FileNotFoundError:
        raise PantheonError(
            "crontab: not found; install cron, or use `git pantheon schedule install --systemd`"
        ) from None
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return ""
        raise PantheonError(f"crontab -l: {proc.stderr.strip() or 'failed'}")
    return proc.stdout


def write_crontab(text: str) -> None:
    proc = subprocess.run([_crontab(), "-"], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PantheonError(f"crontab: {proc.stderr.strip() or 'could not install the new crontab'}")


def unit_name(root: Path) -> str:
    return "pantheon-night-" + hashlib.sha256(str(root).encode()).hexdigest()[:10]


def systemd_units(root: Path, logs: Path, at: str, train: bool = False) -> dict[str, str]:
    """A user service and timer for this repository (pure): file name -> content."""
    hour, minute = parse_time(at)
    name = unit_name(root)
    # Cron escapes % as \%; systemd as %% (specifiers) and $ as $$ (its own variable expansion).
    command = night_command(root, logs, train).replace("$", "$$").replace("\\%", "%%")
    description = f"pantheon-git night shift in {root}".replace("%", "%%")
    service = (
        f"[Unit]\nDescription={description}\n\n"
        f"[Service]\nType=oneshot\nExecStart=/bin/sh -c {shlex.quote(command)}\n"
    )
    timer = (
        f"[Unit]\nDescription={description}\n\n"
        f"[Timer]\nOnCalendar=*-*-* {hour:02d}:{minute:02d}:00\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{name}.service": service, f"{name}.timer": timer}


def systemd_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"
