"""The git config a sandboxed command sees: the repository's own, with every credential left out.

A check may print `.git/config` or run `git config --list`; what it prints becomes a vote, a trace and
a file of the run branch, and `sync` publishes them. CI checkouts leave credentials there
(`http.<url>.extraheader = AUTHORIZATION: basic …`, tokens in remote URLs, `credential.helper` scripts
holding a password, `sendemail.smtpPass`). No sandboxed command has a network, so none needs them: each
config file git reads inside the sandbox is shown as a copy, flattened by libgit2 (includes resolved,
so an included file is not read again), in which credential entries are gone and every other value and
section name loses the user part of its URLs and is passed through `store/redact.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pygit2

from pantheon_git.store.redact import redact

# Entries whose value is a credential or leads to one, by (section, name); `None` matches any name.
_DROPPED_SECTIONS = frozenset({"credential", "include", "includeif"})
_DROPPED_NAMES = frozenset({("http", "extraheader"), ("http", "cookiefile"), ("http", "savecookies")})
# A name holding one of these words is a credential (sendemail.smtpPass, hub.oauthtoken, github.token).
_CREDENTIAL_WORDS = ("pass", "token", "secret", "cookie", "auth", "credential", "bearer")
# The user part of a URL (`https://TOKEN@host`, `https://user:password@host`): a sandboxed command has no
# network, so no URL it sees needs one, however short or plain the token in it looks.
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")
# The system config a sandboxed git reads (the /etc the sandbox shows read-only).
SYSTEM_CONFIG = Path("/etc/gitconfig")


def _split(name: str) -> tuple[str, str | None, str]:
    """`http.https://x/.extraheader` -> ("http", "https://x/", "extraheader")."""
    section, _, rest = name.partition(".")
    subsection, dot, key = rest.rpartition(".")
    return section.lower(), (subsection if dot else None), key.lower()


def _is_credential(section: str, key: str) -> bool:
    if section in _DROPPED_SECTIONS or (section, key) in _DROPPED_NAMES:
        return True
    return any(word in key for word in _CREDENTIAL_WORDS)


def _shown(text: str) -> str:
    return redact(_USERINFO.sub("", text))


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def credential_free(path: Path) -> bytes | None:
    """The config file at `path` without credentials, or None when it holds none (shown as it is) or
    cannot be read (then git inside the sandbox fails on it as it would outside)."""
    try:
        entries = list(pygit2.Config(str(path)))
    except (pygit2.GitError, OSError, ValueError):
        return None
    lines: list[str] = []
    header: tuple[str, str | None] | None = None
    changed = False
    for entry in entries:
        section, subsection, key = _split(entry.name)
        if _is_credential(section, key):
            changed = True
            continue
        raw = entry.raw_value
        value = None if raw is None else raw.decode("utf-8", "surrogateescape")
        shown_sub = None if subsection is None else _shown(subsection)
        shown_value = None if value is None else _shown(value)
        changed = changed or shown_sub != subsection or shown_value != value
        if (section, shown_sub) != header:
            header = (section, shown_sub)
            lines.append(f"[{section}]" if shown_sub is None else f"[{section} {_quoted(shown_sub)}]")
        lines.append(f"\t{key}" if shown_value is None else f"\t{key} = {_quoted(shown_value)}")
    if not changed:
        return None
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def hidden_configs(git_dirs: list[Path]) -> dict[Path, bytes]:
    """Config path -> what the sandbox shows there instead, for every config git reads in the sandbox
    (each git dir's `config` and `config.worktree`, and the system's) that holds a credential."""
    found: dict[Path, bytes] = {}
    candidates = [d / name for d in git_dirs for name in ("config", "config.worktree")]
    for path in [*candidates, SYSTEM_CONFIG]:
        if path.is_file() and not path.is_symlink():
            shown = credential_free(path)
            if shown is not None:
                found[path] = shown
    return found
