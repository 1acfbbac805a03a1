"""Mining trace and vote notes into a per-agent chat dataset on refs/pantheon/datasets/<agent>."""

from __future__ import annotations

import json
from pathlib import Path

from pantheon_git.store.git import open_repo
from pantheon_git.store.runs import Step, commit_step, start_run_branch
from pantheon_git.store.traces import write_trace
from pantheon_git.store.votes import Vote, append_votes
from pantheon_git.training.dataset import holdout
from tests.conftest import git, pantheon


def agent_step(
    repo_dir: Path, task: str, agent: str, completion: str, gate: str | None, ok: bool = True
) -> str:
    repo = open_repo(repo_dir)
    ref = start_run_branch(repo, task, 1, repo.head.target)
    commit = commit_step(
        repo,
        ref,
        Step(task, "implement", agent, "m@0", "did it", {} if ok else {"Pantheon-Outcome": "failed"}),
    )
    record = {
        "prompt": f"### Task\nTitle: {task}\n",
        "turns": [
            {"n": 1, "completion": completion, "result": "wrote x.txt"},
            {"n": 2, "completion": '{"tool":"finish","args":{"summary":"done"}}'},
        ],
    }
    write_trace(
        repo,
        commit,
        {"summary": "did it", "task": task, "attempt": 1, "agent": agent, "ok": ok, "agent_trace": record},
        detail_keys=("agent_trace",),
    )
    if gate:
        append_votes(repo, commit, [Vote(kind="gate", voter="gate", verdict=gate)])
    return str(commit)


def test_dataset_from_notes_with_lineage_split_and_negatives(repo_dir: Path) -> None:
    call = '{"tool":"write_file","args":{"path":"x.txt","content":"x"}}'
    good = [
        agent_step(repo_dir, f"good{i}", "implementer", call.replace("x.txt", f"x{i}.txt"), "approve")
        for i in range(12)
    ]
    bad = agent_step(repo_dir, "bad", "implementer", call, None, ok=False)
    agent_step(repo_dir, "other", "planner", call, "approve")
    agent_step(repo_dir, "pending", "implementer", call, None)  # still running: left out
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    train = [json.loads(line) for line in (repo_dir / "ds" / "train.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (repo_dir / "ds" / "holdout.jsonl").read_text().splitlines()]
    negatives = [json.loads(line) for line in (repo_dir / "ds" / "negatives.jsonl").read_text().splitlines()]
    assert len(train) + len(held) == 12 and len(negatives) == 1
    assert {row["meta"]["task"] for row in held} == {f"good{i}" for i in range(12) if holdout(f"good{i}")}
    row = train[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert row["messages"][1]["content"].startswith('{"tool":"write_file"')  # exactly as produced
    manifest = json.loads((repo_dir / "ds" / "manifest.json").read_text())
    assert sorted(manifest["sources"]) == sorted([*good, bad])
    assert len(manifest["content_sha256"]) == 64
    log = git(repo_dir, "log", "--format=%s%n%b", "refs/pantheon/datasets/implementer")
    assert "train" in log and f"Pantheon-Dataset-Sha256: {manifest['content_sha256']}" in log
    again = pantheon(repo_dir, "train", "dataset", "--agent", "implementer")
    assert "unchanged" in again.stdout
    assert git(repo_dir, "rev-list", "--count", "refs/pantheon/datasets/implementer").strip() == "1"


def test_lora_without_a_dataset_says_what_to_do(repo_dir: Path) -> None:
    result = pantheon(repo_dir, "train", "lora", "--agent", "implementer")
    assert result.returncode == 2
    assert "refs/pantheon/datasets/implementer: no dataset yet" in result.stderr


def test_an_unknown_agent_is_refused_and_nothing_is_written(repo_dir: Path) -> None:
    agent_step(repo_dir, "good0", "implementer", '{"tool":"finish","args":{"summary":"x"}}', "approve")
    refs_before = git(repo_dir, "for-each-ref")
    for action in ("dataset", "lora", "rollback"):
        result = pantheon(repo_dir, "train", action, "--agent", "implementor")
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1
        assert "--agent: unknown agent 'implementor' (known: implementer, planner, reviewer)" in result.stderr
    assert git(repo_dir, "for-each-ref") == refs_before
    # An agent the repository defines in .pantheon/agents is known.
    (repo_dir / ".pantheon" / "agents").mkdir(parents=True)
    (repo_dir / ".pantheon" / "agents" / "doc.py").write_text(
        "from pantheon_git.agents.builtin import IMPLEMENTER\n"
        "import dataclasses\nDOC = dataclasses.replace(IMPLEMENTER, name='doc-writer')\n"
    )
    made = pantheon(repo_dir, "train", "dataset", "--agent", "doc-writer")
    assert made.returncode == 0, made.stderr
    assert "0 train, 0 holdout, 0 negatives" in made.stdout


def test_a_code_completion_at_a_stub_is_a_prompt_completion_row(repo_dir: Path) -> None:
    """The stub's body was completed from the file, not from the header: it is learned from the file."""
    repo = open_repo(repo_dir)
    task = next(f"stub{i}" for i in range(50) if not holdout(f"stub{i}"))
    prompt = 'def add(a, b):\n    """Sum."""\n'

    def passing_run(attempt: int, body: str, then: list[dict]) -> str:
        ref = start_run_branch(repo, task, attempt, repo.head.target)
        commit = commit_step(repo, ref, Step(task, "implement", "implementer", "m@0", f"filled {attempt}"))
        stub = {"path": "m.py", "function": "add", "prompt": prompt, "body": body}
        turn = {"n": 1, "completion": "edit path=m.py\n<<<<<<< SEARCH\n…", "result": "edited", "stub": stub}
        record = {"prompt": "### Task\nTitle: add\n", "turns": [turn, *then]}
        note = {"summary": "filled", "task": task, "attempt": attempt, "agent": "implementer", "ok": True}
        write_trace(repo, commit, {**note, "agent_trace": record}, detail_keys=("agent_trace",))
        append_votes(repo, commit, [Vote(kind="gate", voter="gate", verdict="approve")])
        return str(commit)

    commit = passing_run(1, "    return a + b\n", [])
    # A second run whose stub turn is followed by a call from the header: both rows.
    commit2 = passing_run(2, "    return b + a\n", [{"n": 2, "completion": "finish summary=done"}])
    made = pantheon(repo_dir, "train", "dataset", "--agent", "implementer", "--out", "ds")
    assert made.returncode == 0, made.stderr
    rows = [json.loads(line) for line in (repo_dir / "ds" / "train.jsonl").read_text().splitlines()]
    completions = sorted((r["prompt"], r["completion"]) for r in rows if "prompt" in r)
    assert completions == [(prompt, "    return a + b\n"), (prompt, "    return b + a\n")]
    chats = [r for r in rows if "messages" in r]
    assert len(chats) == 1 and chats[0]["messages"][-1]["content"] == "finish summary=done"
    manifest = json.loads((repo_dir / "ds" / "manifest.json").read_text())
    assert sorted(manifest["sources"]) == sorted([commit, commit2])
