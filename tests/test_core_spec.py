"""The spec schema: what validates, what is refused, and how the refusal reads."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.schema.spec import parse_spec, stamp
from tests.conftest import REPO_ROOT

GOOD = 'title = "Add a greeting"\nacceptance = ["test -f hello.txt"]\n'


def refusal(text: str) -> str:
    with pytest.raises(PantheonError) as caught:
        parse_spec(text, "spec.toml")
    return str(caught.value)


def test_minimal_spec_gets_defaults() -> None:
    spec = parse_spec(GOOD, "spec.toml")
    assert spec.flow == "default"
    assert spec.priority == 0
    assert spec.limits.max_attempts == 2
    assert spec.id is None and spec.created is None


def test_template_documents_every_field_and_validates() -> None:
    text = (REPO_ROOT / "templates" / "spec.toml").read_text()
    spec = parse_spec(text, "templates/spec.toml")
    for name in (
        "id",
        "title",
        "scope",
        "acceptance",
        "flow",
        "base",
        "priority",
        "labels",
        "limits",
        "created",
    ):
        assert f"# {name}" in text or f"[{name}]" in text or f"{name} =" in text, name
    assert spec.acceptance


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('title = "x"\nacceptance = []\n', "spec.toml:2: acceptance: needs at least one check"),
        (GOOD + "colour = 1\n", "spec.toml:3: colour: unknown field (known: id, title"),
        ('acceptance = ["true"]\n', "spec.toml: title: required field is missing"),
        (GOOD + 'priority = "high"\n', "spec.toml:3: priority: input should be a valid integer"),
        (
            GOOD + "[limits]\nmax_attempts = 0\n",
            "spec.toml:4: limits.max_attempts: input should be greater than",
        ),
        (GOOD + "[limits]\nretries = 3\n", "spec.toml:4: limits.retries: unknown field (known: max_attempts"),
        (GOOD + "[limits]\nsamples = 0\n", "spec.toml:4: limits.samples: input should be greater than"),
        ('title = "x\nacceptance = ["true"]\n', "spec.toml:1:11: invalid TOML"),
        (GOOD + 'id = "Bad Id"\n', "spec.toml:3: id: must be 2-40 characters"),
        (GOOD + 'id = "tasks"\n', "spec.toml:3: id: 'tasks' is reserved"),
        (
            'title = "x"\nacceptance = [""]\n',
            "spec.toml:2: acceptance.0: string should have at least 1 character",
        ),
    ],
)
def test_bad_specs_are_refused_with_one_clear_line(text: str, expected: str) -> None:
    message = refusal(text)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_stamp_fills_id_base_and_created_once() -> None:
    spec = parse_spec(GOOD, "spec.toml")
    now = datetime(2026, 11, 23, 22, 0, 5, 123, tzinfo=UTC)
    stamped = stamp(spec, author="Ada <ada@example.com>", base="main", now=now)
    assert stamped.id and len(stamped.id) == 8
    assert stamped.base == "main"
    assert stamped.created is not None and stamped.created.at == now
    # Stamping again keeps what is there: ids are stable.
    assert stamp(stamped, author="Other <o@x>", base="dev") == stamped


def test_toml_round_trip_is_exact() -> None:
    spec = stamp(
        parse_spec(GOOD + 'scope = """\nline one\nline two\n"""\n', "s"), author="A <a@b>", base="main"
    )
    text = spec.to_toml()
    assert parse_spec(text, "again") == spec
    assert list(tomllib.loads(text))[:2] == ["id", "title"]
