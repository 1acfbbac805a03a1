"""Flows: parsing, graph validation with one-line errors, order, `when`, and the CLI that checks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pantheon_git.errors import PantheonError
from pantheon_git.schema.flow import evaluate_condition, parse_duration, parse_flow, topological_order
from tests.conftest import pantheon
from tests.test_night import DEFAULT_NODES

AGENTS = {"planner", "implementer", "reviewer", "place", "acceptance", "checks", "gate"}


def flow(text: str):
    return parse_flow(text, "flows/x.toml", AGENTS)


def refusal(text: str) -> str:
    with pytest.raises(PantheonError) as caught:
        flow(text)
    return str(caught.value)


def test_default_template_is_valid_and_ordered() -> None:
    text = (Path(__file__).parent.parent / "templates" / "flows" / "default.toml").read_text()
    parsed = flow(text)
    # The night's steps, less the baseline it runs before the first node.
    assert [node.id for node in topological_order(parsed)] == DEFAULT_NODES[1:]


def test_order_follows_inputs_not_file_order() -> None:
    parsed = flow(
        '[[nodes]]\nid = "b"\nagent = "gate"\ninputs = ["a"]\n[[nodes]]\nid = "a"\nagent = "planner"\n'
    )
    assert [node.id for node in topological_order(parsed)] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[nodes]]\nid = "a"\nagent = "wizard"\n',
            "flows/x.toml: node a: unknown agent 'wizard' (known: acceptance",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\ninputs = ["zz"]\n',
            "node a: input 'zz' is not a node of this flow",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\ninputs = ["b"]\n[[nodes]]\nid = "b"\nagent = "gate"\n'
            'inputs = ["a"]\n',
            "flows/x.toml: the nodes a -> b form a cycle",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\n[[nodes]]\nid = "a"\nagent = "gate"\n',
            "node a: duplicate node id",
        ),
        (
            'output = "nope"\n[[nodes]]\nid = "a"\nagent = "planner"\n',
            "flows/x.toml: output: 'nope' is not a node",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\ncolour = 1\n',
            "flows/x.toml:4: node a: colour: unknown field",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\ntimeout = "soon"\n',
            "flows/x.toml:4: node a: timeout: 'soon' is not",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\ntimeout = 0\n',
            "flows/x.toml:4: node a: timeout: must be more than 0 seconds",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\n[[nodes]]\nid = "b"\nagent = "gate"\nwhen = "a.ok"\n',
            "node b: when: refers to 'a', which is not among its inputs",
        ),
        ('[[nodes]]\nid = "a"\nagent = "planner"\nwhen = "import os"\n', "node a: when: 'import os' is not"),
        ("nodes = []\n", "flows/x.toml:1: nodes: list should have at least 1 item"),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\n[[nodes]]\nid = "t"\nagent = "acceptance"\n'
            'repair = "a"\n',
            "node t: repair: 'a' is not among its inputs",
        ),
        (
            '[[nodes]]\nid = "a"\nagent = "planner"\ntemperature = -1\n',
            "flows/x.toml:4: node a: temperature: input should be greater than or equal to 0",
        ),
        (
            '[[nodes]]\nid = "t"\nagent = "acceptance"\nrepairs = 9\n',
            "flows/x.toml:4: node t: repairs: input should be less than or equal to 5",
        ),
        ('[[nodes]\nid = "a"\n', "flows/x.toml:1:8: invalid TOML"),
    ],
)
def test_bad_flows_are_refused_with_the_node_and_reason(text: str, expected: str) -> None:
    message = refusal(text)
    assert expected in message, message
    assert "\n" not in message


PLAN = '[[nodes]]\nid = "a"\nagent = "planner"\n'
GATE = '[[nodes]]\nid = "g"\nagent = "gate"\ninputs = ["a"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PLAN, "flows/x.toml: nodes: no gate node"),
        ('output = "a"\n' + PLAN + GATE, "flows/x.toml: output: 'a' is not a gate node"),
        (PLAN + GATE + GATE.replace('"g"', '"h"'), "flows/x.toml: output: several gate nodes"),
        (
            PLAN + GATE + '[[nodes]]\nid = "late"\nagent = "reviewer"\ninputs = ["g"]\n',
            "node late: takes input",
        ),
        (
            PLAN + GATE + '[[nodes]]\nid = "stray"\nagent = "reviewer"\n',
            "node stray: does not lead to the gate",
        ),
        (
            PLAN + GATE.replace('inputs = ["a"]', 'inputs = ["a"]\nwhen = "a.ok"'),
            "node g: the gate that ends",
        ),
    ],
)
def test_a_flow_must_end_in_a_gate_every_node_leads_to(text: str, expected: str) -> None:
    message = refusal(text)
    assert expected in message, message
    assert "\n" not in message


def test_queue_refuses_a_flow_without_a_gate(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "flows" / "endless.toml").write_text(PLAN)
    checked = pantheon(repo_dir, "flow", "check", "endless")
    assert checked.returncode == 2
    assert (
        checked.stderr.strip()
        == "git pantheon flow: .pantheon/flows/endless.toml: nodes: no gate node "
        + ('(add one with agent = "gate" as the last node)')
    )
    queued = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "endless")
    assert queued.returncode == 2 and "endless.toml: nodes: no gate node" in queued.stderr
    assert pantheon(repo_dir, "list").stdout.startswith("no tasks")


def test_when_conditions_are_parsed_not_evaluated() -> None:
    outputs = {"test": {"passed": False, "results": []}, "review-a": {"verdict": "approve"}}
    assert evaluate_condition("not test.passed", outputs)
    assert not evaluate_condition("test.passed", outputs)
    assert evaluate_condition('review-a.verdict == "approve"', outputs)
    assert evaluate_condition("test.passed != true", outputs)
    assert not evaluate_condition("missing.field", outputs)
    assert parse_duration("20m") == 1200 and parse_duration("1.5h") == 5400 and parse_duration(90) == 90


def test_flow_check_and_queue_refuse_a_broken_flow(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    good = pantheon(repo_dir, "flow", "check")
    assert good.returncode == 0 and good.stdout.startswith("default: ok (place -> plan -> implement -> test")
    (repo_dir / ".pantheon" / "flows" / "broken.toml").write_text(
        '[[nodes]]\nid = "a"\nagent = "planner"\ninputs = ["ghost"]\n'
    )
    bad = pantheon(repo_dir, "flow", "check", "broken")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "git pantheon flow: .pantheon/flows/broken.toml: node a: input 'ghost' is not a node of this flow"
    )
    queued = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "broken")
    assert queued.returncode == 2 and "input 'ghost' is not a node" in queued.stderr
    missing = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "nope")
    assert (
        missing.returncode == 2 and "no .pantheon/flows/nope.toml (known: broken, default)" in missing.stderr
    )


def test_an_agent_whose_model_is_unknown_is_refused_before_any_night(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    (repo_dir / ".pantheon" / "agents" / "big.py").write_text(
        "import dataclasses\nfrom pantheon_git.agents.builtin import PLANNER\n"
        "BIG = dataclasses.replace(PLANNER, name='big-planner', model='qwen-7b')\n"
    )
    (repo_dir / ".pantheon" / "flows" / "big.toml").write_text(
        PLAN.replace('"planner"', '"big-planner"') + GATE
    )
    checked = pantheon(repo_dir, "flow", "check", "big")
    assert checked.returncode == 2
    assert checked.stderr.strip() == (
        "git pantheon flow: .pantheon/flows/big.toml: agent big-planner: model 'qwen-7b' is not in "
        ".pantheon/models.toml (known: default)"
    )
    queued = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "big")
    assert queued.returncode == 2 and "model 'qwen-7b' is not in" in queued.stderr
    assert pantheon(repo_dir, "list").stdout.startswith("no tasks")


def test_init_flow_scaffolds_a_valid_flow_once(repo_dir: Path) -> None:
    made = pantheon(repo_dir, "init", "flow", "nightly")
    assert made.returncode == 0, made.stderr
    path = repo_dir / ".pantheon" / "flows" / "nightly.toml"
    assert made.stdout.startswith("created .pantheon/flows/nightly.toml")
    assert 'flow = "nightly"' in path.read_text()
    checked = pantheon(repo_dir, "flow", "check", "nightly")
    assert checked.returncode == 0
    assert checked.stdout.startswith("nightly: ok (place -> plan -> implement -> test")
    path.write_text(path.read_text() + "# my edit\n")
    again = pantheon(repo_dir, "init", "flow", "nightly")
    assert again.returncode == 2 and "nightly.toml: already exists" in again.stderr
    assert path.read_text().endswith("# my edit\n")
    for args, expected in (
        (("init", "flow"), "init flow: give the new flow's name"),
        (("init", "flow", "Bad Name"), "flow 'Bad Name': use 2-40 characters"),
        (("init", "flow", "other", "--from", "nope"), "--from nope: no such flow template (known: default)"),
    ):
        refused = pantheon(repo_dir, *args)
        assert refused.returncode == 2 and expected in refused.stderr, refused.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == ["nightly.toml"]


def test_queue_before_init_knows_only_the_default_flow(repo_dir: Path) -> None:
    refused = pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true", "--flow", "nightly")
    assert refused.returncode == 2
    assert "flow: unknown flow 'nightly' (no .pantheon/flows yet: run `git pantheon init`)" in refused.stderr
    assert pantheon(repo_dir, "list").stdout.startswith("no tasks")
    assert pantheon(repo_dir, "queue", "--title", "t", "--acceptance", "true").returncode == 0
