"""Trace notes: one small JSON note per step commit; long strings are moved out into payload blobs.

A payload blob is stored as a note on itself under refs/notes/pantheon/payloads, which keeps it
reachable (gc keeps it, push carries it) and lets two machines' notes merge without conflict. The trace
refers to it as {"$blob": "<id>", "bytes": N}; `git cat-file -p <id>` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pygit2

from pantheon_git.errors import warn_skipped
from pantheon_git.store.git import parse_oid
from pantheon_git.store.layout import PAYLOADS_NOTES, TRACES_NOTES
from pantheon_git.store.notes import json_object, note_data, read_note, replace_with, set_note, update_notes
from pantheon_git.store.redact import redact_all

# Strings longer than this go to a payload blob; the note keeps the first characters as a preview.
INLINE_LIMIT = 1024
PREVIEW_CHARS = 160


def _externalize(repo: pygit2.Repository, value: Any, blobs: dict[pygit2.Oid, bytes]) -> Any:
    if isinstance(value, str) and len(value) > INLINE_LIMIT:
        data = value.encode()
        blob_id = repo.create_blob(data)
        blobs[blob_id] = data
        return {"$blob": str(blob_id), "bytes": len(data), "preview": value[:PREVIEW_CHARS]}
    if isinstance(value, Mapping):
        return {key: _externalize(repo, item, blobs) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_externalize(repo, item, blobs) for item in value]
    return value


def write_trace(
    repo: pygit2.Repository,
    commit: pygit2.Oid,
    trace: Mapping[str, Any],
    *,
    detail_keys: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Attach `trace`, secrets redacted, as the JSON trace note of `commit`; returns the note as stored.

    The values under `detail_keys` (say, the turn-by-turn record) go whole to one payload blob each, as
    JSON, so the note itself stays a short summary that reads well in `git log --notes`.
    """
    blobs: dict[pygit2.Oid, bytes] = {}
    # Redacted as structured values, before JSON escaping hides a PEM block's line breaks from the rules.
    outline = redact_all(dict(trace))
    for key in detail_keys:
        if key in outline:
            data = json.dumps(outline[key], ensure_ascii=False, indent=1).encode()
            blob_id = repo.create_blob(data)
            blobs[blob_id] = data
            outline[key] = {"$blob": str(blob_id), "bytes": len(data), "json": True}
    stored: dict[str, Any] = _externalize(repo, outline, blobs)  # a mapping comes back a dict
    if blobs:
        # Payloads first: a trace note never points at a blob that is not reachable yet.
        keep = {blob_id: replace_with(data) for blob_id, data in blobs.items()}
        update_notes(repo, PAYLOADS_NOTES, keep, f"pantheon: payloads for {commit}", redacted=True)
    note = json.dumps(stored, indent=1, sort_keys=False, ensure_ascii=False).encode() + b"\n"
    set_note(repo, TRACES_NOTES, commit, note, f"pantheon: trace for {commit}", redacted=True)
    return stored


def _payload(repo: pygit2.Repository, value: dict[str, Any]) -> Any:
    """What a payload reference stands for; the reference itself when the payload is missing or bad."""
    where = f"{PAYLOADS_NOTES} {str(value['$blob'])[:64]}"
    blob_id = parse_oid(str(value["$blob"]))  # JSON keeps ids as hex
    if blob_id is None or blob_id not in repo:
        warn_skipped(where, "no such payload blob")
        return value
    data = note_data(repo, blob_id, where)  # named on stderr when it is no blob or too large
    if data is None:
        return value
    try:
        text = data.decode()
        return json.loads(text) if value.get("json") else text
    except ValueError as bad:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        warn_skipped(where, f"not {'JSON' if value.get('json') else 'UTF-8 text'} ({bad})")
        return value


def _internalize(repo: pygit2.Repository, value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) >= {"$blob", "bytes"}:
            return _payload(repo, value)
        return {key: _internalize(repo, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_internalize(repo, item) for item in value]
    return value


def read_trace(repo: pygit2.Repository, commit: pygit2.Oid, *, expand: bool = False) -> dict[str, Any] | None:
    """The trace note of `commit` (None if it has none); `expand` puts payload blobs back inline."""
    # Another machine's note may be anything: not a JSON object is named on stderr and read as none.
    trace = json_object(read_note(repo, TRACES_NOTES, commit), f"{TRACES_NOTES}:{commit}")
    if trace is None:
        return None
    return _internalize(repo, trace) if expand else trace
