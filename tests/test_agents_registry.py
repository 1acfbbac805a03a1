"""Agents as code: the registry, `git pantheon init agent`, and secret redaction in traces."""

from __future__ import annotations

from pathlib import Path

from pantheon_git.agents.registry import agent_names, agents
from pantheon_git.store.redact import REDACTED, redact, redact_all
from tests.conftest import pantheon


def test_init_agent_scaffolds_a_loadable_agent_usable_in_flows(repo_dir: Path) -> None:
    assert pantheon(repo_dir, "init").returncode == 0
    made = pantheon(repo_dir, "init", "agent", "doc-writer")
    assert made.returncode == 0 and made.stdout.strip() == "created .pantheon/agents/doc_writer.py"
    found = agents(repo_dir)
    assert {"planner", "implementer", "reviewer", "doc-writer"} <= set(found)
    spec = found["doc-writer"]
    assert spec.output.model_validate({"summary": "ok"}) and "write_file" in spec.tools
    assert {"acceptance", "gate", "doc-writer"} <= agent_names(repo_dir)
    again = pantheon(repo_dir, "init", "agent", "doc-writer")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = pantheon(repo_dir, "init", "agent", "Bad Name")
    assert bad.returncode == 2 and "use 2-40 characters" in bad.stderr
    flow = repo_dir / ".pantheon" / "flows" / "docs.toml"
    flow.write_text('[[nodes]]\nid = "write"\nagent = "doc-writer"\n')
    assert pantheon(repo_dir, "flow", "check", "docs").stdout.strip() == "docs: ok (write)"


def test_broken_repository_agent_is_reported(repo_dir: Path) -> None:
    agents_dir = repo_dir / ".pantheon" / "agents"
    agents_dir.mkdir(parents=True)
    (agents_dir / "broken.py").write_text("raise RuntimeError('oops')\n")
    (repo_dir / ".pantheon" / "flows").mkdir()
    result = pantheon(repo_dir, "flow", "check", "x")
    assert (
        result.returncode == 2
        and ".pantheon/agents/broken.py: cannot load: RuntimeError('oops')" in result.stderr
    )


def test_secrets_are_redacted_before_recording() -> None:
    text = (
        "key sk-proj-abcdefghijklmnopqrstuv token ghp_abcdefghijklmnopqrstuvwxyz0123 "
        "hf_abcdefghijklmnopqrstuvwxyz AKIAABCDEFGHIJKLMNOP https://user:pa55word@git.example.com/x "
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz OPENAI_API_KEY=abcdefgh12345678 "
        "password: hunter2hunter2"
    )
    cleaned = redact(text)
    for secret in (
        "sk-proj-abc",
        "ghp_abc",
        "hf_abc",
        "AKIAABC",
        "pa55word",
        "abcdefghijklmnopqrstuvwxyz",
        "abcdefgh12345678",
        "hunter2hunter2",
    ):
        assert secret not in cleaned, secret
    assert cleaned.count(REDACTED) == 8 and "OPENAI_API_KEY=" in cleaned and "git.example.com/x" in cleaned
    assert redact_all({"turns": [{"result": "sk-abcdefghijklmnopqrstu"}], "n": 3}) == {
        "turns": [{"result": "[REDACTED:api-key]"}],
        "n": 3,
    }
    assert redact("nothing secret here: tokens_in=512") == "nothing secret here: tokens_in=512"
