"""The night must not cost the model accuracy: its first greedy move at a stub sees exactly what raw
completion sees, and a repair round is a code completion that fits the model's context however long the
file and the check's output are (never the whole agent header again).

The scripted models here record what the loop sends (the prompts are what these tests are about); the
model test runs the real tokenizer and context window of the embedded model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import RETRY_TEMPERATURE, run_agent, stub_edit
from pantheon_git.agents.stubs import BODY_MAX_TOKENS, find_stub, repair_prompt
from pantheon_git.night.attempt import Attempt, TaskPlan, run_attempt
from pantheon_git.night.executors import (
    Sampled,
    acceptance_executor,
    agent_executor,
    baseline_executor,
    gate_executor,
)
from pantheon_git.night.setup import plan_nodes
from pantheon_git.queue.tasks import enqueue
from pantheon_git.runtime.base import Completion, ModelIdentity, Windowless
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from pantheon_git.schema.spec import Spec, stamp
from pantheon_git.store.git import open_repo
from pantheon_git.store.traces import read_trace
from pantheon_git.tools.builtin import ToolContext
from pantheon_git.tools.sandbox import run_sandboxed, sandbox_available
from tests.conftest import git

# HumanEval/0 and HumanEval/115 as the problems' prompts are (115 imports before its docstring).
CLOSE = (
    "from typing import List\n\n\n"
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    '    """ Check if in given list of numbers, are any two numbers closer to each other than\n'
    "    given threshold.\n"
    "    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n"
    "    False\n"
    '    """\n'
)
MAX_FILL = (
    "\ndef max_fill(grid, capacity):\n    import math\n"
    '    """\n    Output the number of times you need to lower the buckets.\n    """\n'
)
PLACEHOLDER = "    raise NotImplementedError\n"


class Recording(Windowless):
    """A model that answers from a script and keeps every prompt it was sent (and what it was told)."""

    is_local = True
    identity = ModelIdentity(name="recording", engine="recording")

    def __init__(self, answers: list[str], window: int | None = None) -> None:
        self.answers = answers
        self.prompts: list[str] = []
        self.max_tokens: list[int] = []
        self.sampling: list[dict[str, Any]] = []
        if window is not None:
            self.context_window = window

    def count_tokens(self, text: str) -> int:
        return len(text) // 3 + 1  # a coarse tokenizer: what matters is that the loop budgets by it

    def complete(self, prompt: str, *, max_tokens: int, **kwargs: Any) -> Completion:
        self.prompts.append(prompt)
        self.max_tokens.append(max_tokens)
        self.sampling.append(kwargs)
        text = self.answers[len(self.prompts) - 1]
        return Completion(text=text, tokens_in=1, tokens_out=1, tokens_evaluated=1, seconds=0.0)


@pytest.mark.parametrize(("source", "name"), [(CLOSE, "has_close_elements"), (MAX_FILL, "max_fill")])
def test_the_first_move_at_a_stub_sends_the_raw_completion_prompt(
    tmp_path: Path, source: str, name: str
) -> None:
    (tmp_path / "p.py").write_text(source + PLACEHOLDER)
    model = Recording(["    return True\n\n\nd"], window=4096)
    task = {"title": f"Implement {name}", "scope": "", "acceptance": ["true"], "files": ["p.py"]}
    run = run_agent(IMPLEMENTER, model, ToolContext(worktree=tmp_path), task, {})
    assert run.ok and run.output == {"summary": f"completed {name} in p.py"}, run.error
    # Exactly the problem's prompt: no instructions, no outline, nothing the raw protocol does not send.
    assert model.prompts == [source]
    # ... and raw completion's budget (bench_agent.RAW_MAX_TOKENS), not the agent's 512 per turn.
    assert model.max_tokens == [BODY_MAX_TOKENS] and BODY_MAX_TOKENS == 300 < IMPLEMENTER.max_tokens
    assert (tmp_path / "p.py").read_text() == source + "    return True\n"


def test_a_refused_body_is_completed_again_by_sampling_not_by_repeating_greedy(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(CLOSE + PLACEHOLDER)
    model = Recording(["    return any(\n\nd", "    return True\n\nd"], window=4096)
    task = {"title": "t", "scope": "", "acceptance": ["true"], "files": ["p.py"]}
    run = run_agent(IMPLEMENTER, model, ToolContext(worktree=tmp_path), task, {}, seed=7)
    assert run.ok and "refused" in run.turns[0]["error"], run.turns
    assert model.prompts == [CLOSE, CLOSE]
    # The first try as the attempt asked (greedy, its seed); the second samples with a seed of its own.
    assert model.sampling[0] == {"seed": 7, "schema": model.sampling[0]["schema"]}
    assert model.sampling[1]["temperature"] > 0 and model.sampling[1]["seed"] != 7
    assert (tmp_path / "p.py").read_text() == CLOSE + "    return True\n"


def test_a_sampled_node_keeps_the_runtime_contract_and_a_retry_keeps_its_own_temperature(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.py").write_text(CLOSE + PLACEHOLDER)
    model = Recording(["    return any(\n\nd", "    return True\n\nd"], window=4096)
    sampled = Sampled(model, temperature=0.7)
    assert (sampled.context_window, sampled.count_tokens("abcdef"), sampled.chat) == (4096, 3, None)
    task = {"title": "t", "scope": "", "acceptance": ["true"], "files": ["p.py"]}
    run = run_agent(IMPLEMENTER, sampled, ToolContext(worktree=tmp_path), task, {}, seed=7)
    assert run.ok and model.prompts == [CLOSE, CLOSE], run.error
    # The node's temperature where the loop names none; the loop's own for its retry of a refused body.
    assert [call["temperature"] for call in model.sampling] == [0.7, RETRY_TEMPERATURE]
    assert model.sampling[0]["seed"] == 7 and model.sampling[1]["seed"] != 7


def test_a_long_file_is_cut_from_the_top_to_fit_the_window(tmp_path: Path) -> None:
    helpers = "".join(f"def helper_{n}(x):\n    return x + {n}\n\n\n" for n in range(400))
    (tmp_path / "p.py").write_text(helpers + CLOSE + PLACEHOLDER)
    model = Recording(["    return True\n\nd"], window=IMPLEMENTER.max_tokens + 300)
    task = {"title": "t", "scope": "", "acceptance": ["true"], "files": ["p.py"]}
    run = run_agent(IMPLEMENTER, model, ToolContext(worktree=tmp_path), task, {})
    assert run.ok, run.error
    prompt = model.prompts[0]
    assert model.count_tokens(prompt) + model.max_tokens[0] <= 300 + IMPLEMENTER.max_tokens
    assert (
        prompt.endswith(CLOSE[CLOSE.index("def ") :]) and "helper_399" in prompt and "helper_0(" not in prompt
    )


FAILED_BODY = "    return False\n"
FAILURE = "Traceback (most recent call last):\n" + "noise\n" * 2000 + "AssertionError: expected True\n"


def repair_inputs(output: str) -> dict[str, Any]:
    """A repair round's inputs as the night gives them: the failing checks and the stubs to complete."""
    failed = [{"command": "python3 check.py", "exit_code": 1, "output": output}]
    functions = [{"path": "p.py", "function": "has_close_elements"}]
    return {"repair": {"round": 1, "instruction": "fix it", "failed_checks": failed, "functions": functions}}


def test_a_repair_round_is_a_completion_at_the_failing_function_that_fits_the_context(tmp_path: Path) -> None:
    helpers = "".join(f"def helper_{n}(x):\n    return x + {n}\n\n\n" for n in range(400))
    (tmp_path / "p.py").write_text(helpers + CLOSE + FAILED_BODY)  # what the first round wrote
    window = IMPLEMENTER.max_tokens + 400
    model = Recording(["    return len(numbers) > 1\n\nd"], window=window)
    task = {"title": "t", "scope": "", "acceptance": ["python3 check.py"], "files": ["p.py"]}
    run = run_agent(IMPLEMENTER, model, ToolContext(worktree=tmp_path), task, repair_inputs(FAILURE))
    assert run.ok and run.output == {"summary": "repaired has_close_elements in p.py"}, run.error
    [prompt] = model.prompts
    assert model.count_tokens(prompt) + model.max_tokens[0] <= window
    # The check's last words and the body that failed, as comments above the function; then its head.
    assert "# AssertionError: expected True\n" in prompt and "#     return False\n" in prompt
    assert prompt.endswith(CLOSE[CLOSE.index("def ") :]) and "### Role" not in prompt
    assert run.turns[0]["stub"] == {
        "path": "p.py",
        "function": "has_close_elements",
        "prompt": prompt,
        "repair": True,
        "body": "    return len(numbers) > 1\n",  # what the model wrote from that prompt: a completion row
    }
    assert (tmp_path / "p.py").read_text() == helpers + CLOSE + "    return len(numbers) > 1\n"


def test_a_repair_prompt_keeps_the_head_and_gives_up_only_when_the_head_cannot_fit() -> None:
    function = find_stub(CLOSE + PLACEHOLDER)
    assert function is not None

    def count(text: str) -> int:
        return len(text)

    tight = repair_prompt(function, [FAILURE], count, len(function.head) + 10)
    assert tight is not None and tight.endswith(function.head) and count(tight) <= len(function.head) + 10
    assert repair_prompt(function, [FAILURE], count, len(function.head) - 1) is None


@pytest.mark.model
def test_a_repair_round_fits_a_small_context_of_the_real_model(tmp_path: Path) -> None:
    from pantheon_git.runtime.llama import runtime_for
    from pantheon_git.schema.models import DEFAULT_MODELS

    config = DEFAULT_MODELS["default"].model_copy(update={"n_ctx": 1024})
    runtime = runtime_for("default", config)
    helpers = "".join(f"def helper_{n}(x):\n    return x + {n}\n\n\n" for n in range(300))
    (tmp_path / "p.py").write_text(helpers + CLOSE + FAILED_BODY)
    task = {"title": "t", "scope": "", "acceptance": ["python3 check.py"], "files": ["p.py"]}
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=tmp_path), task, repair_inputs(FAILURE))
    prompt = run.turns[0]["stub"]["prompt"]
    assert runtime.count_tokens(prompt) + IMPLEMENTER.max_tokens <= 1024
    # No turn of the round overflowed llama.cpp's window (the loop ends a turn that would, before it runs).
    assert all(turn["tokens_in"] + IMPLEMENTER.max_tokens <= 1024 for turn in run.turns)
    assert "transcript no longer fits" not in str(run.error)
    assert "AssertionError: expected True" in prompt


CALC = 'def answer():\n    """The answer."""\n    raise NotImplementedError\n'
CHECK = "python3 -c \"import calc; v = calc.answer(); assert v == 42, 'answer() returned %r' % v\""
FLOW = """\
[[nodes]]
id = "implement"
agent = "implementer"
[[nodes]]
id = "test"
agent = "acceptance"
inputs = ["implement"]
repairs = 1
[[nodes]]
id = "gate"
agent = "gate"
inputs = ["test"]
"""


class Stubborn41(Windowless):
    """Completes the stub with 41; a prompt that shows the check's complaint gets 42."""

    is_local = True
    identity = ModelIdentity(name="scripted", engine="scripted")

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, prompt: str, **_: Any) -> Completion:
        self.prompts.append(prompt)
        value = 42 if "answer() returned 41" in prompt else 41
        return Completion(
            f"    return {value}\n\nd", tokens_in=1, tokens_out=1, tokens_evaluated=1, seconds=0.0
        )


@pytest.mark.skipif(not sandbox_available(), reason="no `unshare -rn` here")
def test_the_night_repairs_a_filled_stub_from_the_check_output(repo_dir: Path) -> None:
    (repo_dir / "calc.py").write_text(CALC)
    (repo_dir / ".pantheon" / "flows").mkdir(parents=True)
    (repo_dir / ".pantheon" / "flows" / "fix.toml").write_text(FLOW)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "calc")
    spec = stamp(
        Spec(
            id="fix",
            title="answer",
            acceptance=[CHECK],
            files=["calc.py"],
            flow="fix",
            limits={"max_attempts": 1},
        ),
        author="a <a@b>",
        base="main",
    )
    repo = open_repo(repo_dir)
    enqueue(repo, [spec])
    model = Stubborn41()
    executors = {
        "baseline": baseline_executor(run_sandboxed),
        "acceptance": acceptance_executor(run_sandboxed),
        "implementer": agent_executor(
            IMPLEMENTER, ModelConfig(bundled="gemma3-270m"), run_sandboxed, runtime_factory=lambda: model
        ),
        "gate": gate_executor(GatePolicy(min_approvals=0)),
    }
    nodes = plan_nodes(repo_dir, "fix")
    run = run_attempt(
        repo,
        repo_dir,
        TaskPlan(spec, nodes, executors),
        Attempt(1, resume=False),
        policy={"local_only": True},
    )
    assert run.passed, run
    # Two code completions: the stub (the file as it is), then the repair (the complaint above the head).
    assert model.prompts[0] == CALC.removesuffix(PLACEHOLDER)
    assert "answer() returned 41" in model.prompts[1] and "### Role" not in model.prompts[1]
    assert model.prompts[1].endswith(CALC.removesuffix(PLACEHOLDER)) and len(model.prompts) == 2
    assert git(repo_dir, "show", "pantheon/fix/1:calc.py") == CALC.replace(PLACEHOLDER, "    return 42\n")
    # The round's trace names what it completed again (so replay can repeat it from the trace alone).
    revs = git(repo_dir, "rev-list", "--reverse", "main..pantheon/fix/1").split()
    repair = read_trace(repo, revs[3], expand=True)
    assert repair is not None and repair["node"] == "implement.repair1"
    functions = repair["agent_trace"]["inputs"]["repair"]["functions"]
    assert functions == [{"path": "calc.py", "function": "answer"}]


@pytest.mark.parametrize(
    "completion",
    [
        "    return 1\n\n#print(f(2))\n",  # the next top-level line, decoded to its end
        "    return 1\n\nd",  # its first character only
        "    return 1\n    retu",  # cut off at max_tokens
    ],
)
def test_the_edit_keeps_the_body_and_never_the_line_that_stopped_it(completion: str) -> None:
    stub = find_stub('def f(x):\n    """One."""\n    raise NotImplementedError\n')
    assert stub is not None
    edit = stub_edit("p.py", stub, completion)
    assert edit.split("=======\n", 1)[1] == 'def f(x):\n    """One."""\n    return 1\n>>>>>>> REPLACE'
