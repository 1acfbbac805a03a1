"""A call held to its grammar is valid: every bound a tool's arguments (and a built-in agent's finish)
are validated against is held by the call grammar, in both call formats.

The grammars are checked byte by byte with llguidance under a 256-byte vocabulary, so no model is
loaded: calls are sampled at random under the grammar (each must pass the validator), and each header
field's bounds are probed at their edges (in bounds: the grammar and the validator accept it; out of
bounds: the grammar refuses it, as the validator does)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, ClassVar

import llguidance
import numpy as np
import pytest
from pydantic import BaseModel

from pantheon_git.agents import calls
from pantheon_git.agents.bounds import integer_schema, unheld
from pantheon_git.agents.builtin import BUILTIN_AGENTS
from pantheon_git.agents.calls import CallFormat
from pantheon_git.tools.builtin import TOOLS

EOS = 256
# Every tool, and the finish of each built-in agent (a call like any other).
CALLS: dict[str, tuple[str, type[BaseModel]]] = {name: (name, tool.args) for name, tool in TOOLS.items()}
CALLS |= {f"finish-{agent.name}": ("finish", agent.output) for agent in BUILTIN_AGENTS.values()}


class _Vocabulary:
    """The 256 bytes, an end-of-sequence token and the block markers as tokens of their own (as a real
    vocabulary has merges): llguidance then checks text exactly, and a random walk can close a block."""

    eos_token_id = EOS
    bos_token_id = None
    special_token_ids: ClassVar[list[int]] = [EOS]
    words: ClassVar[list[bytes]] = [b"\n```", b"=======\n", b">>>>>>> REPLACE", b"<<<<<<< SEARCH\n", b"\n"]
    tokens: ClassVar[list[bytes]] = [bytes([byte]) for byte in range(256)] + [b"<eos>"] + words

    def __call__(self, text: bytes | str) -> list[int]:
        return list(text if isinstance(text, bytes) else text.encode())


TOKENIZER = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Vocabulary()), slices=[])
TOKENS = _Vocabulary.tokens


def _grammar(name: str, model: type[BaseModel], call_format: CallFormat) -> str:
    if call_format is CallFormat.CODE:
        return llguidance.LLMatcher.grammar_from_lark(calls.lark_grammar([(name, model)]))
    schema = json.dumps(calls.json_schema([(name, model)]))
    return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})


def _matcher(grammar: str) -> llguidance.LLMatcher:
    matcher = llguidance.LLMatcher(TOKENIZER, grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return matcher


def accepts(grammar: str, text: str) -> bool:
    """Whether the grammar lets a model write exactly `text` and stop there."""
    matcher = _matcher(grammar)
    return all(matcher.consume_token(byte) for byte in text.encode()) and matcher.is_accepting()


def validates(name: str, model: type[BaseModel], text: str, call_format: CallFormat) -> bool:
    try:
        calls.parse(text, {name: model}, call_format)
    except ValueError:
        return False
    return True


STRUCTURE = {*b' "\n{}[],:=`<>-0123456789', *range(EOS + 1, len(TOKENS))}


def sample(grammar: str, rng: random.Random, max_bytes: int) -> str | None:
    """A random text the grammar accepts (None if it ran past `max_bytes`): random allowed tokens, with
    a lean towards those that end values, blocks and calls, so that short and long ones both come up."""
    matcher, out = _matcher(grammar), bytearray()
    while len(out) < max_bytes:
        bits = np.unpackbits(np.frombuffer(bytes(matcher.compute_bitmask()), np.uint8), bitorder="little")
        allowed = [int(token) for token in np.flatnonzero(bits[: len(TOKENS)])]
        if EOS in allowed and rng.random() < 0.1:
            return out.decode()
        structural = [token for token in allowed if token in STRUCTURE]
        token = rng.choice(structural if structural and rng.random() < 0.3 else allowed)
        if token == EOS:
            return out.decode()
        assert matcher.consume_token(token)
        out += TOKENS[token]
    return None


@pytest.mark.parametrize("call_format", list(CallFormat))
@pytest.mark.parametrize("which", sorted(CALLS))
def test_every_call_the_grammar_can_write_is_valid(which: str, call_format: CallFormat) -> None:
    name, model = CALLS[which]
    grammar, rng = _grammar(name, model, call_format), random.Random(f"{which}-{call_format}")
    written = [text for text in (sample(grammar, rng, 2000) for _ in range(80)) if text is not None]
    assert len(written) >= 10  # enough complete calls came out to mean something
    refused = [text for text in written if not validates(name, model, text, call_format)]
    assert refused == [], [calls.parse(text, {name: model}, call_format) for text in refused[:1]]


def _header_fields() -> list[Any]:
    found = []
    for which, (_, model) in sorted(CALLS.items()):
        for field, prop, _ in calls.header_fields(model) or []:
            if calls._scalar_kind(prop) in ("integer", "string"):
                found.append(pytest.param(which, field, prop, id=f"{which}-{field}"))
    return found


def _minimal(model: type[BaseModel]) -> dict[str, Any]:
    """Valid values of a call's required fields (code fields included)."""
    values: dict[str, Any] = {}
    for field, prop, required in calls.header_fields(model) or []:
        if required:
            kind = calls._scalar_kind(prop)
            values[field] = (
                integer_schema(prop)["minimum"]
                if kind == "integer"
                else (prop.get("enum") or [prop.get("const")])[0]
                if kind == "enum"
                else "x" * max(1, prop.get("minLength", 0))
            )
    values |= {field: "" for field in ("search", "content") if field in model.model_fields}
    values |= {"replace": "y\n"} if "replace" in model.model_fields else {}
    return values


def _edge_values(prop: dict[str, Any]) -> list[tuple[Any, str]]:
    """(value, how it is written) at and past the bounds of a header field."""
    if prop.get("type") == "integer":
        low, high = prop.get("minimum"), prop.get("maximum")
        numbers = {0, 1, 99_999, 100_000, 10**6 + 1}
        numbers |= {low - 1, low, low + 1} if low is not None else set()
        numbers |= {high - 1, high, high + 1} if high is not None else set()
        return [(number, str(number)) for number in sorted(numbers)]
    low, high = prop.get("minLength", 0), prop.get("maxLength", 300)
    edges = []
    for length in sorted({0, 1, max(0, low - 1), low, high - 1, high, high + 1}):
        text = "a" * length
        edges += [(text, text), (text, json.dumps(text))]
        if length:
            escaped = json.dumps("é" + "a" * (length - 1), ensure_ascii=True)  # \u00e9: six bytes, one char
            edges.append((json.loads(escaped), escaped))
    return edges


@pytest.mark.parametrize(
    ("which", "field", "prop"), _header_fields(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_header_bounds_are_held_by_the_grammar_at_their_edges(
    which: str, field: str, prop: dict[str, Any]
) -> None:
    name, model = CALLS[which]
    grammar = _grammar(name, model, CallFormat.CODE)
    held = []
    for value, written in _edge_values(prop):
        call = calls.render(name, _minimal(model) | {field: value}, model, CallFormat.CODE)
        call = call.replace(f" {field}={calls._value(value)}", f" {field}={written}", 1)
        if written == "":
            continue  # an empty bare value is not a value
        valid = validates(name, model, call, CallFormat.CODE)
        # Past what the grammar offers any value (5 digits, a bare word of 200 characters), a valid
        # value may be refused by the grammar; nowhere may the grammar accept what validation refuses.
        capped = not 0 <= value < 10**5 if isinstance(value, int) else value == written and len(value) > 200
        held.append((written[:12], len(str(value)), accepts(grammar, call), valid, capped))
    assert [row for row in held if row[2] and not row[3]] == []  # the grammar writes nothing invalid
    assert [row for row in held if row[3] and not row[4] and not row[2]] == []  # nor refuses the valid


def test_view_cannot_be_written_with_more_lines_than_it_shows() -> None:
    """The planner wrote `view ... lines=` over 100 four times running and was refused each time."""
    grammar = _grammar("view", TOOLS["view"].args, CallFormat.CODE)
    assert accepts(grammar, "view path=src/calc.py start=1 lines=100")
    for call in ["view path=src/calc.py lines=101", "view path=a.py lines=0", "view path=a.py start=0"]:
        assert not accepts(grammar, call), call
        assert not validates("view", TOOLS["view"].args, call, CallFormat.CODE)


def test_a_quoted_value_is_never_half_a_surrogate_pair() -> None:
    grammar = _grammar("read_file", TOOLS["read_file"].args, CallFormat.CODE)
    assert accepts(grammar, 'read_file path="caf\\u00e9.py"')
    assert not accepts(grammar, 'read_file path="\\ud800.py"')  # pydantic refuses a lone surrogate
    assert not validates("read_file", TOOLS["read_file"].args, 'read_file path="\\ud800.py"', CallFormat.CODE)


@pytest.mark.parametrize("which", sorted(CALLS))
def test_nothing_a_call_is_validated_against_is_out_of_the_grammars_reach(which: str) -> None:
    _, model = CALLS[which]
    code = calls.code_fields(model)
    assert unheld(model, code) == []


def test_what_the_grammar_cannot_hold_is_named() -> None:
    from pydantic import ConfigDict, Field, model_validator

    class Span(BaseModel):
        model_config = ConfigDict(extra="forbid")
        start: int = Field(ge=1)
        end: int = Field(ge=1, multiple_of=2)
        path: str = Field(pattern="[a-z]+")

        @model_validator(mode="after")
        def _ordered(self) -> Span:
            return self

    problems = unheld(Span)
    assert any("_ordered" in problem and "structural" in problem for problem in problems)
    assert any("end: multipleOf" in problem for problem in problems)
    assert any("path: pattern not anchored" in problem for problem in problems)

    class Word(BaseModel):
        word: str = Field(pattern="^[a-z]{1,8}$")

    assert unheld(Word) == []
    grammar = _grammar("word", Word, CallFormat.CODE)
    assert accepts(grammar, "word word=abc") and not accepts(grammar, "word word=ABC")
    assert not accepts(grammar, 'word word="abc"')  # a pattern holds the word as written: bare only


SUMMARY_AGENT = """
from pydantic import BaseModel, ConfigDict, Field{imports}

from pantheon_git.agents.spec import AgentSpec


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str = Field(max_length=200{pattern})
{validator}

SUMMARIZER = AgentSpec(name="summarizer", version="1", role="You summarise.", output=Summary)
"""
VALIDATOR = """
    @model_validator(mode="after")
    def _short(self):
        return self
"""


@pytest.mark.parametrize(
    ("pattern", "validator", "reason"),
    [
        ("", VALIDATOR, "Summary._short: a validator the grammar cannot see; make it structural"),
        (', pattern="[a-z ]+"', "", "Summary.summary: pattern not anchored with ^ and $"),
    ],
)
def test_a_repository_agent_whose_output_the_grammar_cannot_hold_is_refused_when_it_loads(
    tmp_path: Path, pattern: str, validator: str, reason: str
) -> None:
    from pantheon_git.agents.registry import agents
    from pantheon_git.errors import PantheonError

    folder = tmp_path / ".pantheon" / "agents"
    folder.mkdir(parents=True)
    imports = ", model_validator" if validator else ""
    (folder / "summary.py").write_text(
        SUMMARY_AGENT.format(imports=imports, pattern=pattern, validator=validator)
    )
    with pytest.raises(PantheonError) as refused:
        agents(tmp_path)
    assert str(refused.value) == (
        f".pantheon/agents/summary.py: agent summarizer: {reason} (its finish call is validated against it, "
        "but its grammar cannot hold it)"
    )
    (folder / "summary.py").write_text(SUMMARY_AGENT.format(imports="", pattern="", validator=""))
    assert agents(tmp_path)["summarizer"].output.__name__ == "Summary"  # bounded, anchored: held
