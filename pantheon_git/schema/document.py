"""One way to read and validate the TOML files people write, and one error format for all of them.

Every refusal is one line, `file:line: field: reason`: the line where it can be found, the field as a
dotted path, the reason in words that say what to do. Spec, flow, config and models all come here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pantheon_git.errors import PantheonError

Model = TypeVar("Model", bound=BaseModel)
# Special wording for a (field, pydantic error type), where the generic message would not help.
Reasons = dict[tuple[str, str], str]


def read_text(path: Path, source: str) -> str:
    """The file as UTF-8 text, or one line saying why not."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise PantheonError(f"{source}: no such file") from None
    except UnicodeDecodeError as exc:
        raise PantheonError(f"{source}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise PantheonError(f"{source}: cannot read: {exc.strerror}") from None


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document as a dict, or `source:line:column: invalid TOML: reason`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        reason = re.sub(r"\s*\(at line.*\)", "", str(exc))
        where = f"{source}:{match.group(1)}:{match.group(2)}" if match else source
        raise PantheonError(f"{where}: invalid TOML: {reason}") from None


def validate(
    model: type[Model],
    data: Any,
    source: str,
    text: str = "",
    *,
    prefix: Sequence[str] = (),
    reasons: Reasons | None = None,
    name_field: Callable[[list[str]], str] | None = None,
) -> Model:
    """`model` validated from `data`, or PantheonError with the first problem as one line.

    `prefix` is where `data` sits in the file (e.g. models.NAME); `name_field` may rename a field path
    for people (a flow's `nodes.2.agent` reads better as `node review: agent`).
    """
    if not isinstance(data, dict):
        line = line_of(text, list(prefix))
        where = f"{source}:{line}" if line else source
        raise PantheonError(f"{where}: {'.'.join(prefix) or '(top level)'}: expected a table")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PantheonError(
            describe(exc, model, source, text=text, prefix=prefix, reasons=reasons, name_field=name_field)
        ) from None


def describe(
    exc: ValidationError,
    model: type[BaseModel],
    source: str,
    *,
    text: str = "",
    prefix: Sequence[str] = (),
    reasons: Reasons | None = None,
    name_field: Callable[[list[str]], str] | None = None,
) -> str:
    """The first validation error as one line: `file:line: field: reason` (line when it can be found)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    full = [*prefix, *loc]
    field = name_field(loc) if name_field else ".".join(full) or "(top level)"
    kind = error["type"]
    special = (reasons or {}).get((".".join(loc), kind))
    if special:
        reason = special
    elif kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        reason = f"unknown field (known: {', '.join(known)})" if known else "unknown field"
    elif kind == "missing":
        reason = "required field is missing"
    else:
        reason = error["msg"][0].lower() + error["msg"][1:]
        reason = reason.removeprefix("value error, ")
    line = line_of(text, [part for part in full if not part.isdigit()])
    where = f"{source}:{line}" if line else source
    if len(exc.errors()) > 1:
        reason += f" (and {len(exc.errors()) - 1} more)"
    return f"{where}: {field}: {reason}"


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    for part in loc:
        if part.isdigit():
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        inner = [a for arg in args for a in (arg, *getattr(arg, "__args__", ()))]
        current = next((arg for arg in (annotation, *args, *inner) if hasattr(arg, "model_fields")), None)
        if current is None:
            return []
    return list(current.model_fields)


def line_of(text: str, keys: list[str]) -> int | None:
    """Best-effort line number of a (possibly nested) key in TOML source, for error messages."""
    if not text or not keys:
        return None
    lines = text.splitlines()
    table = ".".join(keys[:-1])
    in_table = not table
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?$", line)
        if header:
            in_table = header.group(1) == table
            continue
        if in_table and re.match(rf"^\"?{re.escape(keys[-1])}\"?\s*=", line):
            return number
        dotted = ".".join(keys)
        if re.match(rf"^{re.escape(dotted)}\s*=", line):
            return number
    for name in (".".join(keys), table):  # the key is a table itself, or the error is on its table
        for number, raw in enumerate(lines, 1):
            if name and re.match(rf"^\[\[?\s*{re.escape(name)}\s*\]\]?$", raw.strip()):
                return number
    return None
