"""The agent interface on the real embedded model: the code-as-code grammar under Gemma's tokenizer, a
prompt from a few-thousand-line repository fits the context, a chat template (written into a copy of
the GGUF) is rendered and still constrained, and the model edits calc.py through the loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pantheon_git.agents import calls
from pantheon_git.agents.builtin import IMPLEMENTER, Implementation
from pantheon_git.agents.calls import CallFormat
from pantheon_git.agents.loop import CHAT_FORMAT, agent_header, call_grammar, parse_call, run_agent
from pantheon_git.agents.prompt import CALL, chat_prompt
from pantheon_git.runtime.batched_runtime import BatchedRuntime
from pantheon_git.runtime.constrained import llg_grammar, llg_tokenizer
from pantheon_git.schema.models import ModelConfig
from pantheon_git.tools.builtin import TOOLS, ToolContext
from tests.test_aci_prompt import TRICKY, _big_repository

pytestmark = pytest.mark.model

CALC = "def add(a, b):\n    return a + b\n"
TASK = {
    "title": "Add a function mul(a, b) returning a*b to calc.py",
    "acceptance": ["python -c 'from calc import mul; assert mul(3, 4) == 12'"],
    "files": ["calc.py"],
}
# A Gemma-style template with markers of its own, so the test can see it was used.
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def runtime():
    from pantheon_git.runtime.llama import runtime_for

    return runtime_for("default", ModelConfig(bundled="gemma3-270m", n_ctx=4096, n_threads=2))


def test_code_calls_are_accepted_by_the_grammar_under_the_real_tokenizer(runtime) -> None:
    import llguidance

    tools = [TOOLS[name] for name in IMPLEMENTER.tools]
    grammar = llg_grammar(call_grammar(tools, Implementation, CallFormat.CODE))
    tokenizer = llg_tokenizer(runtime.llama)
    models = {tool.name: tool.args for tool in tools}
    for text in [
        calls.render("edit", {"path": "calc.py", "search": CALC, "replace": TRICKY}, models["edit"]),
        calls.render("create", {"path": "t.py", "content": TRICKY}, models["create"]),
        calls.render("run", {"command": "python -m pytest -q"}, models["run"]),
        'finish summary="added \\"mul\\""',
    ]:
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        tokens = runtime.llama.tokenize(text.encode(), add_bos=False, special=False)
        assert all(matcher.consume_token(token) for token in tokens), matcher.get_error()
        assert matcher.is_accepting()
    # A block marker inside the code is not allowed: the block could not end unambiguously.
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    bad = "edit path=a.py\n<<<<<<< SEARCH\n=======\n=======\n"
    tokens = runtime.llama.tokenize(bad.encode(), add_bos=False, special=False)
    assert not all(matcher.consume_token(token) for token in tokens)


def test_prompt_from_a_few_thousand_line_repository_fits_the_context(runtime, tmp_path: Path) -> None:
    _big_repository(tmp_path)
    task = {"title": "Add mul(a, b) to src/calc.py", "acceptance": ["pytest -q"], "files": ["src/calc.py"]}
    header = agent_header(
        IMPLEMENTER, ToolContext(worktree=tmp_path), task, {}, context_tokens=runtime.context_tokens
    )
    assert runtime.context_tokens == 4096 // 4
    assert "### Repository" in header and "more files (list_files shows them)" in header
    used = len(runtime.llama.tokenize((header + CALL).encode(), special=True))
    # The header leaves room for every turn's call at full length and as much again for results.
    assert used + 2 * IMPLEMENTER.max_tokens < 4096, used


def test_the_model_edits_calc_py_through_the_constrained_loop(runtime, tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text(CALC)
    run = run_agent(IMPLEMENTER, runtime, ToolContext(worktree=tmp_path), TASK, {})
    first = run.turns[0]
    # The grammar holds the edit to the named file and its SEARCH to a run of that file's lines, so the
    # call parses and the snippet is found: what is left to the model is the new code itself.
    assert first["call"]["tool"] == "edit", first["completion"]
    assert first["completion"].startswith("edit path=calc.py\n<<<<<<< SEARCH\n")
    assert first["call"]["args"]["search"] in CALC
    assert "occurs 0 times" not in first["result"] and "not valid" not in first.get("error", "")
    # Measured (2026-11-25, greedy): the 270M model copies the SEARCH line into REPLACE unchanged, and
    # the tool says so instead of reporting success; the file is never left broken.
    assert first["result"].startswith("edited calc.py") or "REPLACE is the same as SEARCH" in first["result"]
    assert compile((tmp_path / "calc.py").read_text(), "calc.py", "exec")


def _with_template(tmp_path: Path) -> Path:
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    from pantheon_git.runtime.bundled import bundled_gguf

    source, _ = bundled_gguf()
    target = tmp_path / "chat.gguf"
    reader = gguf.GGUFReader(source, "r")
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch=arch, endianess=reader.endianess)
    template = MetadataDetails(gguf.GGUFValueType.STRING, TEMPLATE)
    copy_with_new_metadata(reader, writer, {gguf.Keys.Tokenizer.CHAT_TEMPLATE: template}, [])
    return target


def test_a_chat_template_in_the_gguf_renders_the_prompt_and_stays_constrained(tmp_path: Path) -> None:
    from pantheon_git.runtime.llama import LlamaRuntime

    path = _with_template(tmp_path)
    runtime = LlamaRuntime("chat", ModelConfig(path=str(path), n_ctx=2048, n_threads=2))
    assert runtime.chat is not None and "<start_of_turn>" in runtime.chat.template
    header = "### Task\nTitle: say done\n"
    turns = [{"completion": "view path=calc.py", "result": "calc.py (2 lines)"}]
    prompt = chat_prompt(runtime.chat, header, turns)
    assert prompt.startswith("<start_of_turn>user\n### Task")  # the BOS is llama.cpp's to add, once
    assert "<start_of_turn>model\nCall: view path=calc.py<end_of_turn>" in prompt
    assert prompt.endswith(
        "<start_of_turn>user\nResult: calc.py (2 lines)<end_of_turn>\n<start_of_turn>model\nCall: "
    )
    grammar = call_grammar([TOOLS["view"]], Implementation, CallFormat.CODE)
    done = runtime.complete(prompt, schema=grammar, max_tokens=48)
    name, _ = parse_call(done.text.strip(), {"view": TOOLS["view"]}, Implementation, CallFormat.CODE)
    assert name in ("view", "finish")
    # The loop takes the chat path by itself and says so in the trace.
    (tmp_path / "calc.py").write_text(CALC)
    agent = dataclasses.replace(IMPLEMENTER, max_iterations=1, max_tokens=64)
    run = run_agent(agent, runtime, ToolContext(worktree=tmp_path), TASK, {})
    assert run.trace(agent, runtime)["format"] == CHAT_FORMAT
    # A plain GGUF, and "none" in models.toml, keep the plain format.
    plain = LlamaRuntime("plain", ModelConfig(path=str(path), n_ctx=512, n_threads=2, chat_template="none"))
    assert plain.chat is None
    # The batched runtime reads the same template the same way (runtime/in_process.py).
    batched = BatchedRuntime("chat", ModelConfig(path=str(path), n_ctx=512, n_threads=2, parallel=1))
    try:
        assert batched.chat is not None and chat_prompt(batched.chat, header, turns) == prompt
    finally:
        batched.close()


def test_a_bare_value_ends_within_its_bound_under_the_real_tokenizer(runtime) -> None:
    """A path the model rambles in is closed by the grammar, so the call ends and the tool answers."""
    import llguidance

    from pantheon_git.agents.calls import MAX_BARE_CHARS

    tools = [TOOLS[name] for name in IMPLEMENTER.tools]
    grammar = llg_grammar(call_grammar(tools, Implementation, CallFormat.CODE))
    tokenizer = llg_tokenizer(runtime.llama)

    def accepted(text: str) -> bool:
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        tokens = runtime.llama.tokenize(text.encode(), add_bos=False, special=False)
        return all(matcher.consume_token(token) for token in tokens) and matcher.is_accepting()

    assert accepted("view path=" + "a" * (MAX_BARE_CHARS - 3) + ".py")
    assert not accepted("view path=" + "PATH:calc.py:5|1|" * 20)
