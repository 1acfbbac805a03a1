"""Day mode: `git pantheon plan` may draft with a non-local model; night mode refuses the same model."""

from __future__ import annotations

import json
from dataclasses import replace
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest

from pantheon_git.agents.builtin import BUILTIN_AGENTS
from pantheon_git.errors import PantheonError
from pantheon_git.night.executors import executors_for
from pantheon_git.schema.config import GatePolicy
from pantheon_git.schema.models import ModelConfig
from tests.conftest import completions_server, git, pantheon

DRAFT = {
    "title": "Add a CHANGELOG",
    "scope": "One new file, CHANGELOG.md.",
    "acceptance": ["test -f CHANGELOG.md"],
}


def serve(reply: dict[str, Any]) -> HTTPServer:
    return completions_server(
        {
            "choices": [{"text": json.dumps(reply), "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5},
        }
    )


def test_plan_drafts_a_valid_spec_and_queues_only_when_asked(repo_dir: Path) -> None:
    server = serve(DRAFT)
    try:
        assert pantheon(repo_dir, "init").returncode == 0
        models = repo_dir / ".pantheon" / "models.toml"
        models.write_text(
            models.read_text() + f'\n[models.server]\nengine = "openai-compatible"\n'
            f'url = "http://127.0.0.1:{server.server_port}"\n'
        )
        drafted = pantheon(repo_dir, "plan", "a changelog please", "--model", "server")
        assert drafted.returncode == 0, drafted.stderr
        assert 'title = "Add a CHANGELOG"' in drafted.stdout and "(local)" in drafted.stderr
        assert git(repo_dir, "for-each-ref", "refs/pantheon/tasks") == ""  # a draft queues nothing
        refused = pantheon(repo_dir, "plan", "x", "--model", "server", "--queue")
        assert (
            refused.returncode == 2
            and "--queue without a terminal to confirm at: add --yes" in refused.stderr
        )
        queued = pantheon(repo_dir, "plan", "x", "--model", "server", "--queue", "--yes")
        assert queued.returncode == 0 and "queued " in queued.stdout
        assert json.loads(pantheon(repo_dir, "list", "--json").stdout)[0]["title"] == "Add a CHANGELOG"
    finally:
        server.shutdown()


def test_night_refuses_a_flow_with_a_remote_model_before_anything_runs() -> None:
    remote = {
        "default": ModelConfig(bundled="gemma3-270m"),
        "cloud": ModelConfig(engine="openai-compatible", url="https://api.example.com/v1"),
    }
    agents = {
        **BUILTIN_AGENTS,
        "reviewer": replace(BUILTIN_AGENTS["reviewer"], model="cloud"),
    }
    with pytest.raises(
        PantheonError,
        match=r"local-only; these agents use a non-local runtime: reviewer \(model cloud at https://api\.example\.com/v1\)",
    ):
        executors_for({"planner", "reviewer", "gate"}, agents, remote, GatePolicy())
