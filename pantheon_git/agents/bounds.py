"""The bounds a call's arguments are validated against, held by the CODE call grammar as well.

A call decoded under its grammar is promised to be valid, so every bound pydantic checks on a header
field (`key=value`) has a grammar of its own here: an integer's range (a JSON integer with its
`minimum`/`maximum`, which llguidance turns into an exact regular expression), a string's length (in
characters, bare or quoted) and an anchored pattern. What the grammar cannot hold is named by
`unheld` (a test holds every built-in tool and agent to it), not found out at night: a cross-field rule
(a model or field validator) is to be made structural (a start and a count with a maximum, never a
start and an end), and code that travels as plain lines (SEARCH/REPLACE, a fenced file) carries no
length bound, because llguidance's lexer cannot count characters across lines: `{0,20000}` over lines
ran out of its 250,000 lexer states 4,243 characters in; a turn's `max_tokens` bounds those.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

MAX_INT_DIGITS = 5  # an integer with no maximum is at most this long in the grammar (the old INT)
HELD_INTEGER = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "default"}
HELD_STRING = {"type", "minLength", "maxLength", "pattern", "default"}
HELD_ENUM = {"enum", "const", "type", "default"}
# A JSON string's characters, one per repetition: a plain character, a simple escape, or a \u escape
# of a character that is not half a surrogate pair (pydantic refuses a lone surrogate, and a pair is
# two repetitions that make one character, so a pair is not offered; the character itself is).
QUOTED_CHAR = (
    '([^"\\\\\\x00-\\x1f]|\\\\["\\\\\\/bfnrt]|\\\\u([0-9a-ce-fA-CE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))'
)


def integer_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an integer header field with its range made closed and finite."""
    low = prop.get("minimum", 0)
    if "exclusiveMinimum" in prop:
        low = max(low, prop["exclusiveMinimum"] + 1)
    high = prop.get("maximum", 10**MAX_INT_DIGITS - 1)
    if "exclusiveMaximum" in prop:
        high = min(high, prop["exclusiveMaximum"] - 1)
    return {"type": "integer", "minimum": low, "maximum": high}


def integer_rule(prop: dict[str, Any]) -> str:
    """A Lark rule body (llguidance's `%json`) for exactly the integers `prop` allows."""
    return f"%json {json.dumps(integer_schema(prop), sort_keys=True)}"


def _repeat(low: int, high: int | None) -> str:
    return f"{{{low},}}" if high is None else f"{{{low},{high}}}"


def string_terminals(prop: dict[str, Any], bare_max: int) -> tuple[str, str | None]:
    """(bare, quoted) regular expressions for a string header field: a bare word of at most `bare_max`
    characters and a JSON string, each held to the field's length; quoted is None for a field with a
    pattern (the pattern then applies to the word as written)."""
    low, high = prop.get("minLength", 0), prop.get("maxLength")
    bare_high = bare_max if high is None else min(high, bare_max)
    bare = f'/[^\\s"][^\\s]{_repeat(max(low, 1) - 1, bare_high - 1)}/'
    if "pattern" in prop and _anchored(prop["pattern"]):
        return f"{bare} & /{prop['pattern'][1:-1].replace('/', chr(92) + '/')}/", None
    return bare, f'/"{QUOTED_CHAR}{_repeat(low, high)}"/'


def _anchored(pattern: str) -> bool:
    """Whether a pattern (which pydantic searches for) is anchored at both ends, so that llguidance's
    whole-match regex is the same test; one that is not is left out of the grammar (and `unheld`)."""
    return pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")


def unheld(model: type[BaseModel], code_fields: tuple[str, ...] = ()) -> list[str]:
    """What `model` is validated against that the call grammar cannot hold ([] when everything is held).

    `code_fields` travel as plain lines in the CODE format: a length bound on them is not held."""
    problems = []
    decorators = model.__pydantic_decorators__
    for kind in ("model_validators", "field_validators", "root_validators", "validators"):
        for name in getattr(decorators, kind, {}):
            problems.append(
                f"{model.__name__}.{name}: a validator the grammar cannot see; make it structural"
            )
    schema = model.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        if name in code_fields:
            extra = {"minLength", "maxLength", "pattern"} & set(prop)
            if extra:
                problems.append(f"{model.__name__}.{name}: {', '.join(sorted(extra))} on code sent as lines")
            continue
        kind = prop.get("type")
        if "enum" in prop or "const" in prop:
            allowed = HELD_ENUM
        elif kind == "integer":
            allowed = HELD_INTEGER
        elif kind == "string":
            allowed = HELD_STRING
            if "pattern" in prop and not _anchored(prop["pattern"]):
                problems.append(f"{model.__name__}.{name}: pattern not anchored with ^ and $")
        else:
            continue  # a field that needs JSON: the whole call is held by llguidance's JSON schema
        extra = set(prop) - allowed - {"description", "title", "examples"}
        if extra:
            problems.append(f"{model.__name__}.{name}: {', '.join(sorted(extra))} is not held by the grammar")
    return problems
