"""The agent interface's prompt side: code-as-code calls, the repository context and its budget, worked
examples and past successes from approved runs. The model-free parts; tests/test_aci_model.py has the
parts that need the embedded model (grammar under its tokenizer, chat template, a real edit)."""

from __future__ import annotations

import json
from pathlib import Path

import llguidance
import pygit2
import pytest

from pantheon_git.agents import calls
from pantheon_git.agents.builtin import IMPLEMENTER, PLANNER, REVIEWER, Implementation, Plan, Review
from pantheon_git.agents.calls import CallFormat
from pantheon_git.agents.context import python_outline, repository_context
from pantheon_git.agents.examples import approved_runs, past_examples, rank, worked_examples
from pantheon_git.agents.loop import agent_header, call_grammar, parse_call, run_agent
from pantheon_git.runtime.base import estimate_tokens
from pantheon_git.runtime.recorded import ReplayRuntime
from pantheon_git.store.runs import Step, commit_step, make_step_commit, publish_step, start_run_branch
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes
from pantheon_git.tools.builtin import TOOLS, ToolContext

TRICKY = (
    'x = "a\\"b" + \'c\' + r"\\n" + "\\\\"\n'
    'd = {"k": {1, 2}}\n'
    '"""Triple "quoted" docstring."""\n'
    "s = f'{d[\"k\"]!r}'  # braces, quotes, backslashes\n"
)
MODELS = {name: TOOLS[name].args for name in IMPLEMENTER.tools} | {"finish": Implementation}


@pytest.mark.parametrize("tool", ["edit", "create", "view", "run", "search"])
def test_code_calls_round_trip_code_with_quotes_backslashes_braces(tool: str) -> None:
    args = {
        "edit": {"path": "src/calc.py", "search": "def add(a, b):\n", "replace": TRICKY},
        "create": {"path": "src/tricky.py", "content": TRICKY},
        "view": {"path": "src/calc.py", "start": 20, "lines": 10},
        "run": {"command": "python -c \"print('{x}')\"", "timeout_s": 30},
        "search": {"text": 'say "hi" \\ there', "path": "src"},
    }[tool]
    text = calls.render(tool, args, MODELS[tool])
    if tool in ("edit", "create"):
        assert TRICKY in text  # the code is in the turn as it is: no escaping at all
    name, parsed = calls.parse(text, MODELS)
    assert name == tool
    assert {key: value for key, value in parsed.model_dump().items() if key in args} == args


def test_code_call_parsing_is_exact_about_blocks() -> None:
    text = "edit path=a.py\n<<<<<<< SEARCH\n    x = 1\n\n=======\n    x = '''\\n'''\n>>>>>>> REPLACE"
    _, args = calls.parse(text, MODELS)
    assert args.search == "    x = 1\n\n" and args.replace == "    x = '''\\n'''\n"
    _, made = calls.parse("create path=e.py\n```\n```", MODELS)
    assert made.content == ""
    for bad, reason in [
        ("edit path=a.py\n<<<<<<< SEARCH\nx = 1\n", "missing the line ======="),
        ("edit path=a.py\nx = 1", "after the header comes a line <<<<<<< SEARCH"),
        ("edit path=a.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\nmore", "text after"),
        ("create path=a.py\n```python\nx = 1\n", "missing the line ```"),
        ("view path=a.py start=ten", "start: expected a whole number"),
        ("view path=a.py\nextra", "one line only"),
        ("rm path=/", "unknown tool 'rm'"),
        ("view", "view: path: Field required"),
        ('finish summary="unterminated', "bad quoted value"),
    ]:
        with pytest.raises(ValueError, match=reason):
            calls.parse(bad, MODELS)


def test_json_format_still_parses_and_models_with_lists_finish_in_json() -> None:
    tools = {"edit": TOOLS["edit"]}
    name, args = parse_call(
        json.dumps({"tool": "edit", "args": {"path": "a.py", "search": "a\n", "replace": TRICKY}}),
        tools,
        IMPLEMENTER.output,
        CallFormat.JSON,
    )
    assert name == "edit" and args.replace == TRICKY
    plan = calls.render("finish", {"plan": "do it", "files": ["a.py"]}, Plan)
    assert plan == 'finish {"plan":"do it","files":["a.py"]}'
    assert calls.parse(plan, {"finish": Plan})[1] == Plan(plan="do it", files=["a.py"])
    review = calls.parse('finish {"verdict":"reject","reasons":["no test"]}', {"finish": Review})[1]
    assert review.verdict == "reject"


def test_grammars_are_valid_for_llguidance() -> None:
    for agent in (PLANNER, IMPLEMENTER, REVIEWER):
        tools = [TOOLS[name] for name in agent.tools]
        grammar = call_grammar(tools, agent.output, CallFormat.CODE)
        assert isinstance(grammar, str) and grammar.startswith("start: call_0")
        assert llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_lark(grammar)) == ""
        assert isinstance(call_grammar(tools, agent.output, CallFormat.JSON), dict)
    edit = call_grammar([TOOLS["edit"]], Implementation, CallFormat.CODE)
    held = '"edit" " path=" value_0 "\\n<<<<<<< SEARCH\\n" lines "=======\\n" lines ">>>>>>> REPLACE"'
    assert held in edit  # value_0: the path, held to its 200 characters (tests/test_grammar_bounds.py)


def test_named_files_hold_the_edit_path_and_search_lines() -> None:
    files = {"calc.py": 'def add(a, b):\n    return a + b\n\n=======\nx = "\\\\"\n', "empty.py": ""}
    grammar = call_grammar([TOOLS["edit"], TOOLS["view"]], Implementation, CallFormat.CODE, files)
    assert llguidance.LLMatcher.validate_grammar(llguidance.LLMatcher.grammar_from_lark(grammar)) == ""
    edit_rule = next(line for line in grammar.splitlines() if line.startswith("call_0:"))
    assert '" path=calc.py" "\\n<<<<<<< SEARCH\\n" file_0' in edit_rule and "empty.py" not in grammar
    assert "file_0: file_0_0 | file_0_1 | file_0_2 | file_0_4" in grammar
    # Consecutive lines only: each line may be followed by the next one; a marker-like line never
    # appears (it would end the block), and so breaks the run.
    assert 'file_0_0: "def add(a, b):\\n" file_0_1?' in grammar
    assert 'file_0_2: "\\n"\n' in grammar and "=======" not in grammar.split("file_0")[-1]
    assert 'file_0_4: "x = \\"\\\\\\\\\\"\\n"' in grammar


def _big_repository(root: Path) -> None:
    """About 3,000 lines: 40 modules of 25 functions each, plus data files."""
    for number in range(40):
        package = root / "src" / f"pkg{number % 4}"
        package.mkdir(parents=True, exist_ok=True)
        body = "".join(
            f"def func_{number}_{index}(a, b=1):\n    return a + b + {index}\n\n" for index in range(25)
        )
        (package / f"mod{number}.py").write_text(
            f'"""Module {number}."""\n\n{body}class Thing{number}:\n    def run(self):\n        return 1\n'
        )
    (root / "src" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "data").mkdir()
    for number in range(30):
        (root / "data" / f"table{number}.csv").write_text("a,b\n1,2\n")


def test_context_names_files_with_numbers_and_cuts_the_outline_to_budget(tmp_path: Path) -> None:
    _big_repository(tmp_path)
    total_lines = sum(len(p.read_text().splitlines()) for p in tmp_path.rglob("*.py"))
    assert total_lines > 2500
    task = {"title": "Add mul to calc", "files": ["src/calc.py"]}
    inputs = {"plan": {"plan": "x", "files": ["src/calc.py", "tests/test_calc.py"]}}
    outline, files = repository_context(tmp_path, task, inputs, 400)
    assert files.splitlines()[:3] == ["src/calc.py (2 lines):", "1| def add(a, b):", "2|     return a + b"]
    assert "tests/test_calc.py: does not exist yet (create makes it)" in files
    assert outline.splitlines()[:2] == ["src/calc.py", "  def add(a, b)  # line 1"]  # mentioned: first
    assert "more files (list_files shows them)" in outline.splitlines()[-1]
    assert estimate_tokens(outline) + estimate_tokens(files) <= 400 + 2
    wide_outline, _ = repository_context(tmp_path, task, inputs, 20000)
    assert "class Thing7: run  # line" in wide_outline and "data/table29.csv" in wide_outline
    assert "more files" not in wide_outline
    # A named file bigger than the budget is cut, and says how to see the rest.
    _, cut = repository_context(tmp_path, {"title": "t", "files": ["src/pkg1/mod1.py"]}, {}, 120)
    assert (
        cut.startswith("src/pkg1/mod1.py (80 lines):")
        and "more lines (view path=src/pkg1/mod1.py start=" in cut
    )
    # Paths leading out are refused in the context too, not read.
    (tmp_path / "up").symlink_to(tmp_path.parent)
    _, refused = repository_context(tmp_path, {"title": "t", "files": ["../x", "up/secret"]}, {}, 400)
    assert "'..' is not allowed" in refused and "leads outside" in refused


def test_python_outline_lists_top_level_names() -> None:
    text = (
        "import os\n\n\nasync def fetch(url, *, timeout=3):\n    pass\n\n\n"
        "class A(Base):\n    def m(self):\n        pass\n"
    )
    assert python_outline(text) == [
        "async def fetch(url, *, timeout=3)  # line 4",
        "class A(Base): m  # line 8",
    ]
    assert python_outline("def broken(:\n")[0].startswith("(does not parse: line 1")


def test_prompt_carries_worked_examples_in_the_call_format_not_the_toy(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    task = {"title": "Add mul(a, b) to calc.py", "acceptance": ["pytest -q"], "files": ["calc.py"]}
    header = agent_header(IMPLEMENTER, ToolContext(worktree=tmp_path), task, {})
    assert "notes.txt" not in header
    assert header.count("### Example") == 3
    assert "Call: edit path=src/units.py\n<<<<<<< SEARCH\n    return miles * 1.609\n=======\n" in header
    assert "Call: create path=tests/test_shapes.py\n```python\n" in header
    assert header.index("### Repository") < header.index("### Task") < header.index("### Files")
    assert header.rstrip().endswith("calc.py (2 lines):\n1| def add(a, b):\n2|     return a + b")
    as_json = agent_header(IMPLEMENTER, ToolContext(worktree=tmp_path), task, {}, call_format=CallFormat.JSON)
    expected = 'Call: {"tool":"edit","args":{"path":"src/units.py","search":"    return miles * 1.609\\n'
    assert expected in as_json
    assert len(worked_examples(REVIEWER, CallFormat.CODE)) == 1


def test_loop_runs_code_calls_and_feeds_refusals_back(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    completions = [
        "edit path=calc.py\n<<<<<<< SEARCH\ndef add(a,b):\n=======\nx\n>>>>>>> REPLACE",
        "edit path=calc.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return a + b\n\n\ndef mul(a, b):\n"
        "    return (a *\n>>>>>>> REPLACE",
        "edit path=calc.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return a + b\n\n\ndef mul(a, b):\n"
        '    return a * b  # "quoted" {braces} \\\\ back\n>>>>>>> REPLACE',
        'finish summary="added mul"',
    ]
    runtime = ReplayRuntime(completions)
    run = run_agent(
        IMPLEMENTER, runtime, ToolContext(worktree=tmp_path), {"title": "t", "files": ["calc.py"]}, {}
    )
    assert run.ok and run.output == {"summary": "added mul"}
    assert "occurs 0 times" in run.turns[0]["result"] and "1| def add(a, b):" in run.turns[0]["result"]
    assert "not be valid Python (line 6:" in run.turns[1]["result"]
    assert (tmp_path / "calc.py").read_text().endswith('    return a * b  # "quoted" {braces} \\\\ back\n')
    assert run.trace(IMPLEMENTER, runtime)["call_format"] == "code"


def _approved_run(repo: pygit2.Repository, task_id: str, title: str, summary: str, verdict: str) -> None:
    ref = start_run_branch(repo, task_id, 1, repo.head.target)
    step = Step(task=task_id, step="implement", agent="implementer", model="m", summary=summary)
    commit, parent = make_step_commit(repo, ref, step)
    record = {
        "task": {"title": title, "acceptance": ["pytest -q"]},
        "output": {"summary": summary},
        "turns": [
            {
                "n": 1,
                "completion": "x",
                "call": {
                    "tool": "edit",
                    "args": {"path": "calc.py", "search": "a\n", "replace": f"# {summary}\n"},
                },
                "result": "edited calc.py",
            },
            {
                "n": 2,
                "completion": "y",
                "call": {"tool": "finish", "args": {"summary": summary}},
                "result": "",
            },
        ],
    }
    trace = {"agent": "implementer", "ok": True, "task": task_id, "attempt": 1, "agent_trace": record}
    write_trace(repo, commit, trace, detail_keys=("agent_trace",))
    publish_step(repo, ref, commit, parent)
    gate = commit_step(repo, ref, Step(task=task_id, step="gate", agent="gate", model="-", summary=verdict))
    append_votes(repo, gate, [Vote(kind="gate", voter="gate", verdict=verdict)])


def test_past_successes_come_from_approved_runs_nearest_first(repo_dir: Path) -> None:
    repo = pygit2.Repository(str(repo_dir))
    _approved_run(repo, "mul-task", "Add a function mul to calc.py", "added mul", "approve")
    _approved_run(repo, "readme-task", "Document the install steps in README", "wrote docs", "approve")
    _approved_run(repo, "div-task", "Add a function div to calc.py", "added div", "reject")
    assert sorted(r["output"]["summary"] for r in approved_runs(repo, "implementer")) == [
        "added mul",
        "wrote docs",
    ]
    examples = past_examples(
        repo_dir, {"title": "Add a function pow to calc.py"}, IMPLEMENTER, CallFormat.CODE
    )
    assert examples[0].startswith("Title: Add a function mul to calc.py")
    assert "Call: edit path=calc.py\n<<<<<<< SEARCH\na\n=======\n# added mul\n>>>>>>> REPLACE" in examples[0]
    assert examples[0].endswith('Call: finish summary="added mul"')
    assert all("added div" not in example for example in examples)  # the gate rejected it
    header = agent_header(IMPLEMENTER, ToolContext(worktree=repo_dir), {"title": "Add pow to calc.py"}, {})
    assert header.index("Title: Add a function mul to calc.py") < header.index("Make to_km in src/units.py")
    assert past_examples(repo_dir.parent, {"title": "x"}, IMPLEMENTER, CallFormat.CODE) == []  # not a repo


def test_tfidf_rank_prefers_shared_rare_words() -> None:
    documents = ["add a function mul to calc", "write the readme", "add a test for parser"]
    assert next(index for _, index in rank("add a function pow to calc", documents)) == 0
    assert rank("zebra", documents) == []
