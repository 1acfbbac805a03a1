"""Examples that teach: worked transcripts of real kinds of work, and the nearest past successes.

A 270M model copies the shape of what it is shown (the old toy "create notes.txt" example was copied
verbatim), so the examples are the work it must do: edit a function, add a function and its test, fix a
failing test, each rendered in the agent's call format. Once the repository has runs the gate approved,
the past runs of the same agent whose task is most like this one (TF-IDF cosine over title and scope)
are put first, read from the trace notes of the approved run branches.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pygit2
from pydantic import BaseModel

from pantheon_git.agents.calls import CallFormat, render
from pantheon_git.agents.existing import spec_named_files
from pantheon_git.agents.prompt import render_turn
from pantheon_git.agents.spec import AgentSpec
from pantheon_git.store.layout import run_branch
from pantheon_git.store.runs import recorded_steps, run_heads
from pantheon_git.store.traces import read_trace
from pantheon_git.store.votes import read_votes
from pantheon_git.store.worktree import tracked_files
from pantheon_git.tools.builtin import TOOLS

PAST_EXAMPLES = 2  # at most this many past successes in a prompt
RESULT_LINES = 8  # a past turn's result is cut to this many lines
EXAMPLE_CHARS = 2400  # a past success longer than this is left out (it would crowd out the task)

# (task, file shown to the agent as the prompt's Files section does, turns, finish arguments);
# each turn is (tool, arguments, result).
Worked = tuple[dict[str, Any], str, list[tuple[str, dict[str, Any], str]], dict[str, Any]]

IMPLEMENTER_EXAMPLES: list[Worked] = [
    (
        {"title": "Make to_km in src/units.py round to 2 decimals", "acceptance": ["pytest -q"]},
        "src/units.py (2 lines):\n1| def to_km(miles):\n2|     return miles * 1.609",
        [
            (
                "edit",
                {
                    "path": "src/units.py",
                    "search": "    return miles * 1.609\n",
                    "replace": "    return round(miles * 1.609, 2)\n",
                },
                "edited src/units.py: 1 lines replaced by 1 at line 2; it now reads:\n"
                "1| def to_km(miles):\n2|     return round(miles * 1.609, 2)",
            ),
            ("run", {"command": "pytest -q"}, "exit 0 after 0.4s\n3 passed"),
        ],
        {"summary": "to_km rounds to 2 decimals"},
    ),
    (
        {
            "title": "Add a function square(x) to src/shapes.py, with a test",
            "acceptance": ["pytest -q tests/test_shapes.py"],
        },
        'src/shapes.py (3 lines):\n1| """Shapes."""\n2| def area(w, h):\n3|     return w * h',
        [
            (
                "edit",
                {
                    "path": "src/shapes.py",
                    "search": "def area(w, h):\n    return w * h\n",
                    "replace": "def area(w, h):\n    return w * h\n\n\ndef square(x):\n    return x * x\n",
                },
                "edited src/shapes.py: 2 lines replaced by 6 at line 2",
            ),
            (
                "create",
                {
                    "path": "tests/test_shapes.py",
                    "content": "from src.shapes import square\n\n\ndef test_square():\n"
                    "    assert square(3) == 9\n",
                },
                "created tests/test_shapes.py (5 lines)",
            ),
            ("run", {"command": "pytest -q tests/test_shapes.py"}, "exit 0 after 0.3s\n1 passed"),
        ],
        {"summary": "added square(x) and its test"},
    ),
    (
        {"title": "Fix the failing test of word_count", "acceptance": ["pytest -q tests/test_text.py"]},
        'src/text.py (2 lines):\n1| def word_count(s):\n2|     return len(s.split(" "))',
        [
            (
                "run",
                {"command": "pytest -q tests/test_text.py"},
                "exit 1 after 0.3s\nassert word_count('a  b') == 2\nE  assert 3 == 2",
            ),
            (
                "edit",
                {
                    "path": "src/text.py",
                    "search": '    return len(s.split(" "))\n',
                    "replace": "    return len(s.split())\n",
                },
                "edited src/text.py: 1 lines replaced by 1 at line 2",
            ),
            ("run", {"command": "pytest -q tests/test_text.py"}, "exit 0 after 0.3s\n2 passed"),
        ],
        {"summary": "word_count splits on any whitespace"},
    ),
]

# The planner's example names a file, and a 270M planner copies it into its plan (seen: "Add mul(a, b)
# in src/shapes.py" for a repository without one). So the example is rendered about the task's own
# file where the task names one (planner_example_files); src/shapes.py only where it names none.
GENERIC_SOURCE, GENERIC_TEST = "src/shapes.py", "tests/test_shapes.py"
_TEST_FILE = re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$")


def planner_examples(source: str = GENERIC_SOURCE, test: str | None = GENERIC_TEST) -> list[Worked]:
    """The planner's worked example about `source` (and its test file `test`, where there is one)."""
    with_test = f"; test it in {test}" if test else ""
    return [
        (
            {
                "title": f"Add a function square(x) to {source}" + (", with a test" if test else ""),
                "acceptance": ["pytest -q"],
            },
            "",
            [("search", {"text": "def area"}, f"{source}:2: def area(w, h):")],
            {
                "plan": f"Add square(x) returning x * x after area in {source}{with_test}.",
                "files": [source, *([test] if test else [])],
            },
        ),
    ]


PLANNER_EXAMPLES: list[Worked] = planner_examples()


def _placed(inputs: Mapping[str, Any]) -> list[str]:
    """The files the run's `place` step put a stub in, where the planner is given its output."""
    place = inputs.get("place")
    placed = place.get("placed", []) if isinstance(place, Mapping) else []
    return [
        item["path"] for item in placed if isinstance(item, Mapping) and isinstance(item.get("path"), str)
    ]


def planner_example_files(
    task: Mapping[str, Any], inputs: Mapping[str, Any], tracked: Sequence[str] | None
) -> tuple[str, str | None] | None:
    """(source, test file or None) the planner's example is about: the file the `place` step chose, else
    the first tracked file the spec names, else the first it names (a Python module before any other
    file, a test file only when it names nothing else); None when the task names no file."""
    placed = _placed(inputs)
    named = list(dict.fromkeys([*placed, *spec_named_files(task)]))
    if not named:
        return None
    have = set(tracked or ())
    tests = [path for path in named if _TEST_FILE.search(path)]
    sources = [path for path in named if path not in tests]
    # sorted() is stable: among equals the order the spec names them in decides.
    ordered = sorted(
        sources,
        key=lambda path: (path not in placed, path not in have, not path.endswith((".py", ".pyi"))),
    )
    if not ordered:
        return tests[0], None
    return ordered[0], tests[0] if tests else None


REVIEWER_EXAMPLES: list[Worked] = [
    (
        {"title": "Add a function square(x) to src/shapes.py", "acceptance": ["pytest -q"]},
        "src/shapes.py (6 lines):\n5| def square(x):\n6|     return x * x",
        [],
        {"verdict": "approve", "reasons": ["square returns x * x", "the tests pass"]},
    ),
]

WORKED = {"implementer": IMPLEMENTER_EXAMPLES, "planner": PLANNER_EXAMPLES, "reviewer": REVIEWER_EXAMPLES}


def _model(agent: AgentSpec, name: str) -> type[BaseModel]:
    return agent.output if name == "finish" else TOOLS[name].args


def _task_lines(task: Mapping[str, Any]) -> list[str]:
    lines = [f"Title: {task['title']}"]
    if task.get("scope"):
        lines.append(f"Scope: {' '.join(str(task['scope']).split())}")
    lines += [f"Acceptance: {check}" for check in task.get("acceptance", [])]
    return lines


def render_example(
    agent: AgentSpec,
    task: Mapping[str, Any],
    shown: str,
    turns: list[tuple[str, dict[str, Any], str]],
    finish: dict[str, Any],
    call_format: CallFormat,
) -> str:
    """One transcript in the prompt format: the task, what the agent was shown, its calls and results."""
    text = "\n".join(_task_lines(task)) + "\n" + (shown + "\n" if shown else "")
    for name, args, result in turns:
        text += render_turn(render(name, args, _model(agent, name), call_format), result)
    return text + "Call: " + render("finish", finish, agent.output, call_format)


def worked_examples(
    agent: AgentSpec,
    call_format: CallFormat,
    task: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    worktree: Path | None = None,
) -> list[str]:
    """The built-in worked transcripts for `agent` (by name), in `call_format`; the agent's own
    `examples` (already written in a format) when it has them and no built-in ones. The planner's is
    about the files `task` names (which of them exist: `worktree`'s index), where it names any."""
    if agent.name not in WORKED:
        return list(agent.examples)
    worked = WORKED[agent.name]
    if agent.name == "planner" and task is not None:
        files = planner_example_files(task, inputs or {}, tracked_files(worktree) if worktree else None)
        worked = planner_examples(*files) if files is not None else worked
    return [
        render_example(agent, shown_task, shown, turns, finish, call_format)
        for shown_task, shown, turns, finish in worked
        if all(name in agent.tools for name, _, _ in turns)
    ]


def _words(text: str) -> list[str]:
    return [word for word in re.findall(r"[a-z0-9_]+", text.lower()) if len(word) > 1]


def rank(query: str, documents: list[str]) -> list[tuple[float, int]]:
    """(TF-IDF cosine similarity, index) of each document to `query`, best first; zero scores left out."""
    bags = [Counter(_words(document)) for document in documents]
    frequency = Counter(word for bag in bags for word in bag)
    total = len(documents)

    def vector(bag: Counter[str]) -> dict[str, float]:
        # Smoothed idf, plus a little for every shared word so a word all documents have still counts.
        return {word: n * (math.log((1 + total) / (1 + frequency[word])) + 1e-3) for word, n in bag.items()}

    wanted = vector(Counter(_words(query)))
    norm = math.sqrt(sum(value * value for value in wanted.values())) or 1.0
    scores = []
    for index, bag in enumerate(bags):
        have = vector(bag)
        dot = sum(value * have.get(word, 0.0) for word, value in wanted.items())
        length = math.sqrt(sum(value * value for value in have.values())) or 1.0
        if dot > 0:
            scores.append((dot / (norm * length), index))
    return sorted(scores, key=lambda pair: (-pair[0], pair[1]))


def _approved(repo: pygit2.Repository, head: pygit2.Oid) -> bool:
    """The run's last gate decision approved it, or it was merged."""
    votes = read_votes(repo, head)
    if any(vote.kind == "merge" for vote in votes):
        return True
    gates = [vote for vote in votes if vote.kind == "gate"]
    return bool(gates) and gates[-1].verdict == "approve"


def approved_runs(repo: pygit2.Repository, agent: str) -> list[dict[str, Any]]:
    """The turn-by-turn records (agent traces) of `agent`'s successful steps on approved run branches."""
    found = []
    for task_id, attempts in sorted(run_heads(repo).items()):
        for attempt, head in sorted(attempts.items()):
            if not _approved(repo, head):
                continue
            for _, commit in recorded_steps(repo, run_branch(task_id, attempt)):
                trace = read_trace(repo, commit.id, expand=True)
                record = trace.get("agent_trace") if trace else None
                if not trace or trace.get("agent") != agent or not trace.get("ok"):
                    continue
                if isinstance(record, dict) and record.get("output") and record.get("turns"):
                    found.append(record)
    return found


def _cut(text: str) -> str:
    lines = str(text).strip().splitlines()
    return "\n".join(lines[:RESULT_LINES] + (["…"] if len(lines) > RESULT_LINES else []))


def past_examples(
    worktree: Path, task: Mapping[str, Any], agent: AgentSpec, call_format: CallFormat
) -> list[str]:
    """The nearest approved past runs of `agent`, rendered as examples (none outside a repository)."""
    try:
        repo = pygit2.Repository(str(worktree))
    except (pygit2.GitError, KeyError):
        return []
    records = [record for record in approved_runs(repo, agent.name) if isinstance(record.get("task"), dict)]
    if not records:
        return []
    query = f"{task.get('title', '')} {task.get('scope', '')}"
    documents = [f"{r['task'].get('title', '')} {r['task'].get('scope', '')}" for r in records]
    examples: list[str] = []
    for _, index in rank(query, documents):
        record = records[index]
        turns = []
        for turn in record["turns"]:
            call = turn.get("call")
            if not call or call.get("tool") == "finish" or call.get("tool") not in agent.tools:
                continue
            turns.append((call["tool"], call["args"], _cut(turn.get("result", ""))))
        try:
            text = render_example(agent, record["task"], "", turns, record["output"], call_format)
        except (KeyError, TypeError):
            continue  # a record from an older tool set: not worth teaching from
        if len(text) <= EXAMPLE_CHARS and text not in examples:
            examples.append(text)
        if len(examples) >= PAST_EXAMPLES:
            break
    return examples
