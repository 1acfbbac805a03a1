"""Errors the user can act on: printed as one line by the CLI, which then exits with status 2.

Also the two helpers every human-facing output uses for data it did not write itself: `shown` (control
characters escaped, so a spec title, a file path or a voter's name from a remote cannot drive the
terminal) and `warn_skipped` (a bad object read from git named in one line on stderr, then skipped).
"""

from __future__ import annotations

import sys
import unicodedata


class PantheonError(Exception):
    """A refusal with a reason the user can fix; its message is one line naming the file or field."""

    exit_code = 2


class ConflictError(PantheonError):
    """A compare-and-swap on a ref kept losing against other writers."""


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _hidden(char: str) -> bool:
    # Cc: C0 controls, DEL and C1 (ESC, CSI, OSC, BEL, backspace, carriage return); Cf: format
    # characters such as right-to-left overrides, which reorder what the eye reads; line and paragraph
    # separators break a line as a newline does.
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def shown(text: object) -> str:
    """`text` as it may reach a terminal: every control character spelled out (`\\x1b`, `\\n`), the rest
    as it is. A data string shown through this is one line that moves no cursor and sets no title."""
    value = str(text)
    if value.isprintable():  # the common case, in C: nothing to escape (isprintable is false for all above)
        return value
    return "".join(_escape(char) if _hidden(char) else char for char in value)


_WARNED: set[str] = set()


def warn_skipped(where: str, reason: str) -> None:
    """Name a bad object read from git (a ref, a note, a line) in one stderr line, once per process, and
    let the caller skip it: data from another machine is never trusted to be well formed."""
    line = f"pantheon: warning: {shown(where)}: {shown(reason)}; skipped"
    if line not in _WARNED:
        _WARNED.add(line)
        print(line, file=sys.stderr)
