"""The task spec: one pydantic model, TOML on disk, and error messages that name the file, line and field."""

from __future__ import annotations

import ast
import base64
import hashlib
import keyword
import os
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pantheon_git.schema.document import parse_toml, validate
from pantheon_git.store.layout import RESERVED_IDS, TASK_ID_RE

NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Limits(_Strict):
    """How much the night may spend on one task."""

    max_attempts: int = Field(default=2, ge=1, le=20)
    max_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # Best-of-N: up to this many attempts in one night, each with its own seed, stopping at the first
    # that passes the gate; None: the config's `[night] samples`.
    samples: int | None = Field(default=None, ge=1, le=64)


# A leading '-', whitespace (what str.isspace() calls whitespace: \s) or a control character; one regex
# search instead of a loop per character, since every spec of the queue is validated when listed.
_BAD_BASE = re.compile(r"^-|[\s\x00-\x1f]")


class Created(_Strict):
    """Who queued the spec, and when (UTC)."""

    author: NonEmpty
    at: datetime

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Spec(_Strict):
    """A unit of night work: what to do, how to tell it is done, and where to start from."""

    id: str | None = None
    title: Annotated[str, Field(min_length=1, max_length=200)]
    scope: str = ""
    acceptance: Annotated[list[NonEmpty], Field(min_length=1)]
    flow: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "default"
    base: str | None = None
    priority: int = Field(default=0, ge=-1000, le=1000)
    labels: list[NonEmpty] = Field(default_factory=list)
    # Files the agents are shown with line numbers without asking (paths relative to the repository).
    files: Annotated[list[NonEmpty], Field(max_length=20)] = Field(default_factory=list)
    # The function the task adds, when it does not exist yet: the night places its stub (agents/placement.py)
    # and the implementer completes the body. `def mul(a: int, b: int) -> int`, `calc.mul(a, b)`,
    # `Calculator.mul(self, x)`; without a module, the acceptance checks, `files` or the title say which.
    signature: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    limits: Limits = Field(default_factory=Limits)
    created: Created | None = None

    @field_validator("base")
    @classmethod
    def _valid_base(cls, value: str | None) -> str | None:
        # A base reaches git command lines (`git diff BASE`): one starting with '-' would be an option.
        if value is not None and (not value or _BAD_BASE.search(value)):
            raise ValueError("must be a branch or commit name (no leading '-', no spaces)")
        return value

    @field_validator("signature")
    @classmethod
    def _valid_signature(cls, value: str | None) -> str | None:
        if value is not None:
            split_signature(value)
        return value

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = path.replace("\\", "/").split("/")
            if path.startswith(("/", "~")) or ".." in parts or parts[0] == ".git":
                raise ValueError(f"{path!r}: give a path inside the repository (no '/', '~', '..' or .git)")
        return value

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not TASK_ID_RE.match(value):
            raise ValueError("must be 2-40 characters of a-z, 0-9 and '-', starting with a letter or digit")
        if value in RESERVED_IDS:
            raise ValueError(f"'{value}' is reserved for pantheon's own refs")
        return value

    def to_toml(self) -> str:
        data = self.model_dump(exclude_none=True)
        ordered = {key: data[key] for key in _FIELD_ORDER if key in data}
        return tomli_w.dumps(ordered, multiline_strings=True)


# The order fields appear in a spec file: identity first, the work next, bookkeeping last.
_FIELD_ORDER = (
    "id",
    "title",
    "flow",
    "base",
    "priority",
    "labels",
    "scope",
    "files",
    "signature",
    "acceptance",
    "limits",
    "created",
)


_QUALIFIED = re.compile(r"(?:async\s+)?(?:def\s+)?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(\(.*)", re.ASCII)
_SIGNATURE_FORM = "write it as a def line: `def mul(a: int, b: int) -> int` or `Calculator.mul(self, x)`"


def split_signature(text: str) -> tuple[list[str], str]:
    """A `signature` field as (the parts of its dotted name, what follows the name in its def line):
    `def calc.mul(a: int, b) -> int:` gives (["calc", "mul"], "(a: int, b) -> int"). ValueError (the
    reason, one line) for anything that is not one function's signature."""
    line = text.strip().removesuffix(":").rstrip()
    match = _QUALIFIED.fullmatch(line) if "\n" not in line else None
    if match is None:
        raise ValueError(_SIGNATURE_FORM)
    parts, rest = match.group(1).split("."), match.group(2)
    if any(keyword.iskeyword(part) for part in parts):
        raise ValueError(f"{match.group(1)!r} is not a function name; {_SIGNATURE_FORM}")
    try:
        tree = ast.parse(f"def {parts[-1]}{rest}:\n    pass\n")
    except SyntaxError as error:
        raise ValueError(f"not a Python signature ({error.msg}); {_SIGNATURE_FORM}") from None
    only = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(only, ast.FunctionDef) or len(only.body) != 1 or not isinstance(only.body[0], ast.Pass):
        raise ValueError(f"one function's signature only; {_SIGNATURE_FORM}")
    return parts, rest


def new_task_id(spec: Spec) -> str:
    """A short id, fixed once at queue time: 8 base32 characters of a hash of the spec and a nonce."""
    digest = hashlib.sha256(spec.model_dump_json().encode() + os.urandom(16)).digest()
    return base64.b32encode(digest).decode().lower()[:8]


def stamp(spec: Spec, *, author: str, base: str, now: datetime | None = None) -> Spec:
    """The spec as it is queued: id, base and created filled in where the author left them out."""
    # Full precision: "oldest first" must order specs queued within the same second too.
    created = spec.created or Created(author=author, at=now or datetime.now(UTC))
    filled = spec.model_copy(update={"created": created, "base": spec.base or base})
    if filled.id is None:
        filled = filled.model_copy(update={"id": new_task_id(filled)})
    return filled


def parse_spec(text: str, source: str) -> Spec:
    """Parse and validate one spec; raise PantheonError with `source:line: field: reason` on bad input."""
    return validate_spec(parse_toml(text, source), source, text)


# The one field whose generic message would not tell a person what to write.
_REASONS = {
    ("acceptance", "too_short"): "needs at least one check (a shell command that must exit 0 in the "
    "task's worktree)"
}


def validate_spec(data: dict[str, Any], source: str, text: str = "") -> Spec:
    return validate(Spec, data, source, text, reasons=_REASONS)
