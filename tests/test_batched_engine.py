"""The batched engine on the real embedded model: batching changes nothing greedy decoding gives, seeds
and constraints hold per sequence, shared prompt prefixes are evaluated once, concurrent callers each
get their own answer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from pantheon_git.agents.builtin import IMPLEMENTER
from pantheon_git.agents.loop import run_agent
from pantheon_git.errors import PantheonError
from pantheon_git.runtime.base import ContextOverflow
from pantheon_git.runtime.batched import BatchedEngine, Request
from pantheon_git.runtime.batched_runtime import BatchedRuntime
from pantheon_git.runtime.in_process import common_prefix
from pantheon_git.schema.models import ModelConfig
from pantheon_git.tools.builtin import ToolContext
from tests.conftest import git

CONFIG = ModelConfig(bundled="gemma3-270m", n_ctx=2048, n_threads=2)
CODE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
COLOURS = {
    "type": "object",
    "properties": {
        "colour": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
    },
    "required": ["colour"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module", params=["unified", "split"])
def engine(request):
    """Every engine test on both KV caches: one shared by all slots, or a stream per slot (each 4096)."""
    config = CONFIG.model_copy(update={"kv_cache": request.param})
    n_ctx = 4096 if request.param == "unified" else 8 * 4096
    with BatchedEngine.from_config("default", config, n_seq_max=8, n_ctx=n_ctx) as made:
        yield made


@pytest.fixture(scope="module")
def single():
    from pantheon_git.runtime.llama import runtime_for

    return runtime_for("default", CONFIG)


@pytest.mark.model
@pytest.mark.parametrize("schema", [None, PERSON], ids=["plain", "schema"])
def test_two_sequences_in_one_batch_match_the_single_sequence_greedy_runtime(engine, single, schema) -> None:
    prompt = CODE if schema is None else "A person as JSON:\n"
    alone = single.complete(prompt, schema=schema, max_tokens=24)
    engine.clear_cache()
    first, second = engine.complete_many([Request(prompt, schema=schema, max_tokens=24, seed=7)] * 2)
    assert first.text == second.text == alone.text
    assert first.tokens_out == alone.tokens_out and first.finish_reason == alone.finish_reason
    # The prompt was evaluated once; the second sequence got it from the first but its last token.
    assert first.tokens_in == second.tokens_in == alone.tokens_in
    assert first.tokens_evaluated == first.tokens_in and second.tokens_evaluated == 1


# A prompt whose greedy answer, on the portable build, changed with what the cache held when the last
# prompt token was decoded inside the cold prompt's batch (and came out as raw completion's once cached).
SORTED = (
    'def is_sorted(xs: list) -> bool:\n    """True when xs is in ascending order.\n'
    '    >>> is_sorted([1, 2, 2, 5])\n    True\n    >>> is_sorted([3, 1])\n    False\n    """\n'
)


@pytest.mark.model
def test_a_greedy_answer_does_not_depend_on_what_the_cache_held(engine, single) -> None:
    engine.clear_cache()
    cold = engine.complete(SORTED, schema=None, max_tokens=48)
    warm = engine.complete(SORTED, schema=None, max_tokens=48)
    assert (cold.tokens_evaluated, warm.tokens_evaluated) == (cold.tokens_in, 1)
    assert cold.text == warm.text
    # The body is the single runtime's too (further on, decoding in a larger cache rounds apart).
    assert cold.text.startswith(single.complete(SORTED, schema=None, max_tokens=24).text)


@pytest.mark.model
def test_seeds_pick_the_samples_at_a_temperature(engine) -> None:
    requests = [Request("Once upon a time", max_tokens=16, seed=seed, temperature=1.0) for seed in range(4)]
    texts = [done.text for done in engine.complete_many(requests)]
    assert len(set(texts)) == 4, texts  # four seeds, four stories
    again = [done.text for done in engine.complete_many(requests)]
    assert again == texts  # and the same seeds give the same stories
    greedy = engine.complete_many(
        [Request("Once upon a time", max_tokens=16, seed=seed) for seed in range(2)]
    )
    assert greedy[0].text == greedy[1].text  # temperature 0 ignores the seed


@pytest.mark.model
def test_every_output_of_a_mixed_constrained_batch_holds_to_its_own_constraint(engine) -> None:
    requests = [
        Request("A person as JSON:\n", schema=PERSON, max_tokens=48, seed=seed, temperature=1.0)
        for seed in range(3)
    ] + [
        Request("Pick a colour as JSON:\n", schema=COLOURS, max_tokens=64, seed=seed, temperature=1.0)
        for seed in range(3)
    ]
    requests.append(Request("Is the sky green? Answer: ", grammar='start: "yes" | "no"', max_tokens=8))
    done = engine.complete_many(requests)
    for item in done[:3]:
        value = json.loads(item.text)
        assert set(value) == {"name", "age"} and 0 <= value["age"] <= 120 and len(value["name"]) <= 20
    for item in done[3:6]:
        value = json.loads(item.text)
        assert value["colour"] in {"red", "green", "blue"} and set(value) <= {"colour", "tags"}
        assert len(value.get("tags", [])) <= 2 and all(len(tag) <= 8 for tag in value.get("tags", []))
    assert done[6].text in {"yes", "no"}
    assert all(item.finish_reason == "stop" for item in done)


@pytest.mark.model
def test_concurrent_callers_each_get_their_own_answer(engine) -> None:
    callers = 6
    answers: dict[int, tuple[str, int]] = {}
    start = threading.Barrier(callers)

    def call(number: int) -> None:
        # The constraint forces each caller's number into its answer: a crossed wire shows at once.
        schema = {
            "type": "object",
            "properties": {"caller": {"const": number}, "note": {"type": "string", "maxLength": 12}},
            "required": ["caller", "note"],
            "additionalProperties": False,
        }
        prompt = f"Caller {number} writes a short note as JSON:\n"
        start.wait()
        done = engine.complete(prompt, schema=schema, max_tokens=40, seed=number, temperature=0.7)
        answers[number] = (done.text, done.tokens_in)

    threads = [threading.Thread(target=call, args=(number,)) for number in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == list(range(callers))
    for number, (text, tokens_in) in answers.items():
        assert json.loads(text)["caller"] == number
        assert tokens_in == len(engine.tokenize(f"Caller {number} writes a short note as JSON:\n"))


@pytest.mark.model
def test_common_prefixes_are_evaluated_once_and_a_longer_turn_reuses_its_slot(engine) -> None:
    engine.clear_cache()
    shared = "You are a careful engineer. Tools: read_file, write_file, finish.\n" * 4
    tasks = [shared + f"Task {name}: fix the bug.\nCall:" for name in ("alpha", "beta", "gamma")]
    tokens = [engine.tokenize(task) for task in tasks]
    common = [common_prefix(tokens[0], row) for row in tokens[1:]]
    assert min(common) >= len(engine.tokenize(shared))  # the role and tools really are shared
    before = engine.stats.prompt_tokens_evaluated
    done = engine.complete_many([Request(task, max_tokens=4) for task in tasks])
    assert done[0].tokens_evaluated == len(tokens[0])
    assert [item.tokens_evaluated for item in done[1:]] == [
        len(row) - same for row, same in zip(tokens[1:], common, strict=True)
    ]
    assert engine.stats.prompt_tokens_evaluated - before == sum(item.tokens_evaluated for item in done)
    # Turn 2 of the first task extends turn 1: only the new text is evaluated.
    turn2 = tasks[0] + " ZQX-17 ok.\nResult: ok\nCall:"
    assert common_prefix(engine.tokenize(turn2), tokens[0]) == len(tokens[0])
    follow = engine.complete(turn2, schema=None, max_tokens=4)
    assert follow.tokens_evaluated == len(engine.tokenize(turn2)) - len(tokens[0])
    assert 0 < engine.stats.cache_share < 1


@pytest.mark.model
def test_the_agent_loop_runs_on_the_engine_as_on_the_single_runtime(
    engine, single, repo_dir: Path, tmp_path: Path
) -> None:
    # A task the embedded model does (a stub completed from its file, agents/stubs.py), the same way on both.
    stub = 'def mul(a, b):\n    """Return the product of a and b."""\n    raise NotImplementedError\n'
    task = {"title": "Implement mul in calc.py", "scope": "", "acceptance": ["true"], "files": ["calc.py"]}
    runs = []
    for name, runtime in (("batched", BatchedRuntime("default", CONFIG, engine=engine)), ("single", single)):
        worktree = tmp_path / name
        git(repo_dir, "worktree", "add", "-q", "-b", name, str(worktree))
        (worktree / "calc.py").write_text(stub)
        runs.append(run_agent(IMPLEMENTER, runtime, ToolContext(worktree=worktree), task, {}))
        assert "raise NotImplementedError" not in (worktree / "calc.py").read_text()
    batched, alone = runs
    assert batched.ok, batched.error
    assert (tmp_path / "batched" / "calc.py").read_text() == (tmp_path / "single" / "calc.py").read_text()
    assert [turn["call"] for turn in batched.turns] == [turn["call"] for turn in alone.turns]


@pytest.mark.model
def test_bad_requests_are_refused_before_anything_is_queued(engine) -> None:
    requests_before = engine.stats.requests
    with pytest.raises(PantheonError, match="give a schema or a grammar, not both"):
        engine.submit([Request("x", max_tokens=4), Request("y", schema=PERSON, grammar='start: "a"')])
    overflow = r"prompt: \d+ tokens \+ max_tokens 4000 exceed the context window of 4096 tokens"
    with pytest.raises(ContextOverflow, match=overflow):
        engine.submit([Request("word " * 200, max_tokens=4000)])
    with pytest.raises(PantheonError, match="max_tokens: 0 is not a positive number"):
        engine.complete("x", schema=None, max_tokens=0)
    assert engine.stats.requests == requests_before


@pytest.mark.model
def test_requests_beyond_the_cache_wait_their_turn_instead_of_failing(engine) -> None:
    prompts = [f"Count from {start}: {start}," for start in (1, 20, 300, 4000)]
    roomy = engine.complete_many([Request(prompt, max_tokens=16) for prompt in prompts])
    # Room for two sequences at their full budget (prompt + 16), not four.
    with BatchedEngine.from_config("default", CONFIG, n_seq_max=4, n_ctx=56) as small:
        tight = small.complete_many([Request(prompt, max_tokens=16) for prompt in prompts])
        assert small.stats.requests == 4 and small.stats.mean_batch <= 2
    assert [item.text for item in tight] == [item.text for item in roomy]
    assert [item.tokens_out for item in tight] == [item.tokens_out for item in roomy]


@pytest.mark.model
def test_jobs_whose_prompts_are_cached_keep_them_when_the_cache_is_tight() -> None:
    # Four attempts' transcripts sit in four slots; each comes back with its next turn. The cache holds all
    # four at their full budget, but not the four budgets and the four cached transcripts again: the
    # transcripts must be reused in place, not dropped and evaluated again (a whole prompt per turn).
    prompts = [f"note {n}: the quick brown fox jumps over the lazy dog. " * 15 for n in range(4)]
    with BatchedEngine.from_config("default", CONFIG, n_seq_max=4, n_ctx=1200) as tight:
        lengths = [len(tight.tokenize(prompt)) for prompt in prompts]
        assert sum(lengths) + 4 * 8 < 1200 < 2 * sum(lengths)
        tight.complete_many([Request(prompt, max_tokens=1) for prompt in prompts])
        turns = tight.complete_many([Request(prompt + " And", max_tokens=8) for prompt in prompts])
        assert all(turn.tokens_evaluated <= 3 for turn in turns), [turn.tokens_evaluated for turn in turns]
