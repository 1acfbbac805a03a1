"""How a call is written: the grammar a turn is decoded under, its parser, and its renderer, per format.

Two formats. JSON (`{"tool": "edit", "args": {...}}`) is the old one. CODE lets code travel as code
(Aider's finding: models write worse code when it is JSON-escaped): a header line `name key=value ...`,
then, for tools that carry code, the code itself as plain lines:

    edit path=src/calc.py
    <<<<<<< SEARCH
    def add(a, b):
    =======
    def add(a: int, b: int):
    >>>>>>> REPLACE

    create path=tests/test_calc.py
    ```python
    from calc import add
    ```

    finish summary="added mul"          (a model with list fields is finished with JSON: finish {...})

Values are bare words or JSON strings. Either way the whole turn is held to a grammar built from the
agent's tools (a Lark grammar for llguidance), so a small model cannot write a malformed call.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from pantheon_git.agents.bounds import integer_rule, string_terminals

SEARCH_OPEN, DIVIDER, REPLACE_CLOSE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
FENCE = "```"


class CallFormat(enum.StrEnum):
    JSON = "json"
    CODE = "code"


class Block(enum.Enum):
    """How a tool's code arguments travel in the CODE format."""

    NONE = "none"
    SEARCH_REPLACE = "search-replace"  # fields `search` and `replace`
    FENCED = "fenced"  # field `content`


DEFAULT_FORMAT = CallFormat.CODE

Spec = tuple[str, type[BaseModel]]  # (call name, its argument model)
# (call name, field) -> the only values that field may take (a path of the worktree, say): a string
# field or the items of a list of strings become an enumeration in the grammar. An empty list is no
# choice at all and leaves the field as it was.
Choices = Mapping[tuple[str, str], Sequence[str]]


def _strip_titles(schema: Any) -> Any:
    """pydantic's schemas carry titles that only cost grammar size."""
    if isinstance(schema, dict):
        return {key: _strip_titles(value) for key, value in schema.items() if key != "title"}
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def args_schema(name: str, args: type[BaseModel], choices: Choices | None = None) -> dict[str, Any]:
    """The JSON schema of a call's arguments, each field `choices` names held to its values."""
    schema = args.model_json_schema()
    for field, prop in schema.get("properties", {}).items():
        values = list((choices or {}).get((name, field), ()))
        if not values:
            continue
        if prop.get("type") == "string":
            prop["enum"] = values
        elif prop.get("type") == "array" and prop.get("items", {}).get("type") == "string":
            prop["items"] = {**prop["items"], "enum": values}
    return schema


def json_schema(calls: Sequence[Spec], choices: Choices | None = None) -> dict[str, Any]:
    """JSON schema of one call: {"tool": <name>, "args": <that tool's arguments>}, any of the calls."""
    options = [
        {
            "type": "object",
            "properties": {"tool": {"const": name}, "args": _strip_titles(args_schema(name, args, choices))},
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
        for name, args in calls
    ]
    return {"anyOf": options}


def block_of(args: type[BaseModel]) -> Block:
    fields = set(args.model_fields)
    if {"search", "replace"} <= fields:
        return Block.SEARCH_REPLACE
    if "content" in fields:
        return Block.FENCED
    return Block.NONE


def _code_fields(block: Block) -> tuple[str, ...]:
    return {Block.NONE: (), Block.SEARCH_REPLACE: ("search", "replace"), Block.FENCED: ("content",)}[block]


def code_fields(args: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a call's arguments that travel as plain lines in the CODE format."""
    return _code_fields(block_of(args))


def _scalar_kind(prop: dict[str, Any]) -> str | None:
    """'string', 'integer' or 'enum' for a field a header can carry as key=value; None otherwise."""
    if "enum" in prop and all(isinstance(value, str) for value in prop["enum"]):
        return "enum"
    if "const" in prop and isinstance(prop["const"], str):
        return "enum"
    kind = prop.get("type")
    return kind if kind in ("string", "integer") else None


def header_fields(
    args: type[BaseModel], schema: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any], bool]] | None:
    """(name, schema, required) of the header's key=value fields; None if some field needs JSON.
    `schema`: the arguments' schema with choices in it (args_schema), by default the model's own."""
    schema = schema or args.model_json_schema()
    code = _code_fields(block_of(args))
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        if name in code:
            continue
        if _scalar_kind(prop) is None:
            return None
        fields.append((name, prop, name in required))
    return fields


def _lark_string(text: str) -> str:
    return json.dumps(text)


MAX_BARE_CHARS = 200  # an unquoted value (a path, a word): longer is never a real one
MAX_SEARCH_LINES = 400  # distinct lines of a file offered as SEARCH alternatives (a bigger file: free)


def _search_choices(files: Mapping[str, str]) -> tuple[list[str], str]:
    """Rules and alternatives that hold an edit to one of `files` and its SEARCH to a run of that
    file's consecutive lines.

    A 270M model copies paths and lines from its examples, and repeats a line it likes; offering only
    windows of the named file's own lines makes the SEARCH text occur in the file by construction.
    """
    marker = re.compile(r"(===|>>>|<<<|```)")  # such a line would end the block early: never offered
    rules, options = [], []
    for index, (path, text) in enumerate(sorted(files.items())):
        lines = text.splitlines()
        if not lines or len(lines) > MAX_SEARCH_LINES:
            continue
        starts = []
        for number, line in enumerate(lines):
            if marker.match(line):
                continue
            name = f"file_{index}_{number}"
            follows = number + 1 < len(lines) and not marker.match(lines[number + 1])
            rest = f" file_{index}_{number + 1}?" if follows else ""
            rules.append(f"{name}: {json.dumps(line + chr(10), ensure_ascii=False)}{rest}")
            starts.append(name)
        if not starts:
            continue
        rules.append(f"file_{index}: {' | '.join(starts)}")
        head = _lark_string(" path=" + _value(path)) + " " + _lark_string(f"\n{SEARCH_OPEN}\n")
        options.append(f"{head} file_{index}")
    return rules, " | ".join(f"({option})" for option in options)


def lark_grammar(
    calls: Sequence[Spec], files: Mapping[str, str] | None = None, choices: Choices | None = None
) -> str:
    """A Lark grammar (llguidance's dialect) for exactly one call in the CODE format.

    With `files` (path -> text, the files the task names), an edit must name one of them and its
    SEARCH lines must be lines of that file. With `choices`, each field they name takes one of its
    values only (written as a header value is: bare, or a JSON string where it must be)."""
    search_rules, search_options = _search_choices(files or {})
    rules = [
        "start: " + " | ".join(f"call_{index}" for index in range(len(calls))),
        # A bare value ends within MAX_BARE_CHARS: a small model that rambles inside a path (seen: 384
        # tokens of `PATH:calc.py:5|1|…` four turns in a row) gets a call that ends and a tool's answer,
        # not a call cut off at max_tokens.
        # Each header field's value is held to the bounds its validator checks (agents/bounds.py).
        # A code line is any line but one that looks like a block marker (so the block always ends
        # unambiguously, and a model writing `>>>>>> REPLACE` with one `>` short is steered to the real one).
        "LINE: /[^\\n]*\\n/ & ~/(===|>>>|<<<|```)[^\\n]*\\n/",
        "lines: LINE*",
        "LANG: /[A-Za-z0-9_+-]+/",
    ]
    values: dict[str, str] = {}  # the definition of a header value's rule or terminal -> its name
    for index, (name, args) in enumerate(calls):
        schema = args_schema(name, args, choices)
        fields = header_fields(args, schema)
        if fields is None:
            body = f"{_lark_string(name + ' ')} %json {json.dumps(_strip_titles(schema))}"
        else:
            parts = [_lark_string(name)]
            for field, prop, required in fields:
                kind = _scalar_kind(prop)
                if kind == "enum":
                    options = prop.get("enum") or [prop["const"]]
                    value = "(" + " | ".join(_lark_string(_value(option)) for option in options) + ")"
                else:
                    value = _value_rule(prop, kind, values)
                part = f"{_lark_string(f' {field}=')} {value}"
                parts.append(part if required else f"({part})?")
            block = block_of(args)
            if block is Block.SEARCH_REPLACE and search_options and [f for f, _, _ in fields] == ["path"]:
                tail = f"{_lark_string(DIVIDER + chr(10))} lines {_lark_string(REPLACE_CLOSE)}"
                parts[1:] = [f"({search_options}) {tail}"]
            elif block is Block.SEARCH_REPLACE:
                parts.append(
                    _lark_string(f"\n{SEARCH_OPEN}\n")
                    + f" lines {_lark_string(DIVIDER + chr(10))} lines {_lark_string(REPLACE_CLOSE)}"
                )
            elif block is Block.FENCED:
                parts.append(f'"\\n{FENCE}" LANG? "\\n" lines "{FENCE}"')
            body = " ".join(parts)
        rules.append(f"call_{index}: {body}")
    defined = [f"{name}: {definition}" for definition, name in values.items()]
    return "\n".join(rules + defined + search_rules) + "\n"


def _value_rule(prop: dict[str, Any], kind: str | None, values: dict[str, str]) -> str:
    """The rule of a header value held to `prop`'s bounds (defined once in `values`, shared)."""
    if kind == "integer":
        return _named("value", integer_rule(prop), values)
    bare, quoted = string_terminals(prop, MAX_BARE_CHARS)
    words = [_named("VALUE", regex, values) for regex in (bare, quoted) if regex is not None]
    return _named("value", " | ".join(words), values)


def _named(prefix: str, definition: str, values: dict[str, str]) -> str:
    if definition not in values:
        values[definition] = f"{prefix}_{sum(name.startswith(prefix + '_') for name in values.values())}"
    return values[definition]


def _scan_header(name: str, rest: str) -> dict[str, Any]:
    """key=value pairs of a header line (values bare or JSON strings)."""
    values: dict[str, Any] = {}
    position = 0
    decoder = json.JSONDecoder()
    while position < len(rest):
        match = re.compile(r" ([A-Za-z_][A-Za-z0-9_]*)=").match(rest, position)
        if not match:
            raise ValueError(f"{name}: expected ` key=value` at {rest[position:][:30]!r}")
        key, position = match.group(1), match.end()
        if rest.startswith('"', position):
            try:
                value, position = decoder.raw_decode(rest, position)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{name}: {key}: bad quoted value ({exc.msg})") from None
        else:
            end = rest.find(" ", position)
            end = len(rest) if end == -1 else end
            value, position = rest[position:end], end
        values[key] = value
    return values


def _take_lines(lines: list[str], position: int, end_marker: str, what: str) -> tuple[str, int]:
    """The text of lines[position:] up to the line `end_marker`, and the index after that marker."""
    for index in range(position, len(lines)):
        if lines[index] == end_marker:
            return "".join(line + "\n" for line in lines[position:index]), index + 1
    raise ValueError(f"{what}: missing the line {end_marker} (was the call cut off?)")


def parse_code(text: str, calls: dict[str, type[BaseModel]]) -> tuple[str, dict[str, Any]]:
    """(name, raw arguments) of a CODE-format call; ValueError with the reason."""
    header, _, body = text.partition("\n")
    name, _, rest = header.partition(" ")
    if name not in calls:
        raise ValueError(f"unknown tool {name!r}; the tools are {', '.join(calls)}")
    args = calls[name]
    fields = header_fields(args)
    if fields is None:
        try:
            data = json.loads(rest + "\n" + body if body else rest)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{name}: expected a JSON object")
        return name, data
    values: dict[str, Any] = _scan_header(name, " " + rest if rest else "")
    for field, prop, _ in fields:
        if field in values and _scalar_kind(prop) == "integer":
            try:
                values[field] = int(values[field])
            except ValueError:
                raise ValueError(f"{name}: {field}: expected a whole number") from None
    block = block_of(args)
    lines = body.split("\n") if body else []
    if block is Block.SEARCH_REPLACE:
        if not lines or lines[0] != SEARCH_OPEN:
            raise ValueError(f"{name}: after the header comes a line {SEARCH_OPEN}")
        values["search"], position = _take_lines(lines, 1, DIVIDER, name)
        values["replace"], position = _take_lines(lines, position, REPLACE_CLOSE, name)
        if position != len(lines):
            raise ValueError(f"{name}: text after {REPLACE_CLOSE}")
    elif block is Block.FENCED:
        if not lines or not lines[0].startswith(FENCE):
            raise ValueError(f"{name}: after the header comes the file in a ``` fenced block")
        values["content"], position = _take_lines(lines, 1, FENCE, name)
        if position != len(lines):
            raise ValueError(f"{name}: text after the closing ```")
    elif body:
        raise ValueError(f"{name}: one line only")
    return name, values


def parse(
    text: str, calls: dict[str, type[BaseModel]], call_format: CallFormat = DEFAULT_FORMAT
) -> tuple[str, BaseModel]:
    """(call name, validated arguments) of a completion in `call_format`, or ValueError with the reason."""
    if call_format is CallFormat.CODE:
        name, raw = parse_code(text, calls)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(data, dict) or set(data) != {"tool", "args"}:
            raise ValueError('a call is {"tool": NAME, "args": {...}}')
        name, raw = data["tool"], data["args"]
        if name not in calls:
            raise ValueError(f"unknown tool {name!r}; the tools are {', '.join(calls)}")
    try:
        return name, calls[name].model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "args"
        raise ValueError(f"{name}: {where}: {first['msg']}") from None


def _value(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return text if re.fullmatch(r'[^\s"][^\s]*', text) else json.dumps(text, ensure_ascii=False)


def _block_text(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def render(
    name: str, args: dict[str, Any], model: type[BaseModel], call_format: CallFormat = DEFAULT_FORMAT
) -> str:
    """A call as the model would write it (for worked examples and past successes)."""
    if call_format is CallFormat.JSON:
        return json.dumps({"tool": name, "args": args}, ensure_ascii=False, separators=(",", ":"))
    fields = header_fields(model)
    if fields is None:
        return f"{name} {json.dumps(args, ensure_ascii=False, separators=(',', ':'))}"
    head = name + "".join(f" {field}={_value(args[field])}" for field, _, _ in fields if field in args)
    block = block_of(model)
    if block is Block.SEARCH_REPLACE:
        return (
            f"{head}\n{SEARCH_OPEN}\n{_block_text(args['search'])}{DIVIDER}\n"
            f"{_block_text(args['replace'])}{REPLACE_CLOSE}"
        )
    if block is Block.FENCED:
        language = "python" if str(args.get("path", "")).endswith(".py") else ""
        return f"{head}\n{FENCE}{language}\n{_block_text(args['content'])}{FENCE}"
    return head


def usage(name: str, model: type[BaseModel], call_format: CallFormat = DEFAULT_FORMAT) -> str:
    """How to write a call to `name`, for the prompt's tool list."""
    schema = model.model_json_schema()
    if call_format is CallFormat.JSON or header_fields(model) is None:
        parts = []
        for field, prop in schema.get("properties", {}).items():
            kind = prop.get("type") or "|".join(json.dumps(v) for v in prop.get("enum", [])) or "value"
            if kind == "array":
                kind = f"list of {prop.get('items', {}).get('type', 'value')}"
            parts.append(f'"{field}": {kind}')
        fields = "{" + ", ".join(parts) + "}"
        return fields if call_format is CallFormat.JSON else f"{name} {fields}"
    words = [name]
    for field, prop, required in header_fields(model) or []:
        kind = _scalar_kind(prop)
        shown = "|".join(prop.get("enum") or [prop.get("const", "")]) if kind == "enum" else field.upper()
        words.append(f"{field}={shown}" if required else f"[{field}={shown}]")
    block = block_of(model)
    if block is Block.SEARCH_REPLACE:
        words.append(f"+ lines {SEARCH_OPEN} / exact old lines / {DIVIDER} / new lines / {REPLACE_CLOSE}")
    elif block is Block.FENCED:
        words.append("+ the whole file in a ``` block")
    return " ".join(words)


def body_grammar() -> str:
    """A function body completed as plain code: indented or blank lines, ended by a line that is not
    (the next top-level statement, which is not kept: raw completion's stop rule). That line is decoded
    to its end: were it only its first character, a token such as `#print` that the model prefers there
    would be masked, and the model would go on with indented lines instead (measured: a right body
    followed by 500 tokens of indented comments); a line left open would never end. The placeholder a
    stub had is not a body (a small model copies what it was just shown). The STOP line is optional:
    the end of the text (the model's end-of-sequence, as at the end of a file) also ends a body, as it ends
    raw completion; an adapter trained on bodies that end the file learns to stop there."""
    return (
        "\n".join(
            [
                "start: BODY+ STOP?",
                "BODY: /([ \\t][^\\n]*)?\\n/ & ~PLACEHOLDER",
                "PLACEHOLDER: /[ \\t]*(raise NotImplemented[^\\n]*|pass[ \\t]*|\\.\\.\\.[ \\t]*)\\n/",
                "STOP: /[^ \\t\\n][^\\n]*\\n/",
            ]
        )
        + "\n"
    )
